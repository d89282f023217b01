"""Issue 12, item 3, offline: the Kafka headers of an envelope follow the CloudEvents Kafka
protocol binding (binary content mode), the official CloudEvents SDK reads them back with
every attribute, records written with the pre-issue-12 header names are still read, and
an outcome event's time is its result command's. The same against the real broker, on
records a Kafka-mode scan wrote: tests/integration/test_cloudevents.py."""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.v1 import kafka as ce_kafka_v1
from fastavro.schema import fingerprint, to_parsing_canonical_form

from datrix.aggregates import dataset, scan
from datrix.aggregates.common import Command, Event, Meta
from datrix.streams.codec import default_codec
from datrix.streams.kafka import (
    BadMessage,
    Headers,
    from_message,
    header_attribute,
    to_message,
)
from datrix.streams.messages import (
    Envelope,
    command_envelope,
    dataschema,
    decode_command,
    decode_event,
    event_envelope,
)

T0 = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
TENANT = "acme"


def register() -> Envelope:
    ds = dataset.dataset_id_for(TENANT, "sales")
    return command_envelope(
        dataset.RegisterDataset(ds, "sales"), subject=ds, tenant=TENANT, actor="ann", time=T0
    )


def registered_event() -> Envelope:
    cause = register()
    command = decode_command(cause.data)
    [event] = dataset.decide(command, None, Meta(cause.id, cause.time, TENANT, cause.actor))
    return event_envelope(event, cause)


def legacy_headers(env: Envelope, position: int | None = None) -> Headers:
    """The headers exactly as Datrix wrote them before issue 12 (they are in existing logs):
    the extensions without the ``ce_`` prefix, ``sequence`` after them, no dataschema."""
    headers: Headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", str(env.id).encode()),
        ("ce_type", env.type.encode()),
        ("ce_source", env.source.encode()),
        ("ce_subject", env.subject.encode()),
        ("ce_time", env.time.isoformat().encode()),
        ("content-type", b"application/avro"),
        ("tenant", env.tenant.encode()),
        ("actor", env.actor.encode()),
        ("correlationid", env.correlation_id.encode()),
    ]
    if env.causation_id:
        headers.append(("causationid", env.causation_id.encode()))
    if env.sequence is not None:
        headers.append(("sequence", str(env.sequence).encode()))
    if position is not None:
        headers.append(("datrix_position", str(position).encode()))
    return headers


def test_every_attribute_and_extension_is_a_ce_header() -> None:
    env = registered_event()
    _key, _value, headers = to_message(env, position=7)
    names = [name for name, _ in headers]
    assert len(names) == len(set(names))
    assert names == [
        "ce_specversion",
        "ce_id",
        "ce_type",
        "ce_source",
        "ce_subject",
        "ce_time",
        "content-type",
        "ce_dataschema",
        "ce_tenant",
        "ce_actor",
        "ce_correlationid",
        "ce_causationid",
        "ce_sequence",
        "datrix_position",  # transport, not an attribute: the event-store position
    ]
    h = dict(headers)
    assert h["ce_tenant"] == b"acme" and h["ce_actor"] == b"ann"
    assert h["ce_correlationid"] == str(env.correlation_id).encode()
    assert h["ce_causationid"] == str(env.causation_id).encode()
    assert h["ce_sequence"] == b"00000000000000000001"
    # CloudEvents: attribute names are lower-case ASCII letters and digits
    for name in names:
        if name.startswith("ce_"):
            assert re.fullmatch(r"[a-z0-9]{1,20}", name[3:]), name


def test_sequence_strings_sort_as_the_events_do() -> None:
    """The CloudEvents sequence extension: a receiver orders events by comparing the
    strings; the reader takes the number (an old record's ``sequence`` is unpadded)."""
    env = registered_event()
    texts: list[bytes] = []
    for version in (1, 9, 10, 11, 100, 2**62):
        event = replace(env, sequence=version)
        text = dict(to_message(event)[2])["ce_sequence"]
        assert isinstance(text, bytes)
        assert from_message(to_message(event)[2], event.data)[0].sequence == version
        texts.append(text)
    assert sorted(texts) == texts


def test_a_command_has_no_causation_or_sequence_header() -> None:
    _key, _value, headers = to_message(register())
    names = {name for name, _ in headers}
    assert "ce_causationid" not in names and "ce_sequence" not in names
    assert {"ce_tenant", "ce_actor", "ce_correlationid", "ce_dataschema"} <= names


def test_dataschema_names_the_schema_and_its_fingerprint() -> None:
    env = registered_event()
    name = "datrix.dataset.DatasetRegistered"
    schema = default_codec().schemas.current[name]
    expected = fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO")
    assert dataschema(env) == f"urn:datrix:avro:{name}:{expected}"
    assert dict(to_message(env)[2])["ce_dataschema"] == dataschema(env).encode()  # type: ignore[union-attr]
    # the fingerprint is the writer's: the 8 bytes after C3 01 in the value, little-endian
    assert int(expected, 16).to_bytes(8, "little") == env.data[2:10]


@pytest.mark.parametrize("make", [register, registered_event])
def test_from_message_reads_back_every_attribute(make: Any) -> None:
    env = make()
    key, value, headers = to_message(env, position=3)
    back, position = from_message(headers, value)
    assert back == env and position == 3
    assert key == env.subject.encode()


class AvroFormat:
    """A CloudEvents SDK ``Format`` for ``application/avro`` data: Datrix's Avro codec
    (single-object encoding) decodes the value into its record name and fields."""

    def read_data(self, body: bytes, datacontenttype: str | None) -> Any:
        assert datacontenttype == "application/avro"
        name, record = default_codec().decode(body)
        return {"schema": name, **record}

    def write_data(self, data: Any, datacontenttype: str | None) -> bytes:
        raise NotImplementedError("Datrix writes its records itself")

    def read(self, event_factory: Any, data: str | bytes) -> Any:
        raise NotImplementedError("binary content mode only")

    def write(self, event: Any) -> bytes:
        raise NotImplementedError("binary content mode only")

    def get_content_type(self) -> str:
        return "application/avro"


def expected_attributes(env: Envelope) -> dict[str, Any]:
    out: dict[str, Any] = {
        "specversion": "1.0",
        "id": str(env.id),
        "type": env.type,
        "source": env.source,
        "subject": env.subject,
        "time": env.time,
        "datacontenttype": "application/avro",
        "dataschema": dataschema(env),
        "tenant": env.tenant,
        "actor": env.actor,
        "correlationid": env.correlation_id,
        "partitionkey": env.partition_key or env.subject,  # the binding's name for the record key
    }
    if env.causation_id:
        out["causationid"] = env.causation_id
    if env.sequence is not None:
        out["sequence"] = f"{env.sequence:020d}"
    return out


def sdk_reads(key: bytes, value: bytes, headers: list[tuple[str, Any]]) -> dict[str, Any]:
    """The CloudEvents SDK's two Kafka bindings (2.x ``cloudevents.core.bindings.kafka``
    and the 1.x API ``cloudevents.v1.kafka``) read the record; both must agree."""
    as_dict = {k: v for k, v in headers}
    event = ce_kafka.from_binary(ce_kafka.KafkaMessage(as_dict, key, value), AvroFormat())
    attrs = dict(event.get_attributes())
    legacy = ce_kafka_v1.from_binary(
        ce_kafka_v1.KafkaMessage(as_dict, key, value),
        data_unmarshaller=lambda body: AvroFormat().read_data(body, "application/avro"),
    )
    old = dict(legacy.get_attributes())
    old["partitionkey"] = old["partitionkey"].decode()
    old["time"] = datetime.fromisoformat(old["time"])
    assert old == attrs
    assert legacy.get_data() == event.get_data()
    return {**attrs, "data": event.get_data()}


@pytest.mark.parametrize("make", [register, registered_event])
def test_the_cloudevents_sdk_reads_every_attribute(make: Any) -> None:
    env = make()
    key, value, headers = to_message(env, position=3)
    read = sdk_reads(key, value, headers)
    data = read.pop("data")
    assert read == expected_attributes(env)
    assert data["schema"] == env.type
    assert data["name"] == "sales"


@pytest.mark.parametrize("make", [register, registered_event])
def test_records_with_the_old_header_names_are_still_read(make: Any) -> None:
    env = make()
    back, position = from_message(legacy_headers(env, position=9), env.data)
    assert back == env and position == 9
    if env.sequence is not None:
        assert decode_event(back).originator_version == env.sequence


def test_old_and_new_names_together_must_agree() -> None:
    env = registered_event()
    _key, value, headers = to_message(env)
    same = [*headers, ("tenant", b"acme"), ("sequence", b"1")]
    assert from_message(same, value)[0] == env
    for legacy, wrong in (("tenant", b"evil"), ("actor", b"mallory"), ("sequence", b"2")):
        with pytest.raises(BadMessage, match=f"header {legacy} '.*' contradicts ce_{legacy}"):
            from_message([*headers, (legacy, wrong)], value)


def test_an_attribute_given_twice_must_agree() -> None:
    env = register()
    _key, value, headers = to_message(env)
    assert from_message([*headers, ("ce_tenant", b"acme")], value)[0] == env
    cases: list[tuple[str, list[tuple[str, Any]]]] = [
        ("ce_tenant", [("ce_tenant", b"evil")]),
        ("ce_type", [("ce_type", b"datrix.dataset.DeleteDataset")]),
        ("tenant", [("tenant", b"acme"), ("tenant", b"evil")]),
    ]
    for name, extra in cases:
        with pytest.raises(BadMessage, match=f"header {name} appears twice: '.*' and '.*'"):
            from_message([*headers, *extra], value)


@pytest.mark.parametrize("name", ["tenant", "actor", "correlationid"])
def test_a_required_extension_missing_under_both_names_is_refused(name: str) -> None:
    env = register()
    _key, value, headers = to_message(env)
    without = [(k, v) for k, v in headers if k != f"ce_{name}"]
    with pytest.raises(BadMessage, match=f"missing CloudEvents header\\(s\\): ce_{name}"):
        from_message(without, value)
    legacy = [(k, v) for k, v in legacy_headers(env) if k != name]
    with pytest.raises(BadMessage, match=f"missing CloudEvents header\\(s\\): ce_{name}"):
        from_message(legacy, value)


def test_a_dataschema_that_does_not_name_the_payload_is_refused() -> None:
    env = registered_event()
    _key, value, headers = to_message(env)

    def with_schema(text: bytes) -> list[tuple[str, Any]]:
        return [(k, text if k == "ce_dataschema" else v) for k, v in headers]

    other = dataschema(register())
    assert other is not None
    for bad in (other.encode(), b"https://example.com/schema.avsc", b""):
        with pytest.raises(BadMessage, match=r"ce_dataschema .* does not name urn:datrix:avro:"):
            from_message(with_schema(bad), value)
    with pytest.raises(BadMessage, match="does not name a value that is no Avro single-object"):
        from_message(headers, b"not avro")
    # without one (a record written before issue 12) the value is taken as it is
    plain = [(k, v) for k, v in headers if k != "ce_dataschema"]
    assert from_message(plain, value)[0] == env


def test_header_attribute_reads_either_name() -> None:
    env = register()
    assert header_attribute(to_message(env)[2], "tenant") == TENANT
    assert header_attribute(legacy_headers(env), "tenant") == TENANT
    assert header_attribute([("ce_tenant", b"\xff")], "tenant") is None
    assert header_attribute([], "actor") is None


def test_an_outcome_event_takes_its_result_commands_time() -> None:
    """ScanCompleted and ScanFailed are stamped with the time of the command that carries
    the job's result (when the job ended), not the request's; the decider reads no clock,
    so deciding the same command again gives the same event."""
    ds_id = dataset.dataset_id_for(TENANT, "sales")
    ds_events: list[Event] = dataset.decide(
        dataset.RegisterDataset(ds_id, "sales"), None, Meta(uuid.uuid4(), T0, TENANT)
    )
    state: Any = dataset.evolve(None, ds_events[0])
    version = dataset.AddDatasetVersion(
        ds_id, "datrix-object://acme/x", "0" * 64, "file:///x", "0" * 64, "csv", 1, 1, 1, "{}"
    )
    state = dataset.evolve(state, dataset.decide(version, state, Meta(uuid.uuid4(), T0, TENANT))[0])
    scan_id = uuid.uuid4()
    requested = scan.decide(
        scan.RequestScan(scan_id, ds_id), None, Meta(uuid.uuid4(), T0, TENANT), state
    )
    running: Any = None
    for event in requested:
        running = scan.evolve(running, event)
    job_id = scan.job_id_for(scan_id, 1)
    ended = T0 + timedelta(minutes=3, microseconds=7)
    results: list[Command] = [
        scan.CompleteScan(
            scan_id, job_id, "polars", 1, 1, scan.ScoreCard(90, 90, 90, 90, 90, 90), (), (),
            "datrix-object://acme/r", "r" * 64, 180_000,
        ),
        scan.FailScan(scan_id, job_id, "Boom", "it broke"),
    ]  # fmt: skip
    for result in results:
        meta = Meta(uuid.uuid4(), ended, TENANT, "worker:polars")
        outcome = scan.decide(result, running, meta)
        assert [e.timestamp for e in outcome] == [ended]
        assert requested[0].timestamp == T0
        assert scan.decide(result, running, meta) == outcome  # deterministic
