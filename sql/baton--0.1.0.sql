-- baton 0.1.0 as released: the install script built from sql/src at commit 851d7fe.
-- Frozen: never edit; every later change goes into an upgrade script (baton--0.1.0--0.2.0.sql).
\echo Use "CREATE EXTENSION baton" to load this file. \quit

-- ---- 00_schema.sql ----
-- 00_schema.sql — roles, types and the tables of the queue core.

-- Roles are cluster-wide and outlive the extension; create them only once.
DO $roles$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['baton_admin', 'baton_producer', 'baton_worker'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
END
$roles$;

GRANT USAGE ON SCHEMA baton TO baton_admin, baton_producer, baton_worker;

-- 'scheduled' is internal: a pending task whose run_at is in the future.  The
-- public views show it as 'pending'; keeping it apart keeps claim flat when
-- millions of tasks wait for their time.
CREATE TYPE baton.task_state AS ENUM
    ('scheduled', 'pending', 'running', 'succeeded', 'failed', 'cancelled');

CREATE TABLE baton._queues (
    name            text PRIMARY KEY,
    concurrency     integer CHECK (concurrency > 0),
    max_attempts    integer NOT NULL CHECK (max_attempts > 0),
    lease           interval NOT NULL CHECK (lease > interval '0'),
    backoff_base    interval NOT NULL CHECK (backoff_base >= interval '0'),
    backoff_cap     interval NOT NULL CHECK (backoff_cap >= interval '0'),
    rate_limit      integer CHECK (rate_limit > 0),
    rate_period     interval NOT NULL DEFAULT interval '1 second' CHECK (rate_period > interval '0'),
    rate_tokens     double precision NOT NULL DEFAULT 0,
    rate_updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    retention       interval NOT NULL CHECK (retention >= interval '0'),
    paused          boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now()
);

CREATE TABLE baton._tasks (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue               text NOT NULL,
    state               baton.task_state NOT NULL DEFAULT 'pending',
    priority            integer NOT NULL DEFAULT 0,
    run_at              timestamptz NOT NULL DEFAULT pg_catalog.now(),
    attempt             integer NOT NULL DEFAULT 0,
    max_attempts        integer NOT NULL,
    payload             jsonb NOT NULL DEFAULT '{}',
    result              jsonb,
    error               text,
    dedup_key           text,
    timeout             interval,
    backoff_base        interval,
    backoff_cap         interval,
    worker              text,
    lease_expires_at    timestamptz,
    claim_pid           integer,
    claim_session_start timestamptz,
    created_at          timestamptz NOT NULL DEFAULT pg_catalog.now(),
    started_at          timestamptz,
    finished_at         timestamptz,
    -- links to whatever caused the task (workflows, events); NULL for plain tasks
    run_id              bigint,
    step                text,
    map_index           integer,
    subscription_id     bigint,
    event_id            bigint,
    -- NULL when the task was enqueued without one: its correlation id is then
    -- derived from its id (baton._task_correlation), which costs no index entry
    correlation_id      uuid
);
-- Deleting finished tasks in bulk is normal; keep autovacuum close behind.
ALTER TABLE baton._tasks SET (autovacuum_vacuum_scale_factor = 0.02,
                              autovacuum_vacuum_insert_scale_factor = 0.05,
                              fillfactor = 90);

-- The claim path: due tasks of one queue in priority, then due-time order.
CREATE INDEX _tasks_claim_idx ON baton._tasks (queue, priority DESC, run_at, id)
    WHERE state = 'pending';
-- Promotion of delayed tasks when they fall due.
CREATE INDEX _tasks_scheduled_idx ON baton._tasks (run_at) WHERE state = 'scheduled';
-- Lease expiry, dead-session rescue and per-queue concurrency counts.
CREATE INDEX _tasks_running_idx ON baton._tasks (queue, lease_expires_at) WHERE state = 'running';
-- Retention: finished tasks by age.
CREATE INDEX _tasks_finished_idx ON baton._tasks (finished_at)
    WHERE state IN ('succeeded', 'failed', 'cancelled');
-- At most one live task per (queue, dedup_key).
CREATE UNIQUE INDEX _tasks_dedup_idx ON baton._tasks (queue, dedup_key)
    WHERE dedup_key IS NOT NULL AND state IN ('scheduled', 'pending', 'running');
CREATE INDEX _tasks_run_idx ON baton._tasks (run_id, step) WHERE run_id IS NOT NULL;
-- Only shared correlation ids (workflow runs, events, the caller's own) are
-- indexed: a random default in every row cost a fifth of the drain throughput
-- (a non-HOT update inserts into every index; bench/README.md).
CREATE INDEX _tasks_correlation_idx ON baton._tasks (correlation_id) WHERE correlation_id IS NOT NULL;

-- Per-database constants: one row, made by the first create_queue rather than
-- by this script, so that a restored dump's row does not collide with it.
CREATE TABLE baton._instance (
    singleton       boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    -- The first half of every derived task correlation id: random per database,
    -- with the UUID version 8 ("custom") nibble.
    task_corr_prefix text NOT NULL CHECK (task_corr_prefix ~ '^[0-9a-f]{12}8[0-9a-f]{3}$')
);

-- Live worker daemons, as they registered themselves.
CREATE TABLE baton._workers (
    id          text PRIMARY KEY,
    host        text,
    pid         integer,
    queues      text[] NOT NULL DEFAULT '{}',
    version     text,
    backend_pid integer,
    started_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    last_seen   timestamptz NOT NULL DEFAULT pg_catalog.now()
);

SELECT pg_catalog.pg_extension_config_dump('baton._queues', '');
SELECT pg_catalog.pg_extension_config_dump('baton._tasks', '');
SELECT pg_catalog.pg_extension_config_dump('baton._instance', '');

-- ---- 10_queues.sql ----
-- 10_queues.sql — creating, changing, pausing and dropping queues.

-- Raises invalid_parameter_value naming the function and the field.
CREATE FUNCTION baton._bad(fn text, field text, msg text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'baton.%: % %', fn, field, msg
        USING ERRCODE = 'invalid_parameter_value', COLUMN = field;
END
$$;

-- Checks an interval option: positive, or (when zero_ok) not negative.  NULL passes.
CREATE FUNCTION baton._check_interval(fn text, field text, v interval, zero_ok boolean) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF zero_ok AND v < interval '0' THEN
        PERFORM baton._bad(fn, field, pg_catalog.format('must not be negative (got %s)', v));
    ELSIF NOT zero_ok AND v <= interval '0' THEN
        PERFORM baton._bad(fn, field, pg_catalog.format('must be positive (got %s)', v));
    END IF;
END
$$;

-- Checks a queue name: 1-128 characters of letters, digits, '_', '-', '.', ':'.
CREATE FUNCTION baton._check_queue_name(fn text, queue text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF queue IS NULL OR queue !~ '^[A-Za-z0-9_.:-]{1,128}$' THEN
        PERFORM baton._bad(fn, 'queue',
            pg_catalog.format('must be 1-128 characters of letters, digits, "_", "-", ".", ":" (got %s)',
                              COALESCE(pg_catalog.quote_literal(queue), 'NULL')));
    END IF;
END
$$;

-- Returns the queue row, or raises undefined_object naming the queue.
CREATE FUNCTION baton._queue(fn text, queue text) RETURNS baton._queues
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    q baton._queues;
BEGIN
    SELECT * INTO q FROM baton._queues AS x WHERE x.name = queue;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'baton.%: queue "%" does not exist', fn, queue
            USING ERRCODE = 'undefined_object', COLUMN = 'queue',
                  HINT = 'Create it with baton.create_queue().';
    END IF;
    RETURN q;
END
$$;

-- Validates queue options shared by create_queue and alter_queue.
CREATE FUNCTION baton._check_queue_options(fn text, concurrency integer, max_attempts integer,
                                           lease interval, backoff_base interval, backoff_cap interval,
                                           rate_limit integer, rate_period interval, retention interval)
RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF concurrency < 0 THEN
        PERFORM baton._bad(fn, 'concurrency', pg_catalog.format('must be positive, or NULL/0 for no limit (got %s)', concurrency));
    END IF;
    IF max_attempts < 1 THEN
        PERFORM baton._bad(fn, 'max_attempts', pg_catalog.format('must be at least 1 (got %s)', max_attempts));
    END IF;
    PERFORM baton._check_interval(fn, 'lease', lease, false);
    PERFORM baton._check_interval(fn, 'backoff_base', backoff_base, true);
    PERFORM baton._check_interval(fn, 'backoff_cap', backoff_cap, true);
    IF rate_limit < 0 THEN
        PERFORM baton._bad(fn, 'rate_limit', pg_catalog.format('must be positive, or NULL/0 for no limit (got %s)', rate_limit));
    END IF;
    PERFORM baton._check_interval(fn, 'rate_period', rate_period, false);
    PERFORM baton._check_interval(fn, 'retention', retention, true);
END
$$;

CREATE FUNCTION baton.create_queue(queue text,
                                   concurrency integer DEFAULT NULL,
                                   max_attempts integer DEFAULT 5,
                                   lease interval DEFAULT '5 minutes',
                                   backoff_base interval DEFAULT '1 second',
                                   backoff_cap interval DEFAULT '1 hour',
                                   rate_limit integer DEFAULT NULL,
                                   rate_period interval DEFAULT '1 second',
                                   retention interval DEFAULT '7 days',
                                   if_not_exists boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM baton._check_queue_name('create_queue', queue);
    IF max_attempts IS NULL THEN PERFORM baton._bad('create_queue', 'max_attempts', 'must not be NULL'); END IF;
    IF lease IS NULL THEN PERFORM baton._bad('create_queue', 'lease', 'must not be NULL'); END IF;
    IF backoff_base IS NULL THEN PERFORM baton._bad('create_queue', 'backoff_base', 'must not be NULL'); END IF;
    IF backoff_cap IS NULL THEN PERFORM baton._bad('create_queue', 'backoff_cap', 'must not be NULL'); END IF;
    IF rate_period IS NULL THEN PERFORM baton._bad('create_queue', 'rate_period', 'must not be NULL'); END IF;
    IF retention IS NULL THEN PERFORM baton._bad('create_queue', 'retention', 'must not be NULL'); END IF;
    PERFORM baton._check_queue_options('create_queue', concurrency, max_attempts, lease, backoff_base,
                                       backoff_cap, rate_limit, rate_period, retention);
    -- The first queue fixes this database's correlation prefix (see baton._instance).
    INSERT INTO baton._instance (task_corr_prefix)
    SELECT pg_catalog.left(r.hex, 12) || '8' || pg_catalog.substr(r.hex, 14, 3)
      FROM pg_catalog.replace(pg_catalog.gen_random_uuid()::text, '-', '') AS r(hex)
    ON CONFLICT (singleton) DO NOTHING;
    INSERT INTO baton._queues AS q (name, concurrency, max_attempts, lease, backoff_base, backoff_cap,
                                    rate_limit, rate_period, rate_tokens, retention)
    VALUES (queue, NULLIF(concurrency, 0), max_attempts, lease, backoff_base, backoff_cap,
            NULLIF(rate_limit, 0), rate_period, COALESCE(NULLIF(rate_limit, 0), 0), retention)
    ON CONFLICT (name) DO NOTHING;
    IF NOT FOUND AND NOT if_not_exists THEN
        RAISE EXCEPTION 'baton.create_queue: queue "%" already exists', queue
            USING ERRCODE = 'duplicate_object', COLUMN = 'queue';
    END IF;
END
$$;
COMMENT ON FUNCTION baton.create_queue(text, integer, integer, interval, interval, interval, integer, interval, interval, boolean) IS
'Creates a queue. concurrency: global limit of running tasks across all workers (NULL = none); max_attempts and lease: defaults for its tasks; backoff_base/backoff_cap: exponential retry delay with jitter; rate_limit tasks per rate_period; retention: how long finished tasks are kept.';

CREATE FUNCTION baton.alter_queue(queue text,
                                  concurrency integer DEFAULT NULL,
                                  max_attempts integer DEFAULT NULL,
                                  lease interval DEFAULT NULL,
                                  backoff_base interval DEFAULT NULL,
                                  backoff_cap interval DEFAULT NULL,
                                  rate_limit integer DEFAULT NULL,
                                  rate_period interval DEFAULT NULL,
                                  retention interval DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM baton._queue('alter_queue', queue);
    PERFORM baton._check_queue_options('alter_queue', concurrency, max_attempts, lease, backoff_base,
                                       backoff_cap, rate_limit, rate_period, retention);
    UPDATE baton._queues AS q SET
        concurrency  = CASE WHEN alter_queue.concurrency IS NULL THEN q.concurrency
                            ELSE NULLIF(alter_queue.concurrency, 0) END,
        max_attempts = COALESCE(alter_queue.max_attempts, q.max_attempts),
        lease        = COALESCE(alter_queue.lease, q.lease),
        backoff_base = COALESCE(alter_queue.backoff_base, q.backoff_base),
        backoff_cap  = COALESCE(alter_queue.backoff_cap, q.backoff_cap),
        rate_limit   = CASE WHEN alter_queue.rate_limit IS NULL THEN q.rate_limit
                            ELSE NULLIF(alter_queue.rate_limit, 0) END,
        rate_period  = COALESCE(alter_queue.rate_period, q.rate_period),
        retention    = COALESCE(alter_queue.retention, q.retention)
    WHERE q.name = alter_queue.queue;
    PERFORM pg_catalog.pg_notify('baton_tasks', queue);
END
$$;
COMMENT ON FUNCTION baton.alter_queue(text, integer, integer, interval, interval, interval, integer, interval, interval) IS
'Changes queue options; NULL leaves an option as it is, 0 removes a concurrency or rate limit.';

-- What still sends work to a queue, in words, or NULL: a subscription, a
-- workflow's latest version or a running run's version, a cron schedule.
-- (The tables belong to later parts of the script; plpgsql looks them up when called.)
CREATE FUNCTION baton._queue_user(queue text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    who text;
BEGIN
    SELECT pg_catalog.format('subscription "%s"', s.name) INTO who
      FROM baton._subscriptions AS s WHERE s.queue = _queue_user.queue LIMIT 1;
    IF who IS NULL THEN
        SELECT pg_catalog.format('step "%s" of workflow "%s" (version %s)', d.step, d.workflow, d.version) INTO who
          FROM baton._wf_steps AS d
         WHERE (d.spec ->> 'queue' = _queue_user.queue OR d.spec #>> '{compensate,queue}' = _queue_user.queue)
           AND (d.version = (SELECT pg_catalog.max(w.version) FROM baton._workflows AS w WHERE w.name = d.workflow)
                OR EXISTS (SELECT 1 FROM baton._runs AS r
                            WHERE r.workflow = d.workflow AND r.version = d.version AND r.state = 'running'))
         LIMIT 1;
    END IF;
    IF who IS NULL THEN
        SELECT pg_catalog.format('cron schedule "%s"', c.name) INTO who
          FROM baton._schedules AS c WHERE c.queue = _queue_user.queue LIMIT 1;
    END IF;
    RETURN who;
END
$$;

CREATE FUNCTION baton.drop_queue(queue text, force boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    live    bigint;
    used_by text;
BEGIN
    PERFORM 1 FROM baton._queues AS q WHERE q.name = queue FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM baton._queue('drop_queue', queue);
    END IF;
    SELECT pg_catalog.count(*) INTO live FROM baton._tasks AS t
     WHERE t.queue = drop_queue.queue AND t.state IN ('scheduled', 'pending', 'running');
    used_by := baton._queue_user(queue);
    IF used_by IS NOT NULL THEN
        RAISE EXCEPTION 'baton.drop_queue: queue "%" is used by %', queue, used_by
            USING ERRCODE = 'object_in_use', COLUMN = 'queue',
                  HINT = 'Unsubscribe, unschedule or redefine the workflow first: work sent to a dropped queue would never run.';
    END IF;
    IF live > 0 AND NOT force THEN
        RAISE EXCEPTION 'baton.drop_queue: queue "%" has % live tasks', queue, live
            USING ERRCODE = 'object_in_use', COLUMN = 'queue',
                  HINT = 'Wait for them, cancel them, or pass force => true to delete them.';
    END IF;
    DELETE FROM baton._tasks AS t WHERE t.queue = drop_queue.queue;
    DELETE FROM baton._queues AS q WHERE q.name = drop_queue.queue;
END
$$;
COMMENT ON FUNCTION baton.drop_queue(text, boolean) IS
'Drops a queue and its finished tasks; refuses while a subscription, a workflow or a cron schedule sends work to it, and while it has live tasks unless force is true.';

CREATE FUNCTION baton.pause_queue(queue text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM baton._queue('pause_queue', queue);
    UPDATE baton._queues AS q SET paused = true WHERE q.name = pause_queue.queue;
END
$$;
COMMENT ON FUNCTION baton.pause_queue(text) IS
'Stops claims from a queue; enqueues still succeed and running tasks finish.';

CREATE FUNCTION baton.resume_queue(queue text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM baton._queue('resume_queue', queue);
    UPDATE baton._queues AS q SET paused = false WHERE q.name = resume_queue.queue;
    PERFORM pg_catalog.pg_notify('baton_tasks', queue);
END
$$;
COMMENT ON FUNCTION baton.resume_queue(text) IS 'Lets workers claim from a paused queue again.';

-- ---- 20_tasks.sql ----
-- 20_tasks.sql — the task life cycle: enqueue, claim, complete, fail, heartbeat, cancel, retry.

CREATE FUNCTION baton._session_start() RETURNS timestamptz
AS 'MODULE_PATHNAME', 'baton_session_start' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION baton._session_start() IS
'Start time of this backend: with pg_backend_pid() it identifies the claiming session.';

-- Exponential backoff with "equal jitter": half the delay fixed, half random.
CREATE FUNCTION baton._backoff(attempt integer, base interval, cap interval) RETURNS interval
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    SELECT d * 0.5 + d * 0.5 * pg_catalog.random()
      FROM (SELECT LEAST(cap, base * pg_catalog.power(2, LEAST(GREATEST(attempt - 1, 0), 40))::float8) AS d) AS x
$$;

-- Validates the per-task options of enqueue and enqueue_many.
CREATE FUNCTION baton._check_task_options(fn text, run_at timestamptz, delay interval, max_attempts integer,
                                          dedup_key text, timeout interval, backoff_base interval,
                                          backoff_cap interval, priority integer)
RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF run_at IS NOT NULL AND delay IS NOT NULL THEN
        PERFORM baton._bad(fn, 'delay', 'cannot be combined with run_at');
    END IF;
    IF delay IS NOT NULL THEN PERFORM baton._check_interval(fn, 'delay', delay, true); END IF;
    IF priority IS NULL THEN
        PERFORM baton._bad(fn, 'priority', 'must not be NULL');
    END IF;
    IF max_attempts < 1 THEN
        PERFORM baton._bad(fn, 'max_attempts', pg_catalog.format('must be at least 1 (got %s)', max_attempts));
    END IF;
    IF dedup_key = '' THEN
        PERFORM baton._bad(fn, 'dedup_key', 'must not be empty');
    END IF;
    IF timeout IS NOT NULL THEN PERFORM baton._check_interval(fn, 'timeout', timeout, false); END IF;
    IF backoff_base IS NOT NULL THEN PERFORM baton._check_interval(fn, 'backoff_base', backoff_base, true); END IF;
    IF backoff_cap IS NOT NULL THEN PERFORM baton._check_interval(fn, 'backoff_cap', backoff_cap, true); END IF;
END
$$;

-- The correlation id of a task enqueued without one: this database's random
-- prefix and the task id with the RFC 9562 variant bits, a UUID version 8 that
-- _task_of_correlation maps back to the task.  Nothing is stored or indexed.
-- SECURITY DEFINER because the tasks view calls it for its readers.
CREATE FUNCTION baton._task_correlation(id bigint) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT (i.task_corr_prefix || pg_catalog.to_hex(id | x'8000000000000000'::bigint))::uuid
      FROM baton._instance AS i
$$;

-- The task whose derived correlation id this is, or NULL.
CREATE FUNCTION baton._task_of_correlation(correlation uuid) RETURNS bigint
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT ('x' || pg_catalog.substr(h.hex, 17))::bit(64)::bigint & x'3fffffffffffffff'::bigint
      FROM baton._instance AS i, pg_catalog.replace(correlation::text, '-', '') AS h(hex)
     WHERE pg_catalog.left(h.hex, 16) = i.task_corr_prefix
       AND pg_catalog.substr(h.hex, 17, 1) IN ('8', '9', 'a', 'b')
$$;

CREATE FUNCTION baton.enqueue(queue text,
                              payload jsonb DEFAULT '{}',
                              run_at timestamptz DEFAULT NULL,
                              priority integer DEFAULT 0,
                              max_attempts integer DEFAULT NULL,
                              dedup_key text DEFAULT NULL,
                              timeout interval DEFAULT NULL,
                              delay interval DEFAULT NULL,
                              correlation_id uuid DEFAULT NULL,
                              backoff_base interval DEFAULT NULL,
                              backoff_cap interval DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    q         baton._queues;
    due       timestamptz;
    new_id    bigint;
BEGIN
    IF enqueue.payload IS NULL THEN
        PERFORM baton._bad('enqueue', 'payload', 'must not be NULL (use ''{}'' for no payload)');
    END IF;
    PERFORM baton._check_task_options('enqueue', enqueue.run_at, enqueue.delay, enqueue.max_attempts,
                                      enqueue.dedup_key, enqueue.timeout, enqueue.backoff_base,
                                      enqueue.backoff_cap, enqueue.priority);
    q := baton._queue('enqueue', enqueue.queue);
    due := COALESCE(enqueue.run_at, pg_catalog.now() + enqueue.delay, pg_catalog.now());
    LOOP
        INSERT INTO baton._tasks (queue, state, priority, run_at, max_attempts, payload, dedup_key,
                                  timeout, backoff_base, backoff_cap, correlation_id)
        VALUES (q.name,
                CASE WHEN due > pg_catalog.now() THEN 'scheduled' ELSE 'pending' END::baton.task_state,
                enqueue.priority, due, COALESCE(enqueue.max_attempts, q.max_attempts), enqueue.payload,
                enqueue.dedup_key, enqueue.timeout, enqueue.backoff_base, enqueue.backoff_cap,
                enqueue.correlation_id)
        ON CONFLICT (queue, dedup_key)
            WHERE dedup_key IS NOT NULL AND state IN ('scheduled', 'pending', 'running')
            DO NOTHING
        RETURNING id INTO new_id;
        IF new_id IS NOT NULL THEN
            IF due <= pg_catalog.now() THEN
                PERFORM pg_catalog.pg_notify('baton_tasks', q.name);
            END IF;
            RETURN new_id;
        END IF;
        -- A live task holds the key: return it, unless it finished meanwhile.
        SELECT t.id INTO new_id FROM baton._tasks AS t
         WHERE t.queue = q.name AND t.dedup_key = enqueue.dedup_key
           AND t.state IN ('scheduled', 'pending', 'running');
        IF new_id IS NOT NULL THEN
            RETURN new_id;
        END IF;
    END LOOP;
END
$$;
COMMENT ON FUNCTION baton.enqueue(text, jsonb, timestamptz, integer, integer, text, interval, interval, uuid, interval, interval) IS
'Adds a task to a queue in the caller''s transaction and returns its id. A dedup_key already held by a live task returns that task''s id instead.';

CREATE FUNCTION baton.enqueue_many(queue text,
                                   payloads jsonb,
                                   run_at timestamptz DEFAULT NULL,
                                   priority integer DEFAULT 0,
                                   max_attempts integer DEFAULT NULL,
                                   timeout interval DEFAULT NULL,
                                   delay interval DEFAULT NULL,
                                   correlation_id uuid DEFAULT NULL)
RETURNS SETOF bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    q   baton._queues;
    due timestamptz;
BEGIN
    IF jsonb_typeof(enqueue_many.payloads) IS DISTINCT FROM 'array' THEN
        PERFORM baton._bad('enqueue_many', 'payloads',
                           pg_catalog.format('must be a JSON array (got %s)',
                                             COALESCE(pg_catalog.jsonb_typeof(enqueue_many.payloads), 'NULL')));
    END IF;
    PERFORM baton._check_task_options('enqueue_many', enqueue_many.run_at, enqueue_many.delay,
                                      enqueue_many.max_attempts, NULL, enqueue_many.timeout, NULL, NULL,
                                      enqueue_many.priority);
    q := baton._queue('enqueue_many', enqueue_many.queue);
    due := COALESCE(enqueue_many.run_at, pg_catalog.now() + enqueue_many.delay, pg_catalog.now());
    RETURN QUERY
    INSERT INTO baton._tasks (queue, state, priority, run_at, max_attempts, payload, timeout, correlation_id)
    SELECT q.name,
           CASE WHEN due > pg_catalog.now() THEN 'scheduled' ELSE 'pending' END::baton.task_state,
           enqueue_many.priority, due, COALESCE(enqueue_many.max_attempts, q.max_attempts), e.p,
           enqueue_many.timeout, enqueue_many.correlation_id
      FROM pg_catalog.jsonb_array_elements(enqueue_many.payloads) WITH ORDINALITY AS e(p, n)
     ORDER BY e.n
    RETURNING id;
    IF due <= pg_catalog.now() AND pg_catalog.jsonb_array_length(enqueue_many.payloads) > 0 THEN
        PERFORM pg_catalog.pg_notify('baton_tasks', q.name);
    END IF;
END
$$;
COMMENT ON FUNCTION baton.enqueue_many(text, jsonb, timestamptz, integer, integer, interval, interval, uuid) IS
'Adds one task per element of the payloads array in one statement; returns the ids in array order.';

-- Makes due delayed tasks claimable; returns how many.  SKIP LOCKED keeps
-- concurrent callers (claims, ticks) from waiting on each other.
CREATE FUNCTION baton._promote(queues text[], max_rows integer) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n integer;
    touched text[];
BEGIN
    WITH due AS (
        SELECT t.id FROM baton._tasks AS t
         WHERE t.state = 'scheduled' AND t.run_at <= pg_catalog.now()
           AND (queues IS NULL OR t.queue = ANY (queues))
         ORDER BY t.run_at
         LIMIT max_rows
         FOR UPDATE SKIP LOCKED),
    upd AS (
        UPDATE baton._tasks AS t SET state = 'pending'
          FROM due WHERE t.id = due.id
        RETURNING t.queue)
    SELECT pg_catalog.count(*), pg_catalog.array_agg(DISTINCT upd.queue) INTO n, touched FROM upd;
    IF n > 0 THEN
        PERFORM pg_catalog.pg_notify('baton_tasks', x) FROM pg_catalog.unnest(touched) AS x;
    END IF;
    RETURN n;
END
$$;

-- Claims up to want due tasks from the given queues (limits already applied).
-- The picked rows go through an array of their ctids, so that the cached
-- generic plan is a TID scan whatever the batch size: the subquery has locked
-- each row (its ctid cannot change before this transaction ends) and the
-- update fetches it directly, where a lookup by id would descend the primary
-- key once per task (15 % of a 1000-task claim with its completion, measured).
CREATE FUNCTION baton._claim_from(queues text[], worker text, want integer, pid integer, session_start timestamptz)
RETURNS TABLE (id bigint, queue text, payload jsonb, attempt integer, lease_expires_at timestamptz,
               run_id bigint, step text, correlation_id uuid, max_attempts integer)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    corr_prefix text := (SELECT i.task_corr_prefix FROM baton._instance AS i);
    -- The queues' leases in the order of queues, read once rather than once per task.
    leases      interval[] := ARRAY(SELECT q.lease FROM pg_catalog.unnest(queues) WITH ORDINALITY AS u(name, n)
                                      LEFT JOIN baton._queues AS q ON q.name = u.name ORDER BY u.n);
BEGIN
    -- Rows come back in claim order (priority, then due time).
    RETURN QUERY
    WITH claimed AS (
    UPDATE baton._tasks AS t
       SET state = 'running', attempt = t.attempt + 1, worker = _claim_from.worker,
           started_at = pg_catalog.now(),
           lease_expires_at = pg_catalog.now() + COALESCE(t.timeout, leases[pg_catalog.array_position(queues, t.queue)]),
           claim_pid = pid, claim_session_start = session_start
     WHERE t.ctid = ANY (ARRAY(
        SELECT c.ctid FROM pg_catalog.unnest(queues) AS uq(name)
        CROSS JOIN LATERAL (
            SELECT x.ctid, x.priority, x.run_at, x.id FROM baton._tasks AS x
             WHERE x.queue = uq.name AND x.state = 'pending'
             ORDER BY x.priority DESC, x.run_at, x.id
             LIMIT want
             FOR UPDATE SKIP LOCKED) AS c
        ORDER BY c.priority DESC, c.run_at, c.id
        LIMIT want))
    RETURNING t.id, t.queue, t.payload, t.attempt, t.lease_expires_at, t.run_id, t.step,
              -- baton._task_correlation(t.id), without a function call per row
              COALESCE(t.correlation_id, (corr_prefix || pg_catalog.to_hex(t.id | x'8000000000000000'::bigint))::uuid)
                  AS correlation_id,
              t.max_attempts, t.priority, t.run_at)
    SELECT c.id, c.queue, c.payload, c.attempt, c.lease_expires_at, c.run_id, c.step, c.correlation_id, c.max_attempts
      FROM claimed AS c
     ORDER BY c.priority DESC, c.run_at, c.id;
END
$$;

CREATE FUNCTION baton.claim(queues text[], worker text, batch integer DEFAULT 1,
                            session_bound boolean DEFAULT true)
RETURNS TABLE (id bigint, queue text, payload jsonb, attempt integer, lease_expires_at timestamptz,
               run_id bigint, step text, correlation_id uuid, max_attempts integer)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    pid        integer;
    sess       timestamptz;
    unlimited  text[] := '{}';
    found_n    integer;
    want       integer := batch;
    got        integer;
    q          baton._queues;
    slots      integer;
    tokens     double precision;
BEGIN
    IF queues IS NULL OR pg_catalog.cardinality(queues) = 0 THEN
        PERFORM baton._bad('claim', 'queues', 'must name at least one queue');
    END IF;
    IF worker IS NULL OR worker = '' THEN
        PERFORM baton._bad('claim', 'worker', 'must not be empty');
    END IF;
    IF batch IS NULL OR batch < 1 OR batch > 10000 THEN
        PERFORM baton._bad('claim', 'batch', pg_catalog.format('must be between 1 and 10000 (got %s)', batch));
    END IF;
    IF session_bound THEN
        pid := pg_catalog.pg_backend_pid();
        sess := baton._session_start();
    END IF;

    SELECT pg_catalog.count(*),
           COALESCE(pg_catalog.array_agg(x.name) FILTER (WHERE NOT x.paused AND x.concurrency IS NULL
                                                         AND x.rate_limit IS NULL), '{}')
      INTO found_n, unlimited
      FROM baton._queues AS x WHERE x.name = ANY (queues);
    IF found_n < pg_catalog.cardinality(ARRAY(SELECT DISTINCT u FROM pg_catalog.unnest(queues) AS u)) THEN
        PERFORM baton._queue('claim', u) FROM pg_catalog.unnest(queues) AS u;
    END IF;

    FOR pass IN 1..2 LOOP
        -- Limited queues one at a time: the queue row lock serialises their
        -- claimers, so the concurrency and rate limits hold across all workers.
        FOR q IN SELECT * FROM baton._queues AS x
                  WHERE x.name = ANY (queues) AND NOT x.paused
                    AND (x.concurrency IS NOT NULL OR x.rate_limit IS NOT NULL)
                  ORDER BY x.name
                    FOR NO KEY UPDATE
        LOOP
            EXIT WHEN want <= 0;
            slots := want;
            IF q.concurrency IS NOT NULL THEN
                SELECT LEAST(slots, q.concurrency - pg_catalog.count(*))::integer INTO slots
                  FROM baton._tasks AS t WHERE t.queue = q.name AND t.state = 'running';
            END IF;
            IF q.rate_limit IS NOT NULL THEN
                tokens := LEAST(q.rate_limit::float8,
                                q.rate_tokens + q.rate_limit * pg_catalog.date_part('epoch', pg_catalog.now() - q.rate_updated_at)
                                              / pg_catalog.date_part('epoch', q.rate_period));
                slots := LEAST(slots, pg_catalog.floor(tokens)::integer);
            END IF;
            CONTINUE WHEN slots <= 0;
            RETURN QUERY SELECT * FROM baton._claim_from(ARRAY[q.name], worker, slots, pid, sess);
            GET DIAGNOSTICS got = ROW_COUNT;
            want := want - got;
            IF q.rate_limit IS NOT NULL THEN
                UPDATE baton._queues AS x SET rate_tokens = tokens - got, rate_updated_at = pg_catalog.now()
                 WHERE x.name = q.name;
            END IF;
        END LOOP;

        IF want > 0 AND pg_catalog.cardinality(unlimited) > 0 THEN
            RETURN QUERY SELECT * FROM baton._claim_from(unlimited, worker, want, pid, sess);
            GET DIAGNOSTICS got = ROW_COUNT;
            want := want - got;
        END IF;

        -- Short of work: make due delayed tasks claimable and look once more,
        -- so delayed tasks run on time even when nothing calls tick().
        EXIT WHEN want <= 0 OR pass = 2;
        EXIT WHEN baton._promote(queues, want) = 0;
    END LOOP;
END
$$;
COMMENT ON FUNCTION baton.claim(text[], text, integer, boolean) IS
'Leases up to batch due tasks from the queues (priority, then due time) to a worker. (id, attempt) is the lease token for complete/fail/heartbeat. session_bound ties the lease to this database session so a dead worker''s tasks are rescued at the next tick; pass false behind transaction pooling.';

-- Called when a task ends (or is retried) and it belongs to a workflow, a
-- subscription or carries events to emit: the hook into those subsystems.
CREATE FUNCTION baton._on_task_end(task baton._tasks) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF task.run_id IS NOT NULL THEN
        PERFORM baton._wf_on_task_end(task);
    END IF;
    IF task.subscription_id IS NOT NULL
       OR (task.state = 'succeeded' AND pg_catalog.jsonb_typeof(task.result) = 'object' AND task.result ? 'emit') THEN
        PERFORM baton._ev_on_task_end(task);
    END IF;
END
$$;

-- True when a finished task must be passed to _on_task_end.
CREATE FUNCTION baton._needs_hook(task baton._tasks) RETURNS boolean
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT task.run_id IS NOT NULL OR task.subscription_id IS NOT NULL
        OR (task.state = 'succeeded' AND pg_catalog.jsonb_typeof(task.result) = 'object' AND task.result ? 'emit')
$$;

CREATE FUNCTION baton.complete(id bigint, attempt integer, result jsonb DEFAULT NULL) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t baton._tasks;
BEGIN
    -- A queue without history (retention 0): see complete_many.  Looked for
    -- only when one exists, so other completions find their task once.
    IF EXISTS (SELECT 1 FROM baton._queues AS q WHERE q.retention = interval '0') THEN
        DELETE FROM baton._tasks AS x USING baton._queues AS q
         WHERE x.id = complete.id AND x.attempt = complete.attempt AND x.state = 'running'
           AND q.name = x.queue AND q.retention = interval '0'
           AND x.run_id IS NULL AND x.subscription_id IS NULL
           AND NOT COALESCE(pg_catalog.jsonb_typeof(complete.result) = 'object' AND complete.result ? 'emit', false);
        IF FOUND THEN
            RETURN true;
        END IF;
    END IF;
    UPDATE baton._tasks AS x
       SET state = 'succeeded', result = complete.result, finished_at = pg_catalog.now(),
           lease_expires_at = NULL
     WHERE x.id = complete.id AND x.attempt = complete.attempt AND x.state = 'running'
    RETURNING x.* INTO t;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF baton._needs_hook(t) THEN
        PERFORM baton._on_task_end(t);
    END IF;
    RETURN true;
END
$$;
COMMENT ON FUNCTION baton.complete(bigint, integer, jsonb) IS
'Marks a running task succeeded with its result (on a queue with retention 0 the task is deleted instead, unless a workflow, a subscription or an emit needs it). Returns false, changing nothing, when (id, attempt) no longer holds the lease.';

CREATE FUNCTION baton.complete_many(ids bigint[], attempts integer[], results jsonb[] DEFAULT NULL)
RETURNS SETOF bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t        baton._tasks;
    accepted bigint[];
    hooked   bigint[];
    nohist   text[];
    dropped  bigint[];
BEGIN
    IF pg_catalog.cardinality(ids) IS DISTINCT FROM pg_catalog.cardinality(attempts) THEN
        PERFORM baton._bad('complete_many', 'attempts', 'must have as many elements as ids');
    END IF;
    IF results IS NOT NULL AND pg_catalog.cardinality(results) <> pg_catalog.cardinality(ids) THEN
        PERFORM baton._bad('complete_many', 'results', 'must have as many elements as ids');
    END IF;
    -- Queues that keep no history (retention 0) lose their succeeded tasks at
    -- once: a delete adds no index entries, the update below adds one per index.
    -- Tasks with a hook keep the update path: the hook reads the finished row.
    --
    -- In both statements the state is compared as text so that the planner
    -- cannot take the index of running tasks instead of the primary key: that
    -- scan walks every running task, and every entry that ended tasks left
    -- there since the last vacuum, for each batch (the profile showed it).
    -- The generic plan then looks each task up by primary key from the
    -- unnested arrays (estimated at a few rows, so no sequential scan).
    nohist := ARRAY(SELECT q.name FROM baton._queues AS q WHERE q.retention = interval '0');
    IF pg_catalog.cardinality(nohist) > 0 THEN
        WITH gone AS (
            DELETE FROM baton._tasks AS x
             USING ROWS FROM (pg_catalog.unnest(ids), pg_catalog.unnest(attempts), pg_catalog.unnest(results))
                       AS u(i, a, r)
             WHERE x.id = u.i AND x.attempt = u.a AND x.state::text = 'running'
               AND x.queue = ANY (nohist) AND x.run_id IS NULL AND x.subscription_id IS NULL
               AND NOT COALESCE(pg_catalog.jsonb_typeof(u.r) = 'object' AND u.r ? 'emit', false)
            RETURNING x.id)
        SELECT pg_catalog.array_agg(g.id) INTO dropped FROM gone AS g;
    END IF;
    IF pg_catalog.cardinality(dropped) IS NOT DISTINCT FROM pg_catalog.cardinality(ids) THEN
        -- Every task went: nothing is left to update.
        RETURN QUERY SELECT pg_catalog.unnest(dropped);
        RETURN;
    END IF;
    -- One set-based update; the hook test is inlined (it is what _needs_hook
    -- says) because a function call per row costs more than the update.
    WITH done AS (
        UPDATE baton._tasks AS x
           SET state = 'succeeded', result = u.r, finished_at = pg_catalog.now(), lease_expires_at = NULL
          FROM ROWS FROM (pg_catalog.unnest(ids), pg_catalog.unnest(attempts), pg_catalog.unnest(results)) AS u(i, a, r)
         WHERE x.id = u.i AND x.attempt = u.a AND x.state::text = 'running'
        RETURNING x.id, x.run_id, x.subscription_id, x.result)
    SELECT pg_catalog.array_agg(d.id),
           pg_catalog.array_agg(d.id) FILTER (WHERE d.run_id IS NOT NULL OR d.subscription_id IS NOT NULL
                                              OR (pg_catalog.jsonb_typeof(d.result) = 'object' AND d.result ? 'emit'))
      INTO accepted, hooked
      FROM done AS d;
    -- Hooks run in run order, so two batches touching the same runs lock
    -- them in the same order and cannot deadlock.
    IF hooked IS NOT NULL THEN
        FOR t IN SELECT * FROM baton._tasks AS x WHERE x.id = ANY (hooked) ORDER BY x.run_id NULLS FIRST, x.id LOOP
            PERFORM baton._on_task_end(t);
        END LOOP;
    END IF;
    RETURN QUERY SELECT pg_catalog.unnest(dropped || accepted);
END
$$;
COMMENT ON FUNCTION baton.complete_many(bigint[], integer[], jsonb[]) IS
'Batch form of complete: returns the ids whose completion was accepted.';

CREATE FUNCTION baton.fail(id bigint, attempt integer, error text,
                           retry boolean DEFAULT true, retry_in interval DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t     baton._tasks;
    q     baton._queues;
    delay interval;
BEGIN
    IF retry_in < interval '0' THEN
        PERFORM baton._bad('fail', 'retry_in', pg_catalog.format('must not be negative (got %s)', retry_in));
    END IF;
    SELECT * INTO t FROM baton._tasks AS x
     WHERE x.id = fail.id AND x.attempt = fail.attempt AND x.state = 'running'
       FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF COALESCE(retry, true) AND t.attempt < t.max_attempts THEN
        SELECT * INTO q FROM baton._queues AS x WHERE x.name = t.queue;
        delay := COALESCE(retry_in, baton._backoff(t.attempt, COALESCE(t.backoff_base, q.backoff_base),
                                                   COALESCE(t.backoff_cap, q.backoff_cap)));
        UPDATE baton._tasks AS x
           SET state = CASE WHEN delay > interval '0' THEN 'scheduled' ELSE 'pending' END::baton.task_state,
               run_at = pg_catalog.now() + delay, error = fail.error, lease_expires_at = NULL
         WHERE x.id = t.id;
        IF delay <= interval '0' THEN
            PERFORM pg_catalog.pg_notify('baton_tasks', t.queue);
        END IF;
    ELSE
        UPDATE baton._tasks AS x
           SET state = 'failed', error = fail.error, finished_at = pg_catalog.now(), lease_expires_at = NULL
         WHERE x.id = t.id
        RETURNING x.* INTO t;
        IF baton._needs_hook(t) THEN
            PERFORM baton._on_task_end(t);
        END IF;
    END IF;
    RETURN true;
END
$$;
COMMENT ON FUNCTION baton.fail(bigint, integer, text, boolean, interval) IS
'Reports a failed attempt. The task is retried after an exponential backoff with jitter (or retry_in) while attempts remain and retry is true; otherwise it ends failed (the dead-letter state). Returns false, changing nothing, from a lost lease.';

CREATE FUNCTION baton.fail_many(ids bigint[], attempts integer[], errors text[], retry boolean DEFAULT true)
RETURNS SETOF bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    f record;
BEGIN
    IF pg_catalog.cardinality(ids) IS DISTINCT FROM pg_catalog.cardinality(attempts) THEN
        PERFORM baton._bad('fail_many', 'attempts', 'must have as many elements as ids');
    END IF;
    IF pg_catalog.cardinality(ids) IS DISTINCT FROM pg_catalog.cardinality(errors) THEN
        PERFORM baton._bad('fail_many', 'errors', 'must have as many elements as ids');
    END IF;
    -- In run order, like complete_many, so concurrent batches cannot deadlock on runs.
    FOR f IN
        SELECT u.i, u.a, u.e FROM ROWS FROM (pg_catalog.unnest(ids), pg_catalog.unnest(attempts),
                                             pg_catalog.unnest(errors)) AS u(i, a, e)
          LEFT JOIN baton._tasks AS t ON t.id = u.i
         ORDER BY t.run_id NULLS FIRST, u.i
    LOOP
        IF baton.fail(f.i, f.a, f.e, retry) THEN
            RETURN NEXT f.i;
        END IF;
    END LOOP;
END
$$;
COMMENT ON FUNCTION baton.fail_many(bigint[], integer[], text[], boolean) IS
'Batch form of fail: returns the ids whose failure was accepted.';

CREATE FUNCTION baton.heartbeat(id bigint, attempt integer, extend interval DEFAULT NULL) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF extend <= interval '0' THEN
        PERFORM baton._bad('heartbeat', 'extend', pg_catalog.format('must be positive (got %s)', extend));
    END IF;
    UPDATE baton._tasks AS x
       SET lease_expires_at = pg_catalog.now() + COALESCE(heartbeat.extend, x.timeout, q.lease)
      FROM baton._queues AS q
     WHERE x.id = heartbeat.id AND x.attempt = heartbeat.attempt AND x.state = 'running' AND q.name = x.queue;
    RETURN FOUND;
END
$$;
COMMENT ON FUNCTION baton.heartbeat(bigint, integer, interval) IS
'Extends the lease of a running attempt (by extend, else the task timeout, else the queue lease). False means the lease is lost or the task was cancelled: stop working on it.';

CREATE FUNCTION baton.heartbeat_many(ids bigint[], attempts integer[], extend interval DEFAULT NULL)
RETURNS SETOF bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF pg_catalog.cardinality(ids) IS DISTINCT FROM pg_catalog.cardinality(attempts) THEN
        PERFORM baton._bad('heartbeat_many', 'attempts', 'must have as many elements as ids');
    END IF;
    IF extend <= interval '0' THEN
        PERFORM baton._bad('heartbeat_many', 'extend', pg_catalog.format('must be positive (got %s)', extend));
    END IF;
    RETURN QUERY
    UPDATE baton._tasks AS x
       SET lease_expires_at = pg_catalog.now() + COALESCE(heartbeat_many.extend, x.timeout, q.lease)
      FROM ROWS FROM (pg_catalog.unnest(ids), pg_catalog.unnest(attempts)) AS u(i, a), baton._queues AS q
     -- the state as text: see complete_many
     WHERE x.id = u.i AND x.attempt = u.a AND x.state::text = 'running' AND q.name = x.queue
    RETURNING x.id;
END
$$;
COMMENT ON FUNCTION baton.heartbeat_many(bigint[], integer[], interval) IS
'Batch form of heartbeat: returns the ids whose lease is still held (the others must stop).';

CREATE FUNCTION baton.release(id bigint, attempt integer, reason text DEFAULT NULL) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    q text;
BEGIN
    -- The attempt number keeps growing (it is the fencing token), so the
    -- released attempt is refunded by raising max_attempts instead.
    UPDATE baton._tasks AS x
       SET state = 'pending', max_attempts = x.max_attempts + 1, lease_expires_at = NULL,
           error = COALESCE(release.reason, x.error)
     WHERE x.id = release.id AND x.attempt = release.attempt AND x.state = 'running'
    RETURNING x.queue INTO q;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM pg_catalog.pg_notify('baton_tasks', q);
    RETURN true;
END
$$;
COMMENT ON FUNCTION baton.release(bigint, integer, text) IS
'Gives a running attempt back without counting it (used by a draining worker): the task is pending again at once.';

CREATE FUNCTION baton.release_many(ids bigint[], attempts integer[], reason text DEFAULT NULL)
RETURNS SETOF bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    i integer;
BEGIN
    IF pg_catalog.cardinality(ids) IS DISTINCT FROM pg_catalog.cardinality(attempts) THEN
        PERFORM baton._bad('release_many', 'attempts', 'must have as many elements as ids');
    END IF;
    FOR i IN 1 .. COALESCE(pg_catalog.cardinality(ids), 0) LOOP
        IF baton.release(ids[i], attempts[i], reason) THEN
            RETURN NEXT ids[i];
        END IF;
    END LOOP;
END
$$;
COMMENT ON FUNCTION baton.release_many(bigint[], integer[], text) IS 'Batch form of release.';

-- Raises no_data_found naming the task when it does not exist.
CREATE FUNCTION baton._task(fn text, task bigint) RETURNS baton._tasks
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t baton._tasks;
BEGIN
    SELECT * INTO t FROM baton._tasks AS x WHERE x.id = task FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'baton.%: task % does not exist', fn, task
            USING ERRCODE = 'no_data_found', COLUMN = 'task';
    END IF;
    RETURN t;
END
$$;

CREATE FUNCTION baton.cancel(task bigint) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t baton._tasks;
BEGIN
    t := baton._task('cancel', task);
    IF t.state NOT IN ('scheduled', 'pending', 'running') THEN
        RETURN false;
    END IF;
    UPDATE baton._tasks AS x
       SET state = 'cancelled', finished_at = pg_catalog.now(), lease_expires_at = NULL
     WHERE x.id = t.id
    RETURNING x.* INTO t;
    IF baton._needs_hook(t) THEN
        PERFORM baton._on_task_end(t);
    END IF;
    RETURN true;
END
$$;
COMMENT ON FUNCTION baton.cancel(bigint) IS
'Cancels a live task. A running attempt learns it at its next heartbeat or completion (both return false). Returns false when the task had already ended.';

CREATE FUNCTION baton.retry(task bigint) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t baton._tasks;
    budget integer;
BEGIN
    t := baton._task('retry', task);
    IF t.state NOT IN ('failed', 'cancelled') THEN
        RETURN false;
    END IF;
    IF t.run_id IS NOT NULL AND NOT baton._wf_may_retry(t) THEN
        RAISE EXCEPTION 'baton.retry: task % belongs to run %, which has ended', t.id, t.run_id
            USING ERRCODE = 'object_not_in_prerequisite_state', COLUMN = 'task';
    END IF;
    SELECT q.max_attempts INTO budget FROM baton._queues AS q WHERE q.name = t.queue;
    BEGIN
        UPDATE baton._tasks AS x
           SET state = 'pending', run_at = pg_catalog.now(), finished_at = NULL, result = NULL,
               max_attempts = x.attempt + COALESCE(budget, 1)
         WHERE x.id = t.id;
    EXCEPTION WHEN unique_violation THEN
        RAISE EXCEPTION 'baton.retry: task % has dedup_key "%", now held by another live task', t.id, t.dedup_key
            USING ERRCODE = 'unique_violation', COLUMN = 'task';
    END;
    IF t.run_id IS NOT NULL THEN
        PERFORM baton._wf_on_retry(t);
    END IF;
    PERFORM pg_catalog.pg_notify('baton_tasks', t.queue);
    RETURN true;
END
$$;
COMMENT ON FUNCTION baton.retry(bigint) IS
'Sends a failed (dead-lettered) or cancelled task back to pending with a fresh attempt budget. Returns false when the task has not ended.';

CREATE FUNCTION baton.purge(queue text DEFAULT NULL, older_than interval DEFAULT '0',
                            states text[] DEFAULT ARRAY['succeeded', 'failed', 'cancelled'])
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n bigint;
    s text;
BEGIN
    IF older_than IS NULL OR older_than < interval '0' THEN
        PERFORM baton._bad('purge', 'older_than', 'must be a non-negative interval');
    END IF;
    IF queue IS NOT NULL THEN
        PERFORM baton._queue('purge', queue);
    END IF;
    FOREACH s IN ARRAY COALESCE(states, '{}') LOOP
        IF s IS NULL OR s NOT IN ('succeeded', 'failed', 'cancelled') THEN
            PERFORM baton._bad('purge', 'states',
                pg_catalog.format('may only name finished states succeeded, failed, cancelled (got %s)',
                                  COALESCE(pg_catalog.quote_literal(s), 'NULL')));
        END IF;
    END LOOP;
    DELETE FROM baton._tasks AS t
     WHERE t.state::text = ANY (states)
       AND t.state IN ('succeeded', 'failed', 'cancelled')
       AND t.finished_at <= pg_catalog.now() - older_than
       AND (purge.queue IS NULL OR t.queue = purge.queue);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION baton.purge(text, interval, text[]) IS
'Deletes finished tasks (of one queue, or all) that ended at least older_than ago; returns how many.';

-- Worker registry ------------------------------------------------------------

CREATE FUNCTION baton.register_worker(worker text, queues text[], host text DEFAULT NULL,
                                      pid integer DEFAULT NULL, version text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF worker IS NULL OR worker = '' THEN
        PERFORM baton._bad('register_worker', 'worker', 'must not be empty');
    END IF;
    INSERT INTO baton._workers AS w (id, host, pid, queues, version, backend_pid, started_at, last_seen)
    VALUES (worker, host, pid, COALESCE(queues, '{}'), version, pg_catalog.pg_backend_pid(),
            pg_catalog.now(), pg_catalog.now())
    ON CONFLICT (id) DO UPDATE
       SET host = excluded.host, pid = excluded.pid, queues = excluded.queues, version = excluded.version,
           backend_pid = excluded.backend_pid, last_seen = excluded.last_seen;
END
$$;
COMMENT ON FUNCTION baton.register_worker(text, text[], text, integer, text) IS
'Records a live worker daemon (called at start and after each reconnect).';

CREATE FUNCTION baton.worker_seen(worker text) RETURNS boolean
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    UPDATE baton._workers AS w SET last_seen = pg_catalog.now() WHERE w.id = worker_seen.worker
    RETURNING true
$$;
COMMENT ON FUNCTION baton.worker_seen(text) IS
'Refreshes a worker''s last_seen; NULL when it is not registered (it should register again).';

CREATE FUNCTION baton.unregister_worker(worker text) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    DELETE FROM baton._workers AS w WHERE w.id = unregister_worker.worker
$$;
COMMENT ON FUNCTION baton.unregister_worker(text) IS 'Removes a worker at clean shutdown.';

-- ---- 30_tick.sql ----
-- 30_tick.sql — time-driven work: due delayed tasks, expired leases, dead claimers, retention.

-- Ends or re-queues running tasks matched by a reason; used for both lease
-- expiry and dead-session rescue.  Returns how many tasks it touched.
CREATE FUNCTION baton._requeue_running(ids bigint[], reason text) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t baton._tasks;
    n integer := 0;
BEGIN
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
            PERFORM pg_catalog.pg_notify('baton_tasks', t.queue);
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

-- ---- 40_events.sql ----
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

-- Per-subscription counts and dead letters look tasks up by subscription.
CREATE INDEX _tasks_subscription_idx ON baton._tasks (subscription_id, state) WHERE subscription_id IS NOT NULL;
CREATE INDEX _tasks_event_idx ON baton._tasks (event_id) WHERE event_id IS NOT NULL;

SELECT pg_catalog.pg_extension_config_dump('baton._events', '');
SELECT pg_catalog.pg_extension_config_dump('baton._subscriptions', '');
SELECT pg_catalog.pg_extension_config_dump('baton._ev_runs', '');
SELECT pg_catalog.pg_extension_config_dump('baton._ev_settings', '');

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
    run := baton.start(s.workflow, e.payload,
                       idempotency_key => CASE WHEN replay THEN NULL ELSE 'event:' || e.id || ':' || s.name END,
                       correlation_id => e.correlation_id, cause_event_id => e.id, subscription_id => s.id);
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
         WHERE x.filter IS NULL OR baton._ev_passes(x.filter, e.payload, e.key, e.topic)),
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
        PERFORM pg_catalog.pg_notify('baton_tasks', x) FROM pg_catalog.unnest(queues) AS x;
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
                              correlation_id uuid DEFAULT NULL, cause_task_id bigint DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    corr uuid := publish.correlation_id;
BEGIN
    PERFORM baton._ev_check_topic('publish', 'topic', publish.topic);
    IF publish.payload IS NULL THEN
        PERFORM baton._bad('publish', 'payload', 'must not be NULL (use ''{}'' for no payload)');
    END IF;
    IF publish.cause_task_id IS NOT NULL THEN
        SELECT COALESCE(corr, t.correlation_id, baton._task_correlation(t.id)) INTO corr
          FROM baton._tasks AS t WHERE t.id = publish.cause_task_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'baton.publish: cause_task_id: task % does not exist', publish.cause_task_id
                USING ERRCODE = 'no_data_found', COLUMN = 'cause_task_id';
        END IF;
    END IF;
    RETURN baton._publish(publish.topic, publish.payload, publish.key, corr, publish.cause_task_id, NULL, NULL);
END
$$;
COMMENT ON FUNCTION baton.publish(text, jsonb, text, uuid, bigint) IS
'Appends an event to the log and, in the caller''s transaction, fans it out to every matching subscription (one task per queue subscription, one run per workflow subscription). correlation_id defaults to the cause task''s, else a new one; cause_task_id links the event to the task that caused it (e.g. a handler publishing from SQL). Returns the event id.';

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
    IF subscribe.name IS NULL OR subscribe.name !~ '^[A-Za-z0-9_.:-]{1,128}$' THEN
        PERFORM baton._bad('subscribe', 'name',
            pg_catalog.format('must be 1-128 characters of letters, digits, "_", "-", ".", ":" (got %s)',
                              COALESCE(pg_catalog.quote_literal(subscribe.name), 'NULL')));
    END IF;
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
-- malformed list raises, so the completion that carried it is rejected as a
-- whole (the worker sees the error) and nothing is published.
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
        END;
        IF bad IS NOT NULL THEN
            PERFORM baton._bad('complete', 'result.emit',
                pg_catalog.format('element %s %s (task %s, got %s)', n, bad, task.id, ev));
        END IF;
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
      INTO r FROM baton.runs AS v WHERE v.id = _ev_on_run_end.run_id;
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
           AND baton._ev_matches(s, x.topic) AND baton._ev_passes(s.filter, x.payload, x.key, x.topic)
         ORDER BY x.id;
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n > 0 THEN
            PERFORM pg_catalog.pg_notify('baton_tasks', s.queue);
        END IF;
    ELSE
        FOR e IN SELECT * FROM baton._events AS x
                  WHERE x.published_at >= since AND (until IS NULL OR x.published_at < until)
                    AND baton._ev_matches(s, x.topic) AND baton._ev_passes(s.filter, x.payload, x.key, x.topic)
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

GRANT EXECUTE ON FUNCTION baton.publish(text, jsonb, text, uuid, bigint) TO baton_producer;
GRANT EXECUTE ON FUNCTION
    baton.subscribe(text, text, text, text, text, text, text, integer, integer, boolean),
    baton.unsubscribe(text, boolean),
    baton.pause_subscription(text),
    baton.resume_subscription(text),
    baton.replay(text, timestamptz, timestamptz),
    baton.set_event_retention(interval)
  TO baton_admin;

-- ---- 42_events_views.sql ----
-- 42_events_views.sql — choreography made visible: the event and subscription views, dead letters, trace.

CREATE VIEW baton.events AS
SELECT e.id, e.topic, e.key, e.payload, e.correlation_id, e.cause_task_id, e.cause_run_id, e.cause_step,
       e.published_at
  FROM baton._events AS e;
COMMENT ON VIEW baton.events IS 'The event log (append-only; old events leave by retention, see baton.set_event_retention).';

-- Counts come from the tasks (queue targets) or the runs (workflow targets)
-- still kept: finished tasks leave with their queue's retention.
CREATE VIEW baton.subscriptions AS
SELECT s.id, s.name, s.topic,
       CASE WHEN s.queue IS NOT NULL THEN 'queue' ELSE 'workflow' END AS target_kind,
       COALESCE(s.queue, s.workflow) AS target, s.queue, s.workflow,
       s.filter::text AS filter, s.on_success, s.on_failure, s.priority, s.max_attempts, s.paused, s.created_at,
       tc.delivered + rc.delivered AS delivered, tc.live + rc.live AS live,
       tc.succeeded + rc.succeeded AS succeeded, tc.failed + rc.failed AS failed,
       tc.cancelled + rc.cancelled AS cancelled
  FROM baton._subscriptions AS s
 CROSS JOIN LATERAL (
        SELECT pg_catalog.count(*) AS delivered,
               pg_catalog.count(*) FILTER (WHERE t.state IN ('scheduled', 'pending', 'running')) AS live,
               pg_catalog.count(*) FILTER (WHERE t.state = 'succeeded') AS succeeded,
               pg_catalog.count(*) FILTER (WHERE t.state = 'failed') AS failed,
               pg_catalog.count(*) FILTER (WHERE t.state = 'cancelled') AS cancelled
          FROM baton._tasks AS t WHERE t.subscription_id = s.id) AS tc
 CROSS JOIN LATERAL (
        SELECT pg_catalog.count(*) AS delivered,
               pg_catalog.count(*) FILTER (WHERE r.state IS NULL) AS live,
               pg_catalog.count(*) FILTER (WHERE r.state = 'succeeded') AS succeeded,
               pg_catalog.count(*) FILTER (WHERE r.state = 'failed') AS failed,
               pg_catalog.count(*) FILTER (WHERE r.state = 'cancelled') AS cancelled
          FROM baton._ev_runs AS r WHERE r.subscription_id = s.id) AS rc;
COMMENT ON VIEW baton.subscriptions IS 'Subscriptions: topic pattern, target (queue or workflow), filter, tokens, and counts of deliveries (tasks or runs still kept): delivered, live, succeeded, failed (dead letters), cancelled.';

CREATE VIEW baton.subscription_dead_letters AS
SELECT s.name AS subscription, t.id AS task_id, t.queue, t.event_id, t.payload ->> 'topic' AS topic,
       t.payload ->> 'key' AS key, t.attempt AS attempts, t.error, t.finished_at, t.correlation_id
  FROM baton._tasks AS t JOIN baton._subscriptions AS s ON s.id = t.subscription_id
 WHERE t.state = 'failed';
COMMENT ON VIEW baton.subscription_dead_letters IS
'Tasks of queue subscriptions that spent their attempts; retry them with baton.retry_dead_letters(subscription) or baton.retry(task).';

CREATE FUNCTION baton.retry_dead_letters(subscription text) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s baton._subscriptions;
    n integer := 0;
    t bigint;
BEGIN
    s := baton._subscription('retry_dead_letters', subscription);
    FOR t IN SELECT x.id FROM baton._tasks AS x
              WHERE x.subscription_id = s.id AND x.state = 'failed' ORDER BY x.id
    LOOP
        IF baton.retry(t) THEN
            n := n + 1;
        END IF;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION baton.retry_dead_letters(text) IS
'Sends every dead-lettered (failed) task of a queue subscription back to pending with a fresh attempt budget; returns how many.';

-- Tracing -------------------------------------------------------------------
--
-- A node of the causal chain is keyed 'kind:id', except a workflow step,
-- which workflows report as kind 'step' with the run's id and the step's
-- name: 'step:run_id:name'.  A task of a step and an event of a publish step
-- hang under that step when workflows reports it, else under the run.

-- The nodes of a causal chain, with their key, their cause's key and a
-- fallback cause key, unordered: events, tasks, and what workflows adds.
CREATE FUNCTION baton._ev_trace_nodes(correlation uuid)
RETURNS TABLE (at timestamptz, kind text, id bigint, name text, state text, cause_kind text, cause_id bigint,
               detail jsonb, node_key text, cause_key text, fallback_key text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT e.published_at, 'event', e.id, e.topic, NULL::text,
           CASE WHEN e.cause_task_id IS NOT NULL THEN 'task' WHEN e.cause_run_id IS NOT NULL THEN 'run' END,
           COALESCE(e.cause_task_id, e.cause_run_id),
           pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('key', e.key, 'payload', e.payload,
                                                                      'cause_step', e.cause_step)),
           'event:' || e.id,
           CASE WHEN e.cause_task_id IS NOT NULL THEN 'task:' || e.cause_task_id
                WHEN e.cause_step IS NOT NULL THEN 'step:' || e.cause_run_id || ':' || e.cause_step
                ELSE 'run:' || e.cause_run_id END,
           'run:' || e.cause_run_id
      FROM baton._events AS e WHERE e.correlation_id = correlation
    UNION ALL
    SELECT t.created_at, 'task', t.id, t.queue,
           CASE WHEN t.state = 'scheduled' THEN 'pending' ELSE t.state::text END,
           CASE WHEN t.event_id IS NOT NULL THEN 'event' WHEN t.run_id IS NOT NULL THEN 'run' END,
           COALESCE(t.event_id, t.run_id),
           pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
               'subscription', s.name, 'run_id', t.run_id, 'step', t.step, 'map_index', t.map_index,
               'attempt', t.attempt, 'result', t.result, 'error', t.error, 'finished_at', t.finished_at)),
           'task:' || t.id,
           CASE WHEN t.event_id IS NOT NULL THEN 'event:' || t.event_id
                WHEN t.step IS NOT NULL THEN 'step:' || t.run_id || ':' || t.step
                ELSE 'run:' || t.run_id END,
           'run:' || t.run_id
      FROM baton._tasks AS t LEFT JOIN baton._subscriptions AS s ON s.id = t.subscription_id
     WHERE t.correlation_id = correlation
        -- a task enqueued without a correlation id is found by the id inside it
        OR (t.id = baton._task_of_correlation(correlation) AND t.correlation_id IS NULL)
    UNION ALL
    SELECT w.at, w.kind, w.id, w.name, w.state, w.cause_kind, w.cause_id, w.detail,
           w.kind || ':' || w.id || CASE WHEN w.kind = 'step' THEN ':' || w.name ELSE '' END,
           w.cause_kind || ':' || w.cause_id, NULL
      FROM baton._wf_trace(correlation) AS w
$$;

-- The chain in order, with each node's key, its resolved parent's key and
-- position.  Within one transaction everything shares a timestamp, so ties
-- are broken by depth in the causal tree: a cause always comes first.
CREATE FUNCTION baton._ev_trace_rows(correlation uuid)
RETURNS TABLE (at timestamptz, kind text, id bigint, name text, state text, cause_kind text, cause_id bigint,
               detail jsonb, node_key text, parent_key text, ord bigint)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    WITH RECURSIVE n AS (
        SELECT * FROM baton._ev_trace_nodes(correlation)),
    p AS (
        SELECT n.*, CASE WHEN EXISTS (SELECT 1 FROM n AS c WHERE c.node_key = n.cause_key) THEN n.cause_key
                         WHEN EXISTS (SELECT 1 FROM n AS c WHERE c.node_key = n.fallback_key) THEN n.fallback_key
                    END AS parent_key
          FROM n),
    d (node_key, depth) AS (
        SELECT p.node_key, 0 FROM p WHERE p.parent_key IS NULL
        UNION ALL
        SELECT c.node_key, d.depth + 1 FROM d JOIN p AS c ON c.parent_key = d.node_key
         WHERE d.depth < 10000),
    dd AS (
        SELECT d.node_key, pg_catalog.min(d.depth) AS depth FROM d GROUP BY d.node_key)
    SELECT p.at, p.kind, p.id, p.name, p.state,
           CASE WHEN p.parent_key IS NULL THEN p.cause_kind ELSE pg_catalog.split_part(p.parent_key, ':', 1) END,
           CASE WHEN p.parent_key IS NULL THEN p.cause_id ELSE pg_catalog.split_part(p.parent_key, ':', 2)::bigint END,
           p.detail, p.node_key, p.parent_key,
           pg_catalog.row_number() OVER (ORDER BY p.at, COALESCE(dd.depth, 0), p.kind, p.id, p.name)
      FROM p LEFT JOIN dd ON dd.node_key = p.node_key
$$;

CREATE FUNCTION baton.trace(correlation uuid)
RETURNS TABLE (at timestamptz, kind text, id bigint, name text, state text,
               cause_kind text, cause_id bigint, detail jsonb)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT r.at, r.kind, r.id, r.name, r.state, r.cause_kind, r.cause_id, r.detail
      FROM baton._ev_trace_rows(correlation) AS r
     ORDER BY r.ord
$$;
COMMENT ON FUNCTION baton.trace(uuid) IS
'The whole causal chain of a correlation id across choreography and orchestration: events, tasks, runs and steps (a step is identified by its run id and name), in time order with a cause before its effects, each with its cause (cause_kind, cause_id) and details.';

-- A Mermaid node label: quotes and angle brackets as entities.
CREATE FUNCTION baton._ev_mermaid_label(t text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(t, '"', '#quot;'), '<', '#lt;'), '>', '#gt;')
$$;

CREATE FUNCTION baton.trace_graph(correlation uuid) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    WITH r AS (
        SELECT x.*, pg_catalog.regexp_replace(x.kind, '[^A-Za-z0-9_]', '_', 'g') || '_' || COALESCE(x.id::text, 'x')
                    -- steps share their run's id: the position makes them unique
                    || CASE WHEN x.kind = 'step' THEN '_' || x.ord ELSE '' END AS mid
          FROM baton._ev_trace_rows(correlation) AS x),
    nodes AS (
        SELECT r.ord, '    ' || r.mid
               || CASE r.kind WHEN 'event' THEN '(["' WHEN 'task' THEN '["' WHEN 'run' THEN '[["' ELSE '("' END
               || baton._ev_mermaid_label(r.kind || ' ' || COALESCE(r.id::text, '') || ': ' || COALESCE(r.name, '')
                                         || COALESCE(' (' || r.state || ')', ''))
               || CASE r.kind WHEN 'event' THEN '"])' WHEN 'task' THEN '"]' WHEN 'run' THEN '"]]' ELSE '")' END
               || CASE WHEN r.state IN ('succeeded', 'failed', 'cancelled', 'running', 'pending')
                       THEN ':::' || r.state ELSE '' END AS line
          FROM r),
    edges AS (
        SELECT c.ord, '    ' || p.mid || ' --> ' || c.mid AS line
          FROM r AS c JOIN r AS p ON p.node_key = c.parent_key)
    SELECT pg_catalog.concat_ws(E'\n',
        'flowchart TD',
        '    classDef succeeded fill:#d4edda,stroke:#28a745',
        '    classDef failed fill:#f8d7da,stroke:#dc3545',
        '    classDef cancelled fill:#e2e3e5,stroke:#6c757d',
        '    classDef running fill:#fff3cd,stroke:#ffc107',
        '    classDef pending fill:#ffffff,stroke:#6c757d',
        (SELECT pg_catalog.string_agg(nodes.line, E'\n' ORDER BY nodes.ord) FROM nodes),
        (SELECT pg_catalog.string_agg(edges.line, E'\n' ORDER BY edges.ord) FROM edges))
$$;
COMMENT ON FUNCTION baton.trace_graph(uuid) IS
'The causal chain of a correlation id as a Mermaid flowchart: events (stadium), tasks (box, coloured by state), runs (subroutine), steps (rounded), edges cause --> effect.';

GRANT EXECUTE ON FUNCTION baton.retry_dead_letters(text) TO baton_admin;
GRANT EXECUTE ON FUNCTION baton.trace(uuid), baton.trace_graph(uuid)
  TO baton_admin, baton_producer, baton_worker;
GRANT SELECT ON baton.events, baton.subscriptions, baton.subscription_dead_letters
  TO baton_admin, baton_producer, baton_worker;

-- ---- 60_workflows.sql ----
-- 60_workflows.sql — orchestration, part 1: workflow definitions, their validation and versions.
--
-- Glossary: a workflow is a named, versioned DAG of steps; a run is one
-- execution of one version; a run step is one step of one run (for a task step
-- it owns one task, for a map step one task per array element).

-- Every version of every workflow, with its definition as given.
CREATE TABLE baton._workflows (
    name        text NOT NULL,
    version     integer NOT NULL,
    definition  jsonb NOT NULL,
    step_count  integer NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (name, version)
);

-- The compiled steps of each version: one indexed row per step, so the run
-- engine reads only the step it needs (no detoasting of whole definitions).
CREATE TABLE baton._wf_steps (
    workflow    text NOT NULL,
    version     integer NOT NULL,
    step        text NOT NULL,
    kind        text NOT NULL,
    spec        jsonb NOT NULL,
    after       text[] NOT NULL,
    dependents  text[] NOT NULL,
    ord         integer NOT NULL,      -- position in a topological order
    PRIMARY KEY (workflow, version, step),
    FOREIGN KEY (workflow, version) REFERENCES baton._workflows (name, version)
);

SELECT pg_catalog.pg_extension_config_dump('baton._workflows', '');
SELECT pg_catalog.pg_extension_config_dump('baton._wf_steps', '');

-- Raises invalid_parameter_value for a definition error, naming the step.
CREATE FUNCTION baton._wf_bad(step text, msg text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF step IS NULL THEN
        RAISE EXCEPTION 'baton.define_workflow: %', msg
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'definition';
    END IF;
    RAISE EXCEPTION 'baton.define_workflow: step "%": %', step, msg
        USING ERRCODE = 'invalid_parameter_value', COLUMN = 'definition';
END
$$;

-- Checks that a string compiles as a JSONPath expression.
CREATE FUNCTION baton._wf_check_path(step text, field text, path text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pg_catalog.jsonb_path_query('{}'::jsonb, path::jsonpath, '{}'::jsonb, true);
EXCEPTION WHEN OTHERS THEN
    PERFORM baton._wf_bad(step, pg_catalog.format('%s: bad JSONPath %s (%s)', field,
                                                  pg_catalog.quote_literal(path), SQLERRM));
END
$$;

-- Checks every "$."-string of a template compiles as JSONPath.
CREATE FUNCTION baton._wf_check_template(step text, field text, tmpl jsonb) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s text;
BEGIN
    FOR s IN SELECT v #>> '{}'
               FROM pg_catalog.jsonb_path_query(tmpl, 'strict $.** ? (@.type() == "string")') AS v
    LOOP
        IF pg_catalog.left(s, 2) = '$.' THEN
            PERFORM baton._wf_check_path(step, field, s);
        END IF;
    END LOOP;
END
$$;

-- Returns a positive interval given as a JSON string, or raises naming the step and field.
CREATE FUNCTION baton._wf_check_interval(step text, field text, val jsonb) RETURNS interval
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    i interval;
BEGIN
    IF pg_catalog.jsonb_typeof(val) IS DISTINCT FROM 'string' THEN
        PERFORM baton._wf_bad(step, pg_catalog.format('%s must be an interval string such as "5 minutes" (got %s)',
                                                      field, val));
    END IF;
    BEGIN
        i := (val #>> '{}')::interval;
    EXCEPTION WHEN OTHERS THEN
        PERFORM baton._wf_bad(step, pg_catalog.format('%s: not an interval (got %s)', field, val));
    END;
    IF i <= interval '0' THEN
        PERFORM baton._wf_bad(step, pg_catalog.format('%s must be positive (got %s)', field, val));
    END IF;
    RETURN i;
END
$$;

-- Checks a JSON value is an integer at least lo.
CREATE FUNCTION baton._wf_check_int(step text, field text, val jsonb, lo integer) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF pg_catalog.jsonb_typeof(val) IS DISTINCT FROM 'number'
       OR (val #>> '{}')::numeric <> pg_catalog.trunc((val #>> '{}')::numeric)
       OR (val #>> '{}')::numeric NOT BETWEEN lo AND 2147483647 THEN
        PERFORM baton._wf_bad(step, pg_catalog.format('%s must be an integer of at least %s (got %s)', field, lo, val));
    END IF;
END
$$;

-- Checks a required non-empty string field.
CREATE FUNCTION baton._wf_check_string(step text, field text, val jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF val IS NULL THEN
        PERFORM baton._wf_bad(step, pg_catalog.format('missing required field "%s"', field));
    END IF;
    IF pg_catalog.jsonb_typeof(val) <> 'string' OR val #>> '{}' = '' THEN
        PERFORM baton._wf_bad(step, pg_catalog.format('%s must be a non-empty string (got %s)', field, val));
    END IF;
    RETURN val #>> '{}';
END
$$;

-- Checks a queue named by a step exists.
CREATE FUNCTION baton._wf_check_queue(step text, field text, val jsonb) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    q text := baton._wf_check_string(step, field, val);
BEGIN
    IF NOT EXISTS (SELECT 1 FROM baton._queues AS x WHERE x.name = q) THEN
        PERFORM baton._wf_bad(step, pg_catalog.format('unknown queue "%s"', q));
    END IF;
END
$$;

-- Validates one step's own fields (not its dependencies); returns its kind.
CREATE FUNCTION baton._wf_check_step(workflow text, step text, spec jsonb) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    kind    text;
    allowed text[];
    k       text;
    child   text;
    comp    jsonb;
BEGIN
    IF step !~ '^[A-Za-z_][A-Za-z0-9_]{0,62}$' THEN
        PERFORM baton._wf_bad(step, 'bad step name: use 1-63 letters, digits and "_", not starting with a digit');
    END IF;
    IF pg_catalog.jsonb_typeof(spec) IS DISTINCT FROM 'object' THEN
        PERFORM baton._wf_bad(step, pg_catalog.format('must be a JSON object (got %s)', spec));
    END IF;
    IF spec ? 'kind' AND pg_catalog.jsonb_typeof(spec -> 'kind') <> 'string' THEN
        PERFORM baton._wf_bad(step, pg_catalog.format('kind must be a string (got %s)', spec -> 'kind'));
    END IF;
    kind := COALESCE(spec ->> 'kind', 'task');
    allowed := CASE kind
        WHEN 'task'       THEN ARRAY['queue', 'input', 'map', 'max_attempts', 'timeout', 'priority']
        WHEN 'publish'    THEN ARRAY['topic', 'payload', 'key']
        WHEN 'wait_event' THEN ARRAY['topic', 'key', 'timeout', 'on_timeout']
        WHEN 'sleep'      THEN ARRAY['duration', 'until']
        WHEN 'workflow'   THEN ARRAY['workflow', 'input']
    END;
    IF allowed IS NULL THEN
        PERFORM baton._wf_bad(step, pg_catalog.format(
            'unknown kind "%s" (use task, publish, wait_event, sleep or workflow)', kind));
    END IF;
    allowed := allowed || ARRAY['kind', 'after', 'when', 'compensate'];
    FOR k IN SELECT x FROM pg_catalog.jsonb_object_keys(spec) AS x ORDER BY x LOOP
        IF NOT k = ANY (allowed) THEN
            PERFORM baton._wf_bad(step, pg_catalog.format('unknown key "%s" for a %s step', k, kind));
        END IF;
    END LOOP;

    IF spec ? 'when' THEN
        PERFORM baton._wf_check_path(step, 'when', baton._wf_check_string(step, 'when', spec -> 'when'));
    END IF;
    IF spec ? 'input' THEN
        PERFORM baton._wf_check_template(step, 'input', spec -> 'input');
    END IF;

    CASE kind
    WHEN 'task' THEN
        PERFORM baton._wf_check_queue(step, 'queue', spec -> 'queue');
        IF spec ? 'map' THEN
            PERFORM baton._wf_check_path(step, 'map', baton._wf_check_string(step, 'map', spec -> 'map'));
        END IF;
        IF spec ? 'max_attempts' THEN
            PERFORM baton._wf_check_int(step, 'max_attempts', spec -> 'max_attempts', 1);
        END IF;
        IF spec ? 'priority' THEN
            PERFORM baton._wf_check_int(step, 'priority', spec -> 'priority', -2147483647);
        END IF;
        IF spec ? 'timeout' THEN
            PERFORM baton._wf_check_interval(step, 'timeout', spec -> 'timeout');
        END IF;
    WHEN 'publish' THEN
        PERFORM baton._wf_check_string(step, 'topic', spec -> 'topic');
        IF spec ? 'payload' THEN
            PERFORM baton._wf_check_template(step, 'payload', spec -> 'payload');
        END IF;
        IF spec ? 'key' THEN
            PERFORM baton._wf_check_template(step, 'key', spec -> 'key');
        END IF;
    WHEN 'wait_event' THEN
        PERFORM baton._wf_check_string(step, 'topic', spec -> 'topic');
        IF spec ? 'key' THEN
            PERFORM baton._wf_check_template(step, 'key', spec -> 'key');
        END IF;
        IF spec ? 'timeout' THEN
            PERFORM baton._wf_check_interval(step, 'timeout', spec -> 'timeout');
        END IF;
        IF spec ? 'on_timeout' AND spec -> 'on_timeout' NOT IN ('"fail"', '"skip"') THEN
            PERFORM baton._wf_bad(step, pg_catalog.format('on_timeout must be "fail" or "skip" (got %s)',
                                                          spec -> 'on_timeout'));
        END IF;
    WHEN 'sleep' THEN
        IF (spec ? 'duration') = (spec ? 'until') THEN
            PERFORM baton._wf_bad(step, 'a sleep step needs exactly one of "duration" and "until"');
        END IF;
        IF spec ? 'duration' THEN
            PERFORM baton._wf_check_interval(step, 'duration', spec -> 'duration');
        ELSIF pg_catalog.jsonb_typeof(spec -> 'until') <> 'string' THEN
            PERFORM baton._wf_bad(step, pg_catalog.format('until must be a timestamp or a JSONPath string (got %s)',
                                                          spec -> 'until'));
        ELSIF pg_catalog.left(spec ->> 'until', 2) = '$.' THEN
            PERFORM baton._wf_check_path(step, 'until', spec ->> 'until');
        ELSE
            BEGIN
                PERFORM (spec ->> 'until')::timestamptz;
            EXCEPTION WHEN OTHERS THEN
                PERFORM baton._wf_bad(step, pg_catalog.format('until: not a timestamp (got %s)', spec -> 'until'));
            END;
        END IF;
    WHEN 'workflow' THEN
        child := baton._wf_check_string(step, 'workflow', spec -> 'workflow');
        IF child <> workflow AND NOT EXISTS (SELECT 1 FROM baton._workflows AS w WHERE w.name = child) THEN
            PERFORM baton._wf_bad(step, pg_catalog.format('unknown child workflow "%s"', child));
        END IF;
    END CASE;

    IF spec ? 'compensate' THEN
        comp := spec -> 'compensate';
        IF pg_catalog.jsonb_typeof(comp) IS DISTINCT FROM 'object' THEN
            PERFORM baton._wf_bad(step, pg_catalog.format('compensate must be an object {"queue", "input"} (got %s)', comp));
        END IF;
        FOR k IN SELECT x FROM pg_catalog.jsonb_object_keys(comp) AS x ORDER BY x LOOP
            IF k NOT IN ('queue', 'input') THEN
                PERFORM baton._wf_bad(step, pg_catalog.format('unknown key "%s" in compensate', k));
            END IF;
        END LOOP;
        PERFORM baton._wf_check_queue(step, 'compensate.queue', comp -> 'queue');
        IF comp ? 'input' THEN
            PERFORM baton._wf_check_template(step, 'compensate.input', comp -> 'input');
        END IF;
    END IF;
    RETURN kind;
END
$$;

CREATE FUNCTION baton.define_workflow(name text, definition jsonb) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    steps   jsonb;
    k       text;
    s       text;
    d       text;
    names   text[];
    kinds   jsonb := '{}';
    afters  jsonb := '{}';
    deps    text[];
    done    text[] := '{}';
    ready   text[];
    nxt_layer text[];
    dependents jsonb;
    pos     jsonb;
    indeg   integer[];
    i       integer;
    path    text[];
    cur     text;
    nxt     text;
    latest  baton._workflows;
    ver     integer;
    anc     jsonb := '{}';    -- step -> the steps that always end before it starts
BEGIN
    IF define_workflow.name IS NULL OR define_workflow.name !~ '^[A-Za-z0-9_.:-]{1,128}$' THEN
        PERFORM baton._bad('define_workflow', 'name',
            pg_catalog.format('must be 1-128 characters of letters, digits, "_", "-", ".", ":" (got %s)',
                              COALESCE(pg_catalog.quote_literal(define_workflow.name), 'NULL')));
    END IF;
    IF pg_catalog.jsonb_typeof(definition) IS DISTINCT FROM 'object' THEN
        PERFORM baton._wf_bad(NULL, pg_catalog.format('definition must be a JSON object {"steps": {...}} (got %s)',
                                                      COALESCE(pg_catalog.jsonb_typeof(definition), 'NULL')));
    END IF;
    FOR k IN SELECT x FROM pg_catalog.jsonb_object_keys(definition) AS x ORDER BY x LOOP
        IF k NOT IN ('steps', 'output') THEN
            PERFORM baton._wf_bad(NULL, pg_catalog.format('unknown key "%s" in definition (use "steps" and "output")', k));
        END IF;
    END LOOP;
    steps := definition -> 'steps';
    IF pg_catalog.jsonb_typeof(steps) IS DISTINCT FROM 'object' OR steps = '{}' THEN
        PERFORM baton._wf_bad(NULL, 'definition needs "steps": a non-empty object of steps keyed by name');
    END IF;
    IF definition ? 'output' THEN
        PERFORM baton._wf_check_template(NULL, 'output', definition -> 'output');
    END IF;

    names := ARRAY(SELECT x FROM pg_catalog.jsonb_object_keys(steps) AS x ORDER BY x);
    FOREACH s IN ARRAY names LOOP
        kinds := kinds || pg_catalog.jsonb_build_object(s, baton._wf_check_step(define_workflow.name, s, steps -> s));
        CASE pg_catalog.jsonb_typeof(steps -> s -> 'after')
        WHEN 'string' THEN deps := ARRAY[steps -> s ->> 'after'];
        WHEN 'array' THEN
            IF EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(steps -> s -> 'after') AS e
                        WHERE pg_catalog.jsonb_typeof(e) <> 'string') THEN
                PERFORM baton._wf_bad(s, pg_catalog.format('after must be an array of step names (got %s)',
                                                           steps -> s -> 'after'));
            END IF;
            deps := ARRAY(SELECT DISTINCT e FROM pg_catalog.jsonb_array_elements_text(steps -> s -> 'after') AS e
                           ORDER BY e);
        ELSE
            IF steps -> s ? 'after' THEN
                PERFORM baton._wf_bad(s, pg_catalog.format('after must be an array of step names (got %s)',
                                                           steps -> s -> 'after'));
            END IF;
            deps := '{}';
        END CASE;
        FOREACH d IN ARRAY deps LOOP
            IF NOT d = ANY (names) THEN
                PERFORM baton._wf_bad(s, pg_catalog.format('unknown dependency "%s"', d));
            END IF;
        END LOOP;
        afters := afters || pg_catalog.jsonb_build_object(s, pg_catalog.to_jsonb(deps));
    END LOOP;

    -- References to $.steps.<name> must name a step of this workflow.
    FOR s, d IN SELECT x.key, m[1]
                  FROM pg_catalog.jsonb_each(steps || pg_catalog.jsonb_build_object('', definition -> 'output')) AS x,
                       pg_catalog.regexp_matches(x.value::text, '\$\.steps\.([A-Za-z_][A-Za-z0-9_]*)', 'g') AS m
                 ORDER BY x.key, m[1]
    LOOP
        IF NOT d = ANY (names) THEN
            PERFORM baton._wf_bad(NULLIF(s, ''), pg_catalog.format('%srefers to unknown step "%s" ($.steps.%s)',
                                                                   CASE WHEN s = '' THEN 'output ' ELSE '' END, d, d));
        END IF;
    END LOOP;

    -- Topological order (Kahn), layer by layer, names sorted within a layer.
    dependents := COALESCE((SELECT pg_catalog.jsonb_object_agg(x.dep, x.l) FROM (
                               SELECT a.dep, pg_catalog.jsonb_agg(e.key ORDER BY e.key) AS l
                                 FROM pg_catalog.jsonb_each(afters) AS e,
                                      pg_catalog.jsonb_array_elements_text(e.value) AS a(dep)
                                GROUP BY a.dep) AS x), '{}');
    pos := (SELECT pg_catalog.jsonb_object_agg(x.n, x.i) FROM pg_catalog.unnest(names) WITH ORDINALITY AS x(n, i));
    indeg := ARRAY(SELECT pg_catalog.jsonb_array_length(afters -> x.n)
                     FROM pg_catalog.unnest(names) WITH ORDINALITY AS x(n, i) ORDER BY x.i);
    ready := ARRAY(SELECT x.n FROM pg_catalog.unnest(names) WITH ORDINALITY AS x(n, i)
                    WHERE indeg[x.i] = 0 ORDER BY x.n);
    WHILE pg_catalog.cardinality(ready) > 0 LOOP
        done := done || ready;
        nxt_layer := '{}';
        FOREACH s IN ARRAY ready LOOP
            FOR d IN SELECT pg_catalog.jsonb_array_elements_text(dependents -> s) LOOP
                i := (pos ->> d)::integer;
                indeg[i] := indeg[i] - 1;
                IF indeg[i] = 0 THEN
                    nxt_layer := nxt_layer || d;
                END IF;
            END LOOP;
        END LOOP;
        ready := ARRAY(SELECT x FROM pg_catalog.unnest(nxt_layer) AS x ORDER BY x);
    END LOOP;
    IF pg_catalog.cardinality(done) < pg_catalog.cardinality(names) THEN
        -- Walk unfinished dependencies until a step repeats: that loop is a cycle.
        SELECT n INTO cur FROM pg_catalog.unnest(names) AS n WHERE NOT n = ANY (done) ORDER BY n LIMIT 1;
        path := ARRAY[cur];
        LOOP
            SELECT x INTO nxt FROM pg_catalog.jsonb_array_elements_text(afters -> cur) AS x
             WHERE NOT x = ANY (done) ORDER BY x LIMIT 1;
            IF nxt = ANY (path) THEN
                path := path[pg_catalog.array_position(path, nxt):] || nxt;
                PERFORM baton._wf_bad(nxt, pg_catalog.format('dependency cycle: %s',
                                                             pg_catalog.array_to_string(path, ' -> ')));
            END IF;
            path := path || nxt;
            cur := nxt;
        END LOOP;
    END IF;

    -- A step's templates may read only steps that end before it starts: its
    -- ancestors through "after" (and itself, which compensate.input may read).
    -- Anything else would render as null or not, depending on timing.
    FOREACH s IN ARRAY done LOOP
        anc := anc || pg_catalog.jsonb_build_object(s, COALESCE((
            SELECT pg_catalog.jsonb_agg(DISTINCT a.x)
              FROM pg_catalog.jsonb_array_elements_text(afters -> s) AS p(dep),
                   LATERAL (SELECT p.dep UNION ALL
                            SELECT y FROM pg_catalog.jsonb_array_elements_text(anc -> p.dep) AS y) AS a(x)), '[]'));
    END LOOP;
    FOR s, d IN SELECT x.key, m[1]
                  FROM pg_catalog.jsonb_each(steps) AS x,
                       pg_catalog.regexp_matches(x.value::text, '\$\.steps\.([A-Za-z_][A-Za-z0-9_]*)', 'g') AS m
                 ORDER BY x.key, m[1]
    LOOP
        IF d <> s AND NOT (anc -> s) ? d THEN
            PERFORM baton._wf_bad(s, pg_catalog.format(
                'refers to step "%s" ($.steps.%s), which does not always end before it starts: add "%s" to its "after", directly or through a step in between',
                d, d, d));
        END IF;
    END LOOP;

    -- Serialise definers of one workflow; an identical definition keeps its version.
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('baton.define_workflow:' || define_workflow.name));
    SELECT * INTO latest FROM baton._workflows AS w
     WHERE w.name = define_workflow.name ORDER BY w.version DESC LIMIT 1;
    IF FOUND AND latest.definition = definition THEN
        RETURN latest.version;
    END IF;
    ver := COALESCE(latest.version, 0) + 1;
    INSERT INTO baton._workflows (name, version, definition, step_count)
    VALUES (define_workflow.name, ver, definition, pg_catalog.cardinality(names));
    INSERT INTO baton._wf_steps (workflow, version, step, kind, spec, after, dependents, ord)
    SELECT define_workflow.name, ver, n, kinds ->> n, steps -> n,
           ARRAY(SELECT pg_catalog.jsonb_array_elements_text(afters -> n)),
           ARRAY(SELECT pg_catalog.jsonb_array_elements_text(COALESCE(dependents -> n, '[]'))),
           pg_catalog.array_position(done, n)
      FROM pg_catalog.unnest(names) AS n;
    RETURN ver;
END
$$;
COMMENT ON FUNCTION baton.define_workflow(text, jsonb) IS
'Validates a workflow definition {"steps": {name: step, ...}, "output": template} and stores it as the next version of the workflow; returns the version. An identical definition returns the current version. Runs already started keep their version.';

-- Does a workflow of this name exist (any version)?  Used by cron and subscriptions.
CREATE FUNCTION baton._wf_exists(workflow text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (SELECT 1 FROM baton._workflows AS w WHERE w.name = _wf_exists.workflow)
$$;

-- ---- 61_workflow_runs.sql ----
-- 61_workflow_runs.sql — orchestration, part 2: runs and the engine that moves their steps.
--
-- Locking rule: every entry point (start, task end, event, tick, cancel_run)
-- locks the run row first and changes its steps only while holding it.  Tasks
-- of a run that is failing are cancelled with SKIP LOCKED, so a worker that is
-- completing one of them at that moment never deadlocks with the failure: it
-- gets the run lock afterwards, sees the run has ended and its result is ignored.

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
    FOREIGN KEY (workflow, version) REFERENCES baton._workflows (name, version),
    UNIQUE (workflow, idempotency_key)
);
CREATE INDEX _runs_correlation_idx ON baton._runs (correlation_id);
CREATE INDEX _runs_parent_idx ON baton._runs (parent_run_id) WHERE parent_run_id IS NOT NULL;
CREATE INDEX _runs_running_idx ON baton._runs (workflow) WHERE state = 'running';
-- Retention: ended runs by age.
CREATE INDEX _runs_finished_idx ON baton._runs (finished_at) WHERE state <> 'running';

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
    PRIMARY KEY (run_id, step)
);
CREATE INDEX _run_steps_wait_idx ON baton._run_steps (wait_topic, wait_key) WHERE state = 'waiting';
CREATE INDEX _run_steps_wake_idx ON baton._run_steps (wake_at) WHERE state = 'waiting';

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

-- Sends the run-end NOTIFY and calls the hooks that care about ended runs.
CREATE FUNCTION baton._wf_announce(run baton._runs) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pg_catalog.pg_notify('baton_runs',
        pg_catalog.jsonb_build_object('run', run.id, 'state', run.state, 'workflow', run.workflow)::text);
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
    PERFORM pg_catalog.pg_notify('baton_tasks', q.name);
END
$$;

-- Ends a running run (caller holds its lock): on failure or cancellation stops
-- its steps, tasks and child runs and starts the saga.
CREATE FUNCTION baton._wf_end_run(run_id bigint, new_state text, err text, out_value jsonb) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r     baton._runs;
    child bigint;
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
        UPDATE baton._tasks AS t
           SET state = 'cancelled', finished_at = pg_catalog.now(), lease_expires_at = NULL
         WHERE t.id IN (SELECT x.id FROM baton._tasks AS x
                         WHERE x.run_id = r.id AND x.state IN ('scheduled', 'pending', 'running')
                           FOR UPDATE SKIP LOCKED);
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

-- Starts a step whose dependencies are all done (caller holds the run lock).
CREATE FUNCTION baton._wf_activate(run_id bigint, step text) RETURNS text[]
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r     baton._runs;
    d     baton._wf_steps;
    spec  jsonb;
    ctx   jsonb;
    q     baton._queues;
    arr   jsonb;
    n     integer;
    tid   bigint;
    until timestamptz;
    wkey  text;
    ev    baton._events;
BEGIN
    SELECT * INTO r FROM baton._runs AS x WHERE x.id = _wf_activate.run_id;
    IF r.state <> 'running'
       OR NOT EXISTS (SELECT 1 FROM baton._run_steps AS s
                       WHERE s.run_id = r.id AND s.step = _wf_activate.step AND s.state = 'pending') THEN
        RETURN '{}';
    END IF;
    SELECT * INTO d FROM baton._wf_steps AS x
     WHERE x.workflow = r.workflow AND x.version = r.version AND x.step = _wf_activate.step;
    spec := d.spec;
    IF spec ?| ARRAY['when', 'input', 'map', 'payload', 'key', 'until'] THEN
        ctx := baton._wf_ctx(r);
    END IF;
    IF spec ? 'when'
       AND NOT COALESCE(pg_catalog.jsonb_path_match(ctx, (spec ->> 'when')::jsonpath, '{}', true), false) THEN
        RETURN baton._wf_step_done(r.id, d.step, NULL, 'skipped');
    END IF;

    UPDATE baton._run_steps AS s
       SET state = CASE WHEN d.kind IN ('sleep', 'wait_event') THEN 'waiting' ELSE 'running' END,
           started_at = pg_catalog.now()
     WHERE s.run_id = r.id AND s.step = d.step;

    CASE d.kind
    WHEN 'task' THEN
        SELECT * INTO q FROM baton._queues AS x WHERE x.name = spec ->> 'queue';
        IF NOT FOUND THEN
            PERFORM baton._wf_step_failed(r.id, d.step, pg_catalog.format('queue "%s" does not exist', spec ->> 'queue'));
            RETURN '{}';
        END IF;
        IF NOT spec ? 'map' THEN
            INSERT INTO baton._tasks (queue, priority, max_attempts, payload, timeout, run_id, step, correlation_id)
            VALUES (q.name, COALESCE((spec ->> 'priority')::integer, 0),
                    COALESCE((spec ->> 'max_attempts')::integer, q.max_attempts),
                    CASE WHEN spec ? 'input' THEN baton._wf_render(spec -> 'input', ctx) ELSE r.input END,
                    (spec ->> 'timeout')::interval, r.id, d.step, r.correlation_id)
            RETURNING id INTO tid;
            UPDATE baton._run_steps AS s SET task_id = tid WHERE s.run_id = r.id AND s.step = d.step;
            PERFORM pg_catalog.pg_notify('baton_tasks', q.name);
            RETURN '{}';
        END IF;
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
        -- One set-based insert for the whole fan-out.
        INSERT INTO baton._tasks (queue, priority, max_attempts, payload, timeout, run_id, step, map_index,
                                  correlation_id)
        SELECT q.name, COALESCE((spec ->> 'priority')::integer, 0),
               COALESCE((spec ->> 'max_attempts')::integer, q.max_attempts),
               CASE WHEN spec ? 'input'
                    THEN baton._wf_render(spec -> 'input',
                                          ctx || pg_catalog.jsonb_build_object('item', e.v, 'index', e.i - 1))
                    ELSE e.v END,
               (spec ->> 'timeout')::interval, r.id, d.step, (e.i - 1)::integer, r.correlation_id
          FROM pg_catalog.jsonb_array_elements(arr) WITH ORDINALITY AS e(v, i)
         ORDER BY e.i;
        PERFORM pg_catalog.pg_notify('baton_tasks', q.name);
    WHEN 'publish' THEN
        tid := baton._publish(spec ->> 'topic',
                              CASE WHEN spec ? 'payload' THEN baton._wf_render(spec -> 'payload', ctx) ELSE r.input END,
                              CASE WHEN spec ? 'key' THEN baton._wf_key(spec -> 'key', ctx) END,
                              r.correlation_id, NULL, r.id, d.step);
        RETURN baton._wf_step_done(r.id, d.step, pg_catalog.jsonb_build_object('event_id', tid), 'succeeded');
    WHEN 'wait_event' THEN
        wkey := CASE WHEN spec ? 'key' THEN baton._wf_key(spec -> 'key', ctx) END;
        -- An event published since the run started counts even if it came before this step.
        SELECT * INTO ev FROM baton._events AS e
         WHERE e.topic = spec ->> 'topic' AND (wkey IS NULL OR e.key = wkey) AND e.published_at >= r.created_at
         ORDER BY e.id LIMIT 1;
        IF FOUND THEN
            RETURN baton._wf_step_done(r.id, d.step, ev.payload, 'succeeded');
        END IF;
        UPDATE baton._run_steps AS s
           SET wait_topic = spec ->> 'topic', wait_key = wkey,
               wake_at = pg_catalog.now() + (spec ->> 'timeout')::interval
         WHERE s.run_id = r.id AND s.step = d.step;
    WHEN 'sleep' THEN
        IF spec ? 'duration' THEN
            until := pg_catalog.now() + (spec ->> 'duration')::interval;
        ELSE
            BEGIN
                until := (baton._wf_render(spec -> 'until', ctx) #>> '{}')::timestamptz;
            EXCEPTION WHEN OTHERS THEN
                until := NULL;
            END;
            IF until IS NULL THEN
                PERFORM baton._wf_step_failed(r.id, d.step,
                    pg_catalog.format('until: %s is not a timestamp (got %s)', spec ->> 'until',
                                      baton._wf_render(spec -> 'until', ctx)));
                RETURN '{}';
            END IF;
        END IF;
        IF until <= pg_catalog.now() THEN
            RETURN baton._wf_step_done(r.id, d.step, pg_catalog.jsonb_build_object('until', until), 'succeeded');
        END IF;
        UPDATE baton._run_steps AS s SET wake_at = until WHERE s.run_id = r.id AND s.step = d.step;
    WHEN 'workflow' THEN
        IF NOT baton._wf_exists(spec ->> 'workflow') THEN
            PERFORM baton._wf_step_failed(r.id, d.step,
                pg_catalog.format('workflow "%s" does not exist', spec ->> 'workflow'));
            RETURN '{}';
        END IF;
        -- The child may end at once (all its steps instant); it then reports back here.
        PERFORM baton._wf_start(spec ->> 'workflow',
                                CASE WHEN spec ? 'input' THEN baton._wf_render(spec -> 'input', ctx) ELSE r.input END,
                                NULL, r.correlation_id, NULL, NULL, r.id, d.step);
    END CASE;
    RETURN '{}';
END
$$;

-- Starts the given ready steps of a run and, breadth first, whatever they make ready.
CREATE FUNCTION baton._wf_advance(run_id bigint, ready text[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    todo text[] := ready;
    i    integer := 1;
BEGIN
    WHILE i <= COALESCE(pg_catalog.cardinality(todo), 0) LOOP
        todo := todo || baton._wf_activate(_wf_advance.run_id, todo[i]);
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
                                 parent_step, cause_event_id, subscription_id, steps_left)
        VALUES (w.name, w.version, _wf_start.input, _wf_start.idempotency_key,
                COALESCE(_wf_start.correlation_id, pg_catalog.gen_random_uuid()), _wf_start.parent_run_id,
                _wf_start.parent_step, _wf_start.cause_event_id, _wf_start.subscription_id, w.step_count)
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
                            correlation_id uuid DEFAULT NULL, cause_event_id bigint DEFAULT NULL,
                            subscription_id bigint DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF start.workflow IS NULL THEN
        PERFORM baton._bad('start', 'workflow', 'must not be NULL');
    END IF;
    IF start.input IS NULL THEN
        PERFORM baton._bad('start', 'input', 'must not be NULL (use ''{}'' for no input)');
    END IF;
    IF start.idempotency_key = '' THEN
        PERFORM baton._bad('start', 'idempotency_key', 'must not be empty');
    END IF;
    RETURN baton._wf_start(start.workflow, start.input, start.idempotency_key, start.correlation_id,
                           start.cause_event_id, start.subscription_id, NULL, NULL);
END
$$;
COMMENT ON FUNCTION baton.start(text, jsonb, text, uuid, bigint, bigint) IS
'Starts a run of the latest version of a workflow in the caller''s transaction and returns the run id. The same idempotency_key returns the same run. The run and its tasks carry correlation_id (a new one when NULL).';

CREATE FUNCTION baton.cancel_run(run bigint) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM baton._runs AS x WHERE x.id = cancel_run.run) THEN
        RAISE EXCEPTION 'baton.cancel_run: run % does not exist', cancel_run.run
            USING ERRCODE = 'no_data_found', COLUMN = 'run';
    END IF;
    RETURN baton._wf_cancel(cancel_run.run, 'cancelled by baton.cancel_run');
END
$$;
COMMENT ON FUNCTION baton.cancel_run(bigint) IS
'Cancels a running run: pending and waiting steps are cancelled, live tasks cancelled (a running attempt learns it at its next heartbeat or completion), child runs cancelled, compensations started. Returns false when the run had already ended.';

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
    FOR w IN SELECT s.run_id, s.step FROM baton._run_steps AS s
              WHERE s.state = 'waiting' AND s.wait_topic = event.topic
                AND (s.wait_key IS NULL OR s.wait_key = event.key)
              ORDER BY s.run_id, s.step
    LOOP
        PERFORM 1 FROM baton._runs AS x WHERE x.id = w.run_id AND x.state = 'running' FOR UPDATE;
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

-- Time-driven work: wakes sleep steps whose time has come and times out
-- wait_event steps, applies run retention; returns {"woken": n, "timed_out": m, "runs_purged": k}.
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
        PERFORM 1 FROM baton._runs AS x WHERE x.id = w.run_id AND x.state = 'running' FOR UPDATE SKIP LOCKED;
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

-- ---- 62_workflow_views.sql ----
-- 62_workflow_views.sql — orchestration, part 3: seeing runs (views, run_status, Mermaid graphs, trace) and grants.

CREATE VIEW baton.runs AS
SELECT r.id, r.workflow, r.version, r.state, r.input, r.output, r.error, r.created_at, r.finished_at,
       r.correlation_id, r.parent_run_id, r.parent_step, r.cause_event_id, r.subscription_id,
       r.idempotency_key, r.compensation, r.steps_left
  FROM baton._runs AS r;
COMMENT ON VIEW baton.runs IS
'Workflow runs: state running, succeeded, failed or cancelled; compensation is NULL (nothing to undo), running or done.';

CREATE VIEW baton.run_steps AS
SELECT s.run_id, s.step, s.kind, s.state,
       COALESCE(t.attempt, s.attempts) AS attempt, t.max_attempts,
       s.output, s.error, s.started_at, s.finished_at,
       s.task_id, s.map_total,
       s.map_total - (SELECT COALESCE(pg_catalog.sum(c.pending), 0)::integer FROM baton._run_map_counts AS c
                       WHERE c.run_id = s.run_id AND c.step = s.step) AS map_done,
       s.child_run_id, s.wake_at, s.wait_topic, s.wait_key,
       s.comp_task_id AS compensation_task_id, s.deps_left, s.ord
  FROM baton._run_steps AS s
  LEFT JOIN baton._tasks AS t ON t.id = s.task_id;
COMMENT ON VIEW baton.run_steps IS
'Every step of every run: pending, waiting (sleep, wait_event), running, succeeded, failed, skipped, cancelled, compensating, compensated; with its task, map progress (map_done of map_total) or child run.';

CREATE FUNCTION baton.run_status(run bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    res jsonb;
BEGIN
    SELECT pg_catalog.to_jsonb(r) || pg_catalog.jsonb_build_object('steps',
               (SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(s) - 'run_id' ORDER BY s.ord, s.step)
                  FROM baton.run_steps AS s WHERE s.run_id = r.id))
      INTO res
      FROM baton.runs AS r WHERE r.id = run_status.run;
    IF res IS NULL THEN
        RAISE EXCEPTION 'baton.run_status: run % does not exist', run_status.run
            USING ERRCODE = 'no_data_found', COLUMN = 'run';
    END IF;
    RETURN res;
END
$$;
COMMENT ON FUNCTION baton.run_status(bigint) IS
'A run and all its steps as one JSON object (the columns of baton.runs plus "steps": the rows of baton.run_steps in topological order).';

-- Mermaid text of one workflow version, each node with the class given in states (step -> state).
CREATE FUNCTION baton._wf_mermaid(workflow text, version integer, states jsonb) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.concat_ws(E'\n',
        'flowchart TD',
        (SELECT pg_catalog.string_agg(pg_catalog.format('    s_%s["%s"]', d.step,
                    pg_catalog.replace(d.step || '<br/>' || d.kind ||
                        COALESCE(': ' || COALESCE(d.spec ->> 'queue', d.spec ->> 'topic', d.spec ->> 'workflow',
                                                  d.spec ->> 'duration', d.spec ->> 'until'), '') ||
                        CASE WHEN d.spec ? 'map' THEN ' (map)' ELSE '' END ||
                        CASE WHEN states ? d.step THEN '<br/>' || (states ->> d.step) ELSE '' END,
                        '"', '#quot;')), E'\n' ORDER BY d.ord)
           FROM baton._wf_steps AS d WHERE d.workflow = _wf_mermaid.workflow AND d.version = _wf_mermaid.version),
        (SELECT pg_catalog.string_agg(pg_catalog.format('    s_%s --> s_%s', a, d.step), E'\n' ORDER BY d.ord, a)
           FROM baton._wf_steps AS d, pg_catalog.unnest(d.after) AS a
          WHERE d.workflow = _wf_mermaid.workflow AND d.version = _wf_mermaid.version),
        CASE WHEN states IS NOT NULL THEN pg_catalog.concat_ws(E'\n',
            '    classDef pending fill:#f4f4f4,stroke:#999',
            '    classDef waiting fill:#fff3c4,stroke:#c9a400',
            '    classDef running fill:#d6e8ff,stroke:#2f6fd1',
            '    classDef succeeded fill:#d8f5d0,stroke:#3a9a2a',
            '    classDef failed fill:#ffd6d6,stroke:#c62828',
            '    classDef skipped fill:#eeeeee,stroke:#bbb,stroke-dasharray:4',
            '    classDef cancelled fill:#e0e0e0,stroke:#777',
            '    classDef compensating fill:#ffe0b2,stroke:#ef6c00',
            '    classDef compensated fill:#ffecd9,stroke:#b26a00',
            (SELECT pg_catalog.string_agg(pg_catalog.format('    class s_%s %s', e.key, e.value #>> '{}'), E'\n'
                                          ORDER BY e.key)
               FROM pg_catalog.jsonb_each(states) AS e))
        END)
$$;

CREATE FUNCTION baton.graph(workflow text) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    ver integer;
BEGIN
    SELECT pg_catalog.max(w.version) INTO ver FROM baton._workflows AS w WHERE w.name = graph.workflow;
    IF ver IS NULL THEN
        RAISE EXCEPTION 'baton.graph: workflow "%" does not exist', graph.workflow
            USING ERRCODE = 'undefined_object', COLUMN = 'workflow';
    END IF;
    RETURN baton._wf_mermaid(graph.workflow, ver, NULL);
END
$$;
COMMENT ON FUNCTION baton.graph(text) IS
'Mermaid flowchart text of the latest version of a workflow (nodes s_<step>, edges from dependencies).';

CREATE FUNCTION baton.graph(run bigint) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r baton._runs;
BEGIN
    SELECT * INTO r FROM baton._runs AS x WHERE x.id = graph.run;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'baton.graph: run % does not exist', graph.run
            USING ERRCODE = 'no_data_found', COLUMN = 'run';
    END IF;
    RETURN baton._wf_mermaid(r.workflow, r.version,
        (SELECT pg_catalog.jsonb_object_agg(s.step, s.state) FROM baton._run_steps AS s WHERE s.run_id = r.id));
END
$$;
COMMENT ON FUNCTION baton.graph(bigint) IS
'Mermaid flowchart text of a run: its workflow version with each step''s state as a class (classDef per state).';

-- Rows of the causal chain contributed by workflows (runs and steps), for baton.trace.
CREATE FUNCTION baton._wf_trace(correlation uuid)
RETURNS TABLE (at timestamptz, kind text, id bigint, name text, state text,
               cause_kind text, cause_id bigint, detail jsonb)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT r.created_at, 'run', r.id, r.workflow, r.state,
           CASE WHEN r.parent_run_id IS NOT NULL THEN 'run' WHEN r.cause_event_id IS NOT NULL THEN 'event' END,
           COALESCE(r.parent_run_id, r.cause_event_id),
           pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
               'version', r.version, 'finished_at', r.finished_at, 'error', r.error,
               'parent_step', r.parent_step, 'subscription_id', r.subscription_id,
               'compensation', r.compensation))
      FROM baton._runs AS r WHERE r.correlation_id = _wf_trace.correlation
    UNION ALL
    SELECT COALESCE(s.started_at, s.finished_at, r.created_at), 'step', r.id, s.step, s.state, 'run', r.id,
           pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
               'kind', s.kind, 'task_id', s.task_id, 'child_run_id', s.child_run_id, 'map_total', s.map_total,
               'finished_at', s.finished_at, 'error', s.error, 'compensation_task_id', s.comp_task_id))
      FROM baton._runs AS r JOIN baton._run_steps AS s ON s.run_id = r.id
     WHERE r.correlation_id = _wf_trace.correlation AND s.state <> 'pending'
$$;

GRANT EXECUTE ON FUNCTION
    baton.start(text, jsonb, text, uuid, bigint, bigint),
    baton.run_status(bigint)
  TO baton_producer;

GRANT EXECUTE ON FUNCTION
    baton.define_workflow(text, jsonb),
    baton.cancel_run(bigint),
    baton.run_status(bigint),
    baton.graph(text),
    baton.graph(bigint),
    baton.set_run_retention(interval)
  TO baton_admin;

GRANT SELECT ON baton.runs, baton.run_steps TO baton_admin, baton_producer, baton_worker;

-- ---- 70_cron.sql ----
-- 70_cron.sql — cron schedules: a named cron expression that enqueues a task or starts a workflow.
--
-- A schedule fires at most once per scheduled time: baton._cron_tick() locks
-- due schedule rows (SKIP LOCKED) and moves next_fire_at forward in the same
-- transaction as the enqueue/start, so concurrent ticks cannot fire twice.
-- All times are UTC (the cron parser is extension/src/cron.c).

CREATE FUNCTION baton.cron_next(expr text, after timestamptz) RETURNS timestamptz
AS 'MODULE_PATHNAME', 'baton_cron_next' LANGUAGE C IMMUTABLE PARALLEL SAFE STRICT
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION baton.cron_next(text, timestamptz) IS
'The first time strictly after "after" matching a 5-field cron expression (minute hour day-of-month month day-of-week, or @hourly/@daily/@midnight/@weekly/@monthly/@yearly/@annually), in UTC. NULL when nothing matches within 10 years (e.g. 30 Feb). Raises invalid_parameter_value naming the bad field.';

CREATE TABLE baton._schedules (
    name          text PRIMARY KEY,
    cron          text NOT NULL,
    queue         text,
    workflow      text,
    payload       jsonb NOT NULL DEFAULT '{}',
    catch_up      boolean NOT NULL DEFAULT false,
    -- NULL when the expression matches no time within 10 years from now.
    next_fire_at  timestamptz,
    -- The scheduled time the schedule last fired for, and what it created.
    last_fire_at  timestamptz,
    last_task_id  bigint,
    last_run_id   bigint,
    fire_count    bigint NOT NULL DEFAULT 0,
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CHECK ((queue IS NULL) <> (workflow IS NULL))
);
CREATE INDEX _schedules_due_idx ON baton._schedules (next_fire_at);
SELECT pg_catalog.pg_extension_config_dump('baton._schedules', '');

-- A scheduled time seen later than this is missed; a skip schedule does not fire for it.
CREATE FUNCTION baton._cron_grace() RETURNS interval
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$ SELECT interval '5 minutes' $$;

-- The dedup/idempotency key of one fire: 'cron:<name>:<scheduled time, UTC>'.
CREATE FUNCTION baton._cron_key(name text, fire timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.format('cron:%s:%s', name,
                             pg_catalog.to_char(fire AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
$$;

CREATE FUNCTION baton.schedule(name text, cron text, queue text DEFAULT NULL, workflow text DEFAULT NULL,
                               payload jsonb DEFAULT '{}', catch_up boolean DEFAULT false,
                               replace boolean DEFAULT true)
RETURNS timestamptz
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    nxt timestamptz;
    old baton._schedules;
BEGIN
    IF schedule.name IS NULL OR schedule.name !~ '^[A-Za-z0-9_.:-]{1,128}$' THEN
        PERFORM baton._bad('schedule', 'name',
            pg_catalog.format('must be 1-128 characters of letters, digits, "_", "-", ".", ":" (got %s)',
                              COALESCE(pg_catalog.quote_literal(schedule.name), 'NULL')));
    END IF;
    IF schedule.cron IS NULL THEN
        PERFORM baton._bad('schedule', 'cron', 'must not be NULL');
    END IF;
    BEGIN
        nxt := baton.cron_next(schedule.cron, pg_catalog.now());
    EXCEPTION WHEN invalid_parameter_value THEN
        RAISE EXCEPTION 'baton.schedule: %', SQLERRM USING ERRCODE = 'invalid_parameter_value', COLUMN = 'cron';
    END;
    IF nxt IS NULL THEN
        PERFORM baton._bad('schedule', 'cron',
            pg_catalog.format('%s matches no time within 10 years (e.g. 30 February)',
                              pg_catalog.quote_literal(schedule.cron)));
    END IF;
    IF (schedule.queue IS NULL) = (schedule.workflow IS NULL) THEN
        RAISE EXCEPTION 'baton.schedule: give exactly one target, queue or workflow (got %)',
            CASE WHEN schedule.queue IS NULL THEN 'neither' ELSE 'both' END
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'queue';
    END IF;
    IF schedule.queue IS NOT NULL THEN
        PERFORM baton._queue('schedule', schedule.queue);
    ELSIF NOT baton._wf_exists(schedule.workflow) THEN
        RAISE EXCEPTION 'baton.schedule: workflow "%" does not exist', schedule.workflow
            USING ERRCODE = 'undefined_object', COLUMN = 'workflow',
                  HINT = 'Define it with baton.define_workflow().';
    END IF;
    IF schedule.payload IS NULL THEN
        PERFORM baton._bad('schedule', 'payload', 'must not be NULL (use ''{}'' for no payload)');
    END IF;
    IF schedule.catch_up IS NULL THEN
        PERFORM baton._bad('schedule', 'catch_up', 'must not be NULL');
    END IF;
    IF schedule.replace IS NULL THEN
        PERFORM baton._bad('schedule', 'replace', 'must not be NULL');
    END IF;

    SELECT * INTO old FROM baton._schedules AS s WHERE s.name = schedule.name FOR UPDATE;
    IF FOUND AND NOT schedule.replace THEN
        RAISE EXCEPTION 'baton.schedule: schedule "%" already exists', schedule.name
            USING ERRCODE = 'duplicate_object', COLUMN = 'name',
                  HINT = 'Pass replace => true to change it, or baton.unschedule() it first.';
    END IF;
    IF FOUND THEN
        -- Re-declaring the same expression keeps a pending fire instead of skipping it.
        IF old.cron = schedule.cron AND old.next_fire_at IS NOT NULL THEN
            nxt := old.next_fire_at;
        END IF;
        UPDATE baton._schedules AS s
           SET cron = schedule.cron, queue = schedule.queue, workflow = schedule.workflow,
               payload = schedule.payload, catch_up = schedule.catch_up, next_fire_at = nxt,
               updated_at = pg_catalog.now()
         WHERE s.name = schedule.name;
    ELSE
        INSERT INTO baton._schedules (name, cron, queue, workflow, payload, catch_up, next_fire_at)
        VALUES (schedule.name, schedule.cron, schedule.queue, schedule.workflow, schedule.payload,
                schedule.catch_up, nxt);
    END IF;
    RETURN nxt;
END
$$;
COMMENT ON FUNCTION baton.schedule(text, text, text, text, jsonb, boolean, boolean) IS
'Creates (or, with replace, changes) a cron schedule that enqueues payload to queue, or starts workflow with payload as input, at every time matching cron (UTC). catch_up: after downtime, fire once for all missed times (default: skip them). Returns the next fire time.';

CREATE FUNCTION baton.unschedule(name text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM baton._schedules AS s WHERE s.name = unschedule.name;
    RETURN FOUND;
END
$$;
COMMENT ON FUNCTION baton.unschedule(text) IS
'Removes a cron schedule; returns false when there was none of that name.';

-- Fires every due schedule once; returns {"cron_fired": n} (and "cron_failed" when fires failed).
CREATE FUNCTION baton._cron_tick() RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s       baton._schedules;
    now_at  timestamptz := pg_catalog.now();
    fire    timestamptz;
    c       timestamptz;
    nxt     timestamptz;
    task_id bigint;
    run_id  bigint;
    err     text;
    fired   integer := 0;
    failed  integer := 0;
BEGIN
    FOR s IN
        SELECT * FROM baton._schedules AS x
         WHERE x.next_fire_at <= now_at
         ORDER BY x.next_fire_at
           FOR UPDATE SKIP LOCKED
    LOOP
        -- Which scheduled time to fire for, if any.
        IF s.catch_up THEN
            fire := s.next_fire_at;           -- once, for all missed times
        ELSIF s.next_fire_at >= now_at - baton._cron_grace() THEN
            fire := s.next_fire_at;           -- on time (or late by less than the grace)
        ELSE
            -- Missed: only a time within the grace period may still fire.
            c := baton.cron_next(s.cron, now_at - baton._cron_grace() - interval '1 microsecond');
            fire := CASE WHEN c <= now_at THEN c END;
        END IF;
        IF fire IS NOT NULL AND NOT s.catch_up THEN
            -- Several times due within the grace: fire for the latest one only.
            LOOP
                c := baton.cron_next(s.cron, fire);
                EXIT WHEN c IS NULL OR c > now_at;
                fire := c;
            END LOOP;
        END IF;
        nxt := baton.cron_next(s.cron, now_at);

        task_id := NULL;
        run_id := NULL;
        err := NULL;
        IF fire IS NOT NULL THEN
            BEGIN
                IF s.queue IS NOT NULL THEN
                    task_id := baton.enqueue(s.queue, s.payload, dedup_key => baton._cron_key(s.name, fire));
                ELSE
                    run_id := baton.start(s.workflow, s.payload, baton._cron_key(s.name, fire));
                END IF;
                fired := fired + 1;
            EXCEPTION WHEN OTHERS THEN
                -- A dropped queue or a broken workflow must not stop the tick: record and skip.
                err := SQLERRM;
                failed := failed + 1;
                RAISE WARNING 'baton cron: schedule "%" failed to fire for %: %', s.name, fire, err;
            END;
        END IF;

        UPDATE baton._schedules AS x
           SET next_fire_at = nxt,
               last_fire_at = CASE WHEN fire IS NOT NULL AND err IS NULL THEN fire ELSE x.last_fire_at END,
               last_task_id = CASE WHEN err IS NULL AND task_id IS NOT NULL THEN task_id ELSE x.last_task_id END,
               last_run_id  = CASE WHEN err IS NULL AND run_id IS NOT NULL THEN run_id ELSE x.last_run_id END,
               fire_count   = x.fire_count + CASE WHEN fire IS NOT NULL AND err IS NULL THEN 1 ELSE 0 END,
               last_error   = CASE WHEN fire IS NOT NULL THEN err ELSE x.last_error END
         WHERE x.name = s.name;
    END LOOP;
    IF failed > 0 THEN
        RETURN pg_catalog.jsonb_build_object('cron_fired', fired, 'cron_failed', failed);
    END IF;
    RETURN pg_catalog.jsonb_build_object('cron_fired', fired);
END
$$;

-- Is the scheduler background worker serving this database?  SECURITY DEFINER
-- because pg_stat_activity hides backend_type of other users' backends from
-- roles without pg_read_all_stats, such as a plain baton_worker login.
CREATE FUNCTION baton.scheduler_running() RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity AS a
                    WHERE a.backend_type = 'baton scheduler'
                      AND a.datid = (SELECT d.oid FROM pg_catalog.pg_database AS d
                                      WHERE d.datname = pg_catalog.current_database()))
$$;
COMMENT ON FUNCTION baton.scheduler_running() IS
'True when the scheduler background worker (backend_type ''baton scheduler'') runs baton.tick() for this database, so worker daemons can skip their own ticks.';

CREATE VIEW baton.schedules AS
SELECT s.name, s.cron, s.queue, s.workflow, s.payload, s.catch_up,
       s.last_fire_at, s.next_fire_at, s.fire_count, s.last_task_id, s.last_run_id, s.last_error,
       s.created_at, s.updated_at
  FROM baton._schedules AS s;
COMMENT ON VIEW baton.schedules IS
'Cron schedules with the scheduled time they last fired for (last_fire_at), the next one (next_fire_at, UTC), how often they fired and the last failure to fire.';

GRANT EXECUTE ON FUNCTION
    baton.schedule(text, text, text, text, jsonb, boolean, boolean),
    baton.unschedule(text)
  TO baton_admin;
GRANT EXECUTE ON FUNCTION baton.scheduler_running() TO baton_admin, baton_worker;
GRANT EXECUTE ON FUNCTION baton.cron_next(text, timestamptz)
  TO baton_admin, baton_producer, baton_worker;
GRANT SELECT ON baton.schedules TO baton_admin, baton_producer, baton_worker;

-- ---- 80_views.sql ----
-- 80_views.sql — the public, read-only views over the queue core.

CREATE VIEW baton.tasks AS
SELECT t.id, t.queue,
       -- 'scheduled' is an internal detail: to users a delayed task is pending.
       (CASE WHEN t.state = 'scheduled' THEN 'pending' ELSE t.state::text END) AS state,
       t.attempt, t.max_attempts, t.priority, t.payload, t.result, t.error, t.run_at,
       t.created_at, t.started_at, t.finished_at, t.lease_expires_at, t.worker, t.dedup_key,
       t.run_id, t.step, t.map_index, t.subscription_id, t.event_id,
       COALESCE(t.correlation_id, baton._task_correlation(t.id)) AS correlation_id
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

CREATE FUNCTION baton.explain_task(task bigint) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t       baton._tasks;
    q       baton._queues;
    running bigint;
    ahead   bigint;
BEGIN
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
GRANT EXECUTE ON FUNCTION baton.explain_task(bigint) TO baton_admin;

-- ---- 99_grants.sql ----
-- 99_grants.sql — privileges: nothing for PUBLIC, least privilege for the three baton roles.
-- Every API function is SECURITY DEFINER, so the roles need EXECUTE and never table rights.

-- pg_dump keeps the data of the configuration tables (marked where each is
-- created); their identity sequences must come along, or ids restart at 1.
-- (One statement each: every call rewrites the same pg_extension row.)
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('baton._tasks', 'id'), '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('baton._events', 'id'), '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('baton._subscriptions', 'id'), '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('baton._runs', 'id'), '');

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA baton FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA baton FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA baton FROM PUBLIC;

GRANT baton_producer, baton_worker TO baton_admin;

GRANT EXECUTE ON FUNCTION
    baton.enqueue(text, jsonb, timestamptz, integer, integer, text, interval, interval, uuid, interval, interval),
    baton.enqueue_many(text, jsonb, timestamptz, integer, integer, interval, interval, uuid)
  TO baton_producer;

GRANT EXECUTE ON FUNCTION
    baton.claim(text[], text, integer, boolean),
    baton.complete(bigint, integer, jsonb),
    baton.complete_many(bigint[], integer[], jsonb[]),
    baton.fail(bigint, integer, text, boolean, interval),
    baton.fail_many(bigint[], integer[], text[], boolean),
    baton.heartbeat(bigint, integer, interval),
    baton.heartbeat_many(bigint[], integer[], interval),
    baton.release(bigint, integer, text),
    baton.release_many(bigint[], integer[], text),
    baton.register_worker(text, text[], text, integer, text),
    baton.worker_seen(text),
    baton.unregister_worker(text),
    baton.tick()
  TO baton_worker;

GRANT EXECUTE ON FUNCTION
    baton.create_queue(text, integer, integer, interval, interval, interval, integer, interval, interval, boolean),
    baton.alter_queue(text, integer, integer, interval, interval, interval, integer, interval, interval),
    baton.drop_queue(text, boolean),
    baton.pause_queue(text),
    baton.resume_queue(text),
    baton.cancel(bigint),
    baton.retry(bigint),
    baton.purge(text, interval, text[])
  TO baton_admin;

GRANT SELECT ON baton.tasks, baton.queues, baton.queue_stats, baton.workers
  TO baton_admin, baton_producer, baton_worker;
-- The tasks view derives the correlation id of tasks enqueued without one.
GRANT EXECUTE ON FUNCTION baton._task_correlation(bigint) TO baton_admin, baton_producer, baton_worker;
