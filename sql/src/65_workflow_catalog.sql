-- 65_workflow_catalog.sql — the workflow definitions as users see them: every version, with its runs by state.

CREATE VIEW baton.workflows AS
SELECT w.name, w.version, w.version = pg_catalog.max(w.version) OVER (PARTITION BY w.name) AS latest,
       w.definition, w.step_count AS steps, w.created_at,
       COALESCE(c.running, 0) AS running, COALESCE(c.succeeded, 0) AS succeeded,
       COALESCE(c.failed, 0) AS failed, COALESCE(c.cancelled, 0) AS cancelled
  FROM baton._workflows AS w
  LEFT JOIN (SELECT r.workflow, r.version,
                    pg_catalog.count(*) FILTER (WHERE r.state = 'running') AS running,
                    pg_catalog.count(*) FILTER (WHERE r.state = 'succeeded') AS succeeded,
                    pg_catalog.count(*) FILTER (WHERE r.state = 'failed') AS failed,
                    pg_catalog.count(*) FILTER (WHERE r.state = 'cancelled') AS cancelled
               FROM baton._runs AS r GROUP BY r.workflow, r.version) AS c
    ON c.workflow = w.name AND c.version = w.version
 -- restricted workflows the reader may not read (empty without grants)
 WHERE w.name <> ALL ((SELECT baton._hidden_workflows())::text[]);
COMMENT ON VIEW baton.workflows IS
'Every version of every workflow: its definition, whether it is the latest (what start() runs), and its runs by state (runs kept by the run retention).';
