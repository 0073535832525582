-- 40_events.sql — choreography: the event log, subscriptions, publish and fan-out, tokens, replay, retention.
--
-- Glossary: an event is an immutable entry of the log (topic, key, payload);
-- a subscription routes every event whose topic matches its pattern (and
-- whose payload passes its filter) to a queue (one task per event) or to a
-- workflow (one run per event); a token is the event a subscription
-- publishes by itself when the delivered task or run ends (on_success /
-- on_failure).

-- The append-only event log (no baton function updates an event; the baton
-- roles have no rights on the table; retention deletes).  Pinned here so workflows (publish and
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
-- Retention and replay scan by age.
CREATE INDEX _events_published_idx ON baton._events (published_at);

CREATE TABLE baton._subscriptions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL UNIQUE,
    topic        text NOT NULL,          -- the pattern as given
    wildcard     boolean NOT NULL,       -- false: matched by equality (index), true: by topic_regex
    topic_regex  text NOT NULL,          -- anchored regex over '.' || topic
    head         text,                   -- a pattern's first segment when literal, else NULL
    prefix       text NOT NULL,          -- a pattern's literal leading segments, each followed by '.'
    queue        text REFERENCES baton._queues (name) ON UPDATE CASCADE ON DELETE RESTRICT,
    workflow     text,
    filter       jsonpath,
    on_success   text,
    on_failure   text,
    priority     integer NOT NULL DEFAULT 0,
    max_attempts integer CHECK (max_attempts > 0),
    paused       boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CHECK ((queue IS NULL) <> (workflow IS NULL))
);
-- At publish time exact topics are found by index, patterns by their literal
-- first segment (index) and prefix before their regex is tried; only
-- patterns that start with a wildcard are tried against every event.
CREATE INDEX _subscriptions_exact_idx ON baton._subscriptions (topic) WHERE NOT wildcard;
CREATE INDEX _subscriptions_head_idx ON baton._subscriptions (head) WHERE wildcard;

-- Runs started by subscriptions, with how they ended (for tokens and counts).
-- Kept here rather than read from the workflow tables so this subsystem
-- depends only on the pinned hooks.
CREATE TABLE baton._ev_runs (
    run_id          bigint PRIMARY KEY,
    subscription_id bigint NOT NULL,
    event_id        bigint,
    state           text,                -- NULL while running, else the run's final state
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    finished_at     timestamptz
);
CREATE INDEX _ev_runs_subscription_idx ON baton._ev_runs (subscription_id);
CREATE INDEX _ev_runs_created_idx ON baton._ev_runs (created_at);

-- Settings of the events subsystem: at most one row, written by set_event_retention.
-- No row means the defaults; the script inserts none, so that pg_dump/restore
-- of this configuration table never collides with a row the script made.
CREATE TABLE baton._ev_settings (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    retention interval CHECK (retention > interval '0')   -- NULL: keep events forever
);

-- Filters that raised at publish time (the event then does not match that
-- subscription; the publisher goes on).  Append-only, so that publishers
-- never contend on a counter; old rows leave with the event retention.
CREATE TABLE baton._ev_filter_errors (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscription_id bigint NOT NULL,
    event_id        bigint NOT NULL,
    sqlstate        text NOT NULL,
    error           text NOT NULL,
    at              timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE INDEX _ev_filter_errors_subscription_idx ON baton._ev_filter_errors (subscription_id, at);
CREATE INDEX _ev_filter_errors_at_idx ON baton._ev_filter_errors (at);

-- Per-subscription counts and dead letters look tasks up by subscription.
CREATE INDEX _tasks_subscription_idx ON baton._tasks (subscription_id, state) WHERE subscription_id IS NOT NULL;
CREATE INDEX _tasks_event_idx ON baton._tasks (event_id) WHERE event_id IS NOT NULL;

SELECT pg_catalog.pg_extension_config_dump('baton._events', '');
SELECT pg_catalog.pg_extension_config_dump('baton._subscriptions', '');
SELECT pg_catalog.pg_extension_config_dump('baton._ev_runs', '');
SELECT pg_catalog.pg_extension_config_dump('baton._ev_settings', '');
SELECT pg_catalog.pg_extension_config_dump('baton._ev_filter_errors', '');

-- Validation ----------------------------------------------------------------

-- Checks a concrete topic (what is published): dot-separated segments of
-- letters, digits, '_' and '-', at most 255 characters.
CREATE FUNCTION baton._ev_check_topic(fn text, field text, topic text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF topic IS NULL OR pg_catalog.length(topic) > 255
       OR topic !~ '^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$' THEN
        PERFORM baton._bad(fn, field,
            pg_catalog.format('must be a topic of dot-separated segments of letters, digits, "_" and "-", without wildcards, at most 255 characters (got %s)',
                              COALESCE(pg_catalog.quote_literal(topic), 'NULL')));
    END IF;
END
$$;

-- Checks a topic pattern and compiles it to an anchored regex over
-- '.' || topic: a word matches itself, '*' exactly one segment, '#' zero or
-- more segments.  The leading dot lets '#' absorb its separators.
CREATE FUNCTION baton._ev_compile_pattern(fn text, pattern text) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    seg text;
    rx  text := '^';
BEGIN
    IF pattern IS NULL OR pg_catalog.length(pattern) > 255
       OR pattern !~ '^([A-Za-z0-9_-]+|\*|#)(\.([A-Za-z0-9_-]+|\*|#))*$' THEN
        PERFORM baton._bad(fn, 'topic',
            pg_catalog.format('must be a topic pattern of dot-separated segments, each letters, digits, "_" and "-", or "*" (one segment) or "#" (zero or more), at most 255 characters (got %s)',
                              COALESCE(pg_catalog.quote_literal(pattern), 'NULL')));
    END IF;
    FOREACH seg IN ARRAY pg_catalog.string_to_array(pattern, '.') LOOP
        rx := rx || CASE seg WHEN '*' THEN '\.[^.]+' WHEN '#' THEN '(\.[^.]+)*' ELSE '\.' || seg END;
    END LOOP;
    RETURN rx || '$';
END
$$;

-- The literal leading segments of a pattern, each followed by '.': a topic
-- can only match if topic || '.' starts with them.
CREATE FUNCTION baton._ev_pattern_prefix(pattern text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.substring(pattern || '.', '^((?:[A-Za-z0-9_-]+\.)*)')
$$;

-- Does a topic match a subscription's compiled pattern?
CREATE FUNCTION baton._ev_matches(s baton._subscriptions, topic text) RETURNS boolean
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN s.wildcard THEN ('.' || topic) OPERATOR(pg_catalog.~) s.topic_regex
                ELSE s.topic = topic END
$$;

-- Does an event pass a filter?  $ is the payload; $key and $topic are variables.
-- Evaluation errors count as no match (silent), so a payload of an unexpected
-- shape never breaks the publisher.
CREATE FUNCTION baton._ev_passes(filter jsonpath, payload jsonb, key text, topic text) RETURNS boolean
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT filter IS NULL
        OR COALESCE(pg_catalog.jsonb_path_match(payload, filter,
                        pg_catalog.jsonb_build_object('key', key, 'topic', topic), true), false)
$$;

-- _ev_passes for one subscription at publish time: a filter that raises
-- (e.g. .datetime() of a value that is no date-time) never aborts the
-- publisher: the event does not match, and the error is recorded in
-- _ev_filter_errors (view baton.subscription_filter_errors).  Transient
-- errors (baton._transient_error) still raise.
CREATE FUNCTION baton._ev_passes_safe(subscription_id bigint, filter jsonpath, e baton._events) RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN baton._ev_passes(filter, e.payload, e.key, e.topic);
EXCEPTION WHEN OTHERS THEN
    IF baton._transient_error(SQLSTATE) THEN
        RAISE;
    END IF;
    INSERT INTO baton._ev_filter_errors (subscription_id, event_id, sqlstate, error)
    VALUES (_ev_passes_safe.subscription_id, e.id, SQLSTATE, SQLERRM);
    RETURN false;
END
$$;
COMMENT ON FUNCTION baton._ev_passes_safe(bigint, jsonpath, baton._events) IS
'Does an event pass a subscription''s filter?  A filter that raises counts as no match and is recorded in baton._ev_filter_errors.';

-- The payload of a task delivering an event to a queue subscription.
CREATE FUNCTION baton._ev_envelope(e baton._events, subscription text) RETURNS jsonb
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.jsonb_build_object('event_id', e.id, 'topic', e.topic, 'key', e.key,
                                         'payload', e.payload, 'published_at', e.published_at,
                                         'correlation_id', e.correlation_id, 'subscription', subscription)
$$;

-- Returns the subscription row, or raises undefined_object naming it.
CREATE FUNCTION baton._subscription(fn text, name text) RETURNS baton._subscriptions
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s baton._subscriptions;
BEGIN
    SELECT * INTO s FROM baton._subscriptions AS x WHERE x.name = _subscription.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'baton.%: subscription "%" does not exist', fn, name
            USING ERRCODE = 'undefined_object', COLUMN = 'subscription',
                  HINT = 'Create it with baton.subscribe().';
    END IF;
    RETURN s;
END
$$;

-- Delivery ------------------------------------------------------------------

-- Starts one workflow run per (event, subscription) pair; remembers the run
-- so its end publishes the subscription's tokens.  replay: the run is a
-- re-delivery, so it must not be folded into the first one by idempotency.
CREATE FUNCTION baton._ev_start_run(e baton._events, s baton._subscriptions, replay boolean) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    run bigint;
BEGIN
    -- The delivery key is in the "baton:" namespace no caller may use.
    run := baton._wf_start(s.workflow, e.payload,
                           CASE WHEN replay THEN NULL ELSE 'baton:event:' || e.id || ':' || s.name END,
                           e.correlation_id, e.id, s.id, NULL, NULL);
    INSERT INTO baton._ev_runs (run_id, subscription_id, event_id) VALUES (run, s.id, e.id)
    ON CONFLICT ON CONSTRAINT _ev_runs_pkey DO NOTHING;
    RETURN run;
END
$$;

-- Appends an event to the log and delivers it: to waiting workflow steps and,
-- in one set-based statement, to every matching queue subscription (one task
-- each, notified once per queue), and to every matching workflow subscription
-- (one run each).  Returns the event id.  Everything that publishes goes
-- through here; callers validate their input.
CREATE FUNCTION baton._publish(topic text, payload jsonb, key text, correlation_id uuid,
                               cause_task_id bigint, cause_run_id bigint, cause_step text)
RETURNS bigint
-- Its statements' generic plans are index scans: re-planning each call for a
-- custom plan cost more than the statements themselves (measured).
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    e        baton._events;
    env      jsonb;
    queues   text[];
    runs_for bigint[];
    s        baton._subscriptions;
BEGIN
    -- Here rather than in each caller: workflow publish steps render their key.
    IF pg_catalog.octet_length(_publish.key) > baton._max_key_bytes() THEN
        PERFORM baton._check_key('publish', 'key', _publish.key);
    END IF;
    INSERT INTO baton._events AS x (topic, key, payload, correlation_id, cause_task_id, cause_run_id, cause_step)
    VALUES (_publish.topic, _publish.key, COALESCE(_publish.payload, '{}'),
            COALESCE(_publish.correlation_id, pg_catalog.gen_random_uuid()),
            _publish.cause_task_id, _publish.cause_run_id, _publish.cause_step)
    RETURNING x.* INTO e;
    PERFORM baton._wf_on_event(e);
    env := baton._ev_envelope(e, NULL);

    -- One statement: find the matching subscriptions (exact topics by index,
    -- patterns by first segment and prefix, then regex; then the filter),
    -- insert a task for each queue subscription, and report the queues to
    -- notify and the workflow subscriptions to start.
    WITH m AS (
        SELECT x.id, x.name, x.queue, x.workflow, x.priority, x.max_attempts FROM (
            SELECT s1.* FROM baton._subscriptions AS s1
             WHERE NOT s1.wildcard AND s1.topic = e.topic AND NOT s1.paused
            UNION ALL
            SELECT s2.* FROM baton._subscriptions AS s2
             WHERE s2.wildcard AND s2.head = pg_catalog.split_part(e.topic, '.', 1)
               AND pg_catalog.starts_with(e.topic || '.', s2.prefix)
               AND ('.' || e.topic) OPERATOR(pg_catalog.~) s2.topic_regex AND NOT s2.paused
            UNION ALL
            SELECT s3.* FROM baton._subscriptions AS s3
             WHERE s3.wildcard AND s3.head IS NULL
               AND ('.' || e.topic) OPERATOR(pg_catalog.~) s3.topic_regex AND NOT s3.paused) AS x
         WHERE x.filter IS NULL OR baton._ev_passes_safe(x.id, x.filter, e)),
    ins AS (
        INSERT INTO baton._tasks (queue, state, priority, run_at, max_attempts, payload,
                                  subscription_id, event_id, correlation_id)
        SELECT q.name, 'pending', m.priority, pg_catalog.now(), COALESCE(m.max_attempts, q.max_attempts),
               env || pg_catalog.jsonb_build_object('subscription', m.name), m.id, e.id, e.correlation_id
          FROM m JOIN baton._queues AS q ON q.name = m.queue
         ORDER BY m.id
        RETURNING queue)
    SELECT (SELECT pg_catalog.array_agg(DISTINCT ins.queue) FROM ins),
           (SELECT pg_catalog.array_agg(m.id ORDER BY m.id) FROM m WHERE m.workflow IS NOT NULL)
      INTO queues, runs_for;
    IF queues IS NOT NULL THEN
        PERFORM baton._wake_many(queues);
    END IF;
    IF runs_for IS NOT NULL THEN
        FOR s IN SELECT * FROM baton._subscriptions AS s1 WHERE s1.id = ANY (runs_for) ORDER BY s1.id LOOP
            PERFORM baton._ev_start_run(e, s, false);
        END LOOP;
    END IF;
    RETURN e.id;
END
$$;

CREATE FUNCTION baton.publish(topic text, payload jsonb DEFAULT '{}', key text DEFAULT NULL,
                              correlation_id uuid DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM baton._grants AS g WHERE g.kind = 'topic') THEN PERFORM baton._authorize_topic('publish', publish.topic, 'publish'); END IF;
    PERFORM baton._ev_check_topic('publish', 'topic', publish.topic);
    IF publish.payload IS NULL THEN
        PERFORM baton._bad('publish', 'payload', 'must not be NULL (use ''{}'' for no payload)');
    END IF;
    RETURN baton._publish(publish.topic, publish.payload, publish.key, publish.correlation_id, NULL, NULL, NULL);
END
$$;
COMMENT ON FUNCTION baton.publish(text, jsonb, text, uuid) IS
'Appends an event to the log and, in the caller''s transaction, fans it out to every matching subscription (one task per queue subscription, one run per workflow subscription). correlation_id defaults to a new one (pass a task''s to join its trace; an event caused by a task is published by returning it under "emit" in the task''s result). Returns the event id.';

-- Subscriptions -------------------------------------------------------------

CREATE FUNCTION baton.subscribe(name text, topic text, queue text DEFAULT NULL, workflow text DEFAULT NULL,
                                filter text DEFAULT NULL, on_success text DEFAULT NULL,
                                on_failure text DEFAULT NULL, priority integer DEFAULT 0,
                                max_attempts integer DEFAULT NULL, replace boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rx        text;
    fp        jsonpath;
    probe     baton._subscriptions;
    tok       text;
    tok_topic text;
    sub_id    bigint;
BEGIN
    PERFORM baton._check_name('subscribe', 'name', subscribe.name);
    rx := baton._ev_compile_pattern('subscribe', subscribe.topic);
    IF (subscribe.queue IS NULL) = (subscribe.workflow IS NULL) THEN
        PERFORM baton._bad('subscribe', 'queue', 'exactly one of queue and workflow must be given');
    END IF;
    IF subscribe.queue IS NOT NULL THEN
        PERFORM baton._queue('subscribe', subscribe.queue);
    ELSIF NOT baton._wf_exists(subscribe.workflow) THEN
        RAISE EXCEPTION 'baton.subscribe: workflow "%" does not exist', subscribe.workflow
            USING ERRCODE = 'undefined_object', COLUMN = 'workflow',
                  HINT = 'Define it with baton.define_workflow().';
    END IF;
    IF subscribe.filter IS NOT NULL THEN
        BEGIN
            fp := subscribe.filter::jsonpath;
            -- A predicate evaluates to a boolean (or unknown) on any document;
            -- a plain path or an unknown variable raises here.
            PERFORM pg_catalog.jsonb_path_match('{}'::jsonb, fp,
                                                '{"key": null, "topic": "t"}'::jsonb, false);
        EXCEPTION WHEN OTHERS THEN
            PERFORM baton._bad('subscribe', 'filter',
                pg_catalog.format('must be a JSONPath predicate over the payload, with $key and $topic as variables, e.g. ''$.amount > 100'' (%s: %s)',
                                  pg_catalog.quote_literal(subscribe.filter), SQLERRM));
        END;
    END IF;
    probe.wildcard := true;
    probe.topic_regex := rx;
    FOREACH tok IN ARRAY ARRAY['on_success', 'on_failure'] LOOP
        tok_topic := CASE tok WHEN 'on_success' THEN subscribe.on_success ELSE subscribe.on_failure END;
        CONTINUE WHEN tok_topic IS NULL;
        PERFORM baton._ev_check_topic('subscribe', tok, tok_topic);
        -- A token the subscription would receive itself loops forever.
        IF baton._ev_matches(probe, tok_topic) THEN
            PERFORM baton._bad('subscribe', tok,
                pg_catalog.format('%s matches the subscription''s own pattern %s: its tokens would be delivered back to it',
                                  pg_catalog.quote_literal(tok_topic), pg_catalog.quote_literal(subscribe.topic)));
        END IF;
    END LOOP;
    IF subscribe.priority IS NULL THEN
        PERFORM baton._bad('subscribe', 'priority', 'must not be NULL');
    END IF;
    IF subscribe.max_attempts < 1 THEN
        PERFORM baton._bad('subscribe', 'max_attempts',
                           pg_catalog.format('must be at least 1 (got %s)', subscribe.max_attempts));
    END IF;
    IF subscribe.workflow IS NOT NULL AND subscribe.max_attempts IS NOT NULL THEN
        PERFORM baton._bad('subscribe', 'max_attempts', 'applies to queue subscriptions only (a workflow''s steps have their own)');
    END IF;

    INSERT INTO baton._subscriptions AS x (name, topic, wildcard, topic_regex, head, prefix, queue, workflow,
                                           filter, on_success, on_failure, priority, max_attempts)
    VALUES (subscribe.name, subscribe.topic, subscribe.topic ~ '(^|\.)[*#](\.|$)', rx,
            NULLIF(pg_catalog.split_part(baton._ev_pattern_prefix(subscribe.topic), '.', 1), ''),
            baton._ev_pattern_prefix(subscribe.topic), subscribe.queue,
            subscribe.workflow, fp, subscribe.on_success, subscribe.on_failure, subscribe.priority,
            subscribe.max_attempts)
    ON CONFLICT ON CONSTRAINT _subscriptions_name_key DO UPDATE
       SET topic = excluded.topic, wildcard = excluded.wildcard, topic_regex = excluded.topic_regex,
           head = excluded.head, prefix = excluded.prefix,
           queue = excluded.queue, workflow = excluded.workflow, filter = excluded.filter,
           on_success = excluded.on_success, on_failure = excluded.on_failure,
           priority = excluded.priority, max_attempts = excluded.max_attempts
     WHERE subscribe.replace
    RETURNING x.id INTO sub_id;
    IF sub_id IS NULL THEN
        RAISE EXCEPTION 'baton.subscribe: subscription "%" already exists', subscribe.name
            USING ERRCODE = 'duplicate_object', COLUMN = 'name',
                  HINT = 'Pass replace => true to change it.';
    END IF;
    RETURN sub_id;
END
$$;
COMMENT ON FUNCTION baton.subscribe(text, text, text, text, text, text, text, integer, integer, boolean) IS
'Routes every event whose topic matches the pattern (word = itself, * = one segment, # = zero or more) and whose payload passes filter (a JSONPath predicate: $ is the payload, $key and $topic are variables) to a queue (one task per event, payload = the event envelope) or a workflow (one run per event, input = the event payload). on_success / on_failure: topics of the tokens published when the delivered task or run ends. replace => true updates an existing subscription of that name. Returns the subscription id.';

CREATE FUNCTION baton.unsubscribe(name text, if_exists boolean DEFAULT false) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM baton._subscriptions AS x WHERE x.name = unsubscribe.name;
    IF NOT FOUND THEN
        IF NOT if_exists THEN
            PERFORM baton._subscription('unsubscribe', unsubscribe.name);
        END IF;
        RETURN false;
    END IF;
    RETURN true;
END
$$;
COMMENT ON FUNCTION baton.unsubscribe(text, boolean) IS
'Removes a subscription: no further deliveries. Its tasks already delivered keep running but publish no tokens. Unknown names raise unless if_exists.';

CREATE FUNCTION baton.pause_subscription(name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM baton._subscription('pause_subscription', pause_subscription.name);
    UPDATE baton._subscriptions AS x SET paused = true WHERE x.name = pause_subscription.name;
END
$$;
COMMENT ON FUNCTION baton.pause_subscription(text) IS
'Stops deliveries to a subscription: events published meanwhile are logged but not delivered to it (use baton.replay to catch up).';

CREATE FUNCTION baton.resume_subscription(name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM baton._subscription('resume_subscription', resume_subscription.name);
    UPDATE baton._subscriptions AS x SET paused = false WHERE x.name = resume_subscription.name;
END
$$;
COMMENT ON FUNCTION baton.resume_subscription(text) IS 'Resumes deliveries to a paused subscription.';

-- Tokens and emits ----------------------------------------------------------

-- Publishes the events a succeeded task's result lists under "emit".  A
-- malformed list raises before anything is published; the completion then
-- fails the task without retry (baton._on_tasks_succeeded).
CREATE FUNCTION baton._ev_emit(task baton._tasks) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    list jsonb := task.result -> 'emit';
    ev   jsonb;
    n    integer := 0;
    bad  text;
BEGIN
    IF pg_catalog.jsonb_typeof(list) IS DISTINCT FROM 'array' THEN
        PERFORM baton._bad('complete', 'result.emit',
            pg_catalog.format('must be an array of {"topic", "payload", "key"} objects (task %s, got %s)',
                              task.id, COALESCE(pg_catalog.jsonb_typeof(list), 'NULL')));
    END IF;
    -- Validate everything before publishing anything.
    FOR ev IN SELECT x FROM pg_catalog.jsonb_array_elements(list) AS x LOOP
        bad := CASE
            WHEN pg_catalog.jsonb_typeof(ev) <> 'object' THEN 'must be an object'
            WHEN EXISTS (SELECT 1 FROM pg_catalog.jsonb_object_keys(ev) AS k WHERE k NOT IN ('topic', 'payload', 'key'))
                THEN 'may only have the keys "topic", "payload" and "key"'
            WHEN pg_catalog.jsonb_typeof(ev -> 'topic') IS DISTINCT FROM 'string'
                 OR (ev ->> 'topic') !~ '^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$'
                 OR pg_catalog.length(ev ->> 'topic') > 255
                THEN 'must have a "topic" of dot-separated segments of letters, digits, "_" and "-", without wildcards'
            WHEN pg_catalog.jsonb_typeof(ev -> 'payload') = 'null' THEN 'must not have a null "payload"'
            WHEN pg_catalog.jsonb_typeof(ev -> 'key') NOT IN ('string', 'null') THEN 'must have a string "key"'
            WHEN pg_catalog.octet_length(ev ->> 'key') > baton._max_key_bytes()
                THEN pg_catalog.format('must have a "key" of at most %s bytes', baton._max_key_bytes())
        END;
        IF bad IS NOT NULL THEN
            PERFORM baton._bad('complete', 'result.emit',
                pg_catalog.format('element %s %s (task %s, got %s)', n, bad, task.id, ev));
        END IF;
        -- An emit is the completing worker publishing: it needs publish on a restricted topic.
        PERFORM baton._authorize_topic('complete', ev ->> 'topic', 'publish');
        n := n + 1;
    END LOOP;
    FOR ev IN SELECT x FROM pg_catalog.jsonb_array_elements(list) WITH ORDINALITY AS e(x, i) ORDER BY e.i LOOP
        PERFORM baton._publish(ev ->> 'topic', COALESCE(ev -> 'payload', '{}'), ev ->> 'key',
                               COALESCE(task.correlation_id, baton._task_correlation(task.id)), task.id, NULL, NULL);
    END LOOP;
END
$$;

-- Called by the task core when a subscriber's task ends or a succeeded
-- result carries events: publishes the emits, then the subscription's token.
CREATE FUNCTION baton._ev_on_task_end(task baton._tasks) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s     baton._subscriptions;
    topic text;
BEGIN
    IF task.state = 'succeeded' AND pg_catalog.jsonb_typeof(task.result) = 'object' AND task.result ? 'emit' THEN
        PERFORM baton._ev_emit(task);
    END IF;
    IF task.subscription_id IS NULL OR task.state NOT IN ('succeeded', 'failed', 'cancelled') THEN
        RETURN;
    END IF;
    SELECT * INTO s FROM baton._subscriptions AS x WHERE x.id = task.subscription_id;
    IF NOT FOUND THEN
        RETURN;     -- unsubscribed meanwhile: nobody asked for tokens any more
    END IF;
    topic := CASE WHEN task.state = 'succeeded' THEN s.on_success ELSE s.on_failure END;
    IF topic IS NULL THEN
        RETURN;
    END IF;
    -- The task payload is the event envelope, so the token needs no lookup of
    -- an event that retention may already have removed.
    PERFORM baton._publish(topic,
        pg_catalog.jsonb_build_object('subscription', s.name, 'task_id', task.id, 'state', task.state::text,
                                      'attempts', task.attempt, 'event', task.payload)
        || CASE WHEN task.state = 'succeeded' THEN pg_catalog.jsonb_build_object('result', task.result)
                ELSE pg_catalog.jsonb_build_object('error', task.error) END,
        task.payload ->> 'key', COALESCE(task.correlation_id, baton._task_correlation(task.id)), task.id, NULL, NULL);
END
$$;

-- Called by workflows when a run ends: a run started by a subscription
-- publishes that subscription's token with the run's output or error.  The
-- end is recorded here even for a run that ended inside baton.start, before
-- _ev_start_run could record the start; a second call publishes nothing.
CREATE FUNCTION baton._ev_on_run_end(run_id bigint) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r     record;
    s     baton._subscriptions;
    e     baton._events;
    topic text;
BEGIN
    SELECT v.state::text AS state, v.output, v.error, v.correlation_id, v.subscription_id, v.cause_event_id
      INTO r FROM baton._runs AS v WHERE v.id = _ev_on_run_end.run_id;
    IF NOT FOUND OR r.subscription_id IS NULL OR r.state NOT IN ('succeeded', 'failed', 'cancelled') THEN
        RETURN;
    END IF;
    INSERT INTO baton._ev_runs AS x (run_id, subscription_id, event_id, state, finished_at)
    VALUES (_ev_on_run_end.run_id, r.subscription_id, r.cause_event_id, r.state, pg_catalog.now())
    ON CONFLICT ON CONSTRAINT _ev_runs_pkey DO UPDATE SET state = excluded.state, finished_at = excluded.finished_at
     WHERE x.state IS NULL;
    IF NOT FOUND THEN
        RETURN;     -- its end was already handled
    END IF;
    SELECT * INTO s FROM baton._subscriptions AS x WHERE x.id = r.subscription_id;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    topic := CASE WHEN r.state = 'succeeded' THEN s.on_success ELSE s.on_failure END;
    IF topic IS NULL THEN
        RETURN;
    END IF;
    SELECT * INTO e FROM baton._events AS x WHERE x.id = r.cause_event_id;
    PERFORM baton._publish(topic,
        pg_catalog.jsonb_build_object('subscription', s.name, 'run_id', _ev_on_run_end.run_id, 'state', r.state,
                                      'event', CASE WHEN e.id IS NULL THEN pg_catalog.jsonb_build_object('event_id', r.cause_event_id)
                                                    ELSE baton._ev_envelope(e, s.name) END)
        || CASE WHEN r.state = 'succeeded' THEN pg_catalog.jsonb_build_object('result', r.output)
                ELSE pg_catalog.jsonb_build_object('error', r.error) END,
        e.key, r.correlation_id, NULL, _ev_on_run_end.run_id, NULL);
END
$$;

-- Replay and retention ------------------------------------------------------

CREATE FUNCTION baton.replay(subscription text, since timestamptz, until timestamptz DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s      baton._subscriptions;
    e      baton._events;
    n      integer := 0;
BEGIN
    IF since IS NULL THEN
        PERFORM baton._bad('replay', 'since', 'must not be NULL');
    END IF;
    IF until < since THEN
        PERFORM baton._bad('replay', 'until', pg_catalog.format('must not be before since (got %s < %s)', until, since));
    END IF;
    s := baton._subscription('replay', subscription);
    IF s.queue IS NOT NULL THEN
        INSERT INTO baton._tasks (queue, state, priority, run_at, max_attempts, payload,
                                  subscription_id, event_id, correlation_id)
        SELECT q.name, 'pending', s.priority, pg_catalog.now(), COALESCE(s.max_attempts, q.max_attempts),
               baton._ev_envelope(x, s.name), s.id, x.id, x.correlation_id
          FROM baton._events AS x JOIN baton._queues AS q ON q.name = s.queue
         WHERE x.published_at >= since AND (until IS NULL OR x.published_at < until)
           AND baton._ev_matches(s, x.topic) AND (s.filter IS NULL OR baton._ev_passes_safe(s.id, s.filter, x))
         ORDER BY x.id;
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n > 0 THEN
            PERFORM baton._wake(s.queue);
        END IF;
    ELSE
        FOR e IN SELECT * FROM baton._events AS x
                  WHERE x.published_at >= since AND (until IS NULL OR x.published_at < until)
                    AND baton._ev_matches(s, x.topic) AND (s.filter IS NULL OR baton._ev_passes_safe(s.id, s.filter, x))
                  ORDER BY x.id
        LOOP
            PERFORM baton._ev_start_run(e, s, true);
            n := n + 1;
        END LOOP;
    END IF;
    RETURN n;
END
$$;
COMMENT ON FUNCTION baton.replay(text, timestamptz, timestamptz) IS
'Re-delivers the logged events published in [since, until) that match a subscription''s pattern and filter to that subscription alone, as new tasks or runs (even when paused). Returns how many.';

CREATE FUNCTION baton.set_event_retention(retention interval) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF retention <= interval '0' THEN
        PERFORM baton._bad('set_event_retention', 'retention',
                           pg_catalog.format('must be positive, or NULL to keep events forever (got %s)', retention));
    END IF;
    INSERT INTO baton._ev_settings AS x (singleton, retention) VALUES (true, set_event_retention.retention)
    ON CONFLICT (singleton) DO UPDATE SET retention = excluded.retention;
END
$$;
COMMENT ON FUNCTION baton.set_event_retention(interval) IS
'How long the event log keeps events (default 30 days; NULL keeps them forever). baton.tick() deletes older ones in bounded batches.';

-- Deletes up to max_rows events older than the retention (and the records
-- of ended subscription runs as old); returns how many events.
CREATE FUNCTION baton._ev_purge(max_rows integer) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    keep interval;
    n    integer := 0;
BEGIN
    SELECT x.retention INTO keep FROM baton._ev_settings AS x;
    IF NOT FOUND THEN
        keep := interval '30 days';          -- the default, until set_event_retention
    ELSIF keep IS NULL THEN
        RETURN 0;                            -- keep events forever
    END IF;
    DELETE FROM baton._events AS x WHERE x.id IN (
        SELECT y.id FROM baton._events AS y
         WHERE y.published_at < pg_catalog.now() - keep
         ORDER BY y.published_at
         LIMIT max_rows
           FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS n = ROW_COUNT;
    DELETE FROM baton._ev_filter_errors AS x WHERE x.id IN (
        SELECT y.id FROM baton._ev_filter_errors AS y
         WHERE y.at < pg_catalog.now() - keep
         LIMIT max_rows);
    DELETE FROM baton._ev_runs AS x WHERE x.run_id IN (
        SELECT y.run_id FROM baton._ev_runs AS y
         WHERE y.state IS NOT NULL AND y.created_at < pg_catalog.now() - keep
         LIMIT max_rows
           FOR UPDATE SKIP LOCKED);
    RETURN n;
END
$$;

-- Time-driven event work: log retention, a bounded batch per tick; returns counts.
CREATE FUNCTION baton._ev_tick() RETURNS jsonb
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.jsonb_build_object('events_purged', baton._ev_purge(10000))
$$;

