/* cli_act.c — the commands of `baton` that change things: retry, cancel, pause, resume, enqueue, start, publish, wait. */
#include "console.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "{1,2,3}" from ids already checked by parse_id. */
static char *id_array(int n, char **ids)
{
    Buf b = {0};
    buf_puts(&b, "{");
    for (int i = 0; i < n; i++) {
        if (!parse_id(ids[i], NULL)) die(EXIT_USAGE, "\"%s\" is not a task id (a positive integer)", ids[i]);
        buf_printf(&b, "%s%s", i ? "," : "", ids[i]);
    }
    buf_puts(&b, "}");
    return b.s;
}

/* Runs one statement returning one value and returns it (malloc'd), exiting on error. */
static char *scalar(PGconn *c, const char *cmd, const char *sql, int n, const char *const *p)
{
    PGresult *r = db_query(c, sql, n, p);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        char line[1024];
        int code = db_error_exit(r);
        db_error_line(c, r, line, sizeof line);
        PQclear(r);
        PQfinish(c);
        die(code, "%s: %s", cmd, line);
    }
    char *v = xstrdup(PQgetisnull(r, 0, 0) ? "" : PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

static void say_count(const char *verb, const char *count, const char *what)
{
    if (O.json) printf("{\"%s\": %s}\n", verb, count);
    else printf("%s %s %s%s\n", verb, count, what, strcmp(count, "1") ? "s" : "");
}

/* Bulk actions are one statement, hence one transaction: all or nothing. */
int cmd_retry(int argc, char **argv)
{
    const char *queue = NULL, *state = NULL;
    Flag f[] = {{"queue", true, &queue, NULL}, {"state", true, &state, NULL}, {0}};
    char *pos[1000];
    int n = parse_flags("retry", argc, argv, f, pos, 1000);
    if ((n > 0) == (queue != NULL))
        die(EXIT_USAGE, "retry: give task ids, or --queue Q [--state failed|cancelled]");
    if (state && strcmp(state, "failed") && strcmp(state, "cancelled"))
        die(EXIT_USAGE, "retry: --state must be failed or cancelled, not \"%s\"", state);
    char *ids = n ? id_array(n, pos) : NULL;
    PGconn *c = db_connect_or_die();
    char *count;
    if (ids) {
        const char *p[] = {ids};
        count = scalar(c, "retry", "SELECT pg_catalog.count(*) FILTER (WHERE baton.retry(x.id))"
                                   " FROM pg_catalog.unnest($1::bigint[]) AS x(id)", 1, p);
    } else {
        const char *p[] = {queue, state ? state : "failed"};
        check_queue(c, "retry", queue);
        count = scalar(c, "retry", "SELECT pg_catalog.count(*) FILTER (WHERE baton.retry(t.id))"
                                   " FROM baton.tasks AS t WHERE t.queue = $1::text AND t.state = $2::text", 2, p);
    }
    say_count("retried", count, "task");
    free(count);
    free(ids);
    PQfinish(c);
    return EXIT_OK;
}

int cmd_cancel(int argc, char **argv)
{
    const char *queue = NULL, *run = NULL;
    Flag f[] = {{"queue", true, &queue, NULL}, {"run", true, &run, NULL}, {0}};
    char *pos[1000];
    int n = parse_flags("cancel", argc, argv, f, pos, 1000);
    if ((n > 0) + (queue != NULL) + (run != NULL) != 1)
        die(EXIT_USAGE, "cancel: give task ids, or --queue Q, or --run ID");
    if (run && !parse_id(run, NULL)) die(EXIT_USAGE, "cancel: \"%s\" is not a run id (a positive integer)", run);
    char *ids = n ? id_array(n, pos) : NULL;
    PGconn *c = db_connect_or_die();
    char *count;
    if (run) {
        const char *p[] = {run};
        count = scalar(c, "cancel", "SELECT baton.cancel_run($1::bigint)::int", 1, p);
        if (O.json) printf("{\"cancelled_runs\": %s}\n", count);
        else printf("%s\n", strcmp(count, "1") ? "run had already ended: nothing cancelled" : "cancelled run");
        free(count);
        PQfinish(c);
        return EXIT_OK;
    }
    if (ids) {
        const char *p[] = {ids};
        count = scalar(c, "cancel", "SELECT pg_catalog.count(*) FILTER (WHERE baton.cancel(x.id))"
                                    " FROM pg_catalog.unnest($1::bigint[]) AS x(id)", 1, p);
    } else {
        const char *p[] = {queue};
        check_queue(c, "cancel", queue);
        count = scalar(c, "cancel", "SELECT pg_catalog.count(*) FILTER (WHERE baton.cancel(t.id))"
                                    " FROM baton.tasks AS t WHERE t.queue = $1::text AND t.state IN ('pending', 'running')",
                       1, p);
    }
    say_count("cancelled", count, "task");
    free(count);
    free(ids);
    PQfinish(c);
    return EXIT_OK;
}

static int pause_resume(const char *cmd, const char *sql, const char *done, int argc, char **argv)
{
    char *pos[1];
    int n = parse_flags(cmd, argc, argv, NULL, pos, 1);
    if (n != 1) die(EXIT_USAGE, "%s: needs one queue name (baton %s QUEUE)", cmd, cmd);
    PGconn *c = db_connect_or_die();
    const char *p[] = {pos[0]};
    free(scalar(c, cmd, sql, 1, p));
    if (O.json) {
        char *j = scalar(c, cmd, "SELECT pg_catalog.jsonb_build_object('queue', q.queue, 'paused', q.paused)::text"
                                 " FROM baton.queues AS q WHERE q.queue = $1::text", 1, p);
        puts(j);
        free(j);
    } else {
        printf("queue %s %s\n", pos[0], done);
    }
    PQfinish(c);
    return EXIT_OK;
}

int cmd_pause(int argc, char **argv)
{
    return pause_resume("pause", "SELECT baton.pause_queue($1::text)::text", "paused", argc, argv);
}

int cmd_resume(int argc, char **argv)
{
    return pause_resume("resume", "SELECT baton.resume_queue($1::text)::text", "resumed", argc, argv);
}

int cmd_enqueue(int argc, char **argv)
{
    const char *priority = NULL, *delay = NULL, *dedup = NULL;
    Flag f[] = {{"priority", true, &priority, NULL}, {"delay", true, &delay, NULL}, {"dedup-key", true, &dedup, NULL},
                {0}};
    char *pos[2];
    int n = parse_flags("enqueue", argc, argv, f, pos, 2);
    if (n < 1) die(EXIT_USAGE, "enqueue: needs a queue and a JSON payload (baton enqueue QUEUE '{...}')");
    PGconn *c = db_connect_or_die();
    const char *p[] = {pos[0], n > 1 ? pos[1] : "{}", priority ? priority : "0", delay, dedup};
    char *id = scalar(c, "enqueue", "SELECT baton.enqueue($1::text, $2::jsonb, priority => $3::int,"
                                    " delay => $4::interval, dedup_key => $5::text)", 5, p);
    if (O.json) printf("{\"task\": %s}\n", id);
    else printf("task %s\n", id);
    free(id);
    PQfinish(c);
    return EXIT_OK;
}

/* Seconds from "30", "2.5", "30s", "5m", "1h"; false when malformed. */
static bool parse_seconds(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || v < 0) return false;
    if (!strcmp(end, "") || !strcmp(end, "s")) *out = v;
    else if (!strcmp(end, "m")) *out = v * 60;
    else if (!strcmp(end, "h")) *out = v * 3600;
    else return false;
    return true;
}

int cmd_start(int argc, char **argv)
{
    bool wait = false;
    const char *key = NULL, *timeout = NULL;
    Flag f[] = {{"wait", false, NULL, &wait}, {"idempotency-key", true, &key, NULL}, {"timeout", true, &timeout, NULL},
                {0}};
    char *pos[2];
    int n = parse_flags("start", argc, argv, f, pos, 2);
    if (n < 1) die(EXIT_USAGE, "start: needs a workflow and a JSON input (baton start WORKFLOW '{...}')");
    double t = -1;
    if (timeout && !parse_seconds(timeout, &t)) die(EXIT_USAGE, "start: bad --timeout \"%s\" (e.g. 30, 30s, 5m)", timeout);
    PGconn *c = db_connect_or_die();
    const char *p[] = {pos[0], n > 1 ? pos[1] : "{}", key};
    char *id = scalar(c, "start", "SELECT baton.start($1::text, $2::jsonb, $3::text)", 3, p);
    int rc = EXIT_OK;
    if (!wait) {
        if (O.json) printf("{\"run\": %s}\n", id);
        else printf("run %s\n", id);
    } else {
        if (!O.json) fprintf(stderr, "run %s started; waiting for it to end\n", id);
        rc = wait_run(c, id, t, false);
    }
    free(id);
    PQfinish(c);
    return rc;
}

int cmd_publish(int argc, char **argv)
{
    const char *key = NULL;
    Flag f[] = {{"key", true, &key, NULL}, {0}};
    char *pos[2];
    int n = parse_flags("publish", argc, argv, f, pos, 2);
    if (n < 1) die(EXIT_USAGE, "publish: needs a topic and a JSON payload (baton publish TOPIC '{...}' [--key K])");
    PGconn *c = db_connect_or_die();
    const char *p[] = {pos[0], n > 1 ? pos[1] : "{}", key};
    char *id = scalar(c, "publish", "SELECT baton.publish($1::text, $2::jsonb, $3::text)", 3, p);
    const char *q[] = {id};
    char *fan = scalar(c, "publish", "SELECT (SELECT pg_catalog.count(*) FROM baton.tasks AS t WHERE t.event_id = $1::bigint)"
                                     " + (SELECT pg_catalog.count(*) FROM baton.runs AS r WHERE r.cause_event_id = $1::bigint)",
                       1, q);
    if (O.json) printf("{\"event\": %s, \"deliveries\": %s}\n", id, fan);
    else printf("event %s (%s deliver%s)\n", id, fan, strcmp(fan, "1") ? "ies" : "y");
    free(id);
    free(fan);
    PQfinish(c);
    return EXIT_OK;
}

int cmd_wait(int argc, char **argv)
{
    const char *timeout = NULL;
    Flag f[] = {{"timeout", true, &timeout, NULL}, {0}};
    char *pos[1];
    int n = parse_flags("wait", argc, argv, f, pos, 1);
    if (n != 1) die(EXIT_USAGE, "wait: needs one run id (baton wait RUN [--timeout T])");
    if (!parse_id(pos[0], NULL)) die(EXIT_USAGE, "wait: \"%s\" is not a run id (a positive integer)", pos[0]);
    double t = -1;
    if (timeout && !parse_seconds(timeout, &t)) die(EXIT_USAGE, "wait: bad --timeout \"%s\" (e.g. 30, 30s, 5m)", timeout);
    PGconn *c = db_connect_or_die();
    int rc = wait_run(c, pos[0], t, false);
    PQfinish(c);
    return rc;
}
