"""Run a requested job and turn its outcome into the command that reports it back.

A job never raises to its caller: a bad dataset or an engine failure becomes a
``FailScan`` command with the reason, so the scan aggregate records a failure instead of
the worker crashing. Result command ids derive from the job id, so re-running a job after a
crash resubmits the same command and the command log drops the copy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from datrix.aggregates.scan import (
    ColumnSummary,
    CompleteScan,
    FailScan,
    IssueSummary,
    JobRequested,
    ScoreCard,
)
from datrix.jobs.engine import ProgressFn, ScanEngine, ScanTuning, no_progress
from datrix.jobs.quality.rowset import Indices, RowSet
from datrix.jobs.report import DEFAULT_WEIGHTS, ScanOptions, ScanReport
from datrix.streams.ports import ObjectStore
from datrix.streams.registry import result_command_id as result_command_id


def _polars_engine(tuning: ScanTuning) -> ScanEngine:
    from datrix.jobs.quality.polars_engine import PolarsScanEngine

    engine: ScanEngine = PolarsScanEngine(tuning)
    return engine


def _spark_engine(tuning: ScanTuning) -> ScanEngine:
    from datrix.jobs.quality.spark_engine import SparkScanEngine

    engine: ScanEngine = SparkScanEngine(tuning)
    return engine


# An engine from the settings' tuning; the composition root (runtime/bootstrap.py) may hand
# a runtime other engines (tests: stand-ins, with jobs run in process).
EngineFactory = Callable[[ScanTuning], ScanEngine]
ENGINES: Mapping[str, EngineFactory] = {"polars": _polars_engine, "spark": _spark_engine}


# Rows per block of affected rows held in memory, and per row group of the Parquet object:
# storing or loading the rows of an issue that flags 27 million rows never holds more than a
# block of them (plus, when loading, the issue's RowSet: a bitmap at most).
ROWS_BLOCK = 1 << 20
ROWS_SCHEMA = pa.schema([("issue_id", pa.string()), ("row", pa.uint64())])


def row_blocks(rows: Sequence[int], block: int = ROWS_BLOCK) -> Iterator[Indices]:
    """The rows of an issue (a list or a ``RowSet``) in ascending order, as int64 blocks of
    at most ``block`` rows."""
    if isinstance(rows, RowSet):
        yield from rows.chunks(block)
        return
    arr = np.asarray(rows, dtype=np.int64)
    if arr.size > 1 and bool((arr[1:] < arr[:-1]).any()):
        arr = np.sort(arr)
    for start in range(0, arr.size, block):
        yield arr[start : start + block]


def _repeated(value: str, n: int) -> pa.Array:
    """``value`` ``n`` times, a string array built from its buffers. Not ``pa.array`` or
    ``pa.scalar``: those import pandas (pyarrow checks their input for pandas objects),
    most of a second of every job process, which uses no pandas otherwise."""
    data = value.encode()
    offsets = (np.arange(n + 1, dtype=np.int64) * len(data)).astype(np.int32)
    return pa.Array.from_buffers(
        pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data * n)]
    )


class _RowsWriter:
    """Write (issue_id, row) pairs to Parquet in row groups of exactly ``group`` rows
    (the last one shorter), whatever the sizes of the blocks handed in: the bytes depend
    only on the rows, so the object stays content-addressed."""

    def __init__(self, path: Path, group: int = ROWS_BLOCK) -> None:
        self._group = group
        self._parts: list[tuple[str, Indices]] = []
        self._pending = 0
        self._writer = pq.ParquetWriter(
            path,
            ROWS_SCHEMA,
            compression="zstd",
            write_statistics=False,
            use_dictionary=["issue_id"],
            # ascending rows delta-encode to a few bits each
            column_encoding={"row": "DELTA_BINARY_PACKED"},
        )

    def add(self, issue_id: str, block: Indices) -> None:
        while block.size:
            take = min(int(block.size), self._group - self._pending)
            self._parts.append((issue_id, block[:take]))
            self._pending += take
            block = block[take:]
            if self._pending == self._group:
                self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        ids = pa.concat_arrays([_repeated(i, len(b)) for i, b in self._parts])
        rows = np.ascontiguousarray(np.concatenate([b for _, b in self._parts]), np.uint64)
        row_array = pa.Array.from_buffers(pa.uint64(), len(rows), [None, pa.py_buffer(rows)])
        table = pa.Table.from_arrays([ids, row_array], schema=ROWS_SCHEMA)
        self._writer.write_table(table, row_group_size=self._group)
        self._parts, self._pending = [], 0

    def close(self) -> None:
        self._flush()
        self._writer.close()


def store_report(report: ScanReport, tenant: str, objects: ObjectStore) -> tuple[str, str]:
    """Persist the full report (JSON) and its affected rows (Parquet: issue_id, row; by
    issue, rows ascending); return the report's (uri, sha256). Both objects are
    content-addressed, so reruns write nothing new. The rows are streamed to a temporary
    file a block at a time and stored from there, so memory stays bounded however many
    rows the issues flag."""
    with tempfile.TemporaryDirectory(prefix="datrix-rows-") as tmp:
        path = Path(tmp) / "rows.parquet"
        writer = _RowsWriter(path)
        try:
            for issue_id, rows in report.affected_rows.items():
                for block in row_blocks(rows):
                    writer.add(issue_id, block)
        finally:
            writer.close()
        rows_uri, rows_sha = objects.put_file(tenant, path, ".rows.parquet")
    document = dataclasses.asdict(dataclasses.replace(report, affected_rows={}))
    document.pop("affected_rows")
    document["affected_rows_uri"] = rows_uri
    document["affected_rows_sha256"] = rows_sha
    body = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str).encode()
    return objects.put_bytes(tenant, body, ".report.json")


def _read_row_blocks(path: Path, only: str | None = None) -> Iterator[tuple[str, Indices]]:
    """(issue_id, rows) runs of a stored affected-rows Parquet, a bounded batch at a time;
    with ``only``, just that issue's rows."""
    parquet = pq.ParquetFile(path, read_dictionary=["issue_id"])
    for batch in parquet.iter_batches(batch_size=ROWS_BLOCK, columns=["issue_id", "row"]):
        ids = batch.column(0)
        if not isinstance(ids, pa.DictionaryArray):  # files written by other writers
            ids = ids.dictionary_encode()
        names = ids.dictionary.to_pylist()
        codes = ids.indices.to_numpy(zero_copy_only=False)
        rows = batch.column(1).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
        if only is not None:
            if only in names:
                picked = rows[codes == names.index(only)]
                if picked.size:
                    yield only, picked
            continue
        bounds = [0, *(np.flatnonzero(codes[1:] != codes[:-1]) + 1).tolist(), int(codes.size)]
        for lo, hi in itertools.pairwise(bounds):
            if hi > lo:
                yield str(names[int(codes[lo])]), rows[lo:hi]


class _RowsCollector:
    """Gathers an issue's rows into a ``RowSet`` of a table of ``size`` rows: as index
    blocks while they are few, into a boolean mask (``size`` bytes, packed at the end)
    once the RowSet would be a bitmap anyway."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.parts: list[Indices] = []
        self.count = 0
        self.mask: npt.NDArray[np.bool_] | None = None

    def add(self, block: Indices) -> None:
        if block.size and (int(block.min()) < 0 or int(block.max()) >= self.size):
            raise ValueError(f"affected row out of range for a table of {self.size} rows")
        if self.mask is not None:
            self.mask[block] = True
            return
        self.parts.append(block)
        self.count += int(block.size)
        if self.count * 64 > self.size:
            self.mask = np.zeros(self.size, dtype=bool)
            for part in self.parts:
                self.mask[part] = True
            self.parts = []

    def rowset(self) -> RowSet:
        if self.mask is not None:
            return RowSet.from_mask(self.mask)
        if not self.parts:
            return RowSet.empty(self.size)
        return RowSet.from_indices(np.concatenate(self.parts), self.size)


def _load_rows(path: Path, size: int, only: str | None = None) -> dict[str, RowSet]:
    collectors: dict[str, _RowsCollector] = {}
    for issue_id, block in _read_row_blocks(path, only):
        collectors.setdefault(issue_id, _RowsCollector(size)).add(block)
    return {issue_id: c.rowset() for issue_id, c in collectors.items()}


@contextlib.contextmanager
def _workdir(workdir: Path | None) -> Iterator[Path]:
    """``workdir`` (the caller's scratch folder), or a temporary folder removed after."""
    if workdir is not None:
        yield workdir
        return
    with tempfile.TemporaryDirectory(prefix="datrix-objects-") as tmp:
        yield Path(tmp)


def _stored_rows(
    objects: ObjectStore, uri: str, size: int, only: str | None, workdir: Path | None
) -> dict[str, RowSet]:
    with _workdir(workdir) as folder:
        return _load_rows(objects.local_copy(uri, folder), size, only)


def load_report(report_uri: str, objects: ObjectStore, workdir: Path | None = None) -> ScanReport:
    """Rebuild the full report (affected rows included, as ``RowSet``s) from its stored
    objects; a remote store's rows object is downloaded into ``workdir`` (default: a
    temporary folder)."""
    from datrix.jobs.report import ColumnProfile, Issue, Scores

    doc = json.loads(objects.read_bytes(report_uri))
    rows: dict[str, Sequence[int]] = dict(
        _stored_rows(objects, doc["affected_rows_uri"], int(doc["rows"]), None, workdir)
    )
    return ScanReport(
        rows=doc["rows"],
        columns=doc["columns"],
        score=Scores(**doc["score"]),
        column_profiles=[ColumnProfile(**c) for c in doc["column_profiles"]],
        issues=[Issue(**i) for i in doc["issues"]],
        affected_rows=rows,
        engine=doc.get("engine", "polars"),
    )


def affected_rows(
    report_uri: str, issue_id: str, objects: ObjectStore, workdir: Path | None = None
) -> RowSet:
    """The sorted rows one issue affects (empty when it has none), without loading the
    other issues' rows."""
    document = json.loads(objects.read_bytes(report_uri))
    size = int(document["rows"])
    found = _stored_rows(objects, document["affected_rows_uri"], size, issue_id, workdir)
    return found.get(issue_id, RowSet.empty(size))


def scan_options(job: JobRequested, objects: ObjectStore, workdir: Path) -> ScanOptions:
    """The engine options a job asks for. The previous version's object is the drift
    baseline (downloaded into ``workdir`` from a remote store); when it is no longer in
    the store (erased, or a store that lost it) the scan runs without drift checks
    instead of failing."""
    previous = _baseline(job.previous_object_uri, objects, workdir)
    # a frozen schema contract: its version's object is the schema's baseline; should it be
    # gone, the schema is compared with the drift baseline, still under the contract
    contract = _baseline(job.contract_object_uri, objects, workdir)
    return ScanOptions(
        label_column=job.label_column,
        # dimensions the request leaves out keep their default weight
        weights={**DEFAULT_WEIGHTS, **(job.weights or {})},
        seed=job.seed,
        previous_path=previous,
        previous_version=job.previous_version if previous is not None else None,
        contract_frozen=job.contract_version is not None,
        contract_path=contract,
        contract_version=job.contract_version if contract is not None else None,
    )


def _baseline(uri: str | None, objects: ObjectStore, workdir: Path) -> Path | None:
    """A local copy of a baseline version's object, or None when there is none or it is no
    longer in the store (erased, or a store that lost it)."""
    if uri is None:
        return None
    try:
        path = objects.local_copy(uri, workdir)
    except (OSError, ValueError, KeyError):
        return None
    return path if path is not None and path.is_file() else None


def run_scan_job(
    job: JobRequested,
    objects: ObjectStore,
    progress: ProgressFn = no_progress,
    tuning: ScanTuning | None = None,
    engines: Mapping[str, EngineFactory] | None = None,
) -> CompleteScan | FailScan:
    """Run the job on its engine (of ``engines``, default ``ENGINES``) with ``tuning``
    (default: the defaults)."""
    started = time.monotonic()
    try:
        engine_factory = (ENGINES if engines is None else engines).get(job.engine)
        if engine_factory is None:
            raise RuntimeError(f"engine {job.engine!r} is not available in this worker")
        engine = engine_factory(tuning or ScanTuning())
        # a remote store's objects are downloaded here: in a job process, TMPDIR is the
        # job's scratch folder (streams/scratch.py), removed when the job ends
        with tempfile.TemporaryDirectory(prefix="datrix-objects-") as tmp:
            workdir = Path(tmp)
            report = engine.scan(
                objects.local_copy(job.object_uri, workdir),
                scan_options(job, objects, workdir),
                progress,
            )
        report_uri, report_sha = store_report(report, job.tenant, objects)
    except Exception as exc:
        return FailScan(
            scan_id=job.originator_id,
            job_id=job.job_id,
            error_type=type(exc).__name__,
            message=(str(exc).splitlines() or [""])[0][:500],
        )
    s = report.score
    return CompleteScan(
        scan_id=job.originator_id,
        job_id=job.job_id,
        engine=report.engine,
        rows=report.rows,
        columns=report.columns,
        score=ScoreCard(
            s.overall, s.completeness, s.consistency, s.accuracy, s.distribution, s.label_quality
        ),
        issues=tuple(
            IssueSummary(
                i.id,
                i.type,
                i.column,
                i.dimension,
                i.severity,
                i.description,
                i.affected_count,
                i.affected_pct,
                i.impact_score,
                i.fix_available,
            )
            for i in report.issues
        ),
        column_profiles=tuple(
            ColumnSummary(
                c.name,
                c.type,
                c.null_count,
                c.null_pct,
                c.distinct_count,
                json.dumps(c.extra, sort_keys=True, default=str),
            )
            for c in report.column_profiles
        ),
        report_uri=report_uri,
        report_sha256=report_sha,
        duration_ms=int((time.monotonic() - started) * 1000),
    )
