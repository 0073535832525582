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
    baton.create_queue(text, integer, integer, interval, interval, interval, integer, interval, interval, boolean, integer, integer),
    baton.alter_queue(text, integer, integer, interval, interval, interval, integer, interval, interval, integer, integer),
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

-- Waiting for a result: whoever starts runs or enqueues tasks (and a worker
-- whose handler waits for work it started).
GRANT EXECUTE ON FUNCTION baton.wait_run(bigint, interval), baton.wait_task(bigint, interval)
  TO baton_admin, baton_producer, baton_worker;

-- Progress reports come from the worker holding the lease; explaining a run is
-- for operators, like explain_task.
GRANT EXECUTE ON FUNCTION baton.progress(bigint, integer, jsonb) TO baton_admin, baton_worker;
GRANT EXECUTE ON FUNCTION baton.explain_run(bigint) TO baton_admin;
