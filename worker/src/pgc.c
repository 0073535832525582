/* pgc.c — drives one libpq connection asynchronously: PQconnectPoll, PQsendQueryParams, pipelines, PQconsumeInput. */
#include "pgc.h"
#include "worker.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

/* Marks the connection broken with libpq's message. */
static void broken(pgc *c, const char *what)
{
    free(c->err);
    const char *m = c->conn ? PQerrorMessage(c->conn) : "";
    size_t n = strlen(m);
    while (n && (m[n - 1] == '\n' || m[n - 1] == ' ')) n--;
    buf b;
    buf_init(&b);
    buf_printf(&b, "%s: %.*s", what, (int)n, m);
    c->err = buf_steal(&b);
    if (c->res) { PQclear(c->res); c->res = NULL; }
    if (c->res2) { PQclear(c->res2); c->res2 = NULL; }
    c->state = PGC_BROKEN;
}

/* Keeps the message and SQLSTATE of an error result in *err (the first one wins). */
static void take_error(pgc *c, char **err, PGresult *r)
{
    if (*err) return;
    const char *m = PQresultErrorMessage(r);
    size_t n = strlen(m);
    while (n && (m[n - 1] == '\n' || m[n - 1] == ' ')) n--;
    *err = xstrndup(m, n);
    if (!c->sqlstate[0]) {
        const char *ss = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        snprintf(c->sqlstate, sizeof c->sqlstate, "%s", ss ? ss : "");
    }
}

/* One step of reading a pair's answers: each statement's results end with a
   NULL, the pipeline with PGRES_PIPELINE_SYNC.  Returns false once done. */
static bool pair_result(pgc *c, PGresult *r)
{
    if (!r) {
        c->pair_at++;
        return true;
    }
    ExecStatusType st = PQresultStatus(r);
    PGresult **res = c->pair_at == 0 ? &c->res : &c->res2;
    char **err = c->pair_at == 0 ? &c->err : &c->err2;
    if (st == PGRES_PIPELINE_SYNC) {
        PQclear(r);
        if (PQexitPipelineMode(c->conn) != 1) {
            broken(c, "pipeline");
            return false;
        }
        c->pair = false;
        c->state = PGC_DONE;
        if (c->err && c->res) { PQclear(c->res); c->res = NULL; }
        if (c->err2 && c->res2) { PQclear(c->res2); c->res2 = NULL; }
        return false;
    }
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        if (*res) PQclear(*res);
        *res = r;
        return true;
    }
    if (st == PGRES_PIPELINE_ABORTED) {
        if (c->pair_at == 1) c->aborted2 = true;
        if (!*err) *err = xstrdup("not run: the statement before it in the same transaction failed");
    } else if (c->pair_at >= 2) {
        /* An error after both statements (at commit) undid both. */
        take_error(c, &c->err2, r);
        if (!c->err) c->err = xstrdup("undone: the transaction failed at commit");
    } else {
        take_error(c, err, r);
    }
    PQclear(r);
    return true;
}

/* Starts a non-blocking connect (PQconnectStartParams, expand_dbname). */
int pgc_connect(pgc *c, const char *conninfo, const char *appname)
{
    const char *keys[] = {"dbname", "fallback_application_name", NULL};
    const char *vals[] = {conninfo, appname, NULL};
    c->res = NULL;
    c->err = NULL;
    c->want_write = false;
    c->conn = PQconnectStartParams(keys, vals, 1);
    if (!c->conn || PQstatus(c->conn) == CONNECTION_BAD) {
        broken(c, "connect");
        return -1;
    }
    c->state = PGC_CONNECTING;
    c->poll = PGRES_POLLING_WRITING;
    return 0;
}

/* Drains pending notifications to the owner. */
static void notifies(pgc *c)
{
    PGnotify *n;
    while ((n = PQnotifies(c->conn)) != NULL) {
        if (c->on_notify) c->on_notify(c->arg, n->relname, n->extra);
        PQfreemem(n);
    }
}

/* Collects results while they are complete; sets DONE when the query has ended. */
static void collect(pgc *c)
{
    while (c->state == PGC_BUSY && !PQisBusy(c->conn)) {
        PGresult *r = PQgetResult(c->conn);
        if (c->pair) {
            if (!pair_result(c, r)) break;
            continue;
        }
        if (!r) {
            c->state = PGC_DONE;
            break;
        }
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
            if (c->res) PQclear(c->res);
            c->res = r;
        } else {
            take_error(c, &c->err, r);
            PQclear(r);
        }
    }
    if (c->state == PGC_DONE && c->err && c->res) {
        PQclear(c->res);
        c->res = NULL;
    }
    if ((c->state == PGC_DONE || c->state == PGC_BUSY) && PQstatus(c->conn) == CONNECTION_BAD) broken(c, "connection lost");
}

/* Loop callback: advances connect, flushes output, consumes input. */
static void on_io(void *arg, int fd, short rev)
{
    pgc *c = arg;
    (void)fd;
    if (c->state == PGC_CONNECTING) {
        c->poll = PQconnectPoll(c->conn);
        if (c->poll == PGRES_POLLING_FAILED) broken(c, "connect");
        else if (c->poll == PGRES_POLLING_OK) {
            if (PQsetnonblocking(c->conn, 1) != 0) broken(c, "setnonblocking");
            else c->state = PGC_READY;
        }
        return;
    }
    if (c->want_write && (rev & POLLOUT)) {
        int f = PQflush(c->conn);
        if (f < 0) { broken(c, "send"); return; }
        c->want_write = f == 1;
    }
    if (rev & (POLLIN | POLLHUP | POLLERR)) {
        if (!PQconsumeInput(c->conn)) { broken(c, "connection lost"); return; }
        notifies(c);
        collect(c);
    }
}

/* Registers the socket for what libpq waits for. */
void pgc_watch(pgc *c)
{
    if (!c->conn || c->state == PGC_BROKEN || c->state == PGC_NONE) return;
    int fd = PQsocket(c->conn);
    if (fd < 0) return;
    short ev = 0;
    if (c->state == PGC_CONNECTING) ev = c->poll == PGRES_POLLING_READING ? POLLIN : POLLOUT;
    else ev = POLLIN | (c->want_write ? POLLOUT : 0);
    loop_watch(fd, ev, on_io, c);
}

/* Sends one parameterised statement; false if the connection is not ready or broke. */
bool pgc_send(pgc *c, const char *sql, int n, const char *const *params, const unsigned int *types)
{
    if (c->state != PGC_READY) return false;
    if (!PQsendQueryParams(c->conn, sql, n, types, params, NULL, NULL, 0)) {
        broken(c, "send");
        return false;
    }
    c->state = PGC_BUSY;
    c->sqlstate[0] = '\0';
    int f = PQflush(c->conn);
    if (f < 0) { broken(c, "send"); return false; }
    c->want_write = f == 1;
    return true;
}

/* Sends two statements and one sync; false if the connection is not ready or broke. */
bool pgc_send_pair(pgc *c, const char *sql1, int n1, const char *const *params1, const char *sql2, int n2,
                   const char *const *params2)
{
    if (c->state != PGC_READY) return false;
    if (PQenterPipelineMode(c->conn) != 1 || !PQsendQueryParams(c->conn, sql1, n1, NULL, params1, NULL, NULL, 0) ||
        !PQsendQueryParams(c->conn, sql2, n2, NULL, params2, NULL, NULL, 0) || PQpipelineSync(c->conn) != 1) {
        broken(c, "send");
        return false;
    }
    c->pair = true;
    c->pair_at = 0;
    c->aborted2 = false;
    c->state = PGC_BUSY;
    c->sqlstate[0] = '\0';
    int f = PQflush(c->conn);
    if (f < 0) { broken(c, "send"); return false; }
    c->want_write = f == 1;
    return true;
}

/* Forgets the answers of one pair's statements. */
static void clear_pair(pgc *c)
{
    if (c->res2) PQclear(c->res2);
    c->res2 = NULL;
    free(c->err2);
    c->err2 = NULL;
    c->aborted2 = false;
    c->pair = false;
}

/* Forgets the last answer so the next statement can be sent. */
void pgc_reset(pgc *c)
{
    if (c->res) PQclear(c->res);
    c->res = NULL;
    free(c->err);
    c->err = NULL;
    clear_pair(c);
    if (c->state == PGC_DONE) c->state = PGC_READY;
}

/* PQfinish and clear everything. */
void pgc_close(pgc *c)
{
    if (c->res) PQclear(c->res);
    c->res = NULL;
    free(c->err);
    c->err = NULL;
    clear_pair(c);
    if (c->conn) PQfinish(c->conn);
    c->conn = NULL;
    c->state = PGC_NONE;
}
