"""Decoding one record value of a data topic, per stream format.

A decoder turns a record's value (bytes, or None for a Kafka tombstone) into a ``Decoded``:
the row as a flat ``dict`` (nested objects flattened into ``parent.child`` names; lists
stay lists), the event time the payload itself carries (Debezium's ``source.ts_ms``;
None when the format has none and the Kafka record timestamp stands for it), the source
position (Debezium's ``source.lsn``: with the key, what tells a redelivered change from a
new one) and the Debezium operation. A value that cannot be decoded raises
``RecordError`` with a one-line reason: the monitor dead-letters that record and goes on.

Formats (``aggregates/stream.py`` ``FORMATS``):

- ``json``: a JSON object; Kafka Connect's ``{"schema": ..., "payload": {...}}`` envelope
  (``JsonConverter`` with ``schemas.enable=true``) is unwrapped too.
- ``json-schema``: Connect's envelope, required.
- ``debezium``: the change-event envelope (``before``/``after``/``op``/``source``), with or
  without Connect's schema envelope. ``c``/``r``/``u`` give the ``after`` row; a ``d``
  (delete) is a record without a row image (counted, no field values); a tombstone (null
  value, which follows a delete for log compaction) and ``t``/``m`` events (truncate,
  logical message) are no row change and are skipped.
- ``avro-confluent``: the Confluent wire format (magic byte 0, a 4-byte big-endian schema
  id, the Avro body), the writer schema fetched from a schema registry
  (``DATRIX_SCHEMA_REGISTRY_URL``: Confluent's ``GET /schemas/ids/{id}``, which Apicurio's
  compatible API serves too). Without a registry the format is refused with
  ``FormatError``. A Debezium envelope in Avro is unwrapped as ``debezium`` is.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

FORMATS = ("json", "json-schema", "debezium", "avro-confluent")
_ROW_OPS = frozenset(("c", "r", "u"))
_SKIPPED_OPS = frozenset(("t", "m"))
_ENVELOPE_KEYS = frozenset(("schema", "payload"))


class RecordError(ValueError):
    """One record value that cannot be decoded; the message is the reason."""


class FormatError(ValueError):
    """A stream format that cannot be read as configured (one line for the operator)."""


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs ~3x per record
class Decoded:
    values: dict[str, Any] | None  # the row; None: no row image (a delete, or skipped)
    event_ms: int | None = None  # the payload's own event time (ms since the epoch)
    position: str | None = None  # the source position (Debezium), else None
    op: str | None = None  # Debezium: c, r, u, d, t, m
    skipped: bool = False  # a tombstone or no row change: not a record of the window

    @property
    def is_delete(self) -> bool:
        return self.op == "d"


TOMBSTONE = Decoded(None, skipped=True)
Decoder = Callable[[bytes | None], Decoded]
SchemaLookup = Callable[[int], Any]  # Confluent schema id -> parsed Avro schema


def flatten(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with nested objects flattened into dotted names (``{"a": {"b": 1}}`` ->
    ``{"a.b": 1}``); an empty object stays a value. The row itself when nothing nests."""
    for value in row.values():
        if type(value) is dict and value:
            break
    else:
        return row
    out: dict[str, Any] = {}
    _flatten_into(out, "", row)
    return out


def _flatten_into(out: dict[str, Any], prefix: str, row: dict[str, Any]) -> None:
    for key, value in row.items():
        name = f"{prefix}{key}"
        if type(value) is dict and value:
            _flatten_into(out, f"{name}.", value)
        else:
            out[name] = value


def _json(value: bytes) -> Any:
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise RecordError(f"not JSON: {exc}") from None


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, int | float) else "null"
    )


def _object(value: Any, what: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise RecordError(f"{what} must be a JSON object, not {_kind(value)}")
    return value


def _connect_payload(doc: dict[str, Any]) -> Any:
    """The payload of Connect's ``{"schema", "payload"}`` envelope, or the document."""
    if doc.keys() == _ENVELOPE_KEYS:
        return doc["payload"]
    return doc


def decode_json(value: bytes | None) -> Decoded:
    if value is None:
        return TOMBSTONE
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise RecordError(f"not JSON: {exc}") from None
    if type(doc) is not dict:
        raise RecordError(f"a json record must be a JSON object, not {_kind(doc)}")
    if value.find(b"{", 1) < 0:
        return Decoded(doc)  # no nested object (nor Connect's envelope): flat already
    payload = _connect_payload(doc)
    if payload is None:
        return TOMBSTONE
    return Decoded(flatten(_object(payload, "a Connect payload")))


_BRACE, _SEP = 0x7B, 0x01  # ``{``, and a byte no JSON text holds raw


def decode_flat_json_batch(values: Sequence[bytes | None]) -> list[dict[str, Any]] | None:
    """The rows of a micro-batch of ``json`` values when every value is a flat JSON object
    (it starts with ``{`` and holds no other ``{``: the values ``decode_json`` returns as
    they are), decoded by one ``orjson.loads`` of the values joined into an array: exactly
    ``[decode_json(v).values for v in values]``, without a Python call per record. None
    when any value is not such an object (a tombstone, a nested object, Connect's envelope,
    leading blanks, not JSON...): the caller decodes them one by one (``decode_json``).

    Why the joined array gives each value's own object: the values joined by a raw
    ``\\x01`` (a control byte, in no JSON text outside a string and escaped in one, so a
    value holding it fails the parse) must have ``n`` braces, one at the start and one after
    each separator: each of the ``n`` values starts with ``{`` and holds no other. The ``n``
    objects the array must then hold open at the values' first bytes, one each; an object
    that ran past the end of its value would take in the next value's ``{`` (the separator
    is a comma, not a ``}``) and leave fewer than ``n`` objects; anything after an object's
    ``}`` in its value would be a further element or a syntax error."""
    n = len(values)
    if n == 0 or None in values:
        return None
    joined = bytes([_SEP]).join(values)  # type: ignore[arg-type]  # no None in it
    text = np.frombuffer(joined, dtype=np.uint8)
    braces = text == _BRACE
    if (
        not braces[0]
        or int(np.count_nonzero(braces)) != n
        or int(np.count_nonzero(braces[1:] & (text[:-1] == _SEP))) != n - 1
    ):
        return None
    try:
        rows = orjson.loads(b"[" + b",".join(values) + b"]")  # type: ignore[arg-type]
    except orjson.JSONDecodeError:
        return None  # one value at least is no JSON (or holds a raw \x01)
    if len(rows) != n or set(map(type, rows)) != {dict}:
        return None
    return rows  # type: ignore[no-any-return]


def decode_json_schema(value: bytes | None) -> Decoded:
    if value is None:
        return TOMBSTONE
    doc = _object(_json(value), "a json-schema record")
    if doc.keys() != _ENVELOPE_KEYS:
        raise RecordError(
            'a json-schema record is Connect\'s {"schema": ..., "payload": ...} envelope; '
            f"this one has the keys {sorted(doc)[:8]}"
        )
    if doc["payload"] is None:
        return TOMBSTONE
    _object(doc["schema"], "a Connect schema")
    return Decoded(flatten(_object(doc["payload"], "a Connect payload")))


def _position(source: dict[str, Any]) -> str | None:
    """Where the change is in the source's log: Postgres' LSN (with Debezium's ``sequence``
    when present), MySQL's binlog file/position/row; None when the source says neither."""
    if source.get("lsn") is not None:
        sequence = source.get("sequence")
        return f"lsn:{source['lsn']}" + (f"/{sequence}" if sequence else "")
    if source.get("file") is not None and source.get("pos") is not None:
        return f"binlog:{source['file']}:{source['pos']}:{source.get('row', 0)}"
    return None


def _millis(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def debezium_change(payload: dict[str, Any]) -> Decoded:
    """One Debezium change event (the envelope's payload) as a ``Decoded``."""
    op = payload.get("op")
    if not isinstance(op, str):
        raise RecordError(
            "a debezium record needs its envelope's 'op' (c, r, u, d, t or m); "
            f"this one has the keys {sorted(payload)[:8]}"
        )
    source = payload.get("source")
    source = source if type(source) is dict else {}
    event_ms = _millis(source.get("ts_ms"))
    if event_ms is None:
        event_ms = _millis(payload.get("ts_ms"))
    position = _position(source)
    if op in _ROW_OPS:
        after = _object(payload.get("after"), f"a debezium {op!r} event's 'after'")
        return Decoded(flatten(after), event_ms, position, op)
    if op == "d":
        return Decoded(None, event_ms, position, op)
    if op in _SKIPPED_OPS:
        return Decoded(None, event_ms, position, op, skipped=True)
    raise RecordError(f"unknown debezium operation {op!r} (c, r, u, d, t or m)")


def decode_debezium(value: bytes | None) -> Decoded:
    if value is None:
        return TOMBSTONE
    doc = _object(_json(value), "a debezium record")
    payload = _connect_payload(doc)
    if payload is None:
        return TOMBSTONE
    return debezium_change(_object(payload, "a debezium payload"))


def _is_debezium(row: dict[str, Any]) -> bool:
    return "op" in row and "after" in row and "source" in row


def avro_confluent_decoder(schemas: SchemaLookup) -> Decoder:
    """A decoder of the Confluent wire format whose writer schemas come from ``schemas``
    (a registry lookup by id: ``registry_lookup``)."""
    from fastavro import schemaless_reader

    def decode(value: bytes | None) -> Decoded:
        if value is None:
            return TOMBSTONE
        if len(value) < 5 or value[0] != 0:
            raise RecordError(
                "not the Confluent wire format (a zero magic byte, a 4-byte schema id, "
                "then the Avro body)"
            )
        (schema_id,) = struct.unpack(">I", value[1:5])
        schema = schemas(schema_id)
        try:
            record = schemaless_reader(io.BytesIO(value[5:]), schema, None)
        except Exception as exc:  # fastavro raises many kinds on a broken body
            raise RecordError(
                f"Avro body does not match schema id {schema_id}: {type(exc).__name__}: {exc}"
            ) from None
        if type(record) is not dict:
            raise RecordError(f"schema id {schema_id} is no Avro record ({_kind(record)})")
        if _is_debezium(record):
            return debezium_change(record)
        return Decoded(flatten(record))

    return decode


def registry_lookup(url: str, timeout: float = 10.0) -> SchemaLookup:
    """Writer schemas by id from a Confluent-compatible schema registry at ``url``
    (``GET {url}/schemas/ids/{id}``), parsed once per id. A schema the registry does not
    have (404 with Confluent's error code 40403) is a ``RecordError`` (that record is
    dead-lettered); an unreachable registry, any other answer, and a 404 without that code
    (a URL that is not the API's root: every record would otherwise be dead-lettered)
    raise ``OSError`` (an outage: the caller retries).

    Tested against Apicurio Registry 3.0.9's ``/apis/ccompat/v7`` (``deploy/local/up
    registry``; tests/integration/test_stream_avro_registry.py), which answers an unknown
    id with 404 (error code 40403) as Confluent's does.

    Why plain httpx and not confluent-kafka's own ``confluent_kafka.schema_registry``
    client: that client works against Apicurio's API too (tried: ``get_schema`` by id,
    and a 404 ``SchemaRegistryError`` with code 40403 for an unknown one), but it imports
    only with the ``schemaregistry`` extra (authlib and with it cryptography, cachetools,
    attrs), about 0.2 s of imports, for the one GET the monitor needs; its errors would
    still have to be mapped onto the two outcomes above (dead-letter the record, or retry
    the registry). httpx is already a dependency. What it would add: OAuth and mutual TLS
    to the registry, and schema references (a schema naming types of other subjects,
    which this lookup does not resolve: such a schema is a ``RecordError``). A registry
    behind basic authentication works with the credentials in the URL
    (``https://user:password@host/apis/ccompat/v7``: httpx sends them)."""
    import httpx
    from fastavro import parse_schema

    cache: dict[int, Any] = {}
    base = url.rstrip("/")
    shown = _without_credentials(base)  # what errors (and dead letters) name

    def lookup(schema_id: int) -> Any:
        if schema_id in cache:
            return cache[schema_id]
        try:
            answer = httpx.get(f"{base}/schemas/ids/{schema_id}", timeout=timeout)
        except httpx.TransportError as exc:
            raise OSError(f"schema registry {shown} unreachable: {exc}") from None
        if answer.status_code == 404 and _error_code(answer) == SCHEMA_NOT_FOUND:
            raise RecordError(f"schema id {schema_id} is not in the registry at {shown}")
        if answer.status_code == 404:  # a path the server does not have: the URL is wrong
            raise OSError(
                f"schema registry {shown} has no Confluent-compatible API there (GET "
                f"/schemas/ids/{schema_id} answered 404 without error code {SCHEMA_NOT_FOUND}): "
                "DATRIX_SCHEMA_REGISTRY_URL must be the API's root, e.g. Apicurio's "
                ".../apis/ccompat/v7"
            )
        if answer.status_code != 200:
            raise OSError(f"schema registry {shown} answered {answer.status_code}")
        try:
            parsed = parse_schema(json.loads(answer.json()["schema"]))
        except Exception as exc:
            raise RecordError(f"schema id {schema_id} is no usable Avro schema: {exc}") from None
        cache[schema_id] = parsed
        return parsed

    return lookup


# Confluent's error code for "schema not found" (Apicurio's ccompat API answers it too)
SCHEMA_NOT_FOUND = 40403


def _error_code(answer: Any) -> int | None:
    """The ``error_code`` of a Confluent error body (None when there is none)."""
    try:
        body = answer.json()
    except ValueError:
        return None
    code = body.get("error_code") if type(body) is dict else None
    return code if type(code) is int else None


def _without_credentials(url: str) -> str:
    """``url`` without the ``user:password@`` of its authority, if any."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def decoder_for(fmt: str, registry_url: str | None = None) -> Decoder:
    """The decoder of stream format ``fmt``; ``FormatError`` (one line) for an unknown
    format, or for ``avro-confluent`` without a schema registry."""
    if fmt == "json":
        return decode_json
    if fmt == "json-schema":
        return decode_json_schema
    if fmt == "debezium":
        return decode_debezium
    if fmt == "avro-confluent":
        if not registry_url:
            raise FormatError(
                "format avro-confluent needs a schema registry: set DATRIX_SCHEMA_REGISTRY_URL "
                "to a Confluent-compatible registry (e.g. Apicurio's /apis/ccompat/v7)"
            )
        return avro_confluent_decoder(registry_lookup(registry_url))
    raise FormatError(f"stream format {fmt!r} is not one of {', '.join(FORMATS)}")
