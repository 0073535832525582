/* config.c — the option table (name, type, default, reloadable, help) and a small INI reader.
 *
 * Why not Debian's libinih: it is built with INI_HANDLER_LINENO=0, so its handler
 * cannot learn the line of a key and cannot report "file:line" for a semantic
 * error (bad value, unknown key) — the issue pins that every error names its
 * line.  Its default inline-comment rule (';' only) also disagrees with the
 * pinned config shape, which uses '#'.  The reader below (config_load) is small. */
#include "config.h"
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum opt_type { T_INT, T_BOOL, T_DURATION, T_SIZE, T_ENUM, T_STRING, T_LIST };
#define SEC_WORKER 0
#define SEC_QUEUE  1
/* Handler masks for queue keys. */
#define M_EXEC   (1 << H_EXEC)
#define M_STREAM (1 << H_STREAM)
#define M_HTTP   (1 << H_HTTP)
#define M_SQL    (1 << H_SQL)
#define M_NOOP   (1 << H_NOOP)
#define M_ALL    (M_EXEC | M_STREAM | M_HTTP | M_SQL | M_NOOP)

typedef struct opt {
    int         section;
    const char *name;
    int         type;
    const char *def;         /* default, in config syntax; NULL = required/none */
    bool        reloadable;
    const char *help;
    size_t      off;
    const char *enums;       /* "a|b|c" for T_ENUM */
    int64_t     min, max;
    int         handlers;    /* for queue keys: which handlers accept it */
} opt;

#define W(f) offsetof(config, f)
#define Q(f) offsetof(queue_conf, f)

/* The one table: parsing, defaults, --print-config and docs/worker.md all come from it. */
static const opt options[] = {
    {SEC_WORKER, "concurrency", T_INT, "32", true, "tasks in flight in this process (all queues together)",
     W(concurrency), NULL, 1, 100000, 0},
    {SEC_WORKER, "dsn", T_STRING, "", false,
     "libpq conninfo or URI; empty = PG* environment / service file; --dsn overrides", W(dsn), NULL, 0, 0, 0},
    {SEC_WORKER, "id", T_STRING, "", false, "worker id in baton.workers; empty = host:pid:random", W(id), NULL, 0,
     0, 0},
    {SEC_WORKER, "listen", T_BOOL, "on", false,
     "LISTEN baton_tasks on the dsn's session for wake-ups, unless a transaction pooler is detected; "
     "off = pooled mode (no LISTEN, claims not session-bound)",
     W(listen), NULL, 0, 0, 0},
    {SEC_WORKER, "listen_dsn", T_STRING, "", false,
     "a direct (unpooled) conninfo used only to LISTEN for wake-ups and cancellations; set = the dsn is taken for pooled",
     W(listen_dsn), NULL, 0, 0, 0},
    {SEC_WORKER, "poll_interval", T_DURATION, "5s", true, "claim at least this often even without a wake-up",
     W(poll_interval_ms), NULL, 10, 86400000, 0},
    {SEC_WORKER, "pooled_poll_interval", T_DURATION, "500ms", true,
     "claim at least this often while no LISTEN delivers wake-ups (pooled mode without listen_dsn)",
     W(pooled_poll_interval_ms), NULL, 10, 86400000, 0},
    {SEC_WORKER, "max_batch", T_INT, "100", true, "most tasks claimed (or reported) in one statement",
     W(max_batch), NULL, 1, 10000, 0},
    {SEC_WORKER, "tick", T_ENUM, "auto", true,
     "call baton.tick(): auto = only while no 'baton scheduler' background worker runs for the database",
     W(tick), "auto|on|off", 0, 0, 0},
    {SEC_WORKER, "tick_interval", T_DURATION, "1s", true, "how often to call baton.tick()", W(tick_interval_ms),
     NULL, 10, 86400000, 0},
    {SEC_WORKER, "grace", T_DURATION, "30s", true,
     "on SIGTERM, how long in-flight tasks may finish before they are released", W(grace_ms), NULL, 0, 86400000, 0},
    {SEC_WORKER, "kill_grace", T_DURATION, "5s", true, "time between SIGTERM and SIGKILL of a child process group",
     W(kill_grace_ms), NULL, 0, 3600000, 0},
    {SEC_WORKER, "seen_interval", T_DURATION, "2s", true,
     "how often to refresh the worker's row (worker_seen); keep it well under baton.worker_timeout (10s)",
     W(seen_interval_ms), NULL, 100, 86400000, 0},
    {SEC_WORKER, "reconnect_max", T_DURATION, "10s", true, "longest pause between reconnect attempts (backoff cap)",
     W(reconnect_max_ms), NULL, 10, 3600000, 0},
    {SEC_WORKER, "log_format", T_ENUM, "text", true, "log lines on stderr as text or json", W(log_format),
     "text|json", 0, 0, 0},
    {SEC_WORKER, "log_level", T_ENUM, "info", true, "least severe level logged", W(log_level),
     "debug|info|warn|error", 0, 0, 0},
    {SEC_WORKER, "metrics_listen", T_STRING, "", false,
     "host:port for a Prometheus /metrics endpoint; empty = off", W(metrics_listen), NULL, 0, 0, 0},

    {SEC_QUEUE, "handler", T_ENUM, NULL, true, "how tasks of this queue run (required)", Q(handler),
     "exec|stream|http|sql|noop", 0, 0, M_ALL},
    {SEC_QUEUE, "command", T_STRING, NULL, true,
     "program and arguments, split like a shell without one ('...' and \"...\" quote); required for exec and stream",
     Q(command), NULL, 0, 0, M_EXEC | M_STREAM},
    {SEC_QUEUE, "workdir", T_STRING, "", true, "working directory of the command; empty = the worker's",
     Q(workdir), NULL, 0, 0, M_EXEC | M_STREAM},
    {SEC_QUEUE, "processes", T_INT, "1", true, "co-processes started for a stream queue", Q(processes), NULL, 1,
     1024, M_STREAM},
    {SEC_QUEUE, "url", T_STRING, NULL, true, "where the task JSON is POSTed; required for http", Q(url), NULL, 0, 0,
     M_HTTP},
    {SEC_QUEUE, "header", T_LIST, "", true, "extra request header 'Name: value' (repeat the key for more)",
     Q(headers), NULL, 0, 0, M_HTTP},
    {SEC_QUEUE, "statement", T_STRING, NULL, true,
     "SQL run with $1 = payload (jsonb), $2 = task id (bigint); required for sql", Q(statement), NULL, 0, 0, M_SQL},
    {SEC_QUEUE, "timeout", T_DURATION, "30s", true, "longest run of a task without its own timeout; then it is stopped and fails for retry",
     Q(timeout_ms), NULL, 1, 604800000, M_ALL},
    {SEC_QUEUE, "concurrency", T_INT, "0", true, "tasks of this queue in flight; 0 = the [worker] concurrency",
     Q(concurrency), NULL, 0, 100000, M_ALL},
    {SEC_QUEUE, "max_output", T_SIZE, "1MiB", true, "cap on a result (stdout, response body, stream line)",
     Q(max_output), NULL, 1024, 1073741824, M_EXEC | M_STREAM | M_HTTP},
};
#define NOPTIONS (sizeof options / sizeof options[0])

static const char *type_names[] = {"int", "bool", "duration", "size", "enum", "string", "list"};

/* The config name of a handler kind. */
const char *handler_name(int h)
{
    static const char *n[] = {"exec", "stream", "http", "sql", "noop"};
    return h >= 0 && h <= H_NOOP ? n[h] : "?";
}

/* Frees every string and the list. */
void strlist_free(strlist *l)
{
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* Adds a copy of s. */
static void strlist_add(strlist *l, const char *s)
{
    l->v = xrealloc(l->v, sizeof(char *) * (size_t)(l->n + 2));
    l->v[l->n++] = xstrdup(s);
    l->v[l->n] = NULL;
}

/* Splits a command into argv words; 0, or -1 with a message in err. */
int split_command(const char *s, strlist *out, char *err, size_t errlen)
{
    buf w;
    buf_init(&w);
    out->v = NULL;
    out->n = 0;
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == '\t') p++;
        if (!*p) break;
        buf_reset(&w);
        buf_add(&w, "", 0);
        while (*p && *p != ' ' && *p != '\t') {
            if (*p == '\'') {
                const char *e = strchr(p + 1, '\'');
                if (!e) { snprintf(err, errlen, "unterminated ' quote"); goto fail; }
                buf_add(&w, p + 1, (size_t)(e - p - 1));
                p = e + 1;
            } else if (*p == '"') {
                p++;
                while (*p && *p != '"') {
                    if (*p == '\\' && (p[1] == '"' || p[1] == '\\')) p++;
                    buf_addc(&w, *p++);
                }
                if (*p != '"') { snprintf(err, errlen, "unterminated \" quote"); goto fail; }
                p++;
            } else if (*p == '\\' && p[1]) {
                buf_addc(&w, p[1]);
                p += 2;
            } else {
                buf_addc(&w, *p++);
            }
        }
        strlist_add(out, w.data);
    }
    buf_free(&w);
    if (out->n == 0) {
        snprintf(err, errlen, "is empty");
        return -1;
    }
    return 0;
fail:
    buf_free(&w);
    strlist_free(out);
    return -1;
}

/* Parses a duration ("500ms", "30s", "2m", "1h", "1d"; a bare number is seconds) into ms. */
static bool parse_duration(const char *v, int64_t *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (end == v || errno || d < 0) return false;
    while (*end == ' ') end++;
    double mul;
    if (!*end || !strcmp(end, "s")) mul = 1000;
    else if (!strcmp(end, "ms")) mul = 1;
    else if (!strcmp(end, "m") || !strcmp(end, "min")) mul = 60000;
    else if (!strcmp(end, "h")) mul = 3600000;
    else if (!strcmp(end, "d")) mul = 86400000;
    else return false;
    if (d * mul > 9e15) return false;
    *out = (int64_t)(d * mul + 0.5);
    return true;
}

/* Parses a size ("1MiB", "512KiB", "4096", "2M") into bytes. */
static bool parse_size(const char *v, int64_t *out)
{
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (end == v || errno || n < 0) return false;
    while (*end == ' ') end++;
    int64_t mul;
    if (!*end || !strcmp(end, "B")) mul = 1;
    else if (!strcasecmp(end, "K") || !strcmp(end, "KiB") || !strcmp(end, "kB")) mul = 1024;
    else if (!strcasecmp(end, "M") || !strcmp(end, "MiB") || !strcmp(end, "MB")) mul = 1024 * 1024;
    else if (!strcasecmp(end, "G") || !strcmp(end, "GiB") || !strcmp(end, "GB")) mul = 1024 * 1024 * 1024;
    else return false;
    if (n > INT64_MAX / mul) return false;
    *out = n * mul;
    return true;
}

/* Strips one pair of matching surrounding quotes (strings other than command). */
static char *unquote(const char *v)
{
    size_t n = strlen(v);
    if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) return xstrndup(v + 1, n - 2);
    return xstrdup(v);
}

/* Stores value v of option o into the struct at base; returns NULL or a static message. */
static const char *set_value(const opt *o, void *base, const char *v, char *msg, size_t msglen)
{
    char *field = (char *)base + o->off;
    switch (o->type) {
    case T_INT: {
        char *end;
        errno = 0;
        long long n = strtoll(v, &end, 10);
        if (end == v || *end || errno) { snprintf(msg, msglen, "%s: \"%s\" is not an integer", o->name, v); return msg; }
        if (n < o->min || n > o->max) {
            snprintf(msg, msglen, "%s: %lld is out of range %lld..%lld", o->name, n, (long long)o->min,
                     (long long)o->max);
            return msg;
        }
        *(int *)field = (int)n;
        return NULL;
    }
    case T_BOOL:
        if (!strcasecmp(v, "on") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcmp(v, "1"))
            *(bool *)field = true;
        else if (!strcasecmp(v, "off") || !strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcmp(v, "0"))
            *(bool *)field = false;
        else { snprintf(msg, msglen, "%s: \"%s\" is not a boolean (on/off)", o->name, v); return msg; }
        return NULL;
    case T_DURATION:
    case T_SIZE: {
        int64_t n;
        bool ok = o->type == T_DURATION ? parse_duration(v, &n) : parse_size(v, &n);
        if (!ok) {
            snprintf(msg, msglen, "%s: \"%s\" is not a %s", o->name, v,
                     o->type == T_DURATION ? "duration (e.g. 500ms, 30s, 5m)" : "size (e.g. 4096, 64KiB, 1MiB)");
            return msg;
        }
        if (n < o->min || n > o->max) {
            snprintf(msg, msglen, "%s: \"%s\" is out of range", o->name, v);
            return msg;
        }
        *(int64_t *)field = n;
        return NULL;
    }
    case T_ENUM: {
        int i = 0;
        const char *p = o->enums;
        size_t vl = strlen(v);
        while (p) {
            const char *bar = strchr(p, '|');
            size_t l = bar ? (size_t)(bar - p) : strlen(p);
            if (l == vl && !strncmp(p, v, l)) { *(int *)field = i; return NULL; }
            i++;
            p = bar ? bar + 1 : NULL;
        }
        snprintf(msg, msglen, "%s: \"%s\" is not one of %s", o->name, v, o->enums);
        return msg;
    }
    case T_STRING:
        free(*(char **)field);
        *(char **)field = unquote(v);
        return NULL;
    case T_LIST:
        if (*v) strlist_add((strlist *)field, v);
        return NULL;
    }
    return NULL;
}

/* Finds the option of a section by name. */
static const opt *find_opt(int section, const char *name)
{
    for (size_t i = 0; i < NOPTIONS; i++)
        if (options[i].section == section && !strcmp(options[i].name, name)) return &options[i];
    return NULL;
}

/* Applies every default of a section (required keys stay unset). */
static void apply_defaults(int section, void *base)
{
    char msg[256];
    for (size_t i = 0; i < NOPTIONS; i++)
        if (options[i].section == section && options[i].def) set_value(&options[i], base, options[i].def, msg, sizeof msg);
}

/* Removes a trailing comment: '#' or ';' at the start or after whitespace, outside quotes. */
static void strip_comment(char *s)
{
    char q = 0;
    for (char *p = s; *p; p++) {
        if (q) { if (*p == q) q = 0; continue; }
        if (*p == '\'' || *p == '"') { q = *p; continue; }
        if ((*p == '#' || *p == ';') && (p == s || p[-1] == ' ' || p[-1] == '\t')) { *p = '\0'; return; }
    }
}

/* Trims spaces at both ends in place. */
static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n')) s[--n] = '\0';
    return s;
}

/* A queue name as baton.create_queue accepts it. */
static bool valid_queue_name(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 128) return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("_.:-", *p)) return false;
    return true;
}

/* Frees a config and all its queue sections. */
void config_free(config *c)
{
    if (!c) return;
    queue_conf *q = c->queues;
    while (q) {
        queue_conf *n = q->next;
        free(q->name);
        free(q->command);
        strlist_free(&q->argv);
        free(q->url);
        strlist_free(&q->headers);
        free(q->statement);
        free(q->workdir);
        free(q);
        q = n;
    }
    free(c->path);
    free(c->dsn);
    free(c->id);
    free(c->metrics_listen);
    free(c->listen_dsn);
    free(c);
}

/* The [queue NAME] section of that name, or NULL. */
queue_conf *config_queue(config *c, const char *name)
{
    for (queue_conf *q = c->queues; q; q = q->next)
        if (!strcmp(q->name, name)) return q;
    return NULL;
}

/* Checks a finished queue section: required keys per handler, command syntax. */
static void check_queue(config *c, queue_conf *q, bool has_handler, buf *errs)
{
    const char *f = c->path;
    if (!has_handler) {
        buf_printf(errs, "%s:%d: [queue %s]: missing handler (exec|stream|http|sql|noop)\n", f, q->line, q->name);
        return;
    }
    if ((q->handler == H_EXEC || q->handler == H_STREAM) && !q->command)
        buf_printf(errs, "%s:%d: [queue %s]: handler %s needs command\n", f, q->line, q->name, handler_name(q->handler));
    if (q->handler == H_HTTP && !q->url)
        buf_printf(errs, "%s:%d: [queue %s]: handler http needs url\n", f, q->line, q->name);
    if (q->handler == H_HTTP && q->url && strncmp(q->url, "http://", 7) && strncmp(q->url, "https://", 8))
        buf_printf(errs, "%s:%d: [queue %s]: url must start with http:// or https://\n", f, q->line, q->name);
    if (q->handler == H_SQL && (!q->statement || !*q->statement))
        buf_printf(errs, "%s:%d: [queue %s]: handler sql needs statement\n", f, q->line, q->name);
    if (q->handler == H_HTTP)
        for (int i = 0; i < q->headers.n; i++)
            if (!strchr(q->headers.v[i], ':'))
                buf_printf(errs, "%s:%d: [queue %s]: header \"%s\" must look like 'Name: value'\n", f, q->line,
                           q->name, q->headers.v[i]);
}

/* Reads and validates a config file; NULL with every error (file:line) in *errors. */
config *config_load(const char *path, char **errors)
{
    *errors = NULL;
    FILE *fp = fopen(path, "r");
    if (!fp) {
        buf e;
        buf_init(&e);
        buf_printf(&e, "%s: cannot open: %s\n", path, strerror(errno));
        *errors = buf_steal(&e);
        return NULL;
    }
    config *c = xcalloc(1, sizeof *c);
    c->path = xstrdup(path);
    apply_defaults(SEC_WORKER, c);
    buf errs;
    buf_init(&errs);
    int section = -1;          /* -1 = before any section */
    queue_conf *q = NULL, **tail = &c->queues;
    bool q_has_handler = false;
    unsigned seen_worker_keys = 0;   /* bit per option index, to refuse duplicates */
    uint64_t seen_queue_keys = 0;
    bool seen_worker = false;
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0;
    char msg[512];

    while (getline(&line, &cap, fp) >= 0) {
        lineno++;
        char *s = trim(line);
        if (!*s || *s == '#' || *s == ';') continue;
        if (*s == '[') {
            strip_comment(s);
            s = trim(s);
            size_t n = strlen(s);
            if (s[n - 1] != ']') { buf_printf(&errs, "%s:%d: section header must end with ]\n", path, lineno); section = -2; continue; }
            s[n - 1] = '\0';
            char *name = trim(s + 1);
            if (q) check_queue(c, q, q_has_handler, &errs);
            q = NULL;
            if (!strcmp(name, "worker")) {
                if (seen_worker) buf_printf(&errs, "%s:%d: duplicate [worker] section\n", path, lineno);
                seen_worker = true;
                section = SEC_WORKER;
            } else if (!strncmp(name, "queue", 5) && (name[5] == ' ' || name[5] == '\t')) {
                char *qn = trim(name + 5);
                if (!valid_queue_name(qn)) {
                    buf_printf(&errs, "%s:%d: queue name \"%s\" must be 1-128 letters, digits, _ . : -\n", path,
                               lineno, qn);
                    section = -2;
                    continue;
                }
                if (config_queue(c, qn)) {
                    buf_printf(&errs, "%s:%d: duplicate [queue %s] section\n", path, lineno, qn);
                    section = -2;
                    continue;
                }
                q = xcalloc(1, sizeof *q);
                q->name = xstrdup(qn);
                q->line = lineno;
                apply_defaults(SEC_QUEUE, q);
                *tail = q;
                tail = &q->next;
                c->nqueues++;
                q_has_handler = false;
                seen_queue_keys = 0;
                section = SEC_QUEUE;
            } else {
                buf_printf(&errs, "%s:%d: unknown section [%s] (expected [worker] or [queue NAME])\n", path, lineno, name);
                section = -2;
            }
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq) { buf_printf(&errs, "%s:%d: expected key = value\n", path, lineno); continue; }
        *eq = '\0';
        char *key = trim(s);
        char *val = eq + 1;
        strip_comment(val);
        val = trim(val);
        if (section == -2) continue;   /* already reported the bad section */
        if (section == -1) { buf_printf(&errs, "%s:%d: key %s outside of a section\n", path, lineno, key); continue; }
        const opt *o = find_opt(section, key);
        if (!o) {
            buf_printf(&errs, "%s:%d: unknown key \"%s\" in [%s]\n", path, lineno, key,
                       section == SEC_WORKER ? "worker" : "queue");
            continue;
        }
        unsigned idx = (unsigned)(o - options);
        if (o->type != T_LIST) {
            if (section == SEC_WORKER ? (seen_worker_keys >> idx) & 1 : (seen_queue_keys >> idx) & 1) {
                buf_printf(&errs, "%s:%d: duplicate key %s\n", path, lineno, key);
                continue;
            }
            if (section == SEC_WORKER) seen_worker_keys |= 1u << idx;
            else seen_queue_keys |= (uint64_t)1 << idx;
        }
        if (section == SEC_QUEUE && strcmp(key, "handler") && q_has_handler && !(o->handlers & (1 << q->handler))) {
            buf_printf(&errs, "%s:%d: key %s does not apply to handler %s\n", path, lineno, key, handler_name(q->handler));
            continue;
        }
        if (o->type != T_STRING && o->type != T_LIST && !*val) {
            buf_printf(&errs, "%s:%d: %s: value is empty\n", path, lineno, key);
            continue;
        }
        const char *err = set_value(o, section == SEC_WORKER ? (void *)c : (void *)q, val, msg, sizeof msg);
        if (err) { buf_printf(&errs, "%s:%d: %s\n", path, lineno, err); continue; }
        if (section == SEC_QUEUE && !strcmp(key, "handler")) {
            q_has_handler = true;
            /* Keys given before the handler line are checked now. */
            for (size_t i = 0; i < NOPTIONS; i++)
                if (options[i].section == SEC_QUEUE && ((seen_queue_keys >> i) & 1) && !(options[i].handlers & (1 << q->handler)))
                    buf_printf(&errs, "%s:%d: key %s does not apply to handler %s\n", path, lineno, options[i].name,
                               handler_name(q->handler));
        }
        if (section == SEC_QUEUE && !strcmp(key, "command")) {
            char e[128];
            strlist_free(&q->argv);
            free(q->command);
            q->command = xstrdup(val);
            if (split_command(val, &q->argv, e, sizeof e) < 0)
                buf_printf(&errs, "%s:%d: command %s\n", path, lineno, e);
        }
    }
    free(line);
    fclose(fp);
    if (q) check_queue(c, q, q_has_handler, &errs);
    if (c->nqueues == 0 && !errs.len) buf_printf(&errs, "%s:%d: no [queue NAME] section: nothing to serve\n", path, lineno);
    if (errs.len) {
        *errors = buf_steal(&errs);
        config_free(c);
        return NULL;
    }
    buf_free(&errs);
    return c;
}

/* Prints the option table as Markdown (--print-config, docs/worker.md). */
void config_print_table(void)
{
    printf("| section | key | type | default | reloadable | meaning |\n");
    printf("|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < NOPTIONS; i++) {
        const opt *o = &options[i];
        char type[96];
        if (o->type == T_ENUM) snprintf(type, sizeof type, "%s", o->enums);
        else snprintf(type, sizeof type, "%s", type_names[o->type]);
        /* A '|' inside a cell would split the Markdown table. */
        for (char *p = type; *p; p++) if (*p == '|') *p = '/';
        printf("| %s | `%s` | %s | %s | %s | %s |\n", o->section == SEC_WORKER ? "worker" : "queue", o->name, type,
               o->def == NULL ? "(required)" : (*o->def ? o->def : "(empty)"), o->reloadable ? "yes" : "no", o->help);
    }
}

/* Warns about changed keys that only a restart applies. */
void config_warn_static(const config *old, const config *neu)
{
    if (strcmp(old->dsn, neu->dsn)) log_warn("config reload: dsn changed; it takes effect only after a restart");
    if (strcmp(old->id, neu->id)) log_warn("config reload: id changed; it takes effect only after a restart");
    if (old->listen != neu->listen) log_warn("config reload: listen changed; it takes effect only after a restart");
    if (strcmp(old->listen_dsn, neu->listen_dsn))
        log_warn("config reload: listen_dsn changed; it takes effect only after a restart");
    if (strcmp(old->metrics_listen, neu->metrics_listen))
        log_warn("config reload: metrics_listen changed; it takes effect only after a restart");
}
