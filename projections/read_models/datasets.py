"""Read model ``datasets``: the ``datasets`` and ``dataset_versions`` tables.

Each version row has its ``cause`` (upload, fix, rollback, pipeline) and the ``fix_id`` that
made or undid it. A fixed version's source is its fix (``fix:<id>``, the Parquet it wrote);
a rollback version copies the source of the version it restores, whose object it is."""

from __future__ import annotations

from datrix.aggregates import dataset
from datrix.projections.read_model import ReadModel
from datrix.projections.store import Tx
from datrix.streams.messages import Envelope


def _registered(tx: Tx, env: Envelope, event: dataset.DatasetRegistered) -> str | None:
    at = env.time.isoformat()
    tx.execute(
        "INSERT INTO datasets (id, tenant, name, description, source_type, status, "
        "latest_version, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, 'registered', 0, ?, ?)",
        (env.subject, env.tenant, event.name, event.description, event.source_type, at, at),
    )
    return env.subject


def _version_added(tx: Tx, env: Envelope, event: dataset.DatasetVersionAdded) -> str | None:
    subject, at = env.subject, env.time.isoformat()
    tx.execute(
        "INSERT INTO dataset_versions (dataset_id, version, tenant, object_uri, "
        "object_sha256, source_uri, source_sha256, format, row_count, column_count, "
        "size_bytes, schema_json, created_at, read_options_json, cause) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            subject,
            event.version,
            env.tenant,
            event.object_uri,
            event.object_sha256,
            event.source_uri,
            event.source_sha256,
            event.format,
            event.rows,
            event.columns,
            event.size_bytes,
            event.schema_json,
            at,
            event.read_options_json,
            event.cause or "upload",
        ),
    )
    _latest(tx, env, event)
    return subject


def _latest(
    tx: Tx,
    env: Envelope,
    event: dataset.DatasetVersionAdded | dataset.FixApplied | dataset.FixRolledBack,
) -> None:
    tx.execute(
        "UPDATE datasets SET status = 'active', latest_version = ?, row_count = ?, "
        "column_count = ?, size_bytes = ?, storage_path = ?, updated_at = ? WHERE id = ?",
        (
            event.version,
            event.rows,
            event.columns,
            event.size_bytes,
            event.object_uri,
            env.time.isoformat(),
            env.subject,
        ),
    )


def _fix_applied(tx: Tx, env: Envelope, event: dataset.FixApplied) -> str | None:
    tx.execute(
        "INSERT INTO dataset_versions (dataset_id, version, tenant, object_uri, "
        "object_sha256, source_uri, source_sha256, format, row_count, column_count, "
        "size_bytes, schema_json, created_at, read_options_json, cause, fix_id) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            env.subject,
            event.version,
            env.tenant,
            event.object_uri,
            event.object_sha256,
            f"fix:{event.fix_id}",
            event.object_sha256,
            "parquet",
            event.rows,
            event.columns,
            event.size_bytes,
            event.schema_json,
            env.time.isoformat(),
            None,
            "fix",
            str(event.fix_id),
        ),
    )
    _latest(tx, env, event)
    return env.subject


def _fix_rolled_back(tx: Tx, env: Envelope, event: dataset.FixRolledBack) -> str | None:
    tx.execute(
        "INSERT INTO dataset_versions (dataset_id, version, tenant, object_uri, "
        "object_sha256, source_uri, source_sha256, format, row_count, column_count, "
        "size_bytes, schema_json, created_at, read_options_json, cause, fix_id) "
        "SELECT dataset_id, ?, tenant, ?, ?, source_uri, source_sha256, format, ?, ?, ?, ?, "
        "?, read_options_json, 'rollback', ? FROM dataset_versions "
        "WHERE dataset_id = ? AND version = ?",
        (
            event.version,
            event.object_uri,
            event.object_sha256,
            event.rows,
            event.columns,
            event.size_bytes,
            event.schema_json,
            env.time.isoformat(),
            str(event.fix_id),
            env.subject,
            event.restored_version,
        ),
    )
    _latest(tx, env, event)
    return env.subject


def _deleted(tx: Tx, env: Envelope, event: dataset.DatasetDeleted) -> str | None:
    tx.execute(
        "UPDATE datasets SET status = 'deleted', updated_at = ? WHERE id = ?",
        (env.time.isoformat(), env.subject),
    )
    return env.subject


READ_MODEL = ReadModel(
    name="datasets",
    tables={"datasets": "id", "dataset_versions": "dataset_id, version"},
    handlers={
        dataset.DatasetRegistered: _registered,
        dataset.DatasetVersionAdded: _version_added,
        dataset.FixApplied: _fix_applied,
        dataset.FixRolledBack: _fix_rolled_back,
        dataset.DatasetDeleted: _deleted,
    },
)
