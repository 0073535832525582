-- 15_privileges.sql — per-queue, per-topic and per-workflow grants, and the checks every API function makes.
--
-- Model (docs/security.md): every public function is SECURITY DEFINER, so the
-- three baton roles decide what a role may call (EXECUTE) and these grants
-- decide on which objects.  A queue, topic or workflow with no grant row is
-- unrestricted and behaves as in 0.1.0 (producers enqueue, start, publish and
-- read; workers work; admins manage).  Its first grant restricts it: from
-- then on only members of a role granted the privilege (and baton_admin)
-- may use it that way.  A topic is restricted by every topic grant whose
-- pattern matches it.  What the extension does by itself (fan-out of events,
-- workflow steps, tokens, cron fires) needs no grant.

CREATE TABLE baton._grants (
    kind        text NOT NULL CHECK (kind IN ('queue', 'topic', 'workflow')),
    object      text NOT NULL,          -- a queue, a workflow, or a topic pattern
    role        name NOT NULL,          -- by name, so that grants survive pg_dump/restore
    privilege   text NOT NULL,
    topic_regex text,                   -- topic grants: the compiled pattern (see _ev_compile_pattern)
    granted_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (kind, object, role, privilege),
    CHECK ((kind = 'queue' AND privilege IN ('enqueue', 'work', 'read', 'manage'))
        OR (kind = 'topic' AND privilege IN ('publish', 'read') AND topic_regex IS NOT NULL)
        OR (kind = 'workflow' AND privilege IN ('start', 'read', 'manage')))
);
SELECT pg_catalog.pg_extension_config_dump('baton._grants', '');

-- Checks the name of a queue, workflow, subscription or schedule: 1-128
-- characters of letters, digits, '_', '-', '.', ':' (the one rule for all of them).
CREATE FUNCTION baton._check_name(fn text, field text, name text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF name IS NULL OR name !~ '^[A-Za-z0-9_.:-]{1,128}$' THEN
        PERFORM baton._bad(fn, field,
            pg_catalog.format('must be 1-128 characters of letters, digits, "_", "-", ".", ":" (got %s)',
                              COALESCE(pg_catalog.quote_literal(name), 'NULL')));
    END IF;
END
$$;

-- Keys that start with "baton:" are made by the extension (cron fires,
-- subscription deliveries); a caller may not take them first.
CREATE FUNCTION baton._check_user_key(fn text, field text, k text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF pg_catalog.starts_with(k, 'baton:') THEN
        PERFORM baton._bad(fn, field,
            pg_catalog.format('must not start with "baton:", reserved for keys baton makes itself (got %s)',
                              pg_catalog.quote_literal(k)));
    END IF;
END
$$;

-- The role the checks are made for: the one the session acts as (SET ROLE,
-- else the login role).  Inside a SECURITY DEFINER function current_user is
-- the function's owner, so it cannot be used; the role setting is not changed
-- by SECURITY DEFINER and cannot be SET inside one.
CREATE FUNCTION baton._invoker() RETURNS name
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN r = 'none' THEN SESSION_USER ELSE r::name END
      FROM pg_catalog.current_setting('role') AS r
$$;

-- Is the invoker a member (with inherited rights, as PostgreSQL counts them) of role?
CREATE FUNCTION baton._member_of(role name) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles AS r
                    WHERE r.rolname = _member_of.role AND pg_catalog.pg_has_role(baton._invoker(), r.oid, 'USAGE'))
$$;

-- Is the object restricted (has a grant row)?  Topics by pattern.
CREATE FUNCTION baton._restricted(kind text, object text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN _restricted.kind = 'topic'
                THEN EXISTS (SELECT 1 FROM baton._grants AS g
                              WHERE g.kind = 'topic' AND ('.' || _restricted.object) OPERATOR(pg_catalog.~) g.topic_regex)
                ELSE EXISTS (SELECT 1 FROM baton._grants AS g WHERE g.kind = _restricted.kind AND g.object = _restricted.object)
           END
$$;

-- May the invoker use the object this way?  Unrestricted objects follow the
-- 0.1.0 roles (checked here only for manage, the rest by EXECUTE); restricted
-- ones need a grant; read is also given by work and manage.
CREATE FUNCTION baton._allowed(kind text, object text, privilege text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE
        WHEN NOT baton._restricted(_allowed.kind, _allowed.object)
            THEN _allowed.privilege <> 'manage' OR baton._member_of('baton_admin')
        ELSE baton._member_of('baton_admin')
             OR EXISTS (SELECT 1 FROM baton._grants AS g JOIN pg_catalog.pg_roles AS r ON r.rolname = g.role
                         WHERE g.kind = _allowed.kind
                           AND CASE WHEN _allowed.kind = 'topic' THEN ('.' || _allowed.object) OPERATOR(pg_catalog.~) g.topic_regex
                                    ELSE g.object = _allowed.object END
                           AND (g.privilege = _allowed.privilege
                                OR (_allowed.privilege = 'read' AND g.privilege IN ('work', 'manage')))
                           AND pg_catalog.pg_has_role(baton._invoker(), r.oid, 'USAGE'))
    END
$$;

-- Raises insufficient_privilege naming the function, the object and the missing privilege.
CREATE FUNCTION baton._denied(fn text, kind text, object text, privilege text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF privilege = 'manage' AND NOT baton._restricted(kind, object) THEN
        RAISE EXCEPTION 'baton.%: permission denied: role "%" lacks privilege "manage" on % "%"', fn, baton._invoker(), kind, object
            USING ERRCODE = 'insufficient_privilege',
                  HINT = pg_catalog.format('Only baton_admin manages a %s without grants; baton.grant_%s(%L, %L, ''manage'') gives it to a role.',
                                           kind, kind, object, baton._invoker());
    END IF;
    RAISE EXCEPTION 'baton.%: permission denied: role "%" lacks privilege "%" on % "%"', fn, baton._invoker(), privilege, kind, object
        USING ERRCODE = 'insufficient_privilege',
              HINT = pg_catalog.format('A member of baton_admin can grant it: baton.grant_%s(%L, %L, %L).',
                                       kind, object, baton._invoker(), privilege);
END
$$;

-- The checks the API functions make in their first line.  Each returns at
-- once when no grant of its kind exists (a 0.1.0 database, and the hot paths
-- of databases that use no grants): one lookup in a table that is empty.
-- The hot paths (enqueue, claim, complete, fail, heartbeat, release, publish,
-- start) make that lookup themselves before calling: the call of a function
-- with its own search_path costs about four times the lookup (measured,
-- docs/security.md "Cost").

CREATE FUNCTION baton._authorize_queue(fn text, queue text, privilege text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF privilege = 'manage' OR EXISTS (SELECT 1 FROM baton._grants AS g WHERE g.kind = 'queue' AND g.object = queue) THEN
        IF NOT baton._allowed('queue', queue, privilege) THEN
            PERFORM baton._denied(fn, 'queue', queue, privilege);
        END IF;
    END IF;
END
$$;

CREATE FUNCTION baton._authorize_queues(fn text, queues text[], privilege text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    q text;
BEGIN
    IF privilege = 'manage'
       OR EXISTS (SELECT 1 FROM baton._grants AS g WHERE g.kind = 'queue' AND g.object = ANY (queues)) THEN
        FOR q IN SELECT DISTINCT u FROM pg_catalog.unnest(queues) AS u WHERE u IS NOT NULL ORDER BY u LOOP
            PERFORM baton._authorize_queue(fn, q, privilege);
        END LOOP;
    END IF;
END
$$;

-- Tasks are checked through their queues; ids that name no task pass (the
-- function then finds nothing, as for a lost lease).
CREATE FUNCTION baton._authorize_tasks(fn text, ids bigint[], privilege text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF privilege = 'manage' OR EXISTS (SELECT 1 FROM baton._grants AS g WHERE g.kind = 'queue') THEN
        PERFORM baton._authorize_queues(fn,
            ARRAY(SELECT DISTINCT t.queue FROM baton._tasks AS t WHERE t.id = ANY (ids)), privilege);
    END IF;
END
$$;

CREATE FUNCTION baton._authorize_task(fn text, id bigint, privilege text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF privilege = 'manage' OR EXISTS (SELECT 1 FROM baton._grants AS g WHERE g.kind = 'queue') THEN
        PERFORM baton._authorize_queues(fn, ARRAY(SELECT t.queue FROM baton._tasks AS t WHERE t.id = _authorize_task.id),
                                        privilege);
    END IF;
END
$$;

CREATE FUNCTION baton._authorize_topic(fn text, topic text, privilege text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM baton._grants AS g WHERE g.kind = 'topic') AND topic IS NOT NULL
       AND NOT baton._allowed('topic', topic, privilege) THEN
        PERFORM baton._denied(fn, 'topic', topic, privilege);
    END IF;
END
$$;

CREATE FUNCTION baton._authorize_workflow(fn text, workflow text, privilege text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF (privilege = 'manage' OR EXISTS (SELECT 1 FROM baton._grants AS g WHERE g.kind = 'workflow' AND g.object = workflow))
       AND NOT baton._allowed('workflow', workflow, privilege) THEN
        PERFORM baton._denied(fn, 'workflow', workflow, privilege);
    END IF;
END
$$;

-- Runs are checked through their workflows; an unknown run passes (the
-- function then says it does not exist).
CREATE FUNCTION baton._authorize_run(fn text, run bigint, privilege text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    w text;
BEGIN
    IF privilege = 'manage' OR EXISTS (SELECT 1 FROM baton._grants AS g WHERE g.kind = 'workflow') THEN
        SELECT r.workflow INTO w FROM baton._runs AS r WHERE r.id = run;
        IF FOUND THEN
            PERFORM baton._authorize_workflow(fn, w, privilege);
        END IF;
    END IF;
END
$$;

-- A new workflow version sends work wherever its steps say, with the
-- extension's rights: a non-admin defining it needs enqueue on every queue
-- it names, publish on every topic and start on every child workflow.
-- Malformed parts are left to define_workflow's own checks.
CREATE FUNCTION baton._authorize_definition(name text, definition jsonb) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s jsonb;
BEGIN
    PERFORM baton._authorize_workflow('define_workflow', name, 'manage');
    IF baton._member_of('baton_admin') OR pg_catalog.jsonb_typeof(definition -> 'steps') IS DISTINCT FROM 'object' THEN
        RETURN;
    END IF;
    FOR s IN SELECT e.value FROM pg_catalog.jsonb_each(definition -> 'steps') AS e ORDER BY e.key LOOP
        CONTINUE WHEN pg_catalog.jsonb_typeof(s) IS DISTINCT FROM 'object';
        IF pg_catalog.jsonb_typeof(s -> 'queue') = 'string' THEN
            PERFORM baton._authorize_queue('define_workflow', s ->> 'queue', 'enqueue');
        END IF;
        IF pg_catalog.jsonb_typeof(s #> '{compensate,queue}') = 'string' THEN
            PERFORM baton._authorize_queue('define_workflow', s #>> '{compensate,queue}', 'enqueue');
        END IF;
        IF s ->> 'kind' = 'publish' AND pg_catalog.jsonb_typeof(s -> 'topic') = 'string' THEN
            PERFORM baton._authorize_topic('define_workflow', s ->> 'topic', 'publish');
        END IF;
        IF pg_catalog.jsonb_typeof(s -> 'workflow') = 'string' THEN
            PERFORM baton._authorize_workflow('define_workflow', s ->> 'workflow', 'start');
        END IF;
    END LOOP;
END
$$;

-- What the views hide from the invoker: restricted queues and workflows it
-- may not read (one array per query, not a check per row).  Empty without grants.
CREATE FUNCTION baton._hidden_queues() RETURNS text[]
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM baton._grants AS g WHERE g.kind = 'queue') OR baton._member_of('baton_admin') THEN
        RETURN '{}';
    END IF;
    RETURN ARRAY(SELECT DISTINCT g.object FROM baton._grants AS g
                  WHERE g.kind = 'queue' AND NOT baton._allowed('queue', g.object, 'read') ORDER BY 1);
END
$$;

CREATE FUNCTION baton._hidden_workflows() RETURNS text[]
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM baton._grants AS g WHERE g.kind = 'workflow') OR baton._member_of('baton_admin') THEN
        RETURN '{}';
    END IF;
    RETURN ARRAY(SELECT DISTINCT g.object FROM baton._grants AS g
                  WHERE g.kind = 'workflow' AND NOT baton._allowed('workflow', g.object, 'read') ORDER BY 1);
END
$$;

-- Topics are patterns: true when some topic grant exists and the invoker is no admin
-- (the views then test each event's topic with _topic_hidden).
CREATE FUNCTION baton._topics_filtered() RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (SELECT 1 FROM baton._grants AS g WHERE g.kind = 'topic') AND NOT baton._member_of('baton_admin')
$$;

CREATE FUNCTION baton._topic_hidden(topic text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT NOT baton._allowed('topic', _topic_hidden.topic, 'read')
$$;

-- Grants -----------------------------------------------------------------------

-- Validates a grant or revoke; returns the compiled topic pattern for topics.
CREATE FUNCTION baton._check_grant(fn text, kind text, object text, role name, privilege text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    allowed text[] := CASE kind WHEN 'queue' THEN ARRAY['enqueue', 'work', 'read', 'manage']
                                WHEN 'topic' THEN ARRAY['publish', 'read']
                                ELSE ARRAY['start', 'read', 'manage'] END;
    rx text;
BEGIN
    IF kind = 'topic' THEN
        rx := baton._ev_compile_pattern(fn, object);
    ELSE
        PERFORM baton._check_name(fn, kind, object);
    END IF;
    IF role IS NULL OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles AS r WHERE r.rolname = _check_grant.role) THEN
        RAISE EXCEPTION 'baton.%: role "%" does not exist', fn, role
            USING ERRCODE = 'undefined_object', COLUMN = 'role';
    END IF;
    IF privilege IS NULL OR NOT privilege = ANY (allowed) THEN
        PERFORM baton._bad(fn, 'privilege',
            pg_catalog.format('must be one of %s for a %s (got %s)', pg_catalog.array_to_string(allowed, ', '), kind,
                              COALESCE(pg_catalog.quote_literal(privilege), 'NULL')));
    END IF;
    RETURN rx;
END
$$;

CREATE FUNCTION baton._grant(fn text, kind text, object text, role name, privilege text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rx text := baton._check_grant(fn, kind, object, role, privilege);
BEGIN
    IF kind = 'queue' THEN
        PERFORM baton._queue(fn, object);
    ELSIF kind = 'workflow' AND NOT baton._wf_exists(object) THEN
        RAISE EXCEPTION 'baton.%: workflow "%" does not exist', fn, object
            USING ERRCODE = 'undefined_object', COLUMN = 'workflow',
                  HINT = 'Define it with baton.define_workflow().';
    END IF;
    INSERT INTO baton._grants AS g (kind, object, role, privilege, topic_regex)
    VALUES (kind, object, role, privilege, rx)
    ON CONFLICT ON CONSTRAINT _grants_pkey DO NOTHING;
    RETURN FOUND;
END
$$;

CREATE FUNCTION baton._revoke(fn text, kind text, object text, role name, privilege text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF kind = 'topic' THEN
        PERFORM baton._ev_compile_pattern(fn, object);
    ELSE
        PERFORM baton._check_name(fn, kind, object);
    END IF;
    DELETE FROM baton._grants AS g
     WHERE g.kind = _revoke.kind AND g.object = _revoke.object AND g.role = _revoke.role
       AND g.privilege = _revoke.privilege;
    RETURN FOUND;
END
$$;

CREATE FUNCTION baton.grant_queue(queue text, role name, privilege text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN baton._grant('grant_queue', 'queue', queue, role, privilege);
END
$$;
COMMENT ON FUNCTION baton.grant_queue(text, name, text) IS
'Lets members of role use a queue: enqueue, work (claim, complete, fail, heartbeat, release; also read), read (see its tasks, payloads and results), manage (cancel, retry, purge, pause, resume, alter; also read). The first grant on a queue restricts it: from then on only granted roles (and baton_admin) may use it. Returns false when the grant existed.';

CREATE FUNCTION baton.revoke_queue(queue text, role name, privilege text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN baton._revoke('revoke_queue', 'queue', queue, role, privilege);
END
$$;
COMMENT ON FUNCTION baton.revoke_queue(text, name, text) IS
'Removes a grant made by grant_queue; returns false when there was none. Revoking the last grant of a queue makes it unrestricted again (0.1.0 rules).';

CREATE FUNCTION baton.grant_topic(topic text, role name, privilege text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN baton._grant('grant_topic', 'topic', topic, role, privilege);
END
$$;
COMMENT ON FUNCTION baton.grant_topic(text, name, text) IS
'Lets members of role publish to, or read the events of, the topics matching a pattern (word = itself, * = one segment, # = zero or more). Every topic matched by some topic grant is restricted. Returns false when the grant existed.';

CREATE FUNCTION baton.revoke_topic(topic text, role name, privilege text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN baton._revoke('revoke_topic', 'topic', topic, role, privilege);
END
$$;
COMMENT ON FUNCTION baton.revoke_topic(text, name, text) IS
'Removes a grant made by grant_topic (the same pattern text); returns false when there was none.';

CREATE FUNCTION baton.grant_workflow(workflow text, role name, privilege text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN baton._grant('grant_workflow', 'workflow', workflow, role, privilege);
END
$$;
COMMENT ON FUNCTION baton.grant_workflow(text, name, text) IS
'Lets members of role start a workflow, read its runs and steps, or manage it (cancel runs, define new versions; also read). The first grant restricts the workflow. Returns false when the grant existed.';

CREATE FUNCTION baton.revoke_workflow(workflow text, role name, privilege text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN baton._revoke('revoke_workflow', 'workflow', workflow, role, privilege);
END
$$;
COMMENT ON FUNCTION baton.revoke_workflow(text, name, text) IS
'Removes a grant made by grant_workflow; returns false when there was none. Revoking the last grant makes the workflow unrestricted again.';

CREATE FUNCTION baton.check_worker_access(queues text[]) RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    q text;
BEGIN
    IF queues IS NULL OR pg_catalog.cardinality(queues) = 0 THEN
        PERFORM baton._bad('check_worker_access', 'queues', 'must name at least one queue');
    END IF;
    -- A queue that does not exist (yet) has no grants: a worker may wait for it, as in 0.1.0.
    FOREACH q IN ARRAY queues LOOP
        PERFORM baton._authorize_queue('check_worker_access', q, 'work');
    END LOOP;
END
$$;
COMMENT ON FUNCTION baton.check_worker_access(text[]) IS
'Raises insufficient_privilege, naming the queue and the missing grant, unless the calling role may work on every queue given (baton-worker calls it at startup). A queue that does not exist passes (it has no grants).';

-- May the invoker see a grant made to role?  Admins see all, other roles
-- the grants of roles they belong to.
CREATE FUNCTION baton._grant_visible(role name) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT baton._member_of('baton_admin') OR baton._member_of(_grant_visible.role)
$$;

CREATE VIEW baton.grants WITH (security_barrier) AS
SELECT g.kind, g.object, g.role, g.privilege, g.granted_at
  FROM baton._grants AS g
 WHERE baton._grant_visible(g.role);
COMMENT ON VIEW baton.grants IS
'Grants on queues, topics (patterns) and workflows made with baton.grant_queue/grant_topic/grant_workflow: baton_admin sees all, other roles those of roles they belong to.';
