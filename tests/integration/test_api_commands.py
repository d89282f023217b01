"""Commands over HTTP against a real ``datrix serve`` (embedded default): a scan and a
deletion answer 202 with a Location to poll, the server's intake processes them (and runs
the scan's job), roles and tenants hold for writes too."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.api_server import (
    Server,
    assert_problem,
    create_key,
    role_keys,
    scan,
    small_csv,
    start_server,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("api-commands")
    home = root / "home"
    keys = role_keys(home)
    sales = scan(home, small_csv(root / "sales.csv", 80), "sales", "acme")
    scan(home, small_csv(root / "old.csv", 20), "old", "acme")
    server = start_server(home, root / "serve.log")
    server.keys = {**keys, "sales_id": sales["dataset_id"], "sales_scan": sales["scan_id"]}
    try:
        yield server
    finally:
        server.stop()


def poll(client: httpx.Client, url: str, done: Callable[[dict[str, Any]], bool]) -> Any:
    """GET ``url`` until ``done`` holds for its body (at most two minutes)."""
    deadline = time.monotonic() + 120
    while True:
        response = client.get(url)
        assert response.status_code == 200, response.text
        body = response.json()
        if done(body):
            return body
        assert time.monotonic() < deadline, f"{url} still {body}"
        time.sleep(0.1)  # the intake thread is processing: ask again


def test_a_scan_is_accepted_then_completes(api: Server) -> None:
    with api.client(api.keys["acme-scientist"]) as client:
        response = client.post("/v1/datasets/sales/scan", json={"engine": "polars"})
        assert response.status_code == 202, response.text
        body = response.json()
        location = response.headers["location"]
        assert location == f"/v1/datasets/{api.keys['sales_id']}/scan/{body['scan_id']}"
        assert body["status"] == "queued" and body["status_url"] == location
        done = poll(client, location, lambda b: b["status"] in ("completed", "failed"))
        assert done["status"] == "completed", done
        assert 0 <= done["score"]["overall"] <= 100 and done["dataset_version"] == 1
        command = client.get(f"/v1/commands/{body['command_id']}").json()
        assert command == {"id": body["command_id"], "status": "accepted", "reason": None}
        # the dataset's current quality is now this scan's
        assert client.get("/v1/quality/sales/score").json()["scan_id"] == body["scan_id"]
        history = client.get("/v1/quality/sales/history").json()["items"]
        assert [h["scan_id"] for h in history][-1] == body["scan_id"]


def test_a_scan_body_is_validated(api: Server) -> None:
    with api.client(api.keys["acme-admin"]) as client:
        for bad in ({"engine": "gpu"}, {"nope": 1}, {"weights": {"accuracy": "x"}}):
            assert_problem(client.post("/v1/datasets/sales/scan", json=bad), 422)
        refused = client.post("/v1/datasets/sales/scan", json={"weights": {"speed": 1}})
        assert "weights" in assert_problem(refused, 400)["detail"]
        assert_problem(client.post("/v1/datasets/no-such/scan"), 404)
        assert_problem(client.get(f"/v1/datasets/sales/scan/{api.keys['sales_id']}"), 404)


def test_writes_need_the_role(api: Server) -> None:
    for role in ("viewer", "annotator"):
        with api.client(api.keys[f"acme-{role}"]) as client:
            assert_problem(client.post("/v1/datasets/sales/scan"), 403)
            assert_problem(client.delete("/v1/datasets/sales"), 403)
    with api.client(api.keys["acme-scientist"]) as client:  # scans, but no deletions
        assert_problem(client.delete("/v1/datasets/sales"), 403)


def test_another_tenant_cannot_scan_or_delete(api: Server) -> None:
    sales = api.keys["sales_id"]
    with api.client(api.keys["globex-admin"]) as client:
        for ref in (sales, sales[:8], "sales"):
            assert_problem(client.post(f"/v1/datasets/{ref}/scan"), 404)
            assert_problem(client.delete(f"/v1/datasets/{ref}"), 404)
        assert_problem(client.get(f"/v1/datasets/{sales}/scan/{api.keys['sales_scan']}"), 404)
    with api.client(api.keys["acme-viewer"]) as client:
        assert client.get("/v1/datasets/sales").status_code == 200


def test_delete_is_accepted_then_the_dataset_is_gone(api: Server) -> None:
    with api.client(api.keys["acme-engineer"]) as client:
        response = client.delete("/v1/datasets/old")
        assert response.status_code == 202, response.text
        location = response.headers["location"]
        assert location == f"/v1/commands/{response.json()['command_id']}"
        done = poll(client, location, lambda b: b["status"] != "queued")
        assert done["status"] == "accepted", done
        assert_problem(client.get("/v1/datasets/old"), 404)
        names = [d["name"] for d in client.get("/v1/datasets").json()["items"]]
        assert "old" not in names and "sales" in names
        deleted = client.get("/v1/datasets", params={"status": "deleted"}).json()["items"]
        assert [d["name"] for d in deleted] == ["old"]


def test_method_not_allowed_names_every_method_of_the_path(api: Server) -> None:
    with api.client(api.keys["acme-viewer"]) as client:
        response = client.put("/v1/datasets/sales")
        assert_problem(response, 405)
        assert set(response.headers["allow"].split(", ")) == {"GET", "DELETE"}


def test_upload_then_scan_then_read_the_issues(api: Server, tmp_path: Path) -> None:
    data = small_csv(tmp_path / "orders.csv", 200).read_bytes()
    with api.client(api.keys["acme-engineer"]) as client:
        response = client.post(
            "/v1/datasets", params={"name": "orders", "filename": "orders.csv"}, content=data
        )
        assert response.status_code == 202, response.text
        body = response.json()
        assert response.headers["location"] == f"/v1/commands/{body['command_id']}"
        done = poll(client, response.headers["location"], lambda b: b["status"] != "queued")
        assert done["status"] == "accepted", done
        dataset = client.get(f"/v1/datasets/{body['dataset_id']}").json()
        assert dataset["name"] == "orders" and dataset["latest_version"] == 1
        assert dataset["row_count"] == 200 and dataset["score"] is None
        (version,) = client.get("/v1/datasets/orders/versions").json()["items"]
        assert version["format"] == "csv" and version["column_count"] == 3
        # the same bytes again: nothing new
        again = client.post("/v1/datasets", params={"name": "orders"}, content=data)
        assert again.status_code == 200 and again.json()["status"] == "unchanged"
        scan_response = client.post("/v1/datasets/orders/scan")
        assert scan_response.status_code == 202, scan_response.text
        ended = poll(
            client,
            scan_response.headers["location"],
            lambda b: b["status"] != "queued" and b["status"] != "running",
        )
        assert ended["status"] == "completed", ended
        issues = client.get("/v1/quality/orders/issues").json()["items"]
        nulls = next(i for i in issues if i["column"] == "email" and i["type"] == "null_values")
        assert nulls["affected_count"] == 50


def test_a_bad_upload_is_422_and_records_nothing(api: Server) -> None:
    with api.client(api.keys["acme-admin"]) as client:
        before = client.get("/v1/datasets", params={"limit": 100}).json()["items"]
        objects = sorted((api.home / "objects").rglob("*.parquet"))
        for body, filename in (
            (b"PAR1 not really parquet", "x.parquet"),
            (b"a,b\n\x00\x01\x02,3\n", "x.csv"),
            (b"", "x.csv"),
        ):
            response = client.post(
                "/v1/datasets", params={"name": "broken", "filename": filename}, content=body
            )
            problem = assert_problem(response, 422)
            assert problem["detail"], problem
        assert_problem(client.post("/v1/datasets", content=b"a\n1\n"), 422)  # no name
        for encoding in ("bogus", "utf\x008"):  # a NUL in a query parameter was a 500
            query = {"name": "broken", "encoding": encoding}
            problem = assert_problem(
                client.post("/v1/datasets", params=query, content=b"a\n1\n"), 422
            )
            assert "not a known text encoding" in problem["detail"]
        assert client.get("/v1/datasets", params={"limit": 100}).json()["items"] == before
        assert sorted((api.home / "objects").rglob("*.parquet")) == objects
    with api.client(api.keys["acme-viewer"]) as client:
        assert_problem(client.post("/v1/datasets", params={"name": "x"}, content=b"a\n1\n"), 403)


def test_an_upload_over_the_limit_is_413(tmp_path: Path) -> None:
    home = tmp_path / "home"
    key = create_key(home, "acme", "engineer")
    server = start_server(home, tmp_path / "serve.log", DATRIX_API_MAX_UPLOAD_MB="0.01")
    try:
        with server.client(key) as client:
            big = b"a,b\n" + b"1,2\n" * 5000  # 20 kB > 10 kB
            problem = assert_problem(client.post("/v1/datasets?name=big", content=big), 413)
            assert "DATRIX_API_MAX_UPLOAD_MB" in problem["detail"]
            small = client.post("/v1/datasets?name=small", content=b"a,b\n1,2\n")
            assert small.status_code == 202, small.text
            # chunked, without a Content-Length: counted while it streams in
            chunks = iter([b"a,b\n", *([b"1,2\n" * 1000] * 5)])
            streamed = client.post("/v1/datasets?name=streamed", content=chunks)
            assert_problem(streamed, 413)
            names = [d["name"] for d in client.get("/v1/datasets").json()["items"]]
            assert "big" not in names and "streamed" not in names
    finally:
        server.stop()
    assert not any((home / "tmp").glob("upload-*"))


def test_idempotency_key_gives_the_first_answer_once(api: Server) -> None:
    with api.client(api.keys["acme-scientist"]) as client:
        before = len(client.get("/v1/quality/sales/history").json()["items"])
        headers = {"Idempotency-Key": "scan-sales-1"}
        first = client.post("/v1/datasets/sales/scan", headers=headers)
        assert first.status_code == 202, first.text
        again = client.post("/v1/datasets/sales/scan", headers=headers)
        assert again.status_code == 202 and again.json() == first.json()
        assert again.headers["location"] == first.headers["location"]
        assert again.headers["idempotent-replayed"] == "true"
        poll(client, first.headers["location"], lambda b: b["status"] in ("completed", "failed"))
        history = client.get("/v1/quality/sales/history").json()["items"]
        assert len(history) == before + 1
        # the same key for another request is refused; a malformed key too
        other = client.post("/v1/datasets/old/scan", headers=headers)
        assert "another request" in assert_problem(other, 422)["detail"]
        assert_problem(
            client.post("/v1/datasets/sales/scan", headers={"Idempotency-Key": "x" * 300}), 400
        )
    # another API key with the same Idempotency-Key is another request
    with api.client(api.keys["acme-admin"]) as client:
        mine = client.post("/v1/datasets/sales/scan", headers=headers)
        assert mine.status_code == 202 and mine.json()["scan_id"] != first.json()["scan_id"]
        assert "idempotent-replayed" not in mine.headers
        poll(client, mine.headers["location"], lambda b: b["status"] in ("completed", "failed"))


def test_idempotency_survives_a_restart(tmp_path: Path) -> None:
    home = tmp_path / "home"
    key = create_key(home, "acme", "engineer")
    data = small_csv(tmp_path / "a.csv", 30).read_bytes()
    headers = {"Idempotency-Key": "upload-a"}
    server = start_server(home, tmp_path / "serve.log")
    try:
        with server.client(key) as client:
            first = client.post("/v1/datasets?name=a", content=data, headers=headers)
            assert first.status_code == 202, first.text
            poll(client, first.headers["location"], lambda b: b["status"] != "queued")
    finally:
        server.stop()
    server = start_server(home, tmp_path / "serve2.log")
    try:
        with server.client(key) as client:
            again = client.post("/v1/datasets?name=a", content=data, headers=headers)
            assert again.status_code == 202 and again.json() == first.json()
            assert again.headers["idempotent-replayed"] == "true"
            # the same key with another body is another request: refused (IETF draft)
            changed = data.replace(b"id,", b"key,")
            refused = client.post("/v1/datasets?name=a", content=changed, headers=headers)
            assert "body" in assert_problem(refused, 422)["detail"]
            versions = client.get("/v1/datasets/a/versions").json()["items"]
            assert len(versions) == 1
    finally:
        server.stop()


def test_idempotency_key_with_another_body_is_refused(api: Server) -> None:
    with api.client(api.keys["acme-scientist"]) as client:
        headers = {"Idempotency-Key": "scan-sales-body"}
        first = client.post("/v1/datasets/sales/scan", json={"engine": "polars"}, headers=headers)
        assert first.status_code == 202, first.text
        same = client.post("/v1/datasets/sales/scan", json={"engine": "polars"}, headers=headers)
        assert same.status_code == 202 and same.json() == first.json()
        other = client.post("/v1/datasets/sales/scan", json={"engine": "auto"}, headers=headers)
        problem = assert_problem(other, 422)
        assert problem["type"].endswith("idempotency-key-reused"), problem
        poll(client, first.headers["location"], lambda b: b["status"] in ("completed", "failed"))


def _killed(server: Server, send: Callable[[httpx.Client], httpx.Response], key: str) -> None:
    """``send`` reaches a server that SIGKILLs itself once the command is in the log
    (DATRIX_TEST_JOB_FAULT=kill@command-logged): no answer, nothing stored for it."""
    with server.client(key) as client, pytest.raises(httpx.TransportError):
        send(client)
    assert server.proc.wait(timeout=30) == -9


def test_a_retry_after_a_kill_submits_the_same_command_once(tmp_path: Path) -> None:
    """The server is killed after the command is submitted and before its answer is
    stored: the retry (at once: the reservation's process is gone) runs again with the
    same command ids (derived from the API key and Idempotency-Key), so one version and
    one scan come of two submissions."""
    home = tmp_path / "home"
    key = create_key(home, "acme", "engineer")
    first = scan(home, small_csv(tmp_path / "k1.csv", 30), "k", "acme")  # version 1
    data = small_csv(tmp_path / "k.csv", 40).read_bytes()  # version 2: one command to submit
    upload = {"Idempotency-Key": "upload-k"}
    fault = {"DATRIX_TEST_JOB_FAULT": "kill@command-logged"}

    def post_upload(client: httpx.Client) -> httpx.Response:
        return client.post("/v1/datasets?name=k", content=data, headers=upload)

    _killed(start_server(home, tmp_path / "s1.log", **fault), post_upload, key)
    server = start_server(home, tmp_path / "s2.log")
    try:
        with server.client(key) as client:
            retried = post_upload(client)
            # the same command again (fresh ids: 200 "unchanged", the version being there)
            assert retried.status_code == 202, retried.text
            assert "idempotent-replayed" not in retried.headers  # ran again
            done = poll(client, retried.headers["location"], lambda b: b["status"] != "queued")
            assert done["status"] == "accepted", done
            assert len(client.get("/v1/datasets/k/versions").json()["items"]) == 2
            replayed = post_upload(client)
            assert replayed.json() == retried.json()
            assert replayed.headers["idempotent-replayed"] == "true"
    finally:
        server.stop()
    scan_key = {"Idempotency-Key": "scan-k"}

    def post_scan(client: httpx.Client) -> httpx.Response:
        return client.post("/v1/datasets/k/scan", json={"engine": "polars"}, headers=scan_key)

    _killed(start_server(home, tmp_path / "s3.log", **fault), post_scan, key)
    server = start_server(home, tmp_path / "s4.log")
    try:
        with server.client(key) as client:
            retried = post_scan(client)
            assert retried.status_code == 202, retried.text
            ended = poll(client, retried.headers["location"], lambda b: b["status"] not in QUEUED)
            assert ended["status"] == "completed", ended
            history = client.get("/v1/quality/k/history").json()["items"]
            assert [h["scan_id"] for h in history] == [first["scan_id"], retried.json()["scan_id"]]
            command = client.get(f"/v1/commands/{retried.json()['command_id']}").json()
            assert command["status"] == "accepted", command
    finally:
        server.stop()


QUEUED = ("queued", "running")


def test_readme_curl_example_runs(tmp_path: Path) -> None:
    """The README's curl walk-through, as written: upload, scan, watch, read."""
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- api-example -->\s*```bash\n(.*?)```", readme, re.S)
    assert found, "README.md has no api-example block"
    home = tmp_path / "home"
    key = create_key(home, "acme", "engineer")
    work = tmp_path / "work"
    work.mkdir()
    small_csv(work / "sales.csv", 100)
    server = start_server(home, tmp_path / "serve.log")
    try:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", found.group(1)],
            capture_output=True,
            text=True,
            timeout=180,
            cwd=work,
            env={"PATH": "/usr/bin:/bin", "DATRIX_URL": server.url, "DATRIX_API_KEY": key},
            stdin=subprocess.DEVNULL,
        )
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr
    # the scan's event stream, ending with its outcome, then the two bodies back to back
    events, _, bodies = done.stdout.partition("event: completed\n")
    assert "event: progress" in events and bodies.startswith("data: "), done.stdout[:2000]
    decoder = json.JSONDecoder()
    start = bodies.index("\n\n") + 2  # the outcome's data line, then an empty line
    score, end = decoder.raw_decode(bodies, start)
    page, _ = decoder.raw_decode(bodies, end)
    assert score["score"]["overall"] is not None
    issues = page["items"]
    assert issues and issues[0]["impact_score"] >= issues[-1]["impact_score"]


def test_a_key_over_its_rate_gets_429_with_retry_after(tmp_path: Path) -> None:
    home = tmp_path / "home"
    busy, other = create_key(home, "acme", "viewer"), create_key(home, "acme", "viewer")
    server = start_server(home, tmp_path / "serve.log", DATRIX_API_RATE_LIMIT="2")
    try:
        with server.client(busy) as client:
            answers = [client.get("/v1/datasets") for _ in range(12)]
            codes = [a.status_code for a in answers]
            assert codes[:4] == [200] * 4 and 429 in codes, codes  # a burst of twice the rate
            limited = next(a for a in answers if a.status_code == 429)
            assert "2 requests per second" in assert_problem(limited, 429)["detail"]
            wait = int(limited.headers["retry-after"])
            assert wait >= 1
            with server.client(other) as neighbour:  # each key has its own budget
                assert neighbour.get("/v1/datasets").status_code == 200
            time.sleep(wait)  # what the server asked for
            assert client.get("/v1/datasets").status_code == 200
    finally:
        server.stop()
