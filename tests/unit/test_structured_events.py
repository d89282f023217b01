"""Issue 13, item 6, offline: a command in CloudEvents structured JSON mode
(``content-type: application/cloudevents+json``, ``data`` a JSON object checked against the
command type's Avro schema) reads into the envelope the same command gives in binary mode;
anything that does not fit is a ``BadMessage`` naming what and where, never a default.
Against the real broker, from a producer outside the project's code:
tests/integration/test_external_producers.py."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from datrix.aggregates import dataset, scan
from datrix.streams.codec import default_codec
from datrix.streams.kafka import (
    BadMessage,
    from_message,
    record_attribute,
    record_id,
    to_message,
)
from datrix.streams.messages import Envelope, command_envelope, dataschema, decode_command
from datrix.streams.structured import StructuredError, is_structured, json_to_avro

T0 = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
TENANT = "acme"
STRUCTURED = [("content-type", b"application/cloudevents+json")]


def binary(command: Any, subject: uuid.UUID, **kw: Any) -> Envelope:
    return command_envelope(command, subject=subject, tenant=TENANT, actor="ann", time=T0, **kw)


def structured(env: Envelope, data: dict[str, Any], **attrs: Any) -> dict[str, Any]:
    """The structured JSON event of ``env`` (what an external producer writes)."""
    doc: dict[str, Any] = {
        "specversion": "1.0",
        "id": str(env.id),
        "type": env.type,
        "source": env.source,
        "subject": env.subject,
        "time": env.time.isoformat(),
        "datacontenttype": "application/json",
        "tenant": env.tenant,
        "actor": env.actor,
        "correlationid": env.correlation_id,
        "data": data,
    }
    doc.update(attrs)
    return {k: v for k, v in doc.items() if v is not None}


def read(doc: Any, headers: list[tuple[str, bytes]] | None = None) -> Envelope:
    value = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    env, position = from_message(headers if headers is not None else STRUCTURED, value)
    assert position is None
    return env


def register_pair() -> tuple[Envelope, dict[str, Any]]:
    ds = dataset.dataset_id_for(TENANT, "sales")
    env = binary(dataset.RegisterDataset(ds, "sales", description="daily sales"), ds)
    return env, structured(
        env, {"dataset_id": str(ds), "name": "sales", "description": "daily sales"}
    )


def test_a_structured_command_reads_into_the_binary_modes_envelope() -> None:
    env, doc = register_pair()
    got = read(doc)
    assert got == env  # every attribute, and data: the same Avro single-object bytes
    assert dataschema(got) == dataschema(env)
    assert decode_command(got.data) == decode_command(env.data)


def test_defaults_come_from_the_schema_and_both_union_forms_are_accepted() -> None:
    ds = dataset.dataset_id_for(TENANT, "sales")
    sid = uuid.uuid4()
    env = binary(scan.RequestScan(sid, ds, version=3, weights={"accuracy": 2.0}), ds)
    plain = {"scan_id": str(sid), "dataset_id": str(ds), "version": 3, "weights": {"accuracy": 2}}
    # Avro's JSON encoding names the union branch; engine, label_column, seed defaulted
    tagged = {**plain, "version": {"long": 3}, "weights": {"map": {"accuracy": 2.0}}}
    assert read(structured(env, plain)) == env
    assert read(structured(env, tagged)) == env
    assert decode_command(read(structured(env, plain)).data) == scan.RequestScan(
        sid, ds, version=3, engine="polars", label_column=None, seed=0, weights={"accuracy": 2.0}
    )


def test_the_official_sdk_writes_a_structured_record_datrix_reads() -> None:
    env, doc = register_pair()
    data = doc.pop("data")
    doc.pop("time")
    event = CloudEvent(attributes={**doc, "time": T0, "partitionkey": env.subject}, data=data)
    message = ce_kafka.to_structured(event, JSONFormat())
    headers = [
        (k, v if isinstance(v, bytes) else str(v).encode()) for k, v in message.headers.items()
    ]
    got = read(message.value, headers)
    assert got == Envelope(**{**env.__dict__, "partition_key": env.subject})
    assert message.key == env.subject  # the aggregate id as the record key


def test_content_type_parameters_and_case_are_allowed() -> None:
    assert is_structured("application/cloudevents+json; charset=utf-8")
    assert is_structured("Application/CloudEvents+JSON")
    assert not is_structured("application/avro")
    assert not is_structured(None)
    env, doc = register_pair()
    assert read(doc, [("content-type", b"application/cloudevents+json; charset=utf-8")]) == env


def test_an_agreeing_ce_header_is_allowed_a_contradicting_one_refused() -> None:
    env, doc = register_pair()
    assert read(doc, [*STRUCTURED, ("ce_tenant", TENANT.encode())]) == env
    with pytest.raises(
        BadMessage, match="header ce_tenant 'globex' contradicts the event's 'acme'"
    ):
        read(doc, [*STRUCTURED, ("ce_tenant", b"globex")])
    with pytest.raises(BadMessage, match="contradicts"):
        read(doc, [*STRUCTURED, ("tenant", b"globex")])  # the pre-issue-12 name too


def test_a_matching_dataschema_is_accepted_another_refused() -> None:
    env, doc = register_pair()
    assert read({**doc, "dataschema": dataschema(env)}) == env
    with pytest.raises(BadMessage, match=re.escape("does not name datrix.dataset.RegisterDataset")):
        read({**doc, "dataschema": "urn:datrix:avro:datrix.scan.RequestScan:0123456789abcdef"})
    with pytest.raises(
        BadMessage, match=re.escape("no schema of datrix.dataset.RegisterDataset has")
    ):
        read(
            {**doc, "dataschema": "urn:datrix:avro:datrix.dataset.RegisterDataset:0000000000000000"}
        )


REFUSALS: list[tuple[str, Any, str]] = [
    ("no tenant", {"tenant": None}, "missing CloudEvents header(s): ce_tenant"),
    ("no time", {"time": None}, "missing CloudEvents header(s): ce_time"),
    ("a time without offset", {"time": "2026-01-01T12:00:00"}, "no UTC offset"),
    ("an id that is no UUID", {"id": "42"}, "ce_id '42' is not a UUID"),
    ("another specversion", {"specversion": "0.3"}, "unsupported ce_specversion"),
    ("an object attribute", {"actor": {"name": "ann"}}, "attribute actor must be a string"),
    ("no data", {"data": None}, "structured CloudEvent: no data"),
    ("data as a string", {"data": "sales"}, "data must be a JSON object, got a string"),
    ("base64 data", {"data": None, "data_base64": "AAAA"}, "data_base64 is not accepted"),
    ("data of another media type", {"datacontenttype": "text/plain"}, "is not application/json"),
    (
        "an unknown type",
        {"type": "datrix.dataset.Nope"},
        "no Avro schema named 'datrix.dataset.Nope'",
    ),
]


@pytest.mark.parametrize(("case", "change", "reason"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_a_broken_structured_event_is_refused_naming_why(
    case: str, change: Any, reason: str
) -> None:
    _env, doc = register_pair()
    doc.update(change)
    with pytest.raises(BadMessage, match=re.escape(reason)):
        read({k: v for k, v in doc.items() if v is not None})


BAD_DATA: list[tuple[str, dict[str, Any], str]] = [
    ("a missing field", {"name": "sales"}, "data.dataset_id: required field missing (uuid)"),
    ("an unknown field", {"dataset_id": "x", "nme": "sales"}, "data.nme: no such field"),
    (
        "a bad UUID",
        {"dataset_id": "not-a-uuid", "name": "s"},
        "data.dataset_id: 'not-a-uuid' is not a UUID",
    ),
    (
        "a number as a string",
        {"dataset_id": str(uuid.uuid4()), "name": 7},
        "data.name: expected a string, got 7",
    ),
    (
        "null where none is allowed",
        {"dataset_id": str(uuid.uuid4()), "name": None},
        "data.name: expected a string, got null",
    ),
    (
        "a wrong union value",
        {"dataset_id": str(uuid.uuid4()), "name": "s", "description": 1},
        "data.description: expected a string, got 1",
    ),
]


@pytest.mark.parametrize(("case", "data", "reason"), BAD_DATA, ids=[r[0] for r in BAD_DATA])
def test_data_that_does_not_fit_the_schema_is_refused_naming_the_field(
    case: str, data: dict[str, Any], reason: str
) -> None:
    _env, doc = register_pair()
    with pytest.raises(BadMessage, match=re.escape(reason)):
        read({**doc, "data": data})


def test_value_that_is_no_json_object_is_refused() -> None:
    for value, reason in [
        (b"", "the value is empty"),
        (b"\xff\xfe", "not UTF-8"),
        (b"{not json", "the value is not JSON"),
        (b"[1, 2]", "not a JSON object"),
    ]:
        with pytest.raises(BadMessage, match=reason):
            from_message(STRUCTURED, value)


def test_numbers_are_strict() -> None:
    schema = default_codec().schemas.current["datrix.scan.RequestScan"]
    base = {"scan_id": str(uuid.uuid4()), "dataset_id": str(uuid.uuid4())}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"version": "3"}, 'data.version: expected long \\(an integer\\), got "3"'),
        ({"version": 3.5}, "expected long \\(an integer\\), got 3.5"),
        ({"version": True}, "expected long \\(an integer\\), got true"),
        ({"seed": 2**63}, "out of the range of an Avro long"),
        ({"weights": {"accuracy": "high"}}, "data.weights.accuracy: expected double"),
    ]
    for bad, reason in cases:
        with pytest.raises(StructuredError, match=reason):
            json_to_avro(schema, {**base, **bad})
    assert json_to_avro(schema, {**base, "weights": {"a": 1}})["weights"] == {"a": 1.0}


def test_refusals_of_structured_records_name_their_id_and_tenant() -> None:
    """What the processor records a refusal under (``runtime/worker/common._stand_in``):
    the structured event's own id and tenant, read from the JSON."""
    env, doc = register_pair()
    value = json.dumps({**doc, "data": {"name": 1}}).encode()
    assert record_id(STRUCTURED, value) == env.id
    assert record_attribute(STRUCTURED, value, "tenant") == TENANT
    assert record_attribute(STRUCTURED, b"{broken", "tenant") is None
    _key, binary_value, headers = to_message(env)
    assert record_id(headers, binary_value) == env.id
    assert record_attribute(headers, binary_value, "actor") == "ann"


def _as_json(value: Any) -> Any:
    """A datum as JSON holds it (what an external producer would write)."""
    if isinstance(value, dict):
        return {k: _as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_json(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


@pytest.mark.parametrize("name", sorted(default_codec().schemas.current))
def test_every_schema_round_trips_through_json(name: str) -> None:
    """Generated values of every current schema (nested records, arrays, maps, unions,
    bytes, timestamps), written as JSON, convert back to the same Avro bytes."""
    from fastavro.utils import generate_many

    codec = default_codec()
    schema = codec.schemas.current[name]
    for datum in generate_many(schema, 5):
        as_json = json.loads(json.dumps(_as_json(datum)))
        converted = codec.encode(name, json_to_avro(schema, as_json))
        assert _uuids(codec.decode(converted)) == _uuids(codec.decode(codec.encode(name, datum)))


def _uuids(value: Any) -> Any:
    """A decoded value with its UUID texts in one form (the generator writes them without
    dashes; the conversion writes ``str(UUID)``)."""
    if isinstance(value, dict):
        return {k: _uuids(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_uuids(v) for v in value]
    if isinstance(value, str) and len(value) in (32, 36):
        try:
            return str(uuid.UUID(value))
        except ValueError:
            return value
    return value
