"""The registry (aggregates, policies, job kinds) and the processor's dispatch through it,
with the core and with the toy extension of ``tests/extensions/toy.py``."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from datrix.aggregates import dataset, scan
from datrix.aggregates.common import Command
from datrix.projections.read_models import CORE_READ_MODELS
from datrix.runtime.bootstrap import bootstrap
from datrix.runtime.embedded import EmbeddedRuntime
from datrix.runtime.fixes import FIX_JOB
from datrix.runtime.registry import SCAN_JOB, default_registry, load_registry, read_models_of
from datrix.streams.codec import CodecError
from datrix.streams.event_store import EventStore, sqlite_event_store
from datrix.streams.messages import (
    CORE_TYPES,
    NAMES,
    TYPES,
    Envelope,
    active_types,
    command_envelope,
    decode_command,
    use_types,
)
from datrix.streams.processor import CommandProcessor, _aggregate_ids
from datrix.streams.registry import (
    Policy,
    Reaction,
    Registry,
    RegistryError,
    core_registry,
    policy_command_id,
    policy_reactions,
    react,
    result_command_id,
)
from datrix.streams.settings import SettingsError, load_settings
from tests.extensions import toy

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NAME = "command-processor:test"
ROOT = Path(__file__).resolve().parents[2]


def toy_registry() -> Registry:
    registry = default_registry()
    toy.register(registry)
    return registry


@pytest.fixture(autouse=True)
def restore_types() -> Iterator[None]:
    """Runtimes install their registry's types process-wide; put the core back."""
    before = active_types()
    yield
    use_types(before)


@pytest.fixture
def store(tmp_path: Path) -> EventStore:
    return sqlite_event_store(tmp_path / "events.db")


def envelope(
    registry: Registry, cmd: Command, subject: uuid.UUID, tenant: str = "acme"
) -> Envelope:
    return command_envelope(
        cmd, subject=subject, tenant=tenant, actor="test", time=T0, table=registry.table
    )


# -- the core, declared by the aggregates ----------------------------------------------------
def test_core_type_table_is_what_the_modules_declared_before() -> None:
    """The same Avro names as the old per-module scan (every Command/Event subclass of
    dataset, scan and outcome; JobRequested in datrix.job), so old logs decode the same;
    plus the audit anchor's, added later (issue 12), the fix aggregate's (issue 10) and the
    stream aggregate's (issue 13)."""
    from datrix.aggregates import audit, fix, outcome, stream
    from datrix.aggregates.common import Event

    expected: dict[str, type] = {}
    for module, ns in (
        (dataset, "datrix.dataset"),
        (scan, "datrix.scan"),
        (outcome, "datrix.command"),
        (audit, "datrix.audit"),
        (fix, "datrix.fix"),
        (stream, "datrix.stream"),
    ):
        for name, obj in vars(module).items():
            if (
                isinstance(obj, type)
                and obj.__module__ == module.__name__
                and issubclass(obj, Command | Event)
            ):
                expected[f"{'datrix.job' if name == 'JobRequested' else ns}.{name}"] = obj
    assert expected == TYPES
    assert dict(core_registry().table.types) == expected
    assert NAMES[scan.JobRequested] == "datrix.job.JobRequested"


def test_each_command_belongs_to_one_declared_aggregate() -> None:
    registry = core_registry()
    assert registry.aggregate_of(dataset.RegisterDataset) is dataset.AGGREGATE
    assert registry.aggregate_of(scan.CancelScan) is scan.AGGREGATE
    assert registry.aggregate_of(toy.OpenTicket) is None
    with pytest.raises(RegistryError, match="registered twice"):
        registry.add_aggregate(scan.AGGREGATE)
    with pytest.raises(RegistryError, match="no aggregate named 'ticket'"):
        registry.aggregate("ticket")


def test_routing_key_reads_the_declaration() -> None:
    registry = core_registry()
    ds, sc = uuid.uuid4(), uuid.uuid4()
    assert registry.routing_key(scan.RequestScan(sc, ds), sc) == str(ds)
    assert registry.routing_key(scan.CancelScan(sc), sc) == str(sc)
    assert registry.routing_key(dataset.DeleteDataset(ds), ds) == str(ds)
    t = uuid.uuid4()
    assert toy_registry().routing_key(toy.CloseTicket(t, "x"), t) == str(t)


def test_aggregate_ids_decode_only_commands_that_load_others() -> None:
    registry = toy_registry()
    ds, sc, t = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    assert _aggregate_ids(envelope(registry, scan.RequestScan(sc, ds), sc), registry) == [sc, ds]
    assert _aggregate_ids(envelope(registry, scan.CancelScan(sc), sc), registry) == [sc]
    assert _aggregate_ids(envelope(registry, toy.OpenTicket(t, "a"), t), registry) == [t]


def test_job_kinds_table() -> None:
    registry = default_registry()
    assert registry.job_kind("scan") is SCAN_JOB
    assert registry.job_kind("fix") is FIX_JOB
    assert registry.job_event_types == {
        "datrix.job.JobRequested",
        "datrix.fix.FixJobRequested",
        "datrix.stream.StreamSnapshotRequested",  # its kind never ends: see stream_snapshots
    }
    assert registry.ended_types == {
        "datrix.scan.ScanCompleted",
        "datrix.scan.ScanFailed",
        "datrix.scan.ScanCancelled",
        "datrix.fix.FixPreviewed",
        "datrix.fix.FixCompleted",
        "datrix.fix.FixFailed",
    }
    assert registry.requests_job(scan.RequestScan(uuid.uuid4(), uuid.uuid4()))
    assert not registry.requests_job(scan.CancelScan(uuid.uuid4()))
    with pytest.raises(RegistryError, match="no job kind 'pipeline'"):
        registry.job_kind("pipeline")
    job_id = uuid.uuid4()
    assert result_command_id(job_id) == uuid.uuid5(job_id, "result")  # as before
    failed = SCAN_JOB.failed(_job(job_id), "JobTimeout", "too slow")
    assert isinstance(failed, scan.FailScan) and failed.job_id == job_id
    assert SCAN_JOB.actor_of(_job(job_id)) == "worker:polars"


def _job(job_id: uuid.UUID) -> scan.JobRequested:
    return scan.JobRequested(
        originator_id=uuid.uuid4(),
        originator_version=2,
        timestamp=T0,
        job_id=job_id,
        kind="scan",
        engine="polars",
        tenant="acme",
        dataset_id=uuid.uuid4(),
        version=1,
        object_uri="datrix-object://acme/x",
        object_sha256="0" * 64,
        label_column=None,
        seed=0,
        attempt=1,
    )


# -- the processor dispatches through the registry -------------------------------------------
def test_processor_decides_a_registered_aggregate(store: EventStore) -> None:
    registry = toy_registry()
    proc = CommandProcessor(store, registry)
    t = uuid.uuid4()
    opened = proc.process(NAME, 1, envelope(registry, toy.OpenTicket(t, "jam", "low"), t))
    assert opened.outcome == "applied"
    assert [e.type for e in opened.events] == [
        "toy.ticket.TicketOpened",
        "datrix.command.CommandAccepted",
    ]
    state = proc.load("ticket", t)
    assert state == toy.Ticket(id=t, version=1, tenant="acme")
    closed = proc.process(NAME, 2, envelope(registry, toy.CloseTicket(t, "done"), t))
    assert closed.outcome == "applied" and proc.load("ticket", t).closed
    again = proc.process(NAME, 3, envelope(registry, toy.CloseTicket(t, "done"), t))
    assert again.outcome == "rejected" and again.reason == f"ticket {t} is already closed"
    # the toy's own invariants refuse what they refuse
    other = proc.process(NAME, 4, envelope(registry, toy.OpenTicket(uuid.uuid4(), " "), t))
    assert other.outcome == "rejected" and other.reason == "a ticket needs a title"


def test_a_processor_without_the_extension_rejects_its_commands(store: EventStore) -> None:
    """The core processor does not know the toy: its command is recorded as rejected (the
    codec has no schema for it), not crashing the processor."""
    registry = toy_registry()
    t = uuid.uuid4()
    result = CommandProcessor(store).process(
        NAME, 1, envelope(registry, toy.OpenTicket(t, "jam"), t)
    )
    assert result.outcome == "rejected" and "fingerprint" in (result.reason or "")
    with pytest.raises(CodecError):
        decode_command(envelope(registry, toy.OpenTicket(t, "jam"), t).data)  # core table


def test_a_command_no_aggregate_declares_is_rejected(store: EventStore) -> None:
    registry = toy_registry()
    registry.aggregates.pop("ticket")
    registry._by_command.pop(toy.OpenTicket)
    t = uuid.uuid4()
    result = CommandProcessor(store, registry).process(
        NAME, 1, envelope(toy_registry(), toy.OpenTicket(t, "jam"), t)
    )
    assert result.outcome == "rejected" and result.reason == "no handler for OpenTicket"


def test_batch_processing_loads_through_the_registry(store: EventStore) -> None:
    registry = toy_registry()
    proc = CommandProcessor(store, registry)
    t = uuid.uuid4()
    batch = [
        (1, envelope(registry, toy.OpenTicket(t, "jam"), t)),
        (2, envelope(registry, toy.CloseTicket(t, "fixed"), t)),
        (3, envelope(registry, toy.CloseTicket(t, "twice"), t)),
    ]
    results = proc.process_batch(NAME, batch)
    assert [r.outcome for r in results] == ["applied", "applied", "rejected"]
    assert [e.type for e in store.load(t)] == ["toy.ticket.TicketOpened", "toy.ticket.TicketClosed"]


# -- policies ------------------------------------------------------------------------------
def test_policy_commands_have_deterministic_ids_and_the_event_as_cause(store: EventStore) -> None:
    registry = toy_registry()
    t = uuid.uuid4()
    cmd = envelope(registry, toy.OpenTicket(t, "jam", "low"), t)
    result = CommandProcessor(store, registry).process(NAME, 1, cmd)
    opened = result.events[0]
    first = react(registry, opened)
    assert first == react(registry, opened)  # a redelivered event: the same commands
    [(issued, key)] = first
    assert issued.id == policy_command_id(opened.id, "ticket-triage", 0)
    assert issued.causation_id == str(opened.id)
    assert issued.correlation_id == cmd.correlation_id == str(cmd.id)
    assert (issued.tenant, issued.actor, issued.time) == ("acme", "policy:ticket-triage", T0)
    assert issued.subject == key == str(t)
    assert decode_command(issued.data, table=registry.table) == toy.CloseTicket(
        t, toy.AUTO_CLOSE_REASON
    )
    # events the policy does not follow, and tickets it leaves open, issue nothing
    assert react(registry, result.events[1]) == []
    high = uuid.uuid4()
    normal = CommandProcessor(store, registry).process(
        NAME, 2, envelope(registry, toy.OpenTicket(high, "down", "high"), high)
    )
    assert react(registry, normal.events[0]) == []
    assert policy_reactions(registry, toy.TRIAGE, normal.events[0]) == []


def test_policy_names_are_unique() -> None:
    registry = toy_registry()
    with pytest.raises(RegistryError, match="policy 'ticket-triage' is registered twice"):
        registry.add_policy(Policy("ticket-triage", (toy.TicketOpened,), lambda e, env: []))
    r = Reaction(toy.CloseTicket(uuid.uuid4(), "x"), uuid.uuid4())
    assert r.command.reason == "x"  # type: ignore[attr-defined]


def test_embedded_runtime_runs_the_policy_and_a_rerun_adds_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATRIX_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DATRIX_TENANT", "acme")
    monkeypatch.setenv("DATRIX_EXTENSIONS", "tests.extensions.toy")
    rt = EmbeddedRuntime(load_settings())
    assert "ticket" in rt.registry.aggregates and rt.registry.extensions == ["tests.extensions.toy"]
    low, high = uuid.uuid4(), uuid.uuid4()
    rt.submit(toy.OpenTicket(low, "jam", "low"), low)
    rt.submit(toy.OpenTicket(high, "down", "high"), high)
    rt.drain()
    assert [e.type for e in rt.events.load(low)] == [
        "toy.ticket.TicketOpened",
        "toy.ticket.TicketClosed",
    ]
    assert [e.type for e in rt.events.load(high)] == ["toy.ticket.TicketOpened"]
    statuses = rt.read_store.query(
        "SELECT command_type, status FROM command_status "
        "WHERE command_type NOT LIKE 'datrix.audit.%' ORDER BY command_type"  # the anchor's
    )
    assert statuses == [
        ("toy.ticket.CloseTicket", "accepted"),
        ("toy.ticket.OpenTicket", "accepted"),
        ("toy.ticket.OpenTicket", "accepted"),
    ]
    # the toy's read model, from the same registration
    assert rt.read_store.query("SELECT title, status FROM toy_tickets ORDER BY title") == [
        ("down", "open"),
        ("jam", "closed"),
    ]
    # a policy that crashed before saving its position reacts again: same ids, dropped
    before = (rt.commands.head(), rt.events.head())
    rt.commands.set_position("policy:ticket-triage", 0)
    rt.drain()
    assert (rt.commands.head(), rt.events.head()) == before


# -- extensions from the settings ------------------------------------------------------------
def test_extensions_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATRIX_EXTENSIONS", " tests.extensions.toy , ")
    settings = load_settings()
    assert settings.extensions == ("tests.extensions.toy",)
    registry = load_registry(settings)
    assert registry.table.types["toy.ticket.OpenTicket"] is toy.OpenTicket
    assert registry.policies["ticket-triage"] is toy.TRIAGE
    assert toy.SCHEMAS in registry.schema_dirs
    # loading is not installing: the process's table and the core table are unchanged
    assert "toy.ticket.OpenTicket" not in active_types().types
    assert "toy.ticket.OpenTicket" not in TYPES and "toy.ticket.OpenTicket" not in CORE_TYPES.types
    monkeypatch.delenv("DATRIX_EXTENSIONS")
    assert load_settings().extensions == ()


def test_read_models_come_from_the_registry(tmp_path: Path) -> None:
    app = bootstrap(home=tmp_path / "home", extensions=("tests.extensions.toy",))
    assert app.read_models == (*CORE_READ_MODELS, toy.TICKETS)
    assert bootstrap(home=tmp_path / "home").read_models == CORE_READ_MODELS
    registry = toy_registry()  # toy.register added TICKETS
    assert registry.read_models == [toy.TICKETS]
    with pytest.raises(RegistryError, match="read model 'toy-tickets' is registered twice"):
        registry.add_read_model(toy.TICKETS)
    with pytest.raises(RegistryError, match="has no name"):
        registry.add_read_model(object())
    registry.add_read_model(SimpleNamespace(name="not-a-read-model"))
    with pytest.raises(RegistryError, match=r"is not a datrix\.projections\.read_model\.ReadModel"):
        read_models_of(registry)


def test_a_bad_extension_is_a_settings_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATRIX_EXTENSIONS", "tests.extensions.nothing_here")
    with pytest.raises(SettingsError, match=r"cannot import 'tests\.extensions\.nothing_here'"):
        load_registry(load_settings())
    monkeypatch.setenv("DATRIX_EXTENSIONS", "tests.extensions")  # a module without register
    with pytest.raises(SettingsError, match="has no register"):
        load_registry(load_settings())


def test_the_toy_needs_no_edit_outside_tests() -> None:
    """The proof that a new aggregate + policy is a module plus one registration: the toy
    lives in tests/extensions only, and no file outside tests/ names it."""
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    outside = [
        p
        for p in tracked
        if not p.startswith("tests/") and p.endswith((".py", ".avsc", ".toml", ".cfg"))
    ]
    assert outside, "no sources found"
    for path in outside:
        text = (ROOT / path).read_text(errors="replace")
        assert "tests.extensions" not in text and "toy.ticket" not in text, path
    # and the core does not import it
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, datrix.gateway.cli, datrix.runtime.worker, datrix.runtime.job_process; "
            "sys.exit('tests.extensions.toy' in sys.modules)",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert probe.returncode == 0, probe.stderr
