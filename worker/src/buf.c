/* buf.c — growable buffers, checked allocation and clock helpers used everywhere. */
#include "common.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Aborts: out of memory leaves no sane way to continue. */
static void oom(void)
{
    static const char msg[] = "baton-worker: out of memory\n";
    fwrite(msg, 1, sizeof msg - 1, stderr);
    abort();
}

/* malloc that never returns NULL. */
void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) oom();
    return p;
}

/* calloc that never returns NULL. */
void *xcalloc(size_t n, size_t m)
{
    void *p = calloc(n ? n : 1, m ? m : 1);
    if (!p) oom();
    return p;
}

/* realloc that never returns NULL. */
void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) oom();
    return q;
}

/* strdup that never returns NULL. */
char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

/* Copies n bytes into a new NUL-terminated string. */
char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* Makes b an empty buffer without memory. */
void buf_init(buf *b)
{
    b->data = NULL;
    b->len = b->cap = 0;
}

/* Frees the memory of b and makes it empty. */
void buf_free(buf *b)
{
    free(b->data);
    buf_init(b);
}

/* Empties b, keeping its memory. */
void buf_reset(buf *b)
{
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

/* Makes room for n more bytes plus the terminating NUL (callers that know the size avoid regrowing). */
void buf_grow(buf *b, size_t n)
{
    if (b->len + n + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + n + 1) cap *= 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
}

/* Appends n bytes. */
void buf_add(buf *b, const void *p, size_t n)
{
    buf_grow(b, n);
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

/* Appends a C string. */
void buf_adds(buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

/* Appends one byte. */
void buf_addc(buf *b, char c)
{
    buf_add(b, &c, 1);
}

/* Appends printf-formatted text: one formatting pass when it fits the room
   left (the usual case), a second only after growing. */
void buf_printf(buf *b, const char *fmt, ...)
{
    va_list ap;
    buf_grow(b, 64);
    size_t room = b->cap - b->len;
    va_start(ap, fmt);
    int n = vsnprintf(b->data + b->len, room, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->data[b->len] = '\0';
        return;
    }
    if ((size_t)n >= room) {
        buf_grow(b, (size_t)n);
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

/* Appends a decimal integer without printf (the hot paths write thousands per batch). */
void buf_add_int(buf *b, int64_t v)
{
    char tmp[24], *p = tmp + sizeof tmp;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) *--p = '-';
    buf_add(b, p, (size_t)(tmp + sizeof tmp - p));
}

/* Hands over the string (caller frees) and leaves b empty. */
char *buf_steal(buf *b)
{
    char *s = b->data ? b->data : xstrdup("");
    buf_init(b);
    return s;
}

/* Drops the first n bytes (a consumed prefix of a stream). */
void buf_consume(buf *b, size_t n)
{
    if (n >= b->len) {
        buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

/* Monotonic clock in milliseconds. */
int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sets O_NONBLOCK; 0 or -1. */
int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0) return -1;
    return fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}
