-- Datrix database roles, shared by deploy/local/up (run as the cluster superuser,
-- connected to database datrix, after role `datrix` and database `datrix` exist)
-- and deploy/compose.yaml (mounted into /docker-entrypoint-initdb.d/, where the
-- image has already created superuser `datrix` and database `datrix`).
-- Idempotent: safe to run on every start.
--
-- Three roles (docs/security.md, "Who can read"):
--   datrix         superuser: administration only (this file, backups). Nothing of
--                  Datrix connects as it at run time.
--   datrix_writer  the workers and the CLI's owner side: creates its schemas (one per
--                  deployment, DATRIX_DATABASE_SCHEMA; the tests make one each), owns the
--                  event store, the read models and the audit trail, and runs their
--                  migrations. Not a superuser, no BYPASSRLS, no CREATEROLE, no CREATEDB:
--                  row-level security is FORCEd on the tenant tables, and it reads and
--                  writes them through a policy granted to it alone.
--   datrix_reader  the query layer: SELECT on the read models, nothing else (no event
--                  store, no write, no DDL); each tenant table lets it see the rows of the
--                  tenant session it presents (a random token the writer issued for the
--                  caller's authenticated tenant), so it cannot pick its tenant itself.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'datrix_writer') THEN
    CREATE ROLE datrix_writer LOGIN PASSWORD 'datrix_writer';
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'datrix_reader') THEN
    CREATE ROLE datrix_reader LOGIN PASSWORD 'datrix_reader';
  END IF;
END
$$;
-- Also when the roles already existed (datrix_reader was a NOLOGIN role that earlier
-- read-model migrations created).
ALTER ROLE datrix_writer LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION
  NOINHERIT PASSWORD 'datrix_writer';
ALTER ROLE datrix_reader LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION
  NOINHERIT PASSWORD 'datrix_reader';
-- Neither is a member of any role (a GRANT someone made by hand would be a way out).
DO $$
DECLARE m record;
BEGIN
  FOR m IN SELECT r.rolname AS grantee, g.rolname AS granted
           FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.member
           JOIN pg_roles g ON g.oid = a.roleid
           WHERE r.rolname IN ('datrix_writer', 'datrix_reader') LOOP
    EXECUTE format('REVOKE %I FROM %I', m.granted, m.grantee);
  END LOOP;
END
$$;

REVOKE ALL ON DATABASE datrix FROM PUBLIC;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT CONNECT, CREATE, TEMPORARY ON DATABASE datrix TO datrix_writer;
GRANT CONNECT ON DATABASE datrix TO datrix_reader;
-- DATRIX_DATABASE_SCHEMA=public (the default) puts the writer's tables in schema public.
GRANT USAGE, CREATE ON SCHEMA public TO datrix_writer;

-- Before these roles, `datrix` (superuser) ran everything and owns what it created:
-- hand its Datrix schemas (those with the event store or the read models) and every
-- object in them to the writer, so its migrations can run there. Nothing else changes
-- hands. Schema public itself stays with its owner (the writer has CREATE on it).
DO $$
DECLARE s record; o record;
BEGIN
  FOR s IN SELECT DISTINCT n.oid, n.nspname FROM pg_namespace n
           JOIN pg_class c ON c.relnamespace = n.oid
           WHERE c.relname IN ('stored_events', 'schema_migrations') AND c.relkind = 'r'
             AND pg_get_userbyid(c.relowner) = 'datrix' LOOP
    IF s.nspname <> 'public' THEN
      EXECUTE format('ALTER SCHEMA %I OWNER TO datrix_writer', s.nspname);
    END IF;
    -- (a sequence that belongs to a column, the event store's notification id, moves
    -- with its table and may not be moved alone)
    FOR o IN SELECT c.relname, c.relkind FROM pg_class c
             WHERE c.relnamespace = s.oid AND pg_get_userbyid(c.relowner) = 'datrix'
               AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
               AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                               AND d.objid = c.oid AND d.deptype IN ('a', 'i'))
             ORDER BY c.relkind = 'S' LOOP
      EXECUTE format('ALTER %s %I.%I OWNER TO datrix_writer',
        CASE o.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
          WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END, s.nspname, o.relname);
    END LOOP;
    -- standalone types (the event store's composite stored_event_uuid), not tables' row types
    FOR o IN SELECT t.typname FROM pg_type t LEFT JOIN pg_class c ON c.oid = t.typrelid
             WHERE t.typnamespace = s.oid AND pg_get_userbyid(t.typowner) = 'datrix'
               AND t.typelem = 0 AND (t.typtype IN ('e', 'd', 'r', 'm') OR c.relkind = 'c') LOOP
      EXECUTE format('ALTER TYPE %I.%I OWNER TO datrix_writer', s.nspname, o.typname);
    END LOOP;
    FOR o IN SELECT p.oid::regprocedure AS fn FROM pg_proc p
             WHERE p.pronamespace = s.oid AND pg_get_userbyid(p.proowner) = 'datrix' LOOP
      EXECUTE format('ALTER FUNCTION %s OWNER TO datrix_writer', o.fn);
    END LOOP;
  END LOOP;
END
$$;

-- datrix_app was an earlier, never used attempt at an application role: gone.
DO $$
BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'datrix_app') THEN
    EXECUTE 'DROP OWNED BY datrix_app';
    EXECUTE 'DROP ROLE datrix_app';
  END IF;
END
$$;
