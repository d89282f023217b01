"""The HTTP API in Kafka mode, on the real services of ``deploy/local`` (SASL broker,
PostgreSQL roles, S3Proxy, Redis): a real ``datrix serve`` as the app principal, a real
``datrix worker`` (all roles) as the worker principal with a home of its own, keys made
by ``datrix keys`` in PostgreSQL. Each module run has its own topic prefix, schema and
object prefix, so it shares nothing with other tests but the services."""

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

from tests.integration.api_server import Server, assert_problem, free_port, start_server
from tests.integration.conftest import KafkaCli

pytestmark = pytest.mark.integration


def _csv(path: Path, rows: int) -> Path:
    lines = ["id,email,amount"]
    lines += [f"{i},{'' if i % 4 == 0 else f'u{i}@example.com'},{i % 9}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


APP_NAME = f"datrix-api-{uuid.uuid4().hex[:8]}"


class Deployment:
    """One Kafka-mode deployment: the CLI's environment (app principal), its worker, and
    the servers started on it (each with a home of its own: no shared disk)."""

    def __init__(self, cli: KafkaCli, root: Path) -> None:
        self.cli = cli
        self.root = root
        self.servers: list[Server] = []

    def key(self, tenant: str, role: str) -> str:
        done = self.cli("keys", "create", "--tenant", tenant, "--role", role)
        assert done.code == 0, done.stderr
        return done.stdout.split()[-1]

    def serve(self, name: str, *args: str, **env: str) -> Server:
        extra = {k: v for k, v in self.cli.env().items() if k.startswith("DATRIX_")}
        extra.pop("DATRIX_HOME", None)
        extra.update(env)
        home = self.root / f"{name}-home"
        server = start_server(home, self.root / f"{name}.log", *args, **extra)
        self.servers.append(server)
        return server


@pytest.fixture(scope="module")
def deployment(
    services: dict[str, str], worker_credentials: dict[str, str], tmp_path_factory: Any
) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("api-kafka")
    tag = uuid.uuid4().hex[:10]
    schema = f"t_{tag}"
    extra = {
        **services,
        "DATRIX_TOPIC_PREFIX": f"t{tag}.",
        "DATRIX_DATABASE_SCHEMA": schema,
        "DATRIX_OBJECT_STORE": f"{services['DATRIX_OBJECT_STORE']}/{schema}",
    }
    cli = KafkaCli(home=root / "cli-home", extra=extra, workers=[], worker_env=worker_credentials)
    found = Deployment(cli, root)
    try:
        cli.start_worker(log=root / "worker.log")
        yield found
    finally:
        for server in found.servers:
            server.stop()
        cli.stop_workers()
        with psycopg.connect(services["DATRIX_DATABASE_URL"], autocommit=True) as db:
            db.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="module")
def api(deployment: Deployment) -> Server:
    keys = {
        "acme-engineer": deployment.key("acme", "engineer"),
        "acme-viewer": deployment.key("acme", "viewer"),
        "globex-admin": deployment.key("globex", "admin"),
    }
    server = deployment.serve("serve", PGAPPNAME=APP_NAME)  # tags its connections
    server.keys = keys
    return server


def poll(client: httpx.Client, url: str, done: Callable[[dict[str, Any]], bool]) -> Any:
    """GET ``url`` until ``done`` holds for its body (at most three minutes)."""
    deadline = time.monotonic() + 180
    while True:
        response = client.get(url)
        assert response.status_code == 200, response.text
        body = response.json()
        if done(body):
            return body
        assert time.monotonic() < deadline, f"{url} still {body}"
        time.sleep(0.2)  # the workers are processing: ask again


@pytest.fixture(scope="module")
def sales(api: Server, tmp_path_factory: Any) -> dict[str, Any]:
    """A CSV uploaded over HTTP, processed by the workers, then scanned by them."""
    data = _csv(tmp_path_factory.mktemp("sales") / "sales.csv", 200).read_bytes()
    with api.client(api.keys["acme-engineer"]) as client:
        response = client.post(
            "/v1/datasets", params={"name": "sales", "filename": "sales.csv"}, content=data
        )
        assert response.status_code == 202, response.text
        body = response.json()
        done = poll(client, response.headers["location"], lambda b: b["status"] != "queued")
        assert done["status"] == "accepted", done
        scanned = client.post(f"/v1/datasets/{body['dataset_id']}/scan")
        assert scanned.status_code == 202, scanned.text
        ended = poll(
            client, scanned.headers["location"], lambda b: b["status"] in ("completed", "failed")
        )
        assert ended["status"] == "completed", ended
    return {"dataset_id": body["dataset_id"], "scan_id": scanned.json()["scan_id"]}


def test_upload_scan_and_read_back(api: Server, sales: dict[str, Any]) -> None:
    with api.client(api.keys["acme-viewer"]) as client:
        dataset = client.get(f"/v1/datasets/{sales['dataset_id']}").json()
        assert dataset["name"] == "sales" and dataset["row_count"] == 200
        score = client.get("/v1/quality/sales/score").json()
        assert score["scan_id"] == sales["scan_id"] and 0 <= score["score"]["overall"] <= 100
        issues = client.get("/v1/quality/sales/issues").json()["items"]
        nulls = next(i for i in issues if i["column"] == "email" and i["type"] == "null_values")
        assert nulls["affected_count"] == 50
    # the upload went to S3, not to the server's disk: the workers read it from there
    assert not list((api.home / "objects").rglob("*.parquet"))
    assert "Traceback" not in api.log.read_text()


def test_another_tenant_sees_nothing(api: Server, sales: dict[str, Any]) -> None:
    dataset, scan = sales["dataset_id"], sales["scan_id"]
    with api.client(api.keys["globex-admin"]) as client:
        assert client.get("/v1/datasets").json()["items"] == []
        for path in (
            f"/v1/datasets/{dataset}",
            "/v1/datasets/sales",
            f"/v1/datasets/{dataset[:8]}",
            f"/v1/datasets/{dataset}/columns",
            f"/v1/datasets/{dataset}/versions",
            f"/v1/datasets/{dataset}/scan/{scan}",
            f"/v1/quality/{dataset}/score",
            f"/v1/quality/{dataset}/issues",
            f"/v1/quality/{dataset}/history",
        ):
            assert_problem(client.get(path), 404)
        assert_problem(client.post(f"/v1/datasets/{dataset}/scan"), 404)
        assert_problem(client.delete(f"/v1/datasets/{dataset}"), 404)


def test_the_server_reads_as_the_reader_in_the_keys_tenant_session(
    deployment: Deployment, api: Server, sales: dict[str, Any]
) -> None:
    with api.client(api.keys["globex-admin"]) as client:
        assert client.get("/v1/datasets").status_code == 200
    env = deployment.cli.env()
    with psycopg.connect(env["DATRIX_DATABASE_URL"]) as db:
        sessions = db.execute(
            "SELECT DISTINCT a.usename, r.rolsuper FROM pg_stat_activity a "
            "JOIN pg_roles r ON r.rolname = a.usename WHERE a.application_name = %s",
            (APP_NAME,),
        ).fetchall()
        issued = db.execute(
            f'SELECT DISTINCT tenant FROM "{env["DATRIX_DATABASE_SCHEMA"]}".reader_sessions'
        ).fetchall()
    assert ("datrix_reader", False) in sessions  # the key lookups' connections, kept open
    assert {role for role, _ in sessions} <= {"datrix_writer", "datrix_reader"}
    assert {"acme", "globex"} <= {tenant for (tenant,) in issued}  # the keys' tenants


def test_keys_live_in_postgres(deployment: Deployment, api: Server) -> None:
    listed = deployment.cli("keys", "list", "--format", "json")
    assert listed.code == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert {(r["tenant"], r["role"]) for r in rows} >= {("acme", "engineer"), ("globex", "admin")}
    assert not any(key in listed.stdout for key in api.keys.values())  # never a secret
    assert not (deployment.cli.home / "keys.db").exists() and not (api.home / "keys.db").exists()
    env = deployment.cli.env()
    schema = env["DATRIX_DATABASE_SCHEMA"]
    with psycopg.connect(env["DATRIX_DATABASE_URL"]) as db:
        stored = db.execute(f'SELECT id, salt, hash FROM "{schema}".api_keys').fetchall()
        forced = db.execute(
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = %s::regclass",
            (f'"{schema}".api_keys',),
        ).fetchone()
    assert forced == (True, True)  # like every table with a tenant column
    assert len(stored) == len(rows)
    secrets = [k.split("_", 2)[2].encode() for k in api.keys.values()]
    assert not any(s in bytes(salt) + bytes(h) for _, salt, h in stored for s in secrets)
    # the reader (the API's per-request role) cannot read the table, only look up one id
    reader = psycopg.connect(env["DATRIX_DATABASE_READER_URL"])
    with reader as db, pytest.raises(psycopg.errors.InsufficientPrivilege):
        db.execute(f'SELECT * FROM "{schema}".api_keys')
    # a key made and revoked through the CLI works, then stops working at once
    key = deployment.key("acme", "viewer")
    with api.client(key) as client:
        assert client.get("/v1/datasets").status_code == 200
        revoked = deployment.cli("keys", "revoke", key.split("_")[1])
        assert revoked.code == 0, revoked.stderr
        assert_problem(client.get("/v1/datasets"), 401)


def test_the_rate_limit_is_shared_by_two_servers_through_redis(deployment: Deployment) -> None:
    first = deployment.serve("limited-a", DATRIX_API_RATE_LIMIT="0.5")
    second = deployment.serve("limited-b", "--workers", "2", DATRIX_API_RATE_LIMIT="0.5")
    for server in (first, second):  # each builds the tenant's runtime once, unhurried
        with server.client(deployment.key("acme", "viewer")) as client:
            assert client.get("/v1/datasets").status_code == 200
    key = deployment.key("acme", "viewer")
    # 0.5 requests a second, bursts of 1 (a token every 2 s): a request to the first server
    # takes the bucket; the next, to the second server (either of its processes), finds it
    # empty (on its own each process would have had its token)
    with first.client(key) as a, second.client(key) as b:
        assert a.get("/v1/datasets").status_code == 200
        refused = b.get("/v1/datasets")
    problem = assert_problem(refused, 429)
    assert int(refused.headers["retry-after"]) >= 1 and "per second" in problem["detail"]
    # the bucket is the Redis key of this deployment's namespace
    import redis

    env = deployment.cli.env()
    client = redis.Redis.from_url(env["DATRIX_REDIS_URL"])
    namespace = f"datrix:{env['DATRIX_TOPIC_PREFIX']}:{env['DATRIX_DATABASE_SCHEMA']}"
    assert client.exists(f"{namespace}:_api:ratelimit:{key.split('_')[1]}")
    client.close()


def test_ready_checks_each_service(api: Server) -> None:
    with httpx.Client(base_url=api.url, timeout=30) as client:
        response = client.get("/health/ready")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"] == {
        name: "ok" for name in ("read_models", "keys", "object_store", "kafka", "redis")
    }


@pytest.mark.parametrize(
    ("variable", "closed", "failing"),
    [
        ("DATRIX_S3_ENDPOINT", "http://127.0.0.1:{port}", {"object_store"}),
        (
            "DATRIX_DATABASE_READER_URL",
            "postgresql://datrix_reader:x@127.0.0.1:{port}/datrix",
            {"read_models", "keys"},
        ),
    ],
)
def test_ready_is_503_naming_a_service_that_is_down(
    deployment: Deployment, api: Server, variable: str, closed: str, failing: set[str]
) -> None:
    server = deployment.serve(f"down-{variable}", **{variable: closed.format(port=free_port())})
    with httpx.Client(base_url=server.url, timeout=30) as client:
        response = client.get("/health/ready")
    problem = assert_problem(response, 503)
    assert problem["detail"] == "not ready: " + ", ".join(
        name for name in problem["checks"] if name in failing
    )
    assert {k for k, v in problem["checks"].items() if v.startswith("failed: ")} == failing
    every = {"read_models", "keys", "object_store", "kafka", "redis"}
    assert {k for k, v in problem["checks"].items() if v == "ok"} == every - failing
    if "keys" in failing:  # no key can be checked: every request is a 503, never a 500
        with server.client(api.keys["acme-viewer"]) as client:
            assert "unreachable" in assert_problem(client.get("/v1/datasets"), 503)["detail"]


def test_without_redis_the_api_is_degraded_and_limits_in_process(deployment: Deployment) -> None:
    server = deployment.serve(
        "no-redis",
        DATRIX_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
        DATRIX_API_RATE_LIMIT="1",
    )
    with httpx.Client(base_url=server.url, timeout=30) as client:
        response = client.get("/health/ready")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "degraded" and body["checks"]["redis"].startswith("failed: ")
    assert {v for k, v in body["checks"].items() if k != "redis"} == {"ok"}
    key = deployment.key("acme", "viewer")
    with server.client(key) as client:
        answers = [client.get("/v1/datasets").status_code for _ in range(4)]
    assert answers[:2] == [200, 200] and 429 in answers[2:]  # this process's bucket
    log = server.stop()
    assert log.count("Redis unavailable for rate limits") == 1, log


def test_serve_in_kafka_mode_needs_an_object_store_the_workers_share(
    deployment: Deployment,
) -> None:
    import subprocess

    from tests.integration.api_server import DATRIX, datrix_env

    env = {k: v for k, v in deployment.cli.env().items() if k.startswith("DATRIX_")}
    env.pop("DATRIX_OBJECT_STORE")
    env.pop("DATRIX_HOME")
    done = subprocess.run(
        [DATRIX, "serve", "--port", str(free_port())],
        capture_output=True,
        text=True,
        env=datrix_env(deployment.root / "no-store-home", **env),
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2, done.stderr
    assert "DATRIX_OBJECT_STORE=s3://" in done.stderr and len(done.stderr.splitlines()) == 1


def test_an_idempotent_retry_on_another_server_gets_the_first_answer(
    deployment: Deployment, api: Server, sales: dict[str, Any]
) -> None:
    other = deployment.serve("serve-b")
    scan_url = f"/v1/datasets/{sales['dataset_id']}/scan"
    headers = {"Idempotency-Key": f"scan-{uuid.uuid4()}"}
    key = api.keys["acme-engineer"]
    with api.client(key) as a, other.client(key) as b:
        first = a.post(scan_url, headers=headers)
        assert first.status_code == 202, first.text
        again = b.post(scan_url, headers=headers)  # a retry the load balancer sent elsewhere
        assert again.status_code == 202 and again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
        assert again.headers["location"] == first.headers["location"]
        # the key reused with another request, on the other host, is refused
        other_body = b.post(scan_url, headers=headers, json={"engine": "polars"})
        assert other_body.status_code == 422, other_body.text
        assert "another request" in other_body.json()["detail"]
        ended = poll(
            b, first.headers["location"], lambda body: body["status"] in ("completed", "failed")
        )
        assert ended["status"] == "completed", ended
        history = b.get("/v1/quality/sales/history").json()["items"]
    # one new scan, not two
    assert [h["scan_id"] for h in history] == [sales["scan_id"], first.json()["scan_id"]]
