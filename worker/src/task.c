/* task.c — queues served, tasks in flight, their outcomes waiting to be reported, and the noop handler. */
#include "worker.h"
#include "json.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

worker_state W;

/* The runtime queue of that name, or NULL. */
queue_rt *queue_find(const char *name)
{
    for (queue_rt *q = W.queues; q; q = q->next)
        if (!strcmp(q->name, name)) return q;
    return NULL;
}

static void qc_release(queue_conf *d);

/* Points runtime queues at the current config; adds new ones. */
void queues_sync(void)
{
    for (queue_rt *q = W.queues; q; q = q->next) {
        q->qc = config_queue(W.cfg, q->name);
        /* New tasks get a copy of the new settings; running ones keep theirs. */
        if (q->snap) qc_release(q->snap);
        q->snap = NULL;
    }
    for (queue_conf *qc = W.cfg->queues; qc; qc = qc->next) {
        if (queue_find(qc->name)) continue;
        queue_rt *q = xcalloc(1, sizeof *q);
        q->name = xstrdup(qc->name);
        q->qc = qc;
        q->maybe_work = true;
        q->next = W.queues;
        W.queues = q;
        W.qcheck = true;
    }
}

/* Room left under the queue's own concurrency (0 for a removed queue). */
int free_slots(queue_rt *q)
{
    if (!q->qc || q->missing) return 0;
    int limit = q->qc->concurrency ? q->qc->concurrency : W.cfg->concurrency;
    return MAX(0, limit - q->inflight);
}

/* A deep copy of a queue section: a running task keeps the settings it started with. */
static queue_conf *qc_copy(const queue_conf *s)
{
    queue_conf *d = xcalloc(1, sizeof *d);
    *d = *s;
    d->name = xstrdup(s->name);
    d->command = s->command ? xstrdup(s->command) : NULL;
    d->url = s->url ? xstrdup(s->url) : NULL;
    d->statement = s->statement ? xstrdup(s->statement) : NULL;
    d->workdir = s->workdir ? xstrdup(s->workdir) : NULL;
    d->argv.v = NULL;
    d->argv.n = 0;
    d->headers.v = NULL;
    d->headers.n = 0;
    for (int i = 0; i < s->argv.n; i++) {
        d->argv.v = xrealloc(d->argv.v, sizeof(char *) * (size_t)(i + 2));
        d->argv.v[i] = xstrdup(s->argv.v[i]);
        d->argv.v[i + 1] = NULL;
        d->argv.n++;
    }
    for (int i = 0; i < s->headers.n; i++) {
        d->headers.v = xrealloc(d->headers.v, sizeof(char *) * (size_t)(i + 2));
        d->headers.v[i] = xstrdup(s->headers.v[i]);
        d->headers.v[i + 1] = NULL;
        d->headers.n++;
    }
    d->next = NULL;
    return d;
}

/* Frees a copy made by qc_copy. */
static void qc_free(queue_conf *d)
{
    free(d->name);
    free(d->command);
    free(d->url);
    free(d->statement);
    free(d->workdir);
    strlist_free(&d->argv);
    strlist_free(&d->headers);
    free(d);
}

/* Drops one holder of a copy; the last one frees it. */
static void qc_release(queue_conf *d)
{
    if (--d->refs == 0) qc_free(d);
}

static const handler_ops *ops_of(int h)
{
    switch (h) {
    case H_EXEC: return &exec_ops;
    case H_STREAM: return &stream_ops;
    case H_HTTP: return &http_ops;
    case H_SQL: return &sql_ops;
    default: return &noop_ops;
    }
}

/* Builds the task object and starts its handler. */
void task_start(queue_rt *q, int64_t id, int attempt, const char *payload, const char *run_id, const char *step,
                const char *correlation_id, int max_attempts, double lease_s, double timeout_s)
{
    task *t = xcalloc(1, sizeof *t);
    t->id = id;
    t->attempt = attempt;
    t->q = q;
    /* One copy per queue and config generation, shared: a copy per task cost
       more allocations than everything else a noop task does. */
    if (!q->snap) {
        q->snap = qc_copy(q->qc);
        q->snap->refs = 1;   /* the queue's own hold, dropped at the next reload */
    }
    t->qc = q->snap;
    t->qc->refs++;
    t->handler = t->qc->handler;
    /* Only the sql handler needs the payload apart from the task JSON: the
       others keep one copy of it per task (a large payload bounds memory). */
    t->payload = t->handler == H_SQL ? xstrdup(payload) : NULL;
    t->started = now_ms();
    /* A task's (or workflow step's) own timeout is its execution deadline; the
       lease is only the liveness backstop that heartbeats extend. */
    t->timeout_ms = timeout_s > 0 ? MAX((int64_t)(timeout_s * 1000), 1) : t->qc->timeout_ms;
    t->deadline = t->started + t->timeout_ms;
    t->lease_ms = lease_s > 0 ? (int64_t)(lease_s * 1000) : 60000;
    t->next_hb = t->started + task_hb_interval(t);

    buf b;
    buf_init(&b);
    size_t plen = strlen(payload);
    buf_grow(&b, plen + 160 + (step ? strlen(step) : 0));   /* one allocation for the usual task */
    /* No printf here: thousands of tasks start per batch. */
    buf_adds(&b, "{\"id\":");
    buf_add_int(&b, id);
    buf_adds(&b, ",\"queue\":");
    json_add_string(&b, q->name, strlen(q->name));
    buf_adds(&b, ",\"attempt\":");
    buf_add_int(&b, attempt);
    buf_adds(&b, ",\"max_attempts\":");
    buf_add_int(&b, max_attempts);
    buf_adds(&b, ",\"payload\":");
    buf_add(&b, payload, plen);
    buf_adds(&b, ",\"run_id\":");
    buf_adds(&b, run_id ? run_id : "null");
    buf_adds(&b, ",\"step\":");
    if (step) json_add_string(&b, step, strlen(step));
    else buf_adds(&b, "null");
    buf_adds(&b, ",\"correlation_id\":");
    if (correlation_id) json_add_string(&b, correlation_id, strlen(correlation_id));
    else buf_adds(&b, "null");
    buf_addc(&b, '}');
    t->json_len = b.len;
    t->json = buf_steal(&b);

    t->next = W.tasks;
    if (W.tasks) W.tasks->prev = t;
    W.tasks = t;
    W.inflight++;
    q->inflight++;
    q->claimed++;
    log_debug("task %lld attempt %d of queue %s started (%s)", (long long)id, attempt, q->name, handler_name(t->handler));
    ops_of(t->handler)->start(t);
    /* Handlers register their fds in their step, which may already have run
       this turn: make the next poll return at once so they are watched. */
    loop_deadline(0);
}

/* Queues an outcome for reporting (front: a batch that must be resent first). */
void report_push(report *r, bool front)
{
    report **head = &W.reports[r->kind];
    if (front) {
        r->next = *head;
        *head = r;
        if (!r->next) W.reports_tail[r->kind] = &r->next;
    } else {
        /* In O(1): a batch of thousands of completions used to walk its list once per task. */
        r->next = NULL;
        report **tail = *head ? W.reports_tail[r->kind] : head;
        *tail = r;
        W.reports_tail[r->kind] = &r->next;
    }
    W.nreports++;
}

/* Records the outcome of a task and frees its slot. */
void task_finish(task *t, int kind, const char *text)
{
    if (t->finished) return;
    t->finished = true;
    W.inflight--;
    t->q->inflight--;
    if (t->cancel == CANCEL_LOST) {
        log_info("task %lld attempt %d: lease lost or task cancelled; result dropped", (long long)t->id, t->attempt);
        return;
    }
    if (kind == REP_DONE) {
        t->q->succeeded++;
        log_debug("task %lld attempt %d succeeded (completed in its own transaction)", (long long)t->id, t->attempt);
        return;
    }
    if (t->cancel == CANCEL_RELEASE && kind != REP_OK) kind = REP_RELEASE;
    switch (kind) {
    case REP_OK: t->q->succeeded++; break;
    case REP_RETRY: t->q->retried++; break;
    case REP_FAIL: t->q->failed++; break;
    default: t->q->released++; break;
    }
    static const char *kn[] = {"succeeded", "failed (will retry)", "failed", "released"};
    if (kind == REP_OK) log_debug("task %lld attempt %d %s", (long long)t->id, t->attempt, kn[kind]);
    else log_info("task %lld attempt %d %s: %.300s", (long long)t->id, t->attempt, kn[kind], text ? text : "");
    report *r = xcalloc(1, sizeof *r);
    r->id = t->id;
    r->attempt = t->attempt;
    r->kind = kind;
    r->text = text ? text_sanitize(text, strlen(text)) : NULL;
    report_push(r, false);
}

/* Heartbeat at a third of the lease: two chances before it runs out.  Without
   LISTEN the heartbeat is also how a cancellation reaches the worker (a
   cancelled task's heartbeat returns false): then at least every poll_interval
   (pooled mode without listen_dsn: every pooled_poll_interval). */
int64_t task_hb_interval(const task *t)
{
    int64_t i = MAX(t->lease_ms / 3, 50);
    if (!db_listening()) i = MIN(i, MAX(db_poll_every(), 50));
    return i;
}

/* A NOTIFY baton_cancel named this task: whichever attempt runs here stops, its outcome is dropped. */
void task_cancelled(int64_t id)
{
    for (task *t = W.tasks; t; t = t->next) {
        if (t->id != id || t->finished || t->cancel == CANCEL_LOST) continue;
        log_info("task %lld attempt %d: cancelled; stopping it", (long long)t->id, t->attempt);
        t->cancel = CANCEL_LOST;
        /* Its handler acts in the next turn of the loop, at once. */
        loop_deadline(0);
    }
}

/* The live task with this lease token, or NULL. */
task *task_find(int64_t id, int attempt)
{
    for (task *t = W.tasks; t; t = t->next)
        if (t->id == id && t->attempt == attempt && !t->finished) return t;
    return NULL;
}

/* Gives every live task's handler its turn. */
void tasks_step(int64_t now)
{
    for (task *t = W.tasks; t; t = t->next)
        if (!t->finished) ops_of(t->handler)->step(t, now);
}

/* Frees finished tasks (never inside callbacks, so no watch sees freed state). */
void tasks_reap(void)
{
    task *t = W.tasks;
    while (t) {
        task *n = t->next;
        if (t->finished) {
            ops_of(t->handler)->cleanup(t);
            if (t->prev) t->prev->next = t->next;
            else W.tasks = t->next;
            if (t->next) t->next->prev = t->prev;
            free(t->json);
            free(t->payload);
            qc_release(t->qc);
            free(t);
        }
        t = n;
    }
}

/* noop: succeeds at once with a NULL result (benchmarks, plumbing tests). */
static void noop_start(task *t)
{
    task_finish(t, REP_OK, NULL);
}

/* Nothing to do. */
static void noop_step(task *t, int64_t now)
{
    (void)t;
    (void)now;
}

/* Nothing to free. */
static void noop_cleanup(task *t)
{
    (void)t;
}

const handler_ops noop_ops = {noop_start, noop_step, noop_cleanup};
