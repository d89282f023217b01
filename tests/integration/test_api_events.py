"""A job's progress over HTTP against a real ``datrix serve`` (embedded default): server-sent
events at ``/v1/jobs/{id}/events`` (progress, then exactly one outcome, then the end;
resumable with Last-Event-ID), the same over the ``/v1/ws`` WebSocket, and ``/metrics``."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.integration.api_server import (
    DATRIX,
    Server,
    assert_problem,
    create_key,
    datrix_env,
    start_server,
)
from tests.integration.conftest import KafkaCli

pytestmark = pytest.mark.integration


def _csv(path: Path, rows: int, salt: str) -> Path:
    lines = ["id,email,amount,note"]
    lines += [
        f"{i},{'' if i % 4 == 0 else f'u{i}@example.com'},{i % 9},{salt}" for i in range(rows)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Stream:
    """What an SSE response sent: its events (id, event, data) and comments, in order."""

    events: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)

    @property
    def kinds(self) -> list[str]:
        return [event for _, event, _ in self.events]


def read_sse(client: httpx.Client, url: str, **headers: str) -> Stream:
    """Read the stream at ``url`` to its end (the server closes it)."""
    found = Stream()
    with client.stream("GET", url, headers=headers, timeout=120) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        for line in response.iter_lines():
            if line.startswith(":"):
                found.comments.append(line[1:].strip())
            elif line == "":
                if "event" in fields:
                    found.events.append((fields["id"], fields["event"], json.loads(fields["data"])))
                fields = {}
            else:
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
    return found


def wait_accepted(client: httpx.Client, command_id: str) -> None:
    deadline = time.monotonic() + 120
    while client.get(f"/v1/commands/{command_id}").json()["status"] == "queued":
        assert time.monotonic() < deadline, "the upload was never processed"
        time.sleep(0.1)  # the intake thread processes it: ask again
    assert client.get(f"/v1/commands/{command_id}").json()["status"] == "accepted"


def upload(client: httpx.Client, path: Path, name: str) -> str:
    response = client.post(
        "/v1/datasets", params={"name": name, "filename": path.name}, content=path.read_bytes()
    )
    assert response.status_code == 202, response.text
    wait_accepted(client, response.json()["command_id"])
    return str(response.json()["dataset_id"])


def request_scan(client: httpx.Client, dataset: str) -> dict[str, Any]:
    response = client.post(f"/v1/datasets/{dataset}/scan", json={"engine": "polars"})
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    assert body["events_url"] == f"/v1/jobs/{body['scan_id']}/events"
    return body


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("api-events")
    home = root / "home"
    keys = {
        f"{tenant}-{role}": create_key(home, tenant, role)
        for tenant, role in [
            ("acme", "admin"),
            ("acme", "scientist"),
            ("acme", "viewer"),
            ("acme", "annotator"),
            ("globex", "admin"),
        ]
    }
    server = start_server(home, root / "serve.log", DATRIX_API_EVENTS_KEEPALIVE_S="0.2")
    server.keys = keys
    try:
        with server.client(keys["acme-admin"]) as client:
            server.keys["sales_id"] = upload(client, _csv(root / "sales.csv", 3000, "s"), "sales")
        yield server
    finally:
        log = server.stop()
    assert "Traceback" not in log and "Exception in ASGI" not in log, log[-5000:]


@pytest.fixture(scope="module")
def watched(api: Server) -> dict[str, Any]:
    """One scan requested over HTTP and watched from its start to its end."""
    with api.client(api.keys["acme-scientist"]) as client:
        accepted = request_scan(client, "sales")
        stream = read_sse(client, accepted["events_url"])
    return {"scan_id": accepted["scan_id"], "url": accepted["events_url"], "stream": stream}


def test_progress_then_exactly_one_completed_then_the_end(api: Server, watched: Any) -> None:
    stream: Stream = watched["stream"]
    *progress, last = stream.events
    assert progress and {kind for _, kind, _ in progress} == {"progress"}, stream.kinds
    assert [int(i) for i, _, _ in progress] == list(range(1, len(progress) + 1))
    for _, _, data in progress:
        assert data["job_id"] == watched["scan_id"]
        assert isinstance(data["phase"], str) and data["done"] >= 0
        assert data["total"] == 0 or data["done"] <= data["total"]
    assert progress[0][2]["phase"] == "starting"
    assert len({data["phase"] for _, _, data in progress}) >= 3  # the scan's phases
    outcome_id, kind, outcome = last
    assert (outcome_id, kind) == ("end", "completed")
    assert outcome["status"] == "completed" and 0 <= outcome["score"]["overall"] <= 100
    assert outcome["scan_id"] == watched["scan_id"] == outcome["job_id"]
    assert "keep-alive" in stream.comments  # the job's process took longer than 0.2 s
    # the scan's status resource names the same stream, and agrees with the outcome
    with api.client(api.keys["acme-viewer"]) as client:
        status = client.get(f"/v1/datasets/sales/scan/{watched['scan_id']}").json()
    assert status["events_url"] == watched["url"]
    assert status["score"] == outcome["score"]


def test_reconnecting_with_last_event_id_resumes_after_it(api: Server, watched: Any) -> None:
    events = watched["stream"].events
    middle = events[len(events) // 2 - 1][0]
    assert middle.isdigit()
    with api.client(api.keys["acme-viewer"]) as client:
        resumed = read_sse(client, watched["url"], **{"Last-Event-ID": middle})
        assert resumed.events == [e for e in events if e[0] == "end" or int(e[0]) > int(middle)]
        # a finished job answers at once: everything, then its outcome
        again = read_sse(client, watched["url"])
        assert again.events == events
        # having seen the outcome: nothing follows (204 stops an EventSource)
        done = client.get(watched["url"], headers={"Last-Event-ID": "end"})
        assert done.status_code == 204 and done.content == b""
        assert_problem(client.get(watched["url"], headers={"Last-Event-ID": "x1"}), 422)


def test_a_job_another_process_runs_is_followed(api: Server, tmp_path: Path) -> None:
    """A scan the CLI runs on the server's home: the server does not run its job, so the
    stream follows its phases from the home's job files and ends with its outcome."""
    path = _csv(tmp_path / "cli.csv", 60_000, "cli")
    cli = subprocess.Popen(
        [DATRIX, "scan", str(path), "--name", "by-cli"],
        env=datrix_env(api.home, DATRIX_TENANT="acme"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        with api.client(api.keys["acme-viewer"]) as client:
            deadline = time.monotonic() + 120
            while True:  # the scan is known once the CLI's command is processed
                history = client.get("/v1/quality/by-cli/history")
                if history.status_code == 200 and history.json()["items"]:
                    break
                assert cli.poll() is None and time.monotonic() < deadline, "no scan by the CLI"
                time.sleep(0.05)  # the CLI is ingesting the file: ask again
            (entry,) = history.json()["items"]
            assert entry["status"] in ("queued", "running"), entry
            stream = read_sse(client, f"/v1/jobs/{entry['scan_id']}/events")
    finally:
        _, err = cli.communicate(timeout=600)
    assert cli.returncode == 0, err
    assert stream.kinds[-1] == "completed" and set(stream.kinds[:-1]) == {"progress"}
    ids = [int(i) for i, _, _ in stream.events[:-1]]
    assert ids == list(range(1, len(ids) + 1))
    phases = [data["phase"] for _, _, data in stream.events[:-1]]
    assert len(set(phases)) == len(phases)  # one event per phase, as each starts


def test_a_failed_job_ends_with_failed(api: Server, tmp_path: Path) -> None:
    """A real failure: the stored version's Parquet object is gone when the job runs."""
    with api.client(api.keys["acme-admin"]) as client:
        upload(client, _csv(tmp_path / "doomed.csv", 50, "doomed"), "doomed")
        (version,) = client.get("/v1/datasets/doomed/versions").json()["items"]
        objects = list((api.home / "objects").rglob(f"{version['object_sha256']}*"))
        assert objects
        for path in objects:
            path.unlink()
        accepted = request_scan(client, "doomed")
        stream = read_sse(client, accepted["events_url"])
    assert stream.kinds.count("failed") == 1 and stream.kinds[-1] == "failed", stream.kinds
    assert "completed" not in stream.kinds
    _, _, failed = stream.events[-1]
    assert failed["status"] == "failed" and failed["error"], failed
    assert failed["score"] is None


def test_websocket_streams_until_the_outcome(api: Server) -> None:
    ws_url = api.url.replace("http://", "ws://") + "/v1/ws"
    with api.client(api.keys["acme-scientist"]) as client:
        accepted = request_scan(client, "sales")
    job = accepted["scan_id"]
    bearer = {"Authorization": f"Bearer {api.keys['acme-viewer']}"}
    with connect(ws_url, additional_headers=bearer, open_timeout=30) as ws:
        assert recv(ws) == {"event": "ready", "tenant": "acme"}
        ws.send(json.dumps({"subscribe": job}))
        got = until_outcome(ws, job)
    kinds = [m["event"] for m in got]
    assert kinds[-1] == "completed" and kinds.count("completed") == 1
    assert set(kinds[:-1]) <= {"progress"}
    assert got[-1]["id"] == "end" and got[-1]["data"]["score"]["overall"] is not None
    # the same documents as the SSE stream, and a first-message key works too
    with api.client(api.keys["acme-viewer"]) as client:
        sse = read_sse(client, accepted["events_url"])
    with connect(ws_url, open_timeout=30) as ws:
        ws.send(json.dumps({"api_key": api.keys["acme-admin"]}))
        assert recv(ws)["event"] == "ready"
        ws.send(json.dumps({"subscribe": job}))
        replay = until_outcome(ws, job)
    assert [(m["id"], m["event"], m["data"]) for m in replay] == sse.events


def recv(ws: ClientConnection) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(ws.recv(timeout=120))
    return doc


def until_outcome(ws: ClientConnection, job: str) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while not got or got[-1]["event"] not in ("completed", "failed"):
        message = recv(ws)
        assert message["job_id"] == job, message
        got.append(message)
    return got


def closed_with(ws_url: str, first: str | None = None, **headers: str) -> tuple[int, str]:
    with connect(ws_url, additional_headers=headers, open_timeout=30) as ws:
        if first is not None:
            ws.send(first)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=30)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


def test_websocket_keys_roles_and_tenants(api: Server, watched: Any) -> None:
    ws_url = api.url.replace("http://", "ws://") + "/v1/ws"
    code, reason = closed_with(ws_url, Authorization="Bearer dtx_nope")
    assert code == 4401 and "not valid" in reason
    assert closed_with(ws_url, json.dumps({"api_key": "dtx_nope"}))[0] == 4401
    assert closed_with(ws_url, json.dumps({"subscribe": watched["scan_id"]}))[0] == 4401
    assert closed_with(ws_url, "not json")[0] == 4401
    annotator = f"Bearer {api.keys['acme-annotator']}"
    code, reason = closed_with(ws_url, Authorization=annotator)
    assert code == 4403 and "quality:read" in reason
    # another tenant's job is not found, as any unknown job; bad messages are answered
    with connect(ws_url, open_timeout=30) as ws:
        ws.send(json.dumps({"api_key": api.keys["globex-admin"]}))
        assert recv(ws)["event"] == "ready"
        for job in (watched["scan_id"], "no-such-job"):
            ws.send(json.dumps({"subscribe": job}))
            answer = recv(ws)
            assert answer["event"] == "error" and answer["job_id"] == job
            assert answer["problem"]["status"] == 404
        ws.send(json.dumps({"watch": 1}))
        assert recv(ws)["problem"]["status"] == 400
        ws.send(b"\xff not json")  # a binary frame that is not JSON either
        assert recv(ws)["problem"]["detail"] == "not JSON"
        ws.send(json.dumps({"subscribe": watched["scan_id"], "last_event_id": "x"}))
        assert recv(ws)["problem"]["status"] == 400


def test_sse_keys_roles_and_tenants(api: Server, watched: Any) -> None:
    url = watched["url"]
    with api.client() as anonymous:
        assert_problem(anonymous.get(url), 401)
        assert_problem(anonymous.get(url, headers={"Authorization": "Bearer dtx_nope"}), 401)
    with api.client(api.keys["globex-admin"]) as other:
        body = assert_problem(other.get(url), 404)
        assert "no job" in body["detail"]
    with api.client(api.keys["acme-annotator"]) as annotator:
        assert "annotator" in assert_problem(annotator.get(url), 403)["detail"]
    with api.client(api.keys["acme-viewer"]) as viewer:
        assert_problem(viewer.get("/v1/jobs/no-such-job/events"), 404)
        assert_problem(viewer.get(f"/v1/jobs/{api.keys['sales_id']}/events"), 404)


def test_metrics_show_requests_by_route_and_commands(api: Server, watched: Any) -> None:
    with api.client() as anonymous:  # no key: docs/security.md "/metrics"
        response = anonymous.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        text = response.text
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }

    def sample(name: str, **labels: str) -> float:
        for key, value in samples.items():
            metric, _, rest = key.partition("{")
            found = dict(re.findall(r'(\w+)="([^"]*)"', rest))
            if metric == name and all(found.get(k) == v for k, v in labels.items()):
                return value
        raise AssertionError(f"no {name} {labels} in:\n{text}")

    histogram = "datrix_api_request_duration_seconds"
    events = "/v1/jobs/{job_id}/events"
    assert sample(f"{histogram}_count", route=events, method="GET", status="200") >= 1
    assert sample(f"{histogram}_count", route=events, method="GET", status="401") >= 1
    assert sample(f"{histogram}_bucket", route=events, method="GET", status="200", le="+Inf")
    scans = "/v1/datasets/{dataset_id}/scan"
    assert sample(f"{histogram}_count", route=scans, method="POST", status="202") >= 1
    assert sample("datrix_api_commands_submitted_total", type="datrix.scan.RequestScan") >= 1
    assert sample("datrix_commands_processed", type="datrix.scan.RequestScan", outcome="accepted")
    assert sample("datrix_commands_processed", type="datrix.scan.CompleteScan") >= 1
    assert sample("datrix_commands_pending") >= 0 and sample("datrix_events_unprojected") >= 0
    # route templates, never raw paths; no tenant or dataset in any label
    assert watched["scan_id"] not in text and api.keys["sales_id"] not in text
    for secret in ("acme", "globex", "sales", "doomed"):
        assert secret not in text


def test_metrics_can_be_turned_off(tmp_path: Path) -> None:
    server = start_server(tmp_path / "home", tmp_path / "serve.log", DATRIX_API_METRICS="false")
    try:
        with server.client() as client:
            assert "DATRIX_API_METRICS" in assert_problem(client.get("/metrics"), 404)["detail"]
    finally:
        server.stop()


def test_several_workers_stream_the_outcome_and_sum_the_metrics(tmp_path: Path) -> None:
    """``--workers 2``: a stream read from either process ends with the job's outcome (the
    process that runs the job: its progress; the other: the read models), and /metrics
    counts every process's requests, whichever process answers the scrape."""
    home = tmp_path / "home"
    key = create_key(home, "acme", "admin")
    server = start_server(home, tmp_path / "serve.log", "--workers", "2")
    try:
        with server.client(key) as client:
            upload(client, _csv(tmp_path / "sales.csv", 500, "w"), "sales")
            accepted = request_scan(client, "sales")
            outcomes = []
            for _ in range(4):  # new connections: the kernel spreads them over the processes
                with httpx.Client(base_url=server.url, headers=client.headers) as fresh:
                    deadline = time.monotonic() + 60
                    # a process that did not take the request knows the scan once the
                    # other one's intake processed its command (at once, nothing else runs)
                    while fresh.get(f"/v1/datasets/sales/scan/{accepted['scan_id']}").is_error:
                        assert time.monotonic() < deadline
                        time.sleep(0.1)  # not processed yet: ask again
                    stream = read_sse(fresh, accepted["events_url"])
                outcomes.append(stream.events[-1])
                assert set(stream.kinds[:-1]) <= {"progress"}
            assert {(i, kind) for i, kind, _ in outcomes} == {("end", "completed")}
            for _ in range(10):
                with httpx.Client(base_url=server.url, headers=client.headers) as fresh:
                    assert fresh.get("/v1/datasets").status_code == 200
            counts = set()
            for _ in range(4):
                with httpx.Client(base_url=server.url) as fresh:
                    text = fresh.get("/metrics").text
                line = next(
                    x
                    for x in text.splitlines()
                    if x.startswith("datrix_api_request_duration_seconds_count{")
                    and 'route="/v1/datasets"' in x
                    and 'method="GET"' in x
                )
                counts.add(float(line.rsplit(" ", 1)[1]))
            assert counts == {10.0}, counts
    finally:
        server.stop()
    assert (home / "metrics").is_dir()


def test_kafka_mode_streams_live_progress_and_the_outcome(kafka_cli: KafkaCli) -> None:
    """Kafka mode: the workers run the job; the stream relays their live progress (Redis
    pub/sub) and ends with the outcome from the read models (Postgres)."""
    home = kafka_cli.home
    made = kafka_cli("keys", "create", "--tenant", "acme", "--role", "admin")  # in Postgres
    assert made.code == 0, made.stderr
    key = made.stdout.split()[-1]
    kafka_cli.start_worker()
    env = {k: v for k, v in kafka_cli.env().items() if k.startswith("DATRIX_")}
    env.pop("DATRIX_HOME")
    server = start_server(home, home.parent / "serve.log", **env)
    try:
        with server.client(key) as client:
            upload(client, _csv(home.parent / "sales.csv", 20_000, "k"), "sales")
            accepted = request_scan(client, "sales")
            stream = read_sse(client, accepted["events_url"])
            assert stream.kinds[-1] == "completed" and stream.kinds.count("completed") == 1
            assert stream.kinds.count("progress") >= 1, stream.kinds
            assert set(stream.kinds[:-1]) == {"progress"}
            ids = [int(i) for i, kind, _ in stream.events if kind == "progress"]
            assert ids == list(range(1, len(ids) + 1))
            assert stream.events[-1][2]["score"]["overall"] is not None
            # a finished job answers at once: what the workers published (read from the
            # job-progress topic, numbered by them), then its outcome
            again = read_sse(client, accepted["events_url"])
            assert again.kinds[-1] == "completed" and again.kinds.count("progress") >= 1
            published = [int(i) for i, kind, _ in again.events if kind == "progress"]
            assert published == list(range(1, len(published) + 1))
            # and a reconnect after the last of them gets only the outcome
            resumed = read_sse(
                client, accepted["events_url"], **{"Last-Event-ID": str(published[-1])}
            )
            assert resumed.kinds == ["completed"]
            metrics = client.get("/metrics").text
        assert "datrix_commands_processed{" in metrics
        lag = dict(re.findall(r'^datrix_consumer_lag\{group="(\w+)"\} (\S+)$', metrics, re.M))
        assert set(lag) == {"processor", "projector", "jobs"}, metrics
        assert all(float(v) >= 0 for v in lag.values())
    finally:
        server.stop()
