/* http.c — the http handler: POSTs task JSON with libcurl's multi interface, driven by the worker's poll loop. */
#include "worker.h"
#include "json.h"
#include "log.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct hsock {
    curl_socket_t fd;
    int           what;
} hsock;

typedef struct http_state {
    CURL              *easy;
    struct curl_slist *headers;
    buf                body;
    bool               over_cap;
    int64_t            cap;
} http_state;

static CURLM  *multi;
static hsock  *socks;
static int     nsocks, capsocks;
static int64_t timer_at = -1;

/* curl tells which sockets to watch for what. */
static int socket_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)e; (void)userp; (void)socketp;
    for (int i = 0; i < nsocks; i++) {
        if (socks[i].fd != s) continue;
        if (what == CURL_POLL_REMOVE) socks[i] = socks[--nsocks];
        else socks[i].what = what;
        return 0;
    }
    if (what == CURL_POLL_REMOVE) return 0;
    if (nsocks == capsocks) {
        capsocks = capsocks ? capsocks * 2 : 16;
        socks = xrealloc(socks, sizeof *socks * (size_t)capsocks);
    }
    socks[nsocks].fd = s;
    socks[nsocks].what = what;
    nsocks++;
    return 0;
}

/* curl asks to be called back after timeout_ms (-1 = never). */
static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
    (void)m; (void)userp;
    timer_at = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    if (timer_at >= 0) loop_deadline(timer_at);
    return 0;
}

/* Collects the body up to the queue's max_output. */
static size_t write_cb(char *p, size_t sz, size_t n, void *arg)
{
    http_state *h = arg;
    size_t len = sz * n;
    if (h->body.len + len > (size_t)h->cap) {
        h->over_cap = true;
        return 0;   /* aborts the transfer: bounded memory */
    }
    buf_add(&h->body, p, len);
    return len;
}

/* Sets up libcurl and the multi handle driven by the loop. */
int http_init(void)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error("curl_global_init failed");
        return -1;
    }
    multi = curl_multi_init();
    if (!multi) {
        log_error("curl_multi_init failed");
        return -1;
    }
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    return 0;
}

/* Frees libcurl state at exit. */
void http_shutdown(void)
{
    if (multi) curl_multi_cleanup(multi);
    multi = NULL;
    free(socks);
    socks = NULL;
    nsocks = capsocks = 0;
    curl_global_cleanup();
}

/* Turns finished transfers into outcomes. */
static void check_done(void)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE) continue;
        task *t = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        if (!t || t->finished) continue;
        http_state *h = t->h;
        CURLcode rc = m->data.result;
        long status = 0;
        curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
        buf msg;
        buf_init(&msg);
        const char *body = h->body.data ? h->body.data : "";
        size_t n = h->body.len;
        if (h->over_cap) {
            buf_printf(&msg, "response body exceeds max_output (%lld bytes)", (long long)h->cap);
            task_finish(t, REP_FAIL, msg.data);
        } else if (rc != CURLE_OK) {
            buf_printf(&msg, "%s: %s", rc == CURLE_OPERATION_TIMEDOUT ? "timed out" : "request failed",
                       curl_easy_strerror(rc));
            task_finish(t, REP_RETRY, msg.data);
        } else if (status >= 200 && status < 300) {
            while (n && (body[n - 1] == '\n' || body[n - 1] == '\r' || body[n - 1] == ' ')) n--;
            if (!n) task_finish(t, REP_OK, NULL);
            else if (json_valid(body, n)) {
                char *r = xstrndup(body, n);
                task_finish(t, REP_OK, r);
                free(r);
            } else {
                /* A 2xx with a body that is not JSON: the service is broken, a retry would not mend it. */
                buf_printf(&msg, "http: HTTP %ld body is not valid JSON: ", status);
                char *head = text_sanitize(body, MIN(n, (size_t)200));
                buf_adds(&msg, head);
                free(head);
                task_finish(t, REP_FAIL, msg.data);
            }
        } else {
            buf_printf(&msg, "HTTP %ld", status);
            if (n) buf_printf(&msg, ": %.*s", (int)MIN(n, 4096), body);
            /* 4xx: the request itself is wrong, trying again will not help. */
            task_finish(t, status >= 400 && status < 500 ? REP_FAIL : REP_RETRY, msg.data);
        }
        buf_free(&msg);
    }
}

/* Tells libcurl which of its sockets is ready. */
static void on_sock(void *arg, int fd, short rev)
{
    int flags = 0, running;
    (void)arg;
    if (rev & POLLIN) flags |= CURL_CSELECT_IN;
    if (rev & POLLOUT) flags |= CURL_CSELECT_OUT;
    if (rev & (POLLERR | POLLHUP)) flags |= CURL_CSELECT_ERR;
    curl_multi_socket_action(multi, fd, flags, &running);
    check_done();
}

/* Runs libcurl timeouts and registers its sockets with the loop. */
void http_step(int64_t now)
{
    if (!multi) return;
    if (timer_at >= 0 && now >= timer_at) {
        int running;
        timer_at = -1;
        curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
        check_done();
    }
    for (int i = 0; i < nsocks; i++) {
        short ev = 0;
        if (socks[i].what & CURL_POLL_IN) ev |= POLLIN;
        if (socks[i].what & CURL_POLL_OUT) ev |= POLLOUT;
        loop_watch(socks[i].fd, ev, on_sock, NULL);
    }
    if (timer_at >= 0) loop_deadline(timer_at);
}

/* Starts the POST of the task JSON on the shared multi handle. */
static void http_start(task *t)
{
    http_state *h = xcalloc(1, sizeof *h);
    buf_init(&h->body);
    h->cap = t->qc->max_output;
    t->h = h;
    h->easy = curl_easy_init();
    if (!h->easy) {
        task_finish(t, REP_RETRY, "curl_easy_init failed");
        return;
    }
    h->headers = curl_slist_append(NULL, "Content-Type: application/json");
    h->headers = curl_slist_append(h->headers, "Expect:");
    for (int i = 0; i < t->qc->headers.n; i++) h->headers = curl_slist_append(h->headers, t->qc->headers.v[i]);
    curl_easy_setopt(h->easy, CURLOPT_URL, t->qc->url);
    curl_easy_setopt(h->easy, CURLOPT_POSTFIELDS, t->json);
    curl_easy_setopt(h->easy, CURLOPT_POSTFIELDSIZE, (long)t->json_len);
    curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, h->headers);
    curl_easy_setopt(h->easy, CURLOPT_TIMEOUT_MS, (long)t->timeout_ms);
    curl_easy_setopt(h->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h->easy, CURLOPT_PRIVATE, (char *)t);
    curl_easy_setopt(h->easy, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(h->easy, CURLOPT_WRITEDATA, h);
    curl_easy_setopt(h->easy, CURLOPT_USERAGENT, "baton-worker/" BATON_VERSION);
    if (curl_multi_add_handle(multi, h->easy) != CURLM_OK) task_finish(t, REP_RETRY, "curl_multi_add_handle failed");
}

/* Cancellation of an http task (the timeout is libcurl's). */
static void http_step_task(task *t, int64_t now)
{
    (void)now;
    if (t->cancel) task_finish(t, REP_RELEASE, t->cancel == CANCEL_LOST ? "lease lost" : "worker shutting down");
}

/* Removes the transfer from the multi handle and frees it. */
static void http_cleanup(task *t)
{
    http_state *h = t->h;
    if (!h) return;
    if (h->easy) {
        curl_multi_remove_handle(multi, h->easy);
        curl_easy_cleanup(h->easy);
    }
    curl_slist_free_all(h->headers);
    buf_free(&h->body);
    free(h);
    t->h = NULL;
}

const handler_ops http_ops = {http_start, http_step_task, http_cleanup};
