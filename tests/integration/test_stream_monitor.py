"""The stream quality monitor (``datrix worker`` role ``monitor``) against the real broker and
PostgreSQL: a plain confluent-kafka producer writes JSON records, with the record timestamps
it chooses, to a two-partition data topic; the stream is registered with the CLI
(``datrix streams add``, windows of 2 s, grace 1 s). The records are in the past, so each
window closes once the monitor has read its partition to the end (a quiet topic: the wall
clock closes them). Checked: exact counts and null rates per partition and window, a
poisoned record dead-lettered to ``<topic>.dlq`` while its window goes on (and counts it),
a null-rate threshold that degrades partition 0 and a clean window that recovers it, the
partitions' sketches merged by the CLI. The SIGKILL test: test_stream_monitor_crash.py."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from datrix.aggregates.stream import epoch_ms, stream_id_for
from datrix.projections.read_models import streams as stream_views
from datrix.projections.store import PostgresReadStore
from datrix.streams.dead_letters import read_dead_letters
from datrix.streams.kafka import client_config
from datrix.streams.settings import Settings, load_settings
from tests.integration.conftest import KafkaCli

pytestmark = pytest.mark.integration
WINDOW_MS = 2000


def wait_for(
    fetch: Callable[[], Any], done: Callable[[Any], bool], what: str, timeout: float = 45.0
) -> Any:
    """Poll ``fetch()`` until ``done`` holds for its result; that result."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = fetch()
        if done(found):
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting until {what}: last {found!r}"[:3000])


class DataTopic:
    """A data topic of the test and a plain producer that writes it."""

    def __init__(self, cli: KafkaCli, partitions: int) -> None:
        from confluent_kafka import Producer
        from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined,unused-ignore]

        self.settings: Settings = load_settings(cli.env())
        self.name = f"data-{uuid.uuid4().hex[:10]}"
        admin = AdminClient(client_config(self.settings))
        for future in admin.create_topics([NewTopic(self.name, partitions, 1)]).values():
            future.result(timeout=30)
        self.producer = Producer(client_config(self.settings, **{"linger.ms": 5}))

    def send(self, partition: int, at_ms: int, value: bytes, key: bytes | None = None) -> None:
        self.producer.produce(self.name, value=value, key=key, partition=partition, timestamp=at_ms)

    def flush(self) -> None:
        assert self.producer.flush(30) == 0


def add_stream(cli: KafkaCli, tenant: str, topic: str, name: str, *options: str) -> uuid.UUID:
    """``datrix streams add TOPIC --name NAME OPTIONS`` (it must be accepted): the stream's
    id."""
    added = cli("streams", "add", topic, "--name", name, *options)
    assert added.code == 0, added.stderr
    return stream_id_for(tenant, name)


def owner(cli: KafkaCli) -> PostgresReadStore:
    env = cli.env()
    return PostgresReadStore(env["DATRIX_DATABASE_URL"], env["DATRIX_DATABASE_SCHEMA"])


def windows_of(
    store: PostgresReadStore, tenant: str, stream_id: uuid.UUID
) -> dict[tuple[int, int], dict[str, Any]]:
    """(partition, window start in ms) -> the window's row of the read model, metrics
    parsed."""
    rows = stream_views.windows_between(store, tenant, str(stream_id), "0", "9")
    return {
        (int(r["partition_number"]), epoch_ms(datetime.fromisoformat(str(r["window_start"])))): r
        for r in rows
    }


def null_rates(row: dict[str, Any]) -> dict[str, float]:
    return {f["name"]: f["null_rate"] for f in row["metrics"]["fields"]}


def test_windows_count_exactly_dead_letter_poison_and_alert(kafka_cli: KafkaCli) -> None:
    tenant = "monitor-test"
    kafka_cli.extra = {**(kafka_cli.extra or {}), "DATRIX_TENANT": tenant}
    kafka_cli.start_worker("processor,relay,projector,monitor")
    topic = DataTopic(kafka_cli, partitions=2)
    base = (int(time.time() * 1000) - 120_000) // WINDOW_MS * WINDOW_MS  # two minutes ago

    def record(i: int, v: object, extra: dict[str, Any] | None = None) -> bytes:
        return json.dumps({"id": i, "v": v, "name": f"n{i % 3}", **(extra or {})}).encode()

    # partition 0: window 0 has 10 records, 3 of them with v null (rate 0.3: healthy);
    # window 1 has 6 records and a poisoned one; window 2 has 5 records, v always null
    # (breach: degraded); window 3 has 4 clean records (recovered)
    for i in range(10):
        topic.send(0, base + i, record(i, None if i < 3 else i * 1.5))
    for i in range(6):
        topic.send(0, base + WINDOW_MS + i, record(i, i))
        if i == 2:
            topic.send(0, base + WINDOW_MS + 100, b'{"id": 99, "v": ')  # poisoned
    for i in range(5):
        topic.send(0, base + 2 * WINDOW_MS + i, record(i, None))
    for i in range(4):
        topic.send(0, base + 3 * WINDOW_MS + i, record(i, i, {"new": True}))
    # partition 1: one window of 7 records, no v at all in 2 of them
    for i in range(7):
        value = record(i, i) if i >= 2 else json.dumps({"id": i, "name": "p1"}).encode()
        topic.send(1, base + i, value)
    topic.flush()

    stream_id = add_stream(
        kafka_cli, tenant, topic.name, "readings", "--format", "json",
        "--window", "2s", "--grace", "1s", "--max-null-rate", "0.5",
    )  # fmt: skip
    store = owner(kafka_cli)
    found = wait_for(
        lambda: windows_of(store, tenant, stream_id),
        lambda w: len(w) >= 5,
        "the monitor closed 5 windows",
    )
    assert sorted(found) == [
        (0, base),
        (0, base + WINDOW_MS),
        (0, base + 2 * WINDOW_MS),
        (0, base + 3 * WINDOW_MS),
        (1, base),
    ]
    first, second, third, fourth = (found[(0, base + k * WINDOW_MS)] for k in range(4))
    assert first["metrics"]["count"] == 10
    assert null_rates(first) == {"id": 0.0, "name": 0.0, "v": 0.3}
    assert (first["metrics"]["first_offset"], first["metrics"]["last_offset"]) == (0, 9)
    by_name = {f["name"]: f for f in first["metrics"]["fields"]}
    assert (by_name["v"]["type"], by_name["v"]["minimum"], by_name["v"]["maximum"]) == (
        "float",
        4.5,
        13.5,
    )
    assert by_name["name"]["distinct"] == 3 and by_name["id"]["distinct"] == 10
    # the poisoned record: counted as poisoned, not as a record; the window went on
    assert (second["metrics"]["count"], second["metrics"]["poisoned"]) == (6, 1)
    assert (second["metrics"]["first_offset"], second["metrics"]["last_offset"]) == (10, 16)
    assert (third["metrics"]["count"], null_rates(third)["v"]) == (5, 1.0)
    assert fourth["metrics"]["count"] == 4
    assert [(c["kind"], c["column"]) for c in fourth["metrics"]["schema_changes"]] == [
        ("added", "new")
    ]
    other = found[(1, base)]
    assert other["metrics"]["count"] == 7 and null_rates(other)["v"] == 2 / 7

    letters = read_dead_letters(topic.settings, f"{topic.name}.dlq")
    assert [(d.topic, d.partition, d.source_offset, d.consumer) for d in letters] == [
        (topic.name, 0, 13, "monitor")
    ]
    assert letters[0].value == b'{"id": 99, "v": ' and "not JSON" in letters[0].error

    # the threshold: partition 0 degraded by window 2 (v null in every row), recovered by 3
    alerts = wait_for(
        lambda: stream_views.alerts(store, tenant, str(stream_id)),
        lambda a: len(a) >= 2,
        "two alerts",
    )
    assert [(a["kind"], a["partition_number"]) for a in alerts] == [
        ("degraded", 0),
        ("recovered", 0),
    ], alerts
    assert [(b["metric"], b["field"], b["value"]) for b in alerts[0]["breaches"]] == [
        ("null_rate", "v", 1.0)
    ]
    shown_alerts = kafka_cli("streams", "alerts", "readings", "--format", "json")
    assert shown_alerts.code == 0 and len(shown_alerts.json()) == 2, shown_alerts.stderr

    # the user's view: window 0 merged across both partitions (counts summed, distinct
    # from the merged sketches: ids 0-9 and 0-6 are 10 values)
    # a format the worker cannot read as configured: one line, the stream not consumed
    avro = kafka_cli(
        "streams", "add", topic.name, "--name", "avro", "--format", "avro-confluent",
    )  # fmt: skip
    assert avro.code == 0, avro.stderr
    log = kafka_cli.home.parent / "worker-0.log"
    refusal = wait_for(
        lambda: [line for line in log.read_text().splitlines() if "is not monitored" in line],
        bool,
        "the worker's refusal of avro-confluent without a registry",
    )
    assert len(refusal) == 1 and "DATRIX_SCHEMA_REGISTRY_URL" in refusal[0]

    shown = kafka_cli("streams", "windows", "readings", "--format", "json")
    assert shown.code == 0, shown.stderr
    merged = {w["window_start"]: w for w in shown.json()}
    assert len(merged) == 4
    head = merged[min(merged)]
    assert (head["count"], head["partitions"], head["distinct"]["id"]) == (17, [0, 1], 10)
