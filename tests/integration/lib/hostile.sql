-- hostile.sql — look-alike objects for the hostile search_path tests: each raises if baton ever calls it.
-- Loaded into a scratch database; the tests then run baton calls with
-- search_path = hostile, public, pg_catalog.  Every baton function pins its
-- own search_path, so none of these may run.
CREATE SCHEMA hostile;

CREATE FUNCTION hostile.now() RETURNS timestamptz LANGUAGE plpgsql AS
    $$BEGIN RAISE EXCEPTION 'hostile now() was called'; END$$;
CREATE FUNCTION hostile.random() RETURNS double precision LANGUAGE plpgsql AS
    $$BEGIN RAISE EXCEPTION 'hostile random() was called'; END$$;
CREATE FUNCTION hostile.format(text, text) RETURNS text LANGUAGE plpgsql AS
    $$BEGIN RAISE EXCEPTION 'hostile format() was called'; END$$;
CREATE FUNCTION hostile.to_char(timestamp, text) RETURNS text LANGUAGE plpgsql AS
    $$BEGIN RAISE EXCEPTION 'hostile to_char() was called'; END$$;
CREATE FUNCTION hostile.jsonb_path_match(jsonb, jsonpath, jsonb, boolean) RETURNS boolean LANGUAGE plpgsql AS
    $$BEGIN RAISE EXCEPTION 'hostile jsonb_path_match() was called'; END$$;
CREATE FUNCTION hostile.jsonb_path_query_first(jsonb, jsonpath, jsonb, boolean) RETURNS jsonb LANGUAGE plpgsql AS
    $$BEGIN RAISE EXCEPTION 'hostile jsonb_path_query_first() was called'; END$$;

CREATE FUNCTION hostile.text_eq(text, text) RETURNS boolean LANGUAGE plpgsql AS
    $$BEGIN RAISE EXCEPTION 'hostile = operator was called'; END$$;
CREATE OPERATOR hostile.= (LEFTARG = text, RIGHTARG = text, FUNCTION = hostile.text_eq);
CREATE FUNCTION hostile.int_lt(integer, integer) RETURNS boolean LANGUAGE plpgsql AS
    $$BEGIN RAISE EXCEPTION 'hostile < operator was called'; END$$;
CREATE OPERATOR hostile.< (LEFTARG = integer, RIGHTARG = integer, FUNCTION = hostile.int_lt);
CREATE FUNCTION hostile.text_re(text, text) RETURNS boolean LANGUAGE plpgsql AS
    $$BEGIN RAISE EXCEPTION 'hostile ~ operator was called'; END$$;
CREATE OPERATOR hostile.~ (LEFTARG = text, RIGHTARG = text, FUNCTION = hostile.text_re);
CREATE FUNCTION hostile.text_cat(text, text) RETURNS text LANGUAGE plpgsql AS
    $$BEGIN RAISE EXCEPTION 'hostile || operator (text) was called'; END$$;
CREATE OPERATOR hostile.|| (LEFTARG = text, RIGHTARG = text, FUNCTION = hostile.text_cat);
CREATE FUNCTION hostile.jsonb_cat(jsonb, jsonb) RETURNS jsonb LANGUAGE plpgsql AS
    $$BEGIN RAISE EXCEPTION 'hostile || operator (jsonb) was called'; END$$;
CREATE OPERATOR hostile.|| (LEFTARG = jsonb, RIGHTARG = jsonb, FUNCTION = hostile.jsonb_cat);
CREATE FUNCTION hostile.ts_le(timestamptz, timestamptz) RETURNS boolean LANGUAGE plpgsql AS
    $$BEGIN RAISE EXCEPTION 'hostile <= operator was called'; END$$;
CREATE OPERATOR hostile.<= (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = hostile.ts_le);
CREATE FUNCTION hostile.ts_mi(timestamptz, interval) RETURNS timestamptz LANGUAGE plpgsql AS
    $$BEGIN RAISE EXCEPTION 'hostile - operator was called'; END$$;
CREATE OPERATOR hostile.- (LEFTARG = timestamptz, RIGHTARG = interval, FUNCTION = hostile.ts_mi);

-- Tables named like baton's own, in case anything resolved an unqualified name.
CREATE TABLE hostile._tasks (id int);
CREATE TABLE hostile._queues (id int);
CREATE TABLE hostile._events (id int);
CREATE TABLE hostile._subscriptions (id int);
CREATE TABLE hostile._runs (id int);
CREATE TABLE hostile._run_steps (id int);
CREATE TABLE hostile._schedules (name text);

-- Look-alikes of what the privilege checks use (issue 16): the role setting, role
-- membership, the key prefix test, and a grants table.
CREATE FUNCTION hostile.current_setting(text) RETURNS text LANGUAGE plpgsql AS
    $$BEGIN RAISE EXCEPTION 'hostile current_setting() was called'; END$$;
CREATE FUNCTION hostile.pg_has_role(name, oid, text) RETURNS boolean LANGUAGE plpgsql AS
    $$BEGIN RAISE EXCEPTION 'hostile pg_has_role() was called'; END$$;
CREATE FUNCTION hostile.starts_with(text, text) RETURNS boolean LANGUAGE plpgsql AS
    $$BEGIN RAISE EXCEPTION 'hostile starts_with() was called'; END$$;
CREATE TABLE hostile._grants (kind text, object text, role name, privilege text);
CREATE VIEW hostile.pg_roles AS SELECT 'baton_admin'::name AS rolname, 0::oid AS oid;

-- Roles for the calls made with grants in force (cluster-wide; made once).
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['baton_hostile_p', 'baton_hostile_p2'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE pg_catalog.format('CREATE ROLE %I IN ROLE baton_producer', r);
        END IF;
    END LOOP;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'baton_hostile_w') THEN
        CREATE ROLE baton_hostile_w IN ROLE baton_worker;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA hostile TO baton_hostile_p, baton_hostile_p2, baton_hostile_w;
