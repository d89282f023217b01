"""Issue 12, items 1 and 2, in the processor itself (the embedded default runs the same
processor): a command the aggregate cannot accept is a recorded refusal, a command that
cannot be handled at all is refused and marked for the dead-letter topic, and the next
command is processed either way. The Kafka path: tests/integration/test_poison.py."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from datrix.aggregates import dataset, scan
from datrix.aggregates.common import Command
from datrix.streams.event_store import EventStore, sqlite_event_store
from datrix.streams.messages import Envelope, command_envelope, encode_payload
from datrix.streams.processor import CommandProcessor, Result
from datrix.streams.registry import Registry, core_registry

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NAME = "command-processor:test"
TENANT = "acme"


def envelope(cmd: Command, subject: uuid.UUID, command_id: uuid.UUID | None = None) -> Envelope:
    return command_envelope(
        cmd, subject=subject, tenant=TENANT, actor="test", time=T0, command_id=command_id
    )


def register(name: str) -> tuple[uuid.UUID, Envelope]:
    ds = dataset.dataset_id_for(TENANT, name)
    return ds, envelope(dataset.RegisterDataset(ds, name), ds)


def version_of(ds: uuid.UUID) -> dataset.AddDatasetVersion:
    return dataset.AddDatasetVersion(
        ds, "datrix-object://acme/x", "0" * 64, "file:///x", "0" * 64, "csv", 1, 1, 1, "{}"
    )


@pytest.fixture
def store(tmp_path: Path) -> EventStore:
    return sqlite_event_store(tmp_path / "events.db")


def statuses(store: EventStore, ids: list[uuid.UUID]) -> list[str]:
    out = []
    for cid in ids:
        stream = store.load(cid)
        out.append(stream[0].type.rsplit(".", 1)[-1] if stream else "none")
    return out


def good_after(proc: CommandProcessor, position: int) -> Result:
    """A good command right behind the bad one is applied."""
    _, env = register(f"good-{position}")
    result = proc.process(NAME, position, env)
    assert result.outcome == "applied"
    return result


def test_add_version_to_a_scan_id_is_refused_not_a_crash(store: EventStore) -> None:
    proc = CommandProcessor(store)
    ds, reg = register("sales")
    scan_id = uuid.uuid4()
    assert proc.process(NAME, 1, reg).outcome == "applied"
    assert proc.process(NAME, 2, envelope(version_of(ds), ds)).outcome == "applied"
    assert (
        proc.process(NAME, 3, envelope(scan.RequestScan(scan_id, ds), scan_id)).outcome == "applied"
    )
    bad = envelope(version_of(scan_id), scan_id)
    result = proc.process(NAME, 4, bad)
    assert result.outcome == "rejected" and result.dead_letter is None
    assert result.reason is not None and "is not a dataset" in result.reason
    assert statuses(store, [bad.id]) == ["CommandRejected"]
    assert store.position(NAME) == 4
    good_after(proc, 5)


def test_add_version_to_a_scan_id_in_a_batch(store: EventStore) -> None:
    proc = CommandProcessor(store)
    ds, reg = register("sales")
    scan_id = uuid.uuid4()
    bad = envelope(version_of(scan_id), scan_id)
    _, good = register("after")
    batch = [
        (1, reg),
        (2, envelope(version_of(ds), ds)),
        (3, envelope(scan.RequestScan(scan_id, ds), scan_id)),
        (4, bad),
        (5, good),
    ]
    results = proc.process_batch(NAME, batch)
    assert [r.outcome for r in results] == ["applied"] * 3 + ["rejected", "applied"]
    assert store.position(NAME) == 5


@pytest.mark.parametrize("batched", [False, True])
def test_register_with_its_own_command_id_is_refused(store: EventStore, batched: bool) -> None:
    """The dataset id equals the command id: the dataset stream and the outcome stream
    would both be version 1 of one id. Refused at once (it used to conflict forever)."""
    proc = CommandProcessor(store)
    ds = dataset.dataset_id_for(TENANT, "twin")
    bad = envelope(dataset.RegisterDataset(ds, "twin"), ds, command_id=ds)
    _, good = register("after")
    if batched:
        results = proc.process_batch(NAME, [(1, bad), (2, good)])
    else:
        results = [proc.process(NAME, 1, bad), proc.process(NAME, 2, good)]
    assert [r.outcome for r in results] == ["rejected", "applied"]
    assert results[0].reason is not None and "must not name an aggregate" in results[0].reason
    assert statuses(store, [bad.id]) == ["CommandRejected"]
    assert store.position(NAME) == 2


def test_a_command_id_naming_an_existing_dataset_is_refused(store: EventStore) -> None:
    proc = CommandProcessor(store)
    ds, reg = register("sales")
    proc.process(NAME, 1, reg)
    clash = envelope(dataset.DeleteDataset(ds), ds, command_id=ds)
    result = proc.process(NAME, 2, clash)
    assert result.outcome == "rejected" and result.dead_letter is not None
    assert len(store.load(ds)) == 1  # the dataset is untouched
    good_after(proc, 3)


def test_ce_type_must_name_the_payload(store: EventStore) -> None:
    """A RegisterDataset sent as ``DeleteDataset`` used to be applied and recorded as a
    DeleteDataset."""
    proc = CommandProcessor(store)
    ds, reg = register("sales")
    lying = dataclasses.replace(reg, type="datrix.dataset.DeleteDataset")
    result = proc.process(NAME, 1, lying)
    assert result.outcome == "rejected" and result.dead_letter is not None
    assert result.reason is not None and "does not match its payload" in result.reason
    assert store.load(ds) == []
    good_after(proc, 2)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"tenant": ""}, "no tenant"),
        ({"actor": ""}, "no actor"),
        ({"correlation_id": ""}, "no correlation id"),
        ({"time": datetime(2026, 1, 1)}, "no time zone"),
        ({"subject": "yesterday"}, "not an aggregate id"),
        ({"type": ""}, "no type"),
    ],
)
def test_envelope_without_required_attributes_is_refused(
    store: EventStore, change: dict[str, object], why: str
) -> None:
    proc = CommandProcessor(store)
    ds, reg = register("sales")
    result = proc.process(NAME, 1, dataclasses.replace(reg, **change))  # type: ignore[arg-type]
    assert result.outcome == "rejected" and result.dead_letter is not None
    assert result.reason is not None and why in result.reason
    assert store.load(ds) == []  # nothing applied under a made-up tenant or actor
    good_after(proc, 2)


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\x01random bytes",
        b"\xc3\x01" + b"\xff" * 8 + b"body",  # unknown fingerprint
        b"",
    ],
)
def test_undecodable_payloads_are_refused(store: EventStore, data: bytes) -> None:
    proc = CommandProcessor(store)
    _, reg = register("sales")
    result = proc.process(NAME, 1, dataclasses.replace(reg, data=data))
    assert result.outcome == "rejected" and result.dead_letter is not None
    assert statuses(store, [reg.id]) == ["CommandRejected"]
    good_after(proc, 2)


def test_truncated_body_and_event_payload_are_refused(store: EventStore) -> None:
    proc = CommandProcessor(store)
    ds, reg = register("sales")
    truncated = dataclasses.replace(reg, data=reg.data[:-3])
    event = dataset.DatasetDeleted(originator_id=ds, originator_version=1, timestamp=T0, reason="x")
    as_event = dataclasses.replace(reg, id=uuid.uuid4(), data=encode_payload(event))
    results = proc.process_batch(NAME, [(1, truncated), (2, as_event)])
    assert [r.outcome for r in results] == ["rejected", "rejected"]
    assert all(r.dead_letter for r in results)
    assert results[1].reason is not None and "is not a command" in results[1].reason
    good_after(proc, 3)


def test_a_handler_that_raises_is_refused_and_dead_lettered(store: EventStore) -> None:
    def broken(*_args: object) -> list[object]:
        raise KeyError("bug")

    registry = Registry()
    for spec in core_registry().aggregates.values():
        if spec.name == "scan":
            spec = dataclasses.replace(spec, decide=broken)
        registry.add_aggregate(spec)
    registry.add_types({n: c for n, c in core_registry().table.types.items()})
    proc = CommandProcessor(store, registry)
    ds, reg = register("sales")
    scan_id = uuid.uuid4()
    request = envelope(scan.RequestScan(scan_id, ds), scan_id)
    _, good = register("after")
    results = proc.process_batch(NAME, [(1, reg), (2, request), (3, good)])
    assert [r.outcome for r in results] == ["applied", "rejected", "applied"]
    assert results[1].dead_letter is not None and "KeyError" in results[1].dead_letter
    assert store.position(NAME) == 3


def test_jamming_commands_do_not_jam_the_embedded_default(tmp_path: Path) -> None:
    """The embedded runtime, through its own command log: both jamming commands are
    refused with their reason in ``command_status`` and the command behind them runs."""
    from datrix.projections.queries import Views
    from datrix.runtime.bootstrap import bootstrap
    from datrix.runtime.embedded import EmbeddedRuntime
    from datrix.streams.settings import Settings

    rt = bootstrap(Settings(home=tmp_path / "home", tenant=TENANT)).runtime
    assert isinstance(rt, EmbeddedRuntime)
    ds = dataset.dataset_id_for(TENANT, "sales")
    scan_id = uuid.uuid4()
    rt.submit(dataset.RegisterDataset(ds, "sales"), ds)
    rt.submit(version_of(ds), ds)
    rt.submit(scan.RequestScan(scan_id, ds), scan_id)
    to_scan = rt.submit(version_of(scan_id), scan_id)
    twin_id = dataset.dataset_id_for(TENANT, "twin")
    twin = rt.submit(dataset.RegisterDataset(twin_id, "twin"), twin_id, command_id=twin_id)
    after = dataset.dataset_id_for(TENANT, "after")
    good = rt.submit(dataset.RegisterDataset(after, "after"), after)
    rt.catch_up()
    views = Views(rt.read_store, TENANT)
    refused = [views.command_status(str(e.id)) for e in (to_scan, twin)]
    assert [s["status"] if s else None for s in refused] == ["rejected", "rejected"]
    assert "is not a dataset" in refused[0]["reason"]  # type: ignore[index]
    assert "must not name an aggregate" in refused[1]["reason"]  # type: ignore[index]
    status = views.command_status(str(good.id))
    assert status is not None and status["status"] == "accepted"
    assert sorted(d["name"] for d in views.datasets()) == ["after", "sales"]
