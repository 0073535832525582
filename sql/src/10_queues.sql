-- 10_queues.sql — creating, changing, pausing and dropping queues.

-- Wake-ups travel through these two functions only: every path that makes a
-- task due (enqueue, retry, promotion, fan-out, workflow steps, a freed slot)
-- calls _wake, and every path that ends a running task from outside its worker
-- (cancel, cancel_run, a failed or timed-out run) calls _cancelled.  Workers
-- LISTEN on baton_tasks (payload: the queue) and baton_cancel (payload: task
-- ids, comma-separated).  Keeping them in one place lets the transport change
-- without touching the callers.
--
-- _wake is C (extension/src/wakeup.c): when baton is preloaded and a
-- scheduler worker serves the database, the wake-up is only remembered, handed
-- over at commit (never on rollback) and sent by the scheduler worker, one
-- NOTIFY per queue for all the commits of a round, so producers never take
-- PostgreSQL's notify lock.  Otherwise it is a NOTIFY in the caller's
-- transaction.  Either way listeners hear of the queue only after the commit.
-- No SET search_path: the C code looks up no name, and the clause would cost
-- every enqueue a GUC save and restore (as baton._session_start).
CREATE FUNCTION baton._wake(queue text) RETURNS void
AS 'MODULE_PATHNAME', 'baton_wake' LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION baton._wake(text) IS
'Tells the workers serving a queue that it has due tasks: NOTIFY baton_tasks with the queue, after commit (sent by the scheduler worker when baton is preloaded, else by the transaction itself).';

CREATE FUNCTION baton._wake_many(queues text[]) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM baton._wake(x) FROM pg_catalog.unnest(queues) AS x WHERE x IS NOT NULL;
END
$$;
COMMENT ON FUNCTION baton._wake_many(text[]) IS
'baton._wake for each queue of an array (NULLs ignored).';

CREATE FUNCTION baton._cancelled(ids bigint[]) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    chunk text := '';
    id bigint;
BEGIN
    -- A NOTIFY payload must stay under 8000 bytes: send the ids in chunks.
    FOREACH id IN ARRAY COALESCE(ids, '{}') LOOP
        IF pg_catalog.length(chunk) > 7900 THEN
            PERFORM pg_catalog.pg_notify('baton_cancel', chunk);
            chunk := '';
        END IF;
        chunk := chunk || CASE WHEN chunk = '' THEN '' ELSE ',' END || id::text;
    END LOOP;
    IF chunk <> '' THEN
        PERFORM pg_catalog.pg_notify('baton_cancel', chunk);
    END IF;
END
$$;
COMMENT ON FUNCTION baton._cancelled(bigint[]) IS
'Tells the workers holding these tasks that they were cancelled (NOTIFY baton_cancel with the ids, at commit).';

-- Raises invalid_parameter_value naming the function and the field.
CREATE FUNCTION baton._bad(fn text, field text, msg text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'baton.%: % %', fn, field, msg
        USING ERRCODE = 'invalid_parameter_value', COLUMN = field;
END
$$;

-- Keys (dedup_key, idempotency_key, an event key, a worker id) are stored in
-- btree indexes, whose entries are limited to about 2.7 kB: past this limit
-- they get a clear error naming the field instead of "index row requires ...".
CREATE FUNCTION baton._max_key_bytes() RETURNS integer
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$ SELECT 512 $$;
COMMENT ON FUNCTION baton._max_key_bytes() IS
'The maximum length in bytes of a dedup_key, an idempotency_key, an event key and a worker id (512).';

-- Raises invalid_parameter_value naming the field when a key is longer than _max_key_bytes().  NULL passes.
CREATE FUNCTION baton._check_key(fn text, field text, v text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF pg_catalog.octet_length(v) > baton._max_key_bytes() THEN
        PERFORM baton._bad(fn, field, pg_catalog.format('must be at most %s bytes (got %s)',
                                                        baton._max_key_bytes(), pg_catalog.octet_length(v)));
    END IF;
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

-- Checks the size limits of a queue: positive, at most 1 GiB (what a jsonb value can be).  NULL passes.
CREATE FUNCTION baton._check_size_limits(fn text, max_payload_size integer, max_result_size integer) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF max_payload_size NOT BETWEEN 1 AND 1073741823 THEN
        PERFORM baton._bad(fn, 'max_payload_size',
                           pg_catalog.format('must be between 1 and 1073741823 bytes (got %s)', max_payload_size));
    END IF;
    IF max_result_size NOT BETWEEN 1 AND 1073741823 THEN
        PERFORM baton._bad(fn, 'max_result_size',
                           pg_catalog.format('must be between 1 and 1073741823 bytes (got %s)', max_result_size));
    END IF;
END
$$;
COMMENT ON FUNCTION baton._check_size_limits(text, integer, integer) IS
'Raises 22023 naming fn and the field when a payload or result size limit is out of range.';

CREATE FUNCTION baton.create_queue(queue text,
                                   concurrency integer DEFAULT NULL,
                                   max_attempts integer DEFAULT 5,
                                   lease interval DEFAULT '5 minutes',
                                   backoff_base interval DEFAULT '1 second',
                                   backoff_cap interval DEFAULT '1 hour',
                                   rate_limit integer DEFAULT NULL,
                                   rate_period interval DEFAULT '1 second',
                                   retention interval DEFAULT '7 days',
                                   if_not_exists boolean DEFAULT false,
                                   max_payload_size integer DEFAULT 16777216,
                                   max_result_size integer DEFAULT 16777216)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM baton._check_name('create_queue', 'queue', queue);
    IF max_attempts IS NULL THEN PERFORM baton._bad('create_queue', 'max_attempts', 'must not be NULL'); END IF;
    IF lease IS NULL THEN PERFORM baton._bad('create_queue', 'lease', 'must not be NULL'); END IF;
    IF backoff_base IS NULL THEN PERFORM baton._bad('create_queue', 'backoff_base', 'must not be NULL'); END IF;
    IF backoff_cap IS NULL THEN PERFORM baton._bad('create_queue', 'backoff_cap', 'must not be NULL'); END IF;
    IF rate_period IS NULL THEN PERFORM baton._bad('create_queue', 'rate_period', 'must not be NULL'); END IF;
    IF retention IS NULL THEN PERFORM baton._bad('create_queue', 'retention', 'must not be NULL'); END IF;
    IF max_payload_size IS NULL THEN PERFORM baton._bad('create_queue', 'max_payload_size', 'must not be NULL'); END IF;
    IF max_result_size IS NULL THEN PERFORM baton._bad('create_queue', 'max_result_size', 'must not be NULL'); END IF;
    PERFORM baton._check_queue_options('create_queue', concurrency, max_attempts, lease, backoff_base,
                                       backoff_cap, rate_limit, rate_period, retention);
    PERFORM baton._check_size_limits('create_queue', max_payload_size, max_result_size);
    -- The first queue fixes this database's correlation prefix (see baton._instance).
    INSERT INTO baton._instance (task_corr_prefix)
    SELECT pg_catalog.left(r.hex, 12) || '8' || pg_catalog.substr(r.hex, 14, 3)
      FROM pg_catalog.replace(pg_catalog.gen_random_uuid()::text, '-', '') AS r(hex)
    ON CONFLICT (singleton) DO NOTHING;
    INSERT INTO baton._queues AS q (name, concurrency, max_attempts, lease, backoff_base, backoff_cap,
                                    rate_limit, rate_period, rate_tokens, retention, max_payload_size,
                                    max_result_size)
    VALUES (queue, NULLIF(concurrency, 0), max_attempts, lease, backoff_base, backoff_cap,
            NULLIF(rate_limit, 0), rate_period, COALESCE(NULLIF(rate_limit, 0), 0), retention, max_payload_size,
            max_result_size)
    ON CONFLICT (name) DO NOTHING;
    IF NOT FOUND AND NOT if_not_exists THEN
        RAISE EXCEPTION 'baton.create_queue: queue "%" already exists', queue
            USING ERRCODE = 'duplicate_object', COLUMN = 'queue';
    END IF;
END
$$;
COMMENT ON FUNCTION baton.create_queue(text, integer, integer, interval, interval, interval, integer, interval, interval, boolean, integer, integer) IS
'Creates a queue. concurrency: global limit of running tasks across all workers (NULL = none); max_attempts and lease: defaults for its tasks; backoff_base/backoff_cap: exponential retry delay with jitter; rate_limit tasks per rate_period; retention: how long finished tasks are kept; max_payload_size/max_result_size: largest payload and result in bytes of jsonb (16 MiB by default).';

CREATE FUNCTION baton.alter_queue(queue text,
                                  concurrency integer DEFAULT NULL,
                                  max_attempts integer DEFAULT NULL,
                                  lease interval DEFAULT NULL,
                                  backoff_base interval DEFAULT NULL,
                                  backoff_cap interval DEFAULT NULL,
                                  rate_limit integer DEFAULT NULL,
                                  rate_period interval DEFAULT NULL,
                                  retention interval DEFAULT NULL,
                                  max_payload_size integer DEFAULT NULL,
                                  max_result_size integer DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM baton._authorize_queue('alter_queue', queue, 'manage');
    PERFORM baton._queue('alter_queue', queue);
    PERFORM baton._check_queue_options('alter_queue', concurrency, max_attempts, lease, backoff_base,
                                       backoff_cap, rate_limit, rate_period, retention);
    PERFORM baton._check_size_limits('alter_queue', max_payload_size, max_result_size);
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
        retention    = COALESCE(alter_queue.retention, q.retention),
        max_payload_size = COALESCE(alter_queue.max_payload_size, q.max_payload_size),
        max_result_size  = COALESCE(alter_queue.max_result_size, q.max_result_size)
    WHERE q.name = alter_queue.queue;
    PERFORM baton._wake(queue);
END
$$;
COMMENT ON FUNCTION baton.alter_queue(text, integer, integer, interval, interval, interval, integer, interval, interval, integer, integer) IS
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
    PERFORM baton._authorize_queue('pause_queue', queue, 'manage');
    PERFORM baton._queue('pause_queue', queue);
    UPDATE baton._queues AS q SET paused = true WHERE q.name = pause_queue.queue;
END
$$;
COMMENT ON FUNCTION baton.pause_queue(text) IS
'Stops claims from a queue; enqueues still succeed and running tasks finish.';

CREATE FUNCTION baton.resume_queue(queue text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM baton._authorize_queue('resume_queue', queue, 'manage');
    PERFORM baton._queue('resume_queue', queue);
    UPDATE baton._queues AS q SET paused = false WHERE q.name = resume_queue.queue;
    PERFORM baton._wake(queue);
END
$$;
COMMENT ON FUNCTION baton.resume_queue(text) IS 'Lets workers claim from a paused queue again.';
