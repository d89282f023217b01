"""Duplicates across windows, against the real broker: a plain producer writes keyed JSON
records to a one-partition topic with record timestamps it chooses; the stream is registered
with ``--key id``. A redelivery (the same key and value: a JSON record's source position is
its value) whose copies fall in two windows is counted once, as a duplicate of the later
window (the partition remembers its recent identities across windows); the same key with a
new value is a new record."""

from __future__ import annotations

import json
import time

import pytest

from tests.integration.conftest import KafkaCli
from tests.integration.test_stream_monitor import (
    WINDOW_MS,
    DataTopic,
    add_stream,
    owner,
    wait_for,
    windows_of,
)

pytestmark = pytest.mark.integration


def test_a_redelivery_in_the_next_window_is_one_duplicate(kafka_cli: KafkaCli) -> None:
    tenant = "monitor-dup"
    kafka_cli.extra = {**(kafka_cli.extra or {}), "DATRIX_TENANT": tenant}
    kafka_cli.start_worker("processor,relay,projector,monitor")
    topic = DataTopic(kafka_cli, partitions=1)
    base = (int(time.time() * 1000) - 120_000) // WINDOW_MS * WINDOW_MS  # two minutes ago

    def record(i: int, v: int) -> bytes:
        return json.dumps({"id": i, "v": v}).encode()

    for i in range(5):  # window 0: ids 0-4, and id 1 delivered twice in it
        topic.send(0, base + i, record(i, i), key=str(i).encode())
    topic.send(0, base + 10, record(1, 1), key=b"1")
    # window 1: ids 3 and 4 redelivered (their copies are in window 0), id 3 with a new
    # value (a new record), ids 5-6 new
    topic.send(0, base + WINDOW_MS, record(3, 3), key=b"3")
    topic.send(0, base + WINDOW_MS + 1, record(4, 4), key=b"4")
    topic.send(0, base + WINDOW_MS + 2, record(3, 33), key=b"3")
    for i in (5, 6):
        topic.send(0, base + WINDOW_MS + i, record(i, i), key=str(i).encode())
    topic.flush()

    stream_id = add_stream(
        kafka_cli, tenant, topic.name, "keyed", "--format", "json", "--key", "id",
        "--window", "2s", "--grace", "1s",
    )  # fmt: skip
    store = owner(kafka_cli)
    found = wait_for(
        lambda: windows_of(store, tenant, stream_id), lambda w: len(w) >= 2, "two windows"
    )
    first, second = (found[(0, base + k * WINDOW_MS)]["metrics"] for k in range(2))
    assert (first["count"], first["duplicates"]) == (5, 1)
    assert (second["count"], second["duplicates"]) == (3, 2)
    shown = kafka_cli("streams", "windows", "keyed", "--format", "json")
    assert shown.code == 0, shown.stderr
    assert [(w["count"], w["duplicates"]) for w in shown.json()] == [(5, 1), (3, 2)]
