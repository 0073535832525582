-- 70_cron.sql — cron schedules (placeholder hook).

-- Fires due cron schedules; returns counts.
CREATE FUNCTION baton._cron_tick() RETURNS jsonb
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$ SELECT '{}'::jsonb $$;
