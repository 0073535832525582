/* exec.c — the exec handler: one child per task in its own process group, JSON on stdin/stdout, exit codes. */
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
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <unistd.h>

#define STDERR_TAIL 4096
#define EXIT_RETRY  75     /* EX_TEMPFAIL: "retry later" */
#define EXIT_DATAERR 65    /* EX_DATAERR: the input is wrong; retrying cannot help */

typedef struct exec_state {
    pid_t   pid;
    int     in_fd, out_fd, err_fd;
    size_t  in_off;
    buf     out;
    char    err[STDERR_TAIL];   /* ring buffer of the last bytes of stderr */
    size_t  err_len, err_pos;
    bool    exited, over_cap;
    int     status;
    int64_t exited_at;
    bool    term_sent;
    int64_t kill_at;
} exec_state;

/* ---- process groups being terminated: SIGTERM, then SIGKILL after kill_grace ---- */
typedef struct pgkill {
    pid_t   pgid;
    int64_t kill_at;
} pgkill;

/* In a forked child whose stdio is already set up: resets signals, drops the
   worker's password from the environment, enters workdir and runs the queue's
   command. Never returns; exit 127 when the command cannot run. Shared by the
   exec and stream handlers. */
_Noreturn void child_exec(const queue_conf *qc, pid_t parent)
{
#ifdef __linux__
    /* However the worker dies (kill -9 included), its children die with it: a task it held is
       rescued and run again elsewhere, and must not also go on running here. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) _exit(127);
#endif
    /* The worker may have died before the line above: then nobody would send the signal. */
    if (getppid() != parent) _exit(127);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    /* The worker's database password is not the task program's business. */
    unsetenv("PGPASSWORD");
    if (qc->workdir && *qc->workdir && chdir(qc->workdir) < 0) {
        dprintf(2, "baton-worker: cannot chdir to %s: %s\n", qc->workdir, strerror(errno));
        _exit(127);
    }
    execvp(qc->argv.v[0], qc->argv.v);
    dprintf(2, "baton-worker: cannot execute %s: %s\n", qc->argv.v[0], strerror(errno));
    _exit(127);
}

static pgkill *pgk;
static int     npgk, cappgk;

/* Starts stopping a process group: SIGTERM now, SIGKILL after kill_grace. */
void pgroup_kill(pid_t pgid)
{
    if (pgid <= 1) return;
    kill(-pgid, SIGTERM);
    if (npgk == cappgk) {
        cappgk = cappgk ? cappgk * 2 : 16;
        pgk = xrealloc(pgk, sizeof *pgk * (size_t)cappgk);
    }
    pgk[npgk].pgid = pgid;
    pgk[npgk].kill_at = now_ms() + W.cfg->kill_grace_ms;
    npgk++;
}

/* Sends the due SIGKILLs and forgets groups that are gone. */
void pgroups_step(int64_t now)
{
    for (int i = 0; i < npgk;) {
        if (now >= pgk[i].kill_at || kill(-pgk[i].pgid, 0) < 0) {
            if (now >= pgk[i].kill_at) kill(-pgk[i].pgid, SIGKILL);
            pgk[i] = pgk[--npgk];
            continue;
        }
        loop_deadline(MIN(pgk[i].kill_at, now + 100));
        i++;
    }
}

/* SIGKILL to every group still being stopped (exit path). */
void pgroups_kill_all(void)
{
    for (int i = 0; i < npgk; i++) kill(-pgk[i].pgid, SIGKILL);
    npgk = 0;
}

/* SIGKILL to the process group of every running exec task (fatal exit path). */
void exec_kill_all(void)
{
    for (task *t = W.tasks; t; t = t->next) {
        exec_state *e = t->handler == H_EXEC ? t->h : NULL;
        if (e && e->pid > 0) kill(-e->pid, SIGKILL);
    }
}

/* Closes an fd field if open. */
static void close_fd(int *fd)
{
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

/* Appends to the stderr ring, keeping only the last STDERR_TAIL bytes. */
static void err_add(exec_state *e, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        e->err[e->err_pos] = p[i];
        e->err_pos = (e->err_pos + 1) % STDERR_TAIL;
        if (e->err_len < STDERR_TAIL) e->err_len++;
    }
}

/* The stderr tail in order, trimmed (malloc'd). */
static char *err_tail(exec_state *e)
{
    buf b;
    buf_init(&b);
    size_t start = (e->err_pos + STDERR_TAIL - e->err_len) % STDERR_TAIL;
    for (size_t i = 0; i < e->err_len; i++) buf_addc(&b, e->err[(start + i) % STDERR_TAIL]);
    while (b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == ' ')) b.data[--b.len] = '\0';
    return buf_steal(&b);
}

/* Writes the task JSON to the child as its pipe accepts it, then closes stdin. */
static void on_stdin(void *arg, int fd, short rev)
{
    task *t = arg;
    exec_state *e = t->h;
    (void)fd;
    size_t len = t->json_len;   /* not strlen: this runs once per pipe buffer of a large payload */
    if (rev & (POLLERR | POLLHUP)) { close_fd(&e->in_fd); return; }
    while (e->in_off < len) {
        ssize_t n = write(e->in_fd, t->json + e->in_off, len - e->in_off);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) return;
            close_fd(&e->in_fd);   /* EPIPE: the child does not read its input; fine */
            return;
        }
        e->in_off += (size_t)n;
    }
    close_fd(&e->in_fd);
}

/* Collects stdout up to max_output; beyond it the child is killed. */
static void on_stdout(void *arg, int fd, short rev)
{
    task *t = arg;
    exec_state *e = t->h;
    char tmp[65536];
    (void)rev;
    for (;;) {
        ssize_t n = read(fd, tmp, sizeof tmp);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        if (n <= 0) { close_fd(&e->out_fd); return; }
        if (e->out.len + (size_t)n > (size_t)t->qc->max_output) {
            /* Bounded memory: stop the child rather than buffer without limit. */
            e->over_cap = true;
            close_fd(&e->out_fd);
            if (!e->term_sent) {
                e->term_sent = true;
                kill(-e->pid, SIGKILL);
            }
            return;
        }
        buf_add(&e->out, tmp, (size_t)n);
    }
}

/* Keeps the last 4 KiB of stderr. */
static void on_stderr(void *arg, int fd, short rev)
{
    task *t = arg;
    exec_state *e = t->h;
    char tmp[8192];
    (void)rev;
    for (;;) {
        ssize_t n = read(fd, tmp, sizeof tmp);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        if (n <= 0) { close_fd(&e->err_fd); return; }
        err_add(e, tmp, (size_t)n);
    }
}

/* Forks the child: own process group, pipes on 0/1/2, default signal dispositions. */
static void exec_start(task *t)
{
    exec_state *e = xcalloc(1, sizeof *e);
    e->in_fd = e->out_fd = e->err_fd = -1;
    buf_init(&e->out);
    t->h = e;
    int pin[2], pout[2], perr[2];
    if (pipe2(pin, O_CLOEXEC) < 0) goto fail0;
    if (pipe2(pout, O_CLOEXEC) < 0) goto fail1;
    if (pipe2(perr, O_CLOEXEC) < 0) goto fail2;
    pid_t self = getpid();
    pid_t pid = fork();
    if (pid < 0) goto fail3;
    if (pid == 0) {
        setpgid(0, 0);
        dup2(pin[0], 0);
        dup2(pout[1], 1);
        dup2(perr[1], 2);
        child_exec(t->qc, self);
    }
    setpgid(pid, pid);   /* also in the parent: no race with a kill right after fork */
    close(pin[0]);
    close(pout[1]);
    close(perr[1]);
    e->pid = pid;
    e->in_fd = pin[1];
    e->out_fd = pout[0];
    e->err_fd = perr[0];
    set_nonblock(e->in_fd);
    set_nonblock(e->out_fd);
    set_nonblock(e->err_fd);
    return;
fail3:
    close(perr[0]);
    close(perr[1]);
fail2:
    close(pout[0]);
    close(pout[1]);
fail1:
    close(pin[0]);
    close(pin[1]);
fail0:;
    char msg[256];
    snprintf(msg, sizeof msg, "cannot start %s: %s", t->qc->argv.v[0], strerror(errno));
    task_finish(t, REP_RETRY, msg);
}

/* Records the exit status of an exec child (from the SIGCHLD reaper). */
void exec_child_exited(pid_t pid, int status)
{
    for (task *t = W.tasks; t; t = t->next) {
        if (t->handler != H_EXEC || t->finished || !t->h) continue;
        exec_state *e = t->h;
        if (e->pid == pid && !e->exited) {
            e->exited = true;
            e->status = status;
            e->exited_at = now_ms();
            return;
        }
    }
}

/* Turns the finished child into an outcome. */
static void exec_outcome(task *t, exec_state *e)
{
    char *tail = err_tail(e);
    buf msg;
    buf_init(&msg);
    if (e->over_cap) {
        buf_printf(&msg, "output exceeds max_output (%lld bytes)", (long long)t->qc->max_output);
        task_finish(t, REP_FAIL, msg.data);
    } else if (e->kill_at) {
        buf_printf(&msg, "timed out after %.3gs", (double)t->timeout_ms / 1000.0);
        if (*tail) buf_printf(&msg, "; stderr: %s", tail);
        task_finish(t, REP_RETRY, msg.data);
    } else if (WIFEXITED(e->status) && WEXITSTATUS(e->status) == 0) {
        /* stdout: empty = NULL, JSON = as is; anything else is a broken program, and running it
         * again would not mend its output, so the task fails without retry. */
        const char *s = e->out.data ? e->out.data : "";
        size_t n = e->out.len;
        while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
        while (n && (*s == '\n' || *s == '\r' || *s == ' ' || *s == '\t')) { s++; n--; }
        if (n == 0) task_finish(t, REP_OK, NULL);
        else if (json_valid(s, n)) {
            char *r = xstrndup(s, n);
            task_finish(t, REP_OK, r);
            free(r);
        } else {
            buf_adds(&msg, "exec: stdout is not valid JSON: ");
            char *head = text_sanitize(s, MIN(n, (size_t)200));   /* NUL bytes would cut the message */
            buf_adds(&msg, head);
            free(head);
            task_finish(t, REP_FAIL, msg.data);
        }
    } else if (WIFEXITED(e->status)) {
        /* 65 says retrying cannot help; 75 and every other code (an exception, a crash) are
           retried with backoff until the attempts are spent, as with every peer. */
        int code = WEXITSTATUS(e->status);
        if (*tail) buf_adds(&msg, tail);
        else buf_printf(&msg, "exit code %d", code);
        task_finish(t, code == EXIT_DATAERR ? REP_FAIL : REP_RETRY, msg.data);
    } else {
        /* Killed by a signal we did not send (OOM killer, operator): worth another try. */
        buf_printf(&msg, "killed by signal %d", WTERMSIG(e->status));
        if (*tail) buf_printf(&msg, "; stderr: %s", tail);
        task_finish(t, REP_RETRY, msg.data);
    }
    buf_free(&msg);
    free(tail);
}

/* Timeout (SIGTERM, then SIGKILL), cancellation, and the outcome once the child is gone. */
static void exec_step(task *t, int64_t now)
{
    exec_state *e = t->h;
    if (!e) return;
    if (t->cancel) {
        /* Lease lost or draining past the grace: stop the child, report per task_finish's rules. */
        pgroup_kill(e->pid);
        task_finish(t, REP_RELEASE, t->cancel == CANCEL_LOST ? "lease lost" : "worker shutting down");
        return;
    }
    if (!e->exited && !e->kill_at && now >= t->deadline) {
        log_info("task %lld attempt %d: timed out; sending SIGTERM to process group %d", (long long)t->id, t->attempt,
                 (int)e->pid);
        kill(-e->pid, SIGTERM);
        e->kill_at = now + W.cfg->kill_grace_ms;
    }
    if (!e->exited && e->kill_at && now >= e->kill_at && !e->term_sent) {
        kill(-e->pid, SIGKILL);
        e->term_sent = true;
    }
    /* Done when the child is gone and its pipes are drained (or a grandchild keeps them open too long). */
    if (e->exited && ((e->out_fd < 0 && e->err_fd < 0) || now >= e->exited_at + 200)) {
        if (e->out_fd >= 0) on_stdout(t, e->out_fd, POLLIN);
        if (e->err_fd >= 0) on_stderr(t, e->err_fd, POLLIN);
        exec_outcome(t, e);
        return;
    }
    if (e->in_fd >= 0) loop_watch(e->in_fd, POLLOUT, on_stdin, t);
    if (e->out_fd >= 0) loop_watch(e->out_fd, POLLIN, on_stdout, t);
    if (e->err_fd >= 0) loop_watch(e->err_fd, POLLIN, on_stderr, t);
    if (e->exited) loop_deadline(e->exited_at + 200);
    else loop_deadline(e->kill_at ? e->kill_at : t->deadline);
}

/* Closes pipes and kills what is left of the process group. */
static void exec_cleanup(task *t)
{
    exec_state *e = t->h;
    if (!e) return;
    close_fd(&e->in_fd);
    close_fd(&e->out_fd);
    close_fd(&e->err_fd);
    /* Leftovers of the group (background grandchildren) die with the task. */
    if (!t->cancel && e->pid > 0 && kill(-e->pid, 0) == 0) kill(-e->pid, SIGKILL);
    buf_free(&e->out);
    free(e);
    t->h = NULL;
}

const handler_ops exec_ops = {exec_start, exec_step, exec_cleanup};
