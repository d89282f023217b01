"""The application services: every use case of the CLI (and of the HTTP API next), as
plain functions over a ``Runtime`` and plain arguments. They return dataclasses, dicts
and lists, raise ``datrix.gateway.errors`` (UserInputError, NotFound, DatrixError) and never
print; the CLI parses options, calls one of them and renders the result.

By resource (the REST surface of the specification, section 2.3):

- datasets: ``views(rt).datasets()`` / ``datasets_page``, ``resolve_dataset`` (GET
  /v1/datasets[/{id}]), ``dataset_versions``,
  ``delete_dataset`` (DELETE /v1/datasets/{id});
- scans: ``submit_scan`` (POST /v1/datasets/{id}/scan: 202 with the ids at once),
  ``await_scan``, ``scan_file`` (both, as ``datrix scan``), ``latest_scan``,
  ``score_document``, ``scan_columns`` (GET /v1/quality/{id}/score, /v1/datasets/{id}/columns),
  ``report_document`` (GET
  /v1/datasets/{id}/scan/{scanId}), ``scan_issues`` (GET /v1/quality/{id}/issues),
  ``issue_rows``, ``write_html_report``;
- jobs: ``jobs_list``, ``cancel_job``, ``job_progress`` (GET /v1/runs/{runId}/status);
- commands: ``submit``, ``await_command``, ``command_status`` (any aggregate's command);
- audit: ``audit_trail`` (GET /v1/compliance/audit-trail), ``verify_audit``;
- read models: ``replay`` (rebuild, verify, as of a time).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from datrix.aggregates.common import Command
from datrix.aggregates.dataset import (
    AddDatasetVersion,
    DeleteDataset,
    RegisterDataset,
    dataset_id_for,
    name_problem,
)
from datrix.aggregates.scan import CancelScan, RequestScan
from datrix.gateway.errors import DatrixError, NotFound, UserInputError
from datrix.jobs.csv_dialect import CsvOptions, describe_read_options
from datrix.jobs.report import DEFAULT_WEIGHTS, DIMENSIONS
from datrix.projections.queries import MAX_CANDIDATES, Views, id_prefix
from datrix.projections.read_model import ReadModel
from datrix.projections.store import ReadStore
from datrix.streams import scratch
from datrix.streams.messages import Envelope
from datrix.streams.ports import ObjectStore, ProgressFn, no_progress
from datrix.streams.private_state import private_dirs
from datrix.streams.settings import Settings

if TYPE_CHECKING:
    from datrix.jobs.ingest import IngestedFile
    from datrix.projections.audit import Break
    from datrix.streams.job_progress import JobProgress


class Runtime(Protocol):
    """What the use cases need from the embedded or the Kafka runtime."""

    @property
    def settings(self) -> Settings: ...

    @property
    def objects(self) -> ObjectStore: ...

    @property
    def read_store(self) -> ReadStore:
        """Tenant-scoped reads (Postgres: row-level security)."""
        ...

    @property
    def owner_store(self) -> ReadStore:
        """Every tenant's rows: for replay checksums and the audit chain."""
        ...

    @property
    def read_models(self) -> tuple[ReadModel, ...]:
        """What the projector keeps (and replay rebuilds)."""
        ...

    def submit(
        self,
        command: Any,
        subject: uuid.UUID,
        *,
        command_id: uuid.UUID | None = None,
        cause: Envelope | None = None,
        actor: str | None = None,
    ) -> Envelope: ...

    def drain(self, progress: ProgressFn = ...) -> None:
        """Finish work left behind (embedded: interrupted jobs, announced) and sweep the
        temp folders of killed runs."""
        ...

    def await_processed(self, done: Callable[[], bool], timeout: float = ...) -> None:
        """Wait until the submitted commands are processed and ``done`` holds; never runs
        a job."""
        ...

    def wait_for(
        self,
        done: Callable[[], bool],
        progress: ProgressFn = ...,
        scan_id: str | None = None,
        timeout: float = ...,
    ) -> None: ...


@dataclass(frozen=True)
class ScanOutcome:
    dataset_id: str
    dataset_name: str
    scan_id: str
    new_version: bool


SPARK_THRESHOLD_BYTES = 100 * 2**20  # the spec's rule of thumb: Spark beyond ~100 MB


def choose_engine(requested: str, parquet_bytes: int, spark_master: str | None) -> str:
    """``auto``: Spark for large inputs when a Spark cluster is configured, else Polars.

    On one machine Polars wins at every size we measured (1M x 50: ~10 s vs ~135 s on two
    cores), so without ``DATRIX_SPARK_MASTER`` auto never picks Spark."""
    if requested != "auto":
        return requested
    if spark_master and parquet_bytes >= SPARK_THRESHOLD_BYTES:
        return "spark"
    return "polars"


def views(runtime: Runtime) -> Views:
    return Views(runtime.read_store, runtime.settings.tenant)


def derived_id(seed: uuid.UUID | None, what: str) -> uuid.UUID | None:
    """The id ``what`` of a request made under ``seed`` (the HTTP API's ``Idempotency-Key``
    of one API key): a retry derives the same ids, so a command submitted twice is one
    command (the command log and the processor drop a command id seen before); None
    without a seed (fresh ids)."""
    return uuid.uuid5(seed, what) if seed is not None else None


def _raise_if_rejected(runtime: Runtime, command_id: uuid.UUID) -> None:
    status = views(runtime).command_status(str(command_id))
    if status is None:
        raise DatrixError(f"command {command_id} was not processed")
    if status["status"] == "rejected":
        raise UserInputError(f"refused: {status['reason']}")


def dataset_name_for(path: Path, name: str | None) -> str:
    """The dataset name: ``name`` as given (printable, one line, 1-200 characters: an
    empty one is refused, not replaced), else the file name without extension."""
    if name is not None:
        chosen = name.strip()
        problem = name_problem(chosen)
        if problem is not None:
            raise UserInputError(f"--name: {problem}")
        return chosen
    chosen = path.stem.strip()
    problem = name_problem(chosen)
    if problem is not None:
        raise UserInputError(f"{problem}; the file name cannot be used, pass --name")
    return chosen


def _check_label(ingested: IngestedFile, label: str, file_name: str) -> None:
    import polars as pl

    if label not in ingested.schema:
        raise UserInputError(f"--label {label!r} is not a column of {file_name}")
    nulls = (
        pl.scan_parquet(ingested.parquet_path, glob=False)
        .select(pl.col(label).null_count())
        .collect()
    )
    if int(nulls.item()) >= ingested.rows:
        raise UserInputError(
            f"--label {label!r} has no values (every row is empty); a label column needs values"
        )


@dataclass(frozen=True)
class ScanSubmission:
    """A scan handed in and not yet awaited: its ids at once (``POST /v1/datasets/{id}/scan``
    answers 202 with these), plus what ``await_scan`` needs to settle it."""

    command_id: str  # the RequestScan's
    dataset_id: str
    dataset_name: str
    scan_id: str
    new_version: bool
    object_uri: str
    register_command_id: str | None  # RegisterDataset, when the name was new
    version_command_id: str | None  # AddDatasetVersion, when the data is a new version


def scan_file(
    runtime: Runtime,
    path: Path,
    *,
    name: str | None = None,
    label: str | None = None,
    encoding: str = "utf-8",
    engine: str = "auto",
    weights: dict[str, float] | None = None,
    progress: ProgressFn = no_progress,
    csv_options: CsvOptions | None = None,
    sheet: str | None = None,
) -> ScanOutcome:
    """``submit_scan`` then ``await_scan``: what ``datrix scan`` does."""
    submitted = submit_scan(
        runtime,
        path,
        name=name,
        label=label,
        encoding=encoding,
        engine=engine,
        weights=weights,
        progress=progress,
        csv_options=csv_options,
        sheet=sheet,
    )
    return await_scan(runtime, submitted, progress)


def submit_scan(
    runtime: Runtime,
    path: Path,
    *,
    name: str | None = None,
    label: str | None = None,
    encoding: str = "utf-8",
    engine: str = "auto",
    weights: dict[str, float] | None = None,
    progress: ProgressFn = no_progress,
    csv_options: CsvOptions | None = None,
    sheet: str | None = None,
) -> ScanSubmission:
    """Validate and ingest ``path``, store it, and submit the commands that register the
    dataset named ``name`` (or add a version to it) and scan it (with the given score
    weights; None: the defaults); returns without waiting for any of them. A scan of
    version N > 1 also checks drift against version N - 1 (the scan aggregate names it in
    the job).

    Everything the user gave is validated before the data goes into the object store; a
    command refused after that is reported by ``await_scan``, which then removes the
    object unless a recorded version uses it (objects are content-addressed, so another
    version may share it). The embedded runtime runs the job in ``await_scan`` (or in the
    next process that drains this home: an unawaited scan is finished as interrupted)."""
    if label is not None:
        from datrix.jobs.quality.labels import cleanlab_missing

        missing = cleanlab_missing()
        if missing is not None:
            raise UserInputError(f"--label: {missing}")
    dataset_name = dataset_name_for(path, name)
    # sweep the temp folders of killed runs; finish interrupted scans (saying so)
    runtime.drain(progress)
    progress("ingest", 0, 0)
    ingested, parquet_bytes, object_uri, object_sha = _ingest_and_store(
        runtime,
        path,
        shown_name=path.name,
        encoding=encoding,
        csv_options=csv_options,
        sheet=sheet,
        label=label,
    )
    engine = choose_engine(engine, parquet_bytes, runtime.settings.spark_master)
    try:
        return _record_and_request(
            runtime, path, dataset_name, ingested, object_uri, object_sha, engine, label, weights
        )
    except UserInputError:
        _remove_unreferenced(runtime, object_uri)
        raise


def _ingest_and_store(
    runtime: Runtime,
    path: Path,
    *,
    shown_name: str,
    encoding: str,
    csv_options: CsvOptions | None,
    sheet: str | None,
    label: str | None = None,
) -> tuple[IngestedFile, int, str, str]:
    """Ingest ``path`` into an owned temp folder and put its Parquet into the object
    store: (the ingested file, its Parquet's size in bytes, object URI, object SHA). A
    bad file (or ``label`` column) is a UserInputError naming it ``shown_name``, before
    anything is stored."""
    from datrix.jobs.ingest import InputError, ingest, limits_from  # polars: when used

    workdir = scratch.owned_tempdir(runtime.settings.home / "tmp", "ingest-")
    try:
        try:
            ingested = ingest(
                path,
                workdir,
                encoding=encoding,
                csv_options=csv_options,
                sheet=sheet,
                limits=limits_from(runtime.settings),
            )
        except InputError as exc:
            raise UserInputError(str(exc).replace(path.name, shown_name)) from None
        if label is not None:
            _check_label(ingested, label, shown_name)
        parquet_bytes = ingested.parquet_path.stat().st_size
        object_uri, object_sha = runtime.objects.put_file(
            runtime.settings.tenant, ingested.parquet_path, ".parquet"
        )
    finally:
        scratch.release(workdir)
    return ingested, parquet_bytes, object_uri, object_sha


def _remove_unreferenced(runtime: Runtime, object_uri: str) -> None:
    if not views(runtime).object_referenced(object_uri):
        runtime.objects.remove(object_uri)


@dataclass(frozen=True)
class VersionSubmission:
    """A file handed in as a dataset version (``POST /v1/datasets``), not yet processed:
    the dataset's id at once, and the commands submitted (none when the file is the
    dataset's latest version already)."""

    dataset_id: str
    dataset_name: str
    new_version: bool
    object_uri: str
    register_command_id: str | None  # RegisterDataset, when the name was new
    version_command_id: str | None  # AddDatasetVersion, when the data is a new version

    @property
    def command_id(self) -> str | None:
        """The command whose outcome settles the upload (the version's, else the
        registration's)."""
        return self.version_command_id or self.register_command_id


def _record_version(
    runtime: Runtime,
    source_uri: str,
    dataset_name: str,
    ingested: IngestedFile,
    object_uri: str,
    object_sha: str,
    actor: str | None = None,
    idempotency: uuid.UUID | None = None,
) -> VersionSubmission:
    existing = views(runtime).dataset(dataset_name)
    version_id = derived_id(idempotency, "version")
    register: uuid.UUID | None = None
    version: uuid.UUID | None = None
    if existing is None:
        # The id follows from tenant + name: a concurrent scan of the same name registers
        # the same aggregate, the later RegisterDataset is refused and both versions land
        # on the one dataset (its commands share a Kafka key, so they stay in order).
        dataset_id = dataset_id_for(runtime.settings.tenant, dataset_name)
        register = runtime.submit(
            RegisterDataset(dataset_id, dataset_name),
            dataset_id,
            actor=actor,
            command_id=derived_id(idempotency, "register"),
        ).id
        new_version = True
    else:
        dataset_id = uuid.UUID(existing["id"])
        # The same file read another way (another sheet, --delimiter) is another version.
        v = views(runtime)
        same_source = v.latest_source_sha(str(dataset_id)) == ingested.source_sha256
        latest = v.version_object(str(dataset_id), int(existing["latest_version"]))
        new_version = not same_source or latest != object_uri
        if not new_version and version_id is not None and command_status(runtime, version_id):
            # a retry of the request that added this version (its answer was lost): the
            # same command again, not "unchanged"
            version = version_id
    if new_version:
        add = AddDatasetVersion(
            dataset_id=dataset_id,
            object_uri=object_uri,
            object_sha256=object_sha,
            source_uri=source_uri,
            source_sha256=ingested.source_sha256,
            format=ingested.format,
            rows=ingested.rows,
            columns=ingested.columns,
            size_bytes=ingested.size_bytes,
            schema_json=json.dumps(ingested.schema),
            read_options_json=json.dumps(ingested.read_options) if ingested.read_options else None,
        )
        version = runtime.submit(add, dataset_id, actor=actor, command_id=version_id).id
    return VersionSubmission(
        dataset_id=str(dataset_id),
        dataset_name=dataset_name,
        new_version=new_version,
        object_uri=object_uri,
        register_command_id=str(register) if register is not None else None,
        version_command_id=str(version) if version is not None else None,
    )


def _record_and_request(
    runtime: Runtime,
    path: Path,
    dataset_name: str,
    ingested: IngestedFile,
    object_uri: str,
    object_sha: str,
    engine: str,
    label: str | None,
    weights: dict[str, float] | None,
) -> ScanSubmission:
    recorded = _record_version(
        runtime, path.resolve().as_uri(), dataset_name, ingested, object_uri, object_sha
    )
    dataset_id = uuid.UUID(recorded.dataset_id)
    scan_id = uuid.uuid4()
    request = RequestScan(
        scan_id=scan_id,
        dataset_id=dataset_id,
        engine=engine,
        label_column=label,
        weights=weights,
    )
    command = runtime.submit(request, scan_id).id
    return ScanSubmission(
        command_id=str(command),
        dataset_id=str(dataset_id),
        dataset_name=dataset_name,
        scan_id=str(scan_id),
        new_version=recorded.new_version,
        object_uri=object_uri,
        register_command_id=recorded.register_command_id,
        version_command_id=recorded.version_command_id,
    )


def submit_version(
    runtime: Runtime,
    path: Path,
    *,
    name: str,
    source: str,
    encoding: str = "utf-8",
    csv_options: CsvOptions | None = None,
    sheet: str | None = None,
    actor: str | None = None,
    idempotency: uuid.UUID | None = None,
) -> VersionSubmission:
    """Validate and ingest the file at ``path`` (its suffix tells the format, else it is
    sniffed), store it, and submit the commands that register the dataset ``name`` (or add
    a version to it); no scan, no waiting, and no draining of left work (the caller's, as
    the HTTP API's intake does). ``source``: where the file came from (its name as
    uploaded), recorded as the version's source URI ``upload:<source>``. A bad file is
    a UserInputError before anything is stored or recorded. ``idempotency``: a seed the
    command ids derive from (``derived_id``), the same for a retry."""
    problem = name_problem(name.strip())
    if problem is not None:
        raise UserInputError(f"name: {problem}")
    ingested, _, object_uri, object_sha = _ingest_and_store(
        runtime, path, shown_name=source, encoding=encoding, csv_options=csv_options, sheet=sheet
    )
    from urllib.parse import quote

    try:
        return _record_version(
            runtime,
            f"upload:{quote(source)}",
            name.strip(),
            ingested,
            object_uri,
            object_sha,
            actor=actor,
            idempotency=idempotency,
        )
    except UserInputError:
        _remove_unreferenced(runtime, object_uri)
        raise


def await_scan(
    runtime: Runtime,
    submitted: ScanSubmission,
    progress: ProgressFn = no_progress,
    timeout: float | None = None,
) -> ScanOutcome:
    """Wait until the commands of ``submit_scan`` are processed and the scan has ended,
    reporting the job's progress. Raises UserInputError when a command was refused (its
    stored object is removed unless a recorded version uses it) and DatrixError when the
    scan failed (or was cancelled); returns the outcome of a completed scan. ``timeout``:
    seconds (None: the runtime's default; Kafka mode raises NoAnswer past it)."""
    register = submitted.register_command_id
    pending = [c for c in (submitted.version_command_id, submitted.command_id) if c is not None]

    def settled() -> bool:
        v = views(runtime)
        every = pending if register is None else [register, *pending]
        if any(v.command_status(c) is None for c in every):
            return False
        statuses = [v.command_status(c) for c in pending]
        if any(s is not None and s["status"] == "rejected" for s in statuses):
            return True
        scan = v.scan(submitted.scan_id)
        return scan is not None and scan["status"] in ("completed", "failed")

    if timeout is None:
        runtime.wait_for(settled, progress, scan_id=submitted.scan_id)
    else:
        runtime.wait_for(settled, progress, scan_id=submitted.scan_id, timeout=timeout)
    try:
        if register is not None:
            # Refused because a concurrent twin registered the name first: not an error,
            # the version went to that dataset. Any other refusal (a deleted name, a bad
            # name) also refuses the version, so the registration's reason is the one to
            # show.
            refused = views(runtime).command_status(pending[0])
            if refused is None or refused["status"] == "rejected":
                _raise_if_rejected(runtime, uuid.UUID(register))
        for command_id in pending:
            _raise_if_rejected(runtime, uuid.UUID(command_id))
    except UserInputError:
        _remove_unreferenced(runtime, submitted.object_uri)
        raise
    scan = views(runtime).scan(submitted.scan_id)
    if scan is not None and scan["status"] == "failed":
        raise DatrixError(f"scan {submitted.scan_id} failed: {scan['error']}")
    return ScanOutcome(
        submitted.dataset_id, submitted.dataset_name, submitted.scan_id, submitted.new_version
    )


def report_document(runtime: Runtime, scan_id: str) -> dict[str, Any]:
    """The scan report as the JSON document of ``datrix scan --format json``.

    In Kafka mode completed reports are cached in Redis (the projector drops the entry
    when a new event about the scan arrives); without Redis they come from Postgres."""
    scan_id = resolve_scan(runtime, scan_id)["id"]
    cache = getattr(runtime, "cache", None)
    tenant = runtime.settings.tenant
    if cache is not None:
        cached = cache.get(tenant, scan_id)
        if cached is not None:
            return dict(cached)
    doc = _report_from_read_models(runtime, scan_id)
    if cache is not None:
        cache.put(tenant, scan_id, doc)
    return doc


def _report_from_read_models(runtime: Runtime, scan_id: str) -> dict[str, Any]:
    v = views(runtime)
    scan = v.scan(scan_id)
    if scan is None:
        raise NotFound(f"no scan {scan_id}")
    if scan["status"] == "failed":
        raise DatrixError(f"scan {scan_id} failed: {scan['error']}")
    if scan["status"] != "completed":
        raise DatrixError(f"scan {scan_id} is {scan['status']}, not completed yet")
    read = v.version_read(scan["dataset_id"], scan["dataset_version"])
    profiles = [_column_document(c) for c in v.columns(scan_id)]
    missingness = {p["name"]: p["missingness"] for p in profiles}
    label = scan["label_column"]
    return {
        "dataset_id": scan["dataset_id"],
        "version": scan["dataset_version"],
        "scan_id": scan_id,
        "read_as": describe_read_options(read[0], json.loads(read[1] or "{}")) if read else None,
        "scanned_at": scan["completed_at"] or scan["created_at"],
        "rows": scan["row_count"],
        "columns": scan["column_count"],
        "label_column": label,
        # label_quality None: no label column was named, so it was not assessed
        "score": score_document(scan),
        "overall_dimensions": overall_dimensions(label, scan["weights"]),
        "weights": {**DEFAULT_WEIGHTS, **(scan["weights"] or {})},
        "column_profiles": profiles,
        "issues": [issue_document(i, missingness) for i in v.issues(scan_id)],
    }


def overall_dimensions(label_column: str | None, weights: dict[str, float] | None) -> list[str]:
    """The dimensions the overall score is the weighted mean of: those with a weight above
    zero, less label_quality when no label column was named (``scoring.overall_score``)."""
    chosen = {**DEFAULT_WEIGHTS, **(weights or {})}
    return [
        d
        for d in DIMENSIONS
        if chosen.get(d, 0.0) > 0 and (label_column is not None or d != "label_quality")
    ]


def _column_document(row: dict[str, Any]) -> dict[str, Any]:
    doc = {k: row[k] for k in ("name", "type", "null_count", "null_pct", "distinct_count")}
    extra = json.loads(row["extra_json"] or "{}")
    doc["missingness"] = extra.get("missingness", "none" if not row["null_count"] else None)
    if "stored_as" in extra:  # stored in another type than read (jobs/quality/types.py)
        doc["stored_as"] = extra["stored_as"]
    return doc


def issue_document(
    row: dict[str, Any], missingness: dict[str, str | None] | None = None
) -> dict[str, Any]:
    """An issue as JSON; ``missingness`` is the class of a null_values issue's column
    (MCAR, MAR or MNAR) when ``missingness`` (column name -> class) knows it, else None."""
    doc = {
        "id": row["issue_id"],
        "type": row["issue_type"],
        "column": row["column_name"],
        "dimension": row["dimension"],
        "severity": row["severity"],
        "description": row["description"],
        "affected_count": row["affected_count"],
        "affected_pct": row["affected_pct"],
        "impact_score": row["impact_score"],
        "fix_available": bool(row["fix_available"]),
    }
    # every issue has the key (one shape); only null_values issues have a class
    doc["missingness"] = (
        missingness.get(row["column_name"])
        if row["issue_type"] == "null_values" and missingness is not None
        else None
    )
    return doc


def scan_issues(runtime: Runtime, scan_ref: str) -> tuple[str, list[dict[str, Any]]]:
    """The full id of the scan ``scan_ref`` names (an id or a unique prefix) and its
    issues by impact, as JSON documents."""
    scan_id = resolve_scan(runtime, scan_ref)["id"]
    v = views(runtime)
    missingness = {p["name"]: p["missingness"] for p in map(_column_document, v.columns(scan_id))}
    return scan_id, [issue_document(i, missingness) for i in v.issues(scan_id)]


def _one_of(kind: str, ref: str, candidates: list[str]) -> str:
    """The one id of ``candidates`` (ids starting with ``ref``); NotFound for none, and a
    UserInputError naming them for several (a prefix must be unique, as in git)."""
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise NotFound(f"no {kind} {ref}")
    listed = ", ".join(candidates[:MAX_CANDIDATES])
    if len(candidates) > MAX_CANDIDATES:
        listed = f"the first {MAX_CANDIDATES}: {listed}"
    raise UserInputError(
        f"{kind} id {ref!r} is ambiguous; more than one {kind} id starts with it ({listed}); "
        "type more of the id"
    )


def resolve_scan(runtime: Runtime, ref: str) -> dict[str, Any]:
    """The scan whose id is ``ref`` or starts with it (a unique prefix, any case)."""
    v = views(runtime)
    found = v.scan(ref)
    if found is None:
        found = v.scan(_one_of("scan", ref, v.scan_ids_starting(ref)))
    if found is None:  # deleted between the two reads
        raise NotFound(f"no scan {ref}")
    return found


def resolve_issue(runtime: Runtime, scan_id: str, ref: str) -> str:
    """The id of the issue of scan ``scan_id`` that is ``ref`` or starts with it (issue
    ids are short, e.g. I007; case does not matter)."""
    ids = [str(i["issue_id"]) for i in views(runtime).issues(scan_id)]
    if ref in ids:
        return ref
    wanted = ref.strip().upper()
    try:
        return _one_of("issue", ref, sorted(i for i in ids if i.upper().startswith(wanted)))
    except NotFound:
        raise NotFound(f"scan {scan_id} has no issue {ref}") from None


def resolve_dataset(runtime: Runtime, name_or_id: str) -> dict[str, Any]:
    """The dataset named ``name_or_id``, or whose id is it or starts with it (unique)."""
    v = views(runtime)
    found = v.dataset(name_or_id)
    if found is None:
        candidates = v.dataset_ids_starting(name_or_id)
        if not candidates:
            raise NotFound(f"no dataset named or with id {name_or_id!r}")
        found = v.dataset(_one_of("dataset", name_or_id, candidates))
    if found is None:
        raise NotFound(f"no dataset named or with id {name_or_id!r}")
    return found


def latest_scan(runtime: Runtime, dataset_id: str, completed: bool = True) -> dict[str, Any]:
    """The newest scan of a dataset (by default the newest *completed* one: its score and
    issues are the dataset's current quality); NotFound when there is none."""
    found = [
        s for s in views(runtime).scans(dataset_id) if not completed or s["status"] == "completed"
    ]
    if not found:
        raise NotFound(f"dataset {dataset_id} has no {'completed ' if completed else ''}scan yet")
    return found[-1]


def score_document(scan: dict[str, Any]) -> dict[str, Any]:
    """A scan's scores: overall and per dimension (label quality None when no label column
    was named), the dimensions the overall is the weighted mean of, and the weights."""
    label = scan["label_column"]
    return {
        "overall": scan["overall_score"],
        "completeness": scan["completeness_score"],
        "consistency": scan["consistency_score"],
        "accuracy": scan["accuracy_score"],
        "distribution": scan["distribution_score"],
        "label_quality": scan["label_quality_score"] if label is not None else None,
    }


def scan_columns(runtime: Runtime, scan_id: str) -> list[dict[str, Any]]:
    """The column profiles of a scan, as in its report."""
    return [_column_document(c) for c in views(runtime).columns(scan_id)]


def dataset_versions(runtime: Runtime, name_or_id: str) -> tuple[str, list[dict[str, Any]]]:
    """The id of the dataset ``name_or_id`` names and its versions, oldest first."""
    dataset_id = str(resolve_dataset(runtime, name_or_id)["id"])
    return dataset_id, views(runtime).versions(dataset_id)


@dataclass(frozen=True)
class ScanRequest:
    """A scan of a registered dataset's latest version, handed in (``POST
    /v1/datasets/{id}/scan``): its ids at once."""

    command_id: str
    dataset_id: str
    scan_id: str


def request_scan(
    runtime: Runtime,
    name_or_id: str,
    *,
    engine: str = "auto",
    weights: dict[str, float] | None = None,
    actor: str | None = None,
    idempotency: uuid.UUID | None = None,
) -> ScanRequest:
    """Submit a scan of the latest version of a registered dataset (name, id or unique
    id prefix) without waiting; ``await_command`` / the scan's status tell the rest. The
    embedded runtime runs the job when this process drains (``wait_for`` with the scan
    id), or the next process that drains the home finishes it as interrupted.
    ``idempotency``: a seed the scan and command ids derive from (``derived_id``)."""
    if weights is not None:
        from datrix.jobs.quality.scoring import validate_weights

        try:
            validate_weights(weights)
        except ValueError as exc:
            raise UserInputError(f"weights: {exc}") from None
    found = resolve_dataset(runtime, name_or_id)
    if not found["latest_version"]:
        raise UserInputError(f"dataset {found['name']!r} has no version to scan")
    size = found["size_bytes"] or 0
    chosen = choose_engine(engine, int(size), runtime.settings.spark_master)
    dataset_id = uuid.UUID(found["id"])
    scan_id = derived_id(idempotency, "scan") or uuid.uuid4()
    request = RequestScan(scan_id=scan_id, dataset_id=dataset_id, engine=chosen, weights=weights)
    command_id = derived_id(idempotency, "scan-command")
    command = runtime.submit(request, scan_id, actor=actor, command_id=command_id).id
    return ScanRequest(str(command), str(dataset_id), str(scan_id))


def write_html_report(runtime: Runtime, scan_id: str, target: Path) -> Path:
    """Render a completed scan as a self-contained HTML page at ``target``."""
    from datrix.gateway.html_report import render_html
    from datrix.jobs.runner import load_report

    scan = resolve_scan(runtime, scan_id)
    scan_id = scan["id"]
    if scan["status"] != "completed":
        raise NotFound(f"no completed scan {scan_id}")
    object_uri = views(runtime).version_object(scan["dataset_id"], scan["dataset_version"])
    if object_uri is None:
        raise DatrixError(f"dataset version of scan {scan_id} is missing")
    dataset = views(runtime).dataset(scan["dataset_id"])
    title = f"{dataset['name'] if dataset else scan['dataset_id']} v{scan['dataset_version']}"
    # a remote store's objects are downloaded into a scratch folder, removed after
    with scratch.tempdir(runtime.settings.home / "tmp", "report-") as workdir:
        report = load_report(scan["report_uri"], runtime.objects, workdir)
        page = render_html(
            report,
            runtime.objects.local_copy(object_uri, workdir),
            title,
            scan_id=scan_id,
            scanned_at=scan["completed_at"] or scan["created_at"],
            label_assessed=scan["label_column"] is not None,
            overall_dimensions=overall_dimensions(scan["label_column"], scan["weights"]),
        )
    try:
        target.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise UserInputError(f"cannot write {target}: {exc.strerror}") from None
    return target


# -- jobs --------------------------------------------------------------------------------
def _catch_up(runtime: Runtime) -> None:
    """Embedded: process the commands and events left in the logs first (never runs a
    job), so a read sees what earlier clients submitted. Kafka mode: the workers do."""
    from datrix.runtime.embedded import EmbeddedRuntime

    if isinstance(runtime, EmbeddedRuntime):
        runtime.catch_up()


def jobs_list(runtime: Runtime, include_ended: bool = False) -> list[dict[str, Any]]:
    """The scans' jobs (by default those not ended). In the embedded default a job whose
    process died shows as ``interrupted``, with when it started and its last phase."""
    _catch_up(runtime)
    rows = views(runtime).jobs(active_only=not include_ended)
    activity = getattr(runtime, "job_activity", None)
    for row in rows:
        row["started_at"] = None
        row["phase"] = None
        if row["status"] in ("queued", "running") and activity is not None:
            found = activity(row["scan_id"])
            row["status"] = found["state"]
            row["started_at"] = found.get("started")
            row["phase"] = found.get("phase")
    return rows


def find_job(runtime: Runtime, ident: str) -> dict[str, Any]:
    """The job whose job id or scan id starts with ``ident`` (a unique prefix, as for
    every other id: ``_one_of`` names the candidates of an ambiguous one)."""
    prefix = id_prefix(ident)
    if not prefix:
        raise UserInputError(f"{ident!r} is not a job or scan id (or a prefix of one)")
    found = views(runtime).jobs_by_prefix(prefix)
    if not found:
        raise NotFound(f"no job or scan with an id starting {ident!r}")
    scan_id = _one_of("job", ident, [str(j["scan_id"]) for j in found])
    return next(j for j in found if str(j["scan_id"]) == scan_id)


def cancel_job(runtime: Runtime, ident: str) -> dict[str, Any]:
    """Cancel the scan of a job: its queued job is skipped, a running one stopped, and
    the scan ends as failed with the reason "cancelled by <actor>". Returns the job."""
    _catch_up(runtime)
    job = find_job(runtime, ident)
    scan_id = uuid.UUID(job["scan_id"])
    if job["status"] not in ("queued", "running"):
        raise UserInputError(
            f"scan {job['scan_id']} already {job['status']}; there is nothing to cancel"
        )
    command_id = submit(runtime, CancelScan(scan_id), scan_id)
    await_command(runtime, command_id).raise_if_rejected()
    ended = views(runtime).scan(job["scan_id"])
    return {
        **job,
        "status": ended["status"] if ended else job["status"],
        "error": ended["error"] if ended else None,
    }


@dataclass(frozen=True)
class ScanProgress:
    scan_id: str
    updates: list[JobProgress]  # in order (seq); empty: no job ran yet, or a day passed


def job_progress(runtime: Runtime, scan_ref: str) -> ScanProgress:
    """The job-progress records of a scan (an id or a unique prefix), in order: Kafka
    mode reads them from the progress topic (kept a day; the live progress of a scan being
    awaited goes to ``await_scan``'s callback instead). The embedded default publishes no
    such records: UserInputError."""
    settings = runtime.settings
    if settings.embedded or settings.kafka_bootstrap is None:
        raise UserInputError(
            "job-progress events are published in Kafka mode (set DATRIX_KAFKA_BOOTSTRAP); "
            "the embedded default shows progress on the scan's progress bar only"
        )
    from datrix.runtime.kafka import KafkaRuntime
    from datrix.streams.job_progress import read_job_progress

    if not isinstance(runtime, KafkaRuntime):
        raise DatrixError("job progress needs the Kafka-mode runtime")
    scan_id = resolve_scan(runtime, scan_ref)["id"]
    return ScanProgress(scan_id, read_job_progress(settings, runtime.topics.progress, scan_id))


# -- commands (any aggregate's) ---------------------------------------------------------
@dataclass(frozen=True)
class CommandStatus:
    """What became of a command (the command_status read model): ``accepted``, or
    ``rejected`` with the aggregate's reason."""

    command_id: str
    status: str
    reason: str | None

    @property
    def accepted(self) -> bool:
        return self.status == "accepted"

    def raise_if_rejected(self) -> None:
        if not self.accepted:
            raise UserInputError(f"refused: {self.reason}")


def submit(
    runtime: Runtime,
    command: Command,
    subject: uuid.UUID,
    *,
    command_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """Hand ``command`` for aggregate ``subject`` to the runtime; returns the command id
    at once (given: the same id again is processed once). ``await_command`` waits for
    what became of it."""
    return runtime.submit(command, subject, command_id=command_id).id


def command_status(runtime: Runtime, command_id: uuid.UUID | str) -> CommandStatus | None:
    """What became of a command; None while it is not processed (or unknown)."""
    found = views(runtime).command_status(str(command_id))
    if found is None:
        return None
    return CommandStatus(str(command_id), str(found["status"]), found["reason"])


def await_command(
    runtime: Runtime, command_id: uuid.UUID | str, timeout: float = 60.0
) -> CommandStatus:
    """Wait until the command is processed (never runs a job) and return what became of
    it. A rejection is a status, not an error (``raise_if_rejected`` makes it one);
    NotFound for a command the embedded runtime never got, DatrixError when the Kafka-mode
    workers do not answer within ``timeout`` seconds."""
    from datrix.runtime.embedded import EmbeddedRuntime

    try:
        runtime.await_processed(
            lambda: command_status(runtime, command_id) is not None, timeout=timeout
        )
    except RuntimeError as exc:
        if isinstance(runtime, EmbeddedRuntime):
            raise NotFound(f"no command {command_id}") from None
        raise DatrixError(str(exc)) from exc
    found = command_status(runtime, command_id)
    if found is None:  # await_processed returned, so it holds; for the type checker
        raise DatrixError(f"command {command_id} was not processed")
    return found


def delete_dataset(
    runtime: Runtime,
    name_or_id: str,
    reason: str | None = None,
    actor: str | None = None,
    idempotency: uuid.UUID | None = None,
) -> str:
    """Submit the deletion of a dataset (name, id or unique id prefix); returns the
    command id (``DELETE /v1/datasets/{id}``; ``await_command`` for the outcome).
    ``idempotency``: a seed the command id derives from (``derived_id``)."""
    dataset_id = uuid.UUID(resolve_dataset(runtime, name_or_id)["id"])
    command_id = derived_id(idempotency, "delete")
    deletion = DeleteDataset(dataset_id, reason)
    return str(runtime.submit(deletion, dataset_id, actor=actor, command_id=command_id).id)


# -- affected rows ----------------------------------------------------------------------
@dataclass(frozen=True)
class IssueRows:
    scan_id: str
    issue_id: str
    rows: Sequence[int]  # ascending 0-based row indices (a RowSet: may be every row)


def issue_rows(runtime: Runtime, scan_ref: str, issue_ref: str) -> IssueRows:
    """The rows an issue of a scan affects (ids or unique prefixes of them);
    ``datrix.jobs.runner.row_blocks(result.rows)`` walks them a block at a time."""
    from datrix.jobs.runner import affected_rows

    found = resolve_scan(runtime, scan_ref)
    issue_id = resolve_issue(runtime, found["id"], issue_ref)
    with scratch.tempdir(runtime.settings.home / "tmp", "rows-") as workdir:  # remote stores
        rows = affected_rows(found["report_uri"], issue_id, runtime.objects, workdir)
    return IssueRows(found["id"], issue_id, rows)


# -- audit trail ------------------------------------------------------------------------
def audit_trail(
    runtime: Runtime, dataset: str | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """Audit entries, oldest first; only those about ``dataset`` (name or id) if given,
    at most ``limit`` (``GET /v1/compliance/audit-trail``)."""
    dataset_id = resolve_dataset(runtime, dataset)["id"] if dataset else None
    return views(runtime).audit(dataset_id, limit)


@dataclass(frozen=True)
class AuditCheck:
    """The audit trail checked three ways: each chain's hashes, the table against the
    trail rebuilt from the event log (every event has exactly one entry), and the table
    against every signed checkpoint in the log. ``checked``: entries whose chain held;
    ``events``: entries matching their events; ``checkpoints``: checkpoints checked;
    ``anchored``: whether a key was there to check them (Kafka mode without
    ``DATRIX_AUDIT_KEY``: False); ``broken``: the first break, or None."""

    checked: int
    broken: Break | None
    events: int = 0
    checkpoints: int = 0
    anchored: bool = False
    latest_checkpoint: str | None = None  # "seq" or "chain/seq" of the newest one
    witness: str | None = None  # the witness file checked against and updated

    @property
    def intact(self) -> bool:
        return self.broken is None

    def raise_if_broken(self) -> None:
        if self.broken is not None:
            raise DatrixError(
                f"audit chain broken at entry {self.broken.seq} (event {self.broken.event_id}):"
                f" {self.broken.reason}"
            )

    def summary(self) -> str:
        anchor = (
            f"anchored by {self.checkpoints} signed checkpoint"
            f"{'' if self.checkpoints == 1 else 's'}"
            + (f" (latest at entry {self.latest_checkpoint})" if self.latest_checkpoint else "")
            if self.anchored
            else "not anchored (DATRIX_AUDIT_KEY is unset)"
        )
        witness = (
            f"; no checkpoint seen before is missing (witness {self.witness} updated)"
            if self.witness
            else ""
        )
        return (
            f"audit chain intact: {self.checked} entries verified, {self.events} match "
            f"the event log; {anchor}{witness}"
        )


def verify_audit(runtime: Runtime, witness: Path | None = None) -> AuditCheck:
    """Check the audit trail (all tenants': the owner's store): walk the hash chains,
    rebuild the trail from the event log up to where the live projectors are and compare
    entry by entry, and check the entries every ``AuditCheckpoint`` in the log signed.
    Costs a replay of the log into a scratch SQLite file. ``witness``: a file (kept by
    the auditor, away from the log) with the newest checkpoint of each chain an earlier
    verify saw; each must still be in the log, and the file is updated when all holds."""
    from datrix.aggregates.audit import AuditCheckpoint
    from datrix.projections import audit as chain
    from datrix.projections import replay as rp
    from datrix.projections.store import SQLiteReadStore
    from datrix.runtime.embedded import EmbeddedRuntime
    from datrix.streams.messages import decode_event

    cols = ", ".join((*chain.COLUMNS, "hash"))
    owner = runtime.owner_store
    checked, broken = chain.verify(owner.query(f"SELECT {cols} FROM audit_log ORDER BY chain, seq"))
    if broken is not None:
        return AuditCheck(checked, broken)
    try:
        key = chain.anchor_key(runtime.settings)
    except chain.AnchorKeyError as exc:
        raise UserInputError(str(exc)) from None
    checkpoints: list[chain.Checkpoint] = []

    def collect(envelopes: Iterable[Envelope]) -> None:
        for env in envelopes:
            if env.type == chain.CHECKPOINT_TYPE:
                cp = decode_event(env)
                assert isinstance(cp, AuditCheckpoint)
                checkpoints.append(
                    chain.Checkpoint(
                        cp.chain, cp.seq, cp.hash, cp.key_id, cp.signature, str(env.id)
                    )
                )

    with scratch.tempdir(runtime.settings.home / "tmp", "audit-") as workdir:
        target = SQLiteReadStore(workdir / "audit.db")
        if isinstance(runtime, EmbeddedRuntime):
            upto = runtime.projector.position()
            rp.rebuild(runtime.events, target, upto=upto, read_models=runtime.read_models)
            position = 0
            while position < upto:
                batch = [(p, e) for p, e in runtime.events.read(position, rp.BATCH) if p <= upto]
                if not batch:
                    break
                position = batch[-1][0]
                collect(e for _, e in batch)
        else:
            partitions = _projected_partitions(runtime)
            rp.rebuild_partitioned(partitions, target, read_models=runtime.read_models)
            for events in partitions.values():
                collect(e for _, e in events)
        sql = "SELECT chain, seq, event_id, hash FROM audit_log ORDER BY chain, seq"
        matched, broken = chain.against_events(owner.query(sql), target.query(sql))
    try:
        witnessed = chain.read_witness(witness) if witness is not None else {}
    except chain.WitnessError as exc:
        raise UserInputError(str(exc)) from None
    if broken is None:
        broken = chain.against_witness(witnessed, checkpoints)
    if broken is None:
        entries = {
            (int(c), int(s)): (str(h), str(e))
            for c, s, e, h in owner.query("SELECT chain, seq, event_id, hash FROM audit_log")
        }
        keys = chain.verification_keys(runtime.settings, key)
        broken = chain.against_checkpoints(entries, checkpoints, keys)
    if broken is None and witness is not None:
        try:
            chain.write_witness(witness, checkpoints)
        except chain.WitnessError as exc:
            raise UserInputError(str(exc)) from None
    latest = max(checkpoints, key=lambda c: c.seq, default=None)
    return AuditCheck(
        checked,
        broken,
        events=matched,
        checkpoints=len(checkpoints),
        anchored=key is not None,
        latest_checkpoint=None if latest is None else chain._where(latest.chain, latest.seq),
        witness=str(witness) if witness is not None and broken is None else None,
    )


def _projected_partitions(runtime: Runtime) -> dict[int, list[tuple[int, Envelope]]]:
    """Kafka mode: each partition's events up to the position its live projector stored."""
    from datrix.runtime.kafka import KafkaRuntime
    from datrix.streams.kafka import read_topic

    if not isinstance(runtime, KafkaRuntime) or runtime.settings.kafka_bootstrap is None:
        raise DatrixError("audit verify needs the embedded or the Kafka-mode runtime")
    done = {
        str(name): int(position)
        for name, position in runtime.owner_store.query(
            "SELECT name, position FROM projector_position"
        )
    }
    partitions = read_topic(runtime.settings, runtime.topics.events)
    return {
        p: [(pos, e) for pos, e in events if pos <= done.get(f"read-models:{p}", 0)]
        for p, events in partitions.items()
    }


# -- replay -----------------------------------------------------------------------------
@dataclass(frozen=True)
class ReplayOutcome:
    """A rebuild of the read models from the event log into fresh tables."""

    events: int
    checksum: str
    as_of: datetime | None
    datasets_as_of: list[dict[str, Any]] | None  # the rebuilt state's datasets (as_of)
    kept_in: str | None  # where the rebuilt tables are (keep)
    verified: bool  # compared with the live read models
    differ: list[str]  # the live tables that differ (verified)
    tables: tuple[str, ...] = ()  # the tables rebuilt and checksummed

    @property
    def identical(self) -> bool:
        return self.verified and not self.differ

    def raise_if_different(self) -> None:
        if self.differ:
            raise DatrixError(f"read models differ from a full replay in: {', '.join(self.differ)}")


def replay(
    runtime: Runtime,
    *,
    verify: bool = False,
    as_of: datetime | None = None,
    keep: bool = False,
    projector_timeout: float = 120.0,
) -> ReplayOutcome:
    """Rebuild the read models from the event log into fresh tables (with ``as_of``, a
    UTC time: the state as it was then), and with ``verify`` compare them with the live
    ones (a difference is in the outcome; ``raise_if_different``). ``keep`` keeps the
    rebuilt tables. Never waits for a job."""
    from datrix.projections import replay as rp
    from datrix.runtime.embedded import EmbeddedRuntime

    if verify and as_of:
        raise UserInputError("--verify compares the present state; it cannot go with --as-of")
    when = as_of.replace(tzinfo=UTC) if as_of is not None and as_of.tzinfo is None else as_of
    if isinstance(runtime, EmbeddedRuntime):
        runtime.catch_up()  # commands and projections only: replay never waits for a job
    with rebuilt_store(runtime, keep) as (target, where):
        if isinstance(runtime, EmbeddedRuntime):
            result = rp.rebuild(runtime.events, target, as_of=when, read_models=runtime.read_models)
            ready = None
        else:
            from datrix.runtime.kafka import KafkaRuntime
            from datrix.streams.kafka import read_topic

            if not isinstance(runtime, KafkaRuntime) or runtime.settings.kafka_bootstrap is None:
                raise DatrixError("replay needs the embedded or the Kafka-mode runtime")
            partitions = read_topic(runtime.settings, runtime.topics.events)
            result = rp.rebuild_partitioned(
                partitions, target, as_of=when, read_models=runtime.read_models
            )
            ready = {p: events[-1][0] for p, events in partitions.items() if events}
        as_of_rows = Views(target, runtime.settings.tenant).datasets() if when else None
        differ: list[str] = []
        if verify:
            if ready is not None:
                wait_for_projectors(runtime, ready, projector_timeout)
            live = rp.table_checksums(runtime.owner_store, runtime.read_models)
            differ = [t for t in live if live[t] != result.checksums.get(t)]
    return ReplayOutcome(
        events=result.events,
        checksum=result.checksum,
        as_of=when,
        datasets_as_of=as_of_rows,
        kept_in=where if keep else None,
        verified=verify,
        differ=differ,
        tables=tuple(sorted(result.checksums)),
    )


@contextmanager
def rebuilt_store(runtime: Runtime, keep: bool) -> Iterator[tuple[ReadStore, str]]:
    """A fresh, empty read store beside the live one (SQLite file or Postgres schema)."""
    from datrix.runtime.embedded import EmbeddedRuntime

    tag = uuid.uuid4().hex[:8]
    if isinstance(runtime, EmbeddedRuntime):
        from datrix.projections.store import SQLiteReadStore

        target_dir = runtime.settings.home / "replay"
        private_dirs(target_dir)
        path = target_dir / f"readmodels-{tag}.db"
        try:
            yield SQLiteReadStore(path), str(path)
        finally:
            if not keep:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    from datrix.projections.store import PostgresReadStore

    schema = f"{runtime.settings.database_schema}_replay_{tag}"
    store = PostgresReadStore(runtime.settings.database_url or "", schema=schema)
    try:
        yield store, f"Postgres schema {schema}"
    finally:
        if not keep:
            store.drop_schema()


def wait_for_projectors(runtime: Runtime, ready: dict[int, int], timeout: float = 120) -> None:
    """Kafka mode: wait until the live projector has applied what the replay read."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = runtime.read_store.query("SELECT name, position FROM projector_position")
        done = {str(name): int(pos) for name, pos in rows}
        if all(done.get(f"read-models:{p}", 0) >= pos for p, pos in ready.items()):
            return
        time.sleep(0.2)
    raise DatrixError("the live projector is behind the event log; is `datrix worker` running?")


# --- dead letters (Kafka mode) -------------------------------------------------------


def _dlq_topic(settings: Settings, which: str) -> str:
    from datrix.streams.dead_letters import dlq_topics
    from datrix.streams.kafka import topics_for

    if settings.kafka_bootstrap is None:
        raise UserInputError(
            "dead-letter topics exist in Kafka mode only (set DATRIX_KAFKA_BOOTSTRAP); "
            "the embedded default records a refused command in its command status"
        )
    topics = dlq_topics(topics_for(settings))
    if which not in topics:
        raise UserInputError(f"unknown topic {which!r}; choose from {', '.join(topics)}")
    return topics[which]


def dead_letters(settings: Settings, which: str = "commands") -> list[Any]:
    """The dead letters of one consumed topic (``commands``, ``events``, ``jobs``), oldest
    first, as ``streams.dead_letters.DeadLetter``."""
    from datrix.streams.dead_letters import DeadLetterError, read_dead_letters

    topic = _dlq_topic(settings, which)
    try:
        return read_dead_letters(settings, topic)
    except DeadLetterError as exc:
        raise DatrixError(str(exc)) from None


def dead_letter(settings: Settings, which: str, offset: int) -> Any:
    for letter in dead_letters(settings, which):
        if letter.offset == offset:
            return letter
    raise NotFound(f"no dead letter at offset {offset} of the {which} dead-letter topic")


def replay_dead_letter(settings: Settings, which: str, offset: int) -> tuple[Any, str | None]:
    """Resubmit one dead letter to the topic it came from; return it and its new id."""
    from datrix.streams.dead_letters import DeadLetterError, replay

    letter = dead_letter(settings, which, offset)
    try:
        return letter, replay(settings, letter)
    except DeadLetterError as exc:
        raise DatrixError(str(exc)) from None
