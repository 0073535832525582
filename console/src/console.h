/* console.h — shared declarations of the `baton` command line and its web dashboard. */
#ifndef BATON_CONSOLE_H
#define BATON_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <libpq-fe.h>

/* Exit codes, the same for every command (docs/console.md). */
enum {
    EXIT_OK = 0,      /* done; for wait/start --wait: the run succeeded */
    EXIT_FAILED = 1,  /* the thing asked about failed, or the database refused */
    EXIT_USAGE = 2,   /* bad command line or bad input */
    EXIT_CONN = 3     /* cannot connect, or the extension is missing */
};

/* SQLSTATEs the console tells apart. */
#define SQLSTATE_UNDEFINED_OBJECT "42704"
#define SQLSTATE_NO_DATA_FOUND    "P0002"
#define SQLSTATE_DATA_EXCEPTION_CLASS "22"
#define SQLSTATE_INSUFFICIENT_PRIVILEGE "42501"

/* Options every command shares. */
typedef struct {
    const char *dsn;
    bool json;
    bool color;
} Opts;

extern Opts O;

/* util.c */
void *xmalloc(size_t n);
char *xstrdup(const char *s);
void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
bool parse_id(const char *s, long long *out);
bool parse_positive_int(const char *s, int *out);

/* Growable string buffer. */
typedef struct {
    char *s;
    size_t len, cap;
} Buf;
void buf_add(Buf *b, const char *s, size_t n);
void buf_puts(Buf *b, const char *s);
void buf_printf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_free(Buf *b);
void buf_json_str(Buf *b, const char *s);

/* db.c */
PGconn *db_connect(const char *dsn, char *err, size_t errlen);
PGconn *db_connect_or_die(void);
PGresult *db_query(PGconn *c, const char *sql, int n, const char *const *params);
int db_error_exit(const PGresult *r);
const char *db_error_line(PGconn *c, const PGresult *r, char *out, size_t n);
PGresult *db_query_or_die(PGconn *c, const char *sql, int n, const char *const *params);
char *db_json(PGconn *c, const char *sql, int n, const char *const *params, bool pretty, bool object,
              PGresult **fail);

/* out.c */
void out_table(const PGresult *r, const char *const *cols);
void out_json(PGconn *c, const char *sql, int n, const char *const *params, bool object);
void out_json_rows(PGconn *c, const char *sql, int n, const char *const *params);
const char *state_color(const char *state);
void out_kv(const char *key, const char *value);


/* cli_read.c / cli_act.c: commands; each returns an exit code. */
typedef int (*CmdFn)(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_tasks(int argc, char **argv);
int cmd_task(int argc, char **argv);
int cmd_runs(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_events(int argc, char **argv);
int cmd_subscriptions(int argc, char **argv);
int cmd_schedules(int argc, char **argv);
int cmd_workflows(int argc, char **argv);
int cmd_trace(int argc, char **argv);
int cmd_retry(int argc, char **argv);
int cmd_cancel(int argc, char **argv);
int cmd_pause(int argc, char **argv);
int cmd_resume(int argc, char **argv);
int cmd_enqueue(int argc, char **argv);
int cmd_start(int argc, char **argv);
int cmd_publish(int argc, char **argv);
int cmd_wait(int argc, char **argv);
int cmd_web(int argc, char **argv);

void check_queue(PGconn *c, const char *cmd, const char *queue);

/* wait.c */
int wait_run(PGconn *c, const char *run, double timeout_s, bool quiet);

/* graph.c: Graphviz layout to SVG; returns malloc'd SVG or NULL with err set. */
char *graph_run_svg(PGconn *c, const char *run, char *err, size_t errlen);
char *graph_trace_svg(PGconn *c, const char *correlation, char *err, size_t errlen);

/* Command-line flag parsing shared by commands: --name VALUE or --name=VALUE. */
typedef struct {
    const char *name;   /* without dashes */
    bool has_value;
    const char **value; /* where a value goes */
    bool *flag;         /* where a bare flag goes */
} Flag;
int parse_flags(const char *cmd, int argc, char **argv, const Flag *flags, char **pos, int maxpos);

#endif
