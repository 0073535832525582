/* util.c — small helpers of the console: memory, fatal errors, number and flag parsing, a string buffer. */
#include "console.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fputs("baton: out of memory\n", stderr);
        exit(EXIT_FAILED);
    }
    return p;
}

char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = xmalloc(n);
    memcpy(p, s, n);
    return p;
}

/* Prints "baton: <message>" as one line on stderr and exits with code. */
void die(int code, const char *fmt, ...)
{
    va_list ap;
    fputs("baton: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(code);
}

/* A task/run/event id: a positive decimal integer and nothing else. */
bool parse_id(const char *s, long long *out)
{
    if (!s || !*s || *s == '-' || *s == '+') return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v <= 0) return false;
    if (out) *out = v;
    return true;
}

bool parse_positive_int(const char *s, int *out)
{
    long long v;
    if (!parse_id(s, &v) || v > 1000000000) return false;
    *out = (int)v;
    return true;
}

void buf_add(Buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) die(EXIT_FAILED, "out of memory");
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void buf_puts(Buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

void buf_printf(Buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    char *tmp = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(tmp, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf_add(b, tmp, (size_t)n);
    free(tmp);
}

void buf_free(Buf *b)
{
    free(b->s);
    b->s = NULL;
    b->len = b->cap = 0;
}

/* Parses a command's flags (--name VALUE, --name=VALUE, --flag) and positional
 * arguments; the shared --json and --dsn are accepted anywhere.  Usage errors
 * exit 2 with one line naming the command. */
int parse_flags(const char *cmd, int argc, char **argv, const Flag *flags, char **pos, int maxpos)
{
    int npos = 0;
    for (int i = 0; i < argc; i++) {
        char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            if (npos >= maxpos) die(EXIT_USAGE, "%s: unexpected argument \"%s\" (see baton help)", cmd, a);
            pos[npos++] = a;
            continue;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        if (nlen == 4 && strncmp(name, "json", 4) == 0 && !eq) { O.json = true; continue; }
        if (nlen == 8 && strncmp(name, "no-color", 8) == 0 && !eq) { O.color = false; continue; }
        if (nlen == 3 && strncmp(name, "dsn", 3) == 0) {
            if (eq) O.dsn = eq + 1;
            else if (i + 1 < argc) O.dsn = argv[++i];
            else die(EXIT_USAGE, "%s: --dsn needs a value", cmd);
            continue;
        }
        const Flag *f = NULL;
        for (const Flag *g = flags; g && g->name; g++)
            if (strlen(g->name) == nlen && strncmp(g->name, name, nlen) == 0) f = g;
        if (!f) die(EXIT_USAGE, "%s: unknown option --%.*s (see baton help)", cmd, (int)nlen, name);
        if (f->has_value) {
            if (eq) *f->value = eq + 1;
            else if (i + 1 < argc) *f->value = argv[++i];
            else die(EXIT_USAGE, "%s: --%s needs a value", cmd, f->name);
        } else {
            if (eq) die(EXIT_USAGE, "%s: --%s takes no value", cmd, f->name);
            *f->flag = true;
        }
    }
    return npos;
}

/* Appends s as a JSON string literal (quoted, escaped; "<" escaped too so it can never close a tag). */
void buf_json_str(Buf *b, const char *s)
{
    buf_puts(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') buf_printf(b, "\\%c", *p);
        else if (*p < 0x20 || *p == '<' || *p == '>' || *p == '&') buf_printf(b, "\\u%04x", *p);
        else buf_add(b, (const char *)p, 1);
    }
    buf_puts(b, "\"");
}
