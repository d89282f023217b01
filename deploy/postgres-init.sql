-- Datrix database roles, shared by deploy/local/up (run as the cluster superuser,
-- connected to database datrix, after role `datrix` and database `datrix` exist)
-- and deploy/compose.yaml (mounted into /docker-entrypoint-initdb.d/, where the
-- image has already created superuser `datrix` and database `datrix`).
-- Idempotent: safe to run on every start.

-- Non-superuser without BYPASSRLS: the role the application (and the
-- row-level-security tests) connect as, so policies actually apply to it.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'datrix_app') THEN
    CREATE ROLE datrix_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE
      PASSWORD 'datrix_app';
  END IF;
END
$$;

GRANT CONNECT, TEMPORARY ON DATABASE datrix TO datrix_app;
GRANT USAGE ON SCHEMA public TO datrix_app;
-- Tables and sequences that `datrix` (migrations, tests) creates later are usable by the app role.
ALTER DEFAULT PRIVILEGES FOR ROLE datrix IN SCHEMA public
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO datrix_app;
ALTER DEFAULT PRIVILEGES FOR ROLE datrix IN SCHEMA public
  GRANT USAGE, SELECT ON SEQUENCES TO datrix_app;
