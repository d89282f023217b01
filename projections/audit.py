"""The hash-chained audit trail: each row carries the hash of the previous one.

The hash covers every column of the row except the hash itself, in a canonical JSON form,
so altering any stored field — or deleting or reordering rows — breaks the chain at the
first affected entry, which ``verify`` names.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64
COLUMNS = (
    "chain",
    "seq",
    "event_id",
    "tenant",
    "event_type",
    "subject",
    "dataset_id",
    "actor",
    "occurred_at",
    "causation_id",
    "correlation_id",
    "summary",
    "prev_hash",
)


def entry_hash(values: Sequence[Any]) -> str:
    canonical = json.dumps(list(values), separators=(",", ":"), sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Break:
    seq: str  # "17", or "chain/seq" for partitioned logs
    event_id: str
    reason: str


def verify(rows: Iterable[Sequence[Any]]) -> tuple[int, Break | None]:
    """Walk rows (COLUMNS + hash, ordered by chain, seq). Return (entries checked, first
    break). Each chain starts at seq 1 from the genesis hash."""
    prev = GENESIS
    chain: int | None = None
    expected_seq = 1
    count = 0
    for row in rows:
        values, stored_hash = list(row[: len(COLUMNS)]), row[len(COLUMNS)]
        row_chain, seq, event_id, prev_hash = (
            int(values[0]),
            int(values[1]),
            str(values[2]),
            values[-1],
        )
        if row_chain != chain:
            chain, prev, expected_seq = row_chain, GENESIS, 1
        where = f"{seq}" if row_chain == 0 else f"{row_chain}/{seq}"
        if seq != expected_seq:
            return count, Break(where, event_id, f"sequence gap: expected {expected_seq}")
        if prev_hash != prev:
            return count, Break(where, event_id, "prev_hash does not match the previous entry")
        if entry_hash(values) != stored_hash:
            return count, Break(where, event_id, "entry content does not match its hash")
        prev = stored_hash
        expected_seq += 1
        count += 1
    return count, None
