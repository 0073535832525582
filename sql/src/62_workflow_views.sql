-- 62_workflow_views.sql — orchestration, part 3: seeing runs (views, run_status, Mermaid graphs, trace) and grants.

CREATE VIEW baton.runs WITH (security_barrier) AS
SELECT r.id, r.workflow, r.version, r.state, r.input, r.output, r.error, r.created_at, r.finished_at,
       r.correlation_id, r.parent_run_id, r.parent_step, r.cause_event_id, r.subscription_id,
       r.idempotency_key, r.compensation, r.steps_left, r.deadline
  FROM baton._runs AS r
 -- restricted workflows the reader may not read (empty without grants)
 WHERE r.workflow <> ALL ((SELECT baton._hidden_workflows())::text[]);
COMMENT ON VIEW baton.runs IS
'Workflow runs: state running, succeeded, failed or cancelled; compensation is NULL (nothing to undo), running or done; deadline: when the workflow''s "timeout" fails the run (NULL: none).';

CREATE VIEW baton.run_steps WITH (security_barrier) AS
SELECT s.run_id, s.step, s.kind, s.state,
       COALESCE(t.attempt, s.attempts) AS attempt, t.max_attempts,
       s.output, s.error, s.started_at, s.finished_at,
       s.task_id, s.map_total,
       s.map_total - (SELECT COALESCE(pg_catalog.sum(c.pending), 0)::integer FROM baton._run_map_counts AS c
                       WHERE c.run_id = s.run_id AND c.step = s.step) AS map_done,
       s.child_run_id, s.wake_at, s.wait_topic, s.wait_key,
       s.comp_task_id AS compensation_task_id, s.deps_left, s.ord
  FROM baton._run_steps AS s
  LEFT JOIN baton._tasks AS t ON t.id = s.task_id
 WHERE pg_catalog.cardinality((SELECT baton._hidden_workflows())) = 0
    OR (SELECT r.workflow FROM baton._runs AS r WHERE r.id = s.run_id) <> ALL ((SELECT baton._hidden_workflows())::text[]);
COMMENT ON VIEW baton.run_steps IS
'Every step of every run: pending, waiting (sleep, wait_event), running, succeeded, failed, skipped, cancelled, compensating, compensated; with its task, map progress (map_done of map_total) or child run.';

CREATE FUNCTION baton.run_status(run bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    res jsonb;
BEGIN
    PERFORM baton._authorize_run('run_status', run_status.run, 'read');
    SELECT pg_catalog.to_jsonb(r) || pg_catalog.jsonb_build_object('steps',
               (SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(s) - 'run_id' ORDER BY s.ord, s.step)
                  FROM baton.run_steps AS s WHERE s.run_id = r.id))
      INTO res
      FROM baton.runs AS r WHERE r.id = run_status.run;
    IF res IS NULL THEN
        RAISE EXCEPTION 'baton.run_status: run % does not exist', run_status.run
            USING ERRCODE = 'no_data_found', COLUMN = 'run';
    END IF;
    RETURN res;
END
$$;
COMMENT ON FUNCTION baton.run_status(bigint) IS
'A run and all its steps as one JSON object (the columns of baton.runs plus "steps": the rows of baton.run_steps in topological order).';

-- Mermaid text of one workflow version, each node with the class given in states (step -> state).
CREATE FUNCTION baton._wf_mermaid(workflow text, version integer, states jsonb) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.concat_ws(E'\n',
        'flowchart TD',
        (SELECT pg_catalog.string_agg(pg_catalog.format('    s_%s["%s"]', d.step,
                    pg_catalog.replace(d.step || '<br/>' || d.kind ||
                        COALESCE(': ' || COALESCE(d.spec ->> 'queue', d.spec ->> 'topic', d.spec ->> 'workflow',
                                                  d.spec ->> 'duration', d.spec ->> 'until'), '') ||
                        CASE WHEN d.spec ? 'map' THEN ' (map)' ELSE '' END ||
                        CASE WHEN states ? d.step THEN '<br/>' || (states ->> d.step) ELSE '' END,
                        '"', '#quot;')), E'\n' ORDER BY d.ord)
           FROM baton._wf_steps AS d WHERE d.workflow = _wf_mermaid.workflow AND d.version = _wf_mermaid.version),
        (SELECT pg_catalog.string_agg(pg_catalog.format('    s_%s --> s_%s', a, d.step), E'\n' ORDER BY d.ord, a)
           FROM baton._wf_steps AS d, pg_catalog.unnest(d.after) AS a
          WHERE d.workflow = _wf_mermaid.workflow AND d.version = _wf_mermaid.version),
        CASE WHEN states IS NOT NULL THEN pg_catalog.concat_ws(E'\n',
            '    classDef pending fill:#f4f4f4,stroke:#999',
            '    classDef waiting fill:#fff3c4,stroke:#c9a400',
            '    classDef running fill:#d6e8ff,stroke:#2f6fd1',
            '    classDef succeeded fill:#d8f5d0,stroke:#3a9a2a',
            '    classDef failed fill:#ffd6d6,stroke:#c62828',
            '    classDef skipped fill:#eeeeee,stroke:#bbb,stroke-dasharray:4',
            '    classDef cancelled fill:#e0e0e0,stroke:#777',
            '    classDef compensating fill:#ffe0b2,stroke:#ef6c00',
            '    classDef compensated fill:#ffecd9,stroke:#b26a00',
            (SELECT pg_catalog.string_agg(pg_catalog.format('    class s_%s %s', e.key, e.value #>> '{}'), E'\n'
                                          ORDER BY e.key)
               FROM pg_catalog.jsonb_each(states) AS e))
        END)
$$;

CREATE FUNCTION baton.graph(workflow text) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    ver integer;
BEGIN
    PERFORM baton._authorize_workflow('graph', graph.workflow, 'read');
    SELECT pg_catalog.max(w.version) INTO ver FROM baton._workflows AS w WHERE w.name = graph.workflow;
    IF ver IS NULL THEN
        RAISE EXCEPTION 'baton.graph: workflow "%" does not exist', graph.workflow
            USING ERRCODE = 'undefined_object', COLUMN = 'workflow';
    END IF;
    RETURN baton._wf_mermaid(graph.workflow, ver, NULL);
END
$$;
COMMENT ON FUNCTION baton.graph(text) IS
'Mermaid flowchart text of the latest version of a workflow (nodes s_<step>, edges from dependencies).';

CREATE FUNCTION baton.graph(run bigint) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r baton._runs;
BEGIN
    PERFORM baton._authorize_run('graph', graph.run, 'read');
    SELECT * INTO r FROM baton._runs AS x WHERE x.id = graph.run;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'baton.graph: run % does not exist', graph.run
            USING ERRCODE = 'no_data_found', COLUMN = 'run';
    END IF;
    RETURN baton._wf_mermaid(r.workflow, r.version,
        (SELECT pg_catalog.jsonb_object_agg(s.step, s.state) FROM baton._run_steps AS s WHERE s.run_id = r.id));
END
$$;
COMMENT ON FUNCTION baton.graph(bigint) IS
'Mermaid flowchart text of a run: its workflow version with each step''s state as a class (classDef per state).';

-- Rows of the causal chain contributed by workflows (runs and steps), for baton.trace.
CREATE FUNCTION baton._wf_trace(correlation uuid)
RETURNS TABLE (at timestamptz, kind text, id bigint, name text, state text,
               cause_kind text, cause_id bigint, detail jsonb)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT r.created_at, 'run', r.id, r.workflow, r.state,
           CASE WHEN r.parent_run_id IS NOT NULL THEN 'run' WHEN r.cause_event_id IS NOT NULL THEN 'event' END,
           COALESCE(r.parent_run_id, r.cause_event_id),
           pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
               'version', r.version, 'finished_at', r.finished_at, 'error', r.error,
               'parent_step', r.parent_step, 'subscription_id', r.subscription_id,
               'compensation', r.compensation))
      FROM baton._runs AS r WHERE r.correlation_id = _wf_trace.correlation
    UNION ALL
    SELECT COALESCE(s.started_at, s.finished_at, r.created_at), 'step', r.id, s.step, s.state, 'run', r.id,
           pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
               'kind', s.kind, 'task_id', s.task_id, 'child_run_id', s.child_run_id, 'map_total', s.map_total,
               'finished_at', s.finished_at, 'error', s.error, 'compensation_task_id', s.comp_task_id))
      FROM baton._runs AS r JOIN baton._run_steps AS s ON s.run_id = r.id
     WHERE r.correlation_id = _wf_trace.correlation AND s.state <> 'pending'
$$;
