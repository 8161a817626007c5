-- The least-privilege role postgres_exporter logs in as (docs/observability.md).
-- Run by a superuser in the Citus database (CITUS_DATABASE) on each group's primary; safe to
-- run again at any time (every statement is idempotent) and meant to be run again after
-- citus-init created its status tables or Citus was upgraded, so the grants follow them.
-- No password here: whoever runs it sets one separately (ALTER ROLE ... PASSWORD) when the
-- exporter does not log in over the local socket with peer authentication.
--
-- What it can do: read statistics and settings (pg_monitor: pg_read_all_stats,
-- pg_read_all_settings, pg_stat_scan_tables), read Citus' metadata (SELECT on pg_dist_* is
-- granted to PUBLIC by Citus), call citus_remote_connection_stats() and read citus-init's
-- status tables. It cannot write anything, read application tables or create objects.

DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'citus_monitor') THEN
    CREATE ROLE citus_monitor LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
      CONNECTION LIMIT 5;
  END IF;
END
$$;
GRANT pg_monitor TO citus_monitor;
-- Only catalog objects are ever named, always schema-qualified; an empty search_path keeps a
-- user's schema from shadowing them.
ALTER ROLE citus_monitor SET search_path = pg_catalog;
-- A scrape that hangs must not hold a connection: the exporter's queries take milliseconds.
ALTER ROLE citus_monitor SET statement_timeout = '10s';
ALTER ROLE citus_monitor SET lock_timeout = '1s';

DO $$
BEGIN
  -- Only when PUBLIC's CONNECT was revoked: Citus refuses database GRANTs on a worker (the
  -- coordinator's propagate there).
  IF NOT has_database_privilege('citus_monitor', current_database(), 'CONNECT') THEN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO citus_monitor', current_database());
  END IF;
  -- citus_remote_connection_stats(): REVOKEd from PUBLIC by Citus; it reads the shared
  -- connection counters only.
  IF to_regprocedure('pg_catalog.citus_remote_connection_stats()') IS NOT NULL THEN
    GRANT EXECUTE ON FUNCTION pg_catalog.citus_remote_connection_stats() TO citus_monitor;
  END IF;
  -- citus-init's status tables (docs/backups.md), once they exist. Each GRANT only when the
  -- privilege is missing: with Citus the schema created on the coordinator is propagated to
  -- the workers, where Citus refuses GRANTs on it (the coordinator's GRANT reaches them).
  IF to_regnamespace('citus_init') IS NOT NULL THEN
    IF NOT has_schema_privilege('citus_monitor', 'citus_init', 'USAGE') THEN
      GRANT USAGE ON SCHEMA citus_init TO citus_monitor;
    END IF;
    IF to_regclass('citus_init.backup_history') IS NOT NULL
       AND NOT has_table_privilege('citus_monitor', 'citus_init.backup_history', 'SELECT') THEN
      GRANT SELECT ON citus_init.backup_history TO citus_monitor;
    END IF;
    IF to_regclass('citus_init.restore_points') IS NOT NULL
       AND NOT has_table_privilege('citus_monitor', 'citus_init.restore_points', 'SELECT') THEN
      GRANT SELECT ON citus_init.restore_points TO citus_monitor;
    END IF;
  END IF;
END
$$;
