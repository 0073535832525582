-- 63_wait.sql — blocking until a run or a task ends: baton.wait_run and baton.wait_task.
--
-- A waiter publishes what it waits for (baton._wait_prepare), reads the row,
-- and sleeps on its latch (baton._wait_sleep) until the row ends.  Triggers on
-- the run and task tables note every end; the transaction that committed it
-- sets the waiters' latches (extension/src/wait.c).  Without
-- shared_preload_libraries the sleep is a growing poll (5 ms to 250 ms).

CREATE FUNCTION baton._wait_prepare(kind text, id bigint) RETURNS void
AS 'MODULE_PATHNAME', 'baton_wait_prepare' LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION baton._wait_prepare(text, bigint) IS
'Publishes that this session waits for a run or task (kind run or task) and resets its latch; call it before reading the row.';

CREATE FUNCTION baton._wait_sleep(max_ms integer) RETURNS boolean
AS 'MODULE_PATHNAME', 'baton_wait_sleep' LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION baton._wait_sleep(integer) IS
'Sleeps until woken by a committed end, an interrupt, or max_ms (capped by the poll interval when not preloaded). Returns true when woken by the latch.';

CREATE FUNCTION baton._wait_done() RETURNS void
AS 'MODULE_PATHNAME', 'baton_wait_done' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION baton._wait_done() IS
'Ends this session''s wait: clears its shared slot.';

CREATE FUNCTION baton._wait_ended() RETURNS trigger
AS 'MODULE_PATHNAME', 'baton_wait_ended' LANGUAGE C;
COMMENT ON FUNCTION baton._wait_ended() IS
'Row trigger: notes a run or task (the trigger argument) that left its live states, so that the commit wakes its waiters.';

CREATE TRIGGER _runs_wait_ended BEFORE UPDATE OF state ON baton._runs
    FOR EACH ROW WHEN (OLD.state = 'running' AND NEW.state <> 'running')
    EXECUTE FUNCTION baton._wait_ended('run');
CREATE TRIGGER _tasks_wait_ended BEFORE UPDATE OF state ON baton._tasks
    FOR EACH ROW WHEN (OLD.state IN ('scheduled', 'pending', 'running')
                       AND NEW.state IN ('succeeded', 'failed', 'cancelled'))
    EXECUTE FUNCTION baton._wait_ended('task');
-- A queue without history deletes a task when it succeeds.
CREATE TRIGGER _tasks_wait_deleted BEFORE DELETE ON baton._tasks
    FOR EACH ROW WHEN (OLD.state IN ('scheduled', 'pending', 'running'))
    EXECUTE FUNCTION baton._wait_ended('task');

-- Checks what every wait needs: a timeout that makes sense and a snapshot per statement.
CREATE FUNCTION baton._wait_check(fn text, field text, id bigint, timeout interval) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF id IS NULL THEN
        RAISE EXCEPTION 'baton.%: % must not be NULL', fn, field
            USING ERRCODE = 'null_value_not_allowed', COLUMN = field;
    END IF;
    IF timeout < interval '0' THEN
        RAISE EXCEPTION 'baton.%: timeout must not be negative (got %)', fn, timeout
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'timeout';
    END IF;
    -- In REPEATABLE READ every read sees the transaction's first snapshot:
    -- an end committed later would never be seen and the wait would not end.
    IF pg_catalog.current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'baton.%: needs READ COMMITTED (this transaction is %)', fn,
                        pg_catalog.current_setting('transaction_isolation')
            USING ERRCODE = 'active_sql_transaction',
                  HINT = 'Wait outside the transaction, or in one at the default isolation level.';
    END IF;
END
$$;
COMMENT ON FUNCTION baton._wait_check(text, text, bigint, interval) IS
'Validates the arguments of wait_run / wait_task and the transaction they run in.';

-- Milliseconds left before the deadline (NULL: none), at most one day per sleep.
CREATE FUNCTION baton._wait_left(deadline timestamptz) RETURNS integer
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN deadline IS NULL THEN 86400000
                ELSE GREATEST(0, LEAST(86400000,
                     pg_catalog.ceil(EXTRACT(epoch FROM deadline - pg_catalog.clock_timestamp()) * 1000)))::integer
           END
$$;
COMMENT ON FUNCTION baton._wait_left(timestamptz) IS
'Milliseconds until a wait deadline (a day when there is none), never negative.';

CREATE FUNCTION baton.wait_run(run bigint, timeout interval DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r record;
    deadline timestamptz := pg_catalog.clock_timestamp() + timeout;
BEGIN
    PERFORM baton._wait_check('wait_run', 'run', run, timeout);
    PERFORM baton._authorize_run('wait_run', run, 'read');
    LOOP
        PERFORM baton._wait_prepare('run', run);
        SELECT x.id, x.workflow, x.state, x.output, x.error, x.finished_at,
               x.xmin::text = pg_catalog.pg_current_xact_id_if_assigned()::text AS mine
          INTO r FROM baton._runs AS x WHERE x.id = wait_run.run;
        IF NOT FOUND THEN
            PERFORM baton._wait_done();
            RAISE EXCEPTION 'baton.wait_run: run % does not exist', run
                USING ERRCODE = 'no_data_found', COLUMN = 'run';
        END IF;
        IF r.state <> 'running' THEN
            PERFORM baton._wait_done();
            RETURN pg_catalog.jsonb_build_object('run', r.id, 'workflow', r.workflow, 'state', r.state,
                                                 'output', r.output, 'error', r.error,
                                                 'finished_at', r.finished_at);
        END IF;
        IF r.mine THEN
            PERFORM baton._wait_done();
            RAISE EXCEPTION 'baton.wait_run: run % was started in this transaction; commit before waiting', run
                USING ERRCODE = 'active_sql_transaction', COLUMN = 'run',
                      DETAIL = 'No worker can see the run before it commits, so it cannot end while this transaction waits.';
        END IF;
        IF pg_catalog.clock_timestamp() >= deadline THEN
            PERFORM baton._wait_done();
            RAISE EXCEPTION 'baton.wait_run: run % has not ended after % (state %)', run, timeout, r.state
                USING ERRCODE = 'object_not_in_prerequisite_state', COLUMN = 'timeout';
        END IF;
        PERFORM baton._wait_sleep(baton._wait_left(deadline));
    END LOOP;
END
$$;
COMMENT ON FUNCTION baton.wait_run(bigint, interval) IS
'Blocks until the run ends and returns {run, workflow, state, output, error, finished_at}. timeout NULL waits for ever; when it passes the call fails with SQLSTATE 55000. Needs READ COMMITTED and a committed run; pg_cancel_backend and statement_timeout end the wait.';

CREATE FUNCTION baton.wait_task(task bigint, timeout interval DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t record;
    seen boolean := false;
    deadline timestamptz := pg_catalog.clock_timestamp() + timeout;
BEGIN
    PERFORM baton._wait_check('wait_task', 'task', task, timeout);
    PERFORM baton._authorize_task('wait_task', task, 'read');
    LOOP
        PERFORM baton._wait_prepare('task', task);
        SELECT x.id, x.queue, x.state, x.attempt, x.result, x.error, x.finished_at,
               x.xmin::text = pg_catalog.pg_current_xact_id_if_assigned()::text AS mine
          INTO t FROM baton._tasks AS x WHERE x.id = wait_task.task;
        IF NOT FOUND THEN
            PERFORM baton._wait_done();
            IF seen THEN
                -- Only a queue without history (retention 0) deletes a live
                -- task, and only when it succeeds.
                RETURN pg_catalog.jsonb_build_object('task', task, 'state', 'succeeded', 'result', NULL,
                                                     'deleted', true);
            END IF;
            RAISE EXCEPTION 'baton.wait_task: task % does not exist', task
                USING ERRCODE = 'no_data_found', COLUMN = 'task';
        END IF;
        seen := true;
        IF t.state IN ('succeeded', 'failed', 'cancelled') THEN
            PERFORM baton._wait_done();
            RETURN pg_catalog.jsonb_build_object('task', t.id, 'queue', t.queue, 'state', t.state,
                                                 'attempt', t.attempt, 'result', t.result, 'error', t.error,
                                                 'finished_at', t.finished_at);
        END IF;
        IF t.mine THEN
            PERFORM baton._wait_done();
            RAISE EXCEPTION 'baton.wait_task: task % was enqueued in this transaction; commit before waiting', task
                USING ERRCODE = 'active_sql_transaction', COLUMN = 'task',
                      DETAIL = 'No worker can see the task before it commits, so it cannot end while this transaction waits.';
        END IF;
        IF pg_catalog.clock_timestamp() >= deadline THEN
            PERFORM baton._wait_done();
            RAISE EXCEPTION 'baton.wait_task: task % has not ended after % (state %)', task, timeout,
                            CASE WHEN t.state = 'scheduled' THEN 'pending' ELSE t.state::text END
                USING ERRCODE = 'object_not_in_prerequisite_state', COLUMN = 'timeout';
        END IF;
        PERFORM baton._wait_sleep(baton._wait_left(deadline));
    END LOOP;
END
$$;
COMMENT ON FUNCTION baton.wait_task(bigint, interval) IS
'Blocks until the task ends and returns {task, queue, state, attempt, result, error, finished_at} ({task, state: succeeded, deleted: true} when a queue without history deleted it). timeout NULL waits for ever; when it passes the call fails with SQLSTATE 55000. Needs READ COMMITTED and a committed task; pg_cancel_backend and statement_timeout end the wait.';
