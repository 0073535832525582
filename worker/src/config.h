/* config.h — the option table and the parsed configuration of baton-worker. */
#ifndef BATON_CONFIG_H
#define BATON_CONFIG_H

#include "common.h"

enum handler_kind { H_EXEC, H_STREAM, H_HTTP, H_SQL, H_NOOP };
enum tick_mode { TICK_AUTO, TICK_ON, TICK_OFF };

typedef struct strlist {
    char **v;
    int    n;
} strlist;

/* One [queue NAME] section. */
typedef struct queue_conf {
    char   *name;
    int     line;          /* line of the section header, for messages */
    int     handler;
    char   *command;
    strlist argv;          /* command split into words */
    char   *url;
    strlist headers;
    char   *statement;
    int64_t timeout_ms;
    int     concurrency;   /* 0 = the [worker] concurrency */
    int64_t max_output;
    char   *workdir;
    int     processes;
    int     refs;          /* a task's snapshot (task.c): the holders of this copy */
    struct queue_conf *next;
} queue_conf;

/* The whole file. */
typedef struct config {
    char   *path;
    int     concurrency;
    char   *dsn;
    char   *id;
    bool    listen;
    int64_t poll_interval_ms;
    int     max_batch;
    int     tick;
    int64_t tick_interval_ms;
    int64_t grace_ms;
    int64_t kill_grace_ms;
    int64_t seen_interval_ms;
    int64_t reconnect_max_ms;
    int     log_format;    /* 0 text, 1 json */
    int     log_level;
    char   *metrics_listen;
    char   *listen_dsn;        /* direct conninfo for LISTEN only; "" = none */
    int64_t pooled_poll_interval_ms;
    queue_conf *queues;
    int     nqueues;
} config;

/* Parses and validates path; on failure returns NULL and sets *errors (malloc'd,
 * one "file:line: message" per line). */
config *config_load(const char *path, char **errors);
void    config_free(config *c);
/* Writes the option table as Markdown (for docs and --print-config). */
void    config_print_table(void);
/* Splits a command line into words (no shell; '...' and "..." quoting, backslash escapes).
 * Returns 0, or -1 with a message in err. */
int     split_command(const char *s, strlist *out, char *err, size_t errlen);
void    strlist_free(strlist *l);
queue_conf *config_queue(config *c, const char *name);
const char *handler_name(int h);
/* Reports options whose change needs a restart (compares old and new); logs them. */
void    config_warn_static(const config *old, const config *neu);

#endif
