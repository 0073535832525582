-- 64_explain_progress.sql — why each step of a run is where it is (explain_run), and progress reports of running tasks.

-- Why one step of a run is in its state, in words.
CREATE FUNCTION baton._explain_step(s baton._run_steps, d baton._wf_steps) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    open_deps text;
    first_open bigint;
BEGIN
    CASE s.state
    WHEN 'pending' THEN
        SELECT pg_catalog.string_agg(pg_catalog.format('%s (%s)', p.step, p.state), ', ' ORDER BY p.ord) INTO open_deps
          FROM baton._run_steps AS p
         WHERE p.run_id = s.run_id AND p.step = ANY (d.after) AND p.state NOT IN ('succeeded', 'skipped');
        RETURN pg_catalog.format('waiting for its after steps to end: %s', COALESCE(open_deps, 'none left'));
    WHEN 'running' THEN
        IF s.kind = 'workflow' THEN
            RETURN pg_catalog.format('waiting for child run %s (%s)', s.child_run_id,
                                     (SELECT r.state FROM baton._runs AS r WHERE r.id = s.child_run_id));
        END IF;
        IF d.spec ? 'map' THEN
            SELECT t.id INTO first_open FROM baton._tasks AS t
             WHERE t.run_id = s.run_id AND t.step = s.step AND t.state IN ('scheduled', 'pending', 'running')
             ORDER BY t.map_index LIMIT 1;
            RETURN pg_catalog.format('map: %s of %s elements done%s', COALESCE(s.map_done, 0), COALESCE(s.map_total, 0),
                                     CASE WHEN first_open IS NULL THEN ''
                                          ELSE pg_catalog.format('; first open element, task %s: %s', first_open,
                                                                 baton.explain_task(first_open)) END);
        END IF;
        IF s.task_id IS NULL OR NOT EXISTS (SELECT 1 FROM baton._tasks AS t WHERE t.id = s.task_id) THEN
            RETURN 'running';
        END IF;
        RETURN pg_catalog.format('task %s: %s', s.task_id, baton.explain_task(s.task_id));
    WHEN 'waiting' THEN
        IF s.kind = 'sleep' THEN
            RETURN pg_catalog.format('sleeping until %s (in %s)', s.wake_at, s.wake_at - pg_catalog.now());
        END IF;
        RETURN pg_catalog.format('waiting for %s%s%s', COALESCE(s.wait_topic, s.kind),
                                 CASE WHEN s.wait_key IS NULL THEN '' ELSE pg_catalog.format(' with key "%s"', s.wait_key) END,
                                 CASE WHEN s.wake_at IS NULL THEN '' ELSE pg_catalog.format(' until %s', s.wake_at) END);
    WHEN 'skipped' THEN
        RETURN CASE WHEN d.spec ? 'when' THEN pg_catalog.format('skipped: its when (%s) was false', d.spec ->> 'when')
                    ELSE 'skipped (its wait timed out with on_timeout = skip)' END;
    WHEN 'compensating' THEN
        RETURN pg_catalog.format('compensating: task %s: %s', s.comp_task_id,
                                 CASE WHEN EXISTS (SELECT 1 FROM baton._tasks AS t WHERE t.id = s.comp_task_id)
                                      THEN baton.explain_task(s.comp_task_id) ELSE 'ended' END);
    WHEN 'succeeded' THEN
        RETURN pg_catalog.format('succeeded at %s', s.finished_at);
    WHEN 'compensated' THEN
        RETURN pg_catalog.format('compensated after its run failed (succeeded at %s)', s.finished_at);
    ELSE
        RETURN pg_catalog.format('%s%s', s.state, CASE WHEN s.error IS NULL THEN '' ELSE ': ' || s.error END);
    END CASE;
END
$$;
COMMENT ON FUNCTION baton._explain_step(baton._run_steps, baton._wf_steps) IS
'The explanation of one step for explain_run.';

CREATE FUNCTION baton.explain_run(run bigint)
RETURNS TABLE (step text, kind text, state text, why text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM baton._runs AS r WHERE r.id = explain_run.run) THEN
        RAISE EXCEPTION 'baton.explain_run: run % does not exist', explain_run.run
            USING ERRCODE = 'no_data_found', COLUMN = 'run';
    END IF;
    PERFORM baton._authorize_run('explain_run', explain_run.run, 'read');
    RETURN QUERY
    SELECT s.step, s.kind, s.state, baton._explain_step(s, d)
      FROM baton._runs AS r
      JOIN baton._run_steps AS s ON s.run_id = r.id
      JOIN baton._wf_steps AS d ON d.workflow = r.workflow AND d.version = r.version AND d.step = s.step
     WHERE r.id = explain_run.run
     ORDER BY s.ord, s.step;
END
$$;
COMMENT ON FUNCTION baton.explain_run(bigint) IS
'Says for every step of a run why it is where it is: waiting on its after steps (named), skipped by its when, its task and why (explain_task), map progress, sleeping until T, waiting for an event, a child run, compensating.';

CREATE FUNCTION baton.progress(id bigint, attempt integer, progress jsonb) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM baton._grants AS g WHERE g.kind = 'queue') THEN PERFORM baton._authorize_task('progress', progress.id, 'work'); END IF;
    IF progress IS NULL THEN
        PERFORM baton._bad('progress', 'progress', 'must not be NULL (send {} to clear it)');
    END IF;
    IF pg_catalog.octet_length(progress::text) > 8192 THEN
        PERFORM baton._bad('progress', 'progress',
                           pg_catalog.format('must be at most 8192 bytes as text (got %s)', pg_catalog.octet_length(progress::text)));
    END IF;
    UPDATE baton._tasks AS x
       SET progress = progress.progress,
           lease_expires_at = pg_catalog.now() + COALESCE(x.timeout, q.lease)
      FROM baton._queues AS q
     WHERE x.id = progress.id AND x.attempt = progress.attempt AND x.state = 'running' AND q.name = x.queue;
    RETURN FOUND;
END
$$;
COMMENT ON FUNCTION baton.progress(bigint, integer, jsonb) IS
'Records the progress of a running attempt (any JSON up to 8 KiB, shown in baton.tasks and baton.run_steps) and extends its lease like heartbeat. False means the lease is lost or the task was cancelled: stop working on it.';
