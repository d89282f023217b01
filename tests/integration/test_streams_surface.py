"""The read side of streams in Kafka mode, on the real services of ``deploy/local``: streams
registered by ``datrix streams add`` (a subprocess, as a user types it) and by
``POST /v1/streams`` (a real ``datrix serve`` with real keys); windows fed as the monitor
feeds them (``CloseStreamWindow`` under ``command_id = window_id``, submitted through the
Kafka runtime) and processed and projected by a real ``datrix worker``; then read back by
``datrix streams windows --format json`` (merged across partitions), ``status``,
``alerts``, ``list`` (under a pseudo-terminal too) and by the API (paged windows, alerts,
the alerts' server-sent events, which yield a ``degraded`` event as it happens). The
monitor itself is another test's (test_stream_monitor.py): no monitor role runs here."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from datrix.aggregates.stream import stream_id_for
from datrix.gateway.streams import KAFKA_ONLY
from tests.integration.api_server import Server, assert_problem, start_server
from tests.integration.conftest import DATRIX, KafkaCli
from tests.integration.terminal import run_in_terminal
from tests.stream_windows import close_window

pytestmark = pytest.mark.integration

TENANT = "acme"


class Deployment:
    def __init__(self, cli: KafkaCli, root: Path) -> None:
        self.cli = cli
        self.root = root
        self.server: Server | None = None
        self.runtime: Any = None

    def row(self, name: str) -> dict[str, Any] | None:
        """The stream's read-model row (what `datrix streams list` shows)."""
        from datrix.projections.read_models.streams import stream_row

        found: dict[str, Any] | None = stream_row(self.runtime.read_store, TENANT, name)
        return found

    def submit_windows(self, *commands: Any) -> None:
        """Hand windows to the broker as the monitor does (each under its window id)."""
        for command in commands:
            self.runtime.submit(command, command.stream_id, command_id=command.window_id)
        self.runtime.drain()  # flushed to the broker


@pytest.fixture(scope="module")
def deployment(
    services: dict[str, str], worker_credentials: dict[str, str], tmp_path_factory: Any
) -> Iterator[Deployment]:
    from datrix.gateway.api.keys import open_key_store
    from datrix.runtime.kafka import KafkaRuntime
    from datrix.streams.settings import load_settings

    root = tmp_path_factory.mktemp("streams-surface")
    tag = uuid.uuid4().hex[:10]
    schema = f"t_{tag}"
    extra = {
        **services,
        "DATRIX_TOPIC_PREFIX": f"t{tag}.",
        "DATRIX_DATABASE_SCHEMA": schema,
        "DATRIX_OBJECT_STORE": f"{services['DATRIX_OBJECT_STORE']}/{schema}",
        "DATRIX_TENANT": TENANT,
    }
    cli = KafkaCli(home=root / "cli-home", extra=extra, workers=[], worker_env=worker_credentials)
    found = Deployment(cli, root)
    try:
        # every role but a stream monitor: the windows here are the test's own
        cli.start_worker("processor,relay,projector", log=root / "worker.log")
        env = {**cli.env(), "DATRIX_HOME": str(root / "client-home")}
        found.runtime = KafkaRuntime(load_settings(env))
        # keys as `datrix keys create` makes them (in this process: a CLI start is seconds)
        store = open_key_store(found.runtime.settings)
        keys = {
            f"{tenant}-{role}": store.create(tenant, role)[1]
            for tenant, role in ((TENANT, "engineer"), (TENANT, "viewer"), ("globex", "admin"))
        }
        server_env = {k: v for k, v in cli.env().items() if k.startswith("DATRIX_")}
        server_env.pop("DATRIX_HOME", None)
        server_env.pop("DATRIX_TENANT", None)  # a key's tenant is the request's
        found.server = start_server(root / "serve-home", root / "serve.log", **server_env)
        found.server.keys = keys
        yield found
    finally:
        if found.server is not None:
            found.server.stop()
        cli.stop_workers()
        with psycopg.connect(services["DATRIX_DATABASE_URL"], autocommit=True) as db:
            db.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def wait_until(what: str, done: Callable[[], Any], timeout: float = 90) -> Any:
    """``done()`` once it is truthy (the worker is processing: ask again)."""
    deadline = time.monotonic() + timeout
    while True:
        found = done()
        if found:
            return found
        assert time.monotonic() < deadline, f"still not {what}"
        time.sleep(0.2)


def records(n: int, base: int, null_every: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "id": base + i,
            "amount": None if null_every and i % null_every == 0 else float(i % 10),
            "city": f"c{i % 5}",
        }
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def orders(deployment: Deployment) -> str:
    """Stream ``orders`` registered by the CLI, with three closed windows: minutes 0 and 1
    on partitions 0 and 1, minute 2 on partition 0 only."""
    cli = deployment.cli
    done = cli(
        "streams",
        "add",
        "shop.orders",
        "--name",
        "orders",
        "--format",
        "json",
        "--key",
        "id",
        "--window",
        "1m",
        "--grace",
        "5s",
        "--max-null-rate",
        "0.25",
        "--max-lag",
        "30s",
    )
    assert done.code == 0, done.stderr
    sid = stream_id_for(TENANT, "orders")
    assert str(sid) in done.stdout and "shop.orders" in done.stdout
    deployment.submit_windows(
        close_window(sid, 0, 0, records(40, 0)),
        close_window(sid, 1, 0, records(60, 20)),  # ids 20-39 seen on both partitions
        close_window(sid, 0, 1, records(30, 1000)),
        close_window(sid, 1, 1, records(10, 2000, null_every=2)),
        close_window(sid, 0, 2, records(5, 3000)),
    )

    def projected() -> bool:
        found = deployment.row("orders")
        return found is not None and found["windows"] == 5

    wait_until("5 windows projected", projected)
    return str(sid)


def test_streams_need_kafka_mode(tmp_path: Path) -> None:
    from tests.integration.conftest import Cli

    embedded = Cli(tmp_path / "home")
    done = embedded("streams", "add", "shop.orders", "--name", "orders", "--format", "json")
    assert done.code == 2, done.stdout
    assert done.stderr.strip() == f"datrix: {KAFKA_ONLY}"


def test_cli_add_refuses_bad_values_and_a_taken_name_in_one_line(
    deployment: Deployment, orders: str
) -> None:
    cli = deployment.cli
    for args, message in (
        (["shop.orders", "--name", "orders", "--format", "json"], "a stream named 'orders'"),
        (["t.x", "--name", "x", "--format", "json", "--window", "5x"], "--window: '5x'"),
        (["__consumer_offsets", "--name", "x", "--format", "json"], "internal"),
    ):
        done = cli("streams", "add", *args)
        assert done.code == 2, (args, done.stdout, done.stderr)
        assert message in done.stderr, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr
    assert deployment.row("x") is None


def test_cli_windows_json_merges_the_partitions_of_each_window(
    deployment: Deployment, orders: str
) -> None:
    cli = deployment.cli
    done = cli("streams", "windows", "orders", "--format", "json")
    assert done.code == 0, done.stderr
    windows = done.json()
    assert [w["window_start"] for w in windows] == [
        "2026-12-01T12:00:00+00:00",
        "2026-12-01T12:01:00+00:00",
        "2026-12-01T12:02:00+00:00",
    ]
    first, second, third = windows
    assert first["window_end"] == "2026-12-01T12:01:00+00:00"
    assert (first["count"], first["partitions"]) == (100, [0, 1])
    # ids 0-39 and 20-79: 80 distinct, not 100 (the sketches' union)
    assert abs(first["distinct"]["id"] - 80) <= 4
    assert first["distinct"]["city"] == 5
    assert first["null_rate"] == {"amount": 0.0, "city": 0.0, "id": 0.0}
    # partition 1 had 5 null amounts of 10 in minute 1; partition 0 none of 30
    assert second["count"] == 40
    assert second["null_rate"]["amount"] == pytest.approx(5 / 40)
    assert (third["count"], third["partitions"]) == (5, [0])
    assert set(first) >= {"rate_per_second", "max_lag_seconds", "duplicates", "fields"}
    latest = cli("streams", "windows", "orders", "--format", "json", "--limit", "1").json()
    assert latest == [third]


def test_cli_status_alerts_and_a_terminal(deployment: Deployment, orders: str) -> None:
    cli = deployment.cli
    status = cli("streams", "status", "orders", "--format", "json").json()
    assert status["stream_id"] == orders
    assert (status["windows"], status["records"], status["status"]) == (5, 145, "active")
    assert status["thresholds"]["max_null_rate"] == 0.25
    assert status["thresholds"]["max_lag_seconds"] == 30.0
    assert status["key_field"] == "id" and status["window_seconds"] == 60
    assert status["latest_window"]["window_start"] == "2026-12-01T12:02:00+00:00"
    # minute 1 of partition 1: half its amounts null, over 0.25
    alerts = cli("streams", "alerts", orders[:8], "--format", "json").json()
    assert [(a["kind"], a["partition_number"]) for a in alerts] == [("degraded", 1)]
    assert alerts[0]["breaches"] == [
        {"metric": "null_rate", "field": "amount", "value": 0.5, "limit": 0.25}
    ]
    assert status["degraded_partitions"] == [1] and status["health"] == "degraded"
    shown = run_in_terminal([DATRIX, "streams", "windows", "orders"], cli.env(), timeout=120)
    assert shown.code == 0, shown.text
    assert "Windows of orders" in shown.text and "2026-12-01T12:01:00" in shown.text
    listed = run_in_terminal([DATRIX, "streams", "list"], cli.env(), timeout=120)
    assert listed.code == 0 and orders in listed.text and "degraded (partition 1)" in listed.text


def test_api_registers_lists_pages_windows_and_hides_other_tenants(
    deployment: Deployment, orders: str
) -> None:
    api = deployment.server
    assert api is not None
    body = {
        "topic": "shop.payments",
        "name": "payments",
        "format": "debezium",
        "window_seconds": 30,
        "thresholds": {"min_records": 3},
    }
    with api.client(api.keys["acme-viewer"]) as viewer:
        assert_problem(viewer.post("/v1/streams", json=body), 403)
        listed = viewer.get("/v1/streams", params={"limit": 1})
        assert listed.status_code == 200, listed.text
        assert [s["name"] for s in listed.json()["items"]] == ["orders"]
    with api.client(api.keys["acme-engineer"]) as client:
        response = client.post("/v1/streams", json=body)
        assert response.status_code == 202, response.text
        location = response.headers["Location"]
        assert location == f"/v1/streams/{stream_id_for(TENANT, 'payments')}"

        def registered() -> Any:
            answer = client.get(location)
            return answer.json() if answer.status_code == 200 else None

        payments = wait_until("payments registered", registered)
        assert (payments["format"], payments["window_seconds"]) == ("debezium", 30)
        assert payments["thresholds"]["min_records"] == 3 and payments["health"] == "healthy"
        assert_problem(client.post("/v1/streams", json=body), 409)
        bad = assert_problem(client.post("/v1/streams", json={**body, "topic": "__x"}), 422)
        assert "internal" in bad["detail"]
        assert_problem(client.post("/v1/streams", json={**body, "window_seconds": 0}), 422)
        # two streams, a page at a time
        first = client.get("/v1/streams", params={"limit": 1}).json()
        rest = client.get("/v1/streams", params={"limit": 1, "cursor": first["next_cursor"]})
        assert [s["name"] for s in first["items"] + rest.json()["items"]] == [
            "orders",
            "payments",
        ]
        # windows, newest first, a page at a time; the same documents as the CLI's
        page = client.get(f"/v1/streams/{orders}/windows", params={"limit": 2}).json()
        assert [w["window_start"][11:16] for w in page["items"]] == ["12:02", "12:01"]
        more = client.get(
            "/v1/streams/orders/windows", params={"limit": 2, "cursor": page["next_cursor"]}
        ).json()
        assert [w["window_start"][11:16] for w in more["items"]] == ["12:00"]
        assert more["next_cursor"] is None
        cli_windows = deployment.cli("streams", "windows", "orders", "--format", "json").json()
        assert list(reversed(cli_windows)) == page["items"] + more["items"]
        alerts = client.get("/v1/streams/orders/alerts").json()["items"]
        assert [(a["kind"], a["partition_number"]) for a in alerts] == [("degraded", 1)]
        assert_problem(client.get("/v1/streams/orders/windows", params={"cursor": "x"}), 400)
    with api.client(api.keys["globex-admin"]) as other:
        assert other.get("/v1/streams").json()["items"] == []
        for path in (f"/v1/streams/{orders}", "/v1/streams/orders/windows"):
            assert_problem(other.get(path), 404)


def test_api_alert_events_yield_a_degraded_event_as_it_happens(
    deployment: Deployment, orders: str
) -> None:
    api = deployment.server
    assert api is not None
    sid = uuid.UUID(orders)
    events: list[tuple[str, dict[str, Any]]] = []
    headers = {"Authorization": f"Bearer {api.keys['acme-viewer']}", "Last-Event-ID": "0"}
    with (
        httpx.Client(base_url=api.url, timeout=httpx.Timeout(30, read=120)) as client,
        client.stream("GET", "/v1/streams/orders/alerts/events", headers=headers) as sse,
    ):
        assert sse.status_code == 200
        assert sse.headers["content-type"].startswith("text/event-stream")
        lines = sse.iter_lines()
        kind = ""
        fed = False
        for line in lines:
            if line.startswith("event: "):
                kind = line[len("event: ") :]
            elif line.startswith("data: "):
                events.append((kind, json.loads(line[len("data: ") :])))
                if not fed:
                    # the history came (partition 1's alert): now partition 0 degrades
                    fed = True
                    deployment.submit_windows(
                        close_window(sid, 0, 3, records(4, 4000, null_every=1))
                    )
                if len(events) == 2:
                    break
    assert [(k, e["partition_number"]) for k, e in events] == [("degraded", 1), ("degraded", 0)]
    first, second = (doc for _, doc in events)
    assert second["breaches"][0] == {
        "metric": "null_rate",
        "field": "amount",
        "value": 1.0,
        "limit": 0.25,
    }
    assert second["window_start"] == "2026-12-01T12:03:00+00:00"
    # a reconnect after the first gets the second only
    resumed = {**headers, "Last-Event-ID": str(first["seq"])}
    with (
        httpx.Client(base_url=api.url, timeout=httpx.Timeout(30, read=120)) as client,
        client.stream("GET", "/v1/streams/orders/alerts/events", headers=resumed) as sse,
    ):
        data = next(line for line in sse.iter_lines() if line.startswith("data: "))
    assert json.loads(data[len("data: ") :])["seq"] == second["seq"]


def test_remove_stops_a_stream_once(deployment: Deployment, orders: str) -> None:
    cli = deployment.cli
    api = deployment.server
    assert api is not None
    with api.client(api.keys["acme-engineer"]) as client:
        payments = wait_until(
            "payments registered", lambda: client.get("/v1/streams/payments").status_code == 200
        )
        assert payments
        gone = client.delete("/v1/streams/payments")
        assert gone.status_code == 202, gone.text
        wait_until(
            "payments removed",
            lambda: client.get("/v1/streams/payments").json()["status"] == "removed",
        )
        assert_problem(client.delete("/v1/streams/payments"), 409)
        body = {"topic": "shop.p", "name": "payments", "format": "json"}
        taken = assert_problem(client.post("/v1/streams", json=body), 409)
        assert "was removed; its name stays taken" in taken["detail"]
    again = cli("streams", "remove", "payments")
    assert again.code == 2 and "removed already" in again.stderr
