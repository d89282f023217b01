"""Window metrics built from plain records, for the read-side tests of streams (the
monitor's own computation is jobs/streams/metrics.py; these tests feed windows without it,
as the monitor would submit them)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import numpy as np
from datasketch import HyperLogLog

from datrix.aggregates.stream import (
    CloseStreamWindow,
    FieldMetrics,
    WindowMetrics,
    epoch_ms,
    window_id_for,
)

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def sketch(values: list[Any]) -> bytes:
    hll = HyperLogLog(p=10)
    for value in values:
        hll.update(str(value).encode())
    return bytes(hll.reg.astype(np.uint8))


def field_metrics(name: str, values: list[Any]) -> FieldMetrics:
    present = [v for v in values if v is not None]
    numeric = [float(v) for v in present if isinstance(v, int | float)]
    mean = sum(numeric) / len(numeric) if numeric else None
    stddev = (
        math.sqrt(sum((v - mean) ** 2 for v in numeric) / len(numeric))
        if numeric and mean is not None
        else None
    )
    kind = "float" if numeric else ("string" if present else "null")
    return FieldMetrics(
        name=name,
        type=kind,
        nulls=len(values) - len(present),
        null_rate=(len(values) - len(present)) / len(values) if values else 0.0,
        distinct=len(set(map(str, present))),
        hll=sketch(present),
        minimum=min(numeric) if numeric else None,
        maximum=max(numeric) if numeric else None,
        mean=mean,
        stddev=stddev,
        bins=(),
        counts=(),
        psi=None,
    )


def window_metrics(records: list[dict[str, Any]], first_offset: int = 0) -> WindowMetrics:
    names = sorted({k for r in records for k in r})
    return WindowMetrics(
        count=len(records),
        rate_per_second=len(records) / 60.0,
        first_offset=first_offset,
        last_offset=first_offset + max(len(records) - 1, 0),
        fields=tuple(field_metrics(n, [r.get(n) for r in records]) for n in names),
        schema_changes=(),
        max_lag_seconds=1.5,
        mean_lag_seconds=0.5,
        duplicates=0,
        poisoned=0,
        slot_lag_bytes=None,
    )


def close_window(
    stream_id: UUID,
    partition: int,
    index: int,
    records: list[dict[str, Any]],
    window_seconds: int = 60,
) -> CloseStreamWindow:
    """The command the monitor submits for window number ``index`` (from T0) of a partition
    (its command id: the window id)."""
    start = T0 + timedelta(seconds=window_seconds * index)
    return CloseStreamWindow(
        stream_id=stream_id,
        window_id=window_id_for(stream_id, partition, epoch_ms(start)),
        partition=partition,
        window_start=start,
        window_end=start + timedelta(seconds=window_seconds),
        metrics=window_metrics(records, first_offset=100 * index),
    )
