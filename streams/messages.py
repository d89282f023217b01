"""Envelopes and the mapping between domain objects and their Avro records.

A message is a CloudEvents envelope (``datrix.Envelope``) around one command or event,
itself Avro single-object encoded. Domain objects are dataclasses; their Avro record name is
``datrix.<aggregate>.<ClassName>``, as each aggregate declares (``AGGREGATE`` in its
module); extensions add their own through ``streams/registry.py``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any
from uuid import UUID

from datrix.aggregates import audit, dataset, fix, outcome, scan, stream
from datrix.aggregates.common import Command, Event, avro_names
from datrix.streams.codec import (
    MAGIC,
    SCHEMA_DIR,
    AvroCodec,
    CodecError,
    default_codec,
    load_schema_set,
)

SOURCE = "urn:datrix"
CONTENT_TYPE = "application/avro"  # the data: Avro single-object encoding
_BASE_FIELDS = ("originator_id", "originator_version", "timestamp")

# The core types, from the aggregates' own declarations (``AGGREGATE`` in each module)
# plus the command outcomes every processor records.
TYPES: dict[str, type] = {
    **dataset.AGGREGATE.avro_names(),
    **scan.AGGREGATE.avro_names(),
    **fix.AGGREGATE.avro_names(),
    **audit.AGGREGATE.avro_names(),
    **stream.AGGREGATE.avro_names(),
    **avro_names(outcome.NAMESPACE, outcome.EVENTS),
}
NAMES: dict[type, str] = {cls: name for name, cls in TYPES.items()}


@dataclass(frozen=True)
class TypeTable:
    """Avro record name <-> domain class, and the codec that knows their schemas: the core
    types, or the core plus an extension's (``streams/registry.py`` builds those)."""

    types: Mapping[str, type]
    names: Mapping[type, str]
    schema_dirs: tuple[Path, ...] = ()

    @cached_property
    def codec(self) -> AvroCodec:
        if not self.schema_dirs:
            return default_codec()
        return AvroCodec(load_schema_set(SCHEMA_DIR, *self.schema_dirs))


CORE_TYPES = TypeTable(TYPES, NAMES)
_active: list[TypeTable] = [CORE_TYPES]


def active_types() -> TypeTable:
    """The table this process encodes and decodes with (``use_types`` sets it)."""
    return _active[0]


def use_types(table: TypeTable) -> TypeTable:
    """Make ``table`` this process's type table (a registry with extensions installs
    its own); return the one it replaces."""
    previous, _active[0] = _active[0], table
    return previous


@dataclass(frozen=True)
class Envelope:
    id: UUID
    type: str
    subject: str
    time: datetime
    tenant: str
    actor: str
    correlation_id: str
    data: bytes
    causation_id: str | None = None
    sequence: int | None = None
    source: str = SOURCE
    # The Kafka record key when it is not the subject (CloudEvents Partitioning extension,
    # ``partitionkey``): a command's outcome is keyed by the aggregate the command was for,
    # so it lands on that aggregate's partition after its events and a reader that sees the
    # outcome projected sees the events projected too.
    partition_key: str | None = None


def _to_avro(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_avro(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_to_avro(v) for v in value]
    if isinstance(value, UUID):
        return str(value)
    return value


_HINTS: dict[Any, dict[str, Any]] = {}


def _hints(cls: Any) -> dict[str, Any]:
    """Type hints per class, resolved once (get_type_hints is slow on every decode)."""
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def _from_avro(tp: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = next(a for a in typing.get_args(tp) if a is not type(None))
        return _from_avro(inner, value)
    if origin is tuple:
        inner = typing.get_args(tp)[0]
        return tuple(_from_avro(inner, v) for v in value)
    if tp is UUID:
        return value if isinstance(value, UUID) else UUID(value)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        hints = _hints(tp)
        return tp(
            **{f.name: _from_avro(hints[f.name], value[f.name]) for f in dataclasses.fields(tp)}
        )
    return value


def payload_record(obj: Command | Event) -> dict[str, Any]:
    return {
        f.name: _to_avro(getattr(obj, f.name))
        for f in dataclasses.fields(obj)
        if f.name not in _BASE_FIELDS
    }


def encode_payload(
    obj: Command | Event, codec: AvroCodec | None = None, table: TypeTable | None = None
) -> bytes:
    table = table or active_types()
    return (codec or table.codec).encode(table.names[type(obj)], payload_record(obj))


def decode_command(
    data: bytes, codec: AvroCodec | None = None, table: TypeTable | None = None
) -> Command:
    table = table or active_types()
    name, record = (codec or table.codec).decode(data)
    cls = table.types.get(name)
    if cls is None or not issubclass(cls, Command):
        raise CodecError(f"{name} is not a command")
    hints = _hints(cls)
    fields = {f.name: _from_avro(hints[f.name], record[f.name]) for f in dataclasses.fields(cls)}
    command: Command = cls(**fields)
    return command


def decode_event(
    envelope: Envelope, codec: AvroCodec | None = None, table: TypeTable | None = None
) -> Event:
    table = table or active_types()
    name, record = (codec or table.codec).decode(envelope.data)
    cls = table.types.get(name)
    if cls is None or not issubclass(cls, Event):
        raise CodecError(f"{name} is not an event")
    if envelope.sequence is None:
        raise CodecError(f"event {envelope.id} has no sequence number")
    hints = _hints(cls)
    fields = {
        f.name: _from_avro(hints[f.name], record[f.name])
        for f in dataclasses.fields(cls)
        if f.name not in _BASE_FIELDS
    }
    event: Event = cls(
        originator_id=UUID(envelope.subject),
        originator_version=envelope.sequence,
        timestamp=envelope.time,
        **fields,
    )
    return event


_ENVELOPE_FIELDS: tuple[str, ...] = ()


def encode_envelope(env: Envelope, codec: AvroCodec | None = None) -> bytes:
    # A shallow dict: every field is a scalar, and dataclasses.asdict deep-copies each one
    # (it was 40 % of the command processor's time).
    global _ENVELOPE_FIELDS
    if not _ENVELOPE_FIELDS:
        _ENVELOPE_FIELDS = tuple(f.name for f in dataclasses.fields(Envelope))
    record = {name: getattr(env, name) for name in _ENVELOPE_FIELDS}
    record["id"] = str(env.id)
    return (codec or active_types().codec).encode("datrix.Envelope", record)


def decode_envelope(data: bytes, codec: AvroCodec | None = None) -> Envelope:
    name, record = (codec or active_types().codec).decode(data)
    if name != "datrix.Envelope":
        raise CodecError(f"expected an envelope, got {name}")
    record["id"] = record["id"] if isinstance(record["id"], UUID) else UUID(record["id"])
    time = record["time"]
    if isinstance(time, datetime) and time.tzinfo is None:
        record["time"] = time.replace(tzinfo=UTC)
    return Envelope(**record)


def command_envelope(
    command: Command,
    *,
    subject: UUID,
    tenant: str,
    actor: str,
    time: datetime,
    command_id: UUID | None = None,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    table: TypeTable | None = None,
) -> Envelope:
    """Wrap a command for the command log. Ids are random here, at the edge, never inside."""
    cid = command_id or uuid.uuid4()
    table = table or active_types()
    return Envelope(
        id=cid,
        type=table.names[type(command)],
        subject=str(subject),
        time=time,
        tenant=tenant,
        actor=actor,
        correlation_id=correlation_id or str(cid),
        causation_id=causation_id,
        data=encode_payload(command, table=table),
    )


def event_envelope(event: Event, cause: Envelope, table: TypeTable | None = None) -> Envelope:
    """Wrap an event decided from the command in ``cause``; the id is derived, not random.
    An event of another stream than the command's subject (its outcome) is keyed by that
    subject, so it follows the subject's events on the same partition."""
    table = table or active_types()
    subject = str(event.originator_id)
    return Envelope(
        id=uuid.uuid5(cause.id, f"{event.originator_id}/{event.originator_version}"),
        type=table.names[type(event)],
        subject=subject,
        time=event.timestamp,
        tenant=cause.tenant,
        actor=cause.actor,
        correlation_id=cause.correlation_id,
        causation_id=str(cause.id),
        sequence=event.originator_version,
        data=encode_payload(event, table=table),
        partition_key=cause.subject if cause.subject and cause.subject != subject else None,
    )


# The CloudEvents extension attributes of an envelope: attribute name -> Envelope field.
# Extension names are lower-case letters and digits (CloudEvents 1.0, "Attribute Naming
# Convention"); on Kafka each travels as ``ce_<name>`` like the core attributes.
EXTENSIONS: dict[str, str] = {
    "tenant": "tenant",
    "actor": "actor",
    "correlationid": "correlation_id",
    "causationid": "causation_id",
    "sequence": "sequence",
    "partitionkey": "partition_key",
}
# ``urn:datrix:avro:<Avro full name>:<CRC-64-AVRO fingerprint, 16 hex digits>``
DATASCHEMA_PREFIX = "urn:datrix:avro:"


def payload_fingerprint(data: bytes) -> str | None:
    """The writer schema's CRC-64-AVRO fingerprint of an Avro single-object encoded value,
    as 16 hex digits (the number Avro's ``parsingFingerprint64`` gives; the value holds it
    little-endian after ``C3 01``); None for bytes that are not such a value."""
    if len(data) < 10 or data[:2] != MAGIC:
        return None
    return f"{int.from_bytes(data[2:10], 'little'):016x}"


def dataschema(env: Envelope) -> str | None:
    """The CloudEvents ``dataschema`` of an envelope: its payload's schema, by Avro full
    name (``ce_type``) and the fingerprint of the schema it was written with (an event
    written by an older release names that release's schema)."""
    fp = payload_fingerprint(env.data)
    return None if fp is None else f"{DATASCHEMA_PREFIX}{env.type}:{fp}"


def cloudevents_headers(env: Envelope) -> list[tuple[str, bytes]]:
    """Kafka headers per the CloudEvents Kafka protocol binding (binary content mode):
    every attribute and extension as a ``ce_``-prefixed header, the data's media type as
    ``content-type``. Optional attributes that are unset are left out."""
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", str(env.id).encode()),
        ("ce_type", env.type.encode()),
        ("ce_source", env.source.encode()),
        ("ce_subject", env.subject.encode()),
        ("ce_time", env.time.isoformat().encode()),
        ("content-type", CONTENT_TYPE.encode()),
    ]
    schema = dataschema(env)
    if schema is not None:
        headers.append(("ce_dataschema", schema.encode()))
    for name, field_name in EXTENSIONS.items():
        value = getattr(env, field_name)
        if value is None or value == "":
            continue
        if name == "sequence":
            value = sequence_text(value)
        headers.append((f"ce_{name}", str(value).encode()))
    return headers


def sequence_text(version: int) -> str:
    """An event's version as the CloudEvents ``sequence`` extension wants it: a string whose
    plain string order is the events' order (zero-padded to 20 digits). The order is that
    of the events of one aggregate (``ce_subject``)."""
    return f"{version:020d}"
