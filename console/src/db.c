/* db.c — the console's libpq side: connecting like psql does, running parameterised queries, one-line errors. */
#include "console.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Connects with a conninfo or URI (empty: the PG* environment and service
 * files), pins an always-secure search_path and checks that the extension is
 * there.  Returns NULL with a one-line reason in err; a DSN libpq cannot parse
 * is reported as such before any connection attempt. */
PGconn *db_connect(const char *dsn, char *err, size_t errlen)
{
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(dsn ? dsn : "", &perr);
    if (!opts) {
        snprintf(err, errlen, "invalid --dsn \"%s\": %s", dsn ? dsn : "",
                 perr ? strtok(perr, "\n") : "cannot be parsed");
        PQfreemem(perr);
        return NULL;
    }
    PQconninfoFree(opts);
    const char *keys[] = {"dbname", "fallback_application_name", NULL};
    const char *vals[] = {dsn ? dsn : "", "baton", NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", c ? PQerrorMessage(c) : "out of memory");
        for (char *p = msg; *p; p++)
            if (*p == '\n') *p = (p[1] ? ' ' : '\0');
        snprintf(err, errlen, "cannot connect: %s", msg);
        PQfinish(c);
        return NULL;
    }
    PGresult *r = PQexec(c, "SET search_path = pg_catalog");
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok) {
        snprintf(err, errlen, "cannot set search_path: %s", PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    r = PQexec(c, "SELECT e.extversion FROM pg_catalog.pg_extension AS e WHERE e.extname = 'baton'");
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        snprintf(err, errlen, "the baton extension is not installed in database \"%s\" (CREATE EXTENSION baton)",
                 PQdb(c));
        PQclear(r);
        PQfinish(c);
        return NULL;
    }
    PQclear(r);
    return c;
}

PGconn *db_connect_or_die(void)
{
    char err[1024];
    PGconn *c = db_connect(O.dsn, err, sizeof err);
    if (!c) die(strncmp(err, "invalid --dsn", 13) == 0 ? EXIT_USAGE : EXIT_CONN, "%s", err);
    return c;
}

/* Runs one statement with text parameters (never SQL built from input). */
PGresult *db_query(PGconn *c, const char *sql, int n, const char *const *params)
{
    return PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
}

/* The exit code a failed statement maps to: a data exception (malformed
 * JSON, bad value) is bad input (2); a lost connection is 3; the rest (no
 * such run, privilege, ...) means the thing asked for failed (1). */
int db_error_exit(const PGresult *r)
{
    const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (!st) return EXIT_CONN;
    if (strncmp(st, SQLSTATE_DATA_EXCEPTION_CLASS, 2) == 0) return EXIT_USAGE;
    if (strncmp(st, "08", 2) == 0) return EXIT_CONN;
    return EXIT_FAILED;
}

/* The server's primary message on one line (no CONTEXT, no newlines). */
const char *db_error_line(PGconn *c, const PGresult *r, char *out, size_t n)
{
    const char *m = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    snprintf(out, n, "%s", m ? m : (c ? PQerrorMessage(c) : "no connection"));
    for (char *p = out; *p; p++)
        if (*p == '\n' || *p == '\r') *p = (p[1] ? ' ' : '\0');
    return out;
}

PGresult *db_query_or_die(PGconn *c, const char *sql, int n, const char *const *params)
{
    PGresult *r = db_query(c, sql, n, params);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) return r;
    char line[1024];
    db_error_line(c, r, line, sizeof line);
    int code = db_error_exit(r);
    PQclear(r);
    PQfinish(c);
    die(code, "%s", line);
}

/* The rows of a query as one JSON array (object: the query returns one jsonb
 * value, which is passed through); malloc'd text, or NULL on error with the
 * failed result in *fail (the caller clears it). */
char *db_json(PGconn *c, const char *sql, int n, const char *const *params, bool pretty, bool object,
              PGresult **fail)
{
    Buf q = {0};
    if (object)
        buf_printf(&q, "SELECT %s(x.j) FROM (%s) AS x(j)", pretty ? "pg_catalog.jsonb_pretty" : "", sql);
    else
        buf_printf(&q, "SELECT %s(COALESCE(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(x)), '[]'::jsonb)) FROM (%s) AS x",
                   pretty ? "pg_catalog.jsonb_pretty" : "", sql);
    PGresult *r = db_query(c, q.s, n, params);
    buf_free(&q);
    char *res = NULL;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
        res = xstrdup(PQgetvalue(r, 0, 0));
    else if (PQresultStatus(r) == PGRES_TUPLES_OK)
        res = xstrdup("null");
    if (!res && fail) {
        *fail = r;
        return NULL;
    }
    PQclear(r);
    return res;
}
