/* loop.c — the one event loop: watches collected each turn, one poll(2), callbacks dispatched. */
#include "worker.h"
#include "log.h"

#include <errno.h>
#include <string.h>

typedef struct watch {
    watch_cb cb;
    void    *arg;
} watch;

static struct pollfd *pfds;
static watch         *watches;
static int            nwatch, capwatch;
static int64_t        wake_at = -1;

/* Adds fd to this turn's poll set. */
void loop_watch(int fd, short events, watch_cb cb, void *arg)
{
    if (fd < 0) return;
    if (nwatch == capwatch) {
        capwatch = capwatch ? capwatch * 2 : 64;
        pfds = xrealloc(pfds, sizeof *pfds * (size_t)capwatch);
        watches = xrealloc(watches, sizeof *watches * (size_t)capwatch);
    }
    pfds[nwatch].fd = fd;
    pfds[nwatch].events = events;
    pfds[nwatch].revents = 0;
    watches[nwatch].cb = cb;
    watches[nwatch].arg = arg;
    nwatch++;
}

/* Lowers this turn's poll timeout to wake up at `at`. */
void loop_deadline(int64_t at)
{
    if (wake_at < 0 || at < wake_at) wake_at = at;
}

/* One poll(2) and its callbacks; the watch set starts empty again. */
void loop_run_once(void)
{
    int timeout = -1;
    if (wake_at >= 0) {
        int64_t d = wake_at - now_ms();
        timeout = d < 0 ? 0 : (int)MIN(d, 60000);
    } else {
        timeout = 60000;
    }
    int n = poll(pfds, (nfds_t)nwatch, timeout);
    if (n < 0 && errno != EINTR) log_error("poll: %s", strerror(errno));
    if (n > 0) {
        for (int i = 0; i < nwatch; i++)
            if (pfds[i].revents) watches[i].cb(watches[i].arg, pfds[i].fd, pfds[i].revents);
    }
    nwatch = 0;
    wake_at = -1;
}
