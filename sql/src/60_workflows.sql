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

-- Does a workflow of this name exist (any version)?  Used by cron and subscriptions.
CREATE FUNCTION baton._wf_exists(workflow text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$ SELECT false $$;

-- Rows of the causal chain contributed by workflows (runs and steps), for baton.trace.
CREATE FUNCTION baton._wf_trace(correlation uuid)
RETURNS TABLE (at timestamptz, kind text, id bigint, name text, state text,
               cause_kind text, cause_id bigint, detail jsonb)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT NULL::timestamptz, NULL::text, NULL::bigint, NULL::text, NULL::text, NULL::text, NULL::bigint, NULL::jsonb
     WHERE false
$$;

-- Starts a run of the latest version of a workflow; returns the run id.
CREATE FUNCTION baton.start(workflow text, input jsonb DEFAULT '{}', idempotency_key text DEFAULT NULL,
                            correlation_id uuid DEFAULT NULL, cause_event_id bigint DEFAULT NULL,
                            subscription_id bigint DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'baton.start: workflows are not implemented yet' USING ERRCODE = 'feature_not_supported';
END
$$;
COMMENT ON FUNCTION baton.start(text, jsonb, text, uuid, bigint, bigint) IS 'Starts a workflow run (not implemented yet).';
GRANT EXECUTE ON FUNCTION baton.start(text, jsonb, text, uuid, bigint, bigint) TO baton_producer, baton_admin;
