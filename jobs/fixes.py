"""The fix job (kind ``fix``): apply the fixes of a scan's issues to the version it scanned.

``run_fix_job`` reads the version's Parquet (the job's ``object_uri``) with ``ROW_ID`` (the
row's 0-based position: the numbering of the scan's affected rows), the scan report
(``runner.load_report``) for the selected issues (``job.issue_ids``; none: every issue with
a default fix), builds one spec per issue (``transforms.specs.spec_for_issue`` with the
user's ``options``) and runs them with the engine's ``apply_all`` (Polars, or Spark when
``job.engine == "spark"``). Then:

- **apply**: the new version (``ROW_ID`` dropped) and the provenance (``row_id, column,
  old_value, new_value, fix_id, rule, confidence``, sorted by row and column) are written
  with the transform library's deterministic writer (``base.write_table``: the same input
  and fix give the same bytes, so the same sha256) and stored content-addressed under the
  tenant; ``CompleteFix`` names both, with the counts, ``per_fix_json`` and the new
  version's rows, columns, size and ``schema_json`` (``{column: dtype}``, as ingest has it).
- **preview**: no version; a JSON object (``.fix-preview.json``) with the per-fix counts
  (``cells_changed``, ``rows_removed``, ``rows_affected``: distinct rows touched) and a
  sample of at most ``SAMPLE_ROWS`` changed rows before and after, the values of PII
  columns masked as the report masks them; ``CompleteFix.preview_uri`` names it.

Like the scan job it never raises: a bad request or an engine failure is a ``FailFix`` whose
message says what to do. Progress phases: ``reading``, ``fixing``, ``writing``.

Secrets. ``pii`` fixes that hash or tokenise need the tenant's salt / token key: derived
per tenant as HMAC-SHA256(DATRIX_PII_SALT, tenant) and HMAC-SHA512(DATRIX_TOKEN_KEY, tenant)
(64 bytes: AES-256-SIV). Without the setting the fix fails naming the variable; there is
no default secret. The secrets reach only the transform, never a message or a log line.

Memory. The Polars engine fixes a version in memory or bounded, decided before the
version is read (``polars_route``). In memory it holds the input, the result and their
copies (about ``MEMORY_FACTOR`` times the decoded size) and the change rows (about
``CHANGE_BYTES`` each, estimated from the scan's affected counts of the fixed issues: the
change rows, not the table, dominate when fixes touch many cells). A version above the
scan's in-memory threshold (DATRIX_SCAN_IN_MEMORY_MB / _ROWS, the rule of
``quality.table.ScanTable.open``), or whose in-memory estimate exceeds the job's memory
budget (DATRIX_JOB_MEMORY_MB), is fixed bounded (``transforms.polars_bounded``: a chunk of
DATRIX_SCAN_CHUNK_ROWS rows at a time, or the scan's chunk size) when its fixes allow it;
near-duplicate dedupe and KNN / iterative imputation need the whole table, so such a fix
runs in memory if the estimate fits the budget and is otherwise refused before the
version is read, saying why and naming the Spark engine (the budget would stop the job
half way). The bounded job holds a chunk, the columns a fix fits on, the row hashes of an
exact dedupe, and the change rows' ``row_id, column, rule`` (for the counts), as Spark's.
The Spark engine fixes partition by partition and its outputs are streamed into the two
Parquet objects a row group at a time; what the job process itself holds is the change
rows' ``row_id, column, rule`` and the preview sample's rows.

Checksums. Each engine writes the same table to the same bytes (Polars with
``base.write_table``, or bounded with Polars' streaming sink of the same settings, which
writes the same bytes as ``write_table`` for the same rows: in memory and bounded give the
same version and provenance, ``tests/unit/test_fix_job.py``; Spark's part files re-chunked
into row groups of ``base.PARQUET_ROW_GROUP_ROWS``); the two engines give the same rows,
values and provenance rows, but not the same bytes (two Parquet writers).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from datrix.aggregates.fix import CompleteFix, FailFix, FixJobRequested
from datrix.jobs.engine import ProgressFn, no_progress
from datrix.jobs.quality import pii
from datrix.jobs.quality.table import DECODED_PER_UNCOMPRESSED
from datrix.jobs.report import ScanReport
from datrix.jobs.runner import load_report
from datrix.jobs.transforms import base
from datrix.jobs.transforms.base import ROW_ID, Secrets
from datrix.jobs.transforms.specs import Dedupe, FixSpec, Pii, spec_for_issue, stage
from datrix.streams.faults import crash_point
from datrix.streams.ports import ObjectStore
from datrix.streams.settings import Settings

PHASES = ("reading", "fixing", "writing")
MODES = ("preview", "apply")
ENGINES = ("polars", "spark")
SAMPLE_ROWS = 20  # changed rows shown before/after in a preview
SAMPLE_COLUMNS = 50  # columns shown per sample row at most
# What a Polars fix holds: the input and fixed tables and their intermediate copies (about
# MEMORY_FACTOR times the decoded version), plus each change row with its text values
# (about CHANGE_BYTES each). Measured: every fix of a generated 100,000-row dirty dataset
# (41 MiB decoded, 543,781 change rows) peaked at 898 MiB above the process's start.
MEMORY_FACTOR = 3.0
CHANGE_BYTES = 1500
PROVENANCE_COLUMNS = (
    "row_id",
    "column",
    "old_value",
    "new_value",
    "fix_id",
    "rule",
    "confidence",
)
VERSION_SUFFIX = ".parquet"
PROVENANCE_SUFFIX = ".provenance.parquet"
PREVIEW_SUFFIX = ".fix-preview.json"
CRASH_POINT = "fix-objects-written"  # streams/faults.py: objects stored, result not sent
PII_ISSUE = "pii_detected"
SAFE_PII_ACTIONS = ("redact", "redact_spans", "hash", "tokenise")  # outputs hold no PII


class FixJobError(ValueError):
    """A fix that cannot run as asked, with a one-line reason a person can act on."""


@dataclass(frozen=True)
class PlannedFix:
    """One fix of the run: its spec and the issues (of the scan) it answers."""

    spec: FixSpec
    issue_ids: tuple[str, ...]
    issue_type: str
    column: str | None
    rows: frozenset[int] | None = None  # the issue rows, for fixes that name them


# ---- secrets --------------------------------------------------------------------------
def tenant_secrets(settings: Settings, tenant: str) -> Secrets:
    """The tenant's PII secrets derived from DATRIX_PII_SALT / DATRIX_TOKEN_KEY (either
    None when its setting is unset): HMAC-SHA256(salt, tenant) and HMAC-SHA512(key,
    tenant), so no two tenants share a salt or a key and a leaked tenant secret tells
    nothing of the others'."""
    salt = (
        hmac.new(settings.pii_salt.encode(), tenant.encode(), hashlib.sha256).digest()
        if settings.pii_salt
        else None
    )
    key = (
        hmac.new(settings.token_key.encode(), tenant.encode(), hashlib.sha512).digest()
        if settings.token_key
        else None
    )
    return Secrets(salt=salt, token_key=key)


def _check_secrets(planned: Sequence[PlannedFix], secrets: Secrets) -> None:
    for fix in planned:
        spec = fix.spec
        if not isinstance(spec, Pii):
            continue
        if spec.action == "hash" and secrets.salt is None:
            raise FixJobError(
                f"hashing the PII of column {spec.column!r} needs the tenant's salt: set "
                "DATRIX_PII_SALT (at least 32 characters, e.g. `openssl rand -hex 32`) for "
                "the workers that run fix jobs"
            )
        if spec.action == "tokenise" and secrets.token_key is None:
            raise FixJobError(
                f"tokenising the PII of column {spec.column!r} needs the tenant's token key: "
                "set DATRIX_TOKEN_KEY (at least 32 characters, e.g. `openssl rand -hex 32`) "
                "for the workers that run fix jobs"
            )


# ---- which fixes ------------------------------------------------------------------------
def plan_fixes(
    report: ScanReport, issue_ids: Sequence[str], options: Mapping[str, str]
) -> list[PlannedFix]:
    """One ``PlannedFix`` per distinct spec of the selected issues (none selected: every
    issue with a default fix); issues whose fixes are the same spec share one. Raises
    ``FixJobError`` for an unknown issue, an issue without a fix, bad options, or nothing
    to fix."""
    by_id = {issue.id: issue for issue in report.issues}
    unknown = [i for i in issue_ids if i not in by_id]
    if unknown:
        known = ", ".join(sorted(by_id)) or "none"
        raise FixJobError(
            f"issue {', '.join(unknown)} is not an issue of this scan (its issues: {known})"
        )
    chosen = [by_id[i] for i in dict.fromkeys(issue_ids)] if issue_ids else report.issues
    found: dict[FixSpec, PlannedFix] = {}
    for issue in chosen:
        rows = report.affected_rows.get(issue.id, ())
        try:
            spec = spec_for_issue(issue.type, issue.column, rows, options, issue.description)
        except ValueError as exc:
            raise FixJobError(f"fix options: {exc}") from None
        if spec is None:
            if issue_ids:
                raise FixJobError(
                    f"issue {issue.id} ({issue.type}) has no automatic fix; leave it out"
                )
            continue
        named_rows = getattr(spec, "rows", None)
        previous = found.get(spec)
        found[spec] = PlannedFix(
            spec=spec,
            issue_ids=(*previous.issue_ids, issue.id) if previous else (issue.id,),
            issue_type=previous.issue_type if previous else issue.type,
            column=issue.column,
            rows=frozenset(named_rows) if named_rows is not None else None,
        )
    if not found:
        raise FixJobError("this scan reports no issue with an automatic fix: nothing to fix")
    return list(found.values())


# ---- the job ------------------------------------------------------------------------------
def run_fix_job(
    job: FixJobRequested,
    objects: ObjectStore,
    progress: ProgressFn = no_progress,
    settings: Settings | None = None,
) -> CompleteFix | FailFix:
    """Run the fix job; never raises (a failure is a ``FailFix`` with the reason)."""
    try:
        with tempfile.TemporaryDirectory(prefix="datrix-fix-") as tmp:
            return _run(job, objects, progress, settings or Settings(), Path(tmp))
    except Exception as exc:
        return FailFix(
            fix_id=job.originator_id,
            job_id=job.job_id,
            error_type=type(exc).__name__,
            message=(str(exc).splitlines() or [""])[0][:500],
        )


def _run(
    job: FixJobRequested,
    objects: ObjectStore,
    progress: ProgressFn,
    settings: Settings,
    workdir: Path,
) -> CompleteFix:
    total = len(PHASES)
    if job.mode not in MODES:
        raise FixJobError(f"a fix job is a preview or an apply, not {job.mode!r}")
    if job.engine not in ENGINES:
        raise FixJobError(f"engine {job.engine!r} cannot run fixes (engines: {', '.join(ENGINES)})")
    progress("reading", 0, total)
    report = load_report(job.report_uri, objects, workdir)
    planned = plan_fixes(report, tuple(job.issue_ids), dict(job.options or {}))
    secrets = tenant_secrets(settings, job.tenant)
    _check_secrets(planned, secrets)
    path = objects.local_copy(job.object_uri, workdir)
    rows = int(pq.ParquetFile(path).metadata.num_rows)
    if rows != report.rows:
        raise FixJobError(
            f"the scan counted {report.rows} rows but version {job.version} has {rows}: "
            "the scan is not of this version"
        )
    specs = [p.spec for p in planned]
    write = job.mode == "apply"
    if job.engine == "spark":
        done = _fix_on_spark(path, specs, secrets, settings, workdir, progress, job, write)
    elif polars_route(path, specs, job.version, settings, sum(report_counts(report, planned))):
        done = _fix_bounded(path, specs, secrets, settings, workdir, progress, job, write)
    else:
        done = _fix_on_polars(path, specs, secrets, workdir, progress, job, write)
    per_fix = fix_counts(planned, done.changes, rows)
    cells = int(done.changes.filter(_is_cell()).height)
    removed = int(done.changes.filter(_is_removal()).height)
    preview_uri: str | None = None
    object_uri = object_sha = provenance_uri = provenance_sha = ""
    size = 0
    if done.version_path is not None and done.provenance_path is not None:
        size = done.version_path.stat().st_size
        object_uri, object_sha = objects.put_file(job.tenant, done.version_path, VERSION_SUFFIX)
        provenance_uri, provenance_sha = objects.put_file(
            job.tenant, done.provenance_path, PROVENANCE_SUFFIX
        )
    else:
        document = preview_document(job, report, planned, done, per_fix)
        body = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
        preview_uri, _ = objects.put_bytes(job.tenant, body.encode(), PREVIEW_SUFFIX)
    crash_point(CRASH_POINT)
    progress("writing", total, total)
    return CompleteFix(
        fix_id=job.originator_id,
        job_id=job.job_id,
        mode=job.mode,
        object_uri=object_uri,
        object_sha256=object_sha,
        rows=done.rows_after,
        columns=len(done.schema),
        size_bytes=size,
        schema_json=json.dumps(done.schema),
        provenance_uri=provenance_uri,
        provenance_sha256=provenance_sha,
        cells_changed=cells,
        rows_removed=removed,
        per_fix_json=_json(per_fix),
        preview_uri=preview_uri,
    )


@dataclass(frozen=True)
class _Done:
    """What an engine's run of the fixes leaves for the job: the change rows (``row_id,
    column, rule`` at least), the new version's row count and ``{column: dtype}``, the
    input and output rows of the preview sample (with ``ROW_ID``), and for an apply the
    written version and provenance files."""

    changes: pl.DataFrame
    rows_after: int
    schema: dict[str, str]
    sample_before: pl.DataFrame
    sample_after: pl.DataFrame
    version_path: Path | None = None
    provenance_path: Path | None = None


def sample_row_ids(changes: pl.DataFrame) -> list[int]:
    """The rows a preview shows: the first ``SAMPLE_ROWS`` rows the fixes touch."""
    touched = changes.filter(pl.col("row_id").is_not_null())["row_id"]
    return [int(r) for r in touched.unique().sort().head(SAMPLE_ROWS).to_list()]


def _fix_on_polars(
    path: Path,
    specs: Sequence[FixSpec],
    secrets: Secrets,
    workdir: Path,
    progress: ProgressFn,
    job: FixJobRequested,
    write: bool,
) -> _Done:
    from datrix.jobs.transforms import polars_transforms

    table = base.with_row_ids(pl.read_parquet(path))
    progress("fixing", 1, len(PHASES))
    applied = polars_transforms.apply_all(specs, table, secrets)
    progress("writing", 2, len(PHASES))
    fixed, changes = applied.table, applied.changes
    new_table = fixed.drop(ROW_ID)
    ids = sample_row_ids(changes)
    done = _Done(
        changes=changes,
        rows_after=new_table.height,
        schema={name: str(dtype) for name, dtype in new_table.schema.items()},
        sample_before=table.filter(pl.col(ROW_ID).is_in(ids)),
        sample_after=fixed.filter(pl.col(ROW_ID).is_in(ids)),
    )
    if not write:
        return done
    version_path = workdir / "version.parquet"
    base.write_table(new_table, version_path)
    provenance_path = workdir / "provenance.parquet"
    base.write_table(provenance_table(changes, job.originator_id), provenance_path)
    return dataclasses.replace(done, version_path=version_path, provenance_path=provenance_path)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def report_counts(report: ScanReport, planned: Sequence[PlannedFix]) -> list[int]:
    """The scan's affected counts of the planned fixes' issues: about the change rows the
    fixes will make (a cell per affected row, or a removed row)."""
    counts = {issue.id: issue.affected_count for issue in report.issues}
    return [counts.get(i, 0) for fix in planned for i in fix.issue_ids]


def polars_route(
    path: Path, specs: Sequence[FixSpec], version: int, settings: Settings, changes: int
) -> bool:
    """True when the Polars fix of ``path`` runs bounded, False in memory (module
    docstring); ``FixJobError`` before the version is read when neither can: the in-memory
    estimate (the decoded table ``MEMORY_FACTOR`` times, plus ``CHANGE_BYTES`` per
    expected change row) passes the job's memory budget and a fix needs the whole table."""
    from datrix.jobs.transforms.polars_bounded import check_bounded

    meta = pq.ParquetFile(path).metadata
    rows = int(meta.num_rows)
    uncompressed = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    decoded = uncompressed * DECODED_PER_UNCOMPRESSED
    above = decoded > settings.scan_in_memory_mb * 2**20 or rows > settings.scan_in_memory_rows
    need_mb = (decoded * MEMORY_FACTOR + changes * CHANGE_BYTES) / 2**20
    over = 0 < settings.job_memory_mb < need_mb
    if not (above or over):
        return False
    try:
        check_bounded(specs)
    except ValueError as exc:
        if not over:
            return False  # above the threshold but within the budget: in memory
        raise FixJobError(
            f"version {version} ({rows:,} rows, about {changes:,} cells to change) needs "
            f"about {need_mb:,.0f} MiB to fix in memory on the Polars engine, over the job "
            f"memory budget (DATRIX_JOB_MEMORY_MB={settings.job_memory_mb}), and cannot be "
            f"fixed a chunk at a time: {exc}; fix it on the Spark engine, fix fewer issues "
            "at a time, or raise DATRIX_JOB_MEMORY_MB"
        ) from None
    return True


def _sink(frame: pl.LazyFrame, path: Path) -> None:
    """``frame`` written by Polars' streaming engine with ``base.write_table``'s settings:
    the same rows give the same bytes as ``write_table``, without holding them."""
    frame.sink_parquet(
        path,
        compression=base.PARQUET_COMPRESSION,
        compression_level=base.PARQUET_COMPRESSION_LEVEL,
        statistics=True,
        row_group_size=base.PARQUET_ROW_GROUP_ROWS,
    )


def _fix_bounded(
    path: Path,
    specs: Sequence[FixSpec],
    secrets: Secrets,
    settings: Settings,
    workdir: Path,
    progress: ProgressFn,
    job: FixJobRequested,
    write: bool,
) -> _Done:
    """The fixes a chunk of rows at a time (``polars_bounded.apply_all_bounded``: the same
    table and change rows as in memory, the change rows already in provenance order),
    then streamed into the version and provenance objects with ``write_table``'s settings
    (the in-memory fix's bytes). The job holds a chunk, the change rows' ``row_id, column,
    rule`` and the preview sample's rows."""
    from datrix.jobs.transforms.polars_bounded import apply_all_bounded

    progress("fixing", 1, len(PHASES))
    raw_table, raw_changes = workdir / "bounded-table.parquet", workdir / "bounded-changes.parquet"
    try:
        outcome = apply_all_bounded(
            specs, path, raw_table, raw_changes, secrets, settings.scan_chunk_rows or None
        )
    except ValueError as exc:
        raise FixJobError(str(exc)) from None
    progress("writing", 2, len(PHASES))
    changes = pl.read_parquet(raw_changes, columns=["row_id", "column", "rule"])
    ids = sample_row_ids(changes)
    sample_before = (
        pl.scan_parquet(path)
        .with_row_index(ROW_ID)
        .with_columns(pl.col(ROW_ID).cast(pl.Int64))
        .filter(pl.col(ROW_ID).is_in(ids))
        .collect(engine="streaming")
    )
    # a kept row's position in the output: its row id less the rows removed before it
    removed = changes.filter(_is_removal())["row_id"].sort()
    gone = set(removed.to_list())
    positions = {r - int(removed.search_sorted(r)): r for r in ids if r not in gone}
    found = (
        pl.scan_parquet(raw_table)
        .with_row_index("__position")
        .filter(pl.col("__position").is_in(list(positions)))
        .collect(engine="streaming")
    )
    sample_after = found.select(
        pl.col("__position").replace_strict(positions, return_dtype=pl.Int64).alias(ROW_ID),
        *outcome.columns,
    )
    schema = {name: str(dtype) for name, dtype in pl.read_parquet_schema(raw_table).items()}
    done = _Done(changes, outcome.rows, schema, sample_before, sample_after)
    if not write:
        return done
    version_path = workdir / "version.parquet"
    _sink(pl.scan_parquet(raw_table), version_path)
    provenance_path = workdir / "provenance.parquet"
    provenance = pl.scan_parquet(raw_changes).with_columns(
        pl.lit(str(job.originator_id), pl.String).alias("fix_id")
    )
    _sink(provenance.select(PROVENANCE_COLUMNS), provenance_path)
    return dataclasses.replace(done, version_path=version_path, provenance_path=provenance_path)


def _fix_on_spark(
    path: Path,
    specs: Sequence[FixSpec],
    secrets: Secrets,
    settings: Settings,
    workdir: Path,
    progress: ProgressFn,
    job: FixJobRequested,
    write: bool,
) -> _Done:
    """The fixes on Spark, partition by partition. Spark writes the fixed table (in
    ``ROW_ID`` order) and the provenance (sorted) as part files, which are streamed into
    one Parquet each, in row groups of ``base.PARQUET_ROW_GROUP_ROWS`` rows, a batch at a
    time: the job process holds a row group, not the table. The change rows' ``row_id,
    column, rule`` come back for the counts, and the preview sample's rows only."""
    from pyspark.sql import functions as F

    from datrix.jobs.quality.spark_engine import spark_session
    from datrix.jobs.transforms import spark_transforms

    spark = spark_session(
        settings.spark_master or "local[*]",
        settings.spark_driver_memory,
        settings.spark_executor_memory,
    )
    sdf = spark_transforms.with_row_ids(spark.read.parquet(str(path)))
    progress("fixing", 1, len(PHASES))
    applied = spark_transforms.apply_all(list(specs), sdf, secrets)
    changes_dir = workdir / "spark-changes"
    ordered = applied.changes.orderBy(
        F.col("row_id").asc_nulls_first(), F.col("column").asc_nulls_first()
    ).withColumn("fix_id", F.lit(str(job.originator_id)))
    ordered.select(*PROVENANCE_COLUMNS).write.parquet(str(changes_dir))
    progress("writing", 2, len(PHASES))
    changes = _read_parts(changes_dir, ["row_id", "column", "rule"])
    ids = sample_row_ids(changes)
    table_cols = [c for c in applied.table.columns if c != ROW_ID]
    data_cols = [c for c in sdf.columns if c != ROW_ID]
    picked = F.col(ROW_ID).isin(ids) if ids else F.lit(False)
    before = pl.from_arrow(sdf.filter(picked).toArrow())
    after = pl.from_arrow(applied.table.filter(picked).toArrow())
    assert isinstance(before, pl.DataFrame) and isinstance(after, pl.DataFrame)
    sample_before = before.select(ROW_ID, *data_cols).sort(ROW_ID)
    sample_after = after.select(ROW_ID, *table_cols).sort(ROW_ID)
    if not write:
        empty = pl.from_arrow(applied.table.select(*_spark_cols(table_cols)).limit(0).toArrow())
        assert isinstance(empty, pl.DataFrame)
        schema = {name: str(dtype) for name, dtype in empty.schema.items()}
        rows_after = int(applied.table.count())
        return _Done(changes, rows_after, schema, sample_before, sample_after)
    table_dir = workdir / "spark-table"
    applied.table.orderBy(ROW_ID).select(*_spark_cols(table_cols)).write.parquet(str(table_dir))
    version_path = workdir / "version.parquet"
    rows_after = _stream_parts(table_dir, version_path)
    schema = {name: str(dtype) for name, dtype in pl.read_parquet_schema(version_path).items()}
    provenance_path = workdir / "provenance.parquet"
    _stream_parts(changes_dir, provenance_path)
    return _Done(
        changes, rows_after, schema, sample_before, sample_after, version_path, provenance_path
    )


def _spark_cols(names: Sequence[str]) -> list[Any]:
    from datrix.jobs.transforms import spark_transforms

    return [spark_transforms.col(c) for c in names]


def _part_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("part-*.parquet"))


def _read_parts(folder: Path, columns: Sequence[str]) -> pl.DataFrame:
    frames = [pl.read_parquet(f, columns=list(columns)) for f in _part_files(folder)]
    return (
        pl.concat(frames, how="vertical_relaxed")
        if frames
        else pl.DataFrame(schema={c: base.CHANGES_SCHEMA[c] for c in columns})
    )


def _stream_parts(folder: Path, out: Path) -> int:
    """Concatenate Spark's part files (in their order) into one Parquet with the fix
    outputs' settings, in row groups of exactly ``base.PARQUET_ROW_GROUP_ROWS`` rows (the
    last one shorter), whatever the part sizes: the bytes depend only on the rows.
    Returns the row count."""
    group = base.PARQUET_ROW_GROUP_ROWS
    files = _part_files(folder)
    if not files:
        raise FixJobError(f"Spark wrote no output in {folder.name}")
    schema = pq.read_schema(files[0]).remove_metadata()
    writer = pq.ParquetWriter(
        out,
        schema,
        compression=base.PARQUET_COMPRESSION,
        compression_level=base.PARQUET_COMPRESSION_LEVEL,
        write_statistics=True,
    )
    pending: list[pa.RecordBatch] = []
    count = rows = 0

    def flush(n: int) -> None:
        nonlocal pending, count
        table = pa.Table.from_batches(pending, schema)
        writer.write_table(table.slice(0, n), row_group_size=group)
        rest = table.slice(n)
        pending = rest.to_batches()
        count = rest.num_rows

    try:
        for file in files:
            for read in pq.ParquetFile(file).iter_batches(batch_size=65_536):
                batches = pa.Table.from_batches([read]).cast(schema).to_batches()
                pending.extend(batches)
                count += read.num_rows
                rows += read.num_rows
                while count >= group:
                    flush(group)
        if count or rows == 0:
            flush(count)
    finally:
        writer.close()
    return rows


# ---- what the fixes did ------------------------------------------------------------------
def _is_cell() -> pl.Expr:
    return pl.col("row_id").is_not_null() & pl.col("column").is_not_null()


def _is_removal() -> pl.Expr:
    return pl.col("row_id").is_not_null() & pl.col("column").is_null()


def _is_drop() -> pl.Expr:
    return pl.col("row_id").is_null()


def _stages(rule: pl.Expr) -> pl.Expr:
    """The ORDER stages in a merged rule (``normalise.canonical+pii.hash`` ->
    [normalise, pii])."""
    return rule.str.split("+").list.eval(pl.element().str.split(".").list.first())


def _fix_rows(
    fix: PlannedFix, planned: Sequence[PlannedFix], changes: pl.DataFrame
) -> pl.DataFrame:
    """The change rows of one fix. A merged cell row names every fix that changed the
    cell (its rules joined with ``+``); a fix is known by its stage and column and, where
    two fixes of one stage share a column, by the issue rows it names."""
    spec = fix.spec
    if isinstance(spec, Dedupe):
        return changes.filter(_is_removal() & (pl.col("rule") == spec.rule))
    if isinstance(spec, Pii) and spec.action == "drop_column":
        return changes.filter(_is_drop() & (pl.col("column") == spec.column))
    mine = changes.filter(
        _is_cell()
        & (pl.col("column") == fix.column)
        & _stages(pl.col("rule")).list.contains(stage(spec))
    )
    shared = [
        p
        for p in planned
        if p is not fix and p.column == fix.column and stage(p.spec) == stage(spec)
    ]
    if shared and fix.rows is not None:
        mine = mine.filter(pl.col("row_id").is_in(sorted(fix.rows)))
    return mine


def fix_counts(
    planned: Sequence[PlannedFix], changes: pl.DataFrame, rows: int
) -> list[dict[str, Any]]:
    """Per fix: ``issue_id`` (the first of ``issue_ids``), ``type``, ``column``, ``rule``,
    ``cells_changed``, ``rows_removed``, ``rows_affected`` (distinct rows touched; every
    row for a dropped column) and ``column_dropped``."""
    counts = []
    for fix in planned:
        mine = _fix_rows(fix, planned, changes)
        dropped = bool(mine.filter(_is_drop()).height)
        counts.append(
            {
                "issue_id": fix.issue_ids[0],
                "issue_ids": list(fix.issue_ids),
                "type": fix.issue_type,
                "column": fix.column,
                "rule": _rule_applied(fix.spec, mine),
                "cells_changed": int(mine.filter(_is_cell()).height),
                "rows_removed": int(mine.filter(_is_removal()).height),
                "rows_affected": rows
                if dropped
                else int(mine.filter(pl.col("row_id").is_not_null())["row_id"].n_unique()),
                "column_dropped": dropped,
            }
        )
    return counts


def _rule_applied(spec: FixSpec, mine: pl.DataFrame) -> str:
    """The rule the fix's change rows record (an impute of a text column records
    ``impute.mode``, not the spec's ``impute.median``); the spec's rule when it changed
    nothing or recorded several."""
    prefix = stage(spec)
    if isinstance(spec, Dedupe) or mine.height == 0:
        return spec.rule
    recorded = (
        mine.select(pl.col("rule").str.split("+").explode().unique())
        .filter(pl.col("rule").str.split(".").list.first() == prefix)["rule"]
        .to_list()
    )
    return str(recorded[0]) if len(recorded) == 1 else spec.rule


def provenance_table(changes: pl.DataFrame, fix_id: UUID) -> pl.DataFrame:
    """The provenance object's rows: the merged changes with the fix id, sorted by row and
    column (a dropped column first, a removed row before its cells)."""
    return (
        base.conform(changes)
        .with_columns(pl.lit(str(fix_id), pl.String).alias("fix_id"))
        .select(PROVENANCE_COLUMNS)
        .sort(["row_id", "column"], nulls_last=False, maintain_order=True)
    )


# ---- preview ----------------------------------------------------------------------------
def mask_value(value: str) -> str:
    """A PII value as the report shows it (``quality.pii.mask_value``:
    ``alice@example.com`` -> ``a•••@e•••.com``)."""
    return str(pii.mask_value(value))


def _texts(frame: pl.DataFrame, columns: Iterable[str]) -> pl.DataFrame:
    return frame.select(
        pl.col(ROW_ID), *(base.text(pl.col(c), frame.schema[c]).alias(c) for c in columns)
    )


def preview_document(
    job: FixJobRequested,
    report: ScanReport,
    planned: Sequence[PlannedFix],
    done: _Done,
    per_fix: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The preview object: counts (total and per fix) and a before/after sample of at most
    ``SAMPLE_ROWS`` changed rows (their changed columns, at most ``SAMPLE_COLUMNS``; a
    removed row has ``after`` null). Values of PII columns (a ``pii_detected`` issue of
    the scan) are masked, except the output of a PII fix (redacted, hashed, tokenised)."""
    changes = done.changes
    touched = changes.filter(pl.col("row_id").is_not_null())
    dropped = changes.filter(_is_drop())["column"].to_list()
    sample_ids = sample_row_ids(changes)
    in_sample = touched.filter(pl.col("row_id").is_in(sample_ids))
    changed_columns = set(in_sample.filter(_is_cell())["column"].to_list()) | set(dropped)
    data_columns = [c for c in done.sample_before.columns if c != ROW_ID]
    shown = [c for c in data_columns if c in changed_columns] or data_columns
    shown = shown[:SAMPLE_COLUMNS]
    pii_columns = {i.column for i in report.issues if i.type == PII_ISSUE and i.column}
    pii_columns |= {p.spec.column for p in planned if isinstance(p.spec, Pii)}
    safe_after = {
        p.spec.column
        for p in planned
        if isinstance(p.spec, Pii) and p.spec.action in SAFE_PII_ACTIONS
    }
    before = _texts(done.sample_before, shown)
    after_columns = [c for c in shown if c in done.sample_after.columns]
    after = _texts(done.sample_after, after_columns)
    before_rows = {r[ROW_ID]: r for r in before.iter_rows(named=True)}
    after_rows = {r[ROW_ID]: r for r in after.iter_rows(named=True)}

    def shown_value(column: str, value: str | None, is_after: bool) -> str | None:
        if value is None or column not in pii_columns:
            return value
        if is_after and column in safe_after:
            return value
        return mask_value(value)

    sample = []
    for row_id in sample_ids:
        old = before_rows.get(row_id, {})
        new = after_rows.get(row_id)
        cells = in_sample.filter((pl.col("row_id") == row_id) & _is_cell())
        sample.append(
            {
                "row": int(row_id),
                "removed": new is None,
                "changed": sorted(cells["column"].to_list()),
                "before": {c: shown_value(c, old.get(c), False) for c in shown},
                "after": None
                if new is None
                else {c: shown_value(c, new.get(c), True) for c in after_columns},
            }
        )
    rows_affected = (
        report.rows if dropped else int(touched["row_id"].n_unique()) if touched.height else 0
    )
    return {
        "fix_id": str(job.originator_id),
        "dataset_id": str(job.dataset_id),
        "scan_id": str(job.scan_id),
        "base_version": job.version,
        "engine": job.engine,
        "rows": report.rows,
        "rows_after": done.rows_after,
        "columns_after": len(done.schema),
        "cells_changed": int(changes.filter(_is_cell()).height),
        "rows_removed": int(changes.filter(_is_removal()).height),
        "rows_affected": rows_affected,
        "columns_dropped": dropped,
        "fixes": list(per_fix),
        "sample": sample,
        "masked_columns": sorted(c for c in pii_columns if c in shown),
    }
