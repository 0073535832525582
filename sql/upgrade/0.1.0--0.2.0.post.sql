-- baton 0.1.0 -> 0.2.0: state changes that need the new code (run after it; see
-- scripts/upgrade-script.py).  Each as in sql/src.

-- ---- issue 18: wait_run / wait_task wake-ups (sql/src/63_wait.sql) ----
CREATE TRIGGER _runs_wait_ended BEFORE UPDATE OF state ON baton._runs
    FOR EACH ROW WHEN (OLD.state = 'running' AND NEW.state <> 'running')
    EXECUTE FUNCTION baton._wait_ended('run');
CREATE TRIGGER _tasks_wait_ended BEFORE UPDATE OF state ON baton._tasks
    FOR EACH ROW WHEN (OLD.state IN ('scheduled', 'pending', 'running')
                       AND NEW.state IN ('succeeded', 'failed', 'cancelled'))
    EXECUTE FUNCTION baton._wait_ended('task');
CREATE TRIGGER _tasks_wait_deleted BEFORE DELETE ON baton._tasks
    FOR EACH ROW WHEN (OLD.state IN ('scheduled', 'pending', 'running'))
    EXECUTE FUNCTION baton._wait_ended('task');
