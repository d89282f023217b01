"""docs/asyncapi.yaml (issue 13, item 6) is what scripts/asyncapi.py generates from
schemas/avro/ (a schema changed without regenerating fails here, so CI catches the drift),
is a valid AsyncAPI 3.0.0 document (the official JSON Schema of the spec, vendored from
github.com/asyncapi/spec-json-schemas ``schemas/3.0.0-without-$id.json``, Apache-2.0, into
tests/schemas/), every ``$ref`` in it resolves, and its JSON Schema of each structured
command accepts what ``streams/structured.py`` accepts."""

from __future__ import annotations

import importlib.util
import json
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema_rs
import pytest
import yaml
from fastavro.utils import generate_many

from datrix.runtime.worker.processor import TRUSTED_ONLY
from datrix.streams.codec import SCHEMA_DIR, default_codec
from datrix.streams.structured import json_to_avro

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "asyncapi.yaml"
SPEC = ROOT / "tests" / "schemas" / "asyncapi-3.0.0.json"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "datrix_asyncapi", ROOT / "scripts" / "asyncapi.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SCRIPT = _script()


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    loaded = yaml.safe_load(DOC.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_the_checked_in_document_is_the_generated_one() -> None:
    assert DOC.read_text() == SCRIPT.render(), (
        "docs/asyncapi.yaml is stale: run scripts/asyncapi.py"
    )
    assert SCRIPT.main(["--check"]) == 0


def test_it_is_a_valid_asyncapi_3_document(doc: dict[str, Any]) -> None:
    validator = jsonschema_rs.Draft7Validator(json.loads(SPEC.read_text()))
    errors = [f"{list(e.instance_path)}: {e.message[:200]}" for e in validator.iter_errors(doc)]
    assert errors == []
    assert doc["asyncapi"] == "3.0.0"
    broken = {
        **doc,
        "operations": {"x": {**doc["operations"]["consumeEvents"], "action": "publish"}},
    }
    assert not validator.is_valid(broken)  # the validator does look inside


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [node["$ref"]] if "$ref" in node else [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_every_ref_resolves(doc: dict[str, Any]) -> None:
    refs = _refs(doc)
    assert len(refs) > 100
    for ref in refs:
        assert ref.startswith("#/"), ref
        node: Any = doc
        for part in ref[2:].split("/"):
            assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
            node = node[part]


def test_every_command_and_event_schema_is_in_it_as_written(doc: dict[str, Any]) -> None:
    schemas, messages = doc["components"]["schemas"], doc["components"]["messages"]
    channels = doc["channels"]
    for path in sorted(SCHEMA_DIR.glob("*.avsc")):
        raw = json.loads(path.read_text())
        name = f"{raw['namespace']}.{raw['name']}"
        if name == "datrix.Envelope" or name == "datrix.job.JobProgress":
            continue  # the storage envelope; the progress topic's records
        assert schemas[name] == {"schemaFormat": SCRIPT.AVRO_FORMAT, "schema": raw}
        assert messages[name]["payload"] == {"$ref": f"#/components/schemas/{name}"}
        if "Datrix command" in raw.get("doc", ""):
            assert f"{name}.structured" in channels["commands"]["messages"]
            # the workers' own commands are refused from an intake topic: not offered there
            assert (name in channels["intake"]["messages"]) == (name not in TRUSTED_ONLY)
            assert messages[f"{name}.structured"]["contentType"] == "application/cloudevents+json"
        else:
            assert name in channels["events"]["messages"]
    assert channels["intake"]["address"] == "datrix.intake.{producer}"
    assert {o["action"] for o in doc["operations"].values()} == {"send", "receive"}


def _validator(doc: dict[str, Any], name: str) -> Any:
    """A validator of one component schema, its $refs resolved in the document."""
    return jsonschema_rs.Draft7Validator(
        {"components": doc["components"], "$ref": f"#/components/schemas/{name}"}
    )


def _as_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_json(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value


def test_the_json_schema_of_structured_data_accepts_what_datrix_accepts(
    doc: dict[str, Any],
) -> None:
    codec = default_codec()
    commands = [
        k.removesuffix(".structured")
        for k in doc["components"]["messages"]
        if k.endswith(".structured")
    ]
    assert "datrix.dataset.RegisterDataset" in commands
    for name in commands:
        schema = codec.schemas.current[name]
        data_schema = _validator(doc, f"{name}.json")
        for datum in generate_many(schema, 3):
            as_json = json.loads(json.dumps(_as_json(datum)))
            json_to_avro(schema, as_json)  # datrix accepts it
            assert data_schema.is_valid(as_json), (name, as_json)
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "type": "datrix.dataset.RegisterDataset",
        "source": "urn:example",
        "subject": str(uuid.uuid4()),
        "time": "2026-01-01T12:00:00Z",
        "tenant": "acme",
        "actor": "ann",
        "correlationid": "c-1",
        "data": {"dataset_id": str(uuid.uuid4()), "name": "sales"},
    }
    whole = _validator(doc, "datrix.dataset.RegisterDataset.structured")
    assert whole.is_valid(event)
    assert not whole.is_valid({**event, "data": {"name": "sales"}})  # dataset_id missing
    assert not whole.is_valid({**event, "data": {**event["data"], "nme": "x"}})
    assert not whole.is_valid({k: v for k, v in event.items() if k != "tenant"})
