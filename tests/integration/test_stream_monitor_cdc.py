"""Debezium CDC through the stream monitor, all real: a PostgreSQL table (``datrix_sources``)
streamed by the Debezium connector of ``deploy/local/up``'s Kafka Connect worker (created
with ``datrix connectors add-postgres``), registered with ``datrix streams add --format
debezium``, measured by ``datrix worker``'s monitor role. The snapshot's rows make the first
window; an insert, an update and a delete the next ones (the delete's tombstone is no record of a
window, counted in its ``tombstones``); after
``ALTER TABLE ... ADD COLUMN`` an insert's window reports the schema change."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from datrix.aggregates.stream import stream_id_for
from tests.integration.conftest import KafkaCli
from tests.integration.test_connect import delete_topics, remove, source_table
from tests.integration.test_stream_monitor import owner, wait_for, windows_of

pytestmark = pytest.mark.integration
__all__ = ["source_table"]  # the fixture, from test_connect


def test_debezium_changes_make_windows_and_a_new_column_a_schema_change(
    kafka_cli: KafkaCli, source_table: tuple[str, str, psycopg.Connection[Any]]
) -> None:
    tenant = "monitor-cdc"
    kafka_cli.extra = {**(kafka_cli.extra or {}), "DATRIX_TENANT": tenant}
    services = kafka_cli.extra
    kafka_cli.start_worker("processor,relay,projector,monitor")
    schema, publication, db = source_table
    tag = schema.removeprefix("cdc_")
    prefix = f"monitor-cdc-{tag}"
    topic = f"{prefix}.{schema}.orders"
    name = f"pg-{prefix}"
    db.execute(f"INSERT INTO {schema}.orders VALUES (1, 10.50, 'first'), (2, 20.00, NULL)")
    try:
        added = kafka_cli(
            "connectors", "add-postgres", f"{schema}.orders", "--topic-prefix", prefix,
            "--existing-publication", "--publication", publication, "--slot", f"slot_{tag}",
            "--heartbeat-ms", "1000",
        )  # fmt: skip
        assert added.code == 0, added.stderr
        registered = kafka_cli(
            "streams", "add", topic, "--name", "orders-cdc", "--format", "debezium",
            "--key", "id", "--window", "2s", "--grace", "1s",
        )  # fmt: skip
        assert registered.code == 0, registered.stderr
        stream_id = stream_id_for(tenant, "orders-cdc")
        store = owner(kafka_cli)

        def windows() -> list[dict[str, Any]]:
            found = windows_of(store, tenant, stream_id)
            return [found[k]["metrics"] for k in sorted(found)]

        snapshot = wait_for(windows, lambda w: sum(m["count"] for m in w) >= 2, "the snapshot")
        assert sum(m["count"] for m in snapshot) == 2
        fields = {f["name"]: f for m in snapshot for f in m["fields"]}
        assert (fields["amount"]["type"], fields["note"]["nulls"]) == ("float", 1)

        db.execute(f"INSERT INTO {schema}.orders VALUES (3, 30.25, 'third')")
        db.execute(f"UPDATE {schema}.orders SET amount = 11.00, note = 'changed' WHERE id = 1")
        db.execute(f"DELETE FROM {schema}.orders WHERE id = 2")
        changed = wait_for(
            windows,
            lambda w: sum(m["count"] for m in w) >= 5 and sum(m["tombstones"] for m in w) >= 1,
            "3 changes and the delete's tombstone",
        )
        assert sum(m["count"] for m in changed) == 5  # the tombstone is no record
        assert sum(m["tombstones"] for m in changed) == 1  # but counted in its window
        assert all(m["poisoned"] == 0 and m["duplicates"] == 0 for m in changed)
        shown = kafka_cli("streams", "windows", "orders-cdc", "--format", "json")
        assert shown.code == 0, shown.stderr
        assert sum(w["tombstones"] for w in shown.json()) == 1, shown.stdout

        db.execute(f"ALTER TABLE {schema}.orders ADD COLUMN category text")
        db.execute(f"INSERT INTO {schema}.orders VALUES (4, 40.00, 'fourth', 'books')")
        final = wait_for(windows, lambda w: sum(m["count"] for m in w) >= 6, "the insert")
        last = final[-1]
        assert last["count"] == 1
        assert {(c["kind"], c["column"]) for c in last["schema_changes"]} >= {("added", "category")}
        assert last["max_lag_seconds"] is not None and last["max_lag_seconds"] < 120
    finally:
        remove(services, name)
        delete_topics(services, topic, f"__debezium-heartbeat.{prefix}", f"{topic}.dlq")
