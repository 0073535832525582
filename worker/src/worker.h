/* worker.h — the runtime state of baton-worker: queues, tasks in flight, reports, and module entry points. */
#ifndef BATON_WORKER_H
#define BATON_WORKER_H

#include "common.h"
#include "config.h"

#include <poll.h>
#include <sys/types.h>

/* ---- event loop (loop.c) ---- */
typedef void (*watch_cb)(void *arg, int fd, short revents);
/* Registers interest in fd for this iteration only (watches are collected anew each turn). */
void loop_watch(int fd, short events, watch_cb cb, void *arg);
/* Asks the loop to wake up no later than at (monotonic ms). */
void loop_deadline(int64_t at);
/* Runs one poll(2) over the collected watches and dispatches the callbacks. */
void loop_run_once(void);

/* ---- queues and tasks (task.c) ---- */
typedef struct queue_rt {
    char       *name;
    queue_conf *qc;          /* NULL once the queue left the config (reload) */
    int         inflight;
    bool        maybe_work;  /* a wake-up or poll says there may be due tasks */
    unsigned    wake_gen;    /* bumped by each wake-up, so a claim in flight cannot hide one */
    void       *hstream;     /* stream handler: the co-processes of this queue */
    queue_conf *snap;        /* the settings new tasks start with: a copy of qc they share */
    void       *hsql;        /* sql handler: the connections of this queue */
    bool        missing;     /* the database has no such queue (yet): not claimed, looked for again */
    bool        checked;     /* the queue check has seen it since it was added */
    double      rate_limit;  /* the queue's rate limit in the database (0 = none), per rate_period_ms */
    int64_t     rate_period_ms;
    int64_t     rate_active_until; /* a rate-limited queue with work: claim when the next token is due */
    int64_t     rate_retry_at;
    uint64_t    claimed, succeeded, failed, retried, released;
    struct queue_rt *next;
} queue_rt;

enum cancel_kind { CANCEL_NONE, CANCEL_LOST, CANCEL_RELEASE };
/* REP_DONE: already settled in the database (sql handler), nothing to report. */
enum report_kind { REP_OK, REP_RETRY, REP_FAIL, REP_RELEASE, REP_NKINDS, REP_DONE };

typedef struct task {
    int64_t   id;
    int       attempt;
    queue_rt *q;
    int       handler;       /* snapshot: a reload does not change a running task */
    queue_conf *qc;          /* the settings it started with (a shared, counted copy) */
    char     *json;          /* the task object handed to handlers */
    size_t    json_len;
    char     *payload;       /* raw jsonb text: kept for the sql handler only (memory: one copy per task) */
    int64_t   started, deadline, lease_ms, next_hb;
    int64_t   timeout_ms;    /* execution deadline: the task's own timeout, else the queue's in the config */
    int       cancel;        /* enum cancel_kind: set by heartbeats or drain, acted on by the handler */
    bool      finished;
    void     *h;             /* handler state */
    struct task *next, *prev;
} task;

typedef struct report {
    int64_t  id;
    int      attempt;
    int      kind;           /* enum report_kind */
    char    *text;           /* result JSON (REP_OK, NULL = SQL NULL) or error text */
    bool     solo;           /* send alone: a batch with it failed */
    struct report *next;
} report;

typedef struct handler_ops {
    void (*start)(task *t);                /* begin the work; may finish at once */
    void (*step)(task *t, int64_t now);    /* timers, watches, cancellation */
    void (*cleanup)(task *t);              /* free handler state of a finished task */
} handler_ops;

typedef struct worker_state {
    config   *cfg;
    char     *worker_id;
    char     *host;
    const char *dsn;          /* --dsn or [worker] dsn */
    queue_rt *queues;
    task     *tasks;
    int       inflight;
    report   *reports[REP_NKINDS];   /* pending reports by kind (FIFO) */
    report  **reports_tail[REP_NKINDS]; /* the last one's next field; NULL while a list is empty */
    int       nreports;
    bool      draining;
    bool      fast;
    int64_t   drain_deadline;
    bool      db_done;        /* unregistered (or gave up): the process may exit */
    int       exit_code;
    bool      exiting;
    bool      reregister;     /* the queue list changed: register_worker again */
    bool      qcheck;         /* look up the served queues in the database (existence, rate limit) */
} worker_state;

extern worker_state W;

queue_rt *queue_find(const char *name);
/* Syncs the runtime queue list with W.cfg (after start and reload). */
void queues_sync(void);
/* Creates and starts a task from a claimed row; the handler begins at once. */
void task_start(queue_rt *q, int64_t id, int attempt, const char *payload, const char *run_id, const char *step,
                const char *correlation_id, int max_attempts, double lease_s, double timeout_s);
/* Ends a task with an outcome: queues a report (unless its lease was lost) and frees its slot.
 * text is copied. Safe to call from any callback; freeing happens in tasks_reap. */
void task_finish(task *t, int kind, const char *text);
task *task_find(int64_t id, int attempt);
/* Stops a task cancelled from outside (NOTIFY baton_cancel): its handler acts on t->cancel. */
void task_cancelled(int64_t id);
/* How often a running task's lease is extended (and, without LISTEN, its cancellation looked for). */
int64_t task_hb_interval(const task *t);
void tasks_step(int64_t now);
void tasks_reap(void);
void report_push(report *r, bool front);
int  free_slots(queue_rt *q);

/* ---- handlers ---- */
extern const handler_ops exec_ops, noop_ops, sql_ops, stream_ops, http_ops;
void exec_child_exited(pid_t pid, int status);
void pgroup_kill(pid_t pgid);             /* SIGTERM now, SIGKILL after kill_grace */
void pgroups_step(int64_t now);
void pgroups_kill_all(void);
void exec_kill_all(void);                 /* SIGKILL to every exec child's process group */
/* In a forked child: run the queue's command (exec.c); parent is the worker's pid (dies with it). */
_Noreturn void child_exec(const queue_conf *qc, pid_t parent);
bool stream_child_exited(pid_t pid, int status);
void stream_queue_step(queue_rt *q, int64_t now);
void stream_queue_free(queue_rt *q);
void sql_queue_step(queue_rt *q, int64_t now);
void sql_queue_free(queue_rt *q);
int  http_init(void);
void http_step(int64_t now);
void http_shutdown(void);

/* ---- time-driven work on a session of its own (tick.c) ---- */
void tick_step(int64_t now);
void tick_close(void);

/* ---- database (db.c) ---- */
void db_step(int64_t now);
bool db_connected(void);
/* Blocking check used by --version: prints the extension version; returns an exit code. */
int  db_check_version_blocking(const char *dsn, bool print);
/* --check-config: names each queue of cfg missing from a reachable database; 0 or 2. */
int  db_check_queues_blocking(const char *dsn, const config *cfg);
/* Logs where a conninfo points (host, port, dbname; never the password). */
void db_describe(const char *dsn, char *out, size_t n);
/* A NOTIFY on baton_tasks named queue: its tasks may be due (db.c, listen.c). */
void db_wake(const char *queue);
/* A notification on the main session or listen_dsn's: baton_tasks wakes a queue, baton_cancel stops tasks. */
void db_notify(const char *channel, const char *payload);
/* True while LISTEN delivers wake-ups and cancellations (main session not pooled, or listen_dsn up). */
bool db_listening(void);
/* How often to claim without a wake-up, and (without LISTEN) to look for cancellations by heartbeat. */
int64_t db_poll_every(void);

/* ---- the listen_dsn connection (listen.c) ---- */
void listen_step(int64_t now);
/* True while the listen_dsn session LISTENs: wake-ups arrive, no need to poll fast. */
bool listen_ready(void);
void listen_close(void);

/* Stops the process now: kills children and exits with code (fatal errors). */
void worker_die(int code) __attribute__((noreturn));
/* The exit code used when the extension version does not match. */
#define EXIT_VERSION 3

/* ---- access (access.c) ---- */
/* The exit code when the worker's role lacks "work" on a configured queue (as for a bad config). */
#define EXIT_ACCESS 2
/* Asks the database whether the role may work on every queue of c; prints why not.
 * Returns 0 (also when the database is unreachable) or EXIT_ACCESS. */
int  access_check_blocking(const char *dsn, const config *c);

/* ---- metrics (metrics.c) ---- */
int  metrics_start(const char *listen_addr);
void metrics_step(int64_t now);

#endif
