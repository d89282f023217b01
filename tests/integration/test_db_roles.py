"""Least-privilege database roles (issue 12, item 5) on the PostgreSQL of deploy/local.

The run-time roles are ``datrix_writer`` (workers, migrations, the projector) and
``datrix_reader`` (the query layer); ``datrix`` is the superuser and nothing of Datrix
runs as it. The reader sees a tenant's rows only through a tenant session the writer
issued (``reader_sessions``), so a reader that runs statements of its own on its
connection can neither pick its tenant, nor write, nor lift row-level security, nor
become another role. docs/security.md, "Who can read", cites these tests."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import psycopg
import pytest

from datrix.projections.migrations import BAD_SESSION, NO_SESSION
from datrix.projections.store import PostgresReadStore
from datrix.streams.event_store import postgres_event_store
from datrix.streams.postgres import PrivilegedRoleError
from tests.integration.conftest import DATRIX, KafkaCli, admin_url

pytestmark = pytest.mark.integration

INSERT_DATASET = (
    "INSERT INTO datasets (id, tenant, name, source_type, status, created_at, updated_at) "
    "VALUES (?, ?, ?, 'file', 'active', 'now', 'now')"
)


@pytest.fixture
def owner(services: dict[str, str]) -> Iterator[PostgresReadStore]:
    """A fresh schema with the event store and the read models, made by the writer, with
    rows of tenants a and b written as the projector writes them."""
    schema = f"t_roles_{uuid.uuid4().hex[:8]}"
    postgres_event_store(services["DATRIX_DATABASE_URL"], schema)  # beside them, as a worker has
    store = PostgresReadStore(
        services["DATRIX_DATABASE_URL"], schema, reader_url=services["DATRIX_DATABASE_READER_URL"]
    )
    try:
        with store.transaction() as tx:
            for tenant in ("a", "b"):
                for n in range(3):
                    tx.execute(INSERT_DATASET, (f"{tenant}-{n}", tenant, f"{tenant}-data-{n}"))
        yield store
    finally:
        store.close()
        store.drop_schema()


def _reader(services: dict[str, str], schema: str) -> psycopg.Connection[Any]:
    """A connection of the reader role as a client holding its URL would open it."""
    return psycopg.connect(
        services["DATRIX_DATABASE_READER_URL"], autocommit=True, options=f"-c search_path={schema}"
    )


def _refused(db: psycopg.Connection[Any], sql: str) -> str:
    """Run ``sql``, which must fail; return the server's SQLSTATE."""
    with pytest.raises(psycopg.Error) as caught:
        db.execute(sql)
    return str(caught.value.sqlstate)


def test_no_run_time_role_is_a_superuser_or_bypasses_rls(services: dict[str, str]) -> None:
    for key, role in (
        ("DATRIX_DATABASE_URL", "datrix_writer"),
        ("DATRIX_DATABASE_READER_URL", "datrix_reader"),
    ):
        with psycopg.connect(services[key]) as db:
            row = db.execute(
                "SELECT current_user, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb "
                "FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
            assert row == (role, False, False, False, False)
            # and neither is a member of any role it could switch to
            members = db.execute(
                "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member "
                "WHERE r.rolname = current_user"
            ).fetchone()
            assert members == (0,)


def test_every_tenant_table_forces_row_level_security(owner: PostgresReadStore) -> None:
    tables = owner.query(
        "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN information_schema.columns k ON k.table_schema = n.nspname "
        "AND k.table_name = c.relname AND k.column_name = 'tenant' "
        "WHERE n.nspname = ? AND c.relkind = 'r' AND c.relname <> 'reader_sessions'",
        (owner.schema,),
    )
    assert len(tables) >= 8  # organisations, datasets, versions, scans, issues, ...
    assert [t for t in tables if not (t[1] and t[2])] == []
    # and the writer, which owns them, still reads and writes every tenant's rows, in
    # batches too: PostgreSQL refuses COPY FROM into a table under row-level security, so
    # a batch goes through a staging table (projections/store.py _PostgresTx.flush)
    with owner.transaction() as tx:
        for n in range(20):
            tx.execute(INSERT_DATASET, (f"c-{n}", "c", f"c-data-{n}"))
        assert tx.fetch_one("SELECT count(*) FROM datasets WHERE tenant = 'c'") == (20,)
        for n in range(20, 30):  # a second batch of the same statement in one transaction
            tx.execute(INSERT_DATASET, (f"c-{n}", "c", f"c-data-{n}"))
    assert owner.query("SELECT tenant, count(*) FROM datasets GROUP BY tenant ORDER BY 1") == [
        ("a", 3),
        ("b", 3),
        ("c", 30),
    ]
    assert owner.for_tenant("c").query("SELECT count(*) FROM datasets") == [(30,)]


def test_the_reader_of_tenant_b_sees_none_of_tenant_a(owner: PostgresReadStore) -> None:
    b = owner.for_tenant("b")
    assert b.query("SELECT current_user, session_user") == [("datrix_reader", "datrix_reader")]
    # no tenant filter at all: b's rows only
    assert sorted(r[0] for r in b.query("SELECT name FROM datasets")) == [
        "b-data-0",
        "b-data-1",
        "b-data-2",
    ]
    assert b.query("SELECT count(*) FROM datasets WHERE tenant = 'a'") == [(0,)]
    assert b.query("SELECT count(*) FROM datasets WHERE id = 'a-0'") == [(0,)]
    assert owner.for_tenant("a").query("SELECT DISTINCT tenant FROM datasets") == [("a",)]
    assert owner.for_tenant("nobody").query("SELECT count(*) FROM datasets") == [(0,)]


def test_the_reader_cannot_set_its_own_tenant(
    owner: PostgresReadStore, services: dict[str, str]
) -> None:
    with _reader(services, owner.schema) as db:
        # no session: an error, not every row (nor an empty answer that looks like one)
        assert _refused(db, "SELECT count(*) FROM datasets") == NO_SESSION
        # the setting the tenant used to come from is nobody's business any more
        db.execute("SET datrix.tenant = 'a'")
        assert _refused(db, "SELECT count(*) FROM datasets") == NO_SESSION
        # a session it makes up is unknown
        db.execute("SET datrix.session = 'a'")
        assert _refused(db, "SELECT count(*) FROM datasets") == BAD_SESSION
        # and it cannot issue one: only the writer can read or write the sessions
        assert _refused(db, "SELECT * FROM reader_sessions") == "42501"
        assert (
            _refused(
                db,
                "INSERT INTO reader_sessions VALUES ('mine', 'a', now() + interval '1 hour')",
            )
            == "42501"
        )


def test_an_expired_session_is_refused_and_the_store_issues_another(
    owner: PostgresReadStore, services: dict[str, str]
) -> None:
    b = owner.for_tenant("b")
    assert b.query("SELECT count(*) FROM datasets") == [(3,)]
    token = b._token()
    with psycopg.connect(owner.url, autocommit=True, options=f"-c search_path={owner.schema}") as w:
        w.execute("UPDATE reader_sessions SET expires_at = now() - interval '1 second'")
    with _reader(services, owner.schema) as db:
        db.execute("SELECT set_config('datrix.session', %s, false)", (token,))
        assert _refused(db, "SELECT count(*) FROM datasets") == BAD_SESSION
    assert b.query("SELECT count(*) FROM datasets") == [(3,)]  # a new session, transparently
    assert b._token() != token


def test_the_reader_cannot_write_lift_rls_or_become_another_role(
    owner: PostgresReadStore, services: dict[str, str]
) -> None:
    denied = "42501"  # insufficient_privilege
    with _reader(services, owner.schema) as db:
        for sql in (
            "INSERT INTO datasets (id, tenant, name, source_type, status, created_at, "
            "updated_at) VALUES ('x', 'b', 'x', 'file', 'active', 'now', 'now')",
            "UPDATE datasets SET name = 'x'",
            "DELETE FROM datasets",
            "TRUNCATE datasets",
            "SELECT * FROM stored_events",  # the event store holds every tenant's events
            "SELECT * FROM schema_migrations",
            "CREATE TABLE mine (x int)",
            "CREATE TEMP TABLE reader_sessions (token text, tenant text, expires_at timestamptz)",
            "CREATE FUNCTION datrix_session_tenant() RETURNS text LANGUAGE sql AS $$ SELECT 'a' $$",
            "SET ROLE datrix_writer",
            "SET ROLE datrix",
            "SET SESSION AUTHORIZATION datrix_writer",
        ):
            assert _refused(db, sql) == denied, sql
        for sql in (
            "ALTER TABLE datasets DISABLE ROW LEVEL SECURITY",
            "ALTER TABLE datasets NO FORCE ROW LEVEL SECURITY",
            "DROP POLICY tenant_reader ON datasets",
            "CREATE POLICY mine ON datasets FOR SELECT TO datrix_reader USING (true)",
            "ALTER FUNCTION datrix_session_tenant() OWNER TO datrix_reader",
        ):
            assert _refused(db, sql) == denied, sql  # 42501: must be the owner
        db.execute("RESET ROLE")  # back to the session user, which is the reader itself
        assert db.execute("SELECT current_user").fetchone() == ("datrix_reader",)
    assert owner.query("SELECT count(*) FROM datasets") == [(6,)]


def test_another_sessions_token_does_not_show_in_pg_stat_activity(
    owner: PostgresReadStore, services: dict[str, str]
) -> None:
    a = owner.for_tenant("a")
    with a.transaction() as tx:  # a reader's transaction of tenant a, open
        assert tx.fetch_one("SELECT count(*) FROM datasets") == (3,)
        token = a._token()
        with _reader(services, owner.schema) as db:
            seen = db.execute(
                "SELECT coalesce(query, '') FROM pg_stat_activity WHERE usename = 'datrix_reader'"
            ).fetchall()
    assert seen and all(token not in q for (q,) in seen)


def test_a_superuser_url_is_refused(services: dict[str, str], tmp_path: Path) -> None:
    admin = admin_url(services)
    schema = f"t_roles_{uuid.uuid4().hex[:8]}"
    with pytest.raises(PrivilegedRoleError, match="DATRIX_DATABASE_URL logs in as 'datrix'"):
        PostgresReadStore(admin, schema)
    store = PostgresReadStore(services["DATRIX_DATABASE_URL"], schema, reader_url=admin)
    try:
        with pytest.raises(PrivilegedRoleError, match="DATRIX_DATABASE_READER_URL"):
            store.for_tenant("a").query("SELECT count(*) FROM datasets")
    finally:
        store.drop_schema()
    # the worker, as a user starts it: one line, exit 2, before it touches anything
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATRIX_")}
    env.update(services)
    env.update(
        DATRIX_HOME=str(tmp_path / "home"),
        DATRIX_DATABASE_URL=admin,
        DATRIX_TOPIC_PREFIX=f"t{schema}.",
        DATRIX_DATABASE_SCHEMA=schema,
    )
    run = subprocess.run(
        [DATRIX, "worker"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert run.returncode == 2, run.stderr
    assert "a superuser" in run.stderr and "datrix_writer" in run.stderr
    with psycopg.connect(services["DATRIX_DATABASE_URL"]) as db:
        assert db.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,)
        ).fetchone() == (0,)


def test_kafka_mode_connections_are_the_writer_and_the_reader(
    kafka_cli: KafkaCli, services: dict[str, str], tmp_path: Path
) -> None:
    """End to end: every connection the worker and the CLI open (tagged with
    PGAPPNAME) is the writer's or the reader's, none a superuser, and the CLI's answers
    come through the reader."""
    tag = f"datrix-roles-{uuid.uuid4().hex[:8]}"
    kafka_cli.extra = {**(kafka_cli.extra or {}), "PGAPPNAME": tag, "DATRIX_TENANT": "acme"}
    worker = kafka_cli.start_worker()
    csv = tmp_path / "people.csv"
    csv.write_text("name,age\nada,36\nalan,41\n,\n")
    run = kafka_cli("scan", str(csv), "--name", "people", "--format", "json", timeout=300)
    assert run.code == 0, run.stderr
    with psycopg.connect(services["DATRIX_DATABASE_URL"]) as db:
        sessions = db.execute(
            "SELECT DISTINCT a.usename, r.rolsuper FROM pg_stat_activity a "
            "JOIN pg_roles r ON r.rolname = a.usename WHERE a.application_name = %s",
            (tag,),
        ).fetchall()
        issued = db.execute(
            f'SELECT DISTINCT tenant FROM "{kafka_cli.env()["DATRIX_DATABASE_SCHEMA"]}".'
            "reader_sessions"
        ).fetchall()
    assert worker.poll() is None
    assert ("datrix_writer", False) in sessions  # the worker's roles, still connected
    assert {role for role, _ in sessions} <= {"datrix_writer", "datrix_reader"}
    assert not any(superuser for _, superuser in sessions)
    assert issued == [("acme",)]  # the CLI read as the reader, with its tenant's session
    assert [d["name"] for d in kafka_cli("datasets", "--format", "json").json()] == ["people"]
    # the CLI without the reader's URL says what is missing
    kafka_cli.extra = {**kafka_cli.extra, "DATRIX_DATABASE_READER_URL": ""}
    missing = kafka_cli("datasets")
    assert missing.code == 2 and "DATRIX_DATABASE_READER_URL" in missing.stderr


def test_a_schema_the_superuser_made_before_the_roles_is_handed_over_and_upgraded(
    services: dict[str, str],
) -> None:
    """An existing deployment: read models migrated to version 7 by the superuser, with the
    old policy (``current_setting('datrix.tenant')``), and a read model's own table that
    got it from the old ``tenant_isolation``. ``postgres-init.sql`` (which every ``up``
    re-applies) hands the schema to the writer; the writer's migration 8 replaces the
    policy everywhere, so the old way to pick a tenant is gone."""
    from eventsourcing.postgres import PostgresDatastore, PostgresProcessRecorder

    from datrix.projections import migrations

    schema = f"t_roles_old_{uuid.uuid4().hex[:8]}"
    admin = admin_url(services)
    init = (Path(__file__).resolve().parents[2] / "deploy" / "postgres-init.sql").read_text()
    try:
        with psycopg.connect(admin, autocommit=False) as db:
            db.execute(f'CREATE SCHEMA "{schema}"')
            db.execute(f'SET search_path = "{schema}"')
            db.execute(migrations.CREATE_LEDGER)
            for step in migrations.MIGRATIONS[:7]:
                for statement in step.postgres(schema):
                    db.execute(statement)
                db.execute(
                    "INSERT INTO schema_migrations VALUES (%s, %s)", (step.version, step.name)
                )
            db.execute("CREATE TABLE toy_ext (tenant TEXT NOT NULL, x INT)")
            db.execute(
                "GRANT SELECT ON toy_ext TO datrix_reader; "
                "ALTER TABLE toy_ext ENABLE ROW LEVEL SECURITY; "
                "CREATE POLICY tenant_isolation ON toy_ext "
                "USING (tenant = current_setting('datrix.tenant', true))"
            )
            for tenant in ("a", "b"):
                db.execute("INSERT INTO toy_ext VALUES (%s, 1)", (tenant,))
                db.execute(INSERT_DATASET.replace("?", "%s"), (f"{tenant}-0", tenant, tenant))
        # and the event store beside them, as eventsourcing made it for the superuser
        parts = urlparse(admin)
        datastore = PostgresDatastore(
            dbname="datrix",
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            user="datrix",
            password="datrix",
            schema=schema,
            single_row_tracking=True,
        )
        PostgresProcessRecorder(datastore, events_table_name="stored_events").create_table()
        datastore.close()
        with psycopg.connect(admin, autocommit=True) as db:
            db.execute(init)  # what `up` runs
        store = PostgresReadStore(
            services["DATRIX_DATABASE_URL"],
            schema,
            reader_url=services["DATRIX_DATABASE_READER_URL"],
        )
        owners = store.query(
            "SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ? "
            "UNION SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = ? "
            "UNION SELECT pg_get_userbyid(t.typowner) FROM pg_type t "
            "JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = ? "
            "UNION SELECT pg_get_userbyid(p.proowner) FROM pg_proc p "
            "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = ?",
            (schema, schema, schema, schema),
        )
        # tables, the notification id's sequence, eventsourcing's type and function
        assert owners == [("datrix_writer",)]
        assert postgres_event_store(services["DATRIX_DATABASE_URL"], schema).head() == 0
        policies = store.query(
            "SELECT DISTINCT policyname FROM pg_policies WHERE schemaname = ? ORDER BY 1",
            (schema,),
        )
        assert policies == [("tenant_reader",), ("tenant_writer",)]
        b = store.for_tenant("b")
        assert b.query("SELECT tenant FROM toy_ext") == [("b",)]
        assert b.query("SELECT tenant FROM datasets") == [("b",)]
        with _reader(services, schema) as db:
            db.execute("SET datrix.tenant = 'a'")
            assert _refused(db, "SELECT * FROM toy_ext") == NO_SESSION
    finally:
        with psycopg.connect(admin, autocommit=True) as db:
            db.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
