/* sqlh.c — the sql handler: runs the queue's statement and baton.complete() in one transaction on its own connection. */
#include "worker.h"
#include "pgc.h"
#include "json.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* S_SETUP: the transaction's statement_timeout (SET LOCAL), right after BEGIN. */
enum sstep { S_CONNECT, S_SETUP, S_IDLE, S_BEGIN, S_STMT, S_COMPLETE, S_COMMIT, S_ROLLBACK };

typedef struct sqlconn {
    pgc     c;
    int     step;
    task   *t;            /* NULL once idle or detached (task cancelled meanwhile) */
    int64_t id;
    int     attempt;
    char   *result;       /* JSON of the first column of the first row, or NULL */
    int     outcome;      /* after ROLLBACK: the report kind */
    char   *error;
    bool    dead;
    struct sqlconn *next;
} sqlconn;

/* Conn pool of one queue: idle connections are reused, broken ones dropped. */
typedef struct sqlq {
    sqlconn *conns;
} sqlq;

/* The first column of the first row as JSON text (NULL for no row / SQL NULL). */
static char *first_value_json(PGresult *r)
{
    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1 || PQnfields(r) < 1 || PQgetisnull(r, 0, 0))
        return NULL;
    const char *v = PQgetvalue(r, 0, 0);
    Oid type = PQftype(r, 0);
    buf b;
    buf_init(&b);
    switch (type) {
    case OID_JSON: case OID_JSONB:
        buf_adds(&b, v);
        break;
    case OID_BOOL:
        buf_adds(&b, v[0] == 't' ? "true" : "false");
        break;
    case OID_INT8: case OID_INT2: case OID_INT4: case OID_FLOAT4: case OID_FLOAT8:
    case OID_NUMERIC:              /* numbers, unless NaN/Infinity */
        if (json_valid(v, strlen(v))) { buf_adds(&b, v); break; }
        /* fall through */
    default:
        json_add_string(&b, v, strlen(v));
    }
    return buf_steal(&b);
}

/* SQLSTATE classes worth retrying: connection, resources, operator intervention, lock/serialization. */
static bool retryable(const char *ss)
{
    return !strncmp(ss, SQLSTATE_CLASS_TRANSACTION_ROLLBACK, 2) || !strncmp(ss, SQLSTATE_CLASS_CONNECTION, 2) ||
           !strncmp(ss, SQLSTATE_CLASS_RESOURCES, 2) || !strncmp(ss, SQLSTATE_CLASS_OPERATOR, 2) ||
           !strcmp(ss, SQLSTATE_LOCK_NOT_AVAILABLE);
}

/* Ends the task bound to a connection (if it still is) and unbinds it. */
static void finish_conn_task(sqlconn *s, int kind, const char *text)
{
    if (s->t && !s->t->finished) task_finish(s->t, kind, text);
    if (s->t) s->t->h = NULL;
    s->t = NULL;
}

/* Rolls back and remembers how the task ends. */
static void rollback(sqlconn *s, int kind, const char *err)
{
    s->outcome = kind;
    free(s->error);
    s->error = err ? xstrdup(err) : NULL;
    s->step = S_ROLLBACK;
}

/* Sends the next statement of the transaction for the bound task. */
static void advance(sqlconn *s, queue_rt *q)
{
    pgc *c = &s->c;
    char id[24], att[16];
    snprintf(id, sizeof id, "%lld", (long long)s->id);
    snprintf(att, sizeof att, "%d", s->attempt);
    if (!s->t && (s->step == S_BEGIN || s->step == S_SETUP || s->step == S_STMT || s->step == S_COMPLETE)) {
        /* The task was taken away (lease lost, released): never complete it from here. */
        if (s->step == S_BEGIN) {
            s->step = S_IDLE;
            return;
        }
        rollback(s, REP_FAIL, NULL);
    }
    switch (s->step) {
    case S_SETUP: {
        /* Local to the transaction: behind a transaction pooler a session setting would stay on
           the server connection and cancel other clients' statements. */
        char to[32];
        snprintf(to, sizeof to, "%lld", (long long)(q->qc ? q->qc->timeout_ms : 30000));
        const char *p[1] = {to};
        pgc_send(c, "SELECT pg_catalog.set_config('statement_timeout', $1, true)", 1, p, NULL);
        break;
    }
    case S_BEGIN:
        pgc_send(c, "BEGIN", 0, NULL, NULL);
        break;
    case S_STMT: {
        const char *p[2] = {s->t ? s->t->payload : "null", id};
        const unsigned int types[2] = {OID_JSONB, OID_INT8};   /* typed so an unused $2 is fine */
        pgc_send(c, s->t ? s->t->qc->statement : "SELECT 1", 2, p, types);
        break;
    }
    case S_COMPLETE: {
        const char *p[3] = {id, att, s->result};
        pgc_send(c, "SELECT baton.complete($1::bigint, $2::integer, $3::pg_catalog.jsonb)", 3, p, NULL);
        break;
    }
    case S_COMMIT:
        pgc_send(c, "COMMIT", 0, NULL, NULL);
        break;
    case S_ROLLBACK:
        pgc_send(c, "ROLLBACK", 0, NULL, NULL);
        break;
    }
}

/* Handles a finished statement and moves the transaction on. */
static void on_done(sqlconn *s, queue_rt *q)
{
    pgc *c = &s->c;
    switch (s->step) {
    case S_BEGIN:
        if (c->err) rollback(s, REP_RETRY, c->err);
        else s->step = S_SETUP;
        break;
    case S_SETUP:
        if (c->err) rollback(s, REP_RETRY, c->err);
        else s->step = S_STMT;
        break;
    case S_STMT:
        if (c->err) {
            buf b;
            buf_init(&b);
            buf_printf(&b, "%s (SQLSTATE %s)", c->err, c->sqlstate);
            rollback(s, retryable(c->sqlstate) ? REP_RETRY : REP_FAIL, b.data);
            buf_free(&b);
        } else {
            free(s->result);
            s->result = first_value_json(c->res);
            s->step = S_COMPLETE;
        }
        break;
    case S_COMPLETE:
        if (c->err) rollback(s, REP_RETRY, c->err);
        else if (PQntuples(c->res) == 1 && !strcmp(PQgetvalue(c->res, 0, 0), "t")) s->step = S_COMMIT;
        else {
            /* The lease was lost: undo the statement's effect too. */
            if (s->t) s->t->cancel = CANCEL_LOST;
            rollback(s, REP_FAIL, "lease lost");
        }
        break;
    case S_COMMIT:
        if (c->err) finish_conn_task(s, retryable(c->sqlstate) ? REP_RETRY : REP_FAIL, c->err);
        else finish_conn_task(s, REP_DONE, NULL);
        s->step = S_IDLE;
        break;
    case S_ROLLBACK:
        finish_conn_task(s, s->outcome, s->error);
        s->step = S_IDLE;
        break;
    }
    pgc_reset(c);
}

/* Binds the task to an idle connection of the queue (or a new one). */
static void sql_start(task *t)
{
    sqlq *sq = t->q->hsql;
    if (!sq) {
        sq = xcalloc(1, sizeof *sq);
        t->q->hsql = sq;
    }
    sqlconn *s;
    for (s = sq->conns; s; s = s->next)
        if (!s->dead && !s->t && s->step == S_IDLE) break;
    if (!s) {
        s = xcalloc(1, sizeof *s);
        s->next = sq->conns;
        sq->conns = s;
        s->step = S_CONNECT;
        if (pgc_connect(&s->c, W.dsn, "baton-worker sql") < 0) {
            s->dead = true;
            task_finish(t, REP_RETRY, s->c.err);
            return;
        }
    }
    s->t = t;
    s->id = t->id;
    s->attempt = t->attempt;
    free(s->result);
    s->result = NULL;
    t->h = s;
    if (s->step == S_IDLE) s->step = S_BEGIN;
}

/* Asks the server to cancel the statement running on a connection (a short
   blocking round trip of its own: libpq 15 has no asynchronous cancel). */
static void sql_cancel_statement(sqlconn *s)
{
    PGcancel *cn = PQgetCancel(s->c.conn);
    char err[256];
    if (!cn) return;
    if (!PQcancel(cn, err, sizeof err)) log_warn("sql: cancelling task %lld's statement failed: %s", (long long)s->id, err);
    PQfreeCancel(cn);
}

/* Cancellation and a last-resort deadline (statement_timeout fires first). */
static void sql_step(task *t, int64_t now)
{
    sqlconn *s = t->h;
    if (t->cancel && s) {
        /* Stop the statement now; were it to finish anyway, baton.complete() would refuse it
           (fencing) and the transaction rolls back. */
        if (s->c.state == PGC_BUSY) sql_cancel_statement(s);
        s->t = NULL;
        t->h = NULL;
        task_finish(t, REP_RELEASE, t->cancel == CANCEL_LOST ? "lease lost" : "worker shutting down");
        return;
    }
    if (now >= t->deadline && s) {
        /* The task's execution deadline (its own timeout can be shorter than statement_timeout):
           cancel the statement; the transaction rolls back on a connection that stays usable. */
        if (s->c.state == PGC_BUSY) sql_cancel_statement(s);
        s->t = NULL;
        t->h = NULL;
        char msg[64];
        snprintf(msg, sizeof msg, "timed out after %.3gs", (double)t->timeout_ms / 1000.0);
        task_finish(t, REP_RETRY, msg);
        return;
    }
    loop_deadline(t->deadline);
}

/* Unbinds the task from its connection. */
static void sql_cleanup(task *t)
{
    sqlconn *s = t->h;
    if (s) s->t = NULL;
    t->h = NULL;
}

/* Drives every connection of the queue through its transaction steps. */
void sql_queue_step(queue_rt *q, int64_t now)
{
    (void)now;
    sqlq *sq = q->hsql;
    if (!sq) return;
    for (sqlconn **pp = &sq->conns; *pp;) {
        sqlconn *s = *pp;
        pgc *c = &s->c;
        if (c->state == PGC_BROKEN) {
            if (s->t) {
                const char *e = s->step == S_COMMIT ? "sql connection lost during COMMIT" : "sql connection lost";
                log_warn("sql queue %s: %s", q->name, c->err ? c->err : e);
                finish_conn_task(s, REP_RETRY, e);
            }
            s->dead = true;
        }
        if (s->dead && (s->c.state != PGC_BUSY)) {
            if (s->t) finish_conn_task(s, REP_RETRY, "sql connection closed");
            pgc_close(c);
            free(s->result);
            free(s->error);
            *pp = s->next;
            free(s);
            continue;
        }
        if ((!q->qc || q->qc->handler != H_SQL) && !s->t && s->step == S_IDLE) s->dead = true;
        if (s->step == S_CONNECT && c->state == PGC_READY) s->step = s->t ? S_BEGIN : S_IDLE;
        if (c->state == PGC_DONE) on_done(s, q);
        if (c->state == PGC_READY && s->step != S_IDLE && s->step != S_CONNECT) advance(s, q);
        pgc_watch(c);
        pp = &s->next;
    }
}

/* Closes every connection of the queue. */
void sql_queue_free(queue_rt *q)
{
    sqlq *sq = q->hsql;
    if (!sq) return;
    while (sq->conns) {
        sqlconn *s = sq->conns;
        sq->conns = s->next;
        pgc_close(&s->c);
        free(s->result);
        free(s->error);
        free(s);
    }
    free(sq);
    q->hsql = NULL;
}

const handler_ops sql_ops = {sql_start, sql_step, sql_cleanup};
