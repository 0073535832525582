-- 30_tick.sql — time-driven work: due delayed tasks, expired leases, dead claimers (by session or by worker registry), retention.

-- Ends or re-queues running tasks matched by a reason; used for both lease
-- expiry and dead-session rescue.  Returns how many tasks it touched.
CREATE FUNCTION baton._requeue_running(ids bigint[], reason text) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t baton._tasks;
    n integer := 0;
BEGIN
    -- A task of a run that would end here needs its run locked, and the tick
    -- may not wait for a run while it holds task locks (the locking order of
    -- 61_workflow_runs.sql): such a task whose run is busy waits for the next tick.
    ids := ARRAY(SELECT x.id FROM baton._tasks AS x
                  WHERE x.id = ANY (ids)
                    AND (x.run_id IS NULL OR x.attempt < x.max_attempts OR baton._wf_try_lock_run(x.run_id)));
    FOR t IN
        UPDATE baton._tasks AS x
           SET state = CASE WHEN x.attempt < x.max_attempts THEN 'pending' ELSE 'failed' END::baton.task_state,
               finished_at = CASE WHEN x.attempt < x.max_attempts THEN NULL ELSE pg_catalog.now() END,
               error = reason, lease_expires_at = NULL, run_at = pg_catalog.now()
         WHERE x.id = ANY (ids) AND x.state = 'running'
        RETURNING x.*
    LOOP
        n := n + 1;
        IF t.state = 'pending' THEN
            PERFORM baton._wake(t.queue);
        ELSIF baton._needs_hook(t) THEN
            PERFORM baton._on_task_end(t);
        END IF;
    END LOOP;
    RETURN n;
END
$$;

-- Running tasks whose claiming session has ended: the worker died.  The list
-- of live backends is read afresh here: PostgreSQL keeps the first list a
-- transaction reads until it ends, and a tick called after scheduler_running()
-- (or after a long promotion) would otherwise take every session that
-- connected since for dead and rescue the tasks it just claimed.  Sessions
-- that started after the fresh list was asked for are never judged.
CREATE FUNCTION baton._orphaned_tasks(max_rows integer) RETURNS bigint[]
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    asked_at timestamptz;
BEGIN
    PERFORM pg_catalog.pg_stat_clear_snapshot();
    asked_at := pg_catalog.clock_timestamp();
    RETURN (SELECT COALESCE(pg_catalog.array_agg(x.id), '{}') FROM (
        SELECT t.id FROM baton._tasks AS t
         WHERE t.state = 'running' AND t.claim_pid IS NOT NULL
           AND t.claim_session_start < asked_at
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity AS a
                            WHERE a.pid = t.claim_pid AND a.backend_start = t.claim_session_start)
         LIMIT max_rows
           FOR UPDATE OF t SKIP LOCKED) AS x);
END
$$;
COMMENT ON FUNCTION baton._orphaned_tasks(integer) IS
'Running tasks claimed by a database session that has ended, judged on a fresh list of live backends.';

-- How long a registered worker may go without worker_seen() before tick()
-- takes it for dead: the setting baton.worker_timeout (ALTER DATABASE ... SET),
-- 10 seconds when unset.
CREATE FUNCTION baton._worker_timeout() RETURNS interval
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v text := pg_catalog.current_setting('baton.worker_timeout', true);
    d interval;
BEGIN
    IF v IS NULL OR v = '' THEN
        RETURN interval '10 seconds';
    END IF;
    BEGIN
        d := v::interval;
    EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR interval_field_overflow THEN
        d := NULL;
    END;
    IF d IS NULL OR d <= interval '0' THEN
        RAISE EXCEPTION 'baton.tick: setting baton.worker_timeout must be a positive interval (got "%")', v
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN d;
END
$$;
COMMENT ON FUNCTION baton._worker_timeout() IS
'How long a registered worker may go unseen before tick() re-queues its tasks: setting baton.worker_timeout, default 10 seconds.';

-- Re-queues the running tasks of registered workers not seen for
-- baton.worker_timeout, claimed before that too (a worker that comes back and
-- claims before its first worker_seen keeps those claims).  This is the
-- rescue that does not depend on the claim being bound to a session (behind a
-- transaction pooler).  While the server itself was down nobody could be
-- seen: for twice the timeout after a (crash) restart, which the oldest live
-- process (the checkpointer) dates, no worker is judged, so that workers
-- reconnecting with backoff are not taken for dead.  Returns how many tasks
-- it touched.
CREATE FUNCTION baton._rescue_unseen_workers(max_rows integer) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    timeout  interval := baton._worker_timeout();
    cutoff   timestamptz := pg_catalog.now() - timeout;
    up_since timestamptz := (SELECT pg_catalog.min(a.backend_start) FROM pg_catalog.pg_stat_activity AS a);
    w        record;
    n        integer := 0;
BEGIN
    IF up_since IS NULL OR up_since > cutoff - timeout THEN
        RETURN 0;
    END IF;
    FOR w IN
        SELECT x.worker, x.last_seen, pg_catalog.array_agg(x.id) AS ids FROM (
            SELECT t.id, t.worker, k.last_seen FROM baton._tasks AS t
              JOIN baton._workers AS k ON k.id = t.worker
             WHERE t.state = 'running' AND k.last_seen < cutoff AND t.started_at < cutoff
             LIMIT max_rows
               FOR UPDATE OF t SKIP LOCKED) AS x
         GROUP BY x.worker, x.last_seen
    LOOP
        n := n + baton._requeue_running(w.ids,
                 pg_catalog.format('worker %s not seen since %s (baton.worker_timeout = %s)',
                                   w.worker, w.last_seen, timeout));
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION baton._rescue_unseen_workers(integer) IS
'Re-queues running tasks of registered workers not seen for baton.worker_timeout (session-bound or not); returns how many.';

-- Running tasks whose lease has run out: the worker is stuck or gone.
CREATE FUNCTION baton._expired_tasks(max_rows integer) RETURNS bigint[]
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT COALESCE(pg_catalog.array_agg(id), '{}') FROM (
        SELECT t.id FROM baton._tasks AS t
         WHERE t.state = 'running' AND t.lease_expires_at < pg_catalog.now()
         LIMIT max_rows
           FOR UPDATE SKIP LOCKED) AS x
$$;

-- Deletes finished tasks past their queue's retention, a bounded batch per call.
CREATE FUNCTION baton._apply_retention(max_rows integer) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n integer;
BEGIN
    DELETE FROM baton._tasks AS t WHERE t.id IN (
        SELECT x.id FROM baton._tasks AS x JOIN baton._queues AS q ON q.name = x.queue
         WHERE x.state IN ('succeeded', 'failed', 'cancelled')
           AND x.finished_at < pg_catalog.now() - q.retention
         LIMIT max_rows
           FOR UPDATE OF x SKIP LOCKED);
    GET DIAGNOSTICS n = ROW_COUNT;
    -- Worker rows nobody refreshed for a day are gone for good.
    DELETE FROM baton._workers AS w WHERE w.last_seen < pg_catalog.now() - interval '1 day';
    RETURN n;
END
$$;

CREATE FUNCTION baton.tick() RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    promoted integer := 0;
    n        integer;
    rescued  integer;
    expired  integer;
    purged   integer;
    summary  jsonb;
BEGIN
    -- One tick at a time per database: a concurrent caller returns at once.
    IF NOT pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtext('baton.tick')) THEN
        RETURN '{"skipped": true}';
    END IF;
    LOOP
        n := baton._promote(NULL, 10000);
        promoted := promoted + n;
        EXIT WHEN n < 10000 OR promoted >= 100000;
    END LOOP;
    rescued := baton._requeue_running(baton._orphaned_tasks(10000), 'worker session ended')
             + baton._rescue_unseen_workers(10000);
    expired := baton._requeue_running(baton._expired_tasks(10000), 'lease expired');
    purged := baton._apply_retention(10000);
    summary := pg_catalog.jsonb_build_object('promoted', promoted, 'rescued', rescued,
                                             'expired', expired, 'purged', purged);
    summary := summary || baton._wf_tick() || baton._ev_tick() || baton._cron_tick();
    RETURN summary;
END
$$;
COMMENT ON FUNCTION baton.tick() IS
'Does all time-driven work once: due delayed tasks, tasks of dead worker sessions and of registered workers not seen for baton.worker_timeout (default 10 s), expired leases, workflow and event timers, cron, retention. Safe to call concurrently (one runs, the others return {"skipped": true}). Returns counts of what it did.';
