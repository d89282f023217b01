"""FileStream source -> topic -> monitor -> windows -> read model, all real: JSON lines in a
file, tailed by the FileStream connector of ``deploy/local/up``'s Kafka Connect worker
(``datrix connectors add-file``), watched as a ``json`` stream (``datrix streams add``):
the windows count every line and its nulls; lines appended later, one of them broken,
arrive in later windows, the broken one dead-lettered and counted as poisoned."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from datrix.aggregates.stream import stream_id_for
from datrix.streams.dead_letters import read_dead_letters
from datrix.streams.settings import load_settings
from tests.integration.conftest import KafkaCli
from tests.integration.test_connect import delete_topics, remove
from tests.integration.test_stream_monitor import owner, wait_for, windows_of

pytestmark = pytest.mark.integration


def test_a_file_source_is_measured_window_by_window(kafka_cli: KafkaCli, tmp_path: Path) -> None:
    tenant = "monitor-file"
    kafka_cli.extra = {**(kafka_cli.extra or {}), "DATRIX_TENANT": tenant}
    services = kafka_cli.extra
    kafka_cli.start_worker("processor,relay,projector,monitor")
    topic = f"monitor-file-{uuid.uuid4().hex[:8]}"
    source = tmp_path / "readings.jsonl"
    rows = [{"id": i, "score": None if i in (1, 4) else i / 2, "site": "a"} for i in range(6)]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    name = f"file-{topic}"
    try:
        added = kafka_cli("connectors", "add-file", str(source), "--topic", topic)
        assert added.code == 0, added.stderr
        registered = kafka_cli(
            "streams", "add", topic, "--name", "readings", "--format", "json",
            "--window", "2s", "--grace", "1s",
        )  # fmt: skip
        assert registered.code == 0, registered.stderr
        stream_id = stream_id_for(tenant, "readings")
        store = owner(kafka_cli)

        def windows() -> list[dict[str, Any]]:
            found = windows_of(store, tenant, stream_id)
            return [found[k]["metrics"] for k in sorted(found)]

        def nulls(metrics: list[dict[str, Any]], field: str) -> int:
            return sum(f["nulls"] for m in metrics for f in m["fields"] if f["name"] == field)

        first = wait_for(windows, lambda w: sum(m["count"] for m in w) >= 6, "6 lines")
        assert sum(m["count"] for m in first) == 6 and nulls(first, "score") == 2

        with source.open("a") as f:
            f.write(json.dumps({"id": 6, "score": 3.5, "site": "b"}) + "\n")
            f.write('{"id": 7, "score": \n')  # broken
            f.write(json.dumps({"id": 8, "score": None, "site": "b"}) + "\n")
        later = wait_for(
            windows,
            lambda w: sum(m["count"] for m in w) >= 8 and sum(m["poisoned"] for m in w) >= 1,
            "the appended lines",
        )
        assert sum(m["count"] for m in later) == 8 and sum(m["poisoned"] for m in later) == 1
        assert nulls(later, "score") == 3
        letters = read_dead_letters(load_settings(kafka_cli.env()), f"{topic}.dlq")
        assert [(d.value, d.consumer) for d in letters] == [(b'{"id": 7, "score": ', "monitor")]
    finally:
        remove(services, name)
        delete_topics(services, topic, f"{topic}.dlq")
