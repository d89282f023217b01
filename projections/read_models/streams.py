"""Read models of streams (issue 13): ``streams``, ``stream_windows`` and ``stream_alerts``.

- ``streams``: one row per registered stream: its topic, format and settings, ``active``
  or ``removed``, its degraded partitions, how many windows and records its closed windows
  counted and the end of the latest one, and its latest snapshot (the dataset version the
  records of its latest snapshot period became).
- ``stream_windows``: one row per closed window (a window id: one partition, one window
  start), its record count and its ``WindowMetrics`` as JSON (``metrics_document``: the
  HyperLogLog registers base64, so the windows of several partitions merge).
- ``stream_alerts``: one row per ``StreamQualityDegraded`` / ``StreamQualityRecovered``,
  numbered by the stream's event sequence.

All three are fed by the stream aggregate alone, whose events share one partition of the
event log, so a projector sees them in order. Still, every handler gives the same rows
whatever order it is applied in (the property tests/unit/test_stream_read_models.py
checks): a window is counted into its stream once (the window row is the witness), the
counters add up, the latest window end is a maximum, and a partition's health is the kind
of its alert with the highest sequence number (``degraded_json``), the latest snapshot the
one ending last, so a replay that went another way, or an event projected twice, ends with
the same rows. (A snapshot projected before its stream's registration would be lost: the
aggregate records the registration first, on the same partition.)

The tables are core ones: core migration 11 (``projections/migrations.py``) creates them.
The queries the use cases (``gateway/streams.py``) and the monitor read are below.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any

from datrix.aggregates import stream
from datrix.projections.queries import MAX_CANDIDATES, id_prefix
from datrix.projections.read_model import ReadModel
from datrix.projections.store import ReadStore, Tx
from datrix.streams.messages import Envelope


def _json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _plain(value: Any) -> Any:
    """A dataclass tree as JSON-ready values: bytes base64, tuples lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def metrics_document(metrics: stream.WindowMetrics) -> dict[str, Any]:
    """A window's metrics as the JSON ``stream_windows.metrics_json`` holds (the field
    names of ``WindowMetrics`` and ``FieldMetrics``; ``hll`` base64)."""
    doc: dict[str, Any] = _plain(metrics)
    return doc


def settings_document(event: stream.StreamRegistered) -> dict[str, Any]:
    return {
        "key_field": event.key_field,
        "window_seconds": event.window_seconds,
        "grace_seconds": event.grace_seconds,
        "snapshot_every_seconds": event.snapshot_every_seconds,
        "start_from": event.start_from,
        "thresholds": _plain(event.thresholds),
    }


def _registered(tx: Tx, env: Envelope, event: stream.StreamRegistered) -> str | None:
    """The row, with the counters of any window projected before it (a replay in another
    order): they are recounted from ``stream_windows``."""
    at = env.time.isoformat()
    counted = tx.fetch_one(
        "SELECT COUNT(*), COALESCE(SUM(record_count), 0), MAX(window_end) FROM stream_windows "
        "WHERE stream_id = ?",
        (env.subject,),
    )
    windows, records, last_end = counted if counted is not None else (0, 0, None)
    touched = tx.fetch_one(
        "SELECT MAX(t) FROM (SELECT MAX(closed_at) AS t FROM stream_windows WHERE stream_id = ? "
        "UNION ALL SELECT MAX(occurred_at) FROM stream_alerts WHERE stream_id = ?) AS times",
        (env.subject, env.subject),
    )
    updated = max(at, str(touched[0])) if touched is not None and touched[0] else at
    tx.execute(
        "INSERT INTO streams (stream_id, tenant, name, topic, format, key_field, "
        "window_seconds, grace_seconds, snapshot_every_seconds, start_from, thresholds_json, "
        "status, degraded_json, windows, records, last_window_end, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'active', ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (stream_id) DO UPDATE SET name = excluded.name, topic = excluded.topic, "
        "format = excluded.format, key_field = excluded.key_field, "
        "window_seconds = excluded.window_seconds, grace_seconds = excluded.grace_seconds, "
        "snapshot_every_seconds = excluded.snapshot_every_seconds, "
        "start_from = excluded.start_from, thresholds_json = excluded.thresholds_json, "
        "created_at = excluded.created_at",
        (
            env.subject,
            env.tenant,
            event.name,
            event.topic,
            event.format,
            event.key_field,
            event.window_seconds,
            event.grace_seconds,
            event.snapshot_every_seconds,
            event.start_from,
            _json(_plain(event.thresholds)),
            _json(_health(tx, env.subject)),
            int(windows),
            int(records),
            last_end,
            at,
            updated,
        ),
    )
    return None


LATER = "CASE WHEN streams.updated_at > ? THEN streams.updated_at ELSE ? END"


def _window_closed(tx: Tx, env: Envelope, event: stream.StreamWindowClosed) -> str | None:
    window_id = str(event.window_id)
    if tx.fetch_one("SELECT 1 FROM stream_windows WHERE window_id = ?", (window_id,)):
        return None  # projected before (the aggregate closes a window once)
    start, end = event.window_start.isoformat(), event.window_end.isoformat()
    at = env.time.isoformat()
    tx.execute(
        "INSERT INTO stream_windows (window_id, tenant, stream_id, partition_number, "
        "window_start, window_end, record_count, metrics_json, closed_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            window_id,
            env.tenant,
            env.subject,
            event.partition,
            start,
            end,
            event.metrics.count,
            _json(metrics_document(event.metrics)),
            at,
        ),
    )
    tx.execute(
        "UPDATE streams SET windows = windows + 1, records = records + ?, "
        "last_window_end = CASE WHEN last_window_end IS NULL OR last_window_end < ? THEN ? "
        f"ELSE last_window_end END, updated_at = {LATER} WHERE stream_id = ?",
        (event.metrics.count, end, end, at, at, env.subject),
    )
    return None


def _alert(
    tx: Tx,
    env: Envelope,
    kind: str,
    window_id: str,
    partition: int,
    breaches: list[dict[str, Any]],
) -> None:
    at = env.time.isoformat()
    seq = env.sequence if env.sequence is not None else 0
    tx.execute(
        "INSERT INTO stream_alerts (alert_id, tenant, stream_id, window_id, partition_number, "
        "kind, breaches_json, seq, occurred_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (alert_id) DO NOTHING",
        (
            str(env.id),
            env.tenant,
            env.subject,
            window_id,
            partition,
            kind,
            _json(breaches),
            seq,
            at,
        ),
    )
    row = tx.fetch_one("SELECT degraded_json FROM streams WHERE stream_id = ?", (env.subject,))
    if row is None:
        return  # registered later (a replay in another order): it reads the alerts then
    health: dict[str, list[Any]] = json.loads(row[0]) if row[0] else {}
    latest = _latest_alert(tx, env.subject, partition)
    if latest is not None:
        health[str(partition)] = latest
    tx.execute(
        f"UPDATE streams SET degraded_json = ?, updated_at = {LATER} WHERE stream_id = ?",
        (_json(health), at, at, env.subject),
    )


def _latest_alert(tx: Tx, stream_id: str, partition: int) -> list[Any] | None:
    """[seq, time, kind] of the partition's latest alert (highest sequence number)."""
    row = tx.fetch_one(
        "SELECT seq, occurred_at, kind FROM stream_alerts WHERE stream_id = ? "
        "AND partition_number = ? ORDER BY seq DESC, occurred_at DESC, alert_id DESC LIMIT 1",
        (stream_id, partition),
    )
    return [int(row[0]), str(row[1]), str(row[2])] if row is not None else None


def _health(tx: Tx, stream_id: str) -> dict[str, list[Any]]:
    """Every partition's latest alert (``_latest_alert``), from the alerts table."""
    health: dict[str, list[Any]] = {}
    partition = -1
    while True:
        row = tx.fetch_one(
            "SELECT MIN(partition_number) FROM stream_alerts WHERE stream_id = ? "
            "AND partition_number > ?",
            (stream_id, partition),
        )
        if row is None or row[0] is None:
            return health
        partition = int(row[0])
        latest = _latest_alert(tx, stream_id, partition)
        if latest is not None:
            health[str(partition)] = latest


def _degraded(tx: Tx, env: Envelope, event: stream.StreamQualityDegraded) -> str | None:
    breaches = [_plain(b) for b in event.breaches]
    _alert(tx, env, "degraded", str(event.window_id), event.partition, breaches)
    return None


def _recovered(tx: Tx, env: Envelope, event: stream.StreamQualityRecovered) -> str | None:
    _alert(tx, env, "recovered", str(event.window_id), event.partition, [])
    return None


def _snapshotted(tx: Tx, env: Envelope, event: stream.StreamSnapshotted) -> str | None:
    """The latest snapshot (the one ending last): the dataset version its records became."""
    end = event.window_end.isoformat()
    tx.execute(
        "UPDATE streams SET last_snapshot_dataset = ?, last_snapshot_version = ?, "
        "last_snapshot_end = ? WHERE stream_id = ? "
        "AND (last_snapshot_end IS NULL OR last_snapshot_end < ?)",
        (str(event.dataset_id), event.version, end, env.subject, end),
    )
    return str(event.dataset_id)


def _removed(tx: Tx, env: Envelope, event: stream.StreamRemoved) -> str | None:
    at = env.time.isoformat()
    tx.execute(
        f"UPDATE streams SET status = 'removed', removed_reason = ?, updated_at = {LATER} "
        "WHERE stream_id = ?",
        (event.reason, at, at, env.subject),
    )
    return None


def _window_summary(record: dict[str, Any]) -> dict[str, Any]:
    """A closed window's audit entry: its metrics without the sketches' registers (1 KiB
    of bytes per field, no use to a reader of the trail): their size instead."""
    metrics = record.get("metrics")
    for field in metrics.get("fields", []) if isinstance(metrics, dict) else []:
        if isinstance(field, dict) and isinstance(field.get("hll"), bytes | str):
            field["hll"] = f"{len(field['hll'])} bytes"
    return record


READ_MODEL = ReadModel(
    name="streams",
    tables={"streams": "stream_id", "stream_windows": "window_id", "stream_alerts": "alert_id"},
    handlers={
        stream.StreamRegistered: _registered,
        stream.StreamWindowClosed: _window_closed,
        stream.StreamQualityDegraded: _degraded,
        stream.StreamQualityRecovered: _recovered,
        stream.StreamSnapshotted: _snapshotted,
        stream.StreamRemoved: _removed,
    },
    audit_summaries={stream.StreamWindowClosed: _window_summary},
)


# ---- queries ---------------------------------------------------------------------------
STREAM_COLS = [
    "stream_id",
    "name",
    "topic",
    "format",
    "key_field",
    "window_seconds",
    "grace_seconds",
    "snapshot_every_seconds",
    "start_from",
    "thresholds_json",
    "status",
    "removed_reason",
    "degraded_json",
    "windows",
    "records",
    "last_window_end",
    "last_snapshot_dataset",
    "last_snapshot_version",
    "last_snapshot_end",
    "created_at",
    "updated_at",
]
WINDOW_COLS = [
    "window_id",
    "stream_id",
    "partition_number",
    "window_start",
    "window_end",
    "record_count",
    "metrics_json",
    "closed_at",
]
ALERT_COLS = [
    "alert_id",
    "stream_id",
    "window_id",
    "partition_number",
    "kind",
    "breaches_json",
    "seq",
    "occurred_at",
    "window_start",
    "window_end",
]


def degraded_partitions(health_json: str | None) -> list[int]:
    """The partitions whose latest alert is a Degraded one, ascending."""
    health: dict[str, list[Any]] = json.loads(health_json) if health_json else {}
    return sorted(int(p) for p, state in health.items() if state[2] == "degraded")


def _stream_doc(row: tuple[Any, ...]) -> dict[str, Any]:
    doc = dict(zip(STREAM_COLS, row, strict=True))
    doc["thresholds"] = json.loads(doc.pop("thresholds_json"))
    doc["degraded_partitions"] = degraded_partitions(doc.pop("degraded_json"))
    doc["windows"] = int(doc["windows"])
    doc["records"] = int(doc["records"])
    return doc


def streams(store: ReadStore, tenant: str, status: str | None = None) -> list[dict[str, Any]]:
    """The tenant's streams (all, or those in ``status``), oldest first."""
    also, params = ("AND status = ? ", (status,)) if status else ("", ())
    rows = store.query(
        f"SELECT {', '.join(STREAM_COLS)} FROM streams WHERE tenant = ? {also}"
        "ORDER BY created_at, stream_id",
        (tenant, *params),
    )
    return [_stream_doc(r) for r in rows]


def streams_page(
    store: ReadStore, tenant: str, *, limit: int, after: tuple[str, str] | None = None
) -> list[dict[str, Any]]:
    """At most ``limit`` of the tenant's streams by (created_at, stream_id), after the
    previous page's last ``(created_at, stream_id)``."""
    where, params = "tenant = ?", [tenant]
    if after is not None:
        where += " AND (created_at > ? OR (created_at = ? AND stream_id > ?))"
        params += [after[0], after[0], after[1]]
    rows = store.query(
        f"SELECT {', '.join(STREAM_COLS)} FROM streams WHERE {where} "
        f"ORDER BY created_at, stream_id LIMIT {int(limit)}",
        tuple(params),
    )
    return [_stream_doc(r) for r in rows]


def active_streams(store: ReadStore) -> list[dict[str, Any]]:
    """Every tenant's active streams (for the monitor: read through the owner's store),
    each with its ``tenant``."""
    rows = store.query(
        f"SELECT tenant, {', '.join(STREAM_COLS)} FROM streams WHERE status = 'active' "
        "ORDER BY created_at, stream_id"
    )
    return [{"tenant": r[0], **_stream_doc(r[1:])} for r in rows]


def stream_row(store: ReadStore, tenant: str, name_or_id: str) -> dict[str, Any] | None:
    """The tenant's stream whose id or name is ``name_or_id`` (an active one first)."""
    rows = store.query(
        f"SELECT {', '.join(STREAM_COLS)} FROM streams WHERE tenant = ? "
        "AND (stream_id = ? OR name = ?) ORDER BY status, created_at",
        (tenant, name_or_id, name_or_id),
    )
    return _stream_doc(rows[0]) if rows else None


def stream_ids_starting(store: ReadStore, tenant: str, prefix: str) -> list[str]:
    wanted = id_prefix(prefix)
    if wanted is None:
        return []
    rows = store.query(
        "SELECT stream_id FROM streams WHERE tenant = ? AND stream_id LIKE ? "
        f"ORDER BY stream_id LIMIT {MAX_CANDIDATES + 1}",
        (tenant, f"{wanted}%"),
    )
    return [str(r[0]) for r in rows]


def window_starts(
    store: ReadStore,
    tenant: str,
    stream_id: str,
    *,
    limit: int,
    before: str | None = None,
) -> list[str]:
    """The newest ``limit`` distinct window starts of a stream (any partition), newest
    first, those before ``before`` (a window start, ISO text) when given."""
    where, params = "tenant = ? AND stream_id = ?", [tenant, stream_id]
    if before is not None:
        where += " AND window_start < ?"
        params.append(before)
    rows = store.query(
        f"SELECT DISTINCT window_start FROM stream_windows WHERE {where} "
        f"ORDER BY window_start DESC LIMIT {int(limit)}",
        tuple(params),
    )
    return [str(r[0]) for r in rows]


def windows_between(
    store: ReadStore, tenant: str, stream_id: str, first: str, last: str
) -> list[dict[str, Any]]:
    """The stream's windows (one row per partition) starting from ``first`` to ``last``
    (both included), by start then partition; ``metrics`` parsed."""
    rows = store.query(
        f"SELECT {', '.join(WINDOW_COLS)} FROM stream_windows WHERE tenant = ? "
        "AND stream_id = ? AND window_start >= ? AND window_start <= ? "
        "ORDER BY window_start, partition_number",
        (tenant, stream_id, first, last),
    )
    found = []
    for r in rows:
        doc = dict(zip(WINDOW_COLS, r, strict=True))
        doc["metrics"] = json.loads(doc.pop("metrics_json"))
        found.append(doc)
    return found


def alerts(
    store: ReadStore, tenant: str, stream_id: str, *, after_seq: int = 0, limit: int = 1000
) -> list[dict[str, Any]]:
    """The stream's alerts numbered after ``after_seq``, oldest first, with their window's
    start and end (None when the window is not projected)."""
    rows = store.query(
        "SELECT a.alert_id, a.stream_id, a.window_id, a.partition_number, a.kind, "
        "a.breaches_json, a.seq, a.occurred_at, w.window_start, w.window_end "
        "FROM stream_alerts a LEFT JOIN stream_windows w ON w.window_id = a.window_id "
        "AND w.tenant = a.tenant WHERE a.tenant = ? AND a.stream_id = ? AND a.seq > ? "
        f"ORDER BY a.seq, a.alert_id LIMIT {int(limit)}",
        (tenant, stream_id, after_seq),
    )
    found = []
    for r in rows:
        doc = dict(zip(ALERT_COLS, r, strict=True))
        doc["breaches"] = json.loads(doc.pop("breaches_json"))
        doc["seq"] = int(doc["seq"])
        found.append(doc)
    return found
