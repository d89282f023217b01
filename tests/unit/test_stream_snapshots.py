"""Stream snapshots (issue 13 item 4), offline: the aggregate's rule for when a snapshot
period is complete (every partition seen has its windows of the period) and the job event
it emits, the two policies around the job, and the job itself on a local object store
(window parts in, one dataset version's Parquet out)."""

from __future__ import annotations

import io
import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from datrix.aggregates import dataset
from datrix.aggregates.common import Meta
from datrix.aggregates.stream import (
    SNAPSHOT_JOB_KIND,
    FailStreamSnapshot,
    MarkStreamPartitionQuiet,
    StreamPartitionQuiet,
    StreamSnapshotFailed,
    StreamSnapshotRequested,
    StreamWindowClosed,
    parse_snapshot_source,
    snapshot_dataset_id,
    snapshot_dataset_name,
    snapshot_job_id,
    snapshot_source_uri,
)
from datrix.jobs.streams.snapshot import run_snapshot_job, write_part
from datrix.runtime import stream_snapshots
from datrix.runtime.registry import default_registry
from datrix.streams.messages import (
    command_envelope,
    decode_command,
    decode_envelope,
    decode_event,
    encode_envelope,
    event_envelope,
)
from datrix.streams.object_store import LocalObjectStore
from datrix.streams.ports import no_progress
from datrix.streams.settings import load_settings
from tests.unit.test_stream_aggregate import SID, T0, TENANT, Log, metrics, refuses, register
from tests.unit.test_stream_aggregate import window as window_command

MINUTE = timedelta(seconds=60)


def window(partition: int, minute: int, uri: str | None = "part", **change: Any) -> Any:
    uri = f"{uri}-{partition}-{minute}" if uri == "part" else uri
    return window_command(partition, T0 + minute * MINUTE, records_uri=uri, **change)


def snapshotting() -> Log:
    """A stream of 60 s windows, snapshot every 2 windows (T0 is a period start)."""
    return Log(register(snapshot_every_seconds=120))


def jobs(events: list[Any]) -> list[StreamSnapshotRequested]:
    return [e for e in events if isinstance(e, StreamSnapshotRequested)]


def test_a_period_is_requested_once_every_partition_seen_has_its_windows() -> None:
    log = snapshotting()
    assert jobs(log.run(window(0, 0))) == []
    assert jobs(log.run(window(1, 0))) == []
    # partition 0 has the whole period, partition 1 not yet
    assert jobs(log.run(window(0, 1))) == []
    events = log.run(window(1, 1))
    assert isinstance(events[0], StreamWindowClosed) and events[0].records_uri == "part-1-1"
    (job,) = jobs(events)
    assert job.originator_version == events[0].originator_version + 1
    assert (job.kind, job.tenant, job.name, job.attempt) == (SNAPSHOT_JOB_KIND, TENANT, "orders", 1)
    assert (
        job.job_id
        == snapshot_job_id(SID, T0)
        == uuid.uuid5(SID, f"snapshot/{T0.timestamp() * 1000:.0f}")
    )
    assert job.dataset_id == snapshot_dataset_id(TENANT, "orders")
    assert (job.window_start, job.window_end) == (T0, T0 + 2 * MINUTE)
    # by window start, then partition
    assert job.parts == ("part-0-0", "part-1-0", "part-0-1", "part-1-1")
    state = log.state
    assert state is not None
    assert (state.parts, state.snapshot_requested_end) == ((), T0 + 2 * MINUTE)


def test_a_partition_ahead_waits_for_the_one_behind() -> None:
    alone = snapshotting()
    assert jobs(alone.run(window(0, 0))) == []
    (job,) = jobs(alone.run(window(0, 1)))  # the only partition seen: period 0 is complete
    assert job.parts == ("part-0-0", "part-0-1")
    log = snapshotting()
    log.run(window(1, 0))
    for minute in (0, 1, 3):
        assert jobs(log.run(window(0, minute))) == []  # partition 1 is behind
    (job,) = jobs(log.run(window(1, 2)))  # partition 1 now covers period 0, not period 2
    assert job.parts == ("part-0-0", "part-1-0", "part-0-1")
    state = log.state
    assert state is not None
    assert sorted(uri for _at, _p, uri in state.parts) == ["part-0-3", "part-1-2"]


def test_a_partition_that_closed_no_window_yet_holds_the_period_back() -> None:
    """The monitor reports the topic's partition count: a partition read by another
    process whose first window has not closed yet is waited for, not left out."""
    log = snapshotting()
    for minute in (0, 1, 3):
        assert jobs(log.run(window(0, minute, topic_partitions=2))) == []
    (job,) = jobs(log.run(window(1, 1, topic_partitions=2)))  # partition 1 is in
    assert job.parts == ("part-0-0", "part-0-1", "part-1-1")
    state = log.state
    assert state is not None and state.topic_partitions == 2


def quiet(partition: int, minute: int, partitions: int = 2) -> Any:
    return MarkStreamPartitionQuiet(SID, partition, T0 + minute * MINUTE, partitions)


def test_a_quiet_partition_covers_time_without_windows() -> None:
    log = snapshotting()
    log.run(window(0, 0, topic_partitions=2))
    (mark,) = log.run(quiet(1, 1))  # partition 1: no record at all so far
    assert isinstance(mark, StreamPartitionQuiet) and mark.until == T0 + MINUTE
    assert jobs(log.run(window(0, 1, topic_partitions=2))) == []  # partition 1 is at 1 min
    events = log.run(quiet(1, 3))
    (job,) = jobs(events)
    assert job.parts == ("part-0-0", "part-0-1") and job.window_end == T0 + 2 * MINUTE
    assert log.run(quiet(1, 2)) == []  # covered already: nothing new
    refuses(log, quiet(2, 5), "partition 2 of a topic of 2")
    refuses(Log(register(snapshot_every_seconds=None)), quiet(0, 1), "takes no snapshots")


def test_a_partition_outside_the_topic_is_refused() -> None:
    refuses(snapshotting(), window(2, 0, topic_partitions=2), "partition 2 of a topic of 2")
    refuses(snapshotting(), window(0, 0, topic_partitions=-1), "of a topic of -1")


def test_several_periods_complete_at_once_each_a_job_in_order() -> None:
    log = snapshotting()
    log.run(window(1, 0))
    for minute in (0, 2, 5):
        assert jobs(log.run(window(0, minute))) == []
    events = log.run(window(1, 7))  # covers periods 0, 2 and 4 (partition 0 ends at 6)
    requested = jobs(events)
    assert [(j.window_start, j.parts) for j in requested] == [
        (T0, ("part-0-0", "part-1-0")),
        (T0 + 2 * MINUTE, ("part-0-2",)),
        (T0 + 4 * MINUTE, ("part-0-5",)),
    ]
    versions = [e.originator_version for e in events]
    assert versions == list(range(versions[0], versions[0] + len(events)))
    assert len({j.job_id for j in requested}) == 3


def test_windows_without_records_count_for_cover_but_a_period_without_parts_is_no_job() -> None:
    log = snapshotting()
    log.run(window(0, 0, uri=None, m=metrics(count=0, fields=())))
    assert jobs(log.run(window(0, 2, uri=None))) == []  # period 0 had no records
    assert jobs(log.run(window(0, 4))) == []  # period 4 is not over
    (job,) = jobs(log.run(window(0, 6, uri=None)))
    assert (job.window_start, job.parts) == (T0 + 4 * MINUTE, ("part-0-4",))


def test_a_window_closing_after_its_period_was_requested_is_left_out() -> None:
    log = snapshotting()
    log.run(window(0, 0))
    (first,) = jobs(log.run(window(0, 2)))
    assert first.parts == ("part-0-0",)
    log.run(window(1, 1))  # a partition seen late: its period is requested already
    state = log.state
    assert state is not None
    assert [uri for _at, _p, uri in state.parts] == ["part-0-2"]
    # partition 1 now holds the next period back until it has a window ending at T0+4
    assert jobs(log.run(window(0, 4))) == []
    (second,) = jobs(log.run(window(1, 3)))
    assert second.parts == ("part-0-2", "part-1-3")


def test_records_are_not_kept_for_a_stream_without_snapshot_period() -> None:
    log = Log(register(snapshot_every_seconds=None))
    for minute in range(4):
        assert jobs(log.run(window(0, minute))) == []
    state = log.state
    assert state is not None and state.parts == ()


def test_an_empty_records_uri_is_refused() -> None:
    refuses(snapshotting(), window(0, 0, uri=" "), "an empty records URI")


def test_a_failed_snapshot_is_recorded() -> None:
    log = snapshotting()
    job_id = snapshot_job_id(SID, T0)
    (event,) = log.run(FailStreamSnapshot(SID, job_id, "OSError", "disk full"))
    assert isinstance(event, StreamSnapshotFailed)
    assert (event.job_id, event.error_type, event.message) == (job_id, "OSError", "disk full")


def test_the_job_event_and_the_window_part_survive_the_codec() -> None:
    registry = default_registry()
    log = snapshotting()
    log.run(window(0, 0))
    command = window(0, 2)
    envelope = decode_envelope(
        encode_envelope(
            command_envelope(
                command, subject=SID, tenant=TENANT, actor="monitor", time=T0, table=registry.table
            )
        )
    )
    assert decode_command(envelope.data, table=registry.table) == command
    events = log.run(command)
    assert [type(e) for e in events] == [StreamWindowClosed, StreamSnapshotRequested]
    for event in events:
        wire = encode_envelope(event_envelope(event, envelope, table=registry.table))
        assert decode_event(decode_envelope(wire), table=registry.table) == event


def test_snapshot_source_uri_round_trips_and_garbage_is_none() -> None:
    end = T0 + 2 * MINUTE
    assert parse_snapshot_source(snapshot_source_uri(SID, T0, end)) == (SID, T0, end)
    for garbage in ("s3://b/k.csv", "datrix-stream://x/1-2", "datrix-stream://" + str(SID)):
        assert parse_snapshot_source(garbage) is None


# ---- the policies ----------------------------------------------------------------------
def test_a_stream_with_a_snapshot_period_gets_its_dataset() -> None:
    (registered,) = Log(register(snapshot_every_seconds=120)).events
    envelope: Any = None
    (reaction,) = stream_snapshots.STREAM_DATASET.react(registered, envelope)
    command = reaction.command
    assert isinstance(command, dataset.RegisterDataset)
    assert command.name == snapshot_dataset_name("orders") == "stream:orders"
    assert reaction.subject == command.dataset_id == dataset.dataset_id_for(TENANT, "stream:orders")
    assert command.source_type == "stream"
    (plain,) = Log(register(snapshot_every_seconds=None)).events
    assert stream_snapshots.STREAM_DATASET.react(plain, envelope) == []


def _version_added(cause: str, source_uri: str) -> dataset.DatasetVersionAdded:
    ds = snapshot_dataset_id(TENANT, "orders")
    meta = Meta(command_id=uuid.uuid4(), time=T0, tenant=TENANT)
    state = dataset.evolve(
        None,
        dataset.decide(dataset.RegisterDataset(ds, "stream:orders", "stream"), None, meta)[0],
    )
    add = dataset.AddDatasetVersion(
        ds,
        "datrix-object://acme/x",
        "ab" * 32,
        source_uri,
        "cd" * 32,
        "parquet",
        3,
        2,
        10,
        "{}",
        cause=cause,
    )
    (event,) = dataset.decide(add, state, meta)
    assert isinstance(event, dataset.DatasetVersionAdded)
    return event


def test_a_stream_version_is_recorded_on_its_stream_and_other_versions_are_not() -> None:
    end = T0 + 2 * MINUTE
    event = _version_added("stream", snapshot_source_uri(SID, T0, end))
    assert event.cause == "stream" and event.version == 1
    envelope: Any = None
    (reaction,) = stream_snapshots.STREAM_SNAPSHOTS.react(event, envelope)
    assert reaction.subject == SID
    assert (reaction.command.dataset_id, reaction.command.version) == (event.originator_id, 1)
    assert (reaction.command.window_start, reaction.command.window_end) == (T0, end)
    upload = _version_added("upload", "file:///orders.csv")
    assert stream_snapshots.STREAM_SNAPSHOTS.react(upload, envelope) == []


def test_the_dataset_aggregate_still_refuses_fix_as_an_upload_cause() -> None:
    with pytest.raises(Exception, match="upload, pipeline or stream"):
        _version_added("fix", "x")


# ---- the job ---------------------------------------------------------------------------
def _job(parts: tuple[str, ...]) -> StreamSnapshotRequested:
    return StreamSnapshotRequested(
        originator_id=SID,
        originator_version=9,
        timestamp=T0,
        stream_id=SID,
        job_id=snapshot_job_id(SID, T0),
        kind=SNAPSHOT_JOB_KIND,
        tenant=TENANT,
        name="orders",
        dataset_id=snapshot_dataset_id(TENANT, "orders"),
        window_start=T0,
        window_end=T0 + 2 * MINUTE,
        parts=parts,
        attempt=1,
    )


def test_the_job_concatenates_the_parts_into_one_version(tmp_path: Path) -> None:
    objects = LocalObjectStore(tmp_path / "objects")
    settings = load_settings({}, home=tmp_path / "home")
    first = [pl.DataFrame({"id": [1, 2], "amount": [1.5, None]})]
    # a later window: a new column, and the records of two micro-batches
    second = [pl.DataFrame({"id": [3], "amount": [2.0]}), pl.DataFrame({"id": [4], "note": ["x"]})]
    uris = (write_part(objects, TENANT, first), write_part(objects, TENANT, second))
    assert write_part(objects, TENANT, []) is None
    assert write_part(objects, TENANT, first) == uris[0]  # content-addressed
    parts = tuple(u for u in uris if u is not None)
    result = run_snapshot_job(_job(parts), objects, no_progress, settings)
    assert isinstance(result, dataset.AddDatasetVersion), result
    assert result.cause == "stream" and result.format == "parquet"
    assert result.dataset_id == snapshot_dataset_id(TENANT, "orders")
    assert parse_snapshot_source(result.source_uri) == (SID, T0, T0 + 2 * MINUTE)
    frame = pl.read_parquet(io.BytesIO(objects.read_bytes(result.object_uri)))
    assert frame.to_dicts() == [
        {"id": 1, "amount": 1.5, "note": None},
        {"id": 2, "amount": None, "note": None},
        {"id": 3, "amount": 2.0, "note": None},
        {"id": 4, "amount": None, "note": "x"},
    ]
    assert (result.rows, result.columns) == (4, 3)
    assert set(json.loads(result.schema_json)) == {"id", "amount", "note"}
    again = run_snapshot_job(_job(parts), objects, no_progress, settings)
    assert again == result  # the same parts: the same object and command


def test_a_job_whose_part_is_missing_fails_with_the_reason(tmp_path: Path) -> None:
    objects = LocalObjectStore(tmp_path / "objects")
    settings = load_settings({}, home=tmp_path / "home")
    missing = "datrix-object://acme/sha256/ab/" + "ab" * 32 + ".parquet"
    result = run_snapshot_job(_job((missing,)), objects, no_progress, settings)
    assert isinstance(result, FailStreamSnapshot)
    assert result.job_id == snapshot_job_id(SID, T0) and result.message
    empty = run_snapshot_job(_job(()), objects, no_progress, settings)
    assert isinstance(empty, FailStreamSnapshot) and "no window parts" in empty.message
