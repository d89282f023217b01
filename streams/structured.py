"""CloudEvents structured JSON mode (``content-type: application/cloudevents+json``).

The second way an external system may write a command (docs/events.md): the Kafka record's
value is one CloudEvents JSON object (CloudEvents 1.0 JSON event format) whose attributes
are the binary mode's headers without the ``ce_`` prefix and whose ``data`` is the
command as a JSON object. ``data`` is checked against the Avro schema named by ``type``
(the same schema the binary mode's Avro payload is written with) and converted to it
(``json_to_avro``), then encoded as the Avro single-object value a binary-mode record
carries, so the envelope a structured record gives is the envelope the same command in
binary mode gives: everything after ``streams/kafka.py`` ``from_message`` is unchanged.

Nothing is defaulted that the schema does not default: a missing required attribute or
field, an unknown field, a value of the wrong type, a ``data`` that is not an object, or
``data_base64`` is a ``StructuredError`` naming what and where (``data.version: expected
long or null, got "3"``).
"""

from __future__ import annotations

import base64
import json
import math
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from datrix.streams.codec import AvroCodec, CodecError
from datrix.streams.messages import DATASCHEMA_PREFIX, Envelope

STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
JSON_DATA = "application/json"
INT_RANGE = (-(2**31), 2**31 - 1)
LONG_RANGE = (-(2**63), 2**63 - 1)


class StructuredError(ValueError):
    """A structured-mode record that is not a valid Datrix command or event."""


def is_structured(content_type: str | None) -> bool:
    """Whether a record's ``content-type`` header names the structured JSON mode (media
    type parameters such as ``; charset=utf-8`` are allowed)."""
    if not content_type:
        return False
    return content_type.split(";", 1)[0].strip().lower() == STRUCTURED_CONTENT_TYPE


def parse_event(value: bytes | None) -> dict[str, Any]:
    """The JSON object of a structured record's value."""
    if not value:
        raise StructuredError("structured CloudEvent: the value is empty")
    try:
        document = json.loads(value.decode("utf-8"))
    except UnicodeDecodeError:
        raise StructuredError("structured CloudEvent: the value is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise StructuredError(f"structured CloudEvent: the value is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise StructuredError("structured CloudEvent: the value is not a JSON object")
    return document


def attribute_text(document: Mapping[str, Any], name: str) -> str | None:
    """One attribute of a parsed structured event as the text its binary-mode header
    would hold (a JSON number or boolean extension as its JSON text); None when absent."""
    value = document.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | str):
        return str(value)
    return None


def attributes(document: Mapping[str, Any]) -> dict[str, str]:
    """The structured event's context attributes as ``ce_`` header texts (what
    ``streams/kafka.py`` checks for binary mode), ``data`` left out. An attribute that is
    an object, an array or a float is refused (CloudEvents attribute types are strings,
    integers and booleans)."""
    out: dict[str, str] = {}
    for name, value in document.items():
        if name in ("data", "data_base64"):
            continue
        text = attribute_text(document, name)
        if text is None:
            if value is None:
                continue
            raise StructuredError(
                f"structured CloudEvent: attribute {name} must be a string, an integer or "
                f"a boolean, got {_json_kind(value)}"
            )
        out[f"ce_{name}"] = text
    return out


def to_envelope(
    document: Mapping[str, Any],
    codec: AvroCodec,
    *,
    id: uuid.UUID,
    time: datetime,
    sequence: int | None,
) -> Envelope:
    """The envelope of a structured event whose attributes ``streams/kafka.py`` has
    checked (``id``, ``time`` and ``sequence`` already parsed there): ``data`` converted
    to the Avro schema named by ``type`` and encoded as the binary mode's value."""
    if "data_base64" in document:
        raise StructuredError(
            "structured CloudEvent: data_base64 is not accepted; give data as a JSON object"
        )
    content = document.get("datacontenttype")
    if content is not None and str(content).split(";", 1)[0].strip().lower() != JSON_DATA:
        raise StructuredError(
            f"structured CloudEvent: datacontenttype {content!r} is not {JSON_DATA}"
        )
    if "data" not in document:
        raise StructuredError("structured CloudEvent: no data")
    data = document["data"]
    if not isinstance(data, dict):
        raise StructuredError(
            f"structured CloudEvent: data must be a JSON object, got {_json_kind(data)}"
        )
    kind = str(document["type"])
    schema = codec.schemas.current.get(kind)
    if schema is None:
        raise StructuredError(f"structured CloudEvent: no Avro schema named {kind!r} (type)")
    schema_ref = document.get("dataschema")
    if schema_ref is not None:
        _check_dataschema(str(schema_ref), kind, codec)
    record = json_to_avro(schema, data, "data")
    try:
        payload = codec.encode(kind, record)
    except CodecError as exc:  # json_to_avro checked every field; kept as a last guard
        raise StructuredError(f"structured CloudEvent: {exc}") from None
    return Envelope(
        id=id,
        type=kind,
        subject=str(document["subject"]),
        time=time,
        tenant=str(document["tenant"]),
        actor=str(document["actor"]),
        correlation_id=str(document["correlationid"]),
        causation_id=attribute_text(document, "causationid") or None,
        sequence=sequence,
        data=payload,
        source=str(document["source"]),
        partition_key=attribute_text(document, "partitionkey") or None,
    )


def _check_dataschema(ref: str, kind: str, codec: AvroCodec) -> None:
    """A structured event's ``dataschema``, when given, names its type and the
    fingerprint of a schema of that name the codec knows (current or released):
    ``urn:datrix:avro:<type>:<fingerprint>`` as in binary mode."""
    head = f"{DATASCHEMA_PREFIX}{kind}:"
    if not ref.startswith(head):
        raise StructuredError(f"structured CloudEvent: dataschema {ref!r} does not name {kind}")
    fp = ref[len(head) :]
    known = {
        f"{int.from_bytes(key, 'little'):016x}"
        for key, schema in codec.schemas.by_fingerprint.items()
        if schema.get("name") == kind
    }
    if fp not in known:
        raise StructuredError(
            f"structured CloudEvent: dataschema {ref!r}: no schema of {kind} has fingerprint {fp}"
        )


# --- JSON -> Avro ---------------------------------------------------------------------------

_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def json_to_avro(schema: Any, value: Any, path: str = "data") -> Any:
    """``value`` (parsed JSON) as the Python datum of Avro ``schema`` (a fastavro-parsed
    schema, as ``AvroCodec`` holds), checked strictly: the plain JSON a person writes
    (``"version": 3``, ``"description": null``) and Avro's own JSON encoding of unions
    (``"version": {"long": 3}``) are both accepted; a missing field takes the schema's
    default or is refused, an unknown field is refused, numbers are not read from strings.
    ``StructuredError`` names the field's path."""
    return _convert(schema, value, path, {})


def _convert(schema: Any, value: Any, path: str, named: dict[str, Any]) -> Any:
    if isinstance(schema, str):
        if schema in _PRIMITIVES:
            return _primitive(schema, value, path)
        if schema not in named:
            raise StructuredError(f"{path}: the schema refers to unknown type {schema}")
        return _convert(named[schema], value, path, named)
    if isinstance(schema, list):
        return _union(schema, value, path, named)
    kind = schema["type"]
    if kind in ("record", "error", "enum", "fixed") and "name" in schema:
        named.setdefault(schema["name"], schema)
    logical = schema.get("logicalType")
    if kind == "record" or kind == "error":
        return _record(schema, value, path, named)
    if kind == "enum":
        if not isinstance(value, str) or value not in schema["symbols"]:
            raise StructuredError(
                f"{path}: expected one of {', '.join(schema['symbols'])}, got {_show(value)}"
            )
        return value
    if kind == "array":
        if not isinstance(value, list):
            raise StructuredError(f"{path}: expected an array, got {_json_kind(value)}")
        return [_convert(schema["items"], v, f"{path}[{i}]", named) for i, v in enumerate(value)]
    if kind == "map":
        if not isinstance(value, dict):
            raise StructuredError(f"{path}: expected an object (map), got {_json_kind(value)}")
        return {k: _convert(schema["values"], v, f"{path}.{k}", named) for k, v in value.items()}
    if kind == "fixed":
        raw = _latin1(value, path)
        if len(raw) != schema["size"]:
            raise StructuredError(f"{path}: expected {schema['size']} bytes, got {len(raw)}")
        return raw
    if logical == "uuid" and kind == "string":
        if not isinstance(value, str):
            raise StructuredError(f"{path}: expected a UUID string, got {_json_kind(value)}")
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise StructuredError(f"{path}: {value!r} is not a UUID") from None
    if logical in ("timestamp-millis", "timestamp-micros") and kind == "long":
        return _timestamp(value, path, micros=logical == "timestamp-micros")
    return _convert(kind, value, path, named)


def _record(schema: Mapping[str, Any], value: Any, path: str, named: dict[str, Any]) -> Any:
    if not isinstance(value, dict):
        raise StructuredError(f"{path}: expected an object, got {_json_kind(value)}")
    fields = schema["fields"]
    unknown = sorted(set(value) - {f["name"] for f in fields})
    if unknown:
        where = f"{path}." if path else ""
        raise StructuredError(
            f"{where}{unknown[0]}: no such field in {schema['name']} "
            f"(fields: {', '.join(f['name'] for f in fields)})"
        )
    out: dict[str, Any] = {}
    for field in fields:
        name = field["name"]
        where = f"{path}.{name}"
        if name in value:
            out[name] = _convert(field["type"], value[name], where, named)
        elif "default" in field:
            out[name] = _default(field["type"], field["default"], where, named)
        else:
            raise StructuredError(f"{where}: required field missing ({_describe(field['type'])})")
    return out


def _default(schema: Any, default: Any, path: str, named: dict[str, Any]) -> Any:
    """A field's default, which Avro gives in the JSON of the union's first branch."""
    if isinstance(schema, list):
        return _convert(schema[0], default, path, named)
    return _convert(schema, default, path, named)


def _union(branches: list[Any], value: Any, path: str, named: dict[str, Any]) -> Any:
    if value is None:
        if "null" in branches:
            return None
        raise StructuredError(f"{path}: null is not allowed (expected {_describe(branches)})")
    # Avro's JSON encoding names the branch: {"long": 3}, {"datrix.x.Y": {...}}
    if isinstance(value, dict) and len(value) == 1:
        ((tag, inner),) = value.items()
        for branch in branches:
            if _branch_name(branch) == tag:
                return _convert(branch, inner, path, named)
    errors: list[str] = []
    for branch in branches:
        if branch == "null":
            continue
        try:
            return _convert(branch, value, path, named)
        except StructuredError as exc:
            errors.append(str(exc))
    if len(errors) == 1:
        raise StructuredError(errors[0])
    raise StructuredError(f"{path}: expected {_describe(branches)}, got {_show(value)}")


def _branch_name(branch: Any) -> str:
    if isinstance(branch, str):
        return branch
    if isinstance(branch, dict):
        return str(branch.get("name") or branch["type"])
    return ""


def _primitive(kind: str, value: Any, path: str) -> Any:
    if kind == "null":
        if value is not None:
            raise StructuredError(f"{path}: expected null, got {_show(value)}")
        return None
    if kind == "boolean":
        if not isinstance(value, bool):
            raise StructuredError(f"{path}: expected true or false, got {_show(value)}")
        return value
    if kind in ("int", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise StructuredError(f"{path}: expected {kind} (an integer), got {_show(value)}")
        low, high = INT_RANGE if kind == "int" else LONG_RANGE
        if not low <= value <= high:
            raise StructuredError(f"{path}: {value} is out of the range of an Avro {kind}")
        return value
    if kind in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise StructuredError(f"{path}: expected {kind} (a number), got {_show(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise StructuredError(f"{path}: {value} is not a finite number")
        return float(value)
    if kind == "string":
        if not isinstance(value, str):
            raise StructuredError(f"{path}: expected a string, got {_show(value)}")
        return value
    if kind == "bytes":
        return _latin1(value, path)
    raise StructuredError(f"{path}: unsupported Avro type {kind}")


def _latin1(value: Any, path: str) -> bytes:
    """Avro's JSON encoding of bytes: a string whose code points 0-255 are the bytes."""
    if not isinstance(value, str):
        raise StructuredError(f"{path}: expected bytes as a string, got {_json_kind(value)}")
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        raise StructuredError(
            f"{path}: bytes are a string of code points 0-255 (Avro JSON encoding)"
        ) from None


def _timestamp(value: Any, path: str, micros: bool) -> int:
    """A timestamp field: its number (milli- or microseconds since the epoch) or an RFC
    3339 text with a UTC offset."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            delta = parsed - datetime(1970, 1, 1, tzinfo=UTC)
            whole = delta.days * 86_400_000_000 + delta.seconds * 1_000_000
            total = whole + delta.microseconds
            return total if micros else total // 1000
    raise StructuredError(
        f"{path}: expected a timestamp (RFC 3339 with an offset, or a number), got {_show(value)}"
    )


def _describe(schema: Any) -> str:
    if isinstance(schema, list):
        return " or ".join(_describe(b) for b in schema)
    if isinstance(schema, str):
        return schema
    if schema.get("logicalType"):
        return str(schema["logicalType"])
    return str(schema.get("name") or schema["type"])


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, bytes) else base64.b64encode(value).decode()
    return text if len(text) <= 60 else text[:57] + "..."
