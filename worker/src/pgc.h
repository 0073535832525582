/* pgc.h — an asynchronous libpq connection driven by the event loop: connect, one query at a time. */
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
    void    (*on_notify)(void *arg, const char *channel, const char *payload);
    void     *arg;
} pgc;

/* Starts connecting (non-blocking); returns 0 or -1 with c->err set (state BROKEN). */
int  pgc_connect(pgc *c, const char *conninfo, const char *appname);
/* Registers the socket with the loop according to the state. */
void pgc_watch(pgc *c);
/* Sends a parameterised query (types may be NULL); the state becomes BUSY, then DONE or BROKEN. */
bool pgc_send(pgc *c, const char *sql, int n, const char *const *params, const unsigned int *types);
/* After DONE: clears res/err, state READY. */
void pgc_reset(pgc *c);
/* Closes and frees everything; state NONE. */
void pgc_close(pgc *c);

#endif
