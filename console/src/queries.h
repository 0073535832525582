/* queries.h — the SQL behind both the command line and the dashboard: views and functions of the extension, parameters only. */
#ifndef BATON_QUERIES_H
#define BATON_QUERIES_H

#define TS(x) "pg_catalog.to_char(" x ", 'YYYY-MM-DD HH24:MI:SS')"
#define AGE(x) "pg_catalog.date_trunc('second', " x ")::text"

/* Queues with depth, running, failed, oldest pending age, throughput, limits. */
#define SQL_QUEUES \
    "SELECT s.queue, s.paused, (s.due + s.delayed) AS pending, s.due, s.delayed, s.running," \
    " (SELECT pg_catalog.count(*) FROM baton.tasks AS t WHERE t.queue = s.queue AND t.state = 'failed') AS failed," \
    " " AGE("s.oldest_due_age") " AS oldest_pending," \
    " pg_catalog.round(EXTRACT(epoch FROM s.oldest_due_age), 1) AS oldest_pending_seconds," \
    " s.succeeded_last_minute AS done_last_minute, s.failed_last_hour," \
    " q.concurrency, q.rate_limit, q.rate_period::text AS rate_period," \
    " pg_catalog.concat_ws(', ', 'concurrency ' || q.concurrency, q.rate_limit || ' per ' || q.rate_period) AS limits" \
    " FROM baton.queue_stats AS s JOIN baton.queues AS q ON q.queue = s.queue ORDER BY s.queue"

#define SQL_WORKERS \
    "SELECT w.worker, w.host, w.pid, pg_catalog.array_to_string(w.queues, ',') AS queues, w.version, w.running," \
    " " AGE("pg_catalog.now() - w.last_seen") " AS seen_ago, w.started_at, w.last_seen" \
    " FROM baton.workers AS w WHERE w.alive ORDER BY w.worker"

#define SQL_SCHEDULER "SELECT baton.scheduler_running()"

/* Finished tasks per queue in 10-second buckets over the last 10 minutes (oldest first). */
#define SQL_SPARK \
    "SELECT q.queue, (SELECT pg_catalog.jsonb_agg(COALESCE(c.n, 0) ORDER BY g.i)" \
    "   FROM pg_catalog.generate_series(0, 59) AS g(i) LEFT JOIN (" \
    "     SELECT pg_catalog.floor(EXTRACT(epoch FROM pg_catalog.now() - t.finished_at) / 10)::int AS b," \
    "            pg_catalog.count(*) AS n FROM baton.tasks AS t" \
    "      WHERE t.queue = q.queue AND t.state IN ('succeeded', 'failed')" \
    "        AND t.finished_at > pg_catalog.now() - interval '10 minutes' GROUP BY 1) AS c ON c.b = 59 - g.i) AS spark" \
    " FROM baton.queues AS q ORDER BY q.queue"

/* $1 queue, $2 state, $3 text in payload/result/error, $4 limit. */
#define SQL_TASKS \
    "SELECT t.id, t.queue, t.state, t.attempt, t.max_attempts, t.attempt || '/' || t.max_attempts AS attempts," \
    " t.priority, " TS("t.created_at") " AS created, t.created_at, t.run_at, t.finished_at, t.worker, t.run_id, t.step," \
    " t.error, t.payload, t.result" \
    " FROM baton.tasks AS t" \
    " WHERE ($1::text IS NULL OR t.queue = $1::text) AND ($2::text IS NULL OR t.state = $2::text)" \
    "   AND ($3::text IS NULL OR pg_catalog.strpos(pg_catalog.concat_ws(' ', t.payload::text, t.result::text, t.error)," \
    "                                               $3::text) > 0)" \
    " ORDER BY t.id DESC LIMIT $4::int"

/* $1 task id: the task, its explanation, as one object. */
#define SQL_TASK \
    "SELECT pg_catalog.to_jsonb(t) || pg_catalog.jsonb_build_object('explanation', baton.explain_task(t.id))" \
    " FROM baton.tasks AS t WHERE t.id = $1::bigint"

#define SQL_RUN_PROGRESS(r) \
    "(SELECT pg_catalog.count(*) FILTER (WHERE s.state IN ('succeeded', 'skipped', 'compensated')) || '/' || pg_catalog.count(*)" \
    "   FROM baton.run_steps AS s WHERE s.run_id = " r ")"

/* $1 workflow, $2 state, $3 limit. */
#define SQL_RUNS \
    "SELECT r.id, r.workflow, r.version, r.state, " SQL_RUN_PROGRESS("r.id") " AS progress," \
    " " TS("r.created_at") " AS created, r.created_at, r.finished_at," \
    " pg_catalog.date_trunc('millisecond', COALESCE(r.finished_at, pg_catalog.now()) - r.created_at)::text AS duration," \
    " r.compensation, r.error, r.correlation_id, r.input, r.output" \
    " FROM baton.runs AS r" \
    " WHERE ($1::text IS NULL OR r.workflow = $1::text) AND ($2::text IS NULL OR r.state = $2::text)" \
    " ORDER BY r.id DESC LIMIT $3::int"

/* $1 run id: its steps with state, attempts, durations, map progress, inputs and outputs. */
#define SQL_RUN_STEPS \
    "SELECT s.step, s.kind, s.state, s.attempt, s.max_attempts, s.started_at, s.finished_at," \
    " pg_catalog.date_trunc('millisecond', s.finished_at - s.started_at)::text AS duration," \
    " s.task_id, s.map_done, s.map_total," \
    " CASE WHEN s.map_total IS NOT NULL THEN s.map_done || '/' || s.map_total END AS map," \
    " s.child_run_id, s.compensation_task_id, s.error," \
    " (SELECT t.payload FROM baton.tasks AS t WHERE t.id = s.task_id) AS input, s.output" \
    " FROM baton.run_steps AS s WHERE s.run_id = $1::bigint ORDER BY s.ord, s.step"

/* $1 run id: the run with its steps and its graph (Mermaid), as one object. */
#define SQL_RUN \
    "SELECT pg_catalog.to_jsonb(r) || pg_catalog.jsonb_build_object(" \
    "  'progress', " SQL_RUN_PROGRESS("r.id") "," \
    "  'steps', (SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(x)), '[]'::jsonb) FROM (" SQL_RUN_STEPS ") AS x)," \
    "  'graph', baton.graph(r.id))" \
    " FROM baton.runs AS r WHERE r.id = $1::bigint"

/* $1 topic (exact, or NULL), $2 limit. */
#define SQL_EVENTS \
    "SELECT e.id, e.topic, e.key, " TS("e.published_at") " AS published, e.published_at, e.correlation_id," \
    " e.cause_task_id, e.cause_run_id, e.payload" \
    " FROM baton.events AS e WHERE ($1::text IS NULL OR e.topic = $1::text) ORDER BY e.id DESC LIMIT $2::int"

#define SQL_SUBSCRIPTIONS \
    "SELECT s.name, s.topic, s.target_kind, s.target, s.filter, s.on_success, s.on_failure, s.paused," \
    " s.delivered, s.live, s.succeeded, s.failed, s.cancelled FROM baton.subscriptions AS s ORDER BY s.name"

#define SQL_DEAD_LETTERS \
    "SELECT d.subscription, d.task_id, d.queue, d.event_id, d.topic, d.key, d.attempts, d.error, d.finished_at" \
    " FROM baton.subscription_dead_letters AS d ORDER BY d.subscription, d.task_id"

#define SQL_SCHEDULES \
    "SELECT s.name, s.cron, CASE WHEN s.queue IS NOT NULL THEN 'queue' ELSE 'workflow' END AS target_kind," \
    " COALESCE(s.queue, s.workflow) AS target, " TS("s.next_fire_at") " AS next_fire, s.next_fire_at," \
    " s.last_fire_at, s.fire_count, s.last_error, s.payload FROM baton.schedules AS s ORDER BY s.name"

/* No public view of definitions exists in this version: the table is read
 * directly (the dashboard and CLI run as an owner or admin role). */
#define SQL_WORKFLOWS \
    "SELECT w.name, w.version, w.steps, " TS("w.created_at") " AS created, w.created_at," \
    " w.running + w.succeeded + w.failed + w.cancelled AS runs," \
    " w.definition FROM baton.workflows AS w ORDER BY w.name, w.version"

/* $1 correlation id: the causal chain with each node's key and its parent's key. */
#define SQL_TRACE \
    "SELECT x.at, x.kind, x.id, x.name, x.state, x.cause_kind, x.cause_id, x.detail," \
    " x.kind || ':' || COALESCE(x.id::text, '') || CASE WHEN x.kind = 'step' THEN ':' || x.name ELSE '' END AS node," \
    " CASE WHEN x.cause_kind IS NOT NULL THEN x.cause_kind || ':' || x.cause_id ||" \
    "   CASE WHEN x.cause_kind = 'step' THEN ':' || COALESCE(x.detail ->> 'step', x.detail ->> 'cause_step', '') ELSE '' END" \
    " END AS parent" \
    " FROM baton.trace($1::uuid) AS x"

#define SQL_CORR_TASK  "SELECT t.correlation_id::text FROM baton.tasks AS t WHERE t.id = $1::bigint"
#define SQL_CORR_RUN   "SELECT r.correlation_id::text FROM baton.runs AS r WHERE r.id = $1::bigint"
#define SQL_CORR_EVENT "SELECT e.correlation_id::text FROM baton.events AS e WHERE e.id = $1::bigint"

#define SQL_QUEUE_EXISTS "SELECT 1 FROM baton.queues AS q WHERE q.queue = $1::text"
#define SQL_RUN_STATE    "SELECT r.state, r.output::text, r.error FROM baton.runs AS r WHERE r.id = $1::bigint"

#endif
