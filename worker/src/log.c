/* log.c — writes one log line per message to stderr, as text or JSON, never blocking the loop for long. */
#include "common.h"
#include "log.h"
#include "json.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int  min_level = LOG_INFO;
static bool as_json = false;
static const char *names[] = {"debug", "info", "warn", "error"};

/* Sets the threshold and the format (reloadable). */
void log_setup(int level, bool json)
{
    min_level = level;
    as_json = json;
}

/* Formats and writes one line; messages are UTF-8-sanitised in JSON mode. */
void log_msg(int level, const char *fmt, ...)
{
    if (level < min_level) return;
    char    msg[8192];   /* room for a 4 KiB line of a co-process's stderr */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[64];
    snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));

    buf line;
    buf_init(&line);
    if (as_json) {
        buf_printf(&line, "{\"ts\":\"%s\",\"level\":\"%s\",\"pid\":%d,\"msg\":", ts, names[level], (int)getpid());
        json_add_string(&line, msg, strlen(msg));
        buf_adds(&line, "}\n");
    } else {
        buf_printf(&line, "%s %s baton-worker[%d]: %s\n", ts, names[level], (int)getpid(), msg);
    }
    /* One write per line keeps lines whole when several processes share stderr. */
    size_t off = 0;
    while (off < line.len) {
        ssize_t n = write(STDERR_FILENO, line.data + off, line.len - off);
        if (n <= 0) break;
        off += (size_t)n;
    }
    buf_free(&line);
}
