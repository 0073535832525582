/* db.c — the worker's main database session: claims, batched reports, heartbeats, registration, LISTEN, the pooler probe. */
#include "worker.h"
#include "pgc.h"
#include "json.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum dstate { D_DOWN, D_CONNECTING, D_SETUP, D_READY };
enum op { OP_NONE, OP_SETUP, OP_REPORT, OP_HB, OP_CLAIM, OP_REPORT_CLAIM, OP_SEEN, OP_REGISTER, OP_UNREGISTER,
          OP_QCHECK };
/* The statements run after each (re)connect, in this order. */
enum setup_step { SETUP_PROBE, SETUP_VERSION, SETUP_LISTEN, SETUP_LISTEN_CANCEL, SETUP_REGISTER, SETUP_DONE };

/* The columns of a claimed row, by name (the SELECT in prepare_claim). */
enum claim_col { CC_ID, CC_QUEUE, CC_PAYLOAD, CC_ATTEMPT, CC_RUN_ID, CC_STEP, CC_CORRELATION_ID, CC_MAX_ATTEMPTS,
                 CC_LEASE_S, CC_TIMEOUT_S, CC_N };
static const char *const claim_col_names[CC_N] = {"id", "queue", "payload", "attempt", "run_id",
                                                   "step", "correlation_id", "max_attempts", "lease_s", "timeout_s"};

/* One statement to send: its text and parameters (kept in bufs it owns). */
typedef struct stmt {
    const char *sql;
    int         n;
    const char *params[4];
    buf         b[3];
} stmt;

typedef struct idatt {
    int64_t id;
    int     attempt;
} idatt;

static pgc     C;
static int     dstate = D_DOWN;
static int     op = OP_NONE;
static int     setup_step;         /* enum setup_step */
static int64_t reconnect_at, backoff_ms;
static report *sent;               /* the report batch in flight */
static int     sent_kind;
static idatt  *hb_sent;
static int     hb_n, hb_cap;
static queue_rt **claim_q;
static unsigned  *claim_gen;
static int     claim_nq, claim_want;
static int64_t next_poll, next_seen, claim_retry_at, next_qcheck;
static bool    have_connected;
/* Pooled mode (docs/worker.md "Behind a pooler"): the dsn may hand each
   transaction to another server session, so nothing may rely on the session:
   no LISTEN on it, claims not session-bound.  Set by listen = off, by
   listen_dsn, or when the probe below sees transactions change backends. */
static bool    pooled;
static int     setup_pid;             /* backend of the first setup transaction */
static PGconn *probe;                 /* a second client holding a transaction open during the probe */
static int     probe_pid;

/* A NOTIFY on baton_tasks named a queue: its tasks may be due. */
void db_wake(const char *queue)
{
    queue_rt *q = queue_find(queue);
    if (q) {
        q->maybe_work = true;
        q->wake_gen++;
    }
}

/* baton_cancel names tasks (comma-separated ids) ended from outside their worker: stop ours now. */
static void on_cancel_notify(const char *payload)
{
    const char *p = payload;
    while (*p) {
        char *end;
        long long id = strtoll(p, &end, 10);
        if (end == p) break;
        task_cancelled(id);
        p = *end == ',' ? end + 1 : end;
        if (end == p) break;
    }
}

/* A notification on this session or on listen_dsn's: a wake-up (baton_tasks) or a cancellation (baton_cancel). */
void db_notify(const char *channel, const char *payload)
{
    if (!strcmp(channel, "baton_cancel")) on_cancel_notify(payload);
    else if (!strcmp(channel, "baton_tasks")) db_wake(payload);
}

static void on_notify(void *arg, const char *channel, const char *payload)
{
    (void)arg;
    db_notify(channel, payload);
}

/* True when LISTEN wake-ups and cancellations arrive (on this session or on listen_dsn's): poll slowly. */
bool db_listening(void)
{
    return (W.cfg->listen && !pooled) || listen_ready();
}

/* How often to claim without a wake-up (and, without LISTEN, to look for cancellations). */
int64_t db_poll_every(void)
{
    return db_listening() ? W.cfg->poll_interval_ms : MIN(W.cfg->poll_interval_ms, W.cfg->pooled_poll_interval_ms);
}

/* Says once, plainly, that the worker runs in pooled mode and why. */
static void go_pooled(const char *why)
{
    if (pooled) return;
    pooled = true;
    char where[512];
    db_describe(W.dsn, where, sizeof where);
    log_warn("database: %s (%s): a transaction pooler such as PgBouncer; pooled mode: no LISTEN on it (polling every "
             "%lld ms), claims not bound to the session (rescue after baton.worker_timeout). To say so in the config: "
             "listen = off, and listen_dsn = <a direct conninfo> for instant wake-ups (docs/worker.md, Behind a pooler)",
             why, where, (long long)db_poll_every());
}

/* The probe's second client: connects and opens a transaction (blocking, once per connect).  Behind a
   transaction pooler it is handed the server session the first setup transaction just gave back. */
static void probe_open(void)
{
    const char *keys[] = {"dbname", "fallback_application_name", "connect_timeout", NULL};
    const char *vals[] = {W.dsn ? W.dsn : "", "baton-worker probe", "10", NULL};
    probe_pid = 0;
    probe = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(probe) == CONNECTION_OK) {
        PGresult *r = PQexec(probe, "BEGIN");
        PQclear(r);
        r = PQexec(probe, "SELECT pg_catalog.pg_backend_pid()");
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) probe_pid = atoi(PQgetvalue(r, 0, 0));
        PQclear(r);
    }
    if (!probe_pid) log_warn("database: the pooler probe could not open its second session: %s", PQerrorMessage(probe));
}

/* Ends the probe's transaction and session. */
static void probe_close(void)
{
    if (probe) PQfinish(probe);
    probe = NULL;
}

/* host/port/dbname of a conninfo for logs: never the password. */
void db_describe(const char *dsn, char *out, size_t n)
{
    char *err = NULL;
    const char *host = getenv("PGHOST"), *port = getenv("PGPORT"), *db = getenv("PGDATABASE");
    PQconninfoOption *opts = PQconninfoParse(dsn && *dsn ? dsn : "", &err);
    if (err) PQfreemem(err);
    if (opts) {
        for (PQconninfoOption *o = opts; o->keyword; o++) {
            if (!o->val) continue;
            if (!strcmp(o->keyword, "host") || (!strcmp(o->keyword, "hostaddr") && !host)) host = o->val;
            else if (!strcmp(o->keyword, "port")) port = o->val;
            else if (!strcmp(o->keyword, "dbname")) db = o->val;
        }
    }
    snprintf(out, n, "host=%s port=%s dbname=%s", host ? host : "(default)", port ? port : "(default)",
             db ? db : "(default)");
    if (opts) PQconninfoFree(opts);
}

/* Frees a statement's parameter buffers. */
static void stmt_free(stmt *st)
{
    for (int i = 0; i < 3; i++) buf_free(&st->b[i]);
}

/* Puts the unacknowledged report batch back at the front of its list, in order. */
static void requeue_sent(void)
{
    report *r = sent, *rev = NULL;
    while (r) { report *n = r->next; r->next = rev; rev = r; r = n; }
    while (rev) { report *n = rev->next; report_push(rev, true); rev = n; }
    sent = NULL;
}

/* Drops the session: unacknowledged reports go back to the front of their lists. */
static void lost(void)
{
    char why[512];
    snprintf(why, sizeof why, "%s", C.err ? C.err : "connection lost");
    requeue_sent();
    probe_close();
    hb_n = 0;
    op = OP_NONE;
    pgc_close(&C);
    dstate = D_DOWN;
    backoff_ms = backoff_ms ? MIN(backoff_ms * 2, W.cfg->reconnect_max_ms) : 100;
    /* Jitter keeps a fleet of workers from reconnecting in lockstep. */
    int64_t wait = backoff_ms / 2 + (int64_t)(rand() % (int)(backoff_ms / 2 + 1));
    reconnect_at = now_ms() + wait;
    loop_deadline(reconnect_at);
    /* One line per failed attempt, saying why (a missing database or a failed
       login is retried too: it may be created or fixed while we wait). */
    log_warn("database: %s; reconnecting in %lld ms", why, (long long)wait);
}

/* qsort/bsearch order of task ids. */
static int cmp_id(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The first column of a result as sorted ids (malloc'd), for membership tests in O(log n). */
static int64_t *sorted_ids(PGresult *r)
{
    int n = PQntuples(r);
    int64_t *v = xmalloc(sizeof *v * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) v[i] = strtoll(PQgetvalue(r, i, 0), NULL, 10);
    qsort(v, (size_t)n, sizeof *v, cmp_id);
    return v;
}

/* Builds "{a,b,c}" for ids and attempts of a report list (at most n). */
static void arrays_of(report *r, buf *ids, buf *atts, buf *texts, bool with_texts)
{
    buf_adds(ids, "{");
    buf_adds(atts, "{");
    if (with_texts) buf_adds(texts, "{");
    bool first = true;
    for (; r; r = r->next) {
        if (!first) {
            buf_addc(ids, ',');
            buf_addc(atts, ',');
        }
        buf_add_int(ids, r->id);
        buf_add_int(atts, r->attempt);
        if (with_texts) pg_array_add(texts, r->text, first);
        first = false;
    }
    buf_adds(ids, "}");
    buf_adds(atts, "}");
    if (with_texts) buf_adds(texts, "}");
}

/* Takes the oldest batch of one kind of report (up to max_batch tasks) as the batch in flight. */
static bool prepare_reports(stmt *st)
{
    int kind;
    for (kind = 0; kind < REP_NKINDS; kind++)
        if (W.reports[kind]) break;
    if (kind == REP_NKINDS) return false;
    int limit = W.reports[kind]->solo ? 1 : W.cfg->max_batch;
    report **tail = &sent;
    int n = 0;
    while (W.reports[kind] && n < limit && !(n > 0 && W.reports[kind]->solo)) {
        report *r = W.reports[kind];
        W.reports[kind] = r->next;
        r->next = NULL;
        *tail = r;
        tail = &r->next;
        n++;
        W.nreports--;
    }
    if (!W.reports[kind]) W.reports_tail[kind] = NULL;
    sent_kind = kind;
    for (int i = 0; i < 3; i++) buf_init(&st->b[i]);
    arrays_of(sent, &st->b[0], &st->b[1], &st->b[2], kind != REP_RELEASE);
    for (int i = 0; i < 3; i++) st->params[i] = st->b[i].data;
    st->n = 3;
    switch (kind) {
    case REP_OK:
        st->sql = "SELECT id FROM baton.complete_many($1::bigint[], $2::integer[], $3::pg_catalog.jsonb[]) AS id";
        break;
    case REP_RETRY:
        st->sql = "SELECT id FROM baton.fail_many($1::bigint[], $2::integer[], $3::pg_catalog.text[], true) AS id";
        break;
    case REP_FAIL:
        st->sql = "SELECT id FROM baton.fail_many($1::bigint[], $2::integer[], $3::pg_catalog.text[], false) AS id";
        break;
    default:
        st->sql = "SELECT id FROM baton.release_many($1::bigint[], $2::integer[], 'worker shutting down') AS id";
        st->n = 2;
        break;
    }
    return true;
}

/* Handles the answer to a report batch: accepted ids, stale ones rejected by fencing. */
static void done_reports(void)
{
    if (C.err) {
        log_error("reporting %s failed: %s", sent_kind == REP_OK ? "completions" : "failures", C.err);
        report *r = sent;
        sent = NULL;
        while (r) {
            report *n = r->next;
            if (!r->solo) {
                /* Retry each on its own so one bad row cannot block the rest. */
                r->solo = true;
                report_push(r, false);
            } else if (r->kind == REP_OK) {
                /* The result itself is refused (e.g. a workflow hook raised): report it as a failure.
                   A data exception (SQLSTATE class 22: a result over max_result_size, a number
                   jsonb cannot hold) is the result's own fault: it will fail again, and running
                   the handler again would repeat its side effects, so it fails without retry. */
                r->kind = !strncmp(C.sqlstate, SQLSTATE_CLASS_DATA_EXCEPTION, 2) ? REP_FAIL : REP_RETRY;
                char *e = r->text;
                buf b;
                buf_init(&b);
                buf_printf(&b, "completing the task failed: %s (SQLSTATE %s)", C.err, C.sqlstate);
                r->text = buf_steal(&b);
                free(e);
                report_push(r, false);
            } else {
                log_error("task %lld attempt %d: giving up reporting; its lease will expire", (long long)r->id,
                          r->attempt);
                free(r->text);
                free(r);
            }
            r = n;
        }
        return;
    }
    int rows = PQntuples(C.res);
    int64_t *acc_ids = sorted_ids(C.res);
    for (report *r = sent; r;) {
        bool acc = rows && bsearch(&r->id, acc_ids, (size_t)rows, sizeof *acc_ids, cmp_id) != NULL;
        if (!acc) log_info("task %lld attempt %d: report rejected (lease lost, task cancelled or already ended)",
                           (long long)r->id, r->attempt);
        report *n = r->next;
        free(r->text);
        free(r);
        r = n;
    }
    free(acc_ids);
    sent = NULL;
}

/* Sends one heartbeat_many for every task whose heartbeat is due. */
static bool send_heartbeats(int64_t now)
{
    hb_n = 0;
    for (task *t = W.tasks; t; t = t->next) {
        if (t->finished || t->cancel || t->next_hb > now) continue;
        if (hb_n == hb_cap) {
            hb_cap = hb_cap ? hb_cap * 2 : 64;
            hb_sent = xrealloc(hb_sent, sizeof *hb_sent * (size_t)hb_cap);
        }
        hb_sent[hb_n].id = t->id;
        hb_sent[hb_n].attempt = t->attempt;
        hb_n++;
        if (hb_n >= 10000) break;
    }
    if (!hb_n) return false;
    buf ids, atts;
    buf_init(&ids);
    buf_init(&atts);
    buf_adds(&ids, "{");
    buf_adds(&atts, "{");
    for (int i = 0; i < hb_n; i++) {
        buf_printf(&ids, "%s%lld", i ? "," : "", (long long)hb_sent[i].id);
        buf_printf(&atts, "%s%d", i ? "," : "", hb_sent[i].attempt);
    }
    buf_adds(&ids, "}");
    buf_adds(&atts, "}");
    const char *params[2] = {ids.data, atts.data};
    bool ok = pgc_send(&C, "SELECT id FROM baton.heartbeat_many($1::bigint[], $2::integer[]) AS id", 2, params, NULL);
    buf_free(&ids);
    buf_free(&atts);
    if (ok) op = OP_HB;
    return ok;
}

/* Tasks missing from the answer lost their lease (or were cancelled): stop them, report nothing. */
static void done_heartbeats(int64_t now)
{
    if (C.err) {
        log_error("heartbeat failed: %s", C.err);
        for (int i = 0; i < hb_n; i++) {
            task *t = task_find(hb_sent[i].id, hb_sent[i].attempt);
            if (t) t->next_hb = now + 1000;
        }
        hb_n = 0;
        return;
    }
    int rows = PQntuples(C.res);
    int64_t *held_ids = sorted_ids(C.res);
    for (int i = 0; i < hb_n; i++) {
        task *t = task_find(hb_sent[i].id, hb_sent[i].attempt);
        if (!t) continue;
        bool held = rows && bsearch(&t->id, held_ids, (size_t)rows, sizeof *held_ids, cmp_id) != NULL;
        if (held) {
            t->next_hb = now + task_hb_interval(t);
        } else {
            log_warn("task %lld attempt %d: lease lost or task cancelled; stopping it", (long long)t->id, t->attempt);
            t->cancel = CANCEL_LOST;
        }
    }
    free(held_ids);
    hb_n = 0;
}

/* Prepares a claim of as many tasks as there are free slots, in one statement. */
static bool prepare_claim(int64_t now, stmt *st)
{
    if (W.draining || now < claim_retry_at) return false;
    int g = W.cfg->concurrency - W.inflight;
    if (g <= 0) return false;
    int nelig = 0, minfree = INT32_MAX, maxfree = 0;
    queue_rt *best = NULL;
    for (queue_rt *q = W.queues; q; q = q->next) {
        int f = free_slots(q);
        if (!q->maybe_work || f <= 0) continue;
        nelig++;
        minfree = MIN(minfree, f);
        if (f > maxfree) { maxfree = f; best = q; }
    }
    if (!nelig) return false;
    claim_nq = 0;
    claim_q = xrealloc(claim_q, sizeof *claim_q * (size_t)(nelig + 1));
    claim_gen = xrealloc(claim_gen, sizeof *claim_gen * (size_t)(nelig + 1));
    if (nelig > 1 && minfree >= g) {
        /* No queue can overflow its own limit: claim from all at once. */
        claim_want = MIN(g, W.cfg->max_batch);
        for (queue_rt *q = W.queues; q; q = q->next)
            if (q->maybe_work && free_slots(q) > 0) {
                claim_gen[claim_nq] = q->wake_gen;
                claim_q[claim_nq++] = q;
            }
    } else {
        /* The queue with the most room; the others get their turn on the next claims. */
        claim_want = MIN(MIN(g, maxfree), W.cfg->max_batch);
        claim_gen[0] = best->wake_gen;
        claim_q[claim_nq++] = best;
        if (nelig > 1) {
            /* Rotate so that equally free queues take turns. */
            queue_rt **pp = &W.queues;
            while (*pp != best) pp = &(*pp)->next;
            *pp = best->next;
            queue_rt **tail = &W.queues;
            while (*tail) tail = &(*tail)->next;
            best->next = NULL;
            *tail = best;
        }
    }
    for (int i = 0; i < 3; i++) buf_init(&st->b[i]);
    buf_adds(&st->b[0], "{");
    for (int i = 0; i < claim_nq; i++) pg_array_add(&st->b[0], claim_q[i]->name, i == 0);
    buf_adds(&st->b[0], "}");
    buf_printf(&st->b[1], "%d", claim_want);
    st->params[0] = st->b[0].data;
    st->params[1] = W.worker_id;
    st->params[2] = st->b[1].data;
    st->params[3] = pooled ? "false" : "true";
    st->n = 4;
    st->sql = "SELECT id, queue, payload, attempt, run_id, step, correlation_id, max_attempts, "
              "pg_catalog.date_part('epoch', lease_expires_at OPERATOR(pg_catalog.-) pg_catalog.now()) AS lease_s, "
              "pg_catalog.date_part('epoch', timeout) AS timeout_s "
              "FROM baton.claim($1::pg_catalog.text[], $2, $3::integer, $4::boolean)";
    return true;
}

/* Sends one prepared statement as operation o. */
static bool send_stmt(stmt *st, int o)
{
    bool ok = pgc_send(&C, st->sql, st->n, st->params, NULL);
    stmt_free(st);
    if (ok) op = o;
    return ok;
}

/* Sends the oldest report batch; with room for more tasks, the next claim goes
   along in the same pipeline: one round trip and one commit instead of two. */
static bool send_reports(int64_t now)
{
    stmt rep, cl;
    if (!prepare_reports(&rep)) return false;
    /* A solo report retries a batch that failed: alone, so that its error is its own. */
    if (sent->solo || !prepare_claim(now, &cl)) return send_stmt(&rep, OP_REPORT);
    bool ok = pgc_send_pair(&C, rep.sql, rep.n, rep.params, cl.sql, cl.n, cl.params);
    stmt_free(&rep);
    stmt_free(&cl);
    if (ok) op = OP_REPORT_CLAIM;
    return ok;
}

static void done_claim(int64_t now);
static void claim_failed(int64_t now, const char *err, const char *sqlstate);

/* Handles a report batch and a claim that ran in one transaction: they stand or fall together. */
static void done_report_claim(int64_t now)
{
    if (C.err2 && !C.aborted2) {
        /* The claim (or the commit) failed and undid the report: it goes again, alone. */
        requeue_sent();
        claim_failed(now, C.err2, NULL);
        W.qcheck = true;   /* the pair's SQLSTATE is not kept: look the queues up, it is one cheap query */
        claim_nq = 0;
        return;
    }
    done_reports();
    if (C.aborted2) {
        /* The report failed, so the claim did not run; its queues are tried again next turn. */
        claim_nq = 0;
        return;
    }
    PGresult *r = C.res;
    C.res = C.res2;
    C.res2 = r;
    done_claim(now);
}

/* Finds the claim columns by name in a result; false (logged) when one is missing. */
static bool claim_columns(PGresult *r, int col[CC_N])
{
    for (int i = 0; i < CC_N; i++) {
        col[i] = PQfnumber(r, claim_col_names[i]);
        if (col[i] < 0) {
            log_error("claim: the answer has no column \"%s\"", claim_col_names[i]);
            return false;
        }
    }
    return true;
}

/* A column of a claimed row as text, or NULL when SQL NULL. */
static const char *claim_value(PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

/* A claim failed: try again in a second; a missing queue (dropped since the
   last check) is looked for at once, so that the others go on being served. */
static void claim_failed(int64_t now, const char *err, const char *sqlstate)
{
    log_error("claim failed: %s", err);
    claim_retry_at = now + 1000;
    if (sqlstate && !strcmp(sqlstate, SQLSTATE_UNDEFINED_OBJECT)) W.qcheck = true;
}

/* After a short claim of a rate-limited queue that had work: claim again when
   its bucket holds the next token, not at the next poll (idle queues stop after
   one rate period without tasks). */
static void rate_timer(queue_rt *q, int64_t now)
{
    if (q->rate_limit <= 0 || now >= q->rate_active_until) return;
    int64_t token_ms = (int64_t)((double)q->rate_period_ms / q->rate_limit);
    q->rate_retry_at = now + MAX(token_ms, 5);
}

/* Starts the claimed tasks; a short batch means those queues are empty for now. */
static void done_claim(int64_t now)
{
    if (C.err) {
        claim_failed(now, C.err, C.sqlstate);
        return;
    }
    int rows = PQntuples(C.res);
    int col[CC_N];
    if (rows && !claim_columns(C.res, col)) {
        /* Cannot happen with a matching extension; the leases expire and the tasks are rescued. */
        claim_retry_at = now + 1000;
        claim_nq = 0;
        return;
    }
    for (int i = 0; i < rows; i++) {
        const char *qn = PQgetvalue(C.res, i, col[CC_QUEUE]);
        queue_rt *q = queue_find(qn);
        int64_t id = strtoll(PQgetvalue(C.res, i, col[CC_ID]), NULL, 10);
        int attempt = atoi(PQgetvalue(C.res, i, col[CC_ATTEMPT]));
        if (!q || !q->qc) {
            /* The queue left the config while the claim was in flight: give the task back. */
            report *r = xcalloc(1, sizeof *r);
            r->id = id;
            r->attempt = attempt;
            r->kind = REP_RELEASE;
            report_push(r, false);
            continue;
        }
        task_start(q, id, attempt, PQgetvalue(C.res, i, col[CC_PAYLOAD]), claim_value(C.res, i, col[CC_RUN_ID]),
                   claim_value(C.res, i, col[CC_STEP]), claim_value(C.res, i, col[CC_CORRELATION_ID]),
                   atoi(PQgetvalue(C.res, i, col[CC_MAX_ATTEMPTS])), atof(PQgetvalue(C.res, i, col[CC_LEASE_S])),
                   PQgetisnull(C.res, i, col[CC_TIMEOUT_S]) ? 0 : atof(PQgetvalue(C.res, i, col[CC_TIMEOUT_S])));
    }
    for (int i = 0; i < claim_nq; i++) {
        queue_rt *q = claim_q[i];
        int got = 0;
        if (q->rate_limit > 0)
            for (int r = 0; r < rows; r++)
                if (!strcmp(PQgetvalue(C.res, r, col[CC_QUEUE]), q->name)) got++;
        if (got > 0) q->rate_active_until = now + q->rate_period_ms;
        if (rows < claim_want) {
            if (q->wake_gen == claim_gen[i]) q->maybe_work = false;
            rate_timer(q, now);
        }
    }
    claim_nq = 0;
}

/* Parses "major.minor.patch" (digits only); false for anything else. */
static bool version_parse(const char *s, unsigned long part[3])
{
    for (int i = 0; i < 3; i++) {
        if (*s < '0' || *s > '9') return false;
        char *end;
        part[i] = strtoul(s, &end, 10);
        s = end;
        if (*s != (i < 2 ? '.' : '\0')) return false;
        s++;
    }
    return true;
}

/*
 * True when this worker may run against the installed extension version: the same
 * major.minor, any patch.  The SQL a worker calls changes only in minor releases (0.x)
 * and major ones; a patch release keeps it, so an extension and workers one patch
 * apart keep working while either side is being upgraded.
 */
static bool version_compatible(const char *installed)
{
    unsigned long theirs[3], ours[3];
    return version_parse(installed, theirs) && version_parse(BATON_VERSION, ours) && theirs[0] == ours[0] &&
           theirs[1] == ours[1];
}

/* Looks up every served queue in the database: which exist, and their rate limits. */
static bool send_qcheck(void)
{
    buf qs;
    buf_init(&qs);
    buf_adds(&qs, "{");
    int i = 0;
    for (queue_rt *q = W.queues; q; q = q->next)
        if (q->qc) pg_array_add(&qs, q->name, i++ == 0);
    buf_adds(&qs, "}");
    const char *params[1] = {qs.data};
    bool ok = pgc_send(&C,
                       "SELECT u.name, q.queue IS NOT NULL AS present, COALESCE(q.rate_limit, 0) AS rate_limit, "
                       "pg_catalog.date_part('epoch', q.rate_period) OPERATOR(pg_catalog.*) 1000 AS rate_period_ms "
                       "FROM pg_catalog.unnest($1::pg_catalog.text[]) AS u(name) "
                       "LEFT JOIN baton.queues AS q ON q.queue OPERATOR(pg_catalog.=) u.name",
                       1, params, NULL);
    buf_free(&qs);
    if (ok) op = OP_QCHECK;
    return ok;
}

/* A missing queue is that queue's problem: logged by name, not claimed, looked for again
   every poll_interval; the other queues are served meanwhile. */
static void done_qcheck(int64_t now)
{
    next_qcheck = 0;
    if (C.err) {
        log_error("looking up the served queues failed: %s", C.err);
        next_qcheck = now + 1000;
        return;
    }
    int cn = PQfnumber(C.res, "name"), cp = PQfnumber(C.res, "present"), cr = PQfnumber(C.res, "rate_limit"),
        cperiod = PQfnumber(C.res, "rate_period_ms");
    if (cn < 0 || cp < 0 || cr < 0 || cperiod < 0) {
        log_error("looking up the served queues: unexpected answer");
        return;
    }
    bool any_missing = false;
    for (int i = 0; i < PQntuples(C.res); i++) {
        queue_rt *q = queue_find(PQgetvalue(C.res, i, cn));
        if (!q) continue;
        bool present = PQgetvalue(C.res, i, cp)[0] == 't';
        if (!present && (!q->missing || !q->checked))
            log_error("queue \"%s\" does not exist in the database (create it with baton.create_queue); "
                      "serving the other queues, looking for it every poll_interval", q->name);
        else if (present && q->missing)
            log_info("queue \"%s\" exists now; serving it", q->name);
        if (present && q->missing) q->maybe_work = true;
        q->missing = !present;
        q->checked = true;
        any_missing |= !present;
        q->rate_limit = present ? atof(PQgetvalue(C.res, i, cr)) : 0;
        q->rate_period_ms = present && !PQgetisnull(C.res, i, cperiod) ? (int64_t)atof(PQgetvalue(C.res, i, cperiod)) : 1000;
    }
    if (any_missing) next_qcheck = now + W.cfg->poll_interval_ms;
}

/* Registers this worker (start, reconnect, or when worker_seen says it is unknown). */
static bool send_register(void)
{
    buf qs;
    buf_init(&qs);
    buf_adds(&qs, "{");
    int i = 0;
    for (queue_conf *qc = W.cfg->queues; qc; qc = qc->next) pg_array_add(&qs, qc->name, i++ == 0);
    buf_adds(&qs, "}");
    char pid[16];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    const char *params[5] = {W.worker_id, qs.data, W.host, pid, BATON_VERSION};
    bool ok = pgc_send(&C, "SELECT baton.register_worker($1, $2::pg_catalog.text[], $3, $4::integer, $5)", 5, params, NULL);
    buf_free(&qs);
    if (ok) op = OP_REGISTER;
    return ok;
}

/* The setup after each (re)connect: the pooler probe, version check, LISTEN, registration.  It sets
   nothing in the session (every statement is schema-qualified): behind a transaction pooler a SET
   would leak into other clients' transactions. */
static bool send_setup(void)
{
    switch (setup_step) {
    case SETUP_PROBE:
        return pgc_send(&C, "SELECT pg_catalog.pg_backend_pid()", 0, NULL, NULL) && (op = OP_SETUP);
    case SETUP_VERSION:
        return pgc_send(&C,
                        "SELECT extversion, pg_catalog.pg_backend_pid() FROM pg_catalog.pg_extension "
                        "WHERE extname OPERATOR(pg_catalog.=) 'baton'",
                        0, NULL, NULL) &&
               (op = OP_SETUP);
    case SETUP_LISTEN:
        /* Pooled: no LISTEN on a session the pooler may hand to others (listen.c listens on listen_dsn). */
        if (!pooled) return pgc_send(&C, "LISTEN baton_tasks", 0, NULL, NULL) && (op = OP_SETUP);
        setup_step = SETUP_REGISTER;
        return send_register() && (op = OP_SETUP);
    case SETUP_LISTEN_CANCEL:
        /* A cancelled task's handler is stopped at once, not at its next heartbeat. */
        return pgc_send(&C, "LISTEN baton_cancel", 0, NULL, NULL) && (op = OP_SETUP);
    default:
        return send_register() && (op = OP_SETUP);
    }
}

/* Handles one setup answer; the version check is fatal on mismatch. */
static void done_setup(int64_t now)
{
    if (C.err) {
        log_error("database setup failed: %s", C.err);
        free(C.err);
        C.err = xstrdup("setup failed");
        probe_close();
        lost();
        return;
    }
    if (setup_step == SETUP_PROBE) {
        /* The pooler probe: a second client opens a transaction now, then the next setup transaction
           runs.  A session of our own keeps its backend and never lends it; a transaction pooler hands
           the backend we just released to the other client (or ours to another backend). */
        setup_pid = PQntuples(C.res) == 1 ? atoi(PQgetvalue(C.res, 0, 0)) : 0;
        probe_pid = 0;
        if (!pooled) probe_open();
    }
    if (setup_step == SETUP_VERSION) {
        if (PQntuples(C.res) != 1) {
            log_error("extension baton is not installed in database \"%s\" (CREATE EXTENSION baton)", PQdb(C.conn));
            worker_die(EXIT_VERSION);
        }
        const char *v = PQgetvalue(C.res, 0, 0);
        if (!version_compatible(v)) {
            log_error("version mismatch: extension baton %s is installed in database \"%s\", this baton-worker is %s "
                      "(it runs against %.*s.x only); run ALTER EXTENSION baton UPDATE or install the matching worker",
                      v, PQdb(C.conn), BATON_VERSION, (int)(strrchr(BATON_VERSION, '.') - BATON_VERSION),
                      BATON_VERSION);
            worker_die(EXIT_VERSION);
        }
        int pid = atoi(PQgetvalue(C.res, 0, 1));
        if (!pooled && probe_pid && probe_pid == setup_pid)
            go_pooled("another client was given this worker's server session between its transactions");
        else if (!pooled && pid != setup_pid)
            go_pooled("this worker's transactions run in different server sessions");
        probe_close();
        setup_pid = pid;
    }
    if (++setup_step == SETUP_DONE) {
        dstate = D_READY;
        backoff_ms = 0;
        log_info("database: %s to host=%s port=%s dbname=%s as worker %s", have_connected ? "reconnected" : "connected",
                 PQhost(C.conn), PQport(C.conn), PQdb(C.conn), W.worker_id);
        have_connected = true;
        for (queue_rt *q = W.queues; q; q = q->next) q->maybe_work = true;
        W.qcheck = true;
        next_seen = now + W.cfg->seen_interval_ms;
        next_poll = now + db_poll_every();
    }
}

/* Picks the next statement: reports first (they free leases), then heartbeats, registry, claims. */
static void pick(int64_t now)
{
    if (dstate == D_SETUP) {
        send_setup();
        return;
    }
    if (W.reregister) {
        W.reregister = false;
        if (send_register()) return;
    }
    if (now >= next_seen && !(W.draining && W.inflight == 0 && W.nreports == 0)) {
        /* First when due: tick() takes a worker unseen for baton.worker_timeout for dead, so a
           steady stream of reports must not hold it back.  The backend pid tells a pooler. */
        const char *params[1] = {W.worker_id};
        if (pgc_send(&C, "SELECT baton.worker_seen($1), pg_catalog.pg_backend_pid()", 1, params, NULL)) op = OP_SEEN;
        return;
    }
    if (W.qcheck || (next_qcheck && now >= next_qcheck)) {
        W.qcheck = false;
        next_qcheck = 0;
        if (send_qcheck()) return;
    }
    if (W.nreports && send_reports(now)) return;
    if (send_heartbeats(now)) return;
    if (W.draining && W.inflight == 0 && W.nreports == 0) {
        const char *params[1] = {W.worker_id};
        if (pgc_send(&C, "SELECT baton.unregister_worker($1)", 1, params, NULL)) op = OP_UNREGISTER;
        return;
    }
    /* baton.tick() runs on a session of its own (tick.c): a long tick here would hold up
       every report behind it (the stream handler's latency tail). */
    stmt cl;
    if (prepare_claim(now, &cl)) send_stmt(&cl, OP_CLAIM);
}

/* Dispatches a finished statement to its handler. */
static void done(int64_t now)
{
    int o = op;
    op = OP_NONE;
    switch (o) {
    case OP_SETUP: done_setup(now); if (dstate == D_DOWN) return; break;
    case OP_REPORT: done_reports(); break;
    case OP_HB: done_heartbeats(now); break;
    case OP_CLAIM: done_claim(now); break;
    case OP_REPORT_CLAIM: done_report_claim(now); break;
    case OP_SEEN:
        next_seen = now + W.cfg->seen_interval_ms;
        if (C.err) log_error("worker_seen failed: %s", C.err);
        else if (PQntuples(C.res) == 1 && !pooled && atoi(PQgetvalue(C.res, 0, 1)) != setup_pid)
            /* Missed by the probe at connect: from now on claims are not bound to the session. */
            go_pooled("this worker's transactions run in different server sessions");
        if (!C.err && PQntuples(C.res) == 1 && PQgetisnull(C.res, 0, 0)) {
            log_info("worker %s is not registered (removed?); registering again", W.worker_id);
            pgc_reset(&C);
            send_register();
            return;
        }
        break;
    case OP_REGISTER:
        if (C.err) log_error("register_worker failed: %s", C.err);
        break;
    case OP_UNREGISTER:
        if (C.err) log_error("unregister_worker failed: %s", C.err);
        W.db_done = true;
        break;
    case OP_QCHECK: done_qcheck(now); break;
    }
    pgc_reset(&C);
}

/* Advances the main session one turn: (re)connect, handle an answer, send the next statement. */
void db_step(int64_t now)
{
    if (W.db_done) return;
    /* Configured pooled mode needs no probe and no log line. */
    if (!W.cfg->listen || *W.cfg->listen_dsn) pooled = true;
    if (dstate == D_DOWN) {
        if (now < reconnect_at) {
            loop_deadline(reconnect_at);
            return;
        }
        char where[512];
        db_describe(W.dsn, where, sizeof where);
        if (backoff_ms) log_debug("database: connecting (%s)", where);
        else log_info("database: connecting (%s)", where);
        C.on_notify = on_notify;
        if (pgc_connect(&C, W.dsn, "baton-worker") < 0) {
            lost();
            return;
        }
        dstate = D_CONNECTING;
    }
    if (dstate == D_CONNECTING) {
        if (C.state == PGC_READY) {
            dstate = D_SETUP;
            setup_step = SETUP_PROBE;
        } else if (C.state == PGC_BROKEN) {
            lost();
            return;
        }
    }
    for (queue_rt *q = W.queues; q; q = q->next)
        if (q->rate_retry_at && now >= q->rate_retry_at) {
            q->rate_retry_at = 0;
            q->maybe_work = true;
        }
    if (now >= next_poll && dstate == D_READY) {
        /* The polling fallback: look at every queue now and then, wake-up or not. */
        for (queue_rt *q = W.queues; q; q = q->next) q->maybe_work = true;
        next_poll = now + db_poll_every();
    }
    for (int guard = 0; guard < 4; guard++) {
        if (C.state == PGC_BROKEN) {
            lost();
            return;
        }
        if (C.state == PGC_DONE) done(now);
        if (dstate == D_DOWN) return;
        if (C.state == PGC_READY && op == OP_NONE) pick(now);
        if (C.state != PGC_DONE) break;
    }
    if (C.state == PGC_BROKEN) {
        lost();
        return;
    }
    pgc_watch(&C);
    /* Timers only matter when a statement can be sent: while one is in flight
       its answer wakes the loop, and a timer already due would make poll(2)
       return at once, over and over (a busy loop while the server works). */
    if (dstate == D_READY && op == OP_NONE && C.state == PGC_READY) {
        loop_deadline(next_poll);
        loop_deadline(next_seen);
        if (claim_retry_at > now) loop_deadline(claim_retry_at);
        if (next_qcheck) loop_deadline(next_qcheck);
        for (queue_rt *q = W.queues; q; q = q->next)
            if (q->rate_retry_at) loop_deadline(q->rate_retry_at);
        for (task *t = W.tasks; t; t = t->next)
            if (!t->finished && !t->cancel) loop_deadline(t->next_hb);
    }
}

/* True while the main session is set up and usable. */
bool db_connected(void)
{
    return dstate == D_READY;
}

/* --version: compares the installed extension version with ours; returns the exit code. */
int db_check_version_blocking(const char *dsn, bool print)
{
    const char *keys[] = {"dbname", "fallback_application_name", NULL};
    const char *vals[] = {dsn ? dsn : "", "baton-worker", NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(c) != CONNECTION_OK) {
        char where[512];
        db_describe(dsn, where, sizeof where);
        fprintf(stderr, "baton-worker: cannot check the extension version: database not reachable (%s): %s", where,
                PQerrorMessage(c));
        PQfinish(c);
        return 0;
    }
    int rc = 0;
    PGresult *r = PQexec(c, "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'baton'");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "baton-worker: version check failed: %s", PQerrorMessage(c));
        rc = 1;
    } else if (PQntuples(r) != 1) {
        fprintf(stderr, "baton-worker: extension baton is not installed in database \"%s\"\n", PQdb(c));
        rc = EXIT_VERSION;
    } else if (!version_compatible(PQgetvalue(r, 0, 0))) {
        fprintf(stderr,
                "baton-worker: version mismatch: extension baton %s is installed in database \"%s\", "
                "this baton-worker is %s (it runs against %.*s.x only)\n",
                PQgetvalue(r, 0, 0), PQdb(c), BATON_VERSION, (int)(strrchr(BATON_VERSION, '.') - BATON_VERSION),
                BATON_VERSION);
        rc = EXIT_VERSION;
    } else if (print) {
        printf("extension baton %s in database \"%s\": matches\n", PQgetvalue(r, 0, 0), PQdb(c));
    }
    PQclear(r);
    PQfinish(c);
    return rc;
}

/* --check-config: when the database is reachable, every queue of the file must exist there.
   Returns 0 (all there, or no database to ask) or 2 (missing ones, each named on stderr). */
int db_check_queues_blocking(const char *dsn, const config *cfg)
{
    const char *keys[] = {"dbname", "fallback_application_name", "connect_timeout", NULL};
    const char *vals[] = {dsn ? dsn : "", "baton-worker", "5", NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(c) != CONNECTION_OK) {
        char where[512];
        db_describe(dsn, where, sizeof where);
        fprintf(stderr, "baton-worker: database not reachable (%s): queues not checked\n", where);
        PQfinish(c);
        return 0;
    }
    buf qs;
    buf_init(&qs);
    buf_adds(&qs, "{");
    int i = 0;
    for (queue_conf *qc = cfg->queues; qc; qc = qc->next) pg_array_add(&qs, qc->name, i++ == 0);
    buf_adds(&qs, "}");
    const char *params[1] = {qs.data};
    PGresult *r = PQexecParams(c,
                               "SELECT u.name FROM pg_catalog.unnest($1::pg_catalog.text[]) WITH ORDINALITY AS u(name, n) "
                               "WHERE NOT EXISTS (SELECT FROM baton.queues AS q WHERE q.queue OPERATOR(pg_catalog.=) u.name) "
                               "ORDER BY u.n",
                               1, NULL, params, NULL, NULL, 0);
    buf_free(&qs);
    int rc = 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "baton-worker: cannot look up the queues in database \"%s\": %s", PQdb(c), PQerrorMessage(c));
        rc = 2;
    } else {
        for (int k = 0; k < PQntuples(r); k++) {
            const char *name = PQgetvalue(r, k, 0);
            const queue_conf *qc = config_queue((config *)cfg, name);
            fprintf(stderr, "%s:%d: queue \"%s\" does not exist in database \"%s\" (create it with baton.create_queue)\n",
                    cfg->path, qc ? qc->line : 0, name, PQdb(c));
            rc = 2;
        }
    }
    PQclear(r);
    PQfinish(c);
    return rc;
}
