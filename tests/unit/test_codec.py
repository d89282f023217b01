from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema
from fastavro.utils import generate_many

from datrix.aggregates import dataset, scan
from datrix.streams.codec import (
    MAGIC,
    SCHEMA_DIR,
    AvroCodec,
    CodecError,
    default_codec,
    load_schema_set,
)
from datrix.streams.messages import (
    NAMES,
    TYPES,
    command_envelope,
    decode_command,
    decode_envelope,
    decode_event,
    encode_envelope,
    event_envelope,
)

CURRENT = sorted(SCHEMA_DIR.glob("*.avsc"))
RELEASED = sorted(SCHEMA_DIR.glob("released/*/*.avsc"))
T0 = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)


def _name(raw: dict[str, Any]) -> str:
    return f"{raw['namespace']}.{raw['name']}"


@pytest.mark.parametrize("path", CURRENT, ids=lambda p: p.stem)
def test_every_schema_round_trips(path: Path) -> None:
    codec = default_codec()
    raw = json.loads(path.read_text())
    parsed = parse_schema(raw, named_schemas={})
    for record in generate_many(parsed, 5):
        encoded = codec.encode(_name(raw), record)
        assert encoded[:2] == MAGIC
        name, decoded = codec.decode(encoded)
        assert name == _name(raw)
        assert codec.decode(codec.encode(name, decoded))[1] == decoded


def test_every_domain_type_has_a_schema_and_every_schema_a_type() -> None:
    names = {_name(json.loads(p.read_text())) for p in CURRENT}
    # the envelope and job progress are messages, not domain commands or events
    assert set(TYPES) | {"datrix.Envelope", "datrix.job.JobProgress"} == names


@pytest.mark.parametrize("path", RELEASED, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_current_readers_read_every_released_writer(path: Path) -> None:
    """Fails when a schema change would break readers of events already in the log:
    a removed schema, a new field without a default, an incompatible type change."""
    codec = default_codec()
    raw = json.loads(path.read_text())
    name = _name(raw)
    assert name in codec.schemas.current, f"{name} was released and must keep a reader"
    writer = AvroCodec(load_schema_set_only(raw))
    for record in generate_many(parse_schema(raw, named_schemas={}), 5):
        old_bytes = writer.encode(name, record)
        decoded_name, _ = codec.decode(old_bytes)
        assert decoded_name == name


def load_schema_set_only(raw: dict[str, Any]) -> Any:
    from datrix.streams.codec import SchemaSet

    s = SchemaSet()
    s.add(raw, current=True)
    return s


def test_an_incompatible_change_is_caught(tmp_path: Path) -> None:
    """The check itself works: a required field added without default breaks old events."""
    released = json.loads((SCHEMA_DIR / "datrix.dataset.RegisterDataset.avsc").read_text())
    changed = json.loads(json.dumps(released))
    changed["fields"].append({"name": "owner", "type": "string"})
    (tmp_path / "released" / "1").mkdir(parents=True)
    (tmp_path / "released" / "1" / "r.avsc").write_text(json.dumps(released))
    (tmp_path / "c.avsc").write_text(json.dumps(changed))
    codec = AvroCodec(load_schema_set(tmp_path))
    old = AvroCodec(load_schema_set_only(released)).encode(
        "datrix.dataset.RegisterDataset",
        {"dataset_id": str(uuid.uuid4()), "name": "n", "source_type": "file", "description": None},
    )
    with pytest.raises(CodecError):
        codec.decode(old)


def test_garbage_is_refused_with_a_codec_error() -> None:
    codec = default_codec()
    with pytest.raises(CodecError, match="bad magic"):
        codec.decode(b"not avro at all")
    with pytest.raises(CodecError, match="unknown writer"):
        codec.decode(MAGIC + b"\x00" * 8 + b"\x02")
    with pytest.raises(CodecError, match="does not fit"):
        codec.encode("datrix.dataset.RegisterDataset", {"name": 3})


def test_fingerprint_matches_the_avro_spec_vector() -> None:
    from datrix.streams.codec import schema_fingerprint

    # CRC-64-AVRO of the canonical form "int" (Avro reference test vector), little-endian
    assert schema_fingerprint("int") == bytes.fromhex("8f5c393f1ad57572")[::-1]


def test_commands_and_events_round_trip_through_envelopes() -> None:
    ds_id = uuid.uuid4()
    cmd = scan.CompleteScan(
        scan_id=uuid.uuid4(),
        job_id=uuid.uuid4(),
        engine="polars",
        rows=3,
        columns=2,
        score=scan.ScoreCard(90.5, 1, 2, 3, 4, 5),
        issues=(
            scan.IssueSummary(
                "I001", "null_values", "a", "completeness", "warning", "d", 1, 33.333, 12.5, True
            ),
        ),
        column_profiles=(scan.ColumnSummary("a", "integer", 1, 33.333, 2, "{}"),),
        report_uri="u",
        report_sha256="h",
        duration_ms=7,
    )
    env = command_envelope(cmd, subject=ds_id, tenant="t", actor="me", time=T0)
    back = decode_envelope(encode_envelope(env))
    assert back == env
    assert decode_command(back.data) == cmd

    event = dataset.DatasetRegistered(
        originator_id=ds_id,
        originator_version=1,
        timestamp=T0,
        tenant="t",
        name="n",
        source_type="file",
        description=None,
    )
    ev_env = event_envelope(event, env)
    assert decode_event(decode_envelope(encode_envelope(ev_env))) == event
    assert ev_env.causation_id == str(env.id)
    assert ev_env.id == event_envelope(event, env).id  # derived, not random


def test_names_are_unique_and_namespaced() -> None:
    assert len(NAMES) == len(TYPES)
    assert all(n.startswith("datrix.") for n in TYPES)


def test_version_events_written_before_read_options_decode_with_none() -> None:
    """The optional field added for issue 14 (how a CSV was read) keeps old events readable."""
    released = json.loads(
        (SCHEMA_DIR / "released" / "1" / "datrix.dataset.DatasetVersionAdded.avsc").read_text()
    )
    old = {
        "version": 1,
        "object_uri": "u",
        "object_sha256": "o",
        "source_uri": "s",
        "source_sha256": "h",
        "format": "csv",
        "rows": 2,
        "columns": 1,
        "size_bytes": 9,
        "schema_json": "{}",
    }
    data = AvroCodec(load_schema_set_only(released)).encode(
        "datrix.dataset.DatasetVersionAdded", old
    )
    name, record = default_codec().decode(data)
    assert name == "datrix.dataset.DatasetVersionAdded"
    assert record == {**old, "read_options_json": None, "cause": "upload"}  # pre-fix: uploads
