"""Versioned read-model migrations, applied in order and recorded in ``schema_migrations``.

Each migration is a list of statements per dialect; a store applies the ones it has not
recorded yet, inside one transaction (Postgres: under an advisory lock, so two processes
starting together do not both migrate). Add a migration to change the read models; never
edit one that has shipped. Read models are projections, so a migration may also simply
drop and let ``datrix replay`` rebuild.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from datrix.projections.schema import INDEXES, TABLES

READER_ROLE = "datrix_reader"
# The tenant of the reader's session (migration 8): the function the reader's policies call.
SESSION_TENANT = "datrix_session_tenant"
SESSION_SETTING = "datrix.session"
NO_SESSION = "DX001"  # SQLSTATE: the reader queried without a tenant session
BAD_SESSION = "DX002"  # SQLSTATE: unknown or expired tenant session
_BASE = {name: ddl for name, ddl in TABLES.items() if name != "organisations"}
TENANT_TABLES = [t for t in TABLES if t != "projector_position"]


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sqlite: list[str]
    postgres: Callable[[str], list[str]]  # schema -> statements


def _rls(schema: str) -> list[str]:
    statements = [
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{READER_ROLE}') "
        f"THEN CREATE ROLE {READER_ROLE} NOLOGIN; END IF; END $$",
        f'GRANT USAGE ON SCHEMA "{schema}" TO {READER_ROLE}',
    ]
    statements += [f"GRANT SELECT ON {table} TO {READER_ROLE}" for table in TABLES]
    for table in TENANT_TABLES:
        statements += [
            f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
            f"DROP POLICY IF EXISTS tenant_isolation ON {table}",
            f"CREATE POLICY tenant_isolation ON {table} "
            "USING (tenant = current_setting('datrix.tenant', true))",
        ]
    return statements


ORGANISATIONS = TABLES["organisations"]


def _least_privilege(schema: str) -> list[str]:
    """Migration 8: the reader sees a tenant's rows only through a tenant session the
    writer issued (docs/security.md, "Who can read"). Before it, the policy compared the
    tenant with ``current_setting('datrix.tenant')``, which any session may set to any
    value: a reader that could run one statement of its own chose its tenant."""
    function = f"""
CREATE OR REPLACE FUNCTION {SESSION_TENANT}() RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
  wanted text := current_setting('{SESSION_SETTING}', true);
  found text;
BEGIN
  IF wanted IS NULL OR wanted = '' THEN
    RAISE EXCEPTION 'no Datrix tenant session: reads go through the query layer'
      USING ERRCODE = '{NO_SESSION}';
  END IF;
  SELECT s.tenant INTO found FROM "{schema}".reader_sessions s
    WHERE s.token = wanted AND s.expires_at > now();
  IF found IS NULL THEN
    RAISE EXCEPTION 'unknown or expired Datrix tenant session' USING ERRCODE = '{BAD_SESSION}';
  END IF;
  RETURN found;
END
$body$"""
    statements = [
        # a session: a random token the writer issues for an authenticated tenant; only the
        # writer (the owner) can read or write this table
        "CREATE TABLE IF NOT EXISTS reader_sessions (token TEXT PRIMARY KEY, "
        "tenant TEXT NOT NULL, expires_at TIMESTAMPTZ NOT NULL)",
        "REVOKE ALL ON reader_sessions FROM PUBLIC",
        function,
        f"REVOKE ALL ON FUNCTION {SESSION_TENANT}() FROM PUBLIC",
        f"GRANT EXECUTE ON FUNCTION {SESSION_TENANT}() TO {READER_ROLE}",
        f'GRANT USAGE ON SCHEMA "{schema}" TO {READER_ROLE}',
    ]
    statements += [f"GRANT SELECT ON {table} TO {READER_ROLE}" for table in TABLES]
    for table in TENANT_TABLES:
        statements += tenant_isolation(table)
    # a read model's own tables that got the old policy from tenant_isolation() before
    statements.append(
        f"""DO $$ DECLARE t record; BEGIN
  FOR t IN SELECT tablename FROM pg_policies
           WHERE schemaname = '{schema}' AND policyname = 'tenant_isolation' LOOP
    EXECUTE format('DROP POLICY tenant_isolation ON %I', t.tablename);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t.tablename);
    EXECUTE format('CREATE POLICY tenant_reader ON %I FOR SELECT TO {READER_ROLE} '
      'USING (tenant = (SELECT {SESSION_TENANT}()))', t.tablename);
    EXECUTE format('CREATE POLICY tenant_writer ON %I TO CURRENT_USER '
      'USING (true) WITH CHECK (true)', t.tablename);
  END LOOP;
END $$"""
    )
    return statements


# The fixes read model's table (projections/read_models/fixes.py), migration 10.
FIXES = """
CREATE TABLE IF NOT EXISTS fixes (
    fix_id                 TEXT PRIMARY KEY,
    tenant                 TEXT NOT NULL,
    dataset_id             TEXT NOT NULL,
    scan_id                TEXT NOT NULL,
    mode                   TEXT NOT NULL,
    status                 TEXT NOT NULL,
    base_version           INTEGER NOT NULL,
    new_version            INTEGER,
    issue_ids_json         TEXT NOT NULL,
    options_json           TEXT,
    job_id                 TEXT,
    cells_changed          BIGINT,
    rows_removed           BIGINT,
    per_fix_json           TEXT,
    preview_uri            TEXT,
    provenance_uri         TEXT,
    provenance_sha256      TEXT,
    rescan_id              TEXT,
    rolled_back_by_version INTEGER,
    rollback_rescan_id     TEXT,
    error                  TEXT,
    created_at             TEXT NOT NULL,
    updated_at             TEXT NOT NULL
)"""
FIXES_INDEX = "CREATE INDEX IF NOT EXISTS idx_fixes_dataset ON fixes (dataset_id, created_at)"

# The stream read models (projections/read_models/streams.py), migration 11: one row per
# stream, per closed window (its metrics as JSON, the HyperLogLog registers base64), per
# Degraded/Recovered alert.
STREAMS = """
CREATE TABLE IF NOT EXISTS streams (
    stream_id              TEXT PRIMARY KEY,
    tenant                 TEXT NOT NULL,
    name                   TEXT NOT NULL,
    topic                  TEXT NOT NULL,
    format                 TEXT NOT NULL,
    key_field              TEXT,
    window_seconds         INTEGER NOT NULL,
    grace_seconds          INTEGER NOT NULL,
    snapshot_every_seconds INTEGER,
    start_from             TEXT NOT NULL,
    thresholds_json        TEXT NOT NULL,
    status                 TEXT NOT NULL,
    removed_reason         TEXT,
    degraded_json          TEXT NOT NULL,
    windows                BIGINT NOT NULL,
    records                BIGINT NOT NULL,
    last_window_end        TEXT,
    last_snapshot_dataset  TEXT,
    last_snapshot_version  INTEGER,
    last_snapshot_end      TEXT,
    created_at             TEXT NOT NULL,
    updated_at             TEXT NOT NULL
)"""
STREAM_WINDOWS = """
CREATE TABLE IF NOT EXISTS stream_windows (
    window_id        TEXT PRIMARY KEY,
    tenant           TEXT NOT NULL,
    stream_id        TEXT NOT NULL,
    partition_number INTEGER NOT NULL,
    window_start     TEXT NOT NULL,
    window_end       TEXT NOT NULL,
    record_count     BIGINT NOT NULL,
    metrics_json     TEXT NOT NULL,
    closed_at        TEXT NOT NULL
)"""
STREAM_ALERTS = """
CREATE TABLE IF NOT EXISTS stream_alerts (
    alert_id         TEXT PRIMARY KEY,
    tenant           TEXT NOT NULL,
    stream_id        TEXT NOT NULL,
    window_id        TEXT NOT NULL,
    partition_number INTEGER NOT NULL,
    kind             TEXT NOT NULL,
    breaches_json    TEXT NOT NULL,
    seq              BIGINT NOT NULL,
    occurred_at      TEXT NOT NULL
)"""
STREAM_INDEXES = [
    "CREATE INDEX IF NOT EXISTS idx_streams_name ON streams (tenant, name)",
    "CREATE INDEX IF NOT EXISTS idx_stream_windows_stream "
    "ON stream_windows (stream_id, window_start, partition_number)",
    "CREATE INDEX IF NOT EXISTS idx_stream_alerts_stream ON stream_alerts (stream_id, seq)",
]


MIGRATIONS: list[Migration] = [
    Migration(
        1, "read models", [*TABLES.values(), *INDEXES], lambda _schema: [*TABLES.values(), *INDEXES]
    ),
    Migration(2, "tenant row-level security", [], _rls),
    Migration(3, "organisations", [ORGANISATIONS], lambda schema: [ORGANISATIONS, *_rls(schema)]),
    # The projector's own offset in its source log partition, written in the same
    # transaction as the read models: a consumer resumes from it, never from the broker's
    # committed offset (which an asynchronous commit can move past unapplied records).
    Migration(
        4,
        "projector source offset",
        ["ALTER TABLE projector_position ADD COLUMN source_offset INTEGER"],
        lambda _schema: [
            "ALTER TABLE projector_position ADD COLUMN IF NOT EXISTS source_offset BIGINT"
        ],
    ),
    # How a version's file was read (CSV dialect, Excel sheet), shown in its reports.
    Migration(
        5,
        "dataset version read options",
        ["ALTER TABLE dataset_versions ADD COLUMN read_options_json TEXT"],
        lambda _schema: [
            "ALTER TABLE dataset_versions ADD COLUMN IF NOT EXISTS read_options_json TEXT"
        ],
    ),
    # What a scan was asked to score: its label column (None: label quality not assessed)
    # and its weights (None: the defaults), so a report can say which dimensions the
    # overall averaged. Filled in for earlier scans from their ScanRequested audit entry
    # (the same JSON the projector writes), so a replay still matches.
    Migration(
        6,
        "scan label column and weights",
        [
            "ALTER TABLE quality_scans ADD COLUMN label_column TEXT",
            "ALTER TABLE quality_scans ADD COLUMN weights_json TEXT",
            "UPDATE quality_scans SET "
            "label_column = (SELECT json_extract(a.summary, '$.label_column') FROM audit_log a "
            "WHERE a.subject = quality_scans.id AND a.event_type = 'datrix.scan.ScanRequested'), "
            "weights_json = (SELECT json_extract(a.summary, '$.weights') FROM audit_log a "
            "WHERE a.subject = quality_scans.id AND a.event_type = 'datrix.scan.ScanRequested')",
        ],
        lambda _schema: [
            "ALTER TABLE quality_scans ADD COLUMN IF NOT EXISTS label_column TEXT",
            "ALTER TABLE quality_scans ADD COLUMN IF NOT EXISTS weights_json TEXT",
            "UPDATE quality_scans q SET label_column = a.summary::json->>'label_column', "
            "weights_json = NULLIF((a.summary::json->'weights')::text, 'null') "
            "FROM audit_log a WHERE a.subject = q.id "
            "AND a.event_type = 'datrix.scan.ScanRequested'",
        ],
    ),
    # The audit anchor looks up a chain's last checkpoint entry after every batch
    # (projections/audit.py checkpoint_due): by event type, not a scan of the whole trail.
    Migration(
        7,
        "audit entries by event type",
        ["CREATE INDEX IF NOT EXISTS idx_audit_event_type ON audit_log (event_type)"],
        lambda _schema: [
            "CREATE INDEX IF NOT EXISTS idx_audit_event_type ON audit_log (event_type)"
        ],
    ),
    # Least-privilege roles (issue 12): row-level security forced on every tenant table,
    # the reader's tenant from a session the writer issued, not from a setting it can set.
    Migration(8, "reader tenant sessions", [], _least_privilege),
    # Why a version exists (issue 10): upload (every version before fixes), fix, rollback
    # or pipeline, and the fix that made or undid it.
    Migration(
        9,
        "dataset version cause and fix",
        [
            "ALTER TABLE dataset_versions ADD COLUMN cause TEXT NOT NULL DEFAULT 'upload'",
            "ALTER TABLE dataset_versions ADD COLUMN fix_id TEXT",
        ],
        lambda _schema: [
            "ALTER TABLE dataset_versions ADD COLUMN IF NOT EXISTS cause TEXT NOT NULL "
            "DEFAULT 'upload'",
            "ALTER TABLE dataset_versions ADD COLUMN IF NOT EXISTS fix_id TEXT",
        ],
    ),
    # Fixes (issue 10): one row per preview or apply, its job, version, re-scan, rollback.
    Migration(
        10,
        "fixes",
        [FIXES, FIXES_INDEX],
        lambda _schema: [FIXES, FIXES_INDEX, *tenant_isolation("fixes")],
    ),
    # Streams (issue 13): the streams, their closed windows and their quality alerts.
    Migration(
        11,
        "streams",
        [STREAMS, STREAM_WINDOWS, STREAM_ALERTS, *STREAM_INDEXES],
        lambda _schema: [
            STREAMS,
            STREAM_WINDOWS,
            STREAM_ALERTS,
            *STREAM_INDEXES,
            *tenant_isolation("streams"),
            *tenant_isolation("stream_windows"),
            *tenant_isolation("stream_alerts"),
        ],
    ),
]

CREATE_LEDGER = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL)"
)


def pending(applied: set[int]) -> list[Migration]:
    return [m for m in MIGRATIONS if m.version not in applied]


def apply(
    execute: Callable[[str, tuple[Any, ...]], object], dialect: str, schema: str, applied: set[int]
) -> list[int]:
    """Run the pending migrations through ``execute``; return the versions applied."""
    done = []
    for migration in pending(applied):
        statements = migration.sqlite if dialect == "sqlite" else migration.postgres(schema)
        for statement in statements:
            execute(statement, ())
        execute(
            "INSERT INTO schema_migrations (version, name) VALUES ("
            + ("?, ?" if dialect == "sqlite" else "%s, %s")
            + ")",
            (migration.version, migration.name),
        )
        done.append(migration.version)
    return done


# -- a read model's own migrations ---------------------------------------------------------
# A read model outside the core (projections/read_model.py) brings its own migrations,
# numbered from 1 per read model and recorded here under its name: the core's numbering
# above never moves, and this ledger exists only once such a read model is registered.
CREATE_READ_MODEL_LEDGER = (
    "CREATE TABLE IF NOT EXISTS read_model_migrations (read_model TEXT NOT NULL, "
    "version INTEGER NOT NULL, name TEXT NOT NULL, PRIMARY KEY (read_model, version))"
)


def tenant_isolation(table: str) -> list[str]:
    """PostgreSQL statements that give a read model's own table what the core tables have
    (migration 8): the reader role may select from it, and only the rows of the tenant
    session it presents; row-level security is forced, so the writer (the owner) reads and
    writes through a policy of its own. For a read model's postgres migration."""
    return [
        f"GRANT SELECT ON {table} TO {READER_ROLE}",
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        f"DROP POLICY IF EXISTS tenant_isolation ON {table}",
        f"DROP POLICY IF EXISTS tenant_reader ON {table}",
        f"DROP POLICY IF EXISTS tenant_writer ON {table}",
        # (SELECT ...): an init plan, so the session is looked up once per query, not per row
        f"CREATE POLICY tenant_reader ON {table} FOR SELECT TO {READER_ROLE} "
        f"USING (tenant = (SELECT {SESSION_TENANT}()))",
        f"CREATE POLICY tenant_writer ON {table} TO CURRENT_USER USING (true) WITH CHECK (true)",
    ]


def apply_owned(
    execute: Callable[[str, tuple[Any, ...]], object],
    dialect: str,
    schema: str,
    owner: str,
    steps: Sequence[Migration],
    applied: set[int],
) -> list[int]:
    """Run the read model ``owner``'s migrations not in ``applied`` (in version order) and
    record them; return the versions applied."""
    versions = [m.version for m in steps]
    if len(set(versions)) != len(versions) or any(v < 1 for v in versions):
        raise ValueError(f"read model {owner!r}: migration versions must be distinct and >= 1")
    mark = "?, ?, ?" if dialect == "sqlite" else "%s, %s, %s"
    done = []
    for migration in sorted(steps, key=lambda m: m.version):
        if migration.version in applied:
            continue
        statements = migration.sqlite if dialect == "sqlite" else migration.postgres(schema)
        for statement in statements:
            execute(statement, ())
        execute(
            f"INSERT INTO read_model_migrations (read_model, version, name) VALUES ({mark})",
            (owner, migration.version, migration.name),
        )
        done.append(migration.version)
    return done
