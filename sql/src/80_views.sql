-- 80_views.sql — the public, read-only views over the queue core.

CREATE VIEW baton.tasks WITH (security_barrier) AS
SELECT t.id, t.queue,
       -- 'scheduled' is an internal detail: to users a delayed task is pending.
       (CASE WHEN t.state = 'scheduled' THEN 'pending' ELSE t.state::text END) AS state,
       t.attempt, t.max_attempts, t.priority, t.payload, t.result, t.error, t.run_at,
       t.created_at, t.started_at, t.finished_at, t.lease_expires_at, t.worker, t.dedup_key,
       t.run_id, t.step, t.map_index, t.subscription_id, t.event_id,
       COALESCE(t.correlation_id, baton._task_correlation(t.id)) AS correlation_id,
       t.progress
  FROM baton._tasks AS t
 -- restricted queues the reader may not read (empty without grants)
 WHERE t.queue <> ALL ((SELECT baton._hidden_queues())::text[]);
COMMENT ON VIEW baton.tasks IS 'Every task with its state: pending (due or delayed), running, succeeded, failed (attempts exhausted: dead letters), cancelled.';

CREATE VIEW baton.queues AS
SELECT q.name AS queue, q.concurrency, q.max_attempts, q.lease, q.backoff_base, q.backoff_cap,
       q.rate_limit, q.rate_period, q.retention, q.paused, q.created_at, q.max_payload_size, q.max_result_size
  FROM baton._queues AS q;
COMMENT ON VIEW baton.queues IS 'Queues and their options.';

CREATE VIEW baton.queue_stats WITH (security_barrier) AS
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
  FROM baton._queues AS q
 WHERE q.name <> ALL ((SELECT baton._hidden_queues())::text[]);
COMMENT ON VIEW baton.queue_stats IS 'Per queue: due and delayed depth, running, age of the oldest due task, throughput of the last minute and failures of the last hour.';

CREATE VIEW baton.workers AS
SELECT w.id AS worker, w.host, w.pid, w.queues, w.version, w.started_at, w.last_seen,
       w.last_seen > pg_catalog.now() - baton._worker_timeout() AS alive,
       (SELECT pg_catalog.count(*) FROM baton._tasks AS t WHERE t.state = 'running' AND t.worker = w.id
           AND t.queue <> ALL ((SELECT baton._hidden_queues())::text[])) AS running
  FROM baton._workers AS w;
COMMENT ON VIEW baton.workers IS 'Worker daemons as they registered, with last heartbeat and tasks in flight; alive = seen within baton.worker_timeout (default 10 s).';

CREATE FUNCTION baton.explain_task(task bigint) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t       baton._tasks;
    q       baton._queues;
    running bigint;
    ahead   bigint;
BEGIN
    PERFORM baton._authorize_task('explain_task', task, 'read');
    SELECT * INTO t FROM baton._tasks AS x WHERE x.id = task;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'baton.explain_task: task % does not exist', task
            USING ERRCODE = 'no_data_found', COLUMN = 'task';
    END IF;
    SELECT * INTO q FROM baton._queues AS x WHERE x.name = t.queue;
    CASE t.state
    WHEN 'succeeded' THEN
        RETURN pg_catalog.format('succeeded at %s on attempt %s', t.finished_at, t.attempt);
    WHEN 'failed' THEN
        RETURN pg_catalog.format('failed for good at %s: attempts spent (%s of %s); last error: %s; baton.retry(%s) runs it again',
                                 t.finished_at, t.attempt, t.max_attempts, COALESCE(t.error, 'none'), t.id);
    WHEN 'cancelled' THEN
        RETURN pg_catalog.format('cancelled at %s', t.finished_at);
    WHEN 'running' THEN
        RETURN pg_catalog.format('running: attempt %s of %s leased to worker %s until %s',
                                 t.attempt, t.max_attempts, COALESCE(t.worker, '?'), t.lease_expires_at);
    WHEN 'scheduled' THEN
        RETURN pg_catalog.format('delayed until %s (in %s)%s', t.run_at, t.run_at - pg_catalog.now(),
                                 CASE WHEN t.attempt > 0 THEN pg_catalog.format('; retry after attempt %s failed: %s', t.attempt, COALESCE(t.error, '?')) ELSE '' END);
    ELSE
        IF q.paused THEN
            RETURN pg_catalog.format('due, but queue "%s" is paused: baton.resume_queue(%L)', q.name, q.name);
        END IF;
        IF q.concurrency IS NOT NULL THEN
            SELECT pg_catalog.count(*) INTO running FROM baton._tasks AS x WHERE x.queue = q.name AND x.state = 'running';
            IF running >= q.concurrency THEN
                RETURN pg_catalog.format('due, but queue "%s" is at its concurrency limit (%s running of %s)', q.name, running, q.concurrency);
            END IF;
        END IF;
        SELECT pg_catalog.count(*) INTO ahead FROM baton._tasks AS x
         WHERE x.queue = q.name AND x.state = 'pending'
           AND (x.priority > t.priority OR (x.priority = t.priority AND (x.run_at, x.id) < (t.run_at, t.id)));
        RETURN pg_catalog.format('due since %s, waiting for a worker of queue "%s" (%s due tasks ahead of it)%s',
                                 t.run_at, q.name, ahead,
                                 CASE WHEN NOT EXISTS (SELECT 1 FROM baton._workers AS w
                                                        WHERE q.name = ANY (w.queues) AND w.last_seen > pg_catalog.now() - interval '1 minute')
                                      THEN '; no live worker serves this queue' ELSE '' END);
    END CASE;
END
$$;
COMMENT ON FUNCTION baton.explain_task(bigint) IS
'Says in words why a task is where it is: delayed (and until when), paused queue, concurrency limit, waiting for a worker, leased, attempts spent.';
