-- 40_events.sql — choreography: topics, subscriptions, events (placeholder hooks).

-- The append-only event log.  Pinned here so workflows (publish and
-- wait_event steps) can rely on its shape; the events subsystem owns it.
CREATE TABLE baton._events (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic          text NOT NULL,
    key            text,
    payload        jsonb NOT NULL DEFAULT '{}',
    correlation_id uuid NOT NULL DEFAULT pg_catalog.gen_random_uuid(),
    cause_task_id  bigint,      -- the task whose result or end published it
    cause_run_id   bigint,      -- the run (publish step, run-end token) that published it
    cause_step     text,
    published_at   timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE INDEX _events_topic_key_idx ON baton._events (topic, key, published_at);
CREATE INDEX _events_correlation_idx ON baton._events (correlation_id);

-- Appends an event to the log and delivers it: to waiting workflow steps
-- (here) and to matching subscriptions (once the events subsystem lands).
-- Returns the event id.  Everything that publishes goes through here.
CREATE FUNCTION baton._publish(topic text, payload jsonb, key text, correlation_id uuid,
                               cause_task_id bigint, cause_run_id bigint, cause_step text)
RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    e baton._events;
BEGIN
    INSERT INTO baton._events (topic, key, payload, correlation_id, cause_task_id, cause_run_id, cause_step)
    VALUES (topic, key, COALESCE(payload, '{}'), COALESCE(correlation_id, pg_catalog.gen_random_uuid()),
            cause_task_id, cause_run_id, cause_step)
    RETURNING * INTO e;
    PERFORM baton._wf_on_event(e);
    RETURN e.id;
END
$$;

-- Called by the task core when a subscriber's task ends or a result carries events.
CREATE FUNCTION baton._ev_on_task_end(task baton._tasks) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
END
$$;

-- Called by workflows when a run ends (subscriptions that started runs publish their tokens).
CREATE FUNCTION baton._ev_on_run_end(run_id bigint) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
END
$$;

-- Time-driven event work (log retention); returns counts.
CREATE FUNCTION baton._ev_tick() RETURNS jsonb
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$ SELECT '{}'::jsonb $$;
