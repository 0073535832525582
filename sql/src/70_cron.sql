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

-- The dedup/idempotency key of one fire: 'baton:cron:<name>:<scheduled time, UTC>',
-- in the "baton:" namespace that enqueue and start refuse from callers.
CREATE FUNCTION baton._cron_key(name text, fire timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.format('baton:cron:%s:%s', name,
                             pg_catalog.to_char(fire AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
$$;

-- Enqueues a fire with its key and the extension's rights (no caller grants
-- apply to a fire, and the public enqueue refuses "baton:" keys).  A live task
-- holding the key is returned instead, as enqueue does.
CREATE FUNCTION baton._enqueue_keyed(queue_name text, body jsonb, key text) RETURNS bigint
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    q      baton._queues := baton._queue('enqueue', queue_name);
    new_id bigint;
BEGIN
    LOOP
        INSERT INTO baton._tasks AS t (queue, max_attempts, payload, dedup_key)
        VALUES (q.name, q.max_attempts, body, key)
        ON CONFLICT (queue, dedup_key)
            WHERE dedup_key IS NOT NULL AND state IN ('scheduled', 'pending', 'running')
            DO NOTHING
        RETURNING t.id INTO new_id;
        IF new_id IS NOT NULL THEN
            PERFORM baton._wake(q.name);
            RETURN new_id;
        END IF;
        SELECT t.id INTO new_id FROM baton._tasks AS t
         WHERE t.queue = q.name AND t.dedup_key = key
           AND t.state IN ('scheduled', 'pending', 'running');
        IF new_id IS NOT NULL THEN
            RETURN new_id;
        END IF;
    END LOOP;
END
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
    PERFORM baton._check_name('schedule', 'name', schedule.name);
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
                    task_id := baton._enqueue_keyed(s.queue, s.payload, baton._cron_key(s.name, fire));
                ELSE
                    run_id := baton._wf_start(s.workflow, s.payload, baton._cron_key(s.name, fire), NULL,
                                              NULL, NULL, NULL, NULL);
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

CREATE VIEW baton.schedules WITH (security_barrier) AS
SELECT s.name, s.cron, s.queue, s.workflow, s.payload, s.catch_up,
       s.last_fire_at, s.next_fire_at, s.fire_count, s.last_task_id, s.last_run_id, s.last_error,
       s.created_at, s.updated_at
  FROM baton._schedules AS s
 -- a schedule shows (with its payload) to those who may read its target
 WHERE COALESCE(s.queue <> ALL ((SELECT baton._hidden_queues())::text[]), true)
   AND COALESCE(s.workflow <> ALL ((SELECT baton._hidden_workflows())::text[]), true);
COMMENT ON VIEW baton.schedules IS
'Cron schedules with the scheduled time they last fired for (last_fire_at), the next one (next_fire_at, UTC), how often they fired and the last failure to fire.';
