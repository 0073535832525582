/* access.c — the startup check that the worker's role may work on every queue it serves (issue 16). */
#include "worker.h"
#include "json.h"
#include "log.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>

/* SQLSTATE of a missing grant and of an absent function (an older extension). */
#define SQLSTATE_INSUFFICIENT_PRIVILEGE "42501"
#define SQLSTATE_UNDEFINED_FUNCTION     "42883"

/* Connects to dsn and asks baton.check_worker_access whether this role has
 * "work" on every queue of c.  Returns 0 when it has (or when the database
 * cannot be reached: the main loop then keeps trying, as without this check),
 * or EXIT_ACCESS after printing the database's message, which names the queue
 * and the missing grant. */
int access_check_blocking(const char *dsn, const config *c)
{
    const char *keys[] = {"dbname", "fallback_application_name", NULL};
    const char *vals[] = {dsn ? dsn : "", "baton-worker", NULL};
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(conn) != CONNECTION_OK) {
        PQfinish(conn);
        return 0;
    }
    buf qs;
    buf_init(&qs);
    buf_adds(&qs, "{");
    int i = 0;
    for (const queue_conf *qc = c->queues; qc; qc = qc->next) pg_array_add(&qs, qc->name, i++ == 0);
    buf_adds(&qs, "}");
    const char *params[1] = {qs.data};
    PGresult *r = PQexecParams(conn, "SELECT baton.check_worker_access($1::pg_catalog.text[])", 1, NULL, params, NULL, NULL, 0);
    int rc = 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        const char *hint = PQresultErrorField(r, PG_DIAG_MESSAGE_HINT);
        if (st && !strcmp(st, SQLSTATE_INSUFFICIENT_PRIVILEGE)) {
            fprintf(stderr, "baton-worker: cannot serve the configured queues as role \"%s\": %s%s%s\n", PQuser(conn),
                    msg ? msg : "", hint ? "\n  hint: " : "", hint ? hint : "");
            rc = EXIT_ACCESS;
        } else if (!st || strcmp(st, SQLSTATE_UNDEFINED_FUNCTION)) {
            /* Anything else (a version mismatch is reported by the version check) is left to the main loop. */
            log_warn("access check failed: %s", PQresultErrorMessage(r));
        }
    }
    PQclear(r);
    buf_free(&qs);
    PQfinish(conn);
    return rc;
}
