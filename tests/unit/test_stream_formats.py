"""Decoding data-topic records per stream format (jobs/streams/formats.py), offline."""

from __future__ import annotations

import io
import json
import struct
from typing import Any

import orjson
import pytest
from fastavro import parse_schema, schemaless_writer

from datrix.jobs.streams.formats import (
    TOMBSTONE,
    FormatError,
    RecordError,
    avro_confluent_decoder,
    decode_flat_json_batch,
    decode_json,
    decoder_for,
    flatten,
)


def dumps(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def test_json_record_is_a_flat_row() -> None:
    decode = decoder_for("json")
    got = decode(
        dumps({"id": 1, "user": {"name": "ada", "address": {"city": "Paris"}}, "tags": [1]})
    )
    assert got.values == {"id": 1, "user.name": "ada", "user.address.city": "Paris", "tags": [1]}
    assert (got.event_ms, got.position, got.op, got.skipped) == (None, None, None, False)


def test_json_unwraps_connects_schema_envelope() -> None:
    record = {"schema": {"type": "struct", "fields": []}, "payload": {"a": 1, "b": None}}
    assert decoder_for("json")(dumps(record)).values == {"a": 1, "b": None}
    assert decoder_for("json-schema")(dumps(record)).values == {"a": 1, "b": None}


def test_json_schema_needs_the_envelope() -> None:
    with pytest.raises(RecordError, match="envelope"):
        decoder_for("json-schema")(dumps({"a": 1}))


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "must be a JSON object, not an array"),
        (b'"text"', "not a string"),
        (b"\xff\xfe", "not JSON"),
    ],
)
def test_undecodable_json_says_why(value: bytes, reason: str) -> None:
    with pytest.raises(RecordError, match=reason):
        decoder_for("json")(value)


def test_tombstones_are_skipped() -> None:
    for fmt in ("json", "json-schema", "debezium"):
        got = decoder_for(fmt)(None)
        assert got is TOMBSTONE and got.skipped and got.values is None


def change(op: str, before: Any = None, after: Any = None, lsn: int = 100) -> dict[str, Any]:
    return {
        "before": before,
        "after": after,
        "op": op,
        "ts_ms": 1_700_000_009_000,
        "source": {"connector": "postgresql", "ts_ms": 1_700_000_000_000, "lsn": lsn},
    }


@pytest.mark.parametrize("op", ["c", "r", "u"])
def test_debezium_row_changes_give_the_after_image(op: str) -> None:
    got = decoder_for("debezium")(dumps(change(op, {"id": 1}, {"id": 1, "v": "x"})))
    assert got.values == {"id": 1, "v": "x"}
    assert (got.op, got.event_ms, got.position, got.skipped) == (
        op,
        1_700_000_000_000,
        "lsn:100",
        False,
    )


def test_debezium_delete_is_counted_without_a_row_image() -> None:
    got = decoder_for("debezium")(dumps(change("d", {"id": 1}, None, lsn=7)))
    assert got.values is None and got.is_delete and not got.skipped and got.position == "lsn:7"


def test_debezium_with_connect_envelope_and_truncate() -> None:
    wrapped = {"schema": {"type": "struct"}, "payload": change("c", None, {"id": 2})}
    assert decoder_for("debezium")(dumps(wrapped)).values == {"id": 2}
    assert decoder_for("debezium")(dumps(change("t"))).skipped


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({"id": 1}, "needs its envelope's 'op'"),
        (change("x", None, {"id": 1}), "unknown debezium operation 'x'"),
        (change("c", None, None), "'after' must be a JSON object, not null"),
    ],
)
def test_broken_debezium_events_say_why(doc: Any, reason: str) -> None:
    with pytest.raises(RecordError, match=reason):
        decoder_for("debezium")(dumps(doc))


SCHEMA = parse_schema(
    {
        "type": "record",
        "name": "Reading",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "temp", "type": ["null", "double"]},
        ],
    }
)


def confluent(schema_id: int, record: dict[str, Any]) -> bytes:
    body = io.BytesIO()
    schemaless_writer(body, SCHEMA, record)
    return b"\x00" + struct.pack(">I", schema_id) + body.getvalue()


def test_avro_confluent_wire_format() -> None:
    asked: list[int] = []

    def schemas(schema_id: int) -> Any:
        asked.append(schema_id)
        if schema_id != 42:
            raise RecordError(f"schema id {schema_id} is not in the registry")
        return SCHEMA

    decode = avro_confluent_decoder(schemas)
    assert decode(confluent(42, {"id": 5, "temp": None})).values == {"id": 5, "temp": None}
    assert asked == [42]
    with pytest.raises(RecordError, match="not in the registry"):
        decode(confluent(7, {"id": 5, "temp": 1.5}))
    with pytest.raises(RecordError, match="Confluent wire format"):
        decode(b'{"id": 5}')
    with pytest.raises(RecordError, match="does not match schema id 42"):
        decode(b"\x00\x00\x00\x00\x2a\xff")


def test_avro_confluent_without_a_registry_is_refused_in_one_line() -> None:
    with pytest.raises(FormatError, match="DATRIX_SCHEMA_REGISTRY_URL") as refused:
        decoder_for("avro-confluent")
    assert "\n" not in str(refused.value)
    with pytest.raises(FormatError, match="not one of"):
        decoder_for("csv")


def test_flatten_leaves_flat_rows_alone() -> None:
    row = {"a": 1, "b": {}}
    assert flatten(row) is row
    assert flatten({"a": {"b": {"c": 1}, "d": 2}}) == {"a.b.c": 1, "a.d": 2}


def random_flat_values(seed: int, n: int) -> list[bytes]:
    """``n`` flat JSON objects of mixed fields and types, written in varied styles."""
    import random

    rng = random.Random(seed)
    scalars: list[Any] = [
        None,
        True,
        False,
        0,
        -1,
        2**63 - 1,
        2**64 + 5,  # past int64: orjson's own answer either way
        1.5,
        -0.0,
        1e-7,
        "",
        "é😀",
        'quote " and back\\slash',
        "}]),:",
        [1, "x", None],
        [],
    ]
    values = []
    for _ in range(n):
        fields = rng.sample(["a", "b", "c", "d", "e", "f"], rng.randrange(0, 6))
        doc = {name: rng.choice(scalars) for name in fields}
        text = json.dumps(doc, ensure_ascii=rng.random() < 0.5)
        if rng.random() < 0.2:
            text = text.replace(", ", ",\n  ") + "  "  # blanks inside and after
        values.append(text.encode())
    values.append(b'{"a": 1, "a": 2}')  # a repeated name: the last one, as record by record
    return values


@pytest.mark.parametrize("seed", range(5))
def test_a_batch_of_flat_objects_decodes_exactly_as_record_by_record(seed: int) -> None:
    values = random_flat_values(seed, 400)
    rows = decode_flat_json_batch(values)
    assert rows is not None
    assert rows == [decode_json(v).values for v in values]
    # the same types, not only equal values (1 == 1.0 == True)
    assert [[type(x) for x in r.values()] for r in rows] == [
        [type(x) for x in orjson.loads(v).values()] for v in values
    ]


@pytest.mark.parametrize(
    "values",
    [
        [],
        [b'{"a": 1}', None],  # a tombstone
        [b'{"a": {"b": 1}}'],  # nested: flattened record by record
        [b'{"schema": {"type": "struct"}, "payload": {"a": 1}}'],  # Connect's envelope
        [b' {"a": 1}'],  # a leading blank
        [b'{"a": 1}', b"[1]"],
        [b'{"a": 1}', b"1"],
        [b'{"a": 1', b"}"],
        [b'{"a": "{"}'],  # a brace in a string: the count says not flat
        # each invalid alone, valid joined: a string across the separator, and a value
        # with two objects making up for it
        [b'{"a": "', b'"}', b'{"b": 1},{"c": 2}'],
        [b'{"a": [1', b"2]}"],
        [b'{"a": 1},{"b": 2}', b'{"c": 3}'],
        [b'{"a": 1}\x01{"b": 2}', b'{"c": 3}'],  # the separator itself in a value
        [b'{"a": 1}', b'{"a": NaN}'],  # not JSON
        [b'{"a": 1}', b'{"a": "\xff"}'],  # not UTF-8
    ],
)
def test_a_batch_that_is_not_all_flat_objects_is_left_to_the_record_path(
    values: list[bytes | None],
) -> None:
    assert decode_flat_json_batch(values) is None
