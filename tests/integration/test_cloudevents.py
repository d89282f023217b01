"""Issue 12, item 3, against the real broker and PostgreSQL: the records a Kafka-mode scan
writes to ``datrix.events`` are CloudEvents as the Kafka binding defines them (the
official SDK's ``from_binary`` reads every attribute and extension of each, equal to what
the event store holds), ScanCompleted's time is when the job completed, and logs written
with the pre-issue-12 header names are still read: a command by the processor, a whole
events topic by ``datrix replay --verify`` and ``datrix audit verify`` (the CLI as a
subprocess). The offline cases: tests/unit/test_cloudevents.py."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from datrix.aggregates import dataset
from datrix.streams.event_store import postgres_event_store
from datrix.streams.kafka import (
    Topics,
    ensure_topics,
    from_message,
    producer_config,
    records_to_end,
)
from datrix.streams.messages import Envelope, command_envelope
from datrix.streams.registry import result_command_id
from datrix.streams.settings import load_settings
from tests.integration.conftest import KafkaCli
from tests.integration.test_kafka_faults import start_running_worker
from tests.unit.test_cloudevents import expected_attributes, legacy_headers, sdk_reads

pytestmark = pytest.mark.integration


def wait_until(condition: Callable[[], bool], what: str, timeout: float) -> None:
    stop = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > stop:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting until {what}")
        time.sleep(0.1)


def records(cli: KafkaCli, topic: str) -> list[Any]:
    """Every record on ``topic``, from offset 0 to its end, read with confluent-kafka."""
    found = records_to_end(load_settings(cli.env()), topic, "test-cloudevents")
    assert found is not None, f"no topic {topic}"
    return list(found[1])


def test_the_cloudevents_sdk_reads_every_attribute_of_a_scans_events(
    kafka_cli: KafkaCli, tmp_path: Path
) -> None:
    env = kafka_cli.env()
    topics = Topics(env["DATRIX_TOPIC_PREFIX"])
    kafka_cli.start_worker()
    data = tmp_path / "people.csv"
    lines = ["id,name,age"] + [f"{i},name {i % 50},{20 + i % 60}" for i in range(3000)]
    data.write_text("\n".join(lines + lines[1:200]) + "\n")  # 199 exact duplicates
    run = kafka_cli("scan", str(data), "--name", "people", "--format", "json", timeout=300)
    assert run.code == 0, run.stderr
    scan_id = run.json()["scan_id"]

    store = postgres_event_store(env["DATRIX_DATABASE_URL"], env["DATRIX_DATABASE_SCHEMA"])
    seen: dict[str, tuple[Envelope, dict[str, Any]]] = {}
    for msg in records(kafka_cli, topics.events):
        envelope, position = from_message(msg.headers(), msg.value())
        assert position is not None
        # the official SDK reads the record as it is on the topic: every attribute and
        # extension, each equal to what the event store holds for that event
        read = sdk_reads(msg.key(), msg.value(), msg.headers())
        payload = read.pop("data")
        assert read == expected_attributes(envelope), envelope.type
        stored = {e.id: e for e in store.load(uuid.UUID(envelope.subject))}
        assert stored[envelope.id] == envelope
        assert payload["schema"] == envelope.type
        assert read["dataschema"].startswith(f"urn:datrix:avro:{envelope.type}:")
        assert {"tenant", "actor", "correlationid", "causationid", "sequence"} <= set(read)
        seen[envelope.type.rsplit(".", 1)[-1]] = (envelope, payload)
    assert {
        "DatasetRegistered",
        "DatasetVersionAdded",
        "CommandAccepted",
        "ScanRequested",
        "JobRequested",
        "ScanCompleted",
    } <= set(seen)
    requested, job = seen["ScanRequested"][0], seen["JobRequested"][1]
    completed, done = seen["ScanCompleted"]
    assert requested.subject == completed.subject == scan_id

    # ScanCompleted's time is when the job completed: at least the job's own duration
    # after the request, and the time of the result command the job sent
    assert done["duration_ms"] > 0
    assert completed.time - requested.time >= timedelta(milliseconds=done["duration_ms"])
    result_id = result_command_id(uuid.UUID(str(job["job_id"])))
    commands = [
        from_message(m.headers(), m.value())[0] for m in records(kafka_cli, topics.commands)
    ]
    (result,) = [c for c in commands if c.id == result_id]
    assert result.type == "datrix.scan.CompleteScan"
    assert completed.time == result.time
    assert completed.causation_id == str(result.id)
    with psycopg.connect(env["DATRIX_DATABASE_URL"]) as db:
        row = db.execute(
            f'SELECT created_at, completed_at FROM "{env["DATRIX_DATABASE_SCHEMA"]}".quality_scans'
            " WHERE id = %s",
            (scan_id,),
        ).fetchone()
    assert row is not None
    assert [datetime.fromisoformat(str(v)) for v in row] == [requested.time, completed.time]

    # the time comes from the log, not a clock: replay rebuilds the same tables
    replay = kafka_cli("replay", "--verify")
    assert replay.code == 0, replay.stdout + replay.stderr
    assert "identical" in replay.stdout


def test_logs_with_the_old_header_names_are_still_read(kafka_cli: KafkaCli) -> None:
    """A command written with the pre-issue-12 header names (``tenant``, ``actor``,
    ``correlationid`` without ``ce_``) is processed; an events topic whose every record
    has the old names replays identically and passes the audit verification."""
    from confluent_kafka import Producer

    env = kafka_cli.env()
    settings = load_settings(env)
    topics = Topics(env["DATRIX_TOPIC_PREFIX"])
    start_running_worker(kafka_cli)
    producer = Producer(producer_config(settings))
    store = postgres_event_store(env["DATRIX_DATABASE_URL"], env["DATRIX_DATABASE_SCHEMA"])
    sent = []
    for name in ("old-a", "old-b"):
        ds = dataset.dataset_id_for("default", name)
        command = command_envelope(
            dataset.RegisterDataset(ds, name),
            subject=ds,
            tenant="default",
            actor="old-producer",
            time=datetime.now(UTC),
        )
        old = legacy_headers(command)
        assert not any(k in {"ce_tenant", "ce_actor", "ce_correlationid"} for k, _ in old)
        producer.produce(
            topics.commands, value=command.data, key=command.subject.encode(), headers=old
        )
        sent.append(command)
    assert producer.flush(30) == 0
    for command in sent:

        def processed(c: Envelope = command) -> bool:
            return bool(store.load(c.id))

        wait_until(processed, f"{command.id} processed", 60)
        assert store.load(command.id)[0].type.endswith(".CommandAccepted")
        [registered] = store.load(uuid.UUID(command.subject))
        assert registered.actor == "old-producer" and registered.tenant == "default"
    listed = kafka_cli("datasets", "--format", "json")
    assert listed.code == 0, listed.stderr
    assert sorted(d["name"] for d in listed.json()) == ["old-a", "old-b"]

    # the events topic as an old release wrote it: the same records, each in its
    # partition and order, with the old header names and no ce_dataschema
    copy = Topics(f"old{uuid.uuid4().hex[:8]}.")
    ensure_topics(settings, copy)
    rewritten = 0
    for msg in records(kafka_cli, topics.events):
        envelope, position = from_message(msg.headers(), msg.value())
        headers = legacy_headers(envelope, position)
        producer.produce(
            copy.events,
            value=msg.value(),
            key=msg.key(),
            partition=msg.partition(),
            headers=headers,
        )
        rewritten += 1
    assert producer.flush(30) == 0
    assert rewritten >= 4  # two registrations and their outcomes
    old_names = {k for m in records(kafka_cli, copy.events) for k, _ in m.headers()}
    assert {"tenant", "actor", "correlationid", "causationid", "sequence"} <= old_names
    assert not {n for n in old_names if n in {"ce_tenant", "ce_sequence", "ce_dataschema"}}
    old_log = KafkaCli(
        home=kafka_cli.home, extra={**env, "DATRIX_TOPIC_PREFIX": copy.prefix}, workers=[]
    )
    replay = old_log("replay", "--verify")
    assert replay.code == 0, replay.stdout + replay.stderr
    assert "identical" in replay.stdout
    audit = old_log("audit", "verify")
    assert audit.code == 0, audit.stdout + audit.stderr
    assert "intact" in audit.stdout
