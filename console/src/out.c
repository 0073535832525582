/* out.c — human output: aligned tables coloured by state on a terminal, plain when piped; JSON passthrough. */
#include "console.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CELL_MAX 60 /* characters shown of one cell; the rest is "…" (use --json for everything) */

/* ANSI colour of a task/run/step state, or "" when none or not on a terminal. */
const char *state_color(const char *state)
{
    if (!O.color || !state) return "";
    if (!strcmp(state, "succeeded")) return "\033[32m";
    if (!strcmp(state, "failed")) return "\033[31m";
    if (!strcmp(state, "running")) return "\033[34m";
    if (!strcmp(state, "cancelled") || !strcmp(state, "skipped")) return "\033[90m";
    if (!strcmp(state, "compensating") || !strcmp(state, "compensated") || !strcmp(state, "waiting"))
        return "\033[33m";
    return "";
}

/* Characters (UTF-8 code points) in s. */
static size_t u8len(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80) n++;
    return n;
}

/* One cell as shown: control characters as spaces, cut at CELL_MAX. */
static char *cell(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col)) return xstrdup("");
    const char *v = PQgetvalue(r, row, col);
    Buf b = {0};
    size_t chars = 0;
    for (const char *p = v; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if ((ch & 0xC0) != 0x80) {
            if (chars == CELL_MAX) {
                buf_puts(&b, "…");
                break;
            }
            chars++;
        }
        if (ch < 0x20 || ch == 0x7f) buf_add(&b, " ", 1);
        else buf_add(&b, p, 1);
    }
    if (!b.s) return xstrdup("");
    return b.s;
}

/* Prints the chosen columns (all when cols is NULL) of r as an aligned table. */
void out_table(const PGresult *r, const char *const *cols)
{
    int idx[64], n = 0;
    if (cols) {
        for (; cols[n] && n < 64; n++) {
            idx[n] = PQfnumber(r, cols[n]);
            if (idx[n] < 0) die(EXIT_FAILED, "internal: no column %s", cols[n]);
        }
    } else {
        for (; n < PQnfields(r) && n < 64; n++) idx[n] = n;
    }
    int rows = PQntuples(r);
    if (rows == 0) {
        puts("(none)");
        return;
    }
    size_t width[64];
    char **cells = xmalloc(sizeof(char *) * (size_t)rows * (size_t)n);
    for (int j = 0; j < n; j++) width[j] = u8len(PQfname(r, idx[j]));
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < n; j++) {
            char *c = cells[i * n + j] = cell(r, i, idx[j]);
            size_t w = u8len(c);
            if (w > width[j]) width[j] = w;
        }
    int state_col = PQfnumber(r, "state");
    for (int j = 0; j < n; j++) {
        const char *h = PQfname(r, idx[j]);
        printf("%s%s%s", O.color ? "\033[1m" : "", h, O.color ? "\033[0m" : "");
        if (j < n - 1) printf("%*s", (int)(width[j] - u8len(h) + 2), "");
    }
    putchar('\n');
    for (int i = 0; i < rows; i++) {
        for (int j = 0; j < n; j++) {
            char *c = cells[i * n + j];
            const char *col = idx[j] == state_col ? state_color(c) : "";
            printf("%s%s%s", col, c, *col ? "\033[0m" : "");
            if (j < n - 1) printf("%*s", (int)(width[j] - u8len(c) + 2), "");
            free(c);
        }
        putchar('\n');
    }
    free(cells);
}

/* Prints the rows of a query as a pretty JSON array, or (object) the one
 * jsonb value it returns (exits on error). */
void out_json(PGconn *c, const char *sql, int n, const char *const *params, bool object)
{
    PGresult *fail = NULL;
    char *j = db_json(c, sql, n, params, true, object, &fail);
    if (!j) {
        char line[1024];
        db_error_line(c, fail, line, sizeof line);
        int code = db_error_exit(fail);
        PQclear(fail);
        PQfinish(c);
        die(code, "%s", line);
    }
    puts(j);
    free(j);
}

void out_json_rows(PGconn *c, const char *sql, int n, const char *const *params)
{
    out_json(c, sql, n, params, false);
}

/* "key:  value" with the key in bold on a terminal. */
void out_kv(const char *key, const char *value)
{
    printf("%s%-15s%s %s\n", O.color ? "\033[1m" : "", key, O.color ? "\033[0m" : "", value ? value : "");
}
