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

GRANT USAGE ON SCHEMA baton TO baton_admin, baton_producer, baton_worker;
GRANT baton_producer, baton_worker TO baton_admin;

-- What a role may call.  Which objects it may use them on is decided inside
-- each function by the grants of 15_privileges.sql (docs/security.md): where a
-- function is open to more roles than in 0.1.0 (cancel, retry, purge, pause,
-- ...), an object without grants still needs baton_admin.

-- producers: put work in
GRANT EXECUTE ON FUNCTION
    baton.enqueue(text, jsonb, timestamptz, integer, integer, text, interval, interval, uuid, interval, interval),
    baton.enqueue_many(text, jsonb, timestamptz, integer, integer, interval, interval, uuid),
    baton.publish(text, jsonb, text, uuid),
    baton.start(text, jsonb, text, uuid)
  TO baton_producer;

-- workers: take work out and report it
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
    baton.check_worker_access(text[]),
    baton.tick(),
    baton.scheduler_running()
  TO baton_worker;

-- per-object management and reading: any baton role, checked against the grants
GRANT EXECUTE ON FUNCTION
    baton.alter_queue(text, integer, integer, interval, interval, interval, integer, interval, interval, integer, integer),
    baton.pause_queue(text),
    baton.resume_queue(text),
    baton.cancel(bigint),
    baton.retry(bigint),
    baton.purge(text, interval, text[]),
    baton.define_workflow(text, jsonb),
    baton.cancel_run(bigint),
    baton.explain_task(bigint),
    baton.run_status(bigint),
    baton.graph(text),
    baton.graph(bigint),
    baton.trace(uuid),
    baton.trace_graph(uuid),
    baton.cron_next(text, timestamptz)
  TO baton_admin, baton_producer, baton_worker;

-- administration
GRANT EXECUTE ON FUNCTION
    baton.create_queue(text, integer, integer, interval, interval, interval, integer, interval, interval, boolean, integer, integer),
    baton.drop_queue(text, boolean),
    baton.subscribe(text, text, text, text, text, text, text, integer, integer, boolean),
    baton.unsubscribe(text, boolean),
    baton.pause_subscription(text),
    baton.resume_subscription(text),
    baton.replay(text, timestamptz, timestamptz),
    baton.retry_dead_letters(text),
    baton.set_event_retention(interval),
    baton.set_run_retention(interval),
    baton.schedule(text, text, text, text, jsonb, boolean, boolean),
    baton.unschedule(text),
    baton.grant_queue(text, name, text),
    baton.revoke_queue(text, name, text),
    baton.grant_topic(text, name, text),
    baton.revoke_topic(text, name, text),
    baton.grant_workflow(text, name, text),
    baton.revoke_workflow(text, name, text)
  TO baton_admin;

-- The views filter their rows by the reader's grants.
GRANT SELECT ON baton.tasks, baton.queues, baton.queue_stats, baton.workers,
                baton.events, baton.subscriptions, baton.subscription_dead_letters,
                baton.runs, baton.run_steps, baton.schedules, baton.grants, baton.workflows,
                baton.subscription_filter_errors
  TO baton_admin, baton_producer, baton_worker;
-- Functions the views call for their readers (SECURITY DEFINER, reveal no row):
-- derived correlation ids, what the reader may not see, the liveness window.
GRANT EXECUTE ON FUNCTION
    baton._task_correlation(bigint),
    baton._hidden_queues(),
    baton._hidden_workflows(),
    baton._topics_filtered(),
    baton._topic_hidden(text),
    baton._grant_visible(name),
    baton._worker_timeout()
  TO baton_admin, baton_producer, baton_worker;

-- Waiting for a result and explaining a run: every baton role; the functions
-- check read on the task's queue or the run's workflow.
GRANT EXECUTE ON FUNCTION baton.wait_run(bigint, interval), baton.wait_task(bigint, interval),
                          baton.explain_run(bigint)
  TO baton_admin, baton_producer, baton_worker;
-- Progress reports come from the worker holding the lease (work on its queue).
GRANT EXECUTE ON FUNCTION baton.progress(bigint, integer, jsonb) TO baton_admin, baton_worker;
