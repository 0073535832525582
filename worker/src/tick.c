/* tick.c — time-driven work (baton.tick()) on a session of its own, so that a long tick never holds up the claims and reports of the main session. */
#include "worker.h"
#include "pgc.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

/* The tick session's states: down (waiting to reconnect), connecting, ready, tick in flight.  It sets nothing in
   the session (the statement is schema-qualified): behind a transaction pooler a SET would leak into other
   clients' transactions (docs/worker.md, Behind a pooler). */
enum tick_state { T_DOWN, T_CONNECTING, T_READY, T_BUSY };

static pgc     T;
static int     tstate = T_DOWN;
static int64_t next_tick, reconnect_at;
static int     scheduler_seen = -1;   /* tick = auto: did the last look find the scheduler? */

/* Drops the session; it is opened again after a pause. */
static void tick_lost(int64_t now)
{
    if (T.err) log_warn("tick session: %s", T.err);
    pgc_close(&T);
    tstate = T_DOWN;
    reconnect_at = now + MAX(W.cfg->tick_interval_ms, 1000);
}

/* Logs a tick's answer; tick = auto says once whether the scheduler does the work. */
static void tick_done(int64_t now)
{
    next_tick = now + W.cfg->tick_interval_ms;
    if (T.err) {
        log_error("tick failed: %s", T.err);
        return;
    }
    if (PQntuples(T.res) != 1) return;
    int sched = PQgetisnull(T.res, 0, 0);
    if (sched != scheduler_seen && W.cfg->tick == TICK_AUTO)
        log_info(sched ? "tick = auto: the baton scheduler runs for this database; not calling tick()"
                       : "tick = auto: no baton scheduler for this database; calling tick() every %lld ms",
                 (long long)W.cfg->tick_interval_ms);
    scheduler_seen = sched;
    if (!sched) log_debug("tick: %s", PQgetvalue(T.res, 0, 0));
}

/* Sends the tick statement (or, with tick = auto, the scheduler check that skips it). */
static void tick_send(void)
{
    const char *params[1] = {W.cfg->tick == TICK_AUTO ? "true" : "false"};
    /* scheduler_running() is SECURITY DEFINER: a plain baton_worker login
       cannot see other users' backend_type in pg_stat_activity. */
    if (pgc_send(&T, "SELECT CASE WHEN $1::boolean AND baton.scheduler_running() THEN NULL ELSE baton.tick() END", 1,
                 params, NULL))
        tstate = T_BUSY;
}

/* Advances the tick session one turn: connects once the main session is up, ticks every tick_interval. */
void tick_step(int64_t now)
{
    bool wanted = W.cfg->tick != TICK_OFF && !W.draining && db_connected();
    if (!wanted) {
        /* A tick in flight finishes (its transaction is short); then the session goes. */
        if (tstate != T_DOWN && tstate != T_BUSY) tick_close();
        if (tstate == T_DOWN) return;
    }
    if (tstate == T_DOWN) {
        if (now < reconnect_at) {
            loop_deadline(reconnect_at);
            return;
        }
        if (pgc_connect(&T, W.dsn, "baton-worker") < 0) {
            tick_lost(now);
            return;
        }
        tstate = T_CONNECTING;
    }
    if (T.state == PGC_BROKEN) {
        tick_lost(now);
        return;
    }
    if (tstate == T_CONNECTING && T.state == PGC_READY) tstate = T_READY;
    if (T.state == PGC_DONE) {
        if (tstate == T_BUSY) {
            tick_done(now);
            tstate = T_READY;
        }
        pgc_reset(&T);
    }
    if (!wanted && tstate == T_READY) {
        tick_close();
        return;
    }
    if (tstate == T_READY && T.state == PGC_READY) {
        if (now >= next_tick) tick_send();
        else loop_deadline(next_tick);
    }
    if (T.state == PGC_BROKEN) {
        tick_lost(now);
        return;
    }
    pgc_watch(&T);
}

/* Closes the tick session (exit, drain, tick = off). */
void tick_close(void)
{
    pgc_close(&T);
    tstate = T_DOWN;
}
