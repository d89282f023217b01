"""The ``stream-snapshot`` job: one snapshot period of a stream becomes a dataset version.

The monitor wrote each closed window's decoded records as a content-addressed Parquet part
(``write_part``) and named it in ``CloseStreamWindow.records_uri``; when the stream
aggregate has every partition's windows of a period it requests this job with the period's
parts (``StreamSnapshotRequested``). ``run_snapshot_job`` concatenates them (by window
start, then partition; columns a part lacks are null, types widened) into one Parquet in
the types every engine reads (``normalise_types``), stores it content-addressed and
returns ``AddDatasetVersion`` (cause ``stream``) of the stream's dataset; its
``source_uri`` names the stream and period (``snapshot_source_uri``), from which the
policy ``stream-snapshots`` records ``AddStreamSnapshot``. The same parts give the same
bytes, so a job run twice (a crash before its result was committed) stores one object, and
its result command has the same id (the processor drops the copy).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from typing import Any

import polars as pl

from datrix.aggregates.common import Command
from datrix.aggregates.dataset import AddDatasetVersion
from datrix.aggregates.stream import (
    FailStreamSnapshot,
    StreamSnapshotRequested,
    snapshot_source_uri,
)
from datrix.jobs.quality.types import normalise_types
from datrix.streams import scratch
from datrix.streams.ports import ObjectStore, ProgressFn
from datrix.streams.settings import Settings

PART_SUFFIX = ".parquet"
SNAPSHOT_SUFFIX = ".parquet"


def part_bytes(rows: Sequence[dict[str, Any]] | pl.DataFrame) -> bytes:
    """One window's decoded records as Parquet bytes (the same rows give the same bytes)."""
    frame = rows if isinstance(rows, pl.DataFrame) else pl.DataFrame(list(rows))
    out = io.BytesIO()
    frame.write_parquet(out, statistics=False)
    return out.getvalue()


def write_part(objects: ObjectStore, tenant: str, frames: Sequence[pl.DataFrame]) -> str | None:
    """Store one window's record frames (the accumulator's, in offset order) as one
    content-addressed Parquet part; its URI, or None when the window has no rows."""
    frames = [f for f in frames if f.height]
    if not frames:
        return None
    frame = frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")
    uri, _sha = objects.put_bytes(tenant, part_bytes(frame), PART_SUFFIX)
    return uri


def run_snapshot_job(
    job: StreamSnapshotRequested, objects: ObjectStore, progress: ProgressFn, settings: Settings
) -> Command:
    """The job; never raises (a failure is ``FailStreamSnapshot``)."""
    try:
        return _snapshot(job, objects, progress, settings)
    except Exception as exc:  # the job's result either way
        return FailStreamSnapshot(
            stream_id=job.originator_id,
            job_id=job.job_id,
            error_type=type(exc).__name__,
            message=str(exc) or type(exc).__name__,
        )


def _snapshot(
    job: StreamSnapshotRequested, objects: ObjectStore, progress: ProgressFn, settings: Settings
) -> AddDatasetVersion:
    if not job.parts:
        raise ValueError("a snapshot job names no window parts")
    frames = []
    for done, uri in enumerate(job.parts):
        progress("read", done, len(job.parts))
        frames.append(pl.read_parquet(io.BytesIO(objects.read_bytes(uri))))
    progress("read", len(job.parts), len(job.parts))
    frame = pl.concat(frames, how="diagonal_relaxed")
    if frame.width == 0 or frame.height == 0:
        raise ValueError("the period's windows hold no rows")
    with scratch.tempdir(settings.home / "tmp", "snapshot-") as workdir:
        raw = workdir / "snapshot.parquet"
        frame.write_parquet(raw, statistics=True)
        path = normalise_types(raw, workdir)
        schema = pl.scan_parquet(path, glob=False).collect_schema()
        size = path.stat().st_size
        object_uri, object_sha = objects.put_file(job.tenant, path, SNAPSHOT_SUFFIX)
    progress("write", 1, 1)
    source = snapshot_source_uri(job.originator_id, job.window_start, job.window_end)
    return AddDatasetVersion(
        dataset_id=job.dataset_id,
        object_uri=object_uri,
        object_sha256=object_sha,
        source_uri=source,
        source_sha256=hashlib.sha256("\n".join(job.parts).encode()).hexdigest(),
        format="parquet",
        rows=frame.height,
        columns=len(schema),
        size_bytes=size,
        schema_json=json.dumps({name: str(dtype) for name, dtype in schema.items()}),
        cause="stream",
    )
