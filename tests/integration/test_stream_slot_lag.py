"""A Debezium stream's replication slot lag, all real: the Debezium connector of
``deploy/local/up``'s Kafka Connect worker (``datrix connectors add-postgres``), a stream
registered with ``--max-slot-lag``, ``datrix worker``'s monitor. Each window reports the
slot's lag in bytes (found through Kafka Connect: the connector whose topic prefix starts
the stream's topic); with the connector paused while the database writes ~40 MB of WAL,
the lag the next window reports is past the threshold and the stream is degraded."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from datrix.aggregates.stream import stream_id_for
from datrix.connectors.client import ConnectClient
from datrix.projections.read_models import streams as stream_views
from tests.integration.conftest import KafkaCli
from tests.integration.test_connect import delete_topics, remove, source_table
from tests.integration.test_stream_monitor import owner, wait_for, windows_of

pytestmark = pytest.mark.integration
__all__ = ["source_table"]  # the fixture, from test_connect

LIMIT = 24_000_000  # bytes: --max-slot-lag
FILLER_ROWS = 40_000  # of ~1 KiB each: ~40 MB of WAL, in a table the connector does not read


def slot_lag(db: psycopg.Connection[Any], slot: str) -> int:
    row = db.execute(
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint "
        "FROM pg_replication_slots WHERE slot_name = %s",
        (slot,),
    ).fetchone()
    assert row is not None, f"no slot {slot}"
    return int(row[0])


def test_slot_lag_is_measured_and_a_paused_connector_breaks_the_threshold(
    kafka_cli: KafkaCli, source_table: tuple[str, str, psycopg.Connection[Any]]
) -> None:
    tenant = "monitor-slot"
    kafka_cli.extra = {**(kafka_cli.extra or {}), "DATRIX_TENANT": tenant}
    services = kafka_cli.extra
    kafka_cli.start_worker("processor,relay,projector,monitor")
    schema, publication, db = source_table
    tag = schema.removeprefix("cdc_")
    prefix, slot = f"slot-lag-{tag}", f"slot_{tag}"
    topic = f"{prefix}.{schema}.orders"
    name = f"pg-{prefix}"
    db.execute(f"INSERT INTO {schema}.orders VALUES (1, 10.50, 'first')")
    try:
        added = kafka_cli(
            "connectors", "add-postgres", f"{schema}.orders", "--topic-prefix", prefix,
            "--existing-publication", "--publication", publication, "--slot", slot,
            "--heartbeat-ms", "1000",
        )  # fmt: skip
        assert added.code == 0, added.stderr
        registered = kafka_cli(
            "streams", "add", topic, "--name", "orders-slot", "--format", "debezium",
            "--key", "id", "--window", "2s", "--grace", "1s", "--max-slot-lag", str(LIMIT),
        )  # fmt: skip
        assert registered.code == 0, registered.stderr
        stream_id = stream_id_for(tenant, "orders-slot")
        store = owner(kafka_cli)

        def windows() -> list[dict[str, Any]]:
            found = windows_of(store, tenant, stream_id)
            return [found[k]["metrics"] for k in sorted(found)]

        first = wait_for(windows, lambda w: len(w) >= 1, "the snapshot's window")
        assert isinstance(first[0]["slot_lag_bytes"], int), first[0]
        assert first[0]["slot_lag_bytes"] >= 0

        paused = kafka_cli("connectors", "pause", name)
        assert paused.code == 0, paused.stderr
        with ConnectClient(services["DATRIX_CONNECT_URL"]) as connect:
            wait_for(lambda: connect.status(name).state, lambda s: s == "PAUSED", "paused")
        before = slot_lag(db, slot)
        db.execute(f"CREATE TABLE {schema}.filler (t text)")  # not in the publication
        db.execute(
            f"INSERT INTO {schema}.filler SELECT repeat(md5(g::text), 32) "
            f"FROM generate_series(1, {FILLER_ROWS}) g"
        )
        db.execute(f"INSERT INTO {schema}.orders VALUES (2, 20.00, 'while paused')")
        # the slot holds the WAL written while its connector is paused
        wait_for(lambda: slot_lag(db, slot), lambda lag: lag > before + LIMIT, "the lag")
        resumed = kafka_cli("connectors", "resume", name)
        assert resumed.code == 0, resumed.stderr

        final = wait_for(windows, lambda w: sum(m["count"] for m in w) >= 2, "the insert")
        lagging = final[-1]
        assert lagging["count"] == 1
        assert lagging["slot_lag_bytes"] > LIMIT > first[0]["slot_lag_bytes"], (first, final)
        alerts = wait_for(
            lambda: stream_views.alerts(store, tenant, str(stream_id)),
            lambda found: any(a["kind"] == "degraded" for a in found),
            "the degraded alert",
        )
        breaches = [b for a in alerts for b in a["breaches"] if b["metric"] == "slot_lag_bytes"]
        assert breaches and breaches[0]["limit"] == LIMIT and breaches[0]["value"] > LIMIT
        shown = kafka_cli("streams", "windows", "orders-slot", "--format", "json")
        assert shown.code == 0, shown.stderr
        assert any((w.get("slot_lag_bytes") or 0) > LIMIT for w in shown.json()), shown.stdout
    finally:
        remove(services, name)
        delete_topics(services, topic, f"__debezium-heartbeat.{prefix}", f"{topic}.dlq")
