"""The stream monitor reads ``--format avro-confluent`` against a real schema registry:
Apicurio Registry from ``deploy/local/up registry``, through its Confluent-compatible API.

The test talks to the registry and the broker as an outside producer would: it registers
two versions of an Avro schema with plain HTTP (Confluent's ``POST
/subjects/{subject}/versions``) and writes records in the Confluent wire format (a zero
byte, the 4-byte big-endian schema id, the Avro body: fastavro) with a plain confluent-kafka
producer, in the past (windows of 2 s, grace 1 s: each closes once the monitor has read the
partition to the end). Checked: exact counts and null rates per window; a record naming a
schema id the registry does not have is dead-lettered to ``<topic>.dlq`` while its window
goes on; records of the second version (a field added) are decoded with that version's
schema and the window shows the field as a schema change."""

from __future__ import annotations

import io
import json
import struct
import time
from typing import Any

import httpx
import pytest
from fastavro import parse_schema, schemaless_writer

from datrix.jobs.streams.formats import RecordError, registry_lookup
from datrix.streams.dead_letters import read_dead_letters
from tests.integration.conftest import KafkaCli
from tests.integration.test_stream_monitor import (
    WINDOW_MS,
    DataTopic,
    add_stream,
    null_rates,
    owner,
    wait_for,
    windows_of,
)

pytestmark = pytest.mark.integration

# Confluent's content type for its REST API (Apicurio's ccompat API takes it, and plain JSON)
REGISTRY_JSON = "application/vnd.schemaregistry.v1+json"
UNKNOWN_ID = 0x7FFFFFFF  # a schema id no registry of this suite hands out

READING_V1: dict[str, Any] = {
    "type": "record",
    "name": "Reading",
    "namespace": "test.avro",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "v", "type": ["null", "double"], "default": None},
        {"name": "name", "type": "string"},
    ],
}
# version 2: a field added with a default (backward compatible: the registry accepts it)
READING_V2: dict[str, Any] = {
    **READING_V1,
    "fields": [
        *READING_V1["fields"],
        {"name": "unit", "type": ["null", "string"], "default": None},
    ],
}


def register(registry: str, subject: str, schema: dict[str, Any]) -> int:
    """Register ``schema`` under ``subject``; the id the registry gives it."""
    answer = httpx.post(
        f"{registry}/subjects/{subject}/versions",
        content=json.dumps({"schemaType": "AVRO", "schema": json.dumps(schema)}),
        headers={"Content-Type": REGISTRY_JSON, "Accept": REGISTRY_JSON},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    schema_id = answer.json()["id"]
    assert isinstance(schema_id, int)
    return schema_id


def wire(schema_id: int, schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    """``record`` in the Confluent wire format."""
    body = io.BytesIO()
    schemaless_writer(body, parse_schema(schema), record)
    return b"\0" + struct.pack(">I", schema_id) + body.getvalue()


def test_avro_confluent_against_apicurio(kafka_cli: KafkaCli, schema_registry_url: str) -> None:
    tenant = "avro-test"
    kafka_cli.extra = {
        **(kafka_cli.extra or {}),
        "DATRIX_TENANT": tenant,
        "DATRIX_SCHEMA_REGISTRY_URL": schema_registry_url,
    }
    kafka_cli.start_worker("processor,relay,projector,monitor")
    topic = DataTopic(kafka_cli, partitions=1)
    subject = f"{topic.name}-value"
    v1 = register(schema_registry_url, subject, READING_V1)
    v2 = register(schema_registry_url, subject, READING_V2)
    assert v1 != v2
    # the registry serves both by id, as the monitor will ask for them
    for schema_id, schema in ((v1, READING_V1), (v2, READING_V2)):
        served = httpx.get(f"{schema_registry_url}/schemas/ids/{schema_id}", timeout=10)
        assert served.status_code == 200, served.text
        assert json.loads(served.json()["schema"])["fields"] == schema["fields"]
    unknown = httpx.get(f"{schema_registry_url}/schemas/ids/{UNKNOWN_ID}", timeout=10)
    assert unknown.status_code == 404, unknown.text

    base = (int(time.time() * 1000) - 120_000) // WINDOW_MS * WINDOW_MS  # two minutes ago

    def reading(i: int, v: float | None, **extra: Any) -> dict[str, Any]:
        return {"id": i, "v": v, "name": f"n{i % 3}", **extra}

    # window 0: 10 records of version 1, v null in 4 (rate 0.4)
    for i in range(10):
        topic.send(0, base + i, wire(v1, READING_V1, reading(i, None if i % 5 < 2 else i / 2)))
    # window 1: 5 records of version 1 and, third in the window, one naming an unknown id
    for i in range(5):
        topic.send(0, base + WINDOW_MS + i, wire(v1, READING_V1, reading(i, float(i))))
        if i == 1:
            poison = wire(UNKNOWN_ID, READING_V1, reading(99, 1.0))
            topic.send(0, base + WINDOW_MS + 50, poison)
    # window 2: 6 records of version 2 (unit added), unit null in 2 of them
    for i in range(6):
        unit = None if i < 2 else "celsius"
        topic.send(0, base + 2 * WINDOW_MS + i, wire(v2, READING_V2, reading(i, 1.5, unit=unit)))
    topic.flush()

    stream_id = add_stream(
        kafka_cli, tenant, topic.name, "avro-readings", "--format", "avro-confluent",
        "--window", "2s", "--grace", "1s",
    )  # fmt: skip
    store = owner(kafka_cli)
    found = wait_for(
        lambda: windows_of(store, tenant, stream_id),
        lambda w: len(w) >= 3,
        "the monitor closed 3 windows",
    )
    assert sorted(found) == [(0, base), (0, base + WINDOW_MS), (0, base + 2 * WINDOW_MS)]
    first, second, third = (found[(0, base + k * WINDOW_MS)] for k in range(3))

    assert (first["metrics"]["count"], first["metrics"]["poisoned"]) == (10, 0)
    assert null_rates(first) == {"id": 0.0, "v": 0.4, "name": 0.0}
    assert (first["metrics"]["first_offset"], first["metrics"]["last_offset"]) == (0, 9)
    by_name = {f["name"]: f for f in first["metrics"]["fields"]}
    assert by_name["id"]["distinct"] == 10 and by_name["name"]["distinct"] == 3
    assert (by_name["v"]["minimum"], by_name["v"]["maximum"]) == (1.0, 4.5)

    # the unknown schema id: dead-lettered, counted as poisoned, the window went on
    assert (second["metrics"]["count"], second["metrics"]["poisoned"]) == (5, 1)
    assert (second["metrics"]["first_offset"], second["metrics"]["last_offset"]) == (10, 15)
    assert null_rates(second) == {"id": 0.0, "v": 0.0, "name": 0.0}
    assert second["metrics"]["schema_changes"] == []

    # version 2 decoded with its own schema: the new field, and a schema change
    assert third["metrics"]["count"] == 6
    assert null_rates(third) == {"id": 0.0, "v": 0.0, "name": 0.0, "unit": 2 / 6}
    assert [(c["kind"], c["column"]) for c in third["metrics"]["schema_changes"]] == [
        ("added", "unit")
    ]

    letters = read_dead_letters(topic.settings, f"{topic.name}.dlq")
    assert [(d.topic, d.partition, d.source_offset, d.consumer) for d in letters] == [
        (topic.name, 0, 12, "monitor")
    ]
    assert letters[0].value == poison
    assert f"schema id {UNKNOWN_ID} is not in the registry" in letters[0].error

    # the user's view through the CLI: three windows, the counts as above
    shown = kafka_cli("streams", "windows", "avro-readings", "--format", "json")
    assert shown.code == 0, shown.stderr
    assert [w["count"] for w in sorted(shown.json(), key=lambda w: w["window_start"])] == [
        10,
        5,
        6,
    ]


def test_registry_lookup_against_apicurio(schema_registry_url: str) -> None:
    """The lookup itself: a registered id parsed, an unknown one the record's error (dead
    letter), and a URL that is not the API's root an outage, never a dead letter for every
    record (Apicurio answers an unknown path with a 404 too, without Confluent's code)."""
    schema_id = register(schema_registry_url, f"lookup-{time.time_ns()}-value", READING_V2)
    lookup = registry_lookup(schema_registry_url)
    assert [f["name"] for f in lookup(schema_id)["fields"]] == ["id", "v", "name", "unit"]
    with pytest.raises(RecordError, match=f"schema id {UNKNOWN_ID} is not in the registry"):
        lookup(UNKNOWN_ID)
    root = schema_registry_url.removesuffix("/apis/ccompat/v7")
    assert root != schema_registry_url
    with pytest.raises(OSError, match="no Confluent-compatible API there") as wrong:
        registry_lookup(root)(schema_id)
    assert not isinstance(wrong.value, RecordError)
