"""The read-model projector: folds events into tables and the audit trail.

Each event is applied in one read-model transaction together with the projector's position,
so a crash anywhere leaves either all of an event's effects or none, and a restart resumes
after the last applied event. Only facts from the events are written (times included), so
replaying the same log always produces identical tables.

One event never stops the projector: when a batch fails with anything but an outage, its
events are applied one at a time, and an event that still fails (a read-model handler or
summary hook that raises, a payload that cannot be decoded) is *not projected*: its read
models are left as they were, it still gets its audit entry (the plain payload and the
error's type under ``_not_projected``), and it is listed in ``Projector.failures`` for the
caller to dead-letter and log. Live projection and replay take the same path, so they
still agree.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from datrix.aggregates.common import Event
from datrix.projections import audit
from datrix.projections.read_model import Dispatch, ReadModel, install
from datrix.projections.read_models import CORE_READ_MODELS
from datrix.projections.store import ReadStore, Tx
from datrix.streams.messages import Envelope, decode_event, payload_record

PROJECTOR = "read-models"
NOT_PROJECTED = "_not_projected"


@dataclass(frozen=True)
class NotProjected:
    """An event the read models could not take: audited, read models untouched."""

    position: int
    envelope: Envelope
    error: str  # "<exception type>: <message>"


def transient(exc: BaseException) -> bool:
    """An outage (retried by the caller), not something wrong with an event."""
    import psycopg

    return isinstance(
        exc, psycopg.OperationalError | psycopg.InterfaceError | sqlite3.OperationalError | OSError
    )


def _iso(env: Envelope) -> str:
    return env.time.isoformat()


def _summary(event: Event, dispatch: Dispatch) -> str:
    record = payload_record(event)
    hook = dispatch.summaries.get(type(event))
    if hook is not None:
        record = hook(record)
    return json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)


class Projector:
    """Applies events with the handlers of its read models (``read_models``, default the
    core ones; see ``projections/read_model.py``) and audits every event, handled or not.
    A read model that brings its own migrations has them applied to the store here."""

    def __init__(
        self,
        store: ReadStore,
        name: str = PROJECTOR,
        chain: int = 0,
        read_models: Sequence[ReadModel] = CORE_READ_MODELS,
    ) -> None:
        self.store = store
        self.dispatch = Dispatch.of(read_models)
        install(store, self.dispatch.read_models)
        self.name = name
        self.chain = chain  # the audit chain this projector appends to (a log partition)
        self._head: tuple[int, str] | None = None  # (seq, hash) of the chain's last entry
        self._tenant_seen: dict[str, str] = {}  # tenant -> earliest event time in the batch
        self.failures: list[NotProjected] = []  # of the last apply_batch

    def position(self) -> int:
        return self.store.position(self.name)

    def source_offset(self) -> int | None:
        """Offset in the source log partition of the last record this projector consumed
        (Kafka mode), or None when it has not recorded one."""
        rows = self.store.query(
            "SELECT source_offset FROM projector_position WHERE name = ?", (self.name,)
        )
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    def apply_batch(
        self, batch: Sequence[tuple[int, Envelope]], source_offset: int | None = None
    ) -> int:
        """Apply events in order in ONE transaction with the new position; return how many
        were applied (events at or below the stored position are skipped: redelivery).
        ``source_offset``, the log offset of the batch's last record, is stored with them
        so a consumer can resume exactly where the read models are.

        A batch that fails with anything but an outage is applied again one event at a
        time; an event that fails alone is audited but not projected (``failures``)."""
        self.failures = []
        try:
            return self._apply(batch, source_offset)
        except Exception as exc:
            if transient(exc):
                raise
        applied = 0
        for i, (position, env) in enumerate(batch):
            offset = source_offset if i == len(batch) - 1 else None
            try:
                applied += self._apply([(position, env)], offset)
            except Exception as exc:
                if transient(exc):
                    raise
                error = f"{type(exc).__name__}: {exc}"
                done = self._apply([(position, env)], offset, not_projected=type(exc).__name__)
                if done:  # not when an earlier, interrupted run already recorded it
                    self.failures.append(NotProjected(position, env, error))
                applied += done
        return applied

    def _apply(
        self,
        batch: Sequence[tuple[int, Envelope]],
        source_offset: int | None,
        not_projected: str | None = None,
    ) -> int:
        applied = 0
        self._head = None
        self._tenant_seen = {}
        with self.store.transaction() as tx:
            row = tx.fetch_one(
                "SELECT position FROM projector_position WHERE name = ?", (self.name,)
            )
            done = int(row[0]) if row is not None else 0
            last = done
            for position, env in batch:
                if position <= last:
                    continue
                if not_projected is None:
                    self.apply(tx, env)
                else:
                    self._audit_only(tx, env, not_projected)
                last = position
                applied += 1
            self._organisations(tx)
            if last > done or source_offset is not None:
                # Never move either mark backwards (a revoked consumer may finish late).
                tx.execute(
                    "INSERT INTO projector_position (name, position, source_offset) "
                    "VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                    "position = CASE WHEN excluded.position > projector_position.position "
                    "THEN excluded.position ELSE projector_position.position END, "
                    "source_offset = CASE WHEN projector_position.source_offset IS NULL "
                    "OR excluded.source_offset > projector_position.source_offset "
                    "THEN excluded.source_offset ELSE projector_position.source_offset END",
                    (self.name, last, source_offset),
                )
        return applied

    def _organisations(self, tx: Tx) -> None:
        """Tenants are organisations: a tenant's row appears with its first event. Its
        time is the earliest event time seen, whatever order partitions arrive in, so a
        replay (one partition after another) yields the same row as live projection."""
        for tenant, at in sorted(self._tenant_seen.items()):
            tx.execute(
                "INSERT INTO organisations (id, tenant, name, slug, plan, created_at) "
                "VALUES (?, ?, ?, ?, 'starter', ?) ON CONFLICT (id) DO UPDATE SET created_at = "
                "CASE WHEN excluded.created_at < organisations.created_at "
                "THEN excluded.created_at ELSE organisations.created_at END",
                (tenant, tenant, tenant, tenant, at),
            )

    def apply(self, tx: Tx, env: Envelope) -> None:
        event = decode_event(env)
        at = _iso(env)
        if at < self._tenant_seen.get(env.tenant, "~"):
            self._tenant_seen[env.tenant] = at
        dataset_id: str | None = None
        for handler in self.dispatch.handlers.get(type(event), ()):
            named = handler(tx, env, event)
            if dataset_id is None:
                dataset_id = named  # the first read model that names a dataset wins
        self._audit(tx, env, event, dataset_id, self.chain)

    def _audit_only(self, tx: Tx, env: Envelope, error_type: str) -> None:
        """The audit entry of an event the read models could not take: its payload as
        decoded, without summary hooks (they may be what failed), or none when it cannot
        be decoded, and the error's type (its message may vary; the type does not)."""
        at = _iso(env)
        if at < self._tenant_seen.get(env.tenant, "~"):
            self._tenant_seen[env.tenant] = at
        try:
            record: dict[str, Any] = payload_record(decode_event(env))
        except Exception:
            record = {}
        record[NOT_PROJECTED] = error_type
        summary = json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)
        self._append_audit(tx, env, None, summary, self.chain)

    def _audit(
        self, tx: Tx, env: Envelope, event: Event, dataset_id: str | None, chain: int
    ) -> None:
        self._append_audit(tx, env, dataset_id, _summary(event, self.dispatch), chain)

    def _append_audit(
        self, tx: Tx, env: Envelope, dataset_id: str | None, summary: str, chain: int
    ) -> None:
        # The chain head is read once per transaction and then carried along in memory.
        if self._head is None:
            last = tx.fetch_one(
                "SELECT seq, hash FROM audit_log WHERE chain = ? ORDER BY seq DESC LIMIT 1",
                (chain,),
            )
            self._head = (int(last[0]), str(last[1])) if last else (0, audit.GENESIS)
        seq, prev = self._head[0] + 1, self._head[1]
        values: list[Any] = [
            chain,
            seq,
            str(env.id),
            env.tenant,
            env.type,
            env.subject,
            dataset_id,
            env.actor,
            _iso(env),
            env.causation_id,
            env.correlation_id,
            summary,
            prev,
        ]
        digest = audit.entry_hash(values)
        tx.execute(_AUDIT_INSERT, (*values, digest))
        self._head = (seq, digest)


_AUDIT_INSERT = (
    f"INSERT INTO audit_log ({', '.join(audit.COLUMNS)}, hash) "
    f"VALUES ({', '.join('?' for _ in audit.COLUMNS)}, ?)"
)


def row_dict(columns: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
    return dict(zip(columns, row, strict=True))


__all__ = ["NOT_PROJECTED", "PROJECTOR", "NotProjected", "Projector", "row_dict", "transient"]
