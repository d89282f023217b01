"""Stream snapshots in a running process: the ``stream-snapshot`` job kind and the two
policies around it. ``register(registry)`` is their one registration
(``runtime/registry.py``'s ``default_registry``).

The path of a snapshot (docs/architecture.md, "Stream snapshots"):
``RegisterStream`` with a snapshot period -> ``StreamRegistered`` -> policy
``stream-dataset`` -> ``RegisterDataset`` of the stream's dataset (``stream:<name>``, id
``snapshot_dataset_id``); each ``CloseStreamWindow`` names its window's Parquet part; the
aggregate emits ``StreamSnapshotRequested`` once every partition seen has its windows of a
period -> the job (``jobs/streams/snapshot.py``) -> ``AddDatasetVersion`` (cause
``stream``) -> ``DatasetVersionAdded`` -> policy ``stream-snapshots`` ->
``AddStreamSnapshot`` -> ``StreamSnapshotted``. Policy command ids derive from the event,
the job's result id from the job id (one per period): redeliveries add nothing.
"""

from __future__ import annotations

from datrix.aggregates.common import Command
from datrix.aggregates.dataset import DatasetVersionAdded, RegisterDataset
from datrix.aggregates.stream import (
    SNAPSHOT_JOB_KIND,
    AddStreamSnapshot,
    FailStreamSnapshot,
    StreamRegistered,
    StreamSnapshotRequested,
    parse_snapshot_source,
    snapshot_dataset_id,
    snapshot_dataset_name,
)
from datrix.streams.messages import Envelope
from datrix.streams.ports import ObjectStore, ProgressFn
from datrix.streams.registry import JobKind, Policy, Query, Reaction, Registry
from datrix.streams.settings import Settings


# ---- the job kind ----------------------------------------------------------------------
def _run(
    job: StreamSnapshotRequested, objects: ObjectStore, progress: ProgressFn, settings: Settings
) -> Command:
    from datrix.jobs.streams.snapshot import run_snapshot_job  # loaded by the job process

    return run_snapshot_job(job, objects, progress, settings)


def _failed(job: StreamSnapshotRequested, error_type: str, message: str) -> FailStreamSnapshot:
    return FailStreamSnapshot(
        stream_id=job.originator_id, job_id=job.job_id, error_type=error_type, message=message
    )


def _notice(job: StreamSnapshotRequested, _query: Query) -> str:
    return (
        f"finishing interrupted snapshot of stream {job.name!r} "
        f"({job.window_start.isoformat()} to {job.window_end.isoformat()})"
    )


SNAPSHOT_JOB = JobKind(
    name=SNAPSHOT_JOB_KIND,
    event=StreamSnapshotRequested,
    run=_run,
    failed=_failed,
    # never skipped as ended: the stream's later snapshots would end every earlier job;
    # a job run twice adds one version (its result command id is the job's)
    ended=(),
    actor=lambda _job: "worker:stream-snapshot",
    notice=_notice,
)


# ---- the policies ----------------------------------------------------------------------
def _register_dataset(event: StreamRegistered, _envelope: Envelope) -> list[Reaction]:
    """A stream with a snapshot period gets its dataset when it is registered."""
    if event.snapshot_every_seconds is None:
        return []
    dataset_id = snapshot_dataset_id(event.tenant, event.name)
    command = RegisterDataset(
        dataset_id=dataset_id,
        name=snapshot_dataset_name(event.name),
        source_type="stream",
        description=f"snapshots of stream {event.name!r} (topic {event.topic})",
    )
    return [Reaction(command, dataset_id)]


def _record_snapshot(event: DatasetVersionAdded, _envelope: Envelope) -> list[Reaction]:
    """A version a snapshot job added is recorded on its stream."""
    if event.cause != "stream":
        return []
    source = parse_snapshot_source(event.source_uri)
    if source is None:
        return []
    stream_id, start, end = source
    command = AddStreamSnapshot(
        stream_id=stream_id,
        dataset_id=event.originator_id,
        version=event.version,
        window_start=start,
        window_end=end,
    )
    return [Reaction(command, stream_id)]


STREAM_DATASET = Policy(name="stream-dataset", follows=(StreamRegistered,), react=_register_dataset)
STREAM_SNAPSHOTS = Policy(
    name="stream-snapshots", follows=(DatasetVersionAdded,), react=_record_snapshot
)


def register(registry: Registry) -> None:
    registry.add_job_kind(SNAPSHOT_JOB)
    registry.add_policy(STREAM_DATASET)
    registry.add_policy(STREAM_SNAPSHOTS)
