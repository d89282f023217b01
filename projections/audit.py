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
    seq: int
    event_id: str
    reason: str


def verify(rows: Iterable[Sequence[Any]]) -> tuple[int, Break | None]:
    """Walk rows (COLUMNS + hash, ordered by seq). Return (entries checked, first break)."""
    prev = GENESIS
    expected_seq = 1
    count = 0
    for row in rows:
        values, stored_hash = list(row[: len(COLUMNS)]), row[len(COLUMNS)]
        seq, event_id, prev_hash = int(values[0]), str(values[1]), values[-1]
        if seq != expected_seq:
            return count, Break(seq, event_id, f"sequence gap: expected {expected_seq}")
        if prev_hash != prev:
            return count, Break(seq, event_id, "prev_hash does not match the previous entry")
        if entry_hash(values) != stored_hash:
            return count, Break(seq, event_id, "entry content does not match its hash")
        prev = stored_hash
        expected_seq += 1
        count += 1
    return count, None
