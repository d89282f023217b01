-- Change data capture (Debezium through Kafka Connect; docs/security.md "Kafka Connect and
-- CDC"), shared by deploy/local/up (run as the cluster superuser, connected to database
-- datrix, after postgres-init.sql) and deploy/compose.yaml (/docker-entrypoint-initdb.d/).
-- Idempotent: safe to run on every start.
--
--   datrix_sources  the database whose tables are captured (the demo's and the tests'
--                   source tables). Owned by the administrator `datrix`.
--   datrix_cdc      the role Debezium connects as: LOGIN REPLICATION (it creates a
--                   replication slot and streams the WAL with pgoutput), CONNECT on
--                   datrix_sources alone. Logical decoding is not subject to row-level
--                   security or table grants, so a replication role that could connect
--                   to `datrix` could decode every tenant's rows of the event store and
--                   the read models: it cannot (PUBLIC has no CONNECT there). It reads a
--                   table's snapshot only where its owner GRANTs SELECT, and streams
--                   only the tables of a publication, which the owner creates.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'datrix_cdc') THEN
    CREATE ROLE datrix_cdc LOGIN REPLICATION PASSWORD 'datrix_cdc';
  END IF;
END
$$;
ALTER ROLE datrix_cdc LOGIN REPLICATION NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE
  NOINHERIT PASSWORD 'datrix_cdc';
REVOKE CONNECT, TEMPORARY ON DATABASE datrix FROM datrix_cdc;

SELECT 'CREATE DATABASE datrix_sources OWNER datrix'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'datrix_sources')\gexec
REVOKE ALL ON DATABASE datrix_sources FROM PUBLIC;
GRANT CONNECT ON DATABASE datrix_sources TO datrix_cdc;
\connect datrix_sources
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO datrix_cdc;
