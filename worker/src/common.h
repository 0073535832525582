/* common.h — shared small utilities of baton-worker: growable buffers, clocks, allocation. */
#ifndef BATON_COMMON_H
#define BATON_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdarg.h>

#ifndef BATON_VERSION
#define BATON_VERSION "0.0.0"
#endif

/* A growable byte buffer, always NUL-terminated when data is not NULL. */
typedef struct buf {
    char  *data;
    size_t len;
    size_t cap;
} buf;

void  buf_init(buf *b);
void  buf_free(buf *b);
void  buf_reset(buf *b);
void  buf_add(buf *b, const void *p, size_t n);
void  buf_adds(buf *b, const char *s);
void  buf_addc(buf *b, char c);
void  buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void  buf_add_int(buf *b, int64_t v);
void  buf_grow(buf *b, size_t n);     /* room for n more bytes */
char *buf_steal(buf *b);            /* returns the malloc'd string (never NULL) and resets b */
void  buf_consume(buf *b, size_t n); /* drops the first n bytes */

/* Allocation that aborts on out-of-memory: the daemon cannot do anything useful then. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Monotonic milliseconds, for timers. */
int64_t now_ms(void);
/* Sets O_NONBLOCK on fd; returns 0 or -1. */
int set_nonblock(int fd);

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
