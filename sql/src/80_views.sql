-- 80_views.sql — the public, read-only views over the queue core.

CREATE VIEW baton.tasks AS
SELECT t.id, t.queue,
       -- 'scheduled' is an internal detail: to users a delayed task is pending.
       (CASE WHEN t.state = 'scheduled' THEN 'pending' ELSE t.state::text END) AS state,
       t.attempt, t.max_attempts, t.priority, t.payload, t.result, t.error, t.run_at,
       t.created_at, t.started_at, t.finished_at, t.lease_expires_at, t.worker, t.dedup_key,
       t.run_id, t.step, t.map_index, t.subscription_id, t.event_id, t.correlation_id
  FROM baton._tasks AS t;
COMMENT ON VIEW baton.tasks IS 'Every task with its state: pending (due or delayed), running, succeeded, failed (attempts exhausted: dead letters), cancelled.';

CREATE VIEW baton.queues AS
SELECT q.name AS queue, q.concurrency, q.max_attempts, q.lease, q.backoff_base, q.backoff_cap,
       q.rate_limit, q.rate_period, q.retention, q.paused, q.created_at
  FROM baton._queues AS q;
COMMENT ON VIEW baton.queues IS 'Queues and their options.';

CREATE VIEW baton.queue_stats AS
SELECT q.name AS queue, q.paused,
       (SELECT pg_catalog.count(*) FROM baton._tasks AS t WHERE t.queue = q.name AND t.state = 'pending') AS due,
       (SELECT pg_catalog.count(*) FROM baton._tasks AS t WHERE t.queue = q.name AND t.state = 'scheduled') AS delayed,
       (SELECT pg_catalog.count(*) FROM baton._tasks AS t WHERE t.queue = q.name AND t.state = 'running') AS running,
       (SELECT pg_catalog.now() - pg_catalog.min(t.run_at) FROM baton._tasks AS t
         WHERE t.queue = q.name AND t.state = 'pending') AS oldest_due_age,
       (SELECT pg_catalog.count(*) FROM baton._tasks AS t
         WHERE t.queue = q.name AND t.state = 'succeeded'
           AND t.finished_at > pg_catalog.now() - interval '1 minute') AS succeeded_last_minute,
       (SELECT pg_catalog.count(*) FROM baton._tasks AS t
         WHERE t.queue = q.name AND t.state = 'failed'
           AND t.finished_at > pg_catalog.now() - interval '1 hour') AS failed_last_hour
  FROM baton._queues AS q;
COMMENT ON VIEW baton.queue_stats IS 'Per queue: due and delayed depth, running, age of the oldest due task, throughput of the last minute and failures of the last hour.';

CREATE VIEW baton.workers AS
SELECT w.id AS worker, w.host, w.pid, w.queues, w.version, w.started_at, w.last_seen,
       w.last_seen > pg_catalog.now() - interval '1 minute' AS alive,
       (SELECT pg_catalog.count(*) FROM baton._tasks AS t WHERE t.state = 'running' AND t.worker = w.id) AS running
  FROM baton._workers AS w;
COMMENT ON VIEW baton.workers IS 'Worker daemons as they registered, with last heartbeat and tasks in flight.';
