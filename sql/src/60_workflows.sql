-- 60_workflows.sql — orchestration, part 1: workflow definitions, their validation and versions.
--
-- Glossary: a workflow is a named, versioned DAG of steps; a run is one
-- execution of one version; a run step is one step of one run (for a task step
-- it owns one task, for a map step one task per array element).

-- Every version of every workflow, with its definition as given.
CREATE TABLE baton._workflows (
    name        text NOT NULL,
    version     integer NOT NULL,
    definition  jsonb NOT NULL,
    step_count  integer NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (name, version)
);

-- The compiled steps of each version: one indexed row per step, so the run
-- engine reads only the step it needs (no detoasting of whole definitions).
CREATE TABLE baton._wf_steps (
    workflow    text NOT NULL,
    version     integer NOT NULL,
    step        text NOT NULL,
    kind        text NOT NULL,
    spec        jsonb NOT NULL,
    after       text[] NOT NULL,
    dependents  text[] NOT NULL,
    ord         integer NOT NULL,      -- position in a topological order
    PRIMARY KEY (workflow, version, step),
    FOREIGN KEY (workflow, version) REFERENCES baton._workflows (name, version)
);

SELECT pg_catalog.pg_extension_config_dump('baton._workflows', '');
SELECT pg_catalog.pg_extension_config_dump('baton._wf_steps', '');

-- Raises invalid_parameter_value for a definition error, naming the step.
CREATE FUNCTION baton._wf_bad(step text, msg text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF step IS NULL THEN
        RAISE EXCEPTION 'baton.define_workflow: %', msg
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'definition';
    END IF;
    RAISE EXCEPTION 'baton.define_workflow: step "%": %', step, msg
        USING ERRCODE = 'invalid_parameter_value', COLUMN = 'definition';
END
$$;

-- Checks that a string compiles as a JSONPath expression.
CREATE FUNCTION baton._wf_check_path(step text, field text, path text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pg_catalog.jsonb_path_query('{}'::jsonb, path::jsonpath, '{}'::jsonb, true);
EXCEPTION WHEN OTHERS THEN
    PERFORM baton._wf_bad(step, pg_catalog.format('%s: bad JSONPath %s (%s)', field,
                                                  pg_catalog.quote_literal(path), SQLERRM));
END
$$;

-- Checks every "$."-string of a template compiles as JSONPath.
CREATE FUNCTION baton._wf_check_template(step text, field text, tmpl jsonb) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s text;
BEGIN
    FOR s IN SELECT v #>> '{}'
               FROM pg_catalog.jsonb_path_query(tmpl, 'strict $.** ? (@.type() == "string")') AS v
    LOOP
        IF pg_catalog.left(s, 2) = '$.' THEN
            PERFORM baton._wf_check_path(step, field, s);
        END IF;
    END LOOP;
END
$$;

-- Returns a positive interval given as a JSON string, or raises naming the step and field.
CREATE FUNCTION baton._wf_check_interval(step text, field text, val jsonb) RETURNS interval
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    i interval;
BEGIN
    IF pg_catalog.jsonb_typeof(val) IS DISTINCT FROM 'string' THEN
        PERFORM baton._wf_bad(step, pg_catalog.format('%s must be an interval string such as "5 minutes" (got %s)',
                                                      field, val));
    END IF;
    BEGIN
        i := (val #>> '{}')::interval;
    EXCEPTION WHEN OTHERS THEN
        PERFORM baton._wf_bad(step, pg_catalog.format('%s: not an interval (got %s)', field, val));
    END;
    IF i <= interval '0' THEN
        PERFORM baton._wf_bad(step, pg_catalog.format('%s must be positive (got %s)', field, val));
    END IF;
    RETURN i;
END
$$;

-- Checks a JSON value is an integer at least lo.
CREATE FUNCTION baton._wf_check_int(step text, field text, val jsonb, lo integer) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF pg_catalog.jsonb_typeof(val) IS DISTINCT FROM 'number'
       OR (val #>> '{}')::numeric <> pg_catalog.trunc((val #>> '{}')::numeric)
       OR (val #>> '{}')::numeric NOT BETWEEN lo AND 2147483647 THEN
        PERFORM baton._wf_bad(step, pg_catalog.format('%s must be an integer of at least %s (got %s)', field, lo, val));
    END IF;
END
$$;

-- Checks a required non-empty string field.
CREATE FUNCTION baton._wf_check_string(step text, field text, val jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF val IS NULL THEN
        PERFORM baton._wf_bad(step, pg_catalog.format('missing required field "%s"', field));
    END IF;
    IF pg_catalog.jsonb_typeof(val) <> 'string' OR val #>> '{}' = '' THEN
        PERFORM baton._wf_bad(step, pg_catalog.format('%s must be a non-empty string (got %s)', field, val));
    END IF;
    RETURN val #>> '{}';
END
$$;

-- Checks a queue named by a step exists.
CREATE FUNCTION baton._wf_check_queue(step text, field text, val jsonb) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    q text := baton._wf_check_string(step, field, val);
BEGIN
    IF NOT EXISTS (SELECT 1 FROM baton._queues AS x WHERE x.name = q) THEN
        PERFORM baton._wf_bad(step, pg_catalog.format('unknown queue "%s"', q));
    END IF;
END
$$;

-- Validates one step's own fields (not its dependencies); returns its kind.
CREATE FUNCTION baton._wf_check_step(workflow text, step text, spec jsonb) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    kind    text;
    allowed text[];
    k       text;
    child   text;
    comp    jsonb;
BEGIN
    IF step !~ '^[A-Za-z_][A-Za-z0-9_]{0,62}$' THEN
        PERFORM baton._wf_bad(step, 'bad step name: use 1-63 letters, digits and "_", not starting with a digit');
    END IF;
    IF pg_catalog.jsonb_typeof(spec) IS DISTINCT FROM 'object' THEN
        PERFORM baton._wf_bad(step, pg_catalog.format('must be a JSON object (got %s)', spec));
    END IF;
    IF spec ? 'kind' AND pg_catalog.jsonb_typeof(spec -> 'kind') <> 'string' THEN
        PERFORM baton._wf_bad(step, pg_catalog.format('kind must be a string (got %s)', spec -> 'kind'));
    END IF;
    kind := COALESCE(spec ->> 'kind', 'task');
    allowed := CASE kind
        WHEN 'task'       THEN ARRAY['queue', 'input', 'map', 'max_attempts', 'timeout', 'priority']
        WHEN 'publish'    THEN ARRAY['topic', 'payload', 'key']
        WHEN 'wait_event' THEN ARRAY['topic', 'key', 'timeout', 'on_timeout']
        WHEN 'sleep'      THEN ARRAY['duration', 'until']
        WHEN 'workflow'   THEN ARRAY['workflow', 'input']
    END;
    IF allowed IS NULL THEN
        PERFORM baton._wf_bad(step, pg_catalog.format(
            'unknown kind "%s" (use task, publish, wait_event, sleep or workflow)', kind));
    END IF;
    allowed := allowed || ARRAY['kind', 'after', 'when', 'compensate'];
    FOR k IN SELECT x FROM pg_catalog.jsonb_object_keys(spec) AS x ORDER BY x LOOP
        IF NOT k = ANY (allowed) THEN
            PERFORM baton._wf_bad(step, pg_catalog.format('unknown key "%s" for a %s step', k, kind));
        END IF;
    END LOOP;

    IF spec ? 'when' THEN
        PERFORM baton._wf_check_path(step, 'when', baton._wf_check_string(step, 'when', spec -> 'when'));
    END IF;
    IF spec ? 'input' THEN
        PERFORM baton._wf_check_template(step, 'input', spec -> 'input');
    END IF;

    CASE kind
    WHEN 'task' THEN
        PERFORM baton._wf_check_queue(step, 'queue', spec -> 'queue');
        IF spec ? 'map' THEN
            PERFORM baton._wf_check_path(step, 'map', baton._wf_check_string(step, 'map', spec -> 'map'));
        END IF;
        IF spec ? 'max_attempts' THEN
            PERFORM baton._wf_check_int(step, 'max_attempts', spec -> 'max_attempts', 1);
        END IF;
        IF spec ? 'priority' THEN
            PERFORM baton._wf_check_int(step, 'priority', spec -> 'priority', -2147483647);
        END IF;
        IF spec ? 'timeout' THEN
            PERFORM baton._wf_check_interval(step, 'timeout', spec -> 'timeout');
        END IF;
    WHEN 'publish' THEN
        PERFORM baton._wf_check_string(step, 'topic', spec -> 'topic');
        IF spec ? 'payload' THEN
            PERFORM baton._wf_check_template(step, 'payload', spec -> 'payload');
        END IF;
        IF spec ? 'key' THEN
            PERFORM baton._wf_check_template(step, 'key', spec -> 'key');
        END IF;
    WHEN 'wait_event' THEN
        PERFORM baton._wf_check_string(step, 'topic', spec -> 'topic');
        IF spec ? 'key' THEN
            PERFORM baton._wf_check_template(step, 'key', spec -> 'key');
        END IF;
        IF spec ? 'timeout' THEN
            PERFORM baton._wf_check_interval(step, 'timeout', spec -> 'timeout');
        END IF;
        IF spec ? 'on_timeout' AND spec -> 'on_timeout' NOT IN ('"fail"', '"skip"') THEN
            PERFORM baton._wf_bad(step, pg_catalog.format('on_timeout must be "fail" or "skip" (got %s)',
                                                          spec -> 'on_timeout'));
        END IF;
    WHEN 'sleep' THEN
        IF (spec ? 'duration') = (spec ? 'until') THEN
            PERFORM baton._wf_bad(step, 'a sleep step needs exactly one of "duration" and "until"');
        END IF;
        IF spec ? 'duration' THEN
            PERFORM baton._wf_check_interval(step, 'duration', spec -> 'duration');
        ELSIF pg_catalog.jsonb_typeof(spec -> 'until') <> 'string' THEN
            PERFORM baton._wf_bad(step, pg_catalog.format('until must be a timestamp or a JSONPath string (got %s)',
                                                          spec -> 'until'));
        ELSIF pg_catalog.left(spec ->> 'until', 2) = '$.' THEN
            PERFORM baton._wf_check_path(step, 'until', spec ->> 'until');
        ELSE
            BEGIN
                PERFORM (spec ->> 'until')::timestamptz;
            EXCEPTION WHEN OTHERS THEN
                PERFORM baton._wf_bad(step, pg_catalog.format('until: not a timestamp (got %s)', spec -> 'until'));
            END;
        END IF;
    WHEN 'workflow' THEN
        child := baton._wf_check_string(step, 'workflow', spec -> 'workflow');
        IF child <> workflow AND NOT EXISTS (SELECT 1 FROM baton._workflows AS w WHERE w.name = child) THEN
            PERFORM baton._wf_bad(step, pg_catalog.format('unknown child workflow "%s"', child));
        END IF;
    END CASE;

    IF spec ? 'compensate' THEN
        comp := spec -> 'compensate';
        IF pg_catalog.jsonb_typeof(comp) IS DISTINCT FROM 'object' THEN
            PERFORM baton._wf_bad(step, pg_catalog.format('compensate must be an object {"queue", "input"} (got %s)', comp));
        END IF;
        FOR k IN SELECT x FROM pg_catalog.jsonb_object_keys(comp) AS x ORDER BY x LOOP
            IF k NOT IN ('queue', 'input') THEN
                PERFORM baton._wf_bad(step, pg_catalog.format('unknown key "%s" in compensate', k));
            END IF;
        END LOOP;
        PERFORM baton._wf_check_queue(step, 'compensate.queue', comp -> 'queue');
        IF comp ? 'input' THEN
            PERFORM baton._wf_check_template(step, 'compensate.input', comp -> 'input');
        END IF;
    END IF;
    RETURN kind;
END
$$;

-- The largest definition define_workflow accepts (steps).
CREATE FUNCTION baton._wf_max_steps() RETURNS integer
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$ SELECT 10000 $$;
COMMENT ON FUNCTION baton._wf_max_steps() IS 'The maximum number of steps of a workflow definition (10,000).';

-- define_workflow, phase 1: validates the definition and every step's own
-- fields and dependencies (errors in step name order).  Returns the step
-- names in name order, their kinds, and the edges (step, dependency), each
-- list built by appends that plpgsql does in place: O(steps + edges).
CREATE FUNCTION baton._wf_define_validate(workflow text, definition jsonb,
                                          OUT names text[], OUT kinds text[],
                                          OUT edge_step text[], OUT edge_dep text[])
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    steps jsonb;
    k     text;
    s     text;
    d     text;
    deps  text[];
    n     integer;
BEGIN
    IF pg_catalog.jsonb_typeof(definition) IS DISTINCT FROM 'object' THEN
        PERFORM baton._wf_bad(NULL, pg_catalog.format('definition must be a JSON object {"steps": {...}} (got %s)',
                                                      COALESCE(pg_catalog.jsonb_typeof(definition), 'NULL')));
    END IF;
    FOR k IN SELECT x FROM pg_catalog.jsonb_object_keys(definition) AS x ORDER BY x LOOP
        IF k NOT IN ('steps', 'output', 'timeout') THEN
            PERFORM baton._wf_bad(NULL, pg_catalog.format('unknown key "%s" in definition (use "steps", "output" and "timeout")', k));
        END IF;
    END LOOP;
    steps := definition -> 'steps';
    IF pg_catalog.jsonb_typeof(steps) IS DISTINCT FROM 'object' OR steps = '{}' THEN
        PERFORM baton._wf_bad(NULL, 'definition needs "steps": a non-empty object of steps keyed by name');
    END IF;
    n := (SELECT pg_catalog.count(*) FROM pg_catalog.jsonb_object_keys(steps));
    IF n > baton._wf_max_steps() THEN
        PERFORM baton._wf_bad(NULL, pg_catalog.format('definition has %s steps; a workflow has at most %s',
                                                      n, baton._wf_max_steps()));
    END IF;
    IF definition ? 'output' THEN
        PERFORM baton._wf_check_template(NULL, 'output', definition -> 'output');
    END IF;
    IF definition ? 'timeout' THEN
        PERFORM baton._wf_check_interval(NULL, 'timeout', definition -> 'timeout');
    END IF;

    names := ARRAY(SELECT x FROM pg_catalog.jsonb_object_keys(steps) AS x ORDER BY x);
    kinds := '{}';
    edge_step := '{}';
    edge_dep := '{}';
    FOREACH s IN ARRAY names LOOP
        kinds := kinds || baton._wf_check_step(workflow, s, steps -> s);
        CASE pg_catalog.jsonb_typeof(steps -> s -> 'after')
        WHEN 'string' THEN deps := ARRAY[steps -> s ->> 'after'];
        WHEN 'array' THEN
            IF EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(steps -> s -> 'after') AS e
                        WHERE pg_catalog.jsonb_typeof(e) <> 'string') THEN
                PERFORM baton._wf_bad(s, pg_catalog.format('after must be an array of step names (got %s)',
                                                           steps -> s -> 'after'));
            END IF;
            deps := ARRAY(SELECT DISTINCT e FROM pg_catalog.jsonb_array_elements_text(steps -> s -> 'after') AS e
                           ORDER BY e);
        ELSE
            IF steps -> s ? 'after' THEN
                PERFORM baton._wf_bad(s, pg_catalog.format('after must be an array of step names (got %s)',
                                                           steps -> s -> 'after'));
            END IF;
            deps := '{}';
        END CASE;
        FOREACH d IN ARRAY deps LOOP
            IF NOT steps ? d THEN
                PERFORM baton._wf_bad(s, pg_catalog.format('unknown dependency "%s"', d));
            END IF;
            edge_step := edge_step || s;
            edge_dep := edge_dep || d;
        END LOOP;
    END LOOP;

    -- References to $.steps.<name> must name a step of this workflow.
    FOR s, d IN SELECT x.key, m[1]
                  FROM pg_catalog.jsonb_each(steps || pg_catalog.jsonb_build_object('', definition -> 'output')) AS x,
                       pg_catalog.regexp_matches(x.value::text, '\$\.steps\.([A-Za-z_][A-Za-z0-9_]*)', 'g') AS m
                 WHERE NOT steps ? m[1]
                 ORDER BY x.key, m[1]
                 LIMIT 1
    LOOP
        PERFORM baton._wf_bad(NULLIF(s, ''), pg_catalog.format('%srefers to unknown step "%s" ($.steps.%s)',
                                                               CASE WHEN s = '' THEN 'output ' ELSE '' END, d, d));
    END LOOP;
END
$$;

-- define_workflow, phase 2: a topological order (Kahn, layer by layer, names
-- sorted within a layer), or an error naming a dependency cycle.  Each step
-- and edge is visited once: O(steps + edges).
CREATE FUNCTION baton._wf_define_order(names text[], edge_step text[], edge_dep text[]) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    dependents jsonb;
    pos        jsonb;
    indeg      integer[];
    ready      text[];
    nxt_layer  text[];
    done       text[] := '{}';
    s          text;
    d          text;
    i          integer;
    path       text[];
    cur        text;
    nxt        text;
BEGIN
    dependents := COALESCE((SELECT pg_catalog.jsonb_object_agg(x.dep, x.l) FROM (
                               SELECT e.dep, pg_catalog.jsonb_agg(e.step ORDER BY e.step) AS l
                                 FROM ROWS FROM (pg_catalog.unnest(edge_step), pg_catalog.unnest(edge_dep)) AS e(step, dep)
                                GROUP BY e.dep) AS x), '{}');
    pos := (SELECT pg_catalog.jsonb_object_agg(x.n, x.i) FROM pg_catalog.unnest(names) WITH ORDINALITY AS x(n, i));
    indeg := ARRAY(SELECT pg_catalog.count(e.step)::integer
                     FROM pg_catalog.unnest(names) WITH ORDINALITY AS x(n, i)
                     LEFT JOIN pg_catalog.unnest(edge_step) AS e(step) ON e.step = x.n
                    GROUP BY x.i ORDER BY x.i);
    ready := ARRAY(SELECT x.n FROM ROWS FROM (pg_catalog.unnest(names), pg_catalog.unnest(indeg)) AS x(n, c) WHERE x.c = 0 ORDER BY x.n);
    WHILE pg_catalog.cardinality(ready) > 0 LOOP
        nxt_layer := '{}';
        FOREACH s IN ARRAY ready LOOP
            done := done || s;
            FOR d IN SELECT pg_catalog.jsonb_array_elements_text(dependents -> s) LOOP
                i := (pos ->> d)::integer;
                indeg[i] := indeg[i] - 1;
                IF indeg[i] = 0 THEN
                    nxt_layer := nxt_layer || d;
                END IF;
            END LOOP;
        END LOOP;
        ready := ARRAY(SELECT x FROM pg_catalog.unnest(nxt_layer) AS x ORDER BY x);
    END LOOP;
    IF pg_catalog.cardinality(done) < pg_catalog.cardinality(names) THEN
        -- Walk unfinished dependencies until a step repeats: that loop is a cycle.
        SELECT x.n INTO cur FROM ROWS FROM (pg_catalog.unnest(names), pg_catalog.unnest(indeg)) AS x(n, c) WHERE x.c > 0 ORDER BY x.n LIMIT 1;
        path := ARRAY[cur];
        LOOP
            SELECT e.dep INTO nxt FROM ROWS FROM (pg_catalog.unnest(edge_step), pg_catalog.unnest(edge_dep)) AS e(step, dep)
             WHERE e.step = cur AND indeg[(pos ->> e.dep)::integer] > 0 ORDER BY e.dep LIMIT 1;
            IF nxt = ANY (path) THEN
                path := path[pg_catalog.array_position(path, nxt):] || nxt;
                PERFORM baton._wf_bad(nxt, pg_catalog.format('dependency cycle: %s',
                                                             pg_catalog.array_to_string(path, ' -> ')));
            END IF;
            path := path || nxt;
            cur := nxt;
        END LOOP;
    END IF;
    RETURN done;
END
$$;

-- define_workflow, phase 3: a step's templates may read only steps that end
-- before it starts: its ancestors through "after" (and itself, which
-- compensate.input may read).  Anything else would render as null or not,
-- depending on timing.  Direct dependencies are checked by lookup; only the
-- other references walk up the graph, from their step alone: at worst
-- O(steps x depth), never the whole closure.
CREATE FUNCTION baton._wf_define_check_refs(steps jsonb, edge_step text[], edge_dep text[]) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s text;
    d text;
BEGIN
    FOR s, d IN
        WITH RECURSIVE
        refs AS (
            SELECT DISTINCT x.key AS s, m[1] AS d
              FROM pg_catalog.jsonb_each(steps) AS x,
                   pg_catalog.regexp_matches(x.value::text, '\$\.steps\.([A-Za-z_][A-Za-z0-9_]*)', 'g') AS m
             WHERE m[1] <> x.key),
        edges AS (
            SELECT e.step, e.dep FROM ROWS FROM (pg_catalog.unnest(edge_step), pg_catalog.unnest(edge_dep)) AS e(step, dep)),
        far AS (
            SELECT r.s, r.d FROM refs AS r
             WHERE NOT EXISTS (SELECT 1 FROM edges AS e WHERE e.step = r.s AND e.dep = r.d)),
        up(s, a) AS (
            SELECT e.step, e.dep FROM edges AS e WHERE e.step IN (SELECT f.s FROM far AS f)
            UNION
            SELECT up.s, e.dep FROM up JOIN edges AS e ON e.step = up.a)
        SELECT f.s, f.d FROM far AS f
         WHERE NOT EXISTS (SELECT 1 FROM up WHERE up.s = f.s AND up.a = f.d)
         ORDER BY f.s, f.d
         LIMIT 1
    LOOP
        PERFORM baton._wf_bad(s, pg_catalog.format(
            'refers to step "%s" ($.steps.%s), which does not always end before it starts: add "%s" to its "after", directly or through a step in between',
            d, d, d));
    END LOOP;
END
$$;

-- define_workflow, phase 4: stores the definition as the next version with
-- one row per step, unless it is identical to the latest version.
CREATE FUNCTION baton._wf_define_store(workflow text, definition jsonb, names text[], kinds text[],
                                       edge_step text[], edge_dep text[], ord text[]) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    latest baton._workflows;
    ver    integer;
BEGIN
    -- Serialise definers of one workflow; an identical definition keeps its version.
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('baton.define_workflow:' || workflow));
    SELECT * INTO latest FROM baton._workflows AS w
     WHERE w.name = workflow ORDER BY w.version DESC LIMIT 1;
    IF FOUND AND latest.definition = definition THEN
        RETURN latest.version;
    END IF;
    ver := COALESCE(latest.version, 0) + 1;
    INSERT INTO baton._workflows (name, version, definition, step_count)
    VALUES (workflow, ver, definition, pg_catalog.cardinality(names));
    INSERT INTO baton._wf_steps (workflow, version, step, kind, spec, after, dependents, ord)
    SELECT workflow, ver, x.n, x.k, definition -> 'steps' -> x.n,
           COALESCE(a.deps, '{}'), COALESCE(b.dependents, '{}'), o.i
      FROM ROWS FROM (pg_catalog.unnest(names), pg_catalog.unnest(kinds)) AS x(n, k)
      JOIN pg_catalog.unnest(ord) WITH ORDINALITY AS o(n, i) ON o.n = x.n
      LEFT JOIN (SELECT e.step, pg_catalog.array_agg(e.dep ORDER BY e.dep) AS deps
                   FROM ROWS FROM (pg_catalog.unnest(edge_step), pg_catalog.unnest(edge_dep)) AS e(step, dep) GROUP BY e.step) AS a ON a.step = x.n
      LEFT JOIN (SELECT e.dep, pg_catalog.array_agg(e.step ORDER BY e.step) AS dependents
                   FROM ROWS FROM (pg_catalog.unnest(edge_step), pg_catalog.unnest(edge_dep)) AS e(step, dep) GROUP BY e.dep) AS b ON b.dep = x.n;
    RETURN ver;
END
$$;

CREATE FUNCTION baton.define_workflow(name text, definition jsonb) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v   record;
    ord text[];
BEGIN
    PERFORM baton._check_name('define_workflow', 'name', define_workflow.name);
    PERFORM baton._authorize_definition(define_workflow.name, definition);
    v := baton._wf_define_validate(define_workflow.name, definition);
    ord := baton._wf_define_order(v.names, v.edge_step, v.edge_dep);
    PERFORM baton._wf_define_check_refs(definition -> 'steps', v.edge_step, v.edge_dep);
    RETURN baton._wf_define_store(define_workflow.name, definition, v.names, v.kinds, v.edge_step, v.edge_dep, ord);
END
$$;
COMMENT ON FUNCTION baton.define_workflow(text, jsonb) IS
'Validates a workflow definition {"steps": {name: step, ...}, "output": template; at most 10,000 steps} and stores it as the next version of the workflow; returns the version. An identical definition returns the current version. Runs already started keep their version. Time: O(steps + edges), plus steps x depth for references to steps that are not direct dependencies.';

-- Does a workflow of this name exist (any version)?  Used by cron and subscriptions.
CREATE FUNCTION baton._wf_exists(workflow text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (SELECT 1 FROM baton._workflows AS w WHERE w.name = _wf_exists.workflow)
$$;
