"""connectors/configs.py (what `datrix connectors add-*` sends to Kafka Connect) and
connectors/client.py (Connect's REST API: errors on one line, rebalances retried), and the
CLI's one-line errors that need no Connect worker. Offline: the client talks to an
httpx.MockTransport standing in for the documented REST answers (the real worker:
tests/integration/test_connect.py)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest

from datrix.connectors.client import (
    ConnectClient,
    ConnectError,
    ConnectorNotFound,
    ConnectorStatus,
    ConnectUnreachable,
    one_line,
)
from datrix.connectors.configs import (
    FILE_SOURCE_CLASS,
    POSTGRES_CLASS,
    ConfigError,
    file_source,
    parse_dsn,
    postgres_source,
    redacted,
)

DSN = "postgresql://datrix_cdc:pw@db.internal:5433/sources"


# -- configs ------------------------------------------------------------------------------
def test_a_file_source_sends_each_line_verbatim_to_its_topic(tmp_path: Path) -> None:
    data = tmp_path / "events.jsonl"
    data.write_text('{"a": 1}\n')
    connector = file_source(data, "orders-raw", partitions=3)
    assert connector.name == "file-orders-raw"
    assert connector.config == {
        "connector.class": FILE_SOURCE_CLASS,
        "tasks.max": "1",
        "file": str(data),
        "topic": "orders-raw",
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.storage.StringConverter",
        "topic.creation.default.partitions": "3",
        "topic.creation.default.replication.factor": "-1",
        "datrix.format": "jsonl",
    }
    assert connector.body() == {"name": "file-orders-raw", "config": connector.config}


def test_a_file_sources_format_comes_from_its_suffix_or_is_asked_for(tmp_path: Path) -> None:
    csv = tmp_path / "t.CSV"
    csv.write_text("a,b\n1,2\n")
    assert file_source(csv, "t").config["datrix.format"] == "csv"
    odd = tmp_path / "t.txt"
    odd.write_text("x\n")
    with pytest.raises(ConfigError, match="give --format jsonl or --format csv"):
        file_source(odd, "t")
    assert file_source(odd, "t", fmt="csv").config["datrix.format"] == "csv"
    with pytest.raises(ConfigError, match="--format must be one of jsonl, csv"):
        file_source(odd, "t", fmt="xml")


@pytest.mark.parametrize(
    ("topic", "message"),
    [
        ("datrix.commands", "the deployment's own topics"),
        ("bad topic", "--topic must be a Kafka topic name"),
        ("..", "--topic must be a Kafka topic name"),
        ("", "--topic must be a Kafka topic name"),
    ],
)
def test_a_file_source_refuses_a_bad_or_reserved_topic(
    tmp_path: Path, topic: str, message: str
) -> None:
    data = tmp_path / "a.jsonl"
    data.write_text("{}\n")
    with pytest.raises(ConfigError, match=message):
        file_source(data, topic)


def test_a_file_source_needs_an_existing_file_and_a_fair_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a file"):
        file_source(tmp_path / "missing.jsonl", "t")
    with pytest.raises(ConfigError, match="is not a file"):
        file_source(tmp_path, "t")
    data = tmp_path / "a.jsonl"
    data.write_text("{}\n")
    with pytest.raises(ConfigError, match="a connector name is"):
        file_source(data, "t", name="../x")
    with pytest.raises(ConfigError, match="--partitions must be"):
        file_source(data, "t", partitions=0)
    # another deployment's prefix is what is reserved
    assert file_source(data, "datrix.x", reserved_prefix="staging.").config["topic"] == "datrix.x"


def test_a_postgres_source_is_debezium_on_one_table_with_slot_publication_and_heartbeat() -> None:
    connector = postgres_source("shop.orders", "cdc", DSN)
    assert connector.name == "pg-cdc"
    assert connector.config == {
        "connector.class": POSTGRES_CLASS,
        "tasks.max": "1",
        "database.hostname": "db.internal",
        "database.port": "5433",
        "database.dbname": "sources",
        "database.user": "datrix_cdc",
        "database.password": "pw",
        "topic.prefix": "cdc",
        "table.include.list": "shop\\.orders",
        "plugin.name": "pgoutput",
        "slot.name": "datrix_pg_cdc",
        "slot.drop.on.stop": "false",
        "publication.name": "datrix_pg_cdc",
        "publication.autocreate.mode": "filtered",
        "snapshot.mode": "initial",
        "heartbeat.interval.ms": "10000",
        "tombstones.on.delete": "true",
        "decimal.handling.mode": "double",
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": "true",
        "value.converter.schemas.enable": "true",
        "topic.creation.default.partitions": "1",
        "topic.creation.default.replication.factor": "-1",
    }


def test_a_postgres_sources_options() -> None:
    config = postgres_source(
        "orders",
        "cdc",
        "postgresql://u@h/d?sslmode=require",
        name="orders-cdc",
        slot="s1",
        publication="p1",
        create_publication=False,
        snapshot="no_data",
        heartbeat_ms=500,
        heartbeat_query="UPDATE hb SET at = now()",
        schemas=False,
    ).config
    assert config["table.include.list"] == "public\\.orders"
    assert (config["slot.name"], config["publication.name"]) == ("s1", "p1")
    assert config["publication.autocreate.mode"] == "disabled"
    assert config["snapshot.mode"] == "no_data"
    assert config["heartbeat.interval.ms"] == "500"
    assert config["heartbeat.action.query"] == "UPDATE hb SET at = now()"
    assert config["value.converter.schemas.enable"] == "false"
    assert config["database.port"] == "5432" and "database.password" not in config
    assert config["database.sslmode"] == "require"
    # a name with characters a slot may not have: the default slot folds them
    assert postgres_source("t", "x", DSN, name="Orders.CDC-1").config["slot.name"] == (
        "datrix_orders_cdc_1"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"table": "public.t; drop"}, "TABLE must be"),
        ({"table": "a.b.c"}, "TABLE must be"),
        ({"table": "1t"}, "TABLE must be"),
        ({"topic_prefix": "datrix.cdc"}, "--topic-prefix 'datrix.cdc' starts with 'datrix.'"),
        ({"topic_prefix": "a b"}, "--topic-prefix must be a Kafka topic name"),
        ({"dsn": "mysql://u@h/d"}, "--dsn must be postgresql://"),
        ({"dsn": "postgresql://h/d"}, "host, user and database are needed"),
        ({"dsn": "postgresql://u@h/"}, "host, user and database are needed"),
        ({"dsn": "postgresql://u@h:99999/d"}, "--dsn must be postgresql://"),
        ({"dsn": "postgresql://u@h/d?options=-c"}, "unknown option 'options'"),
        ({"slot": "Bad-Slot"}, "--slot must be"),
        ({"publication": "p; drop"}, "--publication must be"),
        ({"snapshot": "never"}, "--snapshot must be one of"),
        ({"heartbeat_ms": 0}, "heartbeat interval"),
        ({"heartbeat_query": " "}, "--heartbeat-query is empty"),
    ],
)
def test_a_postgres_source_refuses_bad_arguments_naming_them(
    kwargs: dict[str, Any], message: str
) -> None:
    args: dict[str, Any] = {"table": "orders", "topic_prefix": "cdc", "dsn": DSN}
    args.update(kwargs)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("?", r"\?")):
        postgres_source(args.pop("table"), args.pop("topic_prefix"), args.pop("dsn"), **args)


def test_dsn_and_redaction() -> None:
    dsn = parse_dsn("postgres://a%40b:p%2Fw@h:1/db%31")
    assert (dsn.user, dsn.password, dsn.database, dsn.port) == ("a@b", "p/w", "db1", 1)
    assert dsn.safe() == "postgresql://a@b@h:1/db1"
    shown = redacted({"database.password": "pw", "x.secret.key": "s", "topic": "t"})
    assert shown == {"database.password": "********", "x.secret.key": "********", "topic": "t"}


# -- client -------------------------------------------------------------------------------
class FakeConnect:
    """Answers as Kafka Connect's REST API does (the documented bodies), per request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.rebalancing = 0
        self.validation_errors: list[str] = []
        self.statuses: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        path = request.url.path
        if self.rebalancing:
            self.rebalancing -= 1
            return self._error(
                409,
                "Cannot complete request because of a conflicting operation "
                "(e.g. worker rebalance)",
            )
        if path.endswith("/config/validate"):
            configs = [
                {"value": {"name": "database.hostname", "errors": [e]}}
                for e in self.validation_errors
            ] + [{"value": {"name": "topic.prefix", "errors": []}}]
            return httpx.Response(200, json={"error_count": 0, "configs": configs})
        if request.method == "POST" and path == "/connectors":
            body = json.loads(request.content)
            if body["name"] == "taken":
                return self._error(409, "Connector taken already exists")
            return httpx.Response(201, json={**body, "tasks": [], "type": "source"})
        if path == "/connectors/gone/status":
            return self._error(404, "No status found for connector gone")
        if path == "/connectors/x/status":
            return httpx.Response(200, json=self.statuses.pop(0))
        if path == "/":
            return httpx.Response(200, text="<html>not connect</html>")
        if path == "/connectors":
            return httpx.Response(200, json={"a": {"status": _status("a", "RUNNING")}, "b": {}})
        if path == "/connectors/boom":
            return self._error(500, "Request timed out\n  at the herder\n")
        return httpx.Response(204)

    @staticmethod
    def _error(code: int, message: str) -> httpx.Response:
        return httpx.Response(code, json={"error_code": code, "message": message})


def _status(name: str, state: str, task_state: str = "RUNNING", trace: str | None = None) -> Any:
    return {
        "name": name,
        "type": "source",
        "connector": {"state": state, "worker_id": "w:8083"},
        "tasks": [{"id": 0, "state": task_state, "worker_id": "w:8083", "trace": trace}],
    }


def _client(fake: FakeConnect) -> ConnectClient:
    clock = [0.0]

    def sleep(s: float) -> None:
        clock[0] += s

    return ConnectClient(
        "http://connect:8083/",
        timeout=5,
        transport=httpx.MockTransport(fake),
        clock=lambda: clock[0],
        sleep=sleep,
    )


def test_create_validates_first_and_names_every_error_on_one_line(tmp_path: Path) -> None:
    fake = FakeConnect()
    connector = postgres_source("t", "cdc", DSN)
    with _client(fake) as client:
        assert client.create(connector)["name"] == "pg-cdc"
        assert fake.requests[-2:] == [
            ("PUT", f"/connector-plugins/{POSTGRES_CLASS}/config/validate"),
            ("POST", "/connectors"),
        ]
        fake.validation_errors = ["FATAL: password authentication failed\nfor user x"]
        with pytest.raises(ConnectError) as invalid:
            client.create(connector)
        assert invalid.value.status == 400
        assert str(invalid.value) == (
            "connector pg-cdc not created, its configuration is invalid: database.hostname: "
            "FATAL: password authentication failed; for user x"
        )
        assert fake.requests[-1][0] == "PUT"  # nothing POSTed


def test_connects_error_bodies_become_one_line_and_404_is_not_found() -> None:
    fake = FakeConnect()
    with _client(fake) as client:
        with pytest.raises(ConnectorNotFound, match=r"^Kafka Connect: No status found"):
            client.status("gone")
        with pytest.raises(ConnectError) as taken:
            client.create(postgres_source("t", "x", DSN, name="taken"))
        assert taken.value.status == 409
        with pytest.raises(
            ConnectError, match=r"^Kafka Connect: Request timed out; at the herder$"
        ):
            client.delete("boom")
        with pytest.raises(ConnectError, match="is DATRIX_CONNECT_URL a Kafka Connect worker"):
            client.info()
    assert one_line("a\n\n  b   c\n", 5) == "a; b…"


def test_a_rebalancing_worker_is_asked_again() -> None:
    fake = FakeConnect()
    fake.rebalancing = 3
    with _client(fake) as client:
        found = client.connectors()
    assert [s.name for s in found] == ["a", "b"]
    assert found[0].running and found[1].state == "UNASSIGNED"
    assert len(fake.requests) == 4


def test_wait_returns_when_running_and_fails_at_once_on_a_failed_task() -> None:
    fake = FakeConnect()
    fake.statuses = [_status("x", "RUNNING", "UNASSIGNED"), _status("x", "RUNNING")]
    with _client(fake) as client:
        assert client.wait("x", lambda s: s.running, 10).running
        fake.statuses = [_status("x", "RUNNING", "FAILED", "org.Boom: no table t\n\tat a.b\n")]
        with pytest.raises(ConnectError, match=r"^connector x failed: org\.Boom: no table t$"):
            client.wait("x", lambda s: s.running, 10)
        fake.statuses = [_status("x", "RUNNING", "UNASSIGNED")] * 100
        with pytest.raises(ConnectError, match=r"did not get there in 1s \(state RUNNING, task 0"):
            client.wait("x", lambda s: s.running, 1)


def test_a_status_missing_parts_is_an_error_not_a_key_error() -> None:
    with pytest.raises(ConnectError, match="answered a status without"):
        ConnectorStatus.of({"name": "x"})


def test_nothing_listening_is_unreachable_naming_the_url() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with (
        ConnectClient(f"http://127.0.0.1:{port}", timeout=2) as client,
        pytest.raises(
            ConnectUnreachable, match=f"cannot reach Kafka Connect at http://127.0.0.1:{port}"
        ),
    ):
        client.names()


# -- the CLI without a worker ---------------------------------------------------------------
def _cli(
    args: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> tuple[int, str]:
    from datrix.gateway.cli import main

    for key in [k for k in __import__("os").environ if k.startswith("DATRIX_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as ended:
        main(args)
    return int(ended.value.code or 0), capsys.readouterr().err


def test_the_cli_says_in_one_line_what_is_missing_or_wrong(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    home = {"DATRIX_HOME": str(tmp_path)}
    code, err = _cli(["connectors", "list"], home, monkeypatch, capsys)
    assert code == 2 and err.startswith("datrix: DATRIX_CONNECT_URL is not set")
    assert err.count("\n") == 1

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**home, "DATRIX_CONNECT_URL": f"http://127.0.0.1:{port}"}
    code, err = _cli(["connectors", "list"], env, monkeypatch, capsys)
    assert code == 1 and "cannot reach Kafka Connect at" in err and err.count("\n") == 1

    data = tmp_path / "a.jsonl"
    data.write_text("{}\n")
    code, err = _cli(
        ["connectors", "add-file", str(data), "--topic", "datrix.events"], env, monkeypatch, capsys
    )
    assert code == 2 and "the deployment's own topics" in err

    code, err = _cli(
        ["connectors", "add-postgres", "t", "--topic-prefix", "p"], env, monkeypatch, capsys
    )
    assert code == 2 and "give --dsn postgresql://" in err

    env["DATRIX_CONNECT_URL"] = "localhost:8083"
    code, err = _cli(["connectors", "list"], env, monkeypatch, capsys)
    assert code == 2 and "DATRIX_CONNECT_URL must be an http(s)://host[:port] URL" in err
