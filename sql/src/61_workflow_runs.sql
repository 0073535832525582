-- 61_workflow_runs.sql — orchestration, part 2: runs and the engine that moves their steps.
--
-- Locking order (issue 12).  Every transaction that waits for a lock takes
-- them in this one order, so none can wait for another in a circle:
--
--   1. runs, through baton._wf_lock_runs: a run's root first, then down its
--      chain of parents to the run itself (a parent before its child);
--      several trees in order of their root id.  Holding a root therefore
--      excludes everyone else from its whole tree, so a run's own children
--      (cancelled with it) may be locked later in the same transaction;
--   2. then tasks of those runs (complete, fail, cancel and retry look up the
--      task's run and lock it before the task; a run that ends waits for the
--      locks on its live tasks and cancels them all, including one a worker
--      is claiming at that moment: claims never wait for a run);
--   3. the wait_event topic locks (advisory, see _wf_wait_lock_key): a
--      publisher takes one shared and may wait for it; a step that starts
--      waiting only tries it exclusively and never waits.
--
-- Tasks that belong to no run may be locked at any point: nothing that holds
-- a run waits for them.  What may lock out of order never waits: the tick
-- (timers, rescues of dead workers' tasks, wait re-checks) and the delivery
-- of an event to the waiting steps of other runs try their locks with SKIP
-- LOCKED and leave what they could not lock to the next tick.
--
-- A step whose task is still live when its run ends (failed or cancelled) is
-- cancelled with it, and its worker is told (baton._cancelled: NOTIFY
-- baton_cancel).  A completion or failure reported for it afterwards is
-- rejected (false) and changes nothing: the step stays cancelled and is not
-- compensated, because as far as baton knows it never succeeded.

CREATE TABLE baton._runs (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workflow        text NOT NULL,
    version         integer NOT NULL,
    state           text NOT NULL DEFAULT 'running'
                    CHECK (state IN ('running', 'succeeded', 'failed', 'cancelled')),
    input           jsonb NOT NULL,
    output          jsonb,
    error           text,
    idempotency_key text,
    correlation_id  uuid NOT NULL,
    parent_run_id   bigint,
    parent_step     text,
    cause_event_id  bigint,
    subscription_id bigint,
    steps_left      integer NOT NULL,       -- steps not yet succeeded or skipped
    -- saga progress after a failure: NULL (nothing to undo), running, done
    compensation    text CHECK (compensation IN ('running', 'done')),
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    finished_at     timestamptz,
    deadline        timestamptz,            -- the definition's "timeout" after the start
    FOREIGN KEY (workflow, version) REFERENCES baton._workflows (name, version),
    UNIQUE (workflow, idempotency_key)
);
CREATE INDEX _runs_correlation_idx ON baton._runs (correlation_id);
CREATE INDEX _runs_parent_idx ON baton._runs (parent_run_id) WHERE parent_run_id IS NOT NULL;
CREATE INDEX _runs_running_idx ON baton._runs (workflow) WHERE state = 'running';
-- Retention: ended runs by age.
CREATE INDEX _runs_finished_idx ON baton._runs (finished_at) WHERE state <> 'running';
-- The tick fails running runs whose deadline has passed.
CREATE INDEX _runs_deadline_idx ON baton._runs (deadline) WHERE state = 'running' AND deadline IS NOT NULL;

-- Settings of the workflow engine: at most one row, written by set_run_retention.
-- No row means the defaults; the script inserts none, so that pg_dump/restore
-- of this configuration table never collides with a row the script made.
CREATE TABLE baton._wf_settings (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    retention interval CHECK (retention > interval '0')   -- NULL: keep ended runs forever
);

CREATE TABLE baton._run_steps (
    run_id        bigint NOT NULL REFERENCES baton._runs (id) ON DELETE CASCADE,
    step          text NOT NULL,
    kind          text NOT NULL,
    ord           integer NOT NULL,
    state         text NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'waiting', 'running', 'succeeded', 'failed', 'skipped',
                                   'cancelled', 'compensating', 'compensated')),
    deps_left     integer NOT NULL,
    output        jsonb,
    error         text,
    task_id       bigint,           -- task step: its task
    attempts      integer,          -- attempts the task used, kept when tasks are purged
    map_total     integer,          -- map step: elements, and those of emptied counter buckets
    map_done      integer,
    child_run_id  bigint,           -- workflow step: the child run
    wake_at       timestamptz,      -- sleep: wake-up; wait_event: timeout
    wait_topic    text,             -- wait_event: what it waits for
    wait_key      text,
    comp_task_id  bigint,           -- its compensation task, once started
    started_at    timestamptz,
    finished_at   timestamptz,
    -- wait_event: an event of its topic may have been published by a
    -- transaction still open when it began waiting: the tick looks again
    wait_recheck  boolean NOT NULL DEFAULT false,
    PRIMARY KEY (run_id, step)
);
CREATE INDEX _run_steps_wait_idx ON baton._run_steps (wait_topic, wait_key) WHERE state = 'waiting';
CREATE INDEX _run_steps_wake_idx ON baton._run_steps (wake_at) WHERE state = 'waiting';
CREATE INDEX _run_steps_recheck_idx ON baton._run_steps (run_id) WHERE wait_recheck AND state = 'waiting';

-- Outputs of finished map elements, so fan-in never depends on the task table
-- still holding finished tasks.
CREATE TABLE baton._run_map_outputs (
    run_id  bigint NOT NULL,
    step    text NOT NULL,
    idx     integer NOT NULL,
    output  jsonb,
    PRIMARY KEY (run_id, step, idx),
    FOREIGN KEY (run_id, step) REFERENCES baton._run_steps (run_id, step) ON DELETE CASCADE
);

-- Fan-in counters of map steps, one per bucket of 100 elements: a completion
-- decrements its bucket, an emptied bucket the step's total.  Splitting the
-- counter keeps the row version chains short when a worker completes many
-- elements in one transaction (every update of a row adds a version).
CREATE TABLE baton._run_map_counts (
    run_id   bigint NOT NULL,
    step     text NOT NULL,
    bucket   integer NOT NULL,
    pending  integer NOT NULL,
    PRIMARY KEY (run_id, step, bucket),
    FOREIGN KEY (run_id, step) REFERENCES baton._run_steps (run_id, step) ON DELETE CASCADE
);

SELECT pg_catalog.pg_extension_config_dump('baton._runs', '');
SELECT pg_catalog.pg_extension_config_dump('baton._wf_settings', '');
SELECT pg_catalog.pg_extension_config_dump('baton._run_map_counts', '');
SELECT pg_catalog.pg_extension_config_dump('baton._run_steps', '');
SELECT pg_catalog.pg_extension_config_dump('baton._run_map_outputs', '');

-- Locks runs in the locking order (see the top of this file): each run's
-- root first, then down to the run; trees by root id.  A run whose parent was
-- deleted counts as a root.
CREATE FUNCTION baton._wf_lock_runs(runs bigint[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    run    bigint;
    chain  bigint[];
    p      bigint;
    roots  bigint[] := '{}';
    depths integer[] := '{}';
    ids    bigint[] := '{}';
    x      record;
BEGIN
    FOREACH run IN ARRAY COALESCE(runs, '{}') LOOP
        -- Up the parents (unlocked reads: a run's parent never changes).
        chain := ARRAY[run];
        LOOP
            SELECT r.parent_run_id INTO p FROM baton._runs AS r WHERE r.id = chain[1];
            EXIT WHEN p IS NULL OR NOT EXISTS (SELECT 1 FROM baton._runs AS r WHERE r.id = p);
            chain := p || chain;
        END LOOP;
        IF pg_catalog.cardinality(runs) = 1 THEN
            FOREACH run IN ARRAY chain LOOP
                PERFORM 1 FROM baton._runs AS r WHERE r.id = run FOR UPDATE;
            END LOOP;
            RETURN;
        END IF;
        FOR i IN 1 .. pg_catalog.cardinality(chain) LOOP
            roots := roots || chain[1];
            depths := depths || i;
            ids := ids || chain[i];
        END LOOP;
    END LOOP;
    FOR x IN SELECT DISTINCT u.root, u.depth, u.id
               FROM ROWS FROM (pg_catalog.unnest(roots), pg_catalog.unnest(depths), pg_catalog.unnest(ids))
                    AS u(root, depth, id)
              ORDER BY u.root, u.depth, u.id
    LOOP
        PERFORM 1 FROM baton._runs AS r WHERE r.id = x.id FOR UPDATE;
    END LOOP;
END
$$;
COMMENT ON FUNCTION baton._wf_lock_runs(bigint[]) IS
'Locks the given runs and their ancestors in the one locking order of the workflow engine (root first, then down; trees by root id).';

-- Like _wf_lock_runs for one run, without waiting: false (some locks maybe
-- taken) when another transaction holds one of them.  For the paths that
-- may not wait (tick, event delivery to other runs).
CREATE FUNCTION baton._wf_try_lock_run(run bigint) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    chain bigint[] := ARRAY[run];
    p     bigint;
    x     bigint;
BEGIN
    LOOP
        SELECT r.parent_run_id INTO p FROM baton._runs AS r WHERE r.id = chain[1];
        EXIT WHEN p IS NULL OR NOT EXISTS (SELECT 1 FROM baton._runs AS r WHERE r.id = p);
        chain := p || chain;
    END LOOP;
    FOREACH x IN ARRAY chain LOOP
        PERFORM 1 FROM baton._runs AS r WHERE r.id = x FOR UPDATE SKIP LOCKED;
        IF NOT FOUND THEN
            RETURN false;
        END IF;
    END LOOP;
    RETURN true;
END
$$;
COMMENT ON FUNCTION baton._wf_try_lock_run(bigint) IS
'Locks a run and its ancestors root first without waiting; false when one is locked by another transaction (or the run is gone).';

-- The advisory lock (two int4 keys) that orders a wait_event step starting
-- to wait against publishers of its topic: publishers hold it shared until
-- they commit; a step starting to wait tries it exclusively.  Topics share
-- 1024 keys, so a transaction publishing many topics holds a bounded number.
CREATE FUNCTION baton._wf_wait_lock_key(topic text) RETURNS integer
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.hashtext(topic) & 1023
$$;
COMMENT ON FUNCTION baton._wf_wait_lock_key(text) IS
'Second key of the wait_event advisory lock of a topic (the first is hashtext(''baton.wait_event'')).';

-- Renders a template: every string starting with "$." becomes the value of that
-- JSONPath over ctx (JSON null when it matches nothing); all else is kept.
CREATE FUNCTION baton._wf_render(tmpl jsonb, ctx jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t text := pg_catalog.jsonb_typeof(tmpl);
BEGIN
    IF t = 'string' THEN
        IF pg_catalog.left(tmpl #>> '{}', 2) = '$.' THEN
            RETURN COALESCE(pg_catalog.jsonb_path_query_first(ctx, (tmpl #>> '{}')::jsonpath, '{}', true),
                            'null'::jsonb);
        END IF;
    ELSIF t = 'object' THEN
        RETURN COALESCE((SELECT pg_catalog.jsonb_object_agg(e.k, baton._wf_render(e.v, ctx))
                           FROM pg_catalog.jsonb_each(tmpl) AS e(k, v)), '{}'::jsonb);
    ELSIF t = 'array' THEN
        RETURN COALESCE((SELECT pg_catalog.jsonb_agg(baton._wf_render(e.v, ctx) ORDER BY e.n)
                           FROM pg_catalog.jsonb_array_elements(tmpl) WITH ORDINALITY AS e(v, n)), '[]'::jsonb);
    END IF;
    RETURN tmpl;
END
$$;

-- The places of a map step's input template that depend on the element:
-- strings "$...." that mention $.item or $.index, with their location (an
-- array of keys / indexes, for jsonb_set) and whether they read only the
-- element ("small": evaluated over {"item", "index"} alone).
CREATE FUNCTION baton._wf_item_holes(tmpl jsonb, at text[] DEFAULT '{}')
RETURNS TABLE (loc text[], expr text, small boolean)
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t text := pg_catalog.jsonb_typeof(tmpl);
    s text;
BEGIN
    IF t = 'string' THEN
        s := tmpl #>> '{}';
        IF pg_catalog.left(s, 2) = '$.' AND s ~ '\$\.(item|index)\M' THEN
            RETURN QUERY SELECT at, s, s !~ '\$\.(input|steps)\M';
        END IF;
    ELSIF t = 'object' THEN
        RETURN QUERY SELECT h.* FROM pg_catalog.jsonb_each(tmpl) AS e(k, v),
                                     baton._wf_item_holes(e.v, at || e.k) AS h;
    ELSIF t = 'array' THEN
        RETURN QUERY SELECT h.* FROM pg_catalog.jsonb_array_elements(tmpl) WITH ORDINALITY AS e(v, n),
                                     baton._wf_item_holes(e.v, at || (e.n - 1)::text) AS h;
    END IF;
END
$$;

-- One map element's input: the template rendered once for the whole step
-- (partial), with the element's holes filled in.  A hole that reads only the
-- element is evaluated over {"item", "index"}, so the cost per element does
-- not grow with the run's input; one that also reads $.input or $.steps
-- (rare) over the whole context.
CREATE FUNCTION baton._wf_render_item(partial jsonb, holes jsonb, item jsonb, idx integer, ctx jsonb)
RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    h     jsonb;
    doc   jsonb := pg_catalog.jsonb_build_object('item', item, 'index', idx);
    v     jsonb;
    loc   text[];
    res   jsonb := partial;
BEGIN
    FOR h IN SELECT x FROM pg_catalog.jsonb_array_elements(holes) AS x LOOP
        v := COALESCE(pg_catalog.jsonb_path_query_first(
                          CASE WHEN (h ->> 'small')::boolean THEN doc ELSE ctx || doc END,
                          (h ->> 'expr')::jsonpath, '{}', true),
                      'null'::jsonb);
        loc := ARRAY(SELECT pg_catalog.jsonb_array_elements_text(h -> 'loc'));
        res := CASE WHEN pg_catalog.cardinality(loc) = 0 THEN v ELSE pg_catalog.jsonb_set(res, loc, v) END;
    END LOOP;
    RETURN res;
END
$$;

-- A rendered key template as text (strings as is, other JSON as its text).
CREATE FUNCTION baton._wf_key(tmpl jsonb, ctx jsonb) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE pg_catalog.jsonb_typeof(v) WHEN 'null' THEN NULL WHEN 'string' THEN v #>> '{}' ELSE v::text END
      FROM (SELECT baton._wf_render(tmpl, ctx) AS v) AS x
$$;

-- The document templates are evaluated over: {"input": ..., "steps": {name: {"output": ...}}}.
CREATE FUNCTION baton._wf_ctx(run baton._runs) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.jsonb_build_object(
               'input', run.input,
               'steps', COALESCE(pg_catalog.jsonb_object_agg(s.step, pg_catalog.jsonb_build_object('output', s.output)),
                                 '{}'::jsonb))
      FROM baton._run_steps AS s WHERE s.run_id = run.id
$$;

-- The payload of the run-end NOTIFY: {run, state, workflow} and, so that a
-- client needs no second query, the run's output and error when they fit in
-- a notification (else "output_too_big": true).  Any role may LISTEN, so a
-- workflow restricted by grants (docs/security.md) never sends them.
CREATE FUNCTION baton._wf_announcement(run baton._runs) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    head jsonb := pg_catalog.jsonb_build_object('run', run.id, 'state', run.state, 'workflow', run.workflow);
    full_msg text;
BEGIN
    IF baton._restricted('workflow', run.workflow) THEN
        RETURN head::text;
    END IF;
    full_msg := (head || pg_catalog.jsonb_build_object('output', run.output, 'error', run.error))::text;
    -- NOTIFY payloads must stay under 8000 bytes.
    IF pg_catalog.octet_length(full_msg) <= 7900 THEN
        RETURN full_msg;
    END IF;
    RETURN (head || pg_catalog.jsonb_build_object('output_too_big', true,
                                                  'error', pg_catalog.left(run.error, 2000)))::text;
END
$$;
COMMENT ON FUNCTION baton._wf_announcement(baton._runs) IS
'The baton_runs notification of an ended run: run, state, workflow, and output and error when they fit (else output_too_big) and the workflow is not restricted by grants.';

-- Sends the run-end NOTIFY and calls the hooks that care about ended runs.
CREATE FUNCTION baton._wf_announce(run baton._runs) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pg_catalog.pg_notify('baton_runs', baton._wf_announcement(run));
    PERFORM baton._ev_on_run_end(run.id);
    IF run.parent_run_id IS NOT NULL THEN
        PERFORM baton._wf_child_ended(run);
    END IF;
END
$$;

-- Starts the next compensation of an ended run (latest step in topological
-- order first), or marks the saga done when none is left.
CREATE FUNCTION baton._wf_compensate_next(run_id bigint) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r     baton._runs;
    st    text;
    comp  jsonb;
    q     baton._queues;
    tid   bigint;
BEGIN
    SELECT * INTO r FROM baton._runs AS x WHERE x.id = _wf_compensate_next.run_id;
    SELECT s.step, d.spec -> 'compensate' INTO st, comp
      FROM baton._run_steps AS s
      JOIN baton._wf_steps AS d ON d.workflow = r.workflow AND d.version = r.version AND d.step = s.step
     WHERE s.run_id = r.id AND s.state = 'succeeded' AND d.spec ? 'compensate'
     ORDER BY s.ord DESC
     LIMIT 1;
    IF st IS NULL THEN
        UPDATE baton._runs AS x SET compensation = CASE WHEN x.compensation IS NULL THEN NULL ELSE 'done' END
         WHERE x.id = r.id;
        RETURN;
    END IF;
    UPDATE baton._runs AS x SET compensation = 'running' WHERE x.id = r.id;
    SELECT * INTO q FROM baton._queues AS x WHERE x.name = comp ->> 'queue';
    IF NOT FOUND THEN
        UPDATE baton._run_steps AS s
           SET state = 'failed', error = pg_catalog.format('compensation failed: queue "%s" does not exist', comp ->> 'queue')
         WHERE s.run_id = r.id AND s.step = st;
        PERFORM baton._wf_compensate_next(r.id);
        RETURN;
    END IF;
    INSERT INTO baton._tasks (queue, max_attempts, payload, run_id, step, correlation_id)
    VALUES (q.name, q.max_attempts,
            CASE WHEN comp ? 'input' THEN baton._wf_render(comp -> 'input', baton._wf_ctx(r)) ELSE r.input END,
            r.id, st, r.correlation_id)
    RETURNING id INTO tid;
    UPDATE baton._run_steps AS s SET state = 'compensating', comp_task_id = tid
     WHERE s.run_id = r.id AND s.step = st;
    PERFORM baton._wake(q.name);
END
$$;

-- Ends a running run (caller holds its lock): on failure or cancellation stops
-- its steps, tasks and child runs and starts the saga.
CREATE FUNCTION baton._wf_end_run(run_id bigint, new_state text, err text, out_value jsonb) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r       baton._runs;
    child   bigint;
    running bigint[];
BEGIN
    UPDATE baton._runs AS x
       SET state = new_state, error = err, output = out_value, finished_at = pg_catalog.now()
     WHERE x.id = _wf_end_run.run_id AND x.state = 'running'
    RETURNING x.* INTO r;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF new_state <> 'succeeded' THEN
        FOR child IN SELECT s.child_run_id FROM baton._run_steps AS s
                      WHERE s.run_id = r.id AND s.state = 'running' AND s.child_run_id IS NOT NULL
        LOOP
            PERFORM baton._wf_cancel(child, pg_catalog.format('parent run %s ended %s', r.id, new_state));
        END LOOP;
        UPDATE baton._run_steps AS s SET state = 'cancelled', finished_at = pg_catalog.now()
         WHERE s.run_id = r.id AND s.state IN ('pending', 'waiting', 'running');
        -- Waits for the locks on its live tasks (a claim being committed, a
        -- heartbeat): nobody holding one of them waits for this run (the
        -- locking order), and a task claimed meanwhile is cancelled too.
        WITH live AS (
            SELECT x.id, x.state FROM baton._tasks AS x
             WHERE x.run_id = r.id AND x.state IN ('scheduled', 'pending', 'running')
             ORDER BY x.id
               FOR UPDATE),
        gone AS (
            UPDATE baton._tasks AS t
               SET state = 'cancelled', finished_at = pg_catalog.now(), lease_expires_at = NULL,
                   error = pg_catalog.format('run %s ended %s', r.id, new_state)
              FROM live WHERE t.id = live.id
            RETURNING t.id, live.state AS was)
        SELECT pg_catalog.array_agg(gone.id ORDER BY gone.id) FILTER (WHERE gone.was = 'running')
          INTO running FROM gone;
        IF running IS NOT NULL THEN
            PERFORM baton._cancelled(running);
        END IF;
        PERFORM baton._wf_compensate_next(r.id);
    END IF;
    PERFORM baton._wf_announce(r);
END
$$;

-- Locks a run and ends it as cancelled when it is still running.
CREATE FUNCTION baton._wf_cancel(run_id bigint, reason text) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    st text;
BEGIN
    SELECT x.state INTO st FROM baton._runs AS x WHERE x.id = _wf_cancel.run_id FOR UPDATE;
    IF st IS DISTINCT FROM 'running' THEN
        RETURN false;
    END IF;
    PERFORM baton._wf_end_run(_wf_cancel.run_id, 'cancelled', reason, NULL);
    RETURN true;
END
$$;

-- A step failed (caller holds the run lock): the run fails with it.
CREATE FUNCTION baton._wf_step_failed(run_id bigint, step text, err text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM baton._runs AS x WHERE x.id = _wf_step_failed.run_id AND x.state = 'running') THEN
        RETURN;
    END IF;
    UPDATE baton._run_steps AS s SET state = 'failed', error = err, finished_at = pg_catalog.now()
     WHERE s.run_id = _wf_step_failed.run_id AND s.step = _wf_step_failed.step;
    PERFORM baton._wf_end_run(_wf_step_failed.run_id, 'failed',
                              pg_catalog.format('step "%s" failed: %s', _wf_step_failed.step, err), NULL);
END
$$;

-- A step succeeded or was skipped (caller holds the run lock): records its
-- output, starts the dependents it was the last dependency of, and ends the
-- run when no step is left.
CREATE FUNCTION baton._wf_step_done(run_id bigint, step text, out_value jsonb, new_state text) RETURNS text[]
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r      baton._runs;
    deps   text[];
    ready  text[];
    tmpl   jsonb;
BEGIN
    -- Something this step's own activation set off may have ended the run.
    IF NOT EXISTS (SELECT 1 FROM baton._runs AS x WHERE x.id = _wf_step_done.run_id AND x.state = 'running') THEN
        RETURN '{}';
    END IF;
    UPDATE baton._run_steps AS s
       SET state = new_state, output = out_value, finished_at = pg_catalog.now(),
           started_at = COALESCE(s.started_at, pg_catalog.now())
     WHERE s.run_id = _wf_step_done.run_id AND s.step = _wf_step_done.step;
    UPDATE baton._runs AS x SET steps_left = x.steps_left - 1
     WHERE x.id = _wf_step_done.run_id
    RETURNING x.* INTO r;
    IF r.steps_left = 0 THEN
        SELECT w.definition -> 'output' INTO tmpl FROM baton._workflows AS w
         WHERE w.name = r.workflow AND w.version = r.version;
        PERFORM baton._wf_end_run(r.id, 'succeeded', NULL,
            CASE WHEN tmpl IS NOT NULL THEN baton._wf_render(tmpl, baton._wf_ctx(r))
                 ELSE (SELECT pg_catalog.jsonb_object_agg(s.step, s.output)
                         FROM baton._run_steps AS s WHERE s.run_id = r.id) END);
        RETURN '{}';
    END IF;
    SELECT d.dependents INTO deps FROM baton._wf_steps AS d
     WHERE d.workflow = r.workflow AND d.version = r.version AND d.step = _wf_step_done.step;
    IF pg_catalog.cardinality(deps) = 0 THEN
        RETURN '{}';
    END IF;
    WITH dec AS (
        UPDATE baton._run_steps AS s SET deps_left = s.deps_left - 1
         WHERE s.run_id = r.id AND s.step = ANY (deps)
        RETURNING s.step, s.deps_left, s.ord)
    SELECT COALESCE(pg_catalog.array_agg(dec.step ORDER BY dec.ord), '{}') INTO ready FROM dec WHERE dec.deps_left = 0;
    RETURN ready;
END
$$;

-- The event a wait_event step of this run takes: the first of its topic (and
-- key) published since the run started, even before the step began waiting.
CREATE FUNCTION baton._wf_wait_match(run baton._runs, topic text, wkey text) RETURNS baton._events
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT e.* FROM baton._events AS e
     WHERE e.topic = _wf_wait_match.topic AND (wkey IS NULL OR e.key = wkey) AND e.published_at >= run.created_at
     ORDER BY e.id LIMIT 1
$$;

-- Each _wf_activate_<kind> starts one step of its kind, already marked
-- running (or waiting), with the caller holding the run lock; ctx is the
-- template document (NULL when the step has no template).  Each returns the
-- steps made ready when the step ended at once.

-- task: one task; its result will be the step output.
CREATE FUNCTION baton._wf_activate_task(r baton._runs, d baton._wf_steps, q baton._queues, ctx jsonb) RETURNS text[]
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    tid bigint;
BEGIN
    INSERT INTO baton._tasks (queue, priority, max_attempts, payload, timeout, run_id, step, correlation_id)
    VALUES (q.name, COALESCE((d.spec ->> 'priority')::integer, 0),
            COALESCE((d.spec ->> 'max_attempts')::integer, q.max_attempts),
            CASE WHEN d.spec ? 'input' THEN baton._wf_render(d.spec -> 'input', ctx) ELSE r.input END,
            (d.spec ->> 'timeout')::interval, r.id, d.step, r.correlation_id)
    RETURNING id INTO tid;
    UPDATE baton._run_steps AS s SET task_id = tid WHERE s.run_id = r.id AND s.step = d.step;
    PERFORM baton._wake(q.name);
    RETURN '{}';
END
$$;

-- task with map: one task per array element, in one insert; fan-in counters.
CREATE FUNCTION baton._wf_activate_map(r baton._runs, d baton._wf_steps, q baton._queues, ctx jsonb) RETURNS text[]
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    spec    jsonb := d.spec;
    arr     jsonb;
    n       integer;
    partial jsonb;
    holes   jsonb;
BEGIN
    arr := pg_catalog.jsonb_path_query_first(ctx, (spec ->> 'map')::jsonpath, '{}', true);
    IF pg_catalog.jsonb_typeof(arr) IS DISTINCT FROM 'array' THEN
        PERFORM baton._wf_step_failed(r.id, d.step,
            pg_catalog.format('map: %s is not an array (got %s)', spec ->> 'map',
                              COALESCE(pg_catalog.jsonb_typeof(arr), 'nothing')));
        RETURN '{}';
    END IF;
    n := pg_catalog.jsonb_array_length(arr);
    IF n = 0 THEN
        UPDATE baton._run_steps AS s SET map_total = 0, map_done = 0 WHERE s.run_id = r.id AND s.step = d.step;
        RETURN baton._wf_step_done(r.id, d.step, '[]', 'succeeded');
    END IF;
    UPDATE baton._run_steps AS s SET map_total = n, map_done = 0 WHERE s.run_id = r.id AND s.step = d.step;
    INSERT INTO baton._run_map_counts (run_id, step, bucket, pending)
    SELECT r.id, d.step, b, LEAST(100, n - b * 100) FROM pg_catalog.generate_series(0, (n - 1) / 100) AS b;
    -- The input template is rendered once for the step; per element only
    -- its $.item / $.index places are filled in (O(elements), however
    -- large the run's input: no copy of the context per element).
    IF spec ? 'input' THEN
        partial := baton._wf_render(spec -> 'input', ctx || '{"item": null, "index": null}'::jsonb);
        holes := COALESCE((SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                                      'loc', pg_catalog.to_jsonb(h.loc), 'expr', h.expr, 'small', h.small))
                             FROM baton._wf_item_holes(spec -> 'input') AS h), '[]');
    END IF;
    -- One set-based insert for the whole fan-out.
    INSERT INTO baton._tasks (queue, priority, max_attempts, payload, timeout, run_id, step, map_index,
                              correlation_id)
    SELECT q.name, COALESCE((spec ->> 'priority')::integer, 0),
           COALESCE((spec ->> 'max_attempts')::integer, q.max_attempts),
           CASE WHEN NOT spec ? 'input' THEN e.v
                WHEN holes = '[]' THEN partial
                ELSE baton._wf_render_item(partial, holes, e.v, (e.i - 1)::integer, ctx) END,
           (spec ->> 'timeout')::interval, r.id, d.step, (e.i - 1)::integer, r.correlation_id
      FROM pg_catalog.jsonb_array_elements(arr) WITH ORDINALITY AS e(v, i)
     ORDER BY e.i;
    PERFORM baton._wake(q.name);
    RETURN '{}';
END
$$;

-- publish: the event is published now and the step is done.
CREATE FUNCTION baton._wf_activate_publish(r baton._runs, d baton._wf_steps, ctx jsonb) RETURNS text[]
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    eid bigint;
BEGIN
    eid := baton._publish(d.spec ->> 'topic',
                          CASE WHEN d.spec ? 'payload' THEN baton._wf_render(d.spec -> 'payload', ctx) ELSE r.input END,
                          CASE WHEN d.spec ? 'key' THEN baton._wf_key(d.spec -> 'key', ctx) END,
                          r.correlation_id, NULL, r.id, d.step);
    RETURN baton._wf_step_done(r.id, d.step, pg_catalog.jsonb_build_object('event_id', eid), 'succeeded');
END
$$;

-- wait_event: done at once when a matching event exists, else waiting.
CREATE FUNCTION baton._wf_activate_wait_event(r baton._runs, d baton._wf_steps, ctx jsonb) RETURNS text[]
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    wkey  text := CASE WHEN d.spec ? 'key' THEN baton._wf_key(d.spec -> 'key', ctx) END;
    alone boolean;
    ev    baton._events;
BEGIN
    -- Exclusive when no publisher of the topic is in flight: publishers
    -- then wait for this transaction and see the step waiting.  Else one
    -- may commit an event this query cannot see yet: the tick looks again.
    alone := pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtext('baton.wait_event'),
                                                  baton._wf_wait_lock_key(d.spec ->> 'topic'));
    ev := baton._wf_wait_match(r, d.spec ->> 'topic', wkey);
    IF ev.id IS NOT NULL THEN
        RETURN baton._wf_step_done(r.id, d.step, ev.payload, 'succeeded');
    END IF;
    UPDATE baton._run_steps AS s
       SET wait_topic = d.spec ->> 'topic', wait_key = wkey,
           wake_at = pg_catalog.now() + (d.spec ->> 'timeout')::interval, wait_recheck = NOT alone
     WHERE s.run_id = r.id AND s.step = d.step;
    RETURN '{}';
END
$$;

-- sleep: waiting until its time (done at once when it has passed).
CREATE FUNCTION baton._wf_activate_sleep(r baton._runs, d baton._wf_steps, ctx jsonb) RETURNS text[]
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    until timestamptz;
BEGIN
    IF d.spec ? 'duration' THEN
        until := pg_catalog.now() + (d.spec ->> 'duration')::interval;
    ELSE
        BEGIN
            until := (baton._wf_render(d.spec -> 'until', ctx) #>> '{}')::timestamptz;
        EXCEPTION WHEN OTHERS THEN
            until := NULL;
        END;
        IF until IS NULL THEN
            PERFORM baton._wf_step_failed(r.id, d.step,
                pg_catalog.format('until: %s is not a timestamp (got %s)', d.spec ->> 'until',
                                  baton._wf_render(d.spec -> 'until', ctx)));
            RETURN '{}';
        END IF;
    END IF;
    IF until <= pg_catalog.now() THEN
        RETURN baton._wf_step_done(r.id, d.step, pg_catalog.jsonb_build_object('until', until), 'succeeded');
    END IF;
    UPDATE baton._run_steps AS s SET wake_at = until WHERE s.run_id = r.id AND s.step = d.step;
    RETURN '{}';
END
$$;

-- workflow: starts the child run, which reports back when it ends.
CREATE FUNCTION baton._wf_activate_workflow(r baton._runs, d baton._wf_steps, ctx jsonb) RETURNS text[]
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT baton._wf_exists(d.spec ->> 'workflow') THEN
        PERFORM baton._wf_step_failed(r.id, d.step,
            pg_catalog.format('workflow "%s" does not exist', d.spec ->> 'workflow'));
        RETURN '{}';
    END IF;
    -- The child may end at once (all its steps instant); it then reports back here.
    PERFORM baton._wf_start(d.spec ->> 'workflow',
                            CASE WHEN d.spec ? 'input' THEN baton._wf_render(d.spec -> 'input', ctx) ELSE r.input END,
                            NULL, r.correlation_id, NULL, NULL, r.id, d.step);
    RETURN '{}';
END
$$;

-- Starts a step whose dependencies are all done (caller holds the run lock):
-- evaluates its "when", marks it running or waiting, and hands it to the
-- function of its kind.
CREATE FUNCTION baton._wf_activate(run_id bigint, step text) RETURNS text[]
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r   baton._runs;
    d   baton._wf_steps;
    ctx jsonb;
    q   baton._queues;
BEGIN
    SELECT * INTO r FROM baton._runs AS x WHERE x.id = _wf_activate.run_id;
    IF r.state <> 'running'
       OR NOT EXISTS (SELECT 1 FROM baton._run_steps AS s
                       WHERE s.run_id = r.id AND s.step = _wf_activate.step AND s.state = 'pending') THEN
        RETURN '{}';
    END IF;
    SELECT * INTO d FROM baton._wf_steps AS x
     WHERE x.workflow = r.workflow AND x.version = r.version AND x.step = _wf_activate.step;
    IF d.spec ?| ARRAY['when', 'input', 'map', 'payload', 'key', 'until'] THEN
        ctx := baton._wf_ctx(r);
    END IF;
    IF d.spec ? 'when'
       AND NOT COALESCE(pg_catalog.jsonb_path_match(ctx, (d.spec ->> 'when')::jsonpath, '{}', true), false) THEN
        RETURN baton._wf_step_done(r.id, d.step, NULL, 'skipped');
    END IF;

    UPDATE baton._run_steps AS s
       SET state = CASE WHEN d.kind IN ('sleep', 'wait_event') THEN 'waiting' ELSE 'running' END,
           started_at = pg_catalog.now()
     WHERE s.run_id = r.id AND s.step = d.step;

    CASE d.kind
    WHEN 'task' THEN
        SELECT * INTO q FROM baton._queues AS x WHERE x.name = d.spec ->> 'queue';
        IF NOT FOUND THEN
            PERFORM baton._wf_step_failed(r.id, d.step, pg_catalog.format('queue "%s" does not exist', d.spec ->> 'queue'));
            RETURN '{}';
        END IF;
        IF d.spec ? 'map' THEN
            RETURN baton._wf_activate_map(r, d, q, ctx);
        END IF;
        RETURN baton._wf_activate_task(r, d, q, ctx);
    WHEN 'publish' THEN
        RETURN baton._wf_activate_publish(r, d, ctx);
    WHEN 'wait_event' THEN
        RETURN baton._wf_activate_wait_event(r, d, ctx);
    WHEN 'sleep' THEN
        RETURN baton._wf_activate_sleep(r, d, ctx);
    WHEN 'workflow' THEN
        RETURN baton._wf_activate_workflow(r, d, ctx);
    END CASE;
END
$$;

-- Starts the given ready steps of a run and, breadth first, whatever they make ready.
CREATE FUNCTION baton._wf_advance(run_id bigint, ready text[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    worklist text[] := ready;
    i        integer := 1;
BEGIN
    WHILE i <= COALESCE(pg_catalog.cardinality(worklist), 0) LOOP
        worklist := worklist || baton._wf_activate(_wf_advance.run_id, worklist[i]);
        i := i + 1;
    END LOOP;
END
$$;

-- A child run ended: its parent's workflow step ends with it.
CREATE FUNCTION baton._wf_child_ended(child baton._runs) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    pst text;
BEGIN
    SELECT x.state INTO pst FROM baton._runs AS x WHERE x.id = child.parent_run_id FOR UPDATE;
    IF pst IS DISTINCT FROM 'running'
       OR NOT EXISTS (SELECT 1 FROM baton._run_steps AS s
                       WHERE s.run_id = child.parent_run_id AND s.step = child.parent_step
                         AND s.state = 'running' AND s.child_run_id = child.id) THEN
        RETURN;
    END IF;
    IF child.state = 'succeeded' THEN
        PERFORM baton._wf_advance(child.parent_run_id,
            baton._wf_step_done(child.parent_run_id, child.parent_step, child.output, 'succeeded'));
    ELSE
        PERFORM baton._wf_step_failed(child.parent_run_id, child.parent_step,
            pg_catalog.format('child run %s %s: %s', child.id, child.state, COALESCE(child.error, '')));
    END IF;
END
$$;

-- Creates a run and starts its steps that have no dependencies.
CREATE FUNCTION baton._wf_start(workflow text, input jsonb, idempotency_key text, correlation_id uuid,
                                cause_event_id bigint, subscription_id bigint,
                                parent_run_id bigint, parent_step text)
RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    w      baton._workflows;
    new_run bigint;
BEGIN
    SELECT * INTO w FROM baton._workflows AS x WHERE x.name = _wf_start.workflow ORDER BY x.version DESC LIMIT 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'baton.start: workflow "%" does not exist', _wf_start.workflow
            USING ERRCODE = 'undefined_object', COLUMN = 'workflow',
                  HINT = 'Define it with baton.define_workflow().';
    END IF;
    LOOP
        INSERT INTO baton._runs (workflow, version, input, idempotency_key, correlation_id, parent_run_id,
                                 parent_step, cause_event_id, subscription_id, steps_left, deadline)
        VALUES (w.name, w.version, _wf_start.input, _wf_start.idempotency_key,
                COALESCE(_wf_start.correlation_id, pg_catalog.gen_random_uuid()), _wf_start.parent_run_id,
                _wf_start.parent_step, _wf_start.cause_event_id, _wf_start.subscription_id, w.step_count,
                pg_catalog.now() + (w.definition ->> 'timeout')::interval)
        ON CONFLICT ON CONSTRAINT _runs_workflow_idempotency_key_key DO NOTHING
        RETURNING id INTO new_run;
        EXIT WHEN new_run IS NOT NULL;
        SELECT x.id INTO new_run FROM baton._runs AS x
         WHERE x.workflow = w.name AND x.idempotency_key = _wf_start.idempotency_key;
        IF new_run IS NOT NULL THEN
            RETURN new_run;    -- same key: the same run
        END IF;
    END LOOP;
    PERFORM 1 FROM baton._runs AS x WHERE x.id = new_run FOR UPDATE;
    IF _wf_start.parent_run_id IS NOT NULL THEN
        UPDATE baton._run_steps AS s SET child_run_id = new_run
         WHERE s.run_id = _wf_start.parent_run_id AND s.step = _wf_start.parent_step;
    END IF;
    INSERT INTO baton._run_steps (run_id, step, kind, ord, deps_left)
    SELECT new_run, d.step, d.kind, d.ord, pg_catalog.cardinality(d.after)
      FROM baton._wf_steps AS d WHERE d.workflow = w.name AND d.version = w.version;
    PERFORM baton._wf_advance(new_run,
        ARRAY(SELECT d.step FROM baton._wf_steps AS d
               WHERE d.workflow = w.name AND d.version = w.version AND pg_catalog.cardinality(d.after) = 0
               ORDER BY d.ord));
    RETURN new_run;
END
$$;

CREATE FUNCTION baton.start(workflow text, input jsonb DEFAULT '{}', idempotency_key text DEFAULT NULL,
                            correlation_id uuid DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM baton._grants AS g WHERE g.kind = 'workflow') THEN PERFORM baton._authorize_workflow('start', start.workflow, 'start'); END IF;
    PERFORM baton._check_user_key('start', 'idempotency_key', start.idempotency_key);
    IF start.workflow IS NULL THEN
        PERFORM baton._bad('start', 'workflow', 'must not be NULL');
    END IF;
    IF start.input IS NULL THEN
        PERFORM baton._bad('start', 'input', 'must not be NULL (use ''{}'' for no input)');
    END IF;
    IF start.idempotency_key = '' THEN
        PERFORM baton._bad('start', 'idempotency_key', 'must not be empty');
    END IF;
    PERFORM baton._check_key('start', 'idempotency_key', start.idempotency_key);
    RETURN baton._wf_start(start.workflow, start.input, start.idempotency_key, start.correlation_id,
                           NULL, NULL, NULL, NULL);
END
$$;
COMMENT ON FUNCTION baton.start(text, jsonb, text, uuid) IS
'Starts a run of the latest version of a workflow in the caller''s transaction and returns the run id. The same idempotency_key returns the same run. The run and its tasks carry correlation_id (a new one when NULL).';

CREATE FUNCTION baton.cancel_run(run bigint) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM baton._authorize_run('cancel_run', cancel_run.run, 'manage');
    IF NOT EXISTS (SELECT 1 FROM baton._runs AS x WHERE x.id = cancel_run.run) THEN
        RAISE EXCEPTION 'baton.cancel_run: run % does not exist', cancel_run.run
            USING ERRCODE = 'no_data_found', COLUMN = 'run';
    END IF;
    PERFORM baton._wf_lock_runs(ARRAY[cancel_run.run]);
    RETURN baton._wf_cancel(cancel_run.run, 'cancelled by baton.cancel_run');
END
$$;
COMMENT ON FUNCTION baton.cancel_run(bigint) IS
'Cancels a running run: pending and waiting steps are cancelled, live tasks cancelled (a task being claimed at that moment too; workers holding running ones are told through NOTIFY baton_cancel, and their completions are rejected), child runs cancelled, compensations started. Returns false when the run had already ended.';

-- Called by the task core when a task of a run ends, in the completing transaction.
CREATE FUNCTION baton._wf_on_task_end(task baton._tasks) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rst   text;
    s     baton._run_steps;
    left_n integer;
BEGIN
    SELECT x.state INTO rst FROM baton._runs AS x WHERE x.id = task.run_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT * INTO s FROM baton._run_steps AS x WHERE x.run_id = task.run_id AND x.step = task.step;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF s.comp_task_id = task.id THEN
        -- A compensation ended: record it and go on with the next one.
        UPDATE baton._run_steps AS x
           SET state = CASE WHEN task.state = 'succeeded' THEN 'compensated' ELSE 'failed' END,
               error = CASE WHEN task.state = 'succeeded' THEN x.error
                            ELSE pg_catalog.format('compensation failed: %s', COALESCE(task.error, task.state::text)) END
         WHERE x.run_id = s.run_id AND x.step = s.step;
        PERFORM baton._wf_compensate_next(s.run_id);
        RETURN;
    END IF;
    IF rst <> 'running' OR s.state <> 'running' THEN
        RETURN;    -- the run or step ended meanwhile: the result is ignored
    END IF;
    IF task.map_index IS NULL THEN
        IF s.task_id IS DISTINCT FROM task.id THEN
            RETURN;
        END IF;
        UPDATE baton._run_steps AS x SET attempts = task.attempt WHERE x.run_id = s.run_id AND x.step = s.step;
        IF task.state = 'succeeded' THEN
            PERFORM baton._wf_advance(s.run_id, baton._wf_step_done(s.run_id, s.step, task.result, 'succeeded'));
        ELSIF task.state = 'cancelled' THEN
            PERFORM baton._wf_step_failed(s.run_id, s.step, pg_catalog.format('task %s was cancelled', task.id));
        ELSE
            PERFORM baton._wf_step_failed(s.run_id, s.step,
                pg_catalog.format('task %s failed after %s attempt(s): %s', task.id, task.attempt,
                                  COALESCE(task.error, '')));
        END IF;
        RETURN;
    END IF;
    -- A map element: keep its output; the last one in fans in.
    IF task.state <> 'succeeded' THEN
        PERFORM baton._wf_step_failed(s.run_id, s.step,
            pg_catalog.format('task %s (map element %s) %s: %s', task.id, task.map_index,
                              CASE WHEN task.state = 'cancelled' THEN 'was cancelled'
                                   ELSE pg_catalog.format('failed after %s attempt(s)', task.attempt) END,
                              COALESCE(task.error, '')));
        RETURN;
    END IF;
    INSERT INTO baton._run_map_outputs (run_id, step, idx, output)
    VALUES (s.run_id, s.step, task.map_index, task.result)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    UPDATE baton._run_map_counts AS c SET pending = c.pending - 1
     WHERE c.run_id = s.run_id AND c.step = s.step AND c.bucket = task.map_index / 100
    RETURNING c.pending INTO left_n;
    IF left_n <> 0 THEN
        RETURN;
    END IF;
    UPDATE baton._run_steps AS x SET map_done = x.map_done + LEAST(100, x.map_total - task.map_index / 100 * 100)
     WHERE x.run_id = s.run_id AND x.step = s.step
    RETURNING x.map_total - x.map_done INTO left_n;
    IF left_n = 0 THEN
        PERFORM baton._wf_advance(s.run_id, baton._wf_step_done(s.run_id, s.step,
            (SELECT pg_catalog.jsonb_agg(m.output ORDER BY m.idx) FROM baton._run_map_outputs AS m
              WHERE m.run_id = s.run_id AND m.step = s.step),
            'succeeded'));
    END IF;
END
$$;

-- Called for every published event, in the publishing transaction: completes
-- the steps waiting for it (the first matching event wins).
CREATE FUNCTION baton._wf_on_event(event baton._events) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    w record;
BEGIN
    -- Held until commit: a step that starts waiting meanwhile cannot take the
    -- lock exclusively and asks the tick to look again; one that took it
    -- before makes this wait until it has committed, so that the query
    -- below sees it waiting.
    PERFORM pg_catalog.pg_advisory_xact_lock_shared(pg_catalog.hashtext('baton.wait_event'),
                                                    baton._wf_wait_lock_key(event.topic));
    FOR w IN SELECT s.run_id, s.step FROM baton._run_steps AS s
              WHERE s.state = 'waiting' AND s.wait_topic = event.topic
                AND (s.wait_key IS NULL OR s.wait_key = event.key)
              ORDER BY s.run_id, s.step
    LOOP
        -- Never waits for another run (the locking order): a busy run's step
        -- is flagged, and the next tick completes it.
        IF NOT baton._wf_try_lock_run(w.run_id) THEN
            UPDATE baton._run_steps AS s SET wait_recheck = true
             WHERE s.ctid = (SELECT y.ctid FROM baton._run_steps AS y
                              WHERE y.run_id = w.run_id AND y.step = w.step AND y.state = 'waiting'
                                FOR UPDATE SKIP LOCKED);
            CONTINUE;
        END IF;
        PERFORM 1 FROM baton._runs AS x WHERE x.id = w.run_id AND x.state = 'running';
        CONTINUE WHEN NOT FOUND;
        -- Re-check under the lock: a concurrent event may have won.
        PERFORM 1 FROM baton._run_steps AS s
          WHERE s.run_id = w.run_id AND s.step = w.step AND s.state = 'waiting';
        CONTINUE WHEN NOT FOUND;
        PERFORM baton._wf_advance(w.run_id, baton._wf_step_done(w.run_id, w.step, event.payload, 'succeeded'));
    END LOOP;
END
$$;

CREATE FUNCTION baton.set_run_retention(retention interval) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF retention <= interval '0' THEN
        PERFORM baton._bad('set_run_retention', 'retention',
                           pg_catalog.format('must be positive, or NULL to keep runs forever (got %s)', retention));
    END IF;
    INSERT INTO baton._wf_settings AS x (singleton, retention) VALUES (true, set_run_retention.retention)
    ON CONFLICT (singleton) DO UPDATE SET retention = excluded.retention;
END
$$;
COMMENT ON FUNCTION baton.set_run_retention(interval) IS
'How long ended workflow runs (with their steps) are kept after they finish (default 30 days; NULL keeps them forever). baton.tick() deletes older ones in bounded batches; a child run goes after its parent.';

-- Deletes up to max_rows runs that ended longer ago than the retention, with
-- their steps (ON DELETE CASCADE); returns how many runs.
CREATE FUNCTION baton._wf_purge(max_rows integer) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    keep interval;
    n    integer;
BEGIN
    SELECT x.retention INTO keep FROM baton._wf_settings AS x;
    IF NOT FOUND THEN
        keep := interval '30 days';          -- the default, until set_run_retention
    ELSIF keep IS NULL THEN
        RETURN 0;                            -- keep runs forever
    END IF;
    -- Not while a saga still undoes a failed run; and a child run only once its
    -- parent is gone, since the parent's step refers to it.
    DELETE FROM baton._runs AS x WHERE x.id IN (
        SELECT y.id FROM baton._runs AS y
         WHERE y.state <> 'running' AND y.compensation IS DISTINCT FROM 'running'
           AND y.finished_at < pg_catalog.now() - keep
           AND NOT EXISTS (SELECT 1 FROM baton._runs AS p WHERE p.id = y.parent_run_id)
         ORDER BY y.finished_at
         LIMIT max_rows
           FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- Fails running runs whose workflow "timeout" has passed: their running steps
-- and tasks are cancelled (the workers are told), their child runs cancelled,
-- and the saga compensates, as for any failed run.  Never waits: a run that
-- is busy now is failed at the next tick.  Returns how many.
CREATE FUNCTION baton._wf_time_out_runs(max_rows integer) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    x record;
    n integer := 0;
BEGIN
    FOR x IN SELECT r.id, w.definition ->> 'timeout' AS timeout FROM baton._runs AS r
               JOIN baton._workflows AS w ON w.name = r.workflow AND w.version = r.version
              WHERE r.state = 'running' AND r.deadline IS NOT NULL AND r.deadline <= pg_catalog.now()
              ORDER BY r.deadline LIMIT max_rows
    LOOP
        CONTINUE WHEN NOT baton._wf_try_lock_run(x.id);
        PERFORM 1 FROM baton._runs AS r WHERE r.id = x.id AND r.state = 'running';
        CONTINUE WHEN NOT FOUND;
        n := n + 1;
        PERFORM baton._wf_end_run(x.id, 'failed',
            pg_catalog.format('timed out: the workflow''s "timeout" of %s has passed', x.timeout), NULL);
    END LOOP;
    RETURN n;
END
$$;

-- Looks again for the event of wait_event steps that began waiting while a
-- publisher of their topic was in flight (or that a publisher could not
-- complete because their run was busy); returns how many it completed.
-- Never waits: what it cannot lock now is left for the next tick.
CREATE FUNCTION baton._wf_recheck_waits(max_rows integer) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    w  record;
    r  baton._runs;
    ev baton._events;
    n  integer := 0;
BEGIN
    FOR w IN SELECT s.run_id, s.step, s.wait_topic, s.wait_key FROM baton._run_steps AS s
              WHERE s.wait_recheck AND s.state = 'waiting'
              ORDER BY s.run_id, s.step LIMIT max_rows
    LOOP
        CONTINUE WHEN NOT baton._wf_try_lock_run(w.run_id);
        SELECT * INTO r FROM baton._runs AS x WHERE x.id = w.run_id AND x.state = 'running';
        CONTINUE WHEN NOT FOUND;
        PERFORM 1 FROM baton._run_steps AS s
          WHERE s.run_id = w.run_id AND s.step = w.step AND s.state = 'waiting' AND s.wait_recheck;
        CONTINUE WHEN NOT FOUND;
        -- A publisher still in flight: look at the next tick.
        CONTINUE WHEN NOT pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtext('baton.wait_event'),
                                                               baton._wf_wait_lock_key(w.wait_topic));
        ev := baton._wf_wait_match(r, w.wait_topic, w.wait_key);
        IF ev.id IS NULL THEN
            UPDATE baton._run_steps AS s SET wait_recheck = false WHERE s.run_id = w.run_id AND s.step = w.step;
        ELSE
            n := n + 1;
            PERFORM baton._wf_advance(w.run_id, baton._wf_step_done(w.run_id, w.step, ev.payload, 'succeeded'));
        END IF;
    END LOOP;
    RETURN n;
END
$$;

-- Time-driven work: wakes sleep steps whose time has come and times out
-- wait_event steps, fails runs past their timeout, re-checks waits (see
-- _wf_recheck_waits), applies run retention; returns {"woken": n,
-- "timed_out": m, "runs_timed_out": t, "waits_rechecked": c, "runs_purged": k}.
CREATE FUNCTION baton._wf_tick() RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    w        record;
    spec     jsonb;
    woken    integer := 0;
    timedout integer := 0;
BEGIN
    FOR w IN SELECT s.run_id, s.step, s.kind, s.wake_at FROM baton._run_steps AS s
              WHERE s.state = 'waiting' AND s.wake_at <= pg_catalog.now()
              ORDER BY s.wake_at LIMIT 10000
    LOOP
        CONTINUE WHEN NOT baton._wf_try_lock_run(w.run_id);
        PERFORM 1 FROM baton._runs AS x WHERE x.id = w.run_id AND x.state = 'running';
        CONTINUE WHEN NOT FOUND;
        PERFORM 1 FROM baton._run_steps AS s
          WHERE s.run_id = w.run_id AND s.step = w.step AND s.state = 'waiting' AND s.wake_at <= pg_catalog.now();
        CONTINUE WHEN NOT FOUND;
        IF w.kind = 'sleep' THEN
            woken := woken + 1;
            PERFORM baton._wf_advance(w.run_id,
                baton._wf_step_done(w.run_id, w.step, pg_catalog.jsonb_build_object('until', w.wake_at), 'succeeded'));
        ELSE
            timedout := timedout + 1;
            SELECT d.spec INTO spec FROM baton._runs AS x
              JOIN baton._wf_steps AS d ON d.workflow = x.workflow AND d.version = x.version
             WHERE x.id = w.run_id AND d.step = w.step;
            IF spec ->> 'on_timeout' = 'skip' THEN
                PERFORM baton._wf_advance(w.run_id, baton._wf_step_done(w.run_id, w.step, NULL, 'skipped'));
            ELSE
                PERFORM baton._wf_step_failed(w.run_id, w.step,
                    pg_catalog.format('timed out after %s waiting for event "%s"', spec ->> 'timeout', spec ->> 'topic'));
            END IF;
        END IF;
    END LOOP;
    RETURN pg_catalog.jsonb_build_object('woken', woken, 'timed_out', timedout,
                                         'runs_timed_out', baton._wf_time_out_runs(10000),
                                         'waits_rechecked', baton._wf_recheck_waits(10000),
                                         'runs_purged', baton._wf_purge(10000));
END
$$;

-- May a dead task of a run be retried by hand?  While its run is running; and
-- a compensation that failed, even after its run ended, so that an operator
-- can finish a saga once the undoing service works again.
CREATE FUNCTION baton._wf_may_retry(task baton._tasks) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT COALESCE((SELECT x.state = 'running' FROM baton._runs AS x WHERE x.id = task.run_id), false)
        OR EXISTS (SELECT 1 FROM baton._run_steps AS s
                    WHERE s.run_id = task.run_id AND s.step = task.step AND s.comp_task_id = task.id
                      AND s.state = 'failed')
$$;

-- A task of a run went back to pending by hand: a failed compensation shows
-- as compensating again, and its run's saga as running until the task ends
-- (then _wf_on_task_end records the outcome and the saga is done again).
CREATE FUNCTION baton._wf_on_retry(task baton._tasks) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM 1 FROM baton._runs AS x WHERE x.id = task.run_id FOR UPDATE;
    UPDATE baton._run_steps AS s SET state = 'compensating', error = NULL
     WHERE s.run_id = task.run_id AND s.step = task.step AND s.comp_task_id = task.id AND s.state = 'failed';
    IF FOUND THEN
        UPDATE baton._runs AS x SET compensation = 'running' WHERE x.id = task.run_id;
    END IF;
END
$$;
