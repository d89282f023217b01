"""Issue 12, item 1, for the consumers of events and jobs and for a command handler that
raises, against the real broker and Postgres (the worker as a subprocess, with the
``tests.extensions.fragile`` extension: a decider, a read model and a policy that raise on
purpose). Each bad record is dead-lettered (``<prefix>events.dlq``, ``<prefix>jobs.dlq``,
``<prefix>commands.dlq``) and a good record behind it on the same partition is processed
within seconds. All records of a test are sent in one batch (one flush), then awaited."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from datrix.aggregates.common import Command
from datrix.aggregates.dataset import RegisterDataset, dataset_id_for
from datrix.jobs.bench.generate import generate
from datrix.projections.projector import NOT_PROJECTED
from datrix.projections.store import PostgresReadStore
from datrix.streams.event_store import EventStore, postgres_event_store
from datrix.streams.kafka import PARTITIONS, Topics, client_config, to_message
from datrix.streams.messages import command_envelope, decode_event
from datrix.streams.registry import core_registry
from datrix.streams.settings import load_settings
from tests.extensions import fragile, toy
from tests.integration.conftest import ROOT, KafkaCli
from tests.integration.test_kafka_faults import start_running_worker

pytestmark = pytest.mark.integration
TENANT = "poison-roles"
KEY = b"one-partition"  # the commands of a test on one partition, in order
GOOD_WITHIN_S = 20.0  # command -> processor -> relay -> projector (-> policy -> ... again)


@pytest.fixture
def fragile_cli(kafka_cli: KafkaCli) -> Iterator[KafkaCli]:
    path = os.environ.get("PYTHONPATH", "")
    kafka_cli.extra = {
        **(kafka_cli.extra or {}),
        "DATRIX_EXTENSIONS": "tests.extensions.fragile",
        "DATRIX_TENANT": TENANT,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{path}" if path else str(ROOT),
    }
    yield kafka_cli


class Records:
    """An external producer (plain confluent-kafka): everything is produced first and
    confirmed by one flush."""

    def __init__(self, cli: KafkaCli) -> None:
        from confluent_kafka import Producer

        env = cli.extra or {}
        self.topics = Topics(env["DATRIX_TOPIC_PREFIX"])
        self.producer = Producer(client_config(load_settings(env)))
        self.store: EventStore = postgres_event_store(
            env["DATRIX_DATABASE_URL"], env["DATRIX_DATABASE_SCHEMA"]
        )
        self.owner = PostgresReadStore(env["DATRIX_DATABASE_URL"], env["DATRIX_DATABASE_SCHEMA"])
        self.registry = core_registry()
        fragile.register(self.registry)  # what the worker runs with

    def raw(self, topic: str, partition: int, value: bytes, headers: list[Any]) -> None:
        self.producer.produce(
            topic, value=value, key=b"broken", headers=headers, partition=partition
        )

    def command(self, command: Command, subject: uuid.UUID) -> uuid.UUID:
        env = command_envelope(
            command,
            subject=subject,
            tenant=TENANT,
            actor="ext",
            time=datetime.now(UTC),
            table=self.registry.table,
        )
        _key, value, headers = to_message(env)
        self.producer.produce(self.topics.commands, value=value, key=KEY, headers=headers)
        return uuid.UUID(str(env.id))

    def flush(self) -> float:
        assert self.producer.flush(30) == 0
        return time.monotonic()

    def outcome(self, command_id: uuid.UUID) -> str | None:
        stream = self.store.load(command_id)
        return stream[0].type.rsplit(".", 1)[-1] if stream else None

    def reason(self, command_id: uuid.UUID) -> str:
        return str(getattr(decode_event(self.store.load(command_id)[0]), "reason", ""))

    def ticket(self, ticket_id: uuid.UUID) -> tuple[Any, ...] | None:
        rows = self.owner.query(
            "SELECT title, status FROM fragile_tickets WHERE id = ?", (str(ticket_id),)
        )
        return tuple(rows[0]) if rows else None


def wait_until(condition: Callable[[], bool], what: str, since: float) -> float:
    """Poll until ``condition`` holds; the seconds since ``since`` (the flush)."""
    while not condition():
        if time.monotonic() - since > 120:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.05)
    return time.monotonic() - since


def letters(cli: KafkaCli, which: str) -> list[dict[str, Any]]:
    listed = cli("dlq", "list", "--topic", which, "--format", "json")
    assert listed.code == 0, listed.stderr
    found: list[dict[str, Any]] = listed.json()
    return found


def test_bad_events_never_stop_the_projector_or_the_policies(fragile_cli: KafkaCli) -> None:
    start_running_worker(fragile_cli)
    r = Records(fragile_cli)
    # a broken record ahead of everything on every partition of the events topic: a type
    # the policies follow (so they read it too), no other header
    broken = [("ce_type", b"toy.ticket.TicketOpened")]
    for partition in range(PARTITIONS["events"]):
        r.raw(r.topics.events, partition, b"\x00not an event", broken)
    # a ticket whose TicketOpened the read model cannot take, then closed (its
    # TicketClosed lands behind it, on the same partition: the aggregate's key) ...
    a, b = uuid.uuid4(), uuid.uuid4()
    r.command(toy.OpenTicket(a, f"{fragile.RAISE_IN_PROJECTION} #1"), a)
    r.command(toy.CloseTicket(a, "done"), a)
    # ... and one whose TicketOpened the policy cannot take, closed for a follow-up (the
    # policy reacts to the TicketClosed behind it)
    r.command(toy.OpenTicket(b, f"{fragile.RAISE_IN_POLICY} #1"), b)
    r.command(toy.CloseTicket(b, fragile.FOLLOW_UP), b)
    sent = r.flush()

    projected = wait_until(lambda: r.ticket(a) == (None, "closed"), "a's close projected", sent)
    followed = wait_until(
        lambda: r.ticket(fragile.follow_up_id(b)) is not None, "b's follow-up opened", sent
    )
    assert max(projected, followed) < GOOD_WITHIN_S, (projected, followed)
    assert r.ticket(b) == (f"{fragile.RAISE_IN_POLICY} #1", "closed")

    # the dead letters: the broken records from both consumers, the event the read model
    # could not take (projector) and the one the policy could not take (policies)
    def by_consumer() -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for letter in letters(fragile_cli, "events"):
            found.setdefault(letter["consumer"], []).append(letter["error"])
        return found

    want = PARTITIONS["events"] + 1
    wait_until(lambda: all(len(v) == want for v in by_consumer().values()), "all dlq'd", sent)
    found = by_consumer()
    assert sorted(found) == ["policies", "projector"]
    for consumer, errors in found.items():
        assert len(errors) == want, (consumer, errors)
        assert sum("missing CloudEvents header" in e for e in errors) == PARTITIONS["events"]
    assert [e for e in found["projector"] if "not projected" in e] == [
        f"not projected: ValueError: the read model cannot take '{fragile.RAISE_IN_PROJECTION} #1'"
    ]
    assert [e for e in found["policies"] if "missing" not in e] == [
        f"ValueError: the policy cannot take '{fragile.RAISE_IN_POLICY} #1'"
    ]

    # the event not projected is audited all the same, with its error's type
    summaries = [
        json.loads(s)
        for (s,) in r.owner.query(
            "SELECT summary FROM audit_log WHERE subject = ? AND event_type = ?",
            (str(a), "toy.ticket.TicketOpened"),
        )
    ]
    assert [s.get(NOT_PROJECTED) for s in summaries] == ["ValueError"]
    # and a replay and the audit check take the same path (the broken records are skipped)
    replayed = fragile_cli("replay", "--verify")
    assert replayed.code == 0, replayed.stdout + replayed.stderr
    verified = fragile_cli("audit", "verify")
    assert verified.code == 0, verified.stdout + verified.stderr


def test_a_raising_command_handler_is_refused_and_dead_lettered(fragile_cli: KafkaCli) -> None:
    start_running_worker(fragile_cli)
    r = Records(fragile_cli)
    bad_ticket = uuid.uuid4()
    bad = r.command(toy.OpenTicket(bad_ticket, f"{fragile.RAISE_IN_DECIDE} #1"), bad_ticket)
    name = f"good-{uuid.uuid4().hex[:8]}"
    good_ds = dataset_id_for(TENANT, name)
    good = r.command(RegisterDataset(good_ds, name), good_ds)  # behind it, same partition
    sent = r.flush()
    took = wait_until(lambda: r.outcome(good) == "CommandAccepted", "the good command", sent)
    assert took < 10, f"the good command waited {took:.1f}s"
    assert r.outcome(bad) == "CommandRejected"
    assert r.store.load(bad_ticket) == []
    found = letters(fragile_cli, "commands")
    assert [(x["consumer"], x["ce_id"]) for x in found] == [("processor", str(bad))]
    assert found[0]["error"].startswith("HandlerError: ticket decide raised on OpenTicket: ")
    assert f"decide cannot take '{fragile.RAISE_IN_DECIDE} #1'" in found[0]["error"]
    assert "decide raised on OpenTicket" in r.reason(bad)  # the refusal says why
    status = fragile_cli("dlq", "show", str(found[0]["offset"]))
    assert status.code == 0 and status.json()["headers"]["ce_tenant"] == TENANT


def test_bad_jobs_never_stop_the_jobs_role(fragile_cli: KafkaCli, tmp_path: Path) -> None:
    start_running_worker(fragile_cli)
    r = Records(fragile_cli)
    for partition in range(PARTITIONS["jobs"]):  # one on every partition: the scan passes one
        r.raw(r.topics.jobs, partition, b"\x00not a job", [])
    sent = r.flush()
    generate(300, tmp_path / "data", seed=3)
    scanned = fragile_cli("scan", str(tmp_path / "data" / "dirty.csv"), "--name", "after-bad")
    took = time.monotonic() - sent
    assert scanned.code == 0, scanned.stderr
    assert "after-bad v1" in scanned.stdout
    assert took < 90, f"the scan took {took:.0f}s"
    found = letters(fragile_cli, "jobs")
    assert len(found) == PARTITIONS["jobs"]
    assert {x["consumer"] for x in found} == {"jobs"}
    assert all(x["error"].startswith("BadMessage: missing CloudEvents header") for x in found)
    assert sorted(x["from"] for x in found) == sorted(
        f"{r.topics.jobs}/{p}@0" for p in range(PARTITIONS["jobs"])
    )
