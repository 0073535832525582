/* wait.c — `baton wait`: blocks on LISTEN baton_runs (no polling) until a run ends, then prints its output. */
#include "console.h"
#include "queries.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Prints the end of a run; returns 0 when it succeeded, 1 otherwise; -1 while it runs. */
static int report_if_ended(PGconn *c, const char *run, bool quiet)
{
    const char *p[] = {run};
    PGresult *r = db_query(c, "SELECT r.state, pg_catalog.jsonb_pretty(r.output), r.error,"
                              " pg_catalog.jsonb_build_object('run', r.id, 'state', r.state, 'output', r.output,"
                              "                               'error', r.error)::text"
                              " FROM baton.runs AS r WHERE r.id = $1::bigint", 1, p);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        char line[1024];
        int code = db_error_exit(r);
        db_error_line(c, r, line, sizeof line);
        PQclear(r);
        die(code, "wait: %s", line);
    }
    if (PQntuples(r) == 0) {
        PQclear(r);
        die(EXIT_FAILED, "wait: run %s does not exist", run);
    }
    const char *state = PQgetvalue(r, 0, 0);
    if (!strcmp(state, "running")) {
        PQclear(r);
        return -1;
    }
    int rc = strcmp(state, "succeeded") ? EXIT_FAILED : EXIT_OK;
    if (!quiet) {
        if (O.json) {
            puts(PQgetvalue(r, 0, 3));
        } else if (rc == EXIT_OK) {
            puts(PQgetisnull(r, 0, 1) ? "null" : PQgetvalue(r, 0, 1));
        } else {
            fprintf(stderr, "baton: run %s %s%s%s\n", run, state, PQgetisnull(r, 0, 2) ? "" : ": ",
                    PQgetisnull(r, 0, 2) ? "" : PQgetvalue(r, 0, 2));
        }
    }
    PQclear(r);
    return rc;
}

/* LISTENs first, then looks: a run ending between the two is still seen.
 * timeout_s < 0 waits for ever; on timeout says so and returns 1. */
int wait_run(PGconn *c, const char *run, double timeout_s, bool quiet)
{
    PGresult *r = PQexec(c, "LISTEN baton_runs");
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        char line[1024];
        db_error_line(c, r, line, sizeof line);
        PQclear(r);
        die(EXIT_CONN, "wait: LISTEN failed: %s", line);
    }
    PQclear(r);
    double deadline = timeout_s >= 0 ? now_s() + timeout_s : 0;
    for (;;) {
        int rc = report_if_ended(c, run, quiet);
        if (rc >= 0) return rc;
        bool notified = false;
        while (!notified) {
            int ms = -1;
            if (timeout_s >= 0) {
                double left = deadline - now_s();
                if (left <= 0) {
                    fprintf(stderr, "baton: wait: run %s still running after %gs\n", run, timeout_s);
                    return EXIT_FAILED;
                }
                ms = (int)(left * 1000) + 1;
            }
            struct pollfd pfd = {.fd = PQsocket(c), .events = POLLIN};
            int n = poll(&pfd, 1, ms);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) die(EXIT_CONN, "wait: poll: %s", strerror(errno));
            if (n == 0) continue;
            if (!PQconsumeInput(c)) die(EXIT_CONN, "wait: connection lost: %s", PQerrorMessage(c));
            PGnotify *nt;
            while ((nt = PQnotifies(c)) != NULL) {
                notified = true; /* any run ended: look again (one indexed query) */
                PQfreemem(nt);
            }
        }
    }
}
