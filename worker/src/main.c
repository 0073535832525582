/* main.c — baton-worker's command line, signals (self-pipe; handlers only set flags), drain and the main loop. */
#include "worker.h"
#include "log.h"

#include <errno.h>
#include <libpq-fe.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t got_term, got_int, got_hup, got_chld;
static int sigpipe_fds[2] = {-1, -1};

/* Only sets flags and pokes the self-pipe: all work happens in the loop. */
static void on_signal(int sig)
{
    int saved = errno;
    switch (sig) {
    case SIGTERM: got_term++; break;
    case SIGINT: got_int++; break;
    case SIGHUP: got_hup = 1; break;
    case SIGCHLD: got_chld = 1; break;
    }
    char c = 0;
    if (write(sigpipe_fds[1], &c, 1) < 0) { /* full pipe: a wake-up is already pending */ }
    errno = saved;
}

/* Empties the self-pipe. */
static void on_sigpipe(void *arg, int fd, short rev)
{
    char tmp[64];
    (void)arg;
    (void)rev;
    while (read(fd, tmp, sizeof tmp) > 0) {}
}

/* Prints the command-line help. */
static void usage(FILE *f)
{
    fprintf(f,
            "Usage: baton-worker --config FILE [--dsn CONNINFO]\n"
            "       baton-worker --config FILE --check-config\n"
            "       baton-worker --print-config | --version | --help\n"
            "\n"
            "Runs tasks of the baton queues named in FILE ([queue NAME] sections).\n"
            "  --config FILE     the configuration file (INI: [worker] and [queue NAME] sections)\n"
            "  --dsn CONNINFO    libpq connection string or URI (default: [worker] dsn, then PG* environment)\n"
            "  --check-config    validate FILE and, if the database is reachable, that its queues exist;\n"
            "                    exit 0 = valid, 2 = errors (each with file:line)\n"
            "  --print-config    print the table of every config key (Markdown) and exit\n"
            "  --version         print the version and check the extension's version in the database\n"
            "  --help            this text\n"
            "Signals: SIGTERM/SIGINT drain (twice: fast), SIGHUP reloads FILE.\n"
            "Exit codes: 0 clean exit, 1 runtime error, 2 usage or config error, 3 extension version mismatch.\n");
}

/* Kills every child process group we know of. */
static void kill_children(void)
{
    for (task *t = W.tasks; t; t = t->next)
        if (!t->finished) t->cancel = CANCEL_RELEASE;
    pgroups_kill_all();
    for (queue_rt *q = W.queues; q; q = q->next) {
        stream_queue_free(q);
        sql_queue_free(q);
    }
}

/* Fatal exit: kills every child first so none outlives the worker. */
void worker_die(int code)
{
    exec_kill_all();
    kill_children();
    exit(code);
}

/* Collects exited children and hands them to their handler. */
static void reap_children(void)
{
    int   st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        if (!stream_child_exited(pid, st)) exec_child_exited(pid, st);
    }
}

/* SIGHUP: load the file again; an invalid one is logged and the old config stays. */
static void reload(void)
{
    char *errors = NULL;
    config *c = config_load(W.cfg->path, &errors);
    if (!c) {
        log_error("config reload failed; keeping the old configuration:\n%s", errors);
        free(errors);
        return;
    }
    config_warn_static(W.cfg, c);
    /* Options that need a restart keep their running values. */
    free(c->dsn);
    c->dsn = xstrdup(W.cfg->dsn);
    free(c->id);
    c->id = xstrdup(W.cfg->id);
    c->listen = W.cfg->listen;
    free(c->listen_dsn);
    c->listen_dsn = xstrdup(W.cfg->listen_dsn);
    free(c->metrics_listen);
    c->metrics_listen = xstrdup(W.cfg->metrics_listen);
    config *old = W.cfg;
    W.cfg = c;
    queues_sync();
    config_free(old);
    log_setup(c->log_level, c->log_format == 1);
    W.reregister = true;
    log_info("config reloaded from %s (%d queues)", c->path, c->nqueues);
}

/* Builds host:pid:random. */
static char *make_worker_id(void)
{
    unsigned char r[4] = {0};
    if (getrandom(r, sizeof r, 0) != sizeof r) {
        unsigned v = (unsigned)now_ms() ^ (unsigned)getpid();
        memcpy(r, &v, sizeof r);
    }
    char id[512];
    snprintf(id, sizeof id, "%s:%d:%02x%02x%02x%02x", W.host, (int)getpid(), r[0], r[1], r[2], r[3]);
    return xstrdup(id);
}

/* Parses the command line, then runs the loop until the drain ends. */
/* A DSN libpq cannot parse is refused at once (exit 2) rather than retried
 * for ever; it is shown unless it may hold a password. */
static bool dsn_parses(const char *d, const char *from)
{
    char *err = NULL;
    PQconninfoOption *o = PQconninfoParse(d ? d : "", &err);
    if (o) {
        PQconninfoFree(o);
        return true;
    }
    bool secret = d && (strstr(d, "password") || (strstr(d, "://") && strchr(d, '@')));
    fprintf(stderr, "baton-worker: invalid %s %s%s%s: %s%s", from, secret ? "" : "\"", secret ? "(not shown: it may hold a password)" : d,
            secret ? "" : "\"", err ? err : "libpq cannot parse it", err ? "" : "\n");
    PQfreemem(err);
    return false;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"dsn", required_argument, NULL, 'd'},
        {"check-config", no_argument, NULL, 'k'}, {"print-config", no_argument, NULL, 'p'},
        {"version", no_argument, NULL, 'V'},      {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *path = NULL, *dsn = NULL;
    bool check = false, version = false;
    int o;
    while ((o = getopt_long(argc, argv, "c:d:hV", longopts, NULL)) != -1) {
        switch (o) {
        case 'c': path = optarg; break;
        case 'd': dsn = optarg; break;
        case 'k': check = true; break;
        case 'p': config_print_table(); return 0;
        case 'V': version = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "baton-worker: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (version) {
        printf("baton-worker %s\n", BATON_VERSION);
        fflush(stdout);
        const char *d = dsn;
        config *c = NULL;
        if (!d && path) {
            char *errors = NULL;
            c = config_load(path, &errors);
            free(errors);
            if (c) d = c->dsn;
        }
        int rc = db_check_version_blocking(d ? d : "", true);
        config_free(c);
        return rc;
    }
    if (!path) {
        fprintf(stderr, "baton-worker: --config FILE is required\n");
        usage(stderr);
        return 2;
    }
    char *errors = NULL;
    W.cfg = config_load(path, &errors);
    if (!W.cfg) {
        fputs(errors, stderr);
        free(errors);
        return 2;
    }
    if (check) {
        /* The file is valid; a database that can be reached must also have its queues, and with
           --dsn the database says whether this role may work on every queue. */
        int rc = db_check_queues_blocking(dsn ? dsn : W.cfg->dsn, W.cfg);
        if (rc == 0 && dsn) rc = access_check_blocking(dsn, W.cfg);
        if (rc == 0) printf("%s: OK (%d queue%s)\n", path, W.cfg->nqueues, W.cfg->nqueues == 1 ? "" : "s");
        config_free(W.cfg);
        return rc;
    }
    log_setup(W.cfg->log_level, W.cfg->log_format == 1);
    W.dsn = dsn ? dsn : W.cfg->dsn;
    if (!dsn_parses(W.dsn, dsn ? "--dsn" : "[worker] dsn")) {
        config_free(W.cfg);
        return 2;
    }
    /* A role without "work" on a queue would only fail every claim: refuse to start. */
    if (access_check_blocking(W.dsn, W.cfg) != 0) {
        config_free(W.cfg);
        return EXIT_ACCESS;
    }
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    W.host = xstrdup(host);
    W.worker_id = *W.cfg->id ? xstrdup(W.cfg->id) : make_worker_id();
    srand((unsigned)now_ms() ^ (unsigned)getpid());

    if (pipe2(sigpipe_fds, O_CLOEXEC | O_NONBLOCK) < 0) {
        log_error("pipe: %s", strerror(errno));
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (http_init() < 0) return 1;
    if (*W.cfg->metrics_listen && metrics_start(W.cfg->metrics_listen) < 0) return 1;
    queues_sync();
    log_info("baton-worker %s starting as %s: %d queue%s, concurrency %d", BATON_VERSION, W.worker_id,
             W.cfg->nqueues, W.cfg->nqueues == 1 ? "" : "s", W.cfg->concurrency);

    int64_t give_up_at = 0;
    for (;;) {
        int64_t now = now_ms();
        if (got_chld) {
            got_chld = 0;
            reap_children();
        }
        if (got_hup) {
            got_hup = 0;
            reload();
        }
        int term = got_term + got_int;
        if (term && !W.draining) {
            W.draining = true;
            W.drain_deadline = now + W.cfg->grace_ms;
            give_up_at = W.drain_deadline + 10000;
            log_info("draining: no new claims; %d task%s in flight get %lld ms to finish", W.inflight,
                     W.inflight == 1 ? "" : "s", (long long)W.cfg->grace_ms);
        }
        if (term >= 2 && !W.fast) {
            W.fast = true;
            W.drain_deadline = now;
            give_up_at = now + 3000;
            log_info("second signal: releasing %d task%s in flight and exiting", W.inflight, W.inflight == 1 ? "" : "s");
        }
        if (W.draining && now >= W.drain_deadline) {
            for (task *t = W.tasks; t; t = t->next)
                if (!t->finished && !t->cancel) t->cancel = CANCEL_RELEASE;
        }
        tasks_reap();
        if (W.db_done) break;
        if (W.draining && W.inflight == 0 && W.nreports == 0 && !db_connected()) {
            /* Nothing left to report and no database to report to: do not hold up the shutdown. */
            log_warn("database unreachable while draining; exiting without unregistering");
            break;
        }
        if (W.draining && now >= give_up_at) {
            log_warn("exiting without reaching the database: %d outcome%s not reported (their leases will expire)",
                     W.nreports, W.nreports == 1 ? "" : "s");
            W.exit_code = 1;
            break;
        }
        tasks_step(now);
        for (queue_rt *q = W.queues; q; q = q->next) {
            stream_queue_step(q, now);
            sql_queue_step(q, now);
        }
        http_step(now);
        pgroups_step(now);
        metrics_step(now);
        listen_step(now);
        db_step(now);
        tick_step(now);
        if (W.draining) loop_deadline(W.drain_deadline > now ? W.drain_deadline : give_up_at);
        loop_watch(sigpipe_fds[0], POLLIN, on_sigpipe, NULL);
        loop_run_once();
    }
    log_info("stopped");
    listen_close();
    tick_close();
    kill_children();
    tasks_reap();
    http_shutdown();
    return W.exit_code;
}
