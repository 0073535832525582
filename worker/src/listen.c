/* listen.c — the optional direct connection (listen_dsn) that only LISTENs for wake-ups and cancellations while the main one goes through a pooler. */
#include "worker.h"
#include "pgc.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

enum lstate { L_DOWN, L_CONNECTING, L_LISTENING, L_LISTENING_CANCEL, L_READY };

static pgc     L;
static int     lstate = L_DOWN;
static int64_t reconnect_at, backoff_ms;
static bool    was_ready;

/* Wake-ups (baton_tasks names a queue with due tasks) and cancellations (baton_cancel names tasks). */
static void on_notify(void *arg, const char *channel, const char *payload)
{
    (void)arg;
    db_notify(channel, payload);
}

/* Drops the connection and schedules a reconnect; meanwhile the worker polls at pooled_poll_interval. */
static void lost(void)
{
    if (L.err) log_warn("listen_dsn: %s", L.err);
    pgc_close(&L);
    lstate = L_DOWN;
    backoff_ms = backoff_ms ? MIN(backoff_ms * 2, W.cfg->reconnect_max_ms) : 100;
    reconnect_at = now_ms() + backoff_ms;
    loop_deadline(reconnect_at);
    if (was_ready)
        log_info("listen_dsn: lost; polling every %lld ms until it is back, reconnecting in %lld ms",
                 (long long)W.cfg->pooled_poll_interval_ms, (long long)backoff_ms);
    was_ready = false;
}

/* Advances the listen connection one turn: connect, LISTEN (wake-ups, cancellations), then only read notifications. */
void listen_step(int64_t now)
{
    if (!*W.cfg->listen_dsn || W.db_done) return;
    if (lstate == L_DOWN) {
        if (now < reconnect_at) {
            loop_deadline(reconnect_at);
            return;
        }
        L.on_notify = on_notify;
        if (pgc_connect(&L, W.cfg->listen_dsn, "baton-worker listen") < 0) {
            lost();
            return;
        }
        lstate = L_CONNECTING;
    }
    if (L.state == PGC_BROKEN) {
        lost();
        return;
    }
    if (lstate == L_CONNECTING && L.state == PGC_READY) {
        if (!pgc_send(&L, "LISTEN baton_tasks", 0, NULL, NULL)) {
            lost();
            return;
        }
        lstate = L_LISTENING;
    }
    if (lstate == L_LISTENING && L.state == PGC_DONE) {
        if (L.err) {
            lost();
            return;
        }
        pgc_reset(&L);
        /* A cancelled task's handler is stopped at once, not at its next heartbeat. */
        if (!pgc_send(&L, "LISTEN baton_cancel", 0, NULL, NULL)) {
            lost();
            return;
        }
        lstate = L_LISTENING_CANCEL;
    }
    if (lstate == L_LISTENING_CANCEL && L.state == PGC_DONE) {
        if (L.err) {
            lost();
            return;
        }
        pgc_reset(&L);
        lstate = L_READY;
        backoff_ms = 0;
        char where[512];
        db_describe(W.cfg->listen_dsn, where, sizeof where);
        log_info("listen_dsn: listening for wake-ups on a direct connection (%s)", where);
        was_ready = true;
        /* Wake-ups sent while it was down are lost: look at every queue once. */
        for (queue_rt *q = W.queues; q; q = q->next) db_wake(q->name);
    }
    pgc_watch(&L);
}

/* True while wake-ups arrive on the listen_dsn session. */
bool listen_ready(void)
{
    return lstate == L_READY;
}

/* Closes the connection at exit. */
void listen_close(void)
{
    pgc_close(&L);
    lstate = L_DOWN;
}
