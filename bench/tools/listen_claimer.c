/* listen_claimer.c — a minimal LISTEN-based SQL claimer: the latency harness's stand-in for baton-worker. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>

#include <libpq-fe.h>

static volatile sig_atomic_t stop_requested;

/* Only sets a flag: the loop below notices it within one poll interval. */
static void on_signal(int sig)
{
    (void) sig;
    stop_requested = 1;
}

/* Runs a command that returns no rows of interest; 0 on success. */
static int exec_ok(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;

    if (!ok)
        fprintf(stderr, "listen_claimer: %s: %s", sql, PQerrorMessage(conn));
    PQclear(res);
    return ok ? 0 : -1;
}

/* Claims one batch and completes it at once (the noop handler); returns tasks done, -1 on error. */
static int claim_and_complete(PGconn *conn, const char *queue, const char *batch)
{
    const char *claim_params[2] = {queue, batch};
    PGresult *res = PQexecParams(conn,
        "SELECT count(*), array_agg(id), array_agg(attempt) "
        "FROM baton.claim(ARRAY[$1::text], 'bench-listen-claimer', $2::integer)",
        2, NULL, claim_params, NULL, NULL, 0);
    int n;

    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        fprintf(stderr, "listen_claimer: claim: %s", PQerrorMessage(conn));
        PQclear(res);
        return -1;
    }
    n = atoi(PQgetvalue(res, 0, 0));
    if (n > 0) {
        const char *done_params[2] = {PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2)};
        PGresult *done = PQexecParams(conn,
            "SELECT count(*) FROM baton.complete_many($1::bigint[], $2::integer[])",
            2, NULL, done_params, NULL, NULL, 0);

        if (PQresultStatus(done) != PGRES_TUPLES_OK) {
            fprintf(stderr, "listen_claimer: complete_many: %s", PQerrorMessage(conn));
            n = -1;
        }
        PQclear(done);
    }
    PQclear(res);
    return n;
}

/* Drops every notification already received: one wakeup drains the queue anyway. */
static void drop_notifications(PGconn *conn)
{
    PGnotify *note;

    while ((note = PQnotifies(conn)) != NULL)
        PQfreemem(note);
}

int main(int argc, char **argv)
{
    PGconn *conn;
    long done = 0;

    if (argc != 4) {
        fprintf(stderr, "usage: listen_claimer CONNINFO QUEUE BATCH\n");
        return 2;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    conn = PQconnectdb(argv[1]);
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "listen_claimer: connect: %s", PQerrorMessage(conn));
        PQfinish(conn);
        return 1;
    }
    if (exec_ok(conn, "SET search_path = pg_catalog") != 0 || exec_ok(conn, "LISTEN baton_tasks") != 0) {
        PQfinish(conn);
        return 1;
    }

    while (!stop_requested) {
        int n = 0;
        PGnotify *note;
        fd_set fds;
        struct timeval tv = {1, 0};     /* the polling fallback: a missed wakeup costs at most 1 s */
        int sock = PQsocket(conn);

        /* Notifications so far are answered by the drain below: claim until a claim comes back empty. */
        drop_notifications(conn);
        while (!stop_requested && (n = claim_and_complete(conn, argv[2], argv[3])) > 0)
            done += n;
        if (n < 0)
            break;
        /* One that arrived while claiming may be for a task committed after the last claim looked. */
        if ((note = PQnotifies(conn)) != NULL) {
            PQfreemem(note);
            continue;
        }

        FD_ZERO(&fds);
        FD_SET(sock, &fds);
        if (select(sock + 1, &fds, NULL, NULL, &tv) < 0 && errno != EINTR) {
            perror("listen_claimer: select");
            break;
        }
        if (!PQconsumeInput(conn)) {
            fprintf(stderr, "listen_claimer: %s", PQerrorMessage(conn));
            break;
        }
    }
    fprintf(stderr, "listen_claimer: completed %ld tasks\n", done);
    PQfinish(conn);
    return stop_requested ? 0 : 1;
}
