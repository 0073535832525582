/* main.c — `baton`: the command line of baton (and `baton web`, its dashboard); dispatches to one command. */
#include "console.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

Opts O;

static const struct {
    const char *name;
    CmdFn fn;
    const char *usage;
} CMDS[] = {
    {"status", cmd_status, "status [--watch]                      queues, live workers, scheduler"},
    {"tasks", cmd_tasks, "tasks [--queue Q] [--state S] [--search TEXT] [--limit N]"},
    {"task", cmd_task, "task ID                               a task, its error, result and why it is where it is"},
    {"retry", cmd_retry, "retry ID... | --queue Q [--state failed|cancelled]"},
    {"cancel", cmd_cancel, "cancel ID... | --queue Q | --run ID"},
    {"pause", cmd_pause, "pause QUEUE"},
    {"resume", cmd_resume, "resume QUEUE"},
    {"runs", cmd_runs, "runs [--workflow W] [--state S] [--limit N]"},
    {"run", cmd_run, "run ID                                a run's steps and graph"},
    {"wait", cmd_wait, "wait RUN [--timeout T]                until the run ends; exit 0 if it succeeded"},
    {"enqueue", cmd_enqueue, "enqueue QUEUE JSON [--priority N] [--delay INTERVAL] [--dedup-key K]"},
    {"start", cmd_start, "start WORKFLOW JSON [--wait [--timeout T]] [--idempotency-key K]"},
    {"publish", cmd_publish, "publish TOPIC JSON [--key K]"},
    {"trace", cmd_trace, "trace CORRELATION | --task ID | --run ID | --event ID"},
    {"events", cmd_events, "events [--topic T] [--limit N]"},
    {"subscriptions", cmd_subscriptions, "subscriptions                         with deliveries and dead letters"},
    {"schedules", cmd_schedules, "schedules                             cron schedules with next fire time"},
    {"workflows", cmd_workflows, "workflows                             definitions with versions"},
    {"web", cmd_web, "web [--listen 127.0.0.1:8080] [--token T | --token-file F]   the dashboard"},
};

static void usage(FILE *f)
{
    fprintf(f, "Usage: baton [--dsn CONNINFO] [--json] [--no-color] COMMAND [ARGS]\n\nCommands:\n");
    for (size_t i = 0; i < sizeof CMDS / sizeof CMDS[0]; i++) fprintf(f, "  baton %s\n", CMDS[i].usage);
    fprintf(f, "\nConnection: --dsn (conninfo or URI), else the PG* environment and service files, like psql.\n"
               "Exit codes: 0 ok, 1 the thing asked about failed, 2 usage or bad input, 3 connection or extension.\n"
               "Docs: docs/console.md\n");
}

int main(int argc, char **argv)
{
    O.color = isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json")) O.json = true;
        else if (!strcmp(a, "--no-color")) O.color = false;
        else if (!strcmp(a, "--dsn") && i + 1 < argc) O.dsn = argv[++i];
        else if (!strncmp(a, "--dsn=", 6)) O.dsn = a + 6;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return EXIT_OK;
        } else if (!strcmp(a, "--version")) {
            printf("baton %s\n", BATON_VERSION);
            return EXIT_OK;
        } else {
            fprintf(stderr, "baton: unknown option %s (baton --help)\n", a);
            return EXIT_USAGE;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[i], "help")) {
        usage(stdout);
        return EXIT_OK;
    }
    for (size_t k = 0; k < sizeof CMDS / sizeof CMDS[0]; k++)
        if (!strcmp(argv[i], CMDS[k].name)) return CMDS[k].fn(argc - i - 1, argv + i + 1);
    fprintf(stderr, "baton: unknown command \"%s\" (baton --help lists them)\n", argv[i]);
    return EXIT_USAGE;
}
