"""Avro single-object encoding on fastavro, with no registry server.

Layout of one encoded value (Avro spec, "Single object encoding"):
``C3 01`` + the writer schema's CRC-64-AVRO fingerprint (8 bytes, little-endian) + the
Avro binary body. The reader looks the fingerprint up among every schema it knows —
the current ones in ``schemas/avro/`` and every released one in ``schemas/avro/released/``
— and resolves the writer schema to the current reader schema of the same name, so
events written by older releases stay readable.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

MAGIC = b"\xc3\x01"
SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas" / "avro"


class CodecError(ValueError):
    """Bytes that are not a Datrix Avro value, or a value that does not fit its schema."""


def schema_fingerprint(schema: Any) -> bytes:
    hex_digest = fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO")
    return int(hex_digest, 16).to_bytes(8, "little")


@dataclass
class SchemaSet:
    current: dict[str, Any] = field(default_factory=dict)  # full name -> parsed schema
    by_fingerprint: dict[bytes, Any] = field(default_factory=dict)  # every known writer
    current_fingerprint: dict[str, bytes] = field(default_factory=dict)

    def add(self, raw: dict[str, Any], *, current: bool) -> None:
        parsed = parse_schema(raw, _write_hint=False, named_schemas={})
        name = f"{raw['namespace']}.{raw['name']}" if "namespace" in raw else raw["name"]
        fp = schema_fingerprint(parsed)
        self.by_fingerprint[fp] = parsed
        if current:
            self.current[name] = parsed
            self.current_fingerprint[name] = fp


def load_schema_set(root: Path = SCHEMA_DIR, *extra: Path) -> SchemaSet:
    """The schemas of ``root`` and of each ``extra`` folder (an extension's own schemas,
    laid out like ``schemas/avro/``: current ones at the top, ``released/N/`` below)."""
    schemas = SchemaSet()
    for folder in (root, *extra):
        for path in sorted(folder.glob("released/*/*.avsc")):
            schemas.add(json.loads(path.read_text()), current=False)
        for path in sorted(folder.glob("*.avsc")):
            schemas.add(json.loads(path.read_text()), current=True)
    return schemas


class AvroCodec:
    def __init__(self, schemas: SchemaSet) -> None:
        self.schemas = schemas

    def encode(self, name: str, record: dict[str, Any]) -> bytes:
        try:
            schema = self.schemas.current[name]
        except KeyError:
            raise CodecError(f"no Avro schema named {name}") from None
        out = io.BytesIO()
        out.write(MAGIC)
        out.write(self.schemas.current_fingerprint[name])
        try:
            schemaless_writer(out, schema, record)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise CodecError(f"value does not fit schema {name}: {exc}") from exc
        return out.getvalue()

    def decode(self, data: bytes) -> tuple[str, dict[str, Any]]:
        """Return (full schema name, record resolved to the current reader schema)."""
        if len(data) < 10 or data[:2] != MAGIC:
            raise CodecError("not an Avro single-object encoded value (bad magic)")
        writer = self.schemas.by_fingerprint.get(data[2:10])
        if writer is None:
            raise CodecError(f"unknown writer schema fingerprint {data[2:10].hex()}")
        name = writer["name"]
        reader = self.schemas.current.get(name, writer)
        try:
            record = schemaless_reader(io.BytesIO(data[10:]), writer, reader)
        except Exception as exc:  # fastavro raises several types on corrupt bodies
            raise CodecError(f"cannot decode {name}: {exc}") from exc
        if not isinstance(record, dict):
            raise CodecError(f"{name} did not decode to a record")
        return name, record


@cache
def default_codec() -> AvroCodec:
    return AvroCodec(load_schema_set())
