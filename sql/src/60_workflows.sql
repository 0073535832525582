-- 60_workflows.sql — orchestration: workflow definitions, runs and steps (placeholder hooks).

-- Called by the task core when a task of a run ends.
CREATE FUNCTION baton._wf_on_task_end(task baton._tasks) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
END
$$;

-- May a dead task of a run be retried by hand?
CREATE FUNCTION baton._wf_may_retry(task baton._tasks) RETURNS boolean
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$ SELECT true $$;

-- Time-driven workflow work (sleep steps, timeouts); returns counts.
CREATE FUNCTION baton._wf_tick() RETURNS jsonb
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$ SELECT '{}'::jsonb $$;

-- Called by the events subsystem for every published event, in the publishing
-- transaction, so waiting steps (wait_event) see it atomically.
CREATE FUNCTION baton._wf_on_event(event baton._events) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
END
$$;
