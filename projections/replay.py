"""Rebuild read models from the event log and prove them identical to the live ones."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from datrix.projections.projector import Projector
from datrix.projections.read_model import Dispatch, ReadModel, install
from datrix.projections.read_models import CORE_READ_MODELS
from datrix.projections.store import ReadStore
from datrix.streams.messages import Envelope
from datrix.streams.ports import EventLog

BATCH = 1000


def checksum_order(read_models: Sequence[ReadModel] = CORE_READ_MODELS) -> dict[str, str]:
    """Each checksummed table with its ordered primary key: the projector's own tables
    (organisations, audit_log) and every table of the registered read models."""
    return dict(Dispatch.of(read_models).checksum_order)


def table_checksums(
    store: ReadStore, read_models: Sequence[ReadModel] = CORE_READ_MODELS
) -> dict[str, str]:
    sums: dict[str, str] = {}
    for table, order in checksum_order(read_models).items():
        digest = hashlib.sha256()
        for row in store.query(f"SELECT * FROM {table} ORDER BY {order}"):
            digest.update(json.dumps(list(row), default=str).encode())
            digest.update(b"\n")
        sums[table] = digest.hexdigest()
    return sums


def combined(sums: dict[str, str]) -> str:
    return hashlib.sha256("".join(f"{t}:{h}" for t, h in sorted(sums.items())).encode()).hexdigest()


@dataclass(frozen=True)
class ReplayResult:
    events: int
    checksums: dict[str, str]

    @property
    def checksum(self) -> str:
        return combined(self.checksums)


def rebuild(
    log: EventLog,
    target: ReadStore,
    upto: int | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    as_of: datetime | None = None,
    read_models: Sequence[ReadModel] = CORE_READ_MODELS,
) -> ReplayResult:
    """Apply every event (up to position ``upto``; with ``as_of``, only events that had
    happened by then) to an empty read store."""
    projector = Projector(target, read_models=read_models)
    head = log.head() if upto is None else upto
    position = 0
    applied = 0
    while position < head:
        read = [(p, e) for p, e in log.read(position, BATCH) if p <= head]
        if not read:
            break
        position = read[-1][0]
        batch = [(p, e) for p, e in read if as_of is None or e.time <= as_of]
        applied += projector.apply_batch(batch)
        if on_batch:
            on_batch(position, head)
    return ReplayResult(applied, table_checksums(target, read_models))


def rebuild_partitioned(
    partitions: dict[int, list[tuple[int, Envelope]]],
    target: ReadStore,
    as_of: datetime | None = None,
    read_models: Sequence[ReadModel] = CORE_READ_MODELS,
) -> ReplayResult:
    """Apply each partition's events in order (one audit chain per partition)."""
    applied = 0
    install(target, read_models)  # their tables exist even when no partition has events
    for partition, events in sorted(partitions.items()):
        chosen = [(p, e) for p, e in events if as_of is None or e.time <= as_of]
        projector = Projector(
            target, name=f"read-models:{partition}", chain=partition, read_models=read_models
        )
        for start in range(0, len(chosen), BATCH):
            applied += projector.apply_batch(chosen[start : start + BATCH])
    return ReplayResult(applied, table_checksums(target, read_models))
