"""Issue 12, items 1 and 2, against the real broker and Postgres: bad records sent by an
external producer (plain confluent-kafka) never stop a partition. Every bad record is
refused (its refusal recorded under its id when the id can be read), copied to
``<prefix>commands.dlq`` with its original bytes, headers, error and origin, and the good
command sent right behind it on the same partition is processed within seconds.
``datrix dlq list|show|replay`` reads and resubmits them (the CLI as a subprocess)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from datrix.aggregates import dataset, scan
from datrix.aggregates.common import Command
from datrix.streams.event_store import EventStore, postgres_event_store
from datrix.streams.kafka import Topics, client_config, to_message
from datrix.streams.messages import command_envelope, encode_payload
from datrix.streams.settings import load_settings
from tests.integration.conftest import Cli, KafkaCli
from tests.integration.test_kafka_faults import start_running_worker

pytestmark = pytest.mark.integration
TENANT = "poison"
KEY = b"one-partition"  # every record on one partition: a jam would stop them all


def wait_until(condition: Callable[[], bool], what: str, timeout: float) -> float:
    """Poll until ``condition`` holds; return the seconds it took."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting until {what}")
        time.sleep(0.05)
    return time.monotonic() - start


class Sender:
    """An external producer: plain confluent-kafka, headers as given."""

    def __init__(self, cli: KafkaCli) -> None:
        from confluent_kafka import Producer

        env = cli.extra or {}
        self.topics = Topics(env["DATRIX_TOPIC_PREFIX"])
        self.producer = Producer(client_config(load_settings(env)))
        self.store: EventStore = postgres_event_store(
            env["DATRIX_DATABASE_URL"], env["DATRIX_DATABASE_SCHEMA"]
        )

    def raw(self, value: bytes | None, headers: list[tuple[str, bytes]]) -> None:
        """Queue one record (``flush`` sends what is queued: one batch, not one round
        trip and one wait per record)."""
        self.producer.produce(self.topics.commands, value=value, key=KEY, headers=headers)

    def flush(self) -> float:
        assert self.producer.flush(30) == 0
        return time.monotonic()

    def envelope(self, command: Command, subject: uuid.UUID, **kw: Any) -> Any:
        return command_envelope(
            command, subject=subject, tenant=TENANT, actor="ext", time=datetime.now(UTC), **kw
        )

    def send(
        self, env: Any, value: bytes | None = None, drop: tuple[str, ...] = (), **headers: bytes
    ) -> uuid.UUID:
        _key, data, base = to_message(env)
        if value is not None:  # env's ce_dataschema describes env.data, not this value
            drop = (*drop, "ce_dataschema")
        merged = [(k, v) for k, v in base if k not in headers and k not in drop]
        merged += list(headers.items())
        self.raw(data if value is None else value, merged)  # type: ignore[arg-type]
        return uuid.UUID(str(env.id))

    def good(self) -> uuid.UUID:
        """A good command behind the bad one (its id)."""
        name = f"good-{uuid.uuid4().hex[:8]}"
        ds = dataset.dataset_id_for(TENANT, name)
        return self.send(self.envelope(dataset.RegisterDataset(ds, name), ds))

    def applied(self, cid: uuid.UUID, since: float) -> float:
        """Seconds from ``since`` (the flush) until ``cid`` is applied."""
        wait_until(lambda: self.outcome(cid) == "CommandAccepted", f"{cid} applied", 60)
        return time.monotonic() - since

    def outcome(self, command_id: uuid.UUID) -> str | None:
        stream = self.store.load(command_id)
        return stream[0].type.rsplit(".", 1)[-1] if stream else None

    def refused(self, command_id: uuid.UUID) -> None:
        wait_until(lambda: self.outcome(command_id) is not None, f"{command_id} refused", 30)
        assert self.outcome(command_id) == "CommandRejected"


def test_bad_records_never_stop_the_partition(kafka_cli: KafkaCli) -> None:
    start_running_worker(kafka_cli)
    s = Sender(kafka_cli)
    # every record goes out in one batch (one flush), then each outcome is awaited: the
    # good commands behind the bad ones on the one partition prove nothing jammed it
    goods = [s.good()]
    refusals: list[uuid.UUID] = []
    ds = dataset.dataset_id_for(TENANT, "sales")
    register = s.envelope(dataset.RegisterDataset(ds, "sales"), ds)
    expected_dlq: list[str] = []  # the error each dead letter must name, in order

    def bad(cid: uuid.UUID | None, error: str, recorded: bool = True) -> None:
        expected_dlq.append(error)
        if cid is not None and recorded:
            refusals.append(cid)
        goods.append(s.good())

    # payloads that are no command: random bytes, an unknown fingerprint, a truncated
    # body, valid Avro of an event type
    bad(s.send(s.envelope(dataset.DeleteDataset(ds), ds), value=b"\x07random"), "bad magic")
    env = s.envelope(dataset.DeleteDataset(ds), ds)
    bad(s.send(env, value=b"\xc3\x01" + b"\x13" * 8 + env.data[10:]), "unknown writer schema")
    bad(s.send(register, value=register.data[:-4]), "cannot decode")
    event = dataset.DatasetDeleted(
        originator_id=ds, originator_version=1, timestamp=datetime.now(UTC), reason="x"
    )
    env = s.envelope(dataset.DeleteDataset(ds), ds)
    bad(s.send(env, value=encode_payload(event)), "is not a command")
    # a RegisterDataset sent as a DeleteDataset (it used to be applied as one): by a
    # producer that sets no ce_dataschema, the processor finds the payload is another
    # type; with the ce_dataschema of the real payload, the headers contradict themselves
    lying = s.envelope(dataset.RegisterDataset(ds, "sales"), ds)
    delete = b"datrix.dataset.DeleteDataset"
    bad(s.send(lying, drop=("ce_dataschema",), ce_type=delete), "does not match its payload")
    lying = s.envelope(dataset.RegisterDataset(ds, "sales"), ds)
    bad(s.send(lying, ce_type=delete), "ce_dataschema 'urn:datrix:avro:datrix.dataset.Register")
    # envelopes: no headers at all, a time that is no time, a missing tenant
    s.raw(register.data, [])
    bad(None, "missing CloudEvents header")
    bad(s.send(register, ce_time=b"yesterday"), "ce_time 'yesterday'")
    no_tenant = s.envelope(dataset.RegisterDataset(ds, "sales"), ds)
    bad(s.send(no_tenant, ce_tenant=b""), "ce_tenant", recorded=False)

    # the two jamming commands: a version added to a scan id, a dataset whose id is the
    # command's own id (domain refusals: recorded, not dead-lettered). The partition's
    # order puts the scan's request before the version sent to its id.
    registered = s.send(s.envelope(dataset.RegisterDataset(ds, "sales"), ds))  # a new id
    version = dataset.AddDatasetVersion(
        ds, "datrix-object://poison/x", "0" * 64, "file:///x", "0" * 64, "csv", 1, 1, 1, "{}"
    )
    versioned = s.send(s.envelope(version, ds))
    scan_id = uuid.uuid4()
    requested = s.send(s.envelope(scan.RequestScan(scan_id, ds), scan_id))
    onto_scan = s.send(s.envelope(dataclass_replace(version, dataset_id=scan_id), scan_id))
    refusals.append(onto_scan)
    goods.append(s.good())
    twin = dataset.dataset_id_for(TENANT, "twin")
    own_id = s.send(s.envelope(dataset.RegisterDataset(twin, "twin"), twin, command_id=twin))
    refusals.append(own_id)
    goods.append(s.good())
    sent = s.flush()

    waits = [s.applied(cid, sent) for cid in goods]
    assert max(waits) < 20, f"the good commands took {max(waits):.1f}s"
    for cid in refusals:
        s.refused(cid)
    for cid in (registered, versioned, requested):
        assert s.outcome(cid) == "CommandAccepted"
    assert s.outcome(no_tenant.id) is None  # nothing under a made-up tenant either
    # none of the bad records touched the dataset: its events are the good commands'
    assert {e.causation_id for e in s.store.load(ds)} == {str(registered), str(versioned)}
    assert [e.type.rsplit(".", 1)[-1] for e in s.store.load(scan_id)][:1] == ["ScanRequested"]

    # the dead letters, through the CLI
    listed = kafka_cli("dlq", "list", "--format", "json")
    assert listed.code == 0, listed.stderr
    letters = listed.json()
    assert len(letters) == len(expected_dlq)
    for letter, error in zip(letters, expected_dlq, strict=True):
        assert error in letter["error"], (error, letter)
        assert letter["from"].startswith(f"{s.topics.commands}/")
        assert letter["consumer"] == "processor"
    shown = kafka_cli("dlq", "show", str(letters[0]["offset"]))
    assert shown.code == 0, shown.stderr
    doc = shown.json()
    assert doc["value_hex"] == b"\x07random".hex()  # the original bytes
    assert doc["headers"]["ce_tenant"] == TENANT  # and headers

    # replay the lying command after "fixing the producer" is not possible (the bytes are
    # what they are), but a replay resubmits exactly them under a new id: refused again
    replayed = kafka_cli("dlq", "replay", str(letters[4]["offset"]))
    assert replayed.code == 0, replayed.stderr
    new_id = uuid.UUID(replayed.stdout.split(" as ")[-1].strip())
    s.refused(new_id)
    again = kafka_cli("dlq", "list", "--format", "json").json()
    assert len(again) == len(expected_dlq) + 1
    assert again[-1]["ce_id"] == str(new_id)


def dataclass_replace(obj: Any, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(obj, **changes)


def test_dlq_in_the_embedded_default_is_one_line_exit_2(cli: Cli) -> None:
    run = cli("dlq", "list")
    assert run.code == 2
    assert run.stderr.startswith("datrix: dead-letter topics exist in Kafka mode only")
    assert len(run.stderr.strip().splitlines()) == 1
