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
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- Largest payload a task of the queue may carry and largest result it may
    -- return, in bytes of jsonb (pg_column_size): they bound a worker's memory.
    max_payload_size integer NOT NULL DEFAULT 16777216 CHECK (max_payload_size > 0),
    max_result_size  integer NOT NULL DEFAULT 16777216 CHECK (max_result_size > 0)
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
    correlation_id      uuid,
    -- the last baton.progress() report of a running attempt (0.2.0)
    progress            jsonb
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
