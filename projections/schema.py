"""Read-model tables (portable SQL: runs on SQLite and PostgreSQL).

They follow the seed schema (datasets, quality_scans, quality_issues, ...) with the tenant
on every row. ``audit_log`` is append-only and hash-chained, one chain per partition of the
event log (the embedded log has one, ``datrix.events`` one per Kafka partition).
``projector_position`` holds each projector's consumed position, written in the same
transaction as its rows.
"""

from __future__ import annotations

TABLES: dict[str, str] = {
    "organisations": """
CREATE TABLE IF NOT EXISTS organisations (
    id         TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    slug       TEXT NOT NULL UNIQUE,
    plan       TEXT NOT NULL,
    created_at TEXT NOT NULL
)""",
    "datasets": """
CREATE TABLE IF NOT EXISTS datasets (
    id             TEXT PRIMARY KEY,
    tenant         TEXT NOT NULL,
    name           TEXT NOT NULL,
    description    TEXT,
    source_type    TEXT NOT NULL,
    status         TEXT NOT NULL,
    latest_version INTEGER NOT NULL DEFAULT 0,
    row_count      BIGINT,
    column_count   INTEGER,
    size_bytes     BIGINT,
    storage_path   TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
)""",
    "dataset_versions": """
CREATE TABLE IF NOT EXISTS dataset_versions (
    dataset_id    TEXT NOT NULL,
    version       INTEGER NOT NULL,
    tenant        TEXT NOT NULL,
    object_uri    TEXT NOT NULL,
    object_sha256 TEXT NOT NULL,
    source_uri    TEXT NOT NULL,
    source_sha256 TEXT NOT NULL,
    format        TEXT NOT NULL,
    row_count     BIGINT NOT NULL,
    column_count  INTEGER NOT NULL,
    size_bytes    BIGINT NOT NULL,
    schema_json   TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (dataset_id, version)
)""",
    "quality_scans": """
CREATE TABLE IF NOT EXISTS quality_scans (
    id                  TEXT PRIMARY KEY,
    tenant              TEXT NOT NULL,
    dataset_id          TEXT NOT NULL,
    dataset_version     INTEGER NOT NULL,
    status              TEXT NOT NULL,
    engine              TEXT NOT NULL,
    job_id              TEXT,
    overall_score       DOUBLE PRECISION,
    completeness_score  DOUBLE PRECISION,
    consistency_score   DOUBLE PRECISION,
    accuracy_score      DOUBLE PRECISION,
    distribution_score  DOUBLE PRECISION,
    label_quality_score DOUBLE PRECISION,
    row_count           BIGINT,
    column_count        INTEGER,
    issue_count         TEXT,
    report_uri          TEXT,
    report_sha256       TEXT,
    error               TEXT,
    scan_duration_ms    BIGINT,
    created_at          TEXT NOT NULL,
    completed_at        TEXT
)""",
    "quality_issues": """
CREATE TABLE IF NOT EXISTS quality_issues (
    scan_id        TEXT NOT NULL,
    issue_id       TEXT NOT NULL,
    tenant         TEXT NOT NULL,
    dataset_id     TEXT NOT NULL,
    column_name    TEXT,
    issue_type     TEXT NOT NULL,
    dimension      TEXT NOT NULL,
    severity       TEXT NOT NULL,
    description    TEXT NOT NULL,
    affected_count BIGINT NOT NULL,
    affected_pct   DOUBLE PRECISION NOT NULL,
    impact_score   DOUBLE PRECISION NOT NULL,
    fix_available  INTEGER NOT NULL,
    status         TEXT NOT NULL,
    PRIMARY KEY (scan_id, issue_id)
)""",
    "columns": """
CREATE TABLE IF NOT EXISTS columns (
    scan_id        TEXT NOT NULL,
    position       INTEGER NOT NULL,
    tenant         TEXT NOT NULL,
    dataset_id     TEXT NOT NULL,
    name           TEXT NOT NULL,
    type           TEXT NOT NULL,
    null_count     BIGINT NOT NULL,
    null_pct       DOUBLE PRECISION NOT NULL,
    distinct_count BIGINT NOT NULL,
    extra_json     TEXT NOT NULL,
    PRIMARY KEY (scan_id, position)
)""",
    "command_status": """
CREATE TABLE IF NOT EXISTS command_status (
    command_id   TEXT PRIMARY KEY,
    tenant       TEXT NOT NULL,
    command_type TEXT NOT NULL,
    status       TEXT NOT NULL,
    reason       TEXT,
    aggregate_id TEXT,
    updated_at   TEXT NOT NULL
)""",
    "audit_log": """
CREATE TABLE IF NOT EXISTS audit_log (
    chain          INTEGER NOT NULL,
    seq            BIGINT NOT NULL,
    event_id       TEXT NOT NULL UNIQUE,
    tenant         TEXT NOT NULL,
    event_type     TEXT NOT NULL,
    subject        TEXT NOT NULL,
    dataset_id     TEXT,
    actor          TEXT NOT NULL,
    occurred_at    TEXT NOT NULL,
    causation_id   TEXT,
    correlation_id TEXT NOT NULL,
    summary        TEXT NOT NULL,
    prev_hash      TEXT NOT NULL,
    hash           TEXT NOT NULL,
    PRIMARY KEY (chain, seq)
)""",
    "projector_position": """
CREATE TABLE IF NOT EXISTS projector_position (
    name     TEXT PRIMARY KEY,
    position BIGINT NOT NULL
)""",
}

INDEXES = [
    "CREATE INDEX IF NOT EXISTS idx_datasets_tenant_name ON datasets (tenant, name)",
    "CREATE INDEX IF NOT EXISTS idx_scans_dataset ON quality_scans (dataset_id, created_at)",
    "CREATE INDEX IF NOT EXISTS idx_issues_impact ON quality_issues (dataset_id, impact_score)",
    "CREATE INDEX IF NOT EXISTS idx_audit_dataset ON audit_log (dataset_id, occurred_at)",
]
