/* cli_read.c — the read commands of `baton`: status, tasks, task, runs, run, events, subscriptions, schedules, workflows, trace. */
#include "console.h"
#include "queries.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const TASK_STATES[] = {"pending", "running", "succeeded", "failed", "cancelled", NULL};
static const char *const RUN_STATES[] = {"running", "succeeded", "failed", "cancelled", NULL};

static void check_state(const char *cmd, const char *state, const char *const *allowed)
{
    if (!state) return;
    for (const char *const *a = allowed; *a; a++)
        if (!strcmp(*a, state)) return;
    Buf b = {0};
    for (const char *const *a = allowed; *a; a++) buf_printf(&b, "%s%s", a == allowed ? "" : ", ", *a);
    die(EXIT_USAGE, "%s: unknown state \"%s\" (one of %s)", cmd, state, b.s);
}

static const char *limit_arg(const char *cmd, const char *s)
{
    int v;
    if (s && !parse_positive_int(s, &v)) die(EXIT_USAGE, "%s: --limit must be a positive integer, not \"%s\"", cmd, s);
    return s ? s : "50";
}

/* Exits 1 with one line when a queue does not exist (so a typo is not an empty list). */
void check_queue(PGconn *c, const char *cmd, const char *queue)
{
    if (!queue) return;
    const char *p[] = {queue};
    PGresult *r = db_query_or_die(c, SQL_QUEUE_EXISTS, 1, p);
    int n = PQntuples(r);
    PQclear(r);
    if (n == 0) {
        PQfinish(c);
        die(EXIT_FAILED, "%s: queue \"%s\" does not exist", cmd, queue);
    }
}

/* Runs a list query and prints it as a table (human columns) or JSON. */
static void list(PGconn *c, const char *sql, int n, const char *const *params, const char *const *cols)
{
    if (O.json) {
        out_json_rows(c, sql, n, params);
        return;
    }
    PGresult *r = db_query_or_die(c, sql, n, params);
    out_table(r, cols);
    PQclear(r);
}

static volatile sig_atomic_t stop_watch;
static void on_sigint(int sig)
{
    (void)sig;
    stop_watch = 1;
}

/* "true"/"false", or NULL when the role may not ask (the answer is then unknown). */
static const char *scheduler_state(PGconn *c)
{
    PGresult *r = db_query(c, SQL_SCHEDULER, 0, NULL);
    const char *res = NULL;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
        res = *PQgetvalue(r, 0, 0) == 't' ? "true" : "false";
    PQclear(r);
    return res;
}

static void status_once(PGconn *c)
{
    const char *sched = scheduler_state(c);
    if (O.json) {
        const char *p[] = {sched};
        out_json(c, "SELECT pg_catalog.jsonb_build_object("
                         "'queues', (SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(q)), '[]') FROM (" SQL_QUEUES ") AS q),"
                         "'workers', (SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(w)), '[]') FROM (" SQL_WORKERS ") AS w),"
                         "'scheduler_running', $1::boolean)", 1, p, true);
        return;
    }
    static const char *const qcols[] = {"queue", "paused", "pending", "running", "failed", "oldest_pending",
                                        "done_last_minute", "limits", NULL};
    static const char *const wcols[] = {"worker", "host", "pid", "queues", "running", "seen_ago", NULL};
    PGresult *r = db_query_or_die(c, SQL_QUEUES, 0, NULL);
    printf("Queues\n");
    out_table(r, qcols);
    PQclear(r);
    r = db_query_or_die(c, SQL_WORKERS, 0, NULL);
    printf("\nWorkers (alive)\n");
    out_table(r, wcols);
    PQclear(r);
    printf("\nScheduler: %s\n", !sched ? "unknown (this role may not ask baton.scheduler_running())"
                                : !strcmp(sched, "true") ? "running (background worker)"
                                                         : "not running (worker daemons tick)");
}

int cmd_status(int argc, char **argv)
{
    bool watch = false;
    Flag f[] = {{"watch", false, NULL, &watch}, {0}};
    char *pos[1];
    parse_flags("status", argc, argv, f, pos, 0);
    PGconn *c = db_connect_or_die();
    if (!watch) {
        status_once(c);
        PQfinish(c);
        return EXIT_OK;
    }
    signal(SIGINT, on_sigint);
    signal(SIGTERM, on_sigint);
    while (!stop_watch) {
        if (!O.json) printf("\033[H\033[2J");
        status_once(c);
        fflush(stdout);
        for (int i = 0; i < 10 && !stop_watch; i++) usleep(100000);
    }
    PQfinish(c);
    return EXIT_OK;
}

int cmd_tasks(int argc, char **argv)
{
    const char *queue = NULL, *state = NULL, *limit = NULL, *search = NULL;
    Flag f[] = {{"queue", true, &queue, NULL}, {"state", true, &state, NULL}, {"limit", true, &limit, NULL},
                {"search", true, &search, NULL}, {0}};
    char *pos[1];
    parse_flags("tasks", argc, argv, f, pos, 0);
    check_state("tasks", state, TASK_STATES);
    limit = limit_arg("tasks", limit);
    PGconn *c = db_connect_or_die();
    check_queue(c, "tasks", queue);
    const char *p[] = {queue, state, search, limit};
    static const char *const cols[] = {"id", "queue", "state", "attempts", "created", "run_id", "step", "error", NULL};
    list(c, SQL_TASKS, 4, p, cols);
    PQfinish(c);
    return EXIT_OK;
}

static void need_id(const char *cmd, int n, char **pos, const char *what)
{
    if (n != 1) die(EXIT_USAGE, "%s: needs one %s id (baton %s ID)", cmd, what, cmd);
    if (!parse_id(pos[0], NULL)) die(EXIT_USAGE, "%s: \"%s\" is not a %s id (a positive integer)", cmd, pos[0], what);
}

/* Prints every non-null column of row 0 as "key: value". */
static void print_record(const PGresult *r, const char *const *skip)
{
    for (int j = 0; j < PQnfields(r); j++) {
        const char *name = PQfname(r, j);
        bool skipped = false;
        for (const char *const *s = skip; s && *s; s++)
            if (!strcmp(*s, name)) skipped = true;
        if (skipped || PQgetisnull(r, 0, j)) continue;
        const char *v = PQgetvalue(r, 0, j);
        if (!strcmp(name, "state") && O.color) {
            printf("%s%-15s%s %s%s\033[0m\n", "\033[1m", name, "\033[0m", state_color(v), v);
        } else if (strchr(v, '\n')) {
            out_kv(name, "");
            printf("  ");
            for (const char *p = v; *p; p++) {
                putchar(*p);
                if (*p == '\n') printf("  ");
            }
            putchar('\n');
        } else {
            out_kv(name, v);
        }
    }
}

int cmd_task(int argc, char **argv)
{
    char *pos[1];
    int n = parse_flags("task", argc, argv, NULL, pos, 1);
    need_id("task", n, pos, "task");
    PGconn *c = db_connect_or_die();
    const char *p[] = {pos[0]};
    if (O.json) {
        PGresult *fail = NULL;
        char *j = db_json(c, SQL_TASK, 1, p, true, true, &fail);
        if (!j) {
            char line[1024];
            int code = db_error_exit(fail);
            db_error_line(c, fail, line, sizeof line);
            PQclear(fail);
            PQfinish(c);
            die(code, "task: %s", line);
        }
        bool missing = !strcmp(j, "null");
        if (!missing) puts(j);
        free(j);
        PQfinish(c);
        if (missing) die(EXIT_FAILED, "task: task %s does not exist", pos[0]);
        return EXIT_OK;
    }
    PGresult *r = db_query_or_die(c,
        "SELECT t.id, t.queue, t.state, t.attempt || ' of ' || t.max_attempts AS attempt, t.priority,"
        " t.created_at, t.run_at, t.started_at, t.finished_at, t.lease_expires_at, t.worker, t.dedup_key,"
        " t.run_id, t.step, t.map_index, t.subscription_id, t.event_id, t.correlation_id,"
        " pg_catalog.jsonb_pretty(t.payload) AS payload, pg_catalog.jsonb_pretty(t.result) AS result, t.error,"
        " baton.explain_task(t.id) AS why"
        " FROM baton.tasks AS t WHERE t.id = $1::bigint", 1, p);
    if (PQntuples(r) == 0) {
        PQclear(r);
        PQfinish(c);
        die(EXIT_FAILED, "task: task %s does not exist", pos[0]);
    }
    print_record(r, NULL);
    PQclear(r);
    PQfinish(c);
    return EXIT_OK;
}

int cmd_runs(int argc, char **argv)
{
    const char *wf = NULL, *state = NULL, *limit = NULL;
    Flag f[] = {{"workflow", true, &wf, NULL}, {"state", true, &state, NULL}, {"limit", true, &limit, NULL}, {0}};
    char *pos[1];
    parse_flags("runs", argc, argv, f, pos, 0);
    check_state("runs", state, RUN_STATES);
    limit = limit_arg("runs", limit);
    PGconn *c = db_connect_or_die();
    const char *p[] = {wf, state, limit};
    static const char *const cols[] = {"id", "workflow", "version", "state", "progress", "created", "duration",
                                       "error", NULL};
    list(c, SQL_RUNS, 3, p, cols);
    PQfinish(c);
    return EXIT_OK;
}

int cmd_run(int argc, char **argv)
{
    char *pos[1];
    int n = parse_flags("run", argc, argv, NULL, pos, 1);
    need_id("run", n, pos, "run");
    PGconn *c = db_connect_or_die();
    const char *p[] = {pos[0]};
    if (O.json) {
        PGresult *fail = NULL;
        char *j = db_json(c, SQL_RUN, 1, p, true, true, &fail);
        if (!j) {
            char line[1024];
            int code = db_error_exit(fail);
            db_error_line(c, fail, line, sizeof line);
            PQclear(fail);
            PQfinish(c);
            die(code, "run: %s", line);
        }
        bool missing = !strcmp(j, "null");
        if (!missing) puts(j);
        free(j);
        PQfinish(c);
        if (missing) die(EXIT_FAILED, "run: run %s does not exist", pos[0]);
        return EXIT_OK;
    }
    PGresult *r = db_query_or_die(c,
        "SELECT r.id, r.workflow, r.version, r.state, " SQL_RUN_PROGRESS("r.id") " AS progress,"
        " r.created_at, r.finished_at,"
        " pg_catalog.date_trunc('millisecond', COALESCE(r.finished_at, pg_catalog.now()) - r.created_at)::text AS duration,"
        " r.correlation_id, r.compensation, r.parent_run_id, r.cause_event_id,"
        " pg_catalog.jsonb_pretty(r.input) AS input, pg_catalog.jsonb_pretty(r.output) AS output, r.error"
        " FROM baton.runs AS r WHERE r.id = $1::bigint", 1, p);
    if (PQntuples(r) == 0) {
        PQclear(r);
        PQfinish(c);
        die(EXIT_FAILED, "run: run %s does not exist", pos[0]);
    }
    print_record(r, NULL);
    PQclear(r);
    static const char *const cols[] = {"step", "kind", "state", "attempt", "duration", "map", "task_id",
                                       "child_run_id", "error", NULL};
    printf("\nSteps\n");
    r = db_query_or_die(c, SQL_RUN_STEPS, 1, p);
    out_table(r, cols);
    PQclear(r);
    r = db_query_or_die(c, "SELECT baton.graph($1::bigint)", 1, p);
    printf("\nGraph (Mermaid; baton web draws it)\n%s\n", PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(c);
    return EXIT_OK;
}

int cmd_events(int argc, char **argv)
{
    const char *topic = NULL, *limit = NULL;
    Flag f[] = {{"topic", true, &topic, NULL}, {"limit", true, &limit, NULL}, {0}};
    char *pos[1];
    parse_flags("events", argc, argv, f, pos, 0);
    limit = limit_arg("events", limit);
    PGconn *c = db_connect_or_die();
    const char *p[] = {topic, limit};
    static const char *const cols[] = {"id", "topic", "key", "published", "correlation_id", "payload", NULL};
    list(c, SQL_EVENTS, 2, p, cols);
    PQfinish(c);
    return EXIT_OK;
}

int cmd_subscriptions(int argc, char **argv)
{
    char *pos[1];
    parse_flags("subscriptions", argc, argv, NULL, pos, 0);
    PGconn *c = db_connect_or_die();
    if (O.json) {
        out_json(c, "SELECT pg_catalog.jsonb_build_object("
                         "'subscriptions', (SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(s)), '[]') FROM (" SQL_SUBSCRIPTIONS ") AS s),"
                         "'dead_letters', (SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(d)), '[]') FROM (" SQL_DEAD_LETTERS ") AS d))"
                         , 0, NULL, true);
        PQfinish(c);
        return EXIT_OK;
    }
    static const char *const cols[] = {"name", "topic", "target_kind", "target", "paused", "delivered", "live",
                                       "succeeded", "failed", NULL};
    PGresult *r = db_query_or_die(c, SQL_SUBSCRIPTIONS, 0, NULL);
    out_table(r, cols);
    PQclear(r);
    r = db_query_or_die(c, SQL_DEAD_LETTERS, 0, NULL);
    if (PQntuples(r) > 0) {
        static const char *const dcols[] = {"subscription", "task_id", "event_id", "topic", "key", "attempts",
                                            "error", NULL};
        printf("\nDead letters (baton retry ID, or baton.retry_dead_letters(subscription))\n");
        out_table(r, dcols);
    }
    PQclear(r);
    PQfinish(c);
    return EXIT_OK;
}

int cmd_schedules(int argc, char **argv)
{
    char *pos[1];
    parse_flags("schedules", argc, argv, NULL, pos, 0);
    PGconn *c = db_connect_or_die();
    static const char *const cols[] = {"name", "cron", "target_kind", "target", "next_fire", "fire_count",
                                       "last_error", NULL};
    list(c, SQL_SCHEDULES, 0, NULL, cols);
    PQfinish(c);
    return EXIT_OK;
}

int cmd_workflows(int argc, char **argv)
{
    char *pos[1];
    parse_flags("workflows", argc, argv, NULL, pos, 0);
    PGconn *c = db_connect_or_die();
    static const char *const cols[] = {"name", "version", "steps", "created", "runs", NULL};
    list(c, SQL_WORKFLOWS, 0, NULL, cols);
    PQfinish(c);
    return EXIT_OK;
}

/* Prints the rows whose parent is `parent` (NULL: roots), depth-first. */
static void trace_tree(const PGresult *r, const char *parent, int depth, char *done)
{
    int node = PQfnumber(r, "node"), par = PQfnumber(r, "parent"), kind = PQfnumber(r, "kind"),
        id = PQfnumber(r, "id"), name = PQfnumber(r, "name"), state = PQfnumber(r, "state"), at = PQfnumber(r, "at");
    int rows = PQntuples(r);
    for (int i = 0; i < rows; i++) {
        if (done[i]) continue;
        const char *p = PQgetisnull(r, i, par) ? NULL : PQgetvalue(r, i, par);
        bool known = false;
        if (p)
            for (int k = 0; k < rows; k++)
                if (k != i && !strcmp(PQgetvalue(r, k, node), p)) known = true;
        bool mine = parent ? (p && !strcmp(p, parent)) : !known;
        if (!mine) continue;
        done[i] = 1;
        const char *st = PQgetisnull(r, i, state) ? NULL : PQgetvalue(r, i, state);
        printf("%*s%s%s %s: %s", depth * 2, "", depth ? "└ " : "", PQgetvalue(r, i, kind), PQgetvalue(r, i, id),
               PQgetvalue(r, i, name));
        if (st) printf(" %s(%s)%s", state_color(st), st, *state_color(st) ? "\033[0m" : "");
        printf("  %s\n", PQgetvalue(r, i, at));
        trace_tree(r, PQgetvalue(r, i, node), depth + 1, done);
    }
}

int cmd_trace(int argc, char **argv)
{
    const char *task = NULL, *run = NULL, *event = NULL;
    Flag f[] = {{"task", true, &task, NULL}, {"run", true, &run, NULL}, {"event", true, &event, NULL}, {0}};
    char *pos[1];
    int n = parse_flags("trace", argc, argv, f, pos, 1);
    int given = n + !!task + !!run + !!event;
    if (given != 1) die(EXIT_USAGE, "trace: needs one of CORRELATION, --task ID, --run ID, --event ID");
    const char *from = task ? task : run ? run : event;
    if (from && !parse_id(from, NULL)) die(EXIT_USAGE, "trace: \"%s\" is not an id (a positive integer)", from);
    PGconn *c = db_connect_or_die();
    char *corr = NULL;
    if (from) {
        const char *p[] = {from};
        PGresult *r = db_query_or_die(c, task ? SQL_CORR_TASK : run ? SQL_CORR_RUN : SQL_CORR_EVENT, 1, p);
        if (PQntuples(r) == 0 || PQgetisnull(r, 0, 0)) {
            PQclear(r);
            PQfinish(c);
            die(EXIT_FAILED, "trace: %s %s does not exist", task ? "task" : run ? "run" : "event", from);
        }
        corr = xstrdup(PQgetvalue(r, 0, 0));
        PQclear(r);
    } else {
        corr = xstrdup(pos[0]);
    }
    const char *p[] = {corr};
    PGresult *r = db_query_or_die(c, SQL_TRACE, 1, p);
    if (PQntuples(r) == 0) {
        PQclear(r);
        PQfinish(c);
        die(EXIT_FAILED, "trace: nothing has correlation id %s", corr);
    }
    if (O.json) {
        PQclear(r);
        out_json_rows(c, SQL_TRACE, 1, p);
    } else {
        printf("correlation %s\n", corr);
        char *done = calloc((size_t)PQntuples(r), 1);
        if (!done) die(EXIT_FAILED, "out of memory");
        trace_tree(r, NULL, 0, done);
        free(done);
        PQclear(r);
    }
    free(corr);
    PQfinish(c);
    return EXIT_OK;
}
