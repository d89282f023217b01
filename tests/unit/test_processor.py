"""The command processor on the real eventsourcing SQLite recorders."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent, Tracking
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

from datrix.aggregates import dataset, scan
from datrix.streams.event_store import EventStore, sqlite_event_store
from datrix.streams.messages import command_envelope, decode_event
from datrix.streams.processor import CommandProcessor

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NAME = "command-processor:test"


def envelope(cmd: object, subject: uuid.UUID, tenant: str = "acme"):  # type: ignore[no-untyped-def]
    return command_envelope(cmd, subject=subject, tenant=tenant, actor="test", time=T0)  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path) -> EventStore:
    return sqlite_event_store(tmp_path / "events.db")


def test_redelivered_command_is_a_noop(store: EventStore) -> None:
    proc = CommandProcessor(store)
    ds_id = dataset.dataset_id_for("acme", "sales")
    env = envelope(dataset.RegisterDataset(ds_id, "sales"), ds_id)
    first = proc.process(NAME, 1, env)
    assert first.outcome == "applied"
    again = proc.process(NAME, 1, env)
    assert again.outcome == "duplicate"
    assert len(store.load(ds_id)) == 1
    assert store.head() == 2  # the event and the command's outcome


def test_same_command_id_at_another_position_is_a_noop(store: EventStore) -> None:
    """A producer retry or a resubmitted Idempotency-Key: same id, new log position."""
    proc = CommandProcessor(store)
    ds_id = dataset.dataset_id_for("acme", "sales")
    env = envelope(dataset.RegisterDataset(ds_id, "sales"), ds_id)
    assert proc.process(NAME, 1, env).outcome == "applied"
    assert proc.process(NAME, 2, env).outcome == "duplicate"
    assert store.head() == 2
    assert store.position(NAME) == 2  # the position still moves on


def test_tracking_and_events_commit_together_or_not_at_all(store: EventStore) -> None:
    """The trap in the brief: only a *process* recorder stores tracking, and a redelivered
    position is refused with IntegrityError, storing none of its events."""
    ds_id = dataset.dataset_id_for("acme", "sales")
    proc = CommandProcessor(store)
    proc.process(NAME, 1, envelope(dataset.RegisterDataset(ds_id, "sales"), ds_id))
    other = uuid.uuid4()
    stored = StoredEvent(originator_id=other, originator_version=1, topic="x", state=b"y")
    with pytest.raises(IntegrityError):
        store.recorder.insert_events([stored], tracking=Tracking(NAME, 1))
    assert list(store.recorder.select_events(other)) == []
    assert store.position(NAME) == 1


def test_an_application_recorder_would_silently_drop_tracking(tmp_path: Path) -> None:
    """Why the event store uses the process recorder: the plain application recorder
    accepts the tracking argument and ignores it, so redelivery would apply twice."""
    datastore = SQLiteDatastore(str(tmp_path / "app.db"))
    recorder = SQLiteApplicationRecorder(datastore)
    recorder.create_table()
    for version in (1, 2):
        event = StoredEvent(uuid.uuid4(), version, "x", b"y")
        recorder.insert_events([event], tracking=Tracking(NAME, 1))  # no error either time
    assert recorder.max_notification_id() == 2


def test_optimistic_concurrency_refuses_a_taken_version(store: EventStore) -> None:
    ds_id = dataset.dataset_id_for("acme", "s")
    CommandProcessor(store).process(NAME, 1, envelope(dataset.RegisterDataset(ds_id, "s"), ds_id))
    clash = StoredEvent(originator_id=ds_id, originator_version=1, topic="x", state=b"y")
    with pytest.raises(IntegrityError):
        store.recorder.insert_events([clash], tracking=Tracking(NAME, 2))
    assert store.position(NAME) == 1


def test_rejection_is_recorded_with_its_reason(store: EventStore) -> None:
    proc = CommandProcessor(store)
    ds_id = uuid.uuid4()
    env = envelope(dataset.DeleteDataset(ds_id), ds_id)
    result = proc.process(NAME, 1, env)
    assert result.outcome == "rejected"
    assert result.reason is not None and "not registered" in result.reason
    recorded = store.load(env.id)
    assert len(recorded) == 1 and recorded[0].type == "datrix.command.CommandRejected"
    assert store.position(NAME) == 1


def test_undecodable_command_is_rejected_not_crashing(store: EventStore) -> None:
    ds_id = dataset.dataset_id_for("acme", "s")
    env = envelope(dataset.RegisterDataset(ds_id, "s"), ds_id)
    broken = type(env)(**{**env.__dict__, "data": b"\xc3\x01garbage!"})
    result = CommandProcessor(store).process(NAME, 1, broken)
    assert result.outcome == "rejected"
    assert "fingerprint" in (result.reason or "")


def test_scan_flow_events_carry_causation(store: EventStore) -> None:
    proc = CommandProcessor(store)
    ds_id, scan_id = dataset.dataset_id_for("acme", "s"), uuid.uuid4()
    proc.process(NAME, 1, envelope(dataset.RegisterDataset(ds_id, "s"), ds_id))
    add = dataset.AddDatasetVersion(
        ds_id, "datrix-object://acme/x", "0" * 64, "file:///x", "1" * 64, "csv", 1, 1, 1, "{}"
    )
    proc.process(NAME, 2, envelope(add, ds_id))
    req = envelope(scan.RequestScan(scan_id, ds_id), scan_id)
    result = proc.process(NAME, 3, req)
    assert result.outcome == "applied"
    assert [e.type for e in result.events] == [
        "datrix.scan.ScanRequested",
        "datrix.job.JobRequested",
        "datrix.command.CommandAccepted",
    ]
    assert all(e.causation_id == str(req.id) for e in result.events)
    job = decode_event(result.events[1])
    assert isinstance(job, scan.JobRequested) and job.version == 1
    # another tenant cannot scan it
    other = envelope(scan.RequestScan(uuid.uuid4(), ds_id), uuid.uuid4(), tenant="evil")
    assert proc.process(NAME, 4, other).outcome == "rejected"


def test_an_outcome_is_keyed_by_its_aggregate_after_its_events(store: EventStore) -> None:
    """A command's outcome (its own stream, id = command id) travels with the Kafka key of
    the aggregate the command was for, after that aggregate's events: on one partition,
    a projector that has projected ``accepted`` has projected the events too (a client that
    saw its upload accepted then asked for the dataset by name got a 404 in Kafka mode)."""
    from datrix.streams.kafka import from_message, to_message

    proc = CommandProcessor(store)
    ds_id = dataset.dataset_id_for("acme", "sales")
    env = envelope(dataset.RegisterDataset(ds_id, "sales"), ds_id)
    proc.process(NAME, 1, env)
    relayed = [to_message(e, position=nid) for nid, e in store.read(0, 10)]
    assert [key for key, _, _ in relayed] == [str(ds_id).encode()] * 2
    outcome, _ = from_message(relayed[1][2], relayed[1][1])
    assert (outcome.subject, outcome.partition_key) == (str(env.id), str(ds_id))
    assert decode_event(outcome).aggregate_id == ds_id  # type: ignore[attr-defined]
