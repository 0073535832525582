/* stream.c — the stream handler: long-lived co-processes speaking newline-delimited JSON, many tasks, no fork per task. */
#include "worker.h"
#include "json.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct sproc {
    pid_t   pid;
    int     in_fd, out_fd, err_fd;
    buf     out;          /* requests not yet written */
    buf     line;         /* partial response line */
    buf     errline;      /* partial stderr line */
    bool    err_skip;     /* dropping the rest of an over-long stderr line */
    int     inflight;
    bool    exited, retiring;
    int     status;
    int64_t started;
    size_t  cap;          /* max_output: longest response line */
    char    broken[300];  /* why we killed it (a protocol violation); empty = it died by itself */
    int64_t gone[256];    /* ids of tasks that left without their answer (timeout, cancel): a late */
    int     ngone;        /* answer for one of them is expected, not a protocol violation */
    struct sproc *next;
} sproc;

typedef struct streamq {
    sproc  *procs;
    char   *command;      /* the settings the processes were started with */
    char   *workdir;
    int     nprocs;
    int     restarts;
    int64_t restart_at;
} streamq;

/* Closes an fd field if open and marks it closed. */
static void close_fd(int *fd)
{
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

/* Starts one co-process in its own process group; NULL when fork fails. */
static sproc *spawn(queue_rt *q)
{
    const queue_conf *qc = q->qc;
    int pin[2], pout[2], perr[2];
    if (pipe2(pin, O_CLOEXEC) < 0) return NULL;
    if (pipe2(pout, O_CLOEXEC) < 0) {
        close(pin[0]);
        close(pin[1]);
        return NULL;
    }
    /* Its stderr comes through the worker's log, one entry per line: written
       straight to the worker's stderr it would break JSON log lines. */
    if (pipe2(perr, O_CLOEXEC) < 0) {
        close(pin[0]); close(pin[1]); close(pout[0]); close(pout[1]);
        return NULL;
    }
    pid_t self = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(pin[0]); close(pin[1]); close(pout[0]); close(pout[1]); close(perr[0]); close(perr[1]);
        return NULL;
    }
    if (pid == 0) {
        setpgid(0, 0);
        dup2(pin[0], 0);
        dup2(pout[1], 1);
        dup2(perr[1], 2);
        child_exec(qc, self);
    }
    setpgid(pid, pid);
    close(pin[0]);
    close(pout[1]);
    close(perr[1]);
    sproc *p = xcalloc(1, sizeof *p);
    p->pid = pid;
    p->in_fd = pin[1];
    p->out_fd = pout[0];
    p->err_fd = perr[0];
    set_nonblock(p->in_fd);
    set_nonblock(p->out_fd);
    set_nonblock(p->err_fd);
    buf_init(&p->out);
    buf_init(&p->line);
    buf_init(&p->errline);
    p->started = now_ms();
    p->cap = (size_t)qc->max_output;
    log_info("stream queue %s: started co-process %d (%s)", q->name, (int)pid, qc->command);
    return p;
}

/* The task of this process with the given id, if it is still waiting. */
static task *task_of(sproc *p, int64_t id)
{
    for (task *t = W.tasks; t; t = t->next)
        if (t->handler == H_STREAM && t->h == p && t->id == id && !t->finished) return t;
    return NULL;
}

/* True when id belongs to a task that left this process without its answer. */
static bool was_given(const sproc *p, int64_t id)
{
    for (int i = 0; i < MIN(p->ngone, (int)(sizeof p->gone / sizeof p->gone[0])); i++)
        if (p->gone[i] == id) return true;
    return false;
}

/* Records why the co-process is broken (it is killed by the caller). */
static bool broken(sproc *p, const char *why, const char *s, size_t n)
{
    char *head = text_sanitize(s, MIN(n, (size_t)200));
    snprintf(p->broken, sizeof p->broken, "stream co-process %d: %s: %s", (int)p->pid, why, head);
    free(head);
    return false;
}

/* Handles one response line; false when the line breaks the protocol (then the process must be restarted,
 * since later answers of a confused co-process cannot be trusted to belong to their ids). */
static bool on_line(sproc *p, const char *s, size_t n)
{
    const char *v;
    size_t vn;
    char *end;
    if (!n) return true;
    if (!json_valid(s, n)) return broken(p, "response is not valid JSON", s, n);
    if (!json_member(s, n, "id", &v, &vn)) return broken(p, "response without \"id\"", s, n);
    errno = 0;
    int64_t id = strtoll(v, &end, 10);
    if (vn == 0 || end != v + vn || errno) return broken(p, "response \"id\" is not a task id", s, n);
    task *t = task_of(p, id);
    /* An answer that names its attempt is only ever the answer of that attempt: a late answer of an
       attempt that timed out cannot pass for the next attempt's on the same co-process. */
    long attempt = -1;
    if (json_member(s, n, "attempt", &v, &vn)) {
        errno = 0;
        attempt = strtol(v, &end, 10);
        if (vn == 0 || end != v + vn || errno || attempt < 1)
            return broken(p, "response \"attempt\" is not an attempt number", s, n);
    }
    if (t && attempt > t->attempt) return broken(p, "response for an attempt it was not given", s, n);
    if (!t || (attempt > 0 && attempt != t->attempt)) {
        if (!t && !was_given(p, id)) return broken(p, "response for a task it was not given", s, n);
        log_debug("stream co-process %d: response for task %lld (attempt %ld) that is no longer waiting", (int)p->pid,
                  (long long)id, attempt);
        return true;
    }
    /* Answered: the slot is free now, and cleanup must not count it among the unanswered. */
    p->inflight--;
    t->h = NULL;
    bool ok = json_member(s, n, "ok", &v, &vn) && vn == 4 && !memcmp(v, "true", 4);
    if (ok) {
        char *res = json_member(s, n, "result", &v, &vn) ? xstrndup(v, vn) : NULL;
        task_finish(t, REP_OK, res);
        free(res);
        return true;
    }
    char *err = NULL;
    if (json_member(s, n, "error", &v, &vn)) {
        err = json_string_value(v, vn);
        if (!err) err = xstrndup(v, vn);
    }
    bool retry = json_member(s, n, "retry", &v, &vn) && vn == 4 && !memcmp(v, "true", 4);
    task_finish(t, retry ? REP_RETRY : REP_FAIL, err ? err : "failed (no error given)");
    free(err);
    return true;
}

/* Reads responses, one JSON object per line. */
static void on_out(void *arg, int fd, short rev)
{
    sproc *p = arg;
    (void)rev;
    char tmp[65536];
    for (;;) {
        ssize_t n = read(fd, tmp, sizeof tmp);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        if (n <= 0) {
            close_fd(&p->out_fd);
            return;
        }
        buf_add(&p->line, tmp, (size_t)n);
        char *nl;
        while (p->line.len && (nl = memchr(p->line.data, '\n', p->line.len)) != NULL) {
            size_t l = (size_t)(nl - p->line.data);
            *nl = '\0';
            if (l > p->cap) snprintf(p->broken, sizeof p->broken, "stream co-process %d: response line exceeds max_output (%zu bytes)", (int)p->pid, p->cap);
            if (l > p->cap || !on_line(p, p->line.data, l)) {
                log_warn("%s; restarting it", p->broken);
                kill(-p->pid, SIGKILL);
                close_fd(&p->out_fd);
                return;
            }
            buf_consume(&p->line, l + 1);
        }
        /* Bounded memory: a line longer than max_output is a broken co-process (we cannot tell whose answer
         * it is before it ends, so its tasks in flight are retried). */
        if (p->line.len > p->cap) {
            snprintf(p->broken, sizeof p->broken, "stream co-process %d: response line exceeds max_output (%zu bytes)", (int)p->pid, p->cap);
            log_warn("%s; restarting it", p->broken);
            kill(-p->pid, SIGKILL);
            close_fd(&p->out_fd);
            return;
        }
    }
}

/* Logs one line the co-process wrote to stderr. */
static void log_stderr_line(sproc *p, const char *s, size_t n)
{
    while (n && (s[n - 1] == '\r' || s[n - 1] == ' ')) n--;
    if (!n) return;
    char *clean = text_sanitize(s, n);
    log_info("stream co-process %d stderr: %s", (int)p->pid, clean);
    free(clean);
}

/* Reads the co-process's stderr; every line becomes a log entry (at most 4 KiB of it). */
static void on_err(void *arg, int fd, short rev)
{
    enum { MAX_LINE = 4096 };
    sproc *p = arg;
    (void)rev;
    char tmp[8192];
    for (;;) {
        ssize_t n = read(fd, tmp, sizeof tmp);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        if (n <= 0) {
            log_stderr_line(p, p->errline.data, p->errline.len);
            buf_consume(&p->errline, p->errline.len);
            close_fd(&p->err_fd);
            return;
        }
        const char *c = tmp, *end = tmp + n;
        while (c < end) {
            const char *nl = memchr(c, '\n', (size_t)(end - c));
            size_t take = (size_t)((nl ? nl : end) - c);
            if (!p->err_skip) {
                size_t room = MAX_LINE - p->errline.len;
                buf_add(&p->errline, c, MIN(take, room));
                if (take > room) p->err_skip = true;   /* the rest of this line is dropped */
            }
            c += take;
            if (nl) {
                log_stderr_line(p, p->errline.data, p->errline.len);
                buf_consume(&p->errline, p->errline.len);
                p->err_skip = false;
                c++;
            } else if (p->err_skip && p->errline.len) {
                log_stderr_line(p, p->errline.data, p->errline.len);
                buf_consume(&p->errline, p->errline.len);
            }
        }
    }
}

/* Writes queued requests as the pipe accepts them. */
static void on_in(void *arg, int fd, short rev)
{
    sproc *p = arg;
    if (rev & (POLLERR | POLLHUP)) {
        close_fd(&p->in_fd);
        return;
    }
    while (p->out.len) {
        ssize_t n = write(fd, p->out.data, p->out.len);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) return;
            close_fd(&p->in_fd);
            return;
        }
        buf_consume(&p->out, (size_t)n);
    }
}

/* Records the exit of a co-process; false if pid is not one. */
bool stream_child_exited(pid_t pid, int status)
{
    for (queue_rt *q = W.queues; q; q = q->next) {
        streamq *sq = q->hstream;
        if (!sq) continue;
        for (sproc *p = sq->procs; p; p = p->next)
            if (p->pid == pid) {
                p->exited = true;
                p->status = status;
                return true;
            }
    }
    return false;
}

/* Frees a process record; its waiting tasks fail for retry. */
static void proc_gone(queue_rt *q, streamq *sq, sproc *p)
{
    char msg[sizeof p->broken];
    if (p->broken[0]) snprintf(msg, sizeof msg, "%s", p->broken);
    else if (WIFEXITED(p->status)) snprintf(msg, sizeof msg, "stream co-process %d exited with code %d", (int)p->pid, WEXITSTATUS(p->status));
    else snprintf(msg, sizeof msg, "stream co-process %d killed by signal %d", (int)p->pid, WTERMSIG(p->status));
    for (task *t = W.tasks; t; t = t->next)
        if (t->handler == H_STREAM && t->h == p) {
            if (!t->finished) task_finish(t, REP_RETRY, msg);
            t->h = NULL;
        }
    if (!p->retiring) {
        log_warn("stream queue %s: %s", q->name, msg);
        /* Exponential backoff between restarts of a crashing co-process. */
        if (now_ms() - p->started > 10000) sq->restarts = 0;
        sq->restart_at = now_ms() + MIN((int64_t)100 << MIN(sq->restarts, 7), 10000);
        sq->restarts++;
    }
    if (p->err_fd >= 0) on_err(p, p->err_fd, POLLIN);   /* what it said last, before it goes */
    close_fd(&p->in_fd);
    close_fd(&p->out_fd);
    close_fd(&p->err_fd);
    kill(-p->pid, SIGKILL);
    buf_free(&p->out);
    buf_free(&p->line);
    buf_free(&p->errline);
    free(p);
}

/* Retires a process: no new tasks; once idle its stdin is closed and it is stopped. */
static void retire(sproc *p)
{
    p->retiring = true;
}

/* String equality treating NULL as empty. */
static bool same(const char *a, const char *b)
{
    return !strcmp(a ? a : "", b ? b : "");
}

/* Retires co-processes after a config change, reaps dead ones, registers pipes. */
void stream_queue_step(queue_rt *q, int64_t now)
{
    streamq *sq = q->hstream;
    if (!sq) return;
    /* A reload that changed the command (or removed the queue) retires the old processes. */
    bool changed = !q->qc || q->qc->handler != H_STREAM || !same(q->qc->command, sq->command) ||
                   !same(q->qc->workdir, sq->workdir) || q->qc->processes != sq->nprocs;
    if (changed) {
        for (sproc *p = sq->procs; p; p = p->next) retire(p);
        free(sq->command);
        free(sq->workdir);
        sq->command = q->qc && q->qc->handler == H_STREAM ? xstrdup(q->qc->command) : NULL;
        sq->workdir = q->qc && q->qc->workdir ? xstrdup(q->qc->workdir) : NULL;
        sq->nprocs = q->qc ? q->qc->processes : 0;
    }
    for (sproc **pp = &sq->procs; *pp;) {
        sproc *p = *pp;
        if (p->exited && p->out_fd < 0) {
            *pp = p->next;
            proc_gone(q, sq, p);
            continue;
        }
        if (p->exited && p->out_fd >= 0) on_out(p, p->out_fd, POLLIN);
        if (p->retiring && p->inflight == 0 && p->in_fd >= 0 && !p->out.len) {
            close_fd(&p->in_fd);   /* EOF asks the co-process to exit */
            pgroup_kill(p->pid);
        }
        if (p->in_fd >= 0 && p->out.len) loop_watch(p->in_fd, POLLOUT, on_in, p);
        if (p->out_fd >= 0) loop_watch(p->out_fd, POLLIN, on_out, p);
        if (p->err_fd >= 0) loop_watch(p->err_fd, POLLIN, on_err, p);
        if (p->exited) loop_deadline(now);
        pp = &p->next;
    }
    if (sq->restart_at > now) loop_deadline(sq->restart_at);
}

/* Picks (or starts) the least busy live process of the queue. */
static sproc *pick(queue_rt *q, streamq *sq)
{
    int live = 0;
    sproc *best = NULL;
    for (sproc *p = sq->procs; p; p = p->next) {
        if (p->retiring || p->exited || p->in_fd < 0) continue;
        live++;
        if (!best || p->inflight < best->inflight) best = p;
    }
    if (live < q->qc->processes && (!best || best->inflight > 0) && now_ms() >= sq->restart_at) {
        sproc *p = spawn(q);
        if (p) {
            p->next = sq->procs;
            sq->procs = p;
            return p;
        }
    }
    return best;
}

/* Hands the task to a co-process; false when none runs (restart backoff): the task waits. */
static bool assign(task *t)
{
    queue_rt *q = t->q;
    streamq *sq = q->hstream;
    if (!q->qc || q->qc->handler != H_STREAM) return false;
    sproc *p = pick(q, sq);
    if (!p) return false;
    t->h = p;
    p->inflight++;
    buf_printf(&p->out, "{\"id\":%lld,\"attempt\":%d,\"task\":%s}\n", (long long)t->id, t->attempt, t->json);
    return true;
}

/* Creates the queue's co-process state on first use and hands the task over. */
static void stream_start(task *t)
{
    queue_rt *q = t->q;
    if (!q->hstream) {
        streamq *sq = xcalloc(1, sizeof *sq);
        sq->command = xstrdup(q->qc->command);
        sq->workdir = q->qc->workdir ? xstrdup(q->qc->workdir) : NULL;
        sq->nprocs = q->qc->processes;
        q->hstream = sq;
    }
    assign(t);
}

/* Tells the co-process to stop working on a task that leaves it unanswered
   (cancelled, lease lost, timed out, released): a {"cancel": id} line.  One
   that ignores it loses its answer (rejected, as for any task that left). */
static void stream_send_cancel(task *t)
{
    sproc *p = t->h;
    if (!p || p->in_fd < 0) return;
    buf_printf(&p->out, "{\"cancel\":%lld,\"attempt\":%d}\n", (long long)t->id, t->attempt);
}

/* Cancellation, timeout, and waiting for a restarting co-process. */
static void stream_step(task *t, int64_t now)
{
    if (t->cancel) {
        stream_send_cancel(t);
        task_finish(t, REP_RELEASE, t->cancel == CANCEL_LOST ? "lease lost" : "worker shutting down");
        return;
    }
    if (now >= t->deadline) {
        stream_send_cancel(t);
        char msg[64];
        snprintf(msg, sizeof msg, "timed out after %.3gs", (double)t->timeout_ms / 1000.0);
        task_finish(t, REP_RETRY, msg);
        return;
    }
    if (!t->h && !assign(t)) {
        /* Waiting for the co-process to be restarted. */
        streamq *sq = t->q->hstream;
        if (sq) loop_deadline(MAX(sq->restart_at, now + 10));
    }
    loop_deadline(t->deadline);
}

/* Frees the task's slot in its co-process. */
static void stream_cleanup(task *t)
{
    sproc *p = t->h;
    if (p) {
        p->inflight--;
        /* It left unanswered (timeout, cancel, drain): remember its id, its answer may still come. */
        p->gone[p->ngone++ % (int)(sizeof p->gone / sizeof p->gone[0])] = t->id;
    }
    t->h = NULL;
}

/* Closes every co-process of the queue (EOF and SIGTERM). */
void stream_queue_free(queue_rt *q)
{
    streamq *sq = q->hstream;
    if (!sq) return;
    while (sq->procs) {
        sproc *p = sq->procs;
        sq->procs = p->next;
        for (task *t = W.tasks; t; t = t->next)
            if (t->h == p && t->handler == H_STREAM) t->h = NULL;
        close_fd(&p->in_fd);
        close_fd(&p->out_fd);
        close_fd(&p->err_fd);
        kill(-p->pid, SIGTERM);
        buf_free(&p->out);
        buf_free(&p->line);
        buf_free(&p->errline);
        free(p);
    }
    free(sq->command);
    free(sq->workdir);
    free(sq);
    q->hstream = NULL;
}

const handler_ops stream_ops = {stream_start, stream_step, stream_cleanup};
