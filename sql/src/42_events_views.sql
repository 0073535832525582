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

-- The nodes of a causal chain, unordered: events, tasks, and what workflows add.
CREATE FUNCTION baton._ev_trace_nodes(correlation uuid)
RETURNS TABLE (at timestamptz, kind text, id bigint, name text, state text,
               cause_kind text, cause_id bigint, detail jsonb)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT e.published_at, 'event', e.id, e.topic, NULL::text,
           CASE WHEN e.cause_task_id IS NOT NULL THEN 'task' WHEN e.cause_run_id IS NOT NULL THEN 'run' END,
           COALESCE(e.cause_task_id, e.cause_run_id),
           pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('key', e.key, 'payload', e.payload,
                                                                      'cause_step', e.cause_step))
      FROM baton._events AS e WHERE e.correlation_id = correlation
    UNION ALL
    SELECT t.created_at, 'task', t.id, t.queue,
           CASE WHEN t.state = 'scheduled' THEN 'pending' ELSE t.state::text END,
           CASE WHEN t.event_id IS NOT NULL THEN 'event' WHEN t.run_id IS NOT NULL THEN 'run' END,
           COALESCE(t.event_id, t.run_id),
           pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
               'subscription', s.name, 'run_id', t.run_id, 'step', t.step, 'map_index', t.map_index,
               'attempt', t.attempt, 'result', t.result, 'error', t.error, 'finished_at', t.finished_at))
      FROM baton._tasks AS t LEFT JOIN baton._subscriptions AS s ON s.id = t.subscription_id
     WHERE t.correlation_id = correlation
    UNION ALL
    SELECT w.at, w.kind, w.id, w.name, w.state, w.cause_kind, w.cause_id, w.detail
      FROM baton._wf_trace(correlation) AS w
$$;

CREATE FUNCTION baton.trace(correlation uuid)
RETURNS TABLE (at timestamptz, kind text, id bigint, name text, state text,
               cause_kind text, cause_id bigint, detail jsonb)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    -- Within one transaction everything shares a timestamp, so ties are
    -- broken by depth in the causal tree: a cause always comes first.
    WITH RECURSIVE n AS (
        SELECT * FROM baton._ev_trace_nodes(correlation)),
    d (kind, id, depth) AS (
        SELECT n.kind, n.id, 0 FROM n
         WHERE NOT EXISTS (SELECT 1 FROM n AS p WHERE p.kind = n.cause_kind AND p.id = n.cause_id)
        UNION ALL
        SELECT c.kind, c.id, d.depth + 1 FROM d JOIN n AS c ON c.cause_kind = d.kind AND c.cause_id = d.id
         WHERE d.depth < 10000)
    SELECT n.at, n.kind, n.id, n.name, n.state, n.cause_kind, n.cause_id, n.detail
      FROM n JOIN (SELECT d.kind, d.id, pg_catalog.min(d.depth) AS depth FROM d GROUP BY d.kind, d.id) AS dd
        ON dd.kind = n.kind AND dd.id = n.id
     ORDER BY n.at, dd.depth, n.kind, n.id
$$;
COMMENT ON FUNCTION baton.trace(uuid) IS
'The whole causal chain of a correlation id across choreography and orchestration: events, tasks, runs and steps, in time order (a cause before its effects), each with its cause (cause_kind, cause_id) and details.';

-- A Mermaid node label: quotes and angle brackets as entities.
CREATE FUNCTION baton._ev_mermaid_label(t text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(t, '"', '#quot;'), '<', '#lt;'), '>', '#gt;')
$$;

-- A Mermaid node id: the kind (letters, digits, '_') and the id.
CREATE FUNCTION baton._ev_mermaid_id(kind text, id bigint) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.regexp_replace(kind, '[^A-Za-z0-9_]', '_', 'g') || '_' || COALESCE(id::text, 'x')
$$;

CREATE FUNCTION baton.trace_graph(correlation uuid) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    WITH t AS (
        SELECT x.*, pg_catalog.row_number() OVER () AS ord FROM baton.trace(correlation) AS x),
    nodes AS (
        SELECT t.ord, '    ' || baton._ev_mermaid_id(t.kind, t.id)
               || CASE t.kind WHEN 'event' THEN '(["' WHEN 'task' THEN '["' WHEN 'run' THEN '[["' ELSE '("' END
               || baton._ev_mermaid_label(t.kind || ' ' || COALESCE(t.id::text, '') || ': ' || COALESCE(t.name, '')
                                         || COALESCE(' (' || t.state || ')', ''))
               || CASE t.kind WHEN 'event' THEN '"])' WHEN 'task' THEN '"]' WHEN 'run' THEN '"]]' ELSE '")' END
               || CASE WHEN t.state IN ('succeeded', 'failed', 'cancelled', 'running', 'pending')
                       THEN ':::' || t.state ELSE '' END AS line
          FROM t),
    edges AS (
        SELECT t.ord, '    ' || baton._ev_mermaid_id(t.cause_kind, t.cause_id) || ' --> '
               || baton._ev_mermaid_id(t.kind, t.id) AS line
          FROM t WHERE EXISTS (SELECT 1 FROM t AS c WHERE c.kind = t.cause_kind AND c.id = t.cause_id))
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
'The causal chain of a correlation id as a Mermaid flowchart: events (stadium), tasks (box, coloured by state), runs (subroutine), edges cause --> effect.';

GRANT EXECUTE ON FUNCTION baton.retry_dead_letters(text) TO baton_admin;
GRANT EXECUTE ON FUNCTION baton.trace(uuid), baton.trace_graph(uuid)
  TO baton_admin, baton_producer, baton_worker;
GRANT SELECT ON baton.events, baton.subscriptions, baton.subscription_dead_letters
  TO baton_admin, baton_producer, baton_worker;
