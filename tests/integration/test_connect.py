"""Kafka Connect and Debezium, real (issue 13 item 1), against the worker
``deploy/local/up connect`` starts (REST on DATRIX_CONNECT_URL, principal datrix-connect)
and the local PostgreSQL (wal_level=logical, role datrix_cdc, database datrix_sources),
driven through ``datrix connectors`` in a subprocess and read back with plain
confluent-kafka:

- a FileStream source of a JSON-lines file lands every line on its topic, in order, and
  the lines appended later too; list/status/pause/resume/delete act on it;
- a Debezium connector on a table streams its snapshot, inserts, updates, deletes (and
  the tombstone), and after ``ALTER TABLE ... ADD COLUMN`` records whose schema and
  ``after`` carry the new column;
- one-line errors: an unknown connector exits 2; an invalid config (a wrong password)
  says what Debezium found, exit 2; the CDC role cannot reach the ``datrix`` database;
  the Connect principal is denied the deployment's own topics. (Bad arguments, an unset
  or unreachable DATRIX_CONNECT_URL: tests/unit/test_connectors.py.)
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import psycopg
import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient

from datrix.connectors.client import ConnectClient, ConnectError, ConnectorNotFound
from datrix.connectors.configs import postgres_source
from datrix.streams.kafka import client_config
from datrix.streams.settings import load_settings
from tests.integration.conftest import Cli, Run, admin_url, deploy_local, exports

pytestmark = pytest.mark.integration


@pytest.fixture
def connect_cli(services: dict[str, str], tmp_path: Path) -> Cli:
    """The CLI with the exports of ``deploy/local/up`` (DATRIX_CONNECT_URL among them)."""

    class WithServices(Cli):
        def env(self) -> dict[str, str]:
            return {**super().env(), **services}

    return WithServices(tmp_path / "home")


def kafka_config(services: dict[str, str], **extra: Any) -> dict[str, Any]:
    """A confluent-kafka configuration as the app principal ``up`` exports (built where
    every client's is: streams.kafka.client_config)."""
    return client_config(load_settings(services), **extra)


def read_topic(
    services: dict[str, str],
    topic: str,
    done: Callable[[list[Any]], bool],
    timeout: float = 90,
) -> list[Any]:
    """Every record of ``topic`` from the start, until ``done(records)`` (the topic is
    made by the connector: it may not exist yet when reading starts)."""
    consumer = Consumer(
        kafka_config(
            services,
            **{
                "group.id": f"test-connect-{uuid.uuid4()}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "topic.metadata.refresh.interval.ms": 1000,
            },
        )
    )
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        consumer.subscribe([topic])
        while not done(records):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{topic}: {len(records)} records after {timeout:.0f}s, not done: "
                    f"{records[-5:]}"
                )
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error() is not None:
                if message.error().retriable() or "UNKNOWN_TOPIC" in str(message.error()):
                    continue
                raise AssertionError(f"{topic}: {message.error()}")
            records.append(message)
    finally:
        consumer.close()
    return records


def delete_topics(services: dict[str, str], *topics: str) -> None:
    admin = AdminClient(kafka_config(services))
    for future in admin.delete_topics(list(topics), operation_timeout=30).values():
        try:
            future.result(60)
        except Exception as exc:  # a topic the connector never made
            if "UNKNOWN_TOPIC" not in str(exc):
                raise


def connect(services: dict[str, str]) -> ConnectClient:
    """The REST client (for waiting on states and cleaning up: the CLI does the rest)."""
    return ConnectClient(services["DATRIX_CONNECT_URL"], timeout=60)


def wait_state(services: dict[str, str], name: str, state: str) -> None:
    with connect(services) as client:
        client.wait(name, lambda s: s.state == state and all(t.state == state for t in s.tasks), 60)


def remove(services: dict[str, str], name: str) -> None:
    with connect(services) as client, contextlib.suppress(ConnectorNotFound):
        client.delete(name)


def ok(run: Run) -> Run:
    assert run.code == 0, f"exit {run.code}: {run.stderr}"
    return run


def test_a_file_source_lands_every_line_of_a_json_lines_file_on_its_topic(
    services: dict[str, str], connect_cli: Cli, tmp_path: Path
) -> None:
    cli = connect_cli
    topic = f"connect-test-file-{uuid.uuid4().hex[:8]}"
    rows = [
        {"id": i, "name": f"n{i}", "score": i * 1.5, "tag": None if i % 7 else "x"}
        for i in range(500)
    ]
    lines = [json.dumps(r, separators=(",", ":")) for r in rows]
    source = tmp_path / "events.jsonl"
    source.write_text("\n".join(lines) + "\n")
    name = f"file-{topic}"
    try:
        run = ok(cli("connectors", "add-file", str(source), "--topic", topic))
        assert f"connector {name} created: RUNNING (1 task)" in run.stdout

        got = read_topic(services, topic, lambda rs: len(rs) >= len(lines))
        assert [m.value().decode() for m in got] == lines  # every line, verbatim, in order
        assert all(m.key() is None for m in got)
        assert [json.loads(m.value()) for m in got] == rows

        listed = ok(cli("connectors", "list", "--format", "json")).json()
        mine = [c for c in listed if c["name"] == name]
        assert mine and mine[0]["state"] == "RUNNING" and mine[0]["type"] == "source"
        with connect(services) as client:
            assert client.config(name)["file"] == str(source)

        # lines appended while it is paused arrive once it is resumed (the source tails)
        ok(cli("connectors", "pause", name))
        wait_state(services, name, "PAUSED")
        more = [json.dumps({"id": 500 + i, "name": "late"}) for i in range(20)]
        with source.open("a") as f:
            f.write("\n".join(more) + "\n")
        ok(cli("connectors", "resume", name))
        wait_state(services, name, "RUNNING")
        got = read_topic(services, topic, lambda rs: len(rs) >= len(lines) + len(more))
        assert [m.value().decode() for m in got] == lines + more

        run = ok(cli("connectors", "delete", name))
        assert f"connector {name} deleted" in run.stdout
        with connect(services) as client:
            assert name not in client.names()
    finally:
        remove(services, name)
        delete_topics(services, topic)


def test_connectors_errors_are_one_line(services: dict[str, str], connect_cli: Cli) -> None:
    cli = connect_cli
    run = cli("connectors", "status", "no-such-connector")
    assert run.code == 2 and run.stderr.count("\n") == 1
    assert "no-such-connector" in run.stderr and "Traceback" not in run.stderr

    # Debezium checks the database when the config is validated: a wrong password is an
    # invalid config, named on one line, and nothing is created
    pg = urlparse(services["DATRIX_DATABASE_URL"])
    dsn = f"postgresql://datrix_cdc:wrong@{pg.hostname}:{pg.port}/datrix_sources"
    run = cli("connectors", "add-postgres", "public.t", "--topic-prefix", "p-bad", "--dsn", dsn)
    assert run.code == 2, run.stderr
    assert "password authentication failed" in run.stderr and run.stderr.count("\n") == 1
    with connect(services) as client:
        assert "pg-p-bad" not in client.names()

    # the CDC role cannot reach the database of the event store and the read models
    dsn = f"postgresql://datrix_cdc:datrix_cdc@{pg.hostname}:{pg.port}/datrix"
    with connect(services) as client, pytest.raises(ConnectError) as refused:
        client.create(postgres_source("public.t", "p-bad", dsn))
    assert 'permission denied for database "datrix"' in str(refused.value)


@pytest.fixture
def source_table(services: dict[str, str]) -> Iterator[tuple[str, str, psycopg.Connection[Any]]]:
    """A table in datrix_sources (made by the administrator, as a table's owner would),
    readable by datrix_cdc, with a publication; dropped afterwards with its slot."""
    tag = uuid.uuid4().hex[:8]
    schema, publication = f"cdc_{tag}", f"pub_{tag}"
    url = admin_url(services).rsplit("/", 1)[0] + "/datrix_sources"
    db = psycopg.connect(url, autocommit=True)
    db.execute(f"CREATE SCHEMA {schema}")
    db.execute(
        f"CREATE TABLE {schema}.orders (id int PRIMARY KEY, amount numeric(10,2) NOT NULL, "
        "note text)"
    )
    db.execute(f"GRANT USAGE ON SCHEMA {schema} TO datrix_cdc")
    db.execute(f"GRANT SELECT ON {schema}.orders TO datrix_cdc")
    db.execute(f"CREATE PUBLICATION {publication} FOR TABLE {schema}.orders")
    try:
        yield schema, publication, db
    finally:
        slot = f"slot_{tag}"
        deadline = time.monotonic() + 60
        while db.execute(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s AND active", (slot,)
        ).fetchone() != (0,):
            assert time.monotonic() < deadline, f"slot {slot} still active after 60s"
            time.sleep(0.2)
        db.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
            "WHERE slot_name = %s",
            (slot,),
        )
        db.execute(f"DROP PUBLICATION IF EXISTS {publication}")
        db.execute(f"DROP SCHEMA {schema} CASCADE")
        db.close()


def test_debezium_streams_inserts_updates_deletes_and_a_new_column(
    services: dict[str, str],
    connect_cli: Cli,
    source_table: tuple[str, str, psycopg.Connection[Any]],
) -> None:
    cli = connect_cli
    schema, publication, db = source_table
    tag = schema.removeprefix("cdc_")
    prefix = f"connect-test-cdc-{tag}"
    topic = f"{prefix}.{schema}.orders"
    name = f"pg-{prefix}"
    db.execute(f"INSERT INTO {schema}.orders VALUES (1, 10.50, 'first'), (2, 20.00, NULL)")
    try:
        # the default DSN: datrix_cdc on the server of DATRIX_DATABASE_URL, datrix_sources
        run = ok(
            cli(
                "connectors",
                "add-postgres",
                f"{schema}.orders",
                "--topic-prefix",
                prefix,
                "--existing-publication",
                "--publication",
                publication,
                "--slot",
                f"slot_{tag}",
                "--heartbeat-ms",
                "1000",
            )
        )
        assert f"changes go to topic {topic}" in run.stdout

        # the snapshot's two rows, then the connector streams
        read_topic(services, topic, lambda rs: len(rs) >= 2)
        db.execute(f"INSERT INTO {schema}.orders VALUES (3, 30.25, 'third')")
        db.execute(f"UPDATE {schema}.orders SET amount = 11.00, note = 'changed' WHERE id = 1")
        db.execute(f"DELETE FROM {schema}.orders WHERE id = 2")
        db.execute(f"ALTER TABLE {schema}.orders ADD COLUMN category text")
        db.execute(f"INSERT INTO {schema}.orders VALUES (4, 40.00, 'fourth', 'books')")
        db.execute(f"UPDATE {schema}.orders SET category = 'toys' WHERE id = 3")

        got = read_topic(services, topic, lambda rs: len(rs) >= 8)
        values = [None if m.value() is None else json.loads(m.value()) for m in got]
        keys = [json.loads(m.key())["payload"]["id"] for m in got]
        assert keys == [1, 2, 3, 1, 2, 2, 4, 3]
        changes = [v["payload"] if v is not None else None for v in values]
        assert [c and c["op"] for c in changes] == ["r", "r", "c", "u", "d", None, "c", "u"]
        assert changes[5] is None  # the delete's tombstone (log compaction drops the key)
        snap1, snap2, ins3, upd1, del2, _, ins4, upd3 = changes
        assert snap1["after"] == {"id": 1, "amount": 10.5, "note": "first"}
        assert snap2["after"] == {"id": 2, "amount": 20.0, "note": None}
        assert ins3["before"] is None and ins3["after"]["amount"] == 30.25
        assert upd1["after"] == {"id": 1, "amount": 11.0, "note": "changed"}
        assert del2["after"] is None and del2["before"]["id"] == 2
        assert ins4["after"] == {"id": 4, "amount": 40.0, "note": "fourth", "category": "books"}
        assert upd3["after"]["category"] == "toys"
        for change in changes:
            if change is not None:
                assert change["source"]["schema"] == schema
                assert change["source"]["table"] == "orders"
                assert change["source"]["connector"] == "postgresql"

        # the record schema (Connect's envelope) names the new column from then on
        def after_fields(value: dict[str, Any]) -> list[str]:
            after = next(f for f in value["schema"]["fields"] if f["field"] == "after")
            return [f["field"] for f in after["fields"]]

        assert after_fields(values[3]) == ["id", "amount", "note"]
        assert after_fields(values[6]) == ["id", "amount", "note", "category"]
        assert after_fields(values[7]) == ["id", "amount", "note", "category"]

        status = ok(cli("connectors", "status", name, "--format", "json")).json()
        assert status["state"] == "RUNNING"
        assert status["config"]["database.password"] == "********"
        assert status["config"]["heartbeat.interval.ms"] == "1000"
        assert status["config"]["plugin.name"] == "pgoutput"

        run = ok(cli("connectors", "delete", name))
        assert f"replication slot slot_{tag}" in run.stderr
        assert "pg_drop_replication_slot" in run.stderr
    finally:
        remove(services, name)
        delete_topics(services, topic, f"__debezium-heartbeat.{prefix}")


def connect_state() -> Path:
    """The worker's folder in the state the ``services`` fixture's ``up`` ran with."""
    return Path(os.environ.get("DATRIX_STATE", Path.home() / ".cache/datrix/state")) / "connect"


def test_up_connect_again_reuses_the_worker_and_status_knows_it(
    services: dict[str, str],
) -> None:
    started = time.monotonic()
    up = deploy_local("up", "connect")
    assert up.returncode == 0, up.stderr
    assert exports(up.stdout)["DATRIX_CONNECT_URL"] == services["DATRIX_CONNECT_URL"]
    assert "connect: already running" in up.stderr
    assert time.monotonic() - started < 30  # no second worker, no Maven
    status = deploy_local("status", "connect")
    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stdout.startswith("connect   up ") and "Debezium 3.6.1.Final" in status.stdout
    # private, like the other services' state (it holds the principal's password)
    folder = connect_state()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    props = folder / "connect-distributed.properties"
    assert stat.S_IMODE(props.stat().st_mode) == 0o600


def test_the_connect_principal_may_not_touch_the_deployments_topics(
    services: dict[str, str],
) -> None:
    """datrix-connect is denied the DATRIX_TOPIC_PREFIX topics outright (a connector could
    otherwise inject commands or read every tenant's events): its password is in the
    worker's own configuration, so the check runs as the worker."""
    from confluent_kafka import Producer

    props = (connect_state() / "connect-distributed.properties").read_text()
    jaas = next(line for line in props.splitlines() if line.startswith("sasl.jaas.config="))
    password = jaas.split('password="', 1)[1].split('"', 1)[0]
    as_connect = {
        **services,
        "DATRIX_KAFKA_SASL_USERNAME": "datrix-connect",
        "DATRIX_KAFKA_SASL_PASSWORD": password,
    }
    config = kafka_config(as_connect)
    delivered: list[Any] = []
    producer = Producer({**config, "message.timeout.ms": 5000})
    producer.produce("datrix.commands", b"x", on_delivery=lambda e, _m: delivered.append(e))
    producer.flush(15)
    assert len(delivered) == 1 and delivered[0] is not None
    assert "authoriz" in str(delivered[0]).lower()
    consumer = Consumer({**config, "group.id": f"connect-{uuid.uuid4()}"})
    try:
        error = consumer.list_topics("datrix.events", timeout=10).topics["datrix.events"].error
    finally:
        consumer.close()
    assert error is not None and "AUTHORIZATION" in error.name(), error
