-- 30_tick.sql — time-driven work: due delayed tasks, expired leases, dead claimers, retention.

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

-- Running tasks whose claiming session has ended: the worker died.
CREATE FUNCTION baton._orphaned_tasks(max_rows integer) RETURNS bigint[]
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT COALESCE(pg_catalog.array_agg(id), '{}') FROM (
        SELECT t.id FROM baton._tasks AS t
         WHERE t.state = 'running' AND t.claim_pid IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity AS a
                            WHERE a.pid = t.claim_pid AND a.backend_start = t.claim_session_start)
         LIMIT max_rows
           FOR UPDATE OF t SKIP LOCKED) AS x
$$;

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
    rescued := baton._requeue_running(baton._orphaned_tasks(10000), 'worker session ended');
    expired := baton._requeue_running(baton._expired_tasks(10000), 'lease expired');
    purged := baton._apply_retention(10000);
    summary := pg_catalog.jsonb_build_object('promoted', promoted, 'rescued', rescued,
                                             'expired', expired, 'purged', purged);
    summary := summary || baton._wf_tick() || baton._ev_tick() || baton._cron_tick();
    RETURN summary;
END
$$;
COMMENT ON FUNCTION baton.tick() IS
'Does all time-driven work once: due delayed tasks, tasks of dead worker sessions, expired leases, workflow and event timers, cron, retention. Safe to call concurrently (one runs, the others return {"skipped": true}). Returns counts of what it did.';
