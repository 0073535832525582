-- 42_events_views.sql — choreography made visible: the event and subscription views, dead letters, trace.

CREATE VIEW baton.events WITH (security_barrier) AS
SELECT e.id, e.topic, e.key, e.payload, e.correlation_id, e.cause_task_id, e.cause_run_id, e.cause_step,
       e.published_at
  FROM baton._events AS e
 -- topics matched by a topic grant the reader lacks read on (nothing without grants)
 WHERE NOT (SELECT baton._topics_filtered()) OR NOT baton._topic_hidden(e.topic);
COMMENT ON VIEW baton.events IS 'The event log (append-only; old events leave by retention, see baton.set_event_retention).';

-- Counts come from the tasks (queue targets) or the runs (workflow targets)
-- still kept: finished tasks leave with their queue's retention.
CREATE VIEW baton.subscriptions WITH (security_barrier) AS
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
          FROM baton._ev_runs AS r WHERE r.subscription_id = s.id) AS rc
 -- a subscription (with its delivery counts) shows to those who may read its target
 WHERE COALESCE(s.queue <> ALL ((SELECT baton._hidden_queues())::text[]), true)
   AND COALESCE(s.workflow <> ALL ((SELECT baton._hidden_workflows())::text[]), true);
COMMENT ON VIEW baton.subscriptions IS 'Subscriptions: topic pattern, target (queue or workflow), filter, tokens, and counts of deliveries (tasks or runs still kept): delivered, live, succeeded, failed (dead letters), cancelled.';

CREATE VIEW baton.subscription_dead_letters WITH (security_barrier) AS
SELECT s.name AS subscription, t.id AS task_id, t.queue, t.event_id, t.payload ->> 'topic' AS topic,
       t.payload ->> 'key' AS key, t.attempt AS attempts, t.error, t.finished_at, t.correlation_id
  FROM baton._tasks AS t JOIN baton._subscriptions AS s ON s.id = t.subscription_id
 WHERE t.state = 'failed' AND t.queue <> ALL ((SELECT baton._hidden_queues())::text[]);
COMMENT ON VIEW baton.subscription_dead_letters IS
'Tasks of queue subscriptions that spent their attempts; retry them with baton.retry_dead_letters(subscription) or baton.retry(task).';

CREATE VIEW baton.subscription_filter_errors WITH (security_barrier) AS
SELECT s.name AS subscription, f.event_id, e.topic, e.key, f.sqlstate, f.error, f.at
  FROM baton._ev_filter_errors AS f
  JOIN baton._subscriptions AS s ON s.id = f.subscription_id
  LEFT JOIN baton._events AS e ON e.id = f.event_id
 -- as baton.subscriptions (its target) and baton.events (its topic) filter them
 WHERE COALESCE(s.queue <> ALL ((SELECT baton._hidden_queues())::text[]), true)
   AND COALESCE(s.workflow <> ALL ((SELECT baton._hidden_workflows())::text[]), true)
   AND (NOT (SELECT baton._topics_filtered()) OR e.topic IS NULL OR NOT baton._topic_hidden(e.topic));
COMMENT ON VIEW baton.subscription_filter_errors IS
'Events whose subscription filter raised an error at publish time: the event was treated as not matching that subscription (the publisher did not fail). Kept as long as events (baton.set_event_retention).';

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

-- The chain as the invoker may see it: every node stays (so the links hold),
-- but one of a queue, topic or workflow it may not read shows only its kind,
-- id and cause, with state 'hidden' and detail {"hidden": true}.
CREATE FUNCTION baton._ev_trace_visible(correlation uuid)
RETURNS TABLE (at timestamptz, kind text, id bigint, name text, state text, cause_kind text, cause_id bigint,
               detail jsonb, node_key text, parent_key text, ord bigint)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT r.at, r.kind, r.id,
           CASE WHEN h.hidden THEN NULL ELSE r.name END,
           CASE WHEN h.hidden THEN 'hidden' ELSE r.state END,
           r.cause_kind, r.cause_id,
           CASE WHEN h.hidden THEN '{"hidden": true}'::jsonb ELSE r.detail END,
           r.node_key, r.parent_key, r.ord
      FROM baton._ev_trace_rows(correlation) AS r,
           (SELECT baton._hidden_queues() AS q, baton._hidden_workflows() AS w,
                   baton._topics_filtered() AS t) AS v,
           LATERAL (SELECT CASE r.kind
                        WHEN 'task' THEN r.name = ANY (v.q)
                        WHEN 'event' THEN v.t AND baton._topic_hidden(r.name)
                        WHEN 'run' THEN r.name = ANY (v.w)
                        WHEN 'step' THEN COALESCE((SELECT x.workflow FROM baton._runs AS x WHERE x.id = r.id) = ANY (v.w), true)
                        ELSE true END AS hidden) AS h
$$;

CREATE FUNCTION baton.trace(correlation uuid)
RETURNS TABLE (at timestamptz, kind text, id bigint, name text, state text,
               cause_kind text, cause_id bigint, detail jsonb)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT r.at, r.kind, r.id, r.name, r.state, r.cause_kind, r.cause_id, r.detail
      FROM baton._ev_trace_visible(correlation) AS r
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
          FROM baton._ev_trace_visible(correlation) AS x),
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
