/* pgc.h — an asynchronous libpq connection driven by the event loop: connect, one query (or one pipeline) at a time. */
#ifndef BATON_PGC_H
#define BATON_PGC_H

#include "common.h"
#include <libpq-fe.h>

enum pgc_state { PGC_NONE, PGC_CONNECTING, PGC_READY, PGC_BUSY, PGC_DONE, PGC_BROKEN };

typedef struct pgc {
    PGconn   *conn;
    int       state;          /* enum pgc_state */
    PostgresPollingStatusType poll;
    bool      want_write;     /* output not yet flushed */
    PGresult *res;            /* PGC_DONE: the last result of the query (tuples/command ok), or NULL */
    char     *err;            /* PGC_DONE with error or PGC_BROKEN: message (malloc'd) */
    char      sqlstate[6];
    /* A pipeline of two statements (pgc_send_pair): the first answers in res/err,
       the second here.  Both ran in one transaction: an error in either undid both. */
    bool      pair;           /* the statement in flight is a pair */
    int       pair_at;        /* which statement's results are being read (0, 1, 2 = after the sync) */
    PGresult *res2;
    char     *err2;
    bool      aborted2;       /* the second did not run because the first failed */
    void    (*on_notify)(void *arg, const char *channel, const char *payload);
    void     *arg;
} pgc;

/* Type OIDs the worker reads results by (PostgreSQL's pg_type.dat; stable across releases). */
#define OID_BOOL    16
#define OID_INT8    20
#define OID_INT2    21
#define OID_INT4    23
#define OID_JSON    114
#define OID_FLOAT4  700
#define OID_FLOAT8  701
#define OID_NUMERIC 1700
#define OID_JSONB   3802

/* SQLSTATEs and classes the worker acts on (PostgreSQL's errcodes.txt). */
#define SQLSTATE_CLASS_TRANSACTION_ROLLBACK "40"
#define SQLSTATE_CLASS_DATA_EXCEPTION       "22"
#define SQLSTATE_CLASS_CONNECTION           "08"
#define SQLSTATE_CLASS_RESOURCES            "53"
#define SQLSTATE_CLASS_OPERATOR             "57"
#define SQLSTATE_LOCK_NOT_AVAILABLE         "55P03"
#define SQLSTATE_QUERY_CANCELED             "57014"
#define SQLSTATE_UNDEFINED_OBJECT           "42704"
#define SQLSTATE_INVALID_PARAMETER_VALUE    "22023"
#define SQLSTATE_PROGRAM_LIMIT_EXCEEDED     "54000"

/* Starts connecting (non-blocking); returns 0 or -1 with c->err set (state BROKEN). */
int  pgc_connect(pgc *c, const char *conninfo, const char *appname);
/* Registers the socket with the loop according to the state. */
void pgc_watch(pgc *c);
/* Sends a parameterised query (types may be NULL); the state becomes BUSY, then DONE or BROKEN. */
bool pgc_send(pgc *c, const char *sql, int n, const char *const *params, const unsigned int *types);
/* Sends two parameterised statements in one pipeline: one round trip, one
   implicit transaction, one commit.  Answers in res/err and res2/err2. */
bool pgc_send_pair(pgc *c, const char *sql1, int n1, const char *const *params1, const char *sql2, int n2,
                   const char *const *params2);
/* After DONE: clears res/err, state READY. */
void pgc_reset(pgc *c);
/* Closes and frees everything; state NONE. */
void pgc_close(pgc *c);

#endif
