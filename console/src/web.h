/* web.h — declarations shared by the dashboard's HTTP server, its JSON API and its embedded files. */
#ifndef BATON_WEB_H
#define BATON_WEB_H

#include <stddef.h>

/* One embedded static file (src/assets.c, generated from web/ by embed.sh). */
typedef struct {
    const char *path, *mime;
    const unsigned char *data;
    size_t len;
} Asset;
extern const Asset ASSETS[];

/* An API answer: status, content type, malloc'd body. */
typedef struct {
    int status;
    const char *mime;
    char *body;
} Resp;

/* A request's query argument, or NULL (implemented by web.c over libmicrohttpd). */
typedef const char *(*ArgFn)(void *ctx, const char *name);

struct pg_conn;
void api_get(struct pg_conn *c, const char *path, ArgFn arg, void *ctx, const char *csrf, Resp *out);
void api_post(struct pg_conn *c, const char *path, ArgFn arg, void *ctx, Resp *out);

#endif
