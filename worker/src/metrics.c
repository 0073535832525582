/* metrics.c — an optional Prometheus text endpoint: counters per queue and the in-flight gauge. */
#include "worker.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct mclient {
    int     fd;
    buf     out;
    bool    answered;
    int64_t deadline;
    struct mclient *next;
} mclient;

static int      lfd = -1;
static mclient *clients;

/* Listens on host:port for metrics scrapes; 0 or -1 (logged). */
int metrics_start(const char *addr)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof host) {
        log_error("metrics_listen \"%s\": expected host:port", addr);
        return -1;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
        log_error("metrics_listen \"%s\": host must be an IPv4 address", addr);
        return -1;
    }
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(lfd, 16) < 0) {
        log_error("metrics_listen \"%s\": %s", addr, strerror(errno));
        if (lfd >= 0) close(lfd);
        lfd = -1;
        return -1;
    }
    log_info("metrics on http://%s/metrics", addr);
    return 0;
}

/* Renders the exposition text. */
static void render(buf *b)
{
    buf body;
    buf_init(&body);
    static const char *names[] = {"claimed", "succeeded", "failed", "retried", "released"};
    for (int k = 0; k < 5; k++) {
        buf_printf(&body, "# TYPE baton_worker_tasks_%s_total counter\n", names[k]);
        for (queue_rt *q = W.queues; q; q = q->next) {
            uint64_t v = k == 0 ? q->claimed : k == 1 ? q->succeeded : k == 2 ? q->failed : k == 3 ? q->retried : q->released;
            buf_printf(&body, "baton_worker_tasks_%s_total{queue=\"%s\"} %llu\n", names[k], q->name, (unsigned long long)v);
        }
    }
    buf_adds(&body, "# TYPE baton_worker_tasks_in_flight gauge\n");
    for (queue_rt *q = W.queues; q; q = q->next)
        buf_printf(&body, "baton_worker_tasks_in_flight{queue=\"%s\"} %d\n", q->name, q->inflight);
    buf_printf(&body, "# TYPE baton_worker_database_connected gauge\nbaton_worker_database_connected %d\n",
               db_connected() ? 1 : 0);
    buf_printf(b, "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
               body.len);
    buf_add(b, body.data, body.len);
    buf_free(&body);
}

/* Accepts scrapers (non-blocking). */
static void on_accept(void *arg, int fd, short rev)
{
    (void)arg; (void)rev;
    for (;;) {
        int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (c < 0) return;
        mclient *m = xcalloc(1, sizeof *m);
        m->fd = c;
        buf_init(&m->out);
        m->deadline = now_ms() + 5000;
        m->next = clients;
        clients = m;
    }
}

/* Reads the request, then writes the metrics page and closes. */
static void on_client(void *arg, int fd, short rev)
{
    mclient *m = arg;
    if (!m->answered && (rev & POLLIN)) {
        char tmp[4096];
        ssize_t n = read(fd, tmp, sizeof tmp);
        if (n <= 0) { m->deadline = 0; return; }
        /* Whatever was asked, the answer is the metrics page. */
        render(&m->out);
        m->answered = true;
    }
    if (m->answered && m->out.len) {
        ssize_t n = write(fd, m->out.data, m->out.len);
        if (n < 0 && errno != EAGAIN) { m->deadline = 0; return; }
        if (n > 0) buf_consume(&m->out, (size_t)n);
        if (!m->out.len) m->deadline = 0;
    }
}

/* Registers the listener and clients; drops finished or stale clients. */
void metrics_step(int64_t now)
{
    if (lfd < 0) return;
    for (mclient **pp = &clients; *pp;) {
        mclient *m = *pp;
        if (now >= m->deadline) {
            close(m->fd);
            buf_free(&m->out);
            *pp = m->next;
            free(m);
            continue;
        }
        loop_watch(m->fd, m->answered ? POLLOUT : POLLIN, on_client, m);
        loop_deadline(m->deadline);
        pp = &m->next;
    }
    loop_watch(lfd, POLLIN, on_accept, NULL);
}
