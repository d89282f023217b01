"""A toy aggregate + policy registered from a test module only (``tests/extensions/toy.py``,
``DATRIX_EXTENSIONS=tests.extensions.toy``) works end to end: in the embedded default and
in Kafka mode, its commands are decided, the policy's command is processed and accepted,
its read model (``toy_tickets``) is kept by the projector, the audit trail lists the
events and a replay of the read models, the toy's included, still verifies."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from datrix.gateway import services
from datrix.projections.queries import Views
from datrix.streams.messages import active_types, use_types
from datrix.streams.registry import policy_command_id
from datrix.streams.settings import load_settings
from tests.extensions import toy
from tests.integration.conftest import ROOT, Cli, KafkaCli

pytestmark = pytest.mark.integration

EXTENSION = "tests.extensions.toy"


def extension_env() -> dict[str, str]:
    """What a process needs to load the toy: the setting, and the repository root on its
    path (the worker and CLI subprocesses import the test module)."""
    path = os.environ.get("PYTHONPATH", "")
    return {
        "DATRIX_EXTENSIONS": EXTENSION,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{path}" if path else str(ROOT),
    }


@dataclass
class ExtCli(Cli):
    def env(self) -> dict[str, str]:
        return {**super().env(), **extension_env()}


@pytest.fixture(autouse=True)
def restore_types() -> Iterator[None]:
    """The runtimes built here install the toy's types in this process; put them back."""
    before = active_types()
    yield
    use_types(before)


def policy_command(ticket_command_id: uuid.UUID, ticket: uuid.UUID) -> str:
    """The id the triage policy gives its CloseTicket: derived from the TicketOpened event,
    whose id derives from the OpenTicket command (``event_envelope``)."""
    opened = uuid.uuid5(ticket_command_id, f"{ticket}/1")
    return str(policy_command_id(opened, toy.TRIAGE.name, 0))


def check_audit_and_replay(run: Any, low: uuid.UUID, high: uuid.UUID) -> None:
    log = run("audit", "log", "--format", "json")
    assert log.code == 0, log.stderr
    entries = log.json()
    toy_events = sorted(
        (e["event_type"], e["subject"], e["actor"].startswith("policy:"))
        for e in entries
        if e["event_type"].startswith("toy.")
    )
    assert toy_events == sorted(
        [
            ("toy.ticket.TicketOpened", str(low), False),
            ("toy.ticket.TicketOpened", str(high), False),
            ("toy.ticket.TicketClosed", str(low), True),
        ]
    )
    closed = next(e for e in entries if e["event_type"] == "toy.ticket.TicketClosed")
    assert closed["actor"] == "policy:ticket-triage"
    assert json.loads(closed["summary"]) == {"reason": toy.AUTO_CLOSE_REASON}
    verify = run("audit", "verify")
    assert verify.code == 0, verify.stdout + verify.stderr
    replay = run("replay", "--verify")
    assert replay.code == 0, replay.stdout + replay.stderr
    assert "identical" in replay.stdout


def tickets(rt: Any) -> list[tuple[str, str, str | None]]:
    """The toy's read model, as the runtime's tenant sees it."""
    rows = rt.read_store.query("SELECT id, status, reason FROM toy_tickets ORDER BY title")
    return [(str(i), str(s), r) for i, s, r in rows]


def expected_tickets(low: uuid.UUID, high: uuid.UUID) -> list[tuple[str, str, str | None]]:
    # ordered by title: "printer jam" (low), "server down" (high)
    return [(str(low), "closed", toy.AUTO_CLOSE_REASON), (str(high), "open", None)]


def test_toy_extension_end_to_end_embedded(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    from datrix.runtime.embedded import EmbeddedRuntime

    monkeypatch.setenv("DATRIX_HOME", str(cli.home))
    monkeypatch.setenv("DATRIX_TENANT", "default")
    monkeypatch.setenv("DATRIX_EXTENSIONS", EXTENSION)
    rt = EmbeddedRuntime(load_settings())
    low, high = uuid.uuid4(), uuid.uuid4()
    opened_low = rt.submit(toy.OpenTicket(low, "printer jam", "low"), low)
    rt.submit(toy.OpenTicket(high, "server down", "high"), high)
    rt.drain()

    views = Views(rt.read_store, "default")
    status = views.command_status(policy_command(opened_low.id, low))
    assert status == {"status": "accepted", "reason": None}
    assert [e.type for e in rt.events.load(high)] == ["toy.ticket.TicketOpened"]
    closing = rt.events.load(low)[1]
    assert closing.causation_id == policy_command(opened_low.id, low)
    assert closing.correlation_id == str(opened_low.id)
    assert toy.TICKETS in rt.read_models
    assert tickets(rt) == expected_tickets(low, high)
    replayed = services.replay(rt, verify=True)
    assert replayed.identical and "toy_tickets" in replayed.tables

    check_audit_and_replay(ExtCli(cli.home), low, high)


def test_toy_extension_end_to_end_in_kafka_mode(
    kafka_cli: KafkaCli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from datrix.runtime.kafka import KafkaRuntime

    assert kafka_cli.extra is not None
    kafka_cli.extra.update(extension_env())
    kafka_cli.start_worker()  # every role, the policies role included, with the toy
    for key, value in kafka_cli.env().items():
        if key.startswith("DATRIX_"):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("DATRIX_HOME", str(tmp_path / "client-home"))
    rt = KafkaRuntime(load_settings())
    low, high = uuid.uuid4(), uuid.uuid4()
    opened_low = rt.submit(toy.OpenTicket(low, "printer jam", "low"), low)
    opened_high = rt.submit(toy.OpenTicket(high, "server down", "high"), high)
    views = Views(rt.read_store, rt.settings.tenant)
    policy_id = policy_command(opened_low.id, low)

    def done() -> bool:
        # the outcomes and the events land on different partitions: wait for all of them
        if views.command_status(policy_id) is None:
            return False
        if views.command_status(str(opened_high.id)) is None:
            return False
        types = [e["event_type"] for e in views.audit()]
        if types.count("toy.ticket.TicketOpened") != 2 or "toy.ticket.TicketClosed" not in types:
            return False
        return tickets(rt) == expected_tickets(low, high)  # the worker's projector keeps it

    rt.wait_for(done, timeout=180)
    assert views.command_status(policy_id) == {"status": "accepted", "reason": None}
    assert views.command_status(str(opened_high.id)) == {"status": "accepted", "reason": None}

    check_audit_and_replay(kafka_cli, low, high)
