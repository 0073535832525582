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
    PERFORM baton._check_key(fn, 'dedup_key', dedup_key);
    IF timeout IS NOT NULL THEN PERFORM baton._check_interval(fn, 'timeout', timeout, false); END IF;
    IF backoff_base IS NOT NULL THEN PERFORM baton._check_interval(fn, 'backoff_base', backoff_base, true); END IF;
    IF backoff_cap IS NOT NULL THEN PERFORM baton._check_interval(fn, 'backoff_cap', backoff_cap, true); END IF;
END
$$;

-- Refuses a payload larger than its queue allows (bytes of jsonb, as stored).
CREATE FUNCTION baton._check_payload_size(fn text, field text, q baton._queues, payload jsonb) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    size integer := pg_catalog.pg_column_size(payload);
BEGIN
    IF size > q.max_payload_size THEN
        PERFORM baton._bad(fn, field, pg_catalog.format('is %s bytes, more than max_payload_size of queue "%s" (%s bytes)',
                                                        size, q.name, q.max_payload_size));
    END IF;
END
$$;
COMMENT ON FUNCTION baton._check_payload_size(text, text, baton._queues, jsonb) IS
'Raises 22023 naming fn and field when a payload is larger than its queue''s max_payload_size.';

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
    IF EXISTS (SELECT 1 FROM baton._grants AS g WHERE g.kind = 'queue') THEN PERFORM baton._authorize_queue('enqueue', enqueue.queue, 'enqueue'); END IF;
    PERFORM baton._check_user_key('enqueue', 'dedup_key', enqueue.dedup_key);
    IF enqueue.payload IS NULL THEN
        PERFORM baton._bad('enqueue', 'payload', 'must not be NULL (use ''{}'' for no payload)');
    END IF;
    PERFORM baton._check_task_options('enqueue', enqueue.run_at, enqueue.delay, enqueue.max_attempts,
                                      enqueue.dedup_key, enqueue.timeout, enqueue.backoff_base,
                                      enqueue.backoff_cap, enqueue.priority);
    q := baton._queue('enqueue', enqueue.queue);
    PERFORM baton._check_payload_size('enqueue', 'payload', q, enqueue.payload);
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
                PERFORM baton._wake(q.name);
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
    big record;
BEGIN
    IF EXISTS (SELECT 1 FROM baton._grants AS g WHERE g.kind = 'queue') THEN PERFORM baton._authorize_queue('enqueue_many', enqueue_many.queue, 'enqueue'); END IF;
    IF jsonb_typeof(enqueue_many.payloads) IS DISTINCT FROM 'array' THEN
        PERFORM baton._bad('enqueue_many', 'payloads',
                           pg_catalog.format('must be a JSON array (got %s)',
                                             COALESCE(pg_catalog.jsonb_typeof(enqueue_many.payloads), 'NULL')));
    END IF;
    PERFORM baton._check_task_options('enqueue_many', enqueue_many.run_at, enqueue_many.delay,
                                      enqueue_many.max_attempts, NULL, enqueue_many.timeout, NULL, NULL,
                                      enqueue_many.priority);
    q := baton._queue('enqueue_many', enqueue_many.queue);
    -- No element is larger than the whole array: look at elements only when it is.
    IF pg_catalog.pg_column_size(enqueue_many.payloads) > q.max_payload_size THEN
        SELECT e.n, e.p INTO big
          FROM pg_catalog.jsonb_array_elements(enqueue_many.payloads) WITH ORDINALITY AS e(p, n)
         WHERE pg_catalog.pg_column_size(e.p) > q.max_payload_size
         ORDER BY e.n LIMIT 1;
        IF FOUND THEN
            PERFORM baton._check_payload_size('enqueue_many', pg_catalog.format('payloads[%s]', big.n - 1), q, big.p);
        END IF;
    END IF;
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
        PERFORM baton._wake(q.name);
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
        PERFORM baton._wake_many(touched);
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
               run_id bigint, step text, correlation_id uuid, max_attempts integer, timeout interval)
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
              t.max_attempts, t.priority, t.run_at, t.timeout)
    SELECT c.id, c.queue, c.payload, c.attempt, c.lease_expires_at, c.run_id, c.step, c.correlation_id, c.max_attempts,
           c.timeout
      FROM claimed AS c
     ORDER BY c.priority DESC, c.run_at, c.id;
END
$$;

CREATE FUNCTION baton.claim(queues text[], worker text, batch integer DEFAULT 1,
                            session_bound boolean DEFAULT true)
RETURNS TABLE (id bigint, queue text, payload jsonb, attempt integer, lease_expires_at timestamptz,
               run_id bigint, step text, correlation_id uuid, max_attempts integer, timeout interval)
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
    IF EXISTS (SELECT 1 FROM baton._grants AS g WHERE g.kind = 'queue') THEN PERFORM baton._authorize_queues('claim', queues, 'work'); END IF;
    IF queues IS NULL OR pg_catalog.cardinality(queues) = 0 THEN
        PERFORM baton._bad('claim', 'queues', 'must name at least one queue');
    END IF;
    IF worker IS NULL OR worker = '' THEN
        PERFORM baton._bad('claim', 'worker', 'must not be empty');
    END IF;
    PERFORM baton._check_key('claim', 'worker', worker);
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
'Leases up to batch due tasks from the queues (priority, then due time) to a worker. (id, attempt) is the lease token for complete/fail/heartbeat; timeout is the task''s execution deadline (NULL = the worker''s own). session_bound ties the lease to this database session so a dead worker''s tasks are rescued at the next tick; pass false behind transaction pooling.';

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

-- Locks the run of a task (and its ancestors) before the task is locked: the
-- locking order of 61_workflow_runs.sql.  False when the task does not exist
-- or belongs to no run.  The run id of a task never changes, so reading it
-- without a lock is safe.
CREATE FUNCTION baton._lock_task_run(task bigint) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rid bigint;
BEGIN
    SELECT x.run_id INTO rid FROM baton._tasks AS x WHERE x.id = task;
    IF rid IS NULL THEN
        RETURN false;
    END IF;
    PERFORM baton._wf_lock_runs(ARRAY[rid]);
    RETURN true;
END
$$;

-- Is an error transient (retrying the same statement later may succeed):
-- connection, transaction rollback (deadlock, serialization), resources,
-- object state (lock not available), operator intervention, system errors.
CREATE FUNCTION baton._transient_error(sqlstate text) RETURNS boolean
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.left(sqlstate, 2) IN ('08', '40', '53', '55', '57', '58', 'XX')
$$;
COMMENT ON FUNCTION baton._transient_error(text) IS
'True for SQLSTATE classes that a later retry may not meet again (08, 40, 53, 55, 57, 58, XX).';

-- A succeeded task whose consequences (workflow step, emits, tokens) raised
-- a permanent error: the handler did its work, so running it again would
-- repeat it.  The task fails instead, without retry, with the error, and its
-- failure goes through the hooks (a step fails its run, which compensates).
CREATE FUNCTION baton._completion_failed(task baton._tasks, sqlstate text, message text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t baton._tasks;
BEGIN
    UPDATE baton._tasks AS x
       SET state = 'failed', finished_at = pg_catalog.now(), lease_expires_at = NULL,
           error = pg_catalog.format('the completion could not be applied (SQLSTATE %s): %s', sqlstate, message)
     WHERE x.id = task.id
    RETURNING x.* INTO t;
    IF baton._needs_hook(t) THEN
        PERFORM baton._on_task_end(t);
    END IF;
END
$$;
COMMENT ON FUNCTION baton._completion_failed(baton._tasks, text, text) IS
'Turns a completion whose workflow or event consequences raised a permanent error into a failure of the task (no retry: the handler already ran).';

-- Runs the end hooks of succeeded tasks (in the given order); a task whose
-- hooks raise a permanent error fails instead (_completion_failed).  One
-- subtransaction for the batch; one per task only when the batch raised.
CREATE FUNCTION baton._on_tasks_succeeded(ids bigint[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t baton._tasks;
BEGIN
    BEGIN
        FOR t IN SELECT x.* FROM pg_catalog.unnest(ids) WITH ORDINALITY AS u(i, n)
                   JOIN baton._tasks AS x ON x.id = u.i ORDER BY u.n LOOP
            PERFORM baton._on_task_end(t);
        END LOOP;
        RETURN;
    EXCEPTION WHEN OTHERS THEN
        IF baton._transient_error(SQLSTATE) THEN
            RAISE;
        END IF;
    END;
    FOR t IN SELECT x.* FROM pg_catalog.unnest(ids) WITH ORDINALITY AS u(i, n)
               JOIN baton._tasks AS x ON x.id = u.i ORDER BY u.n LOOP
        BEGIN
            PERFORM baton._on_task_end(t);
        EXCEPTION WHEN OTHERS THEN
            IF baton._transient_error(SQLSTATE) THEN
                RAISE;
            END IF;
            PERFORM baton._completion_failed(t, SQLSTATE, SQLERRM);
        END;
    END LOOP;
END
$$;

-- A running task of a queue with a concurrency limit ended (or was retried):
-- its slot is free, so the workers serving the queue may claim again now
-- rather than at their next poll.  Unlimited queues need no wake-up: their
-- workers claim again when their own slot frees.
CREATE FUNCTION baton._wake_freed(queues text[]) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF queues IS NULL OR pg_catalog.cardinality(queues) = 0 THEN
        RETURN;
    END IF;
    PERFORM baton._wake_many(ARRAY(SELECT q.name FROM baton._queues AS q
                                    WHERE q.name = ANY (queues) AND q.concurrency IS NOT NULL));
END
$$;
COMMENT ON FUNCTION baton._wake_freed(text[]) IS
'Wakes the workers of those queues that have a concurrency limit: a running task of theirs ended, its slot is free.';

-- Refuses a result larger than its task's queue allows (bytes of jsonb).  The
-- usual batch costs one pass over its results and one look at the smallest
-- limit; the tasks are looked up only when a result is larger than that.
CREATE FUNCTION baton._check_result_sizes(fn text, ids bigint[], results jsonb[]) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    biggest integer;
    big     record;
BEGIN
    SELECT pg_catalog.max(pg_catalog.pg_column_size(r)) INTO biggest FROM pg_catalog.unnest(results) AS r;
    IF biggest IS NULL OR biggest <= (SELECT pg_catalog.min(q.max_result_size) FROM baton._queues AS q) THEN
        RETURN;
    END IF;
    SELECT u.i, pg_catalog.pg_column_size(u.r) AS size, q.name, q.max_result_size INTO big
      FROM ROWS FROM (pg_catalog.unnest(ids), pg_catalog.unnest(results)) AS u(i, r)
      JOIN baton._tasks AS x ON x.id = u.i
      JOIN baton._queues AS q ON q.name = x.queue
     WHERE pg_catalog.pg_column_size(u.r) > q.max_result_size
     LIMIT 1;
    IF FOUND THEN
        PERFORM baton._bad(fn, 'result', pg_catalog.format('of task %s is %s bytes, more than max_result_size of queue "%s" (%s bytes)',
                                                           big.i, big.size, big.name, big.max_result_size));
    END IF;
END
$$;
COMMENT ON FUNCTION baton._check_result_sizes(text, bigint[], jsonb[]) IS
'Raises 22023 naming fn and the result when a task''s result is larger than its queue''s max_result_size.';

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
    gone_queue text;
BEGIN
    IF EXISTS (SELECT 1 FROM baton._grants AS g WHERE g.kind = 'queue') THEN PERFORM baton._authorize_task('complete', complete.id, 'work'); END IF;
    PERFORM baton._check_result_sizes('complete', ARRAY[complete.id], ARRAY[complete.result]);
    -- A queue without history (retention 0): see complete_many.  Looked for
    -- only when one exists, so other completions find their task once.
    IF EXISTS (SELECT 1 FROM baton._queues AS q WHERE q.retention = interval '0') THEN
        DELETE FROM baton._tasks AS x USING baton._queues AS q
         WHERE x.id = complete.id AND x.attempt = complete.attempt AND x.state = 'running'
           AND q.name = x.queue AND q.retention = interval '0'
           AND x.run_id IS NULL AND x.subscription_id IS NULL
           AND NOT COALESCE(pg_catalog.jsonb_typeof(complete.result) = 'object' AND complete.result ? 'emit', false)
        RETURNING x.queue INTO gone_queue;
        IF FOUND THEN
            PERFORM baton._wake_freed(ARRAY[gone_queue]);
            RETURN true;
        END IF;
    END IF;
    UPDATE baton._tasks AS x
       SET state = 'succeeded', result = complete.result, finished_at = pg_catalog.now(),
           lease_expires_at = NULL
     WHERE x.id = complete.id AND x.attempt = complete.attempt AND x.state = 'running' AND x.run_id IS NULL
    RETURNING x.* INTO t;
    IF NOT FOUND THEN
        -- A task of a run: its run first (the locking order of 61_workflow_runs.sql).
        IF NOT baton._lock_task_run(complete.id) THEN
            RETURN false;
        END IF;
        UPDATE baton._tasks AS x
           SET state = 'succeeded', result = complete.result, finished_at = pg_catalog.now(),
               lease_expires_at = NULL
         WHERE x.id = complete.id AND x.attempt = complete.attempt AND x.state = 'running'
        RETURNING x.* INTO t;
        IF NOT FOUND THEN
            RETURN false;
        END IF;
    END IF;
    PERFORM baton._wake_freed(ARRAY[t.queue]);
    IF baton._needs_hook(t) THEN
        PERFORM baton._on_tasks_succeeded(ARRAY[t.id]);
    END IF;
    RETURN true;
END
$$;
COMMENT ON FUNCTION baton.complete(bigint, integer, jsonb) IS
'Marks a running task succeeded with its result (on a queue with retention 0 the task is deleted instead, unless a workflow, a subscription or an emit needs it). Returns false, changing nothing, when (id, attempt) no longer holds the lease. When what the result sets off cannot be applied (a malformed emit, a workflow predicate or template that raises), the task fails without retry with that error, and the call still returns true: the handler is not run again.';

CREATE FUNCTION baton.complete_many(ids bigint[], attempts integer[], results jsonb[] DEFAULT NULL)
RETURNS SETOF bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t        baton._tasks;
    accepted bigint[];
    hooked   bigint[];
    nohist   text[];
    dropped  bigint[];
    limited  text[];
    freed    text[];
    freed2   text[];
BEGIN
    IF EXISTS (SELECT 1 FROM baton._grants AS g WHERE g.kind = 'queue') THEN PERFORM baton._authorize_tasks('complete_many', ids, 'work'); END IF;
    IF pg_catalog.cardinality(ids) IS DISTINCT FROM pg_catalog.cardinality(attempts) THEN
        PERFORM baton._bad('complete_many', 'attempts', 'must have as many elements as ids');
    END IF;
    IF results IS NOT NULL AND pg_catalog.cardinality(results) <> pg_catalog.cardinality(ids) THEN
        PERFORM baton._bad('complete_many', 'results', 'must have as many elements as ids');
    END IF;
    PERFORM baton._check_result_sizes('complete_many', ids, results);
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
    -- Queues with a concurrency limit: a finished task frees a slot (_wake_freed).
    limited := ARRAY(SELECT q.name FROM baton._queues AS q WHERE q.concurrency IS NOT NULL);
    IF pg_catalog.cardinality(nohist) > 0 THEN
        WITH gone AS (
            DELETE FROM baton._tasks AS x
             USING ROWS FROM (pg_catalog.unnest(ids), pg_catalog.unnest(attempts), pg_catalog.unnest(results))
                       AS u(i, a, r)
             WHERE x.id = u.i AND x.attempt = u.a AND x.state::text = 'running'
               AND x.queue = ANY (nohist) AND x.run_id IS NULL AND x.subscription_id IS NULL
               AND NOT COALESCE(pg_catalog.jsonb_typeof(u.r) = 'object' AND u.r ? 'emit', false)
            RETURNING x.id, x.queue)
        SELECT pg_catalog.array_agg(g.id), pg_catalog.array_agg(DISTINCT g.queue) FILTER (WHERE g.queue = ANY (limited))
          INTO dropped, freed
          FROM gone AS g;
    END IF;
    IF pg_catalog.cardinality(dropped) IS NOT DISTINCT FROM pg_catalog.cardinality(ids) THEN
        -- Every task went: nothing is left to update.
        PERFORM baton._wake_many(freed);
        RETURN QUERY SELECT pg_catalog.unnest(dropped);
        RETURN;
    END IF;
    -- One set-based update; the hook test is inlined (it is what _needs_hook
    -- says) because a function call per row costs more than the update.
    -- Tasks of runs are left for the second pass below, which locks their
    -- runs first (the locking order of 61_workflow_runs.sql).
    WITH done AS (
        UPDATE baton._tasks AS x
           SET state = 'succeeded', result = u.r, finished_at = pg_catalog.now(), lease_expires_at = NULL
          FROM ROWS FROM (pg_catalog.unnest(ids), pg_catalog.unnest(attempts), pg_catalog.unnest(results)) AS u(i, a, r)
         WHERE x.id = u.i AND x.attempt = u.a AND x.state::text = 'running' AND x.run_id IS NULL
        RETURNING x.id, x.subscription_id, x.result, x.queue)
    SELECT pg_catalog.array_agg(d.id),
           pg_catalog.array_agg(d.id) FILTER (WHERE d.subscription_id IS NOT NULL
                                              OR (pg_catalog.jsonb_typeof(d.result) = 'object' AND d.result ? 'emit')),
           pg_catalog.array_agg(DISTINCT d.queue) FILTER (WHERE d.queue = ANY (limited))
      INTO accepted, hooked, freed2
      FROM done AS d;
    IF COALESCE(pg_catalog.cardinality(dropped), 0) + COALESCE(pg_catalog.cardinality(accepted), 0)
       < pg_catalog.cardinality(ids) THEN
        -- The rest: tasks of runs (and stale reports, which change nothing).
        PERFORM baton._wf_lock_runs(ARRAY(
            SELECT DISTINCT x.run_id FROM baton._tasks AS x
             WHERE x.id = ANY (ids) AND x.run_id IS NOT NULL AND x.state::text = 'running'));
        WITH done AS (
            UPDATE baton._tasks AS x
               SET state = 'succeeded', result = u.r, finished_at = pg_catalog.now(), lease_expires_at = NULL
              FROM ROWS FROM (pg_catalog.unnest(ids), pg_catalog.unnest(attempts), pg_catalog.unnest(results))
                       AS u(i, a, r)
             WHERE x.id = u.i AND x.attempt = u.a AND x.state::text = 'running' AND x.run_id IS NOT NULL
            RETURNING x.id, x.queue)
        SELECT COALESCE(accepted, '{}') || pg_catalog.array_agg(d.id),
               COALESCE(hooked, '{}') || pg_catalog.array_agg(d.id),
               COALESCE(freed2, '{}') || pg_catalog.array_agg(DISTINCT d.queue) FILTER (WHERE d.queue = ANY (limited))
          INTO accepted, hooked, freed2
          FROM done AS d;
    END IF;
    -- Slots freed in concurrency-limited queues: their workers may claim again now.
    PERFORM baton._wake_many(freed || freed2);
    -- Hooks run in run order, so two batches touching the same runs lock
    -- them in the same order and cannot deadlock.
    IF hooked IS NOT NULL THEN
        PERFORM baton._on_tasks_succeeded(ARRAY(SELECT x.id FROM baton._tasks AS x WHERE x.id = ANY (hooked)
                                                 ORDER BY x.run_id NULLS FIRST, x.id));
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
    IF EXISTS (SELECT 1 FROM baton._grants AS g WHERE g.kind = 'queue') THEN PERFORM baton._authorize_task('fail', fail.id, 'work'); END IF;
    IF retry_in < interval '0' THEN
        PERFORM baton._bad('fail', 'retry_in', pg_catalog.format('must not be negative (got %s)', retry_in));
    END IF;
    -- A task of a run: its run first (the locking order of 61_workflow_runs.sql).
    PERFORM baton._lock_task_run(fail.id);
    SELECT * INTO t FROM baton._tasks AS x
     WHERE x.id = fail.id AND x.attempt = fail.attempt AND x.state = 'running'
       FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM baton._wake_freed(ARRAY[t.queue]);
    IF COALESCE(retry, true) AND t.attempt < t.max_attempts THEN
        SELECT * INTO q FROM baton._queues AS x WHERE x.name = t.queue;
        delay := COALESCE(retry_in, baton._backoff(t.attempt, COALESCE(t.backoff_base, q.backoff_base),
                                                   COALESCE(t.backoff_cap, q.backoff_cap)));
        UPDATE baton._tasks AS x
           SET state = CASE WHEN delay > interval '0' THEN 'scheduled' ELSE 'pending' END::baton.task_state,
               run_at = pg_catalog.now() + delay, error = fail.error, lease_expires_at = NULL
         WHERE x.id = t.id;
        IF delay <= interval '0' THEN
            PERFORM baton._wake(t.queue);
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
    IF EXISTS (SELECT 1 FROM baton._grants AS g WHERE g.kind = 'queue') THEN PERFORM baton._authorize_tasks('fail_many', ids, 'work'); END IF;
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
    IF EXISTS (SELECT 1 FROM baton._grants AS g WHERE g.kind = 'queue') THEN PERFORM baton._authorize_task('heartbeat', heartbeat.id, 'work'); END IF;
    IF extend <= interval '0' THEN
        PERFORM baton._bad('heartbeat', 'extend', pg_catalog.format('must be positive (got %s)', extend));
    END IF;
    UPDATE baton._tasks AS x
       SET lease_expires_at = pg_catalog.now() + COALESCE(LEAST(heartbeat.extend, GREATEST(x.timeout, q.lease)), x.timeout, q.lease)
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
    IF EXISTS (SELECT 1 FROM baton._grants AS g WHERE g.kind = 'queue') THEN PERFORM baton._authorize_tasks('heartbeat_many', ids, 'work'); END IF;
    IF pg_catalog.cardinality(ids) IS DISTINCT FROM pg_catalog.cardinality(attempts) THEN
        PERFORM baton._bad('heartbeat_many', 'attempts', 'must have as many elements as ids');
    END IF;
    IF extend <= interval '0' THEN
        PERFORM baton._bad('heartbeat_many', 'extend', pg_catalog.format('must be positive (got %s)', extend));
    END IF;
    RETURN QUERY
    UPDATE baton._tasks AS x
       SET lease_expires_at = pg_catalog.now() + COALESCE(LEAST(heartbeat_many.extend, GREATEST(x.timeout, q.lease)), x.timeout, q.lease)
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
    IF EXISTS (SELECT 1 FROM baton._grants AS g WHERE g.kind = 'queue') THEN PERFORM baton._authorize_task('release', release.id, 'work'); END IF;
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
    PERFORM baton._wake(q);
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
    IF EXISTS (SELECT 1 FROM baton._grants AS g WHERE g.kind = 'queue') THEN PERFORM baton._authorize_tasks('release_many', ids, 'work'); END IF;
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
    PERFORM baton._authorize_task('cancel', task, 'manage');
    PERFORM baton._lock_task_run(task);
    t := baton._task('cancel', task);
    IF t.state NOT IN ('scheduled', 'pending', 'running') THEN
        RETURN false;
    END IF;
    IF t.state = 'running' THEN
        PERFORM baton._cancelled(ARRAY[t.id]);
        PERFORM baton._wake_freed(ARRAY[t.queue]);
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
'Cancels a live task. A running attempt is told at once (NOTIFY baton_cancel; its heartbeat and completion return false). Returns false when the task had already ended.';

CREATE FUNCTION baton.retry(task bigint) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t baton._tasks;
    budget integer;
BEGIN
    PERFORM baton._authorize_task('retry', task, 'manage');
    PERFORM baton._lock_task_run(task);
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
    PERFORM baton._wake(t.queue);
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
    PERFORM baton._authorize_queue('purge', COALESCE(queue, '*'), 'manage');
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
    PERFORM baton._authorize_queues('register_worker', queues, 'work');
    IF worker IS NULL OR worker = '' THEN
        PERFORM baton._bad('register_worker', 'worker', 'must not be empty');
    END IF;
    PERFORM baton._check_key('register_worker', 'worker', worker);
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
