/* api.c — the dashboard's JSON endpoints: each one a parameterised query over the extension's views and functions. */
#include "console.h"
#include "queries.h"
#include "web.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void set(Resp *out, int status, const char *mime, char *body)
{
    out->status = status;
    out->mime = mime;
    out->body = body;
}

static void error(Resp *out, int status, const char *msg)
{
    Buf b = {0};
    buf_puts(&b, "{\"error\": ");
    buf_json_str(&b, msg);
    buf_puts(&b, "}");
    set(out, status, "application/json", b.s);
}

/* HTTP status of a failed statement: bad input 400, missing 404, refused 403. */
static int status_of(const PGresult *r)
{
    const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (!st) return 503;
    if (!strncmp(st, SQLSTATE_DATA_EXCEPTION_CLASS, 2)) return 400;
    if (!strcmp(st, SQLSTATE_NO_DATA_FOUND) || !strcmp(st, SQLSTATE_UNDEFINED_OBJECT)) return 404;
    if (!strcmp(st, SQLSTATE_INSUFFICIENT_PRIVILEGE)) return 403;
    if (!strncmp(st, "22", 2) || !strncmp(st, "23", 2)) return 400;
    return 500;
}

static void json(PGconn *c, Resp *out, const char *sql, int n, const char *const *p, bool object)
{
    PGresult *fail = NULL;
    char *j = db_json(c, sql, n, p, false, object, &fail);
    if (!j) {
        char line[1024];
        db_error_line(c, fail, line, sizeof line);
        int st = status_of(fail);
        PQclear(fail);
        error(out, st, line);
        return;
    }
    if (object && !strcmp(j, "null")) {
        free(j);
        error(out, 404, "not found");
        return;
    }
    set(out, 200, "application/json", j);
}

static bool one_of(const char *s, const char *const *allowed)
{
    if (!s) return true;
    for (; *allowed; allowed++)
        if (!strcmp(s, *allowed)) return true;
    return false;
}

static const char *empty_null(const char *s)
{
    return s && *s ? s : NULL;
}

static const char *limit_of(ArgFn arg, void *ctx)
{
    const char *l = empty_null(arg(ctx, "limit"));
    int v;
    return l && parse_positive_int(l, &v) ? l : "100";
}

static const char *const TASK_STATES[] = {"pending", "running", "succeeded", "failed", "cancelled", NULL};
static const char *const RUN_STATES[] = {"running", "succeeded", "failed", "cancelled", NULL};

/* The correlation id of ?correlation=, or of ?task=/?run=/?event=; NULL with out set when none. */
static char *correlation_of(PGconn *c, ArgFn arg, void *ctx, Resp *out)
{
    const char *corr = empty_null(arg(ctx, "correlation"));
    if (corr) return xstrdup(corr);
    static const struct {
        const char *arg, *sql;
    } FROM[] = {{"task", SQL_CORR_TASK}, {"run", SQL_CORR_RUN}, {"event", SQL_CORR_EVENT}};
    for (size_t i = 0; i < 3; i++) {
        const char *id = empty_null(arg(ctx, FROM[i].arg));
        if (!id) continue;
        if (!parse_id(id, NULL)) {
            error(out, 400, "an id must be a positive integer");
            return NULL;
        }
        const char *p[] = {id};
        PGresult *r = db_query(c, FROM[i].sql, 1, p);
        char *res = NULL;
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
            res = xstrdup(PQgetvalue(r, 0, 0));
        else
            error(out, 404, "no such object");
        PQclear(r);
        return res;
    }
    error(out, 400, "give correlation, task, run or event");
    return NULL;
}

static bool need_id(ArgFn arg, void *ctx, const char *name, Resp *out, const char **id)
{
    *id = arg(ctx, name);
    if (!*id || !parse_id(*id, NULL)) {
        error(out, 400, "the id must be a positive integer");
        return false;
    }
    return true;
}

void api_get(PGconn *c, const char *path, ArgFn arg, void *ctx, const char *csrf, Resp *out)
{
    const char *id;
    if (!strcmp(path, "/api/session")) {
        const char *p[] = {csrf, BATON_VERSION};
        json(c, out, "SELECT pg_catalog.jsonb_build_object('csrf', $1::text, 'version', $2::text,"
                     " 'user', current_user, 'database', pg_catalog.current_database(),"
                     " 'extension', (SELECT e.extversion FROM pg_catalog.pg_extension AS e WHERE e.extname = 'baton'))",
             2, p, true);
    } else if (!strcmp(path, "/api/overview")) {
        PGresult *r = db_query(c, SQL_SCHEDULER, 0, NULL);
        const char *sched = NULL;
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
            sched = *PQgetvalue(r, 0, 0) == 't' ? "true" : "false";
        PQclear(r);
        const char *p[] = {sched};
        json(c, out, "SELECT pg_catalog.jsonb_build_object("
                     "'queues', (SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(q) || pg_catalog.jsonb_build_object("
                     "   'spark', (SELECT k.spark FROM (" SQL_SPARK ") AS k WHERE k.queue = q.queue))), '[]') FROM (" SQL_QUEUES ") AS q),"
                     "'workers', (SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(w)), '[]') FROM (" SQL_WORKERS ") AS w),"
                     "'runs_running', (SELECT pg_catalog.count(*) FROM baton.runs AS r WHERE r.state = 'running'),"
                     "'scheduler_running', $1::boolean)",
             1, p, true);
    } else if (!strcmp(path, "/api/tasks")) {
        const char *state = empty_null(arg(ctx, "state"));
        if (!one_of(state, TASK_STATES)) return error(out, 400, "unknown task state");
        const char *p[] = {empty_null(arg(ctx, "queue")), state, empty_null(arg(ctx, "q")), limit_of(arg, ctx)};
        json(c, out, SQL_TASKS, 4, p, false);
    } else if (!strcmp(path, "/api/task")) {
        if (!need_id(arg, ctx, "id", out, &id)) return;
        const char *p[] = {id};
        json(c, out, SQL_TASK, 1, p, true);
    } else if (!strcmp(path, "/api/runs")) {
        const char *state = empty_null(arg(ctx, "state"));
        if (!one_of(state, RUN_STATES)) return error(out, 400, "unknown run state");
        const char *p[] = {empty_null(arg(ctx, "workflow")), state, limit_of(arg, ctx)};
        json(c, out, SQL_RUNS, 3, p, false);
    } else if (!strcmp(path, "/api/run")) {
        if (!need_id(arg, ctx, "id", out, &id)) return;
        const char *p[] = {id};
        json(c, out, SQL_RUN, 1, p, true);
    } else if (!strcmp(path, "/api/run.svg")) {
        if (!need_id(arg, ctx, "id", out, &id)) return;
        char err[512];
        char *svg = graph_run_svg(c, id, err, sizeof err);
        if (!svg) return error(out, 404, err);
        set(out, 200, "image/svg+xml", svg);
    } else if (!strcmp(path, "/api/events")) {
        const char *p[] = {empty_null(arg(ctx, "topic")), limit_of(arg, ctx)};
        json(c, out, SQL_EVENTS, 2, p, false);
    } else if (!strcmp(path, "/api/subscriptions")) {
        json(c, out, "SELECT pg_catalog.jsonb_build_object("
                     "'subscriptions', (SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(s)), '[]') FROM (" SQL_SUBSCRIPTIONS ") AS s),"
                     "'dead_letters', (SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(d)), '[]') FROM (" SQL_DEAD_LETTERS ") AS d))",
             0, NULL, true);
    } else if (!strcmp(path, "/api/schedules")) {
        json(c, out, SQL_SCHEDULES, 0, NULL, false);
    } else if (!strcmp(path, "/api/workflows")) {
        json(c, out, SQL_WORKFLOWS, 0, NULL, false);
    } else if (!strcmp(path, "/api/trace")) {
        char *corr = correlation_of(c, arg, ctx, out);
        if (!corr) return;
        const char *p[] = {corr};
        json(c, out, "SELECT pg_catalog.jsonb_build_object('correlation', $1::uuid, 'rows',"
                     " (SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(x)), '[]') FROM (" SQL_TRACE ") AS x))",
             1, p, true);
        free(corr);
    } else if (!strcmp(path, "/api/trace.svg")) {
        char *corr = correlation_of(c, arg, ctx, out);
        if (!corr) return;
        char err[512];
        char *svg = graph_trace_svg(c, corr, err, sizeof err);
        free(corr);
        if (!svg) return error(out, 404, err);
        set(out, 200, "image/svg+xml", svg);
    } else {
        error(out, 404, "no such endpoint");
    }
}

/* Actions run as the dashboard's connection role: the database decides who
 * may do what.  Bulk ones are one statement (one transaction) and say how many. */
void api_post(PGconn *c, const char *path, ArgFn arg, void *ctx, Resp *out)
{
    if (strcmp(path, "/api/action")) return error(out, 404, "no such endpoint");
    const char *what = arg(ctx, "do");
    static const struct {
        const char *name, *sql, *arg1, *arg2;
        bool id;
    } A[] = {
        {"retry", "SELECT baton.retry($1::bigint)::int", "id", NULL, true},
        {"cancel", "SELECT baton.cancel($1::bigint)::int", "id", NULL, true},
        {"cancel_run", "SELECT baton.cancel_run($1::bigint)::int", "id", NULL, true},
        {"pause", "SELECT 1 FROM baton.pause_queue($1::text)", "queue", NULL, false},
        {"resume", "SELECT 1 FROM baton.resume_queue($1::text)", "queue", NULL, false},
        {"retry_queue", "SELECT pg_catalog.count(*) FILTER (WHERE baton.retry(t.id)) FROM baton.tasks AS t"
                        " WHERE t.queue = $1::text AND t.state = 'failed'", "queue", NULL, false},
        {"cancel_queue", "SELECT pg_catalog.count(*) FILTER (WHERE baton.cancel(t.id)) FROM baton.tasks AS t"
                         " WHERE t.queue = $1::text AND t.state IN ('pending', 'running')", "queue", NULL, false},
        {"retry_dead_letters", "SELECT baton.retry_dead_letters($1::text)", "subscription", NULL, false},
        {"replay", "SELECT baton.replay($1::text, COALESCE($2::timestamptz, '-infinity'))", "subscription", "since", false},
    };
    for (size_t i = 0; what && i < sizeof A / sizeof A[0]; i++) {
        if (strcmp(A[i].name, what)) continue;
        const char *a1 = arg(ctx, A[i].arg1), *a2 = A[i].arg2 ? empty_null(arg(ctx, A[i].arg2)) : NULL;
        if (!a1 || !*a1 || (A[i].id && !parse_id(a1, NULL)))
            return error(out, 400, A[i].id ? "the id must be a positive integer" : "a name is missing");
        const char *p[] = {a1, a2};
        PGresult *r = db_query(c, A[i].sql, A[i].arg2 ? 2 : 1, p);
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
            char line[1024];
            db_error_line(c, r, line, sizeof line);
            int st = status_of(r);
            PQclear(r);
            return error(out, st, line);
        }
        Buf b = {0};
        buf_printf(&b, "{\"ok\": true, \"count\": %lld}", atoll(PQgetvalue(r, 0, 0)));
        PQclear(r);
        return set(out, 200, "application/json", b.s);
    }
    error(out, 400, "unknown action");
}
