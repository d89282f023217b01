"""The API's results and audit reads and its multipart upload, against a real ``datrix
serve`` (embedded default): an issue's affected rows, paged, as ``datrix rows`` prints
them; the audit trail, filtered and paged, as ``datrix audit log`` shows it, and its
verification; an upload as a multipart form, streamed, with the raw body's limits and
validation; the server's memory while a large file streams in."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.api_server import (
    Server,
    assert_problem,
    create_key,
    role_keys,
    run_cli,
    scan,
    small_csv,
    start_server,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("api-reads")
    home = root / "home"
    keys = role_keys(home)
    sales = scan(home, small_csv(root / "sales.csv", 90), "sales", "acme")
    ledger = scan(home, small_csv(root / "ledger.csv", 30), "ledger", "globex")
    server = start_server(home, root / "serve.log")
    server.keys = {
        **keys,
        "sales_id": sales["dataset_id"],
        "sales_scan": sales["scan_id"],
        "ledger_scan": ledger["scan_id"],
    }
    try:
        yield server
    finally:
        server.stop()


def _all_pages(client: httpx.Client, url: str, **params: Any) -> list[Any]:
    items: list[Any] = []
    cursor = None
    while True:
        page = client.get(url, params={**params, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["items"]) <= params.get("limit", 20)
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


# -- affected rows --------------------------------------------------------------------
def test_issue_rows_page_through_what_datrix_rows_prints(api: Server) -> None:
    scan_id = api.keys["sales_scan"]
    with api.client(api.keys["acme-viewer"]) as client:
        issues = client.get("/v1/quality/sales/issues", params={"limit": 100}).json()["items"]
        nulls = next(i for i in issues if i["column"] == "email" and i["type"] == "null_values")
        assert nulls["affected_count"] == 23  # rows 0, 4, ..., 88
        url = f"/v1/scans/{scan_id}/issues/{nulls['id']}/rows"
        rows = _all_pages(client, url, limit=5)
        first = client.get(url).json()  # default page: 20
        assert first["affected_count"] == 23 and len(first["items"]) == 20
        assert first["scan_id"] == scan_id and first["issue_id"] == nulls["id"]
        # id prefixes, as the CLI takes them
        short = client.get(f"/v1/scans/{scan_id[:8]}/issues/{nulls['id'].lower()}/rows")
        assert short.json()["items"] == first["items"]
        assert_problem(client.get(url, params={"limit": 101}), 422)
        assert_problem(client.get(url, params={"cursor": "bm9wZQ"}), 400)
        other = f"/v1/scans/{scan_id}/issues/{issues[-1]['id']}/rows"
        if issues[-1]["id"] != nulls["id"]:  # a cursor of another issue's rows
            assert_problem(client.get(other, params={"cursor": first["next_cursor"]}), 400)
        assert_problem(client.get(f"/v1/scans/{scan_id}/issues/I999/rows"), 404)
    done = run_cli(api.home, "rows", scan_id, nulls["id"], tenant="acme")
    assert done.returncode == 0, done.stderr
    assert rows == [int(line) for line in done.stdout.split()] == list(range(0, 90, 4))


def test_issue_rows_roles_and_tenants(api: Server) -> None:
    scan_id = api.keys["sales_scan"]
    with api.client(api.keys["acme-admin"]) as client:
        issue = client.get("/v1/quality/sales/issues").json()["items"][0]["id"]
    url = f"/v1/scans/{scan_id}/issues/{issue}/rows"
    # seeds 000 §2.2: an annotator has no data access; the rows are quality results
    assert_problem(api.client(api.keys["acme-annotator"]).get(url), 403)
    for role in ("viewer", "scientist", "engineer", "admin"):
        assert api.client(api.keys[f"acme-{role}"]).get(url).status_code == 200, role
    with api.client(api.keys["globex-admin"]) as client:
        assert_problem(client.get(url), 404)
        assert_problem(client.get(f"/v1/scans/{scan_id[:8]}/issues/{issue}/rows"), 404)
    assert_problem(httpx.get(api.url + url), 401)


# -- audit ----------------------------------------------------------------------------
def test_audit_log_pages_and_filters_like_the_cli(api: Server) -> None:
    done = run_cli(api.home, "audit", "log", "--format", "json", tenant="acme")
    assert done.returncode == 0, done.stderr
    expected = json.loads(done.stdout)
    with api.client(api.keys["acme-admin"]) as client:
        entries = _all_pages(client, "/v1/audit", limit=3)
        assert [e["event_id"] for e in entries] == [e["event_id"] for e in expected]
        assert [e["hash"] for e in entries] == [e["hash"] for e in expected]
        types = {e["event_type"] for e in entries}
        assert len(types) > 1
        chosen = sorted(types)[0]
        only = _all_pages(client, "/v1/audit", event_type=chosen)
        assert only and {e["event_type"] for e in only} == {chosen}
        about = _all_pages(client, "/v1/audit", dataset="sales")
        assert about and {e["dataset_id"] for e in about} == {api.keys["sales_id"]}
        by_id = _all_pages(client, "/v1/audit", dataset=api.keys["sales_id"])
        assert by_id == about
        actors = {e["actor"] for e in entries}
        actor = next(a for a in actors if a)
        assert {e["actor"] for e in _all_pages(client, "/v1/audit", actor=actor)} == {actor}
        middle = entries[len(entries) // 2]["occurred_at"]
        later = _all_pages(client, "/v1/audit", since=middle)
        earlier = _all_pages(client, "/v1/audit", until=middle)
        assert later and earlier and len(later) + len(earlier) == len(entries)
        assert all(e["occurred_at"] >= middle for e in later)
        assert_problem(client.get("/v1/audit", params={"since": "yesterday"}), 422)
        early = {"since": "0001-01-01T00:00:00+01:00"}  # before year 1 in UTC
        assert (
            "out of range" in assert_problem(client.get("/v1/audit", params=early), 422)["detail"]
        )
        assert_problem(client.get("/v1/audit", params={"actor": "a\x00b"}), 422)
        assert_problem(client.get("/v1/audit", params={"dataset": "no-such"}), 404)
        # a cursor holds its filters
        page = client.get("/v1/audit", params={"limit": 1}).json()
        moved = client.get("/v1/audit", params={"cursor": page["next_cursor"], "actor": "x"})
        assert_problem(moved, 400)
    with api.client(api.keys["globex-admin"]) as client:  # the caller's tenant only
        theirs = _all_pages(client, "/v1/audit", limit=100)
        assert theirs and not {e["event_id"] for e in theirs} & {e["event_id"] for e in entries}
        # acme's dataset id filters globex's trail as any unknown id does: nothing in it
        # (a full id is taken as is: a deleted dataset's trail outlives it)
        about_theirs = client.get("/v1/audit", params={"dataset": api.keys["sales_id"]})
        assert about_theirs.json()["items"] == []
        assert_problem(client.get("/v1/audit", params={"dataset": api.keys["sales_id"][:8]}), 404)


def test_audit_needs_the_compliance_permission(api: Server) -> None:
    for role in ("engineer", "scientist", "viewer", "annotator"):
        with api.client(api.keys[f"acme-{role}"]) as client:
            assert_problem(client.get("/v1/audit"), 403)
            assert_problem(client.get("/v1/audit/verify"), 403)


def test_audit_verify_reports_intact_then_the_first_break(tmp_path: Path) -> None:
    home = tmp_path / "home"
    key = create_key(home, "acme", "admin")
    other = create_key(home, "globex", "admin")
    scan(home, small_csv(tmp_path / "a.csv", 20), "a", "acme")
    scan(home, small_csv(tmp_path / "b.csv", 20), "b", "globex")
    server = start_server(home, tmp_path / "serve.log")
    try:
        with server.client(key) as client:
            intact = client.get("/v1/audit/verify")
            assert intact.status_code == 200, intact.text
            body = intact.json()
            assert body["ok"] is True and body["broken"] is None
            assert body["entries"] == len(_all_pages(client, "/v1/audit", limit=100))
            mine = _all_pages(client, "/v1/audit", limit=100)
            victim = mine[1]
            db = sqlite3.connect(home / "readmodels.db")
            with db:
                db.execute(
                    "UPDATE audit_log SET actor = 'mallory' WHERE event_id = ?",
                    (victim["event_id"],),
                )
            db.close()
            broken = client.get("/v1/audit/verify")
            assert broken.status_code == 200, broken.text  # a report, not an error
            report = broken.json()
            assert report["ok"] is False
            assert report["broken"]["event_id"] == victim["event_id"]
            assert report["broken"]["entry"] == str(victim["seq"]) and report["broken"]["reason"]
        with server.client(other) as client:  # the break is not globex's: not named
            report = client.get("/v1/audit/verify").json()
            assert report["ok"] is False and report["broken"]["event_id"] is None
    finally:
        server.stop()
    done = run_cli(home, "audit", "verify", tenant="acme")
    assert done.returncode != 0 and victim["event_id"] in done.stderr + done.stdout


# -- multipart upload -----------------------------------------------------------------
def test_a_multipart_upload_is_the_same_as_a_raw_one(api: Server, tmp_path: Path) -> None:
    data = small_csv(tmp_path / "orders.csv", 120).read_bytes()
    with api.client(api.keys["acme-engineer"]) as client:
        response = client.post(
            "/v1/datasets",
            files={"file": ("orders.csv", data, "text/csv")},
            data={"name": "orders-mp"},
        )
        assert response.status_code == 202, response.text
        body = response.json()
        assert response.headers["location"] == f"/v1/commands/{body['command_id']}"
        _settled(client, response.headers["location"])
        dataset = client.get(f"/v1/datasets/{body['dataset_id']}").json()
        assert dataset["name"] == "orders-mp" and dataset["row_count"] == 120
        (version,) = client.get("/v1/datasets/orders-mp/versions").json()["items"]
        assert version["format"] == "csv" and version["column_count"] == 3
        # the name in the query, the format from the file part's name; the same bytes
        # through the raw body are the same version: nothing new
        again = client.post(
            "/v1/datasets", params={"name": "orders-mp"}, files={"file": ("o.csv", data)}
        )
        assert again.status_code == 200 and again.json()["status"] == "unchanged", again.text
        raw = client.post("/v1/datasets", params={"name": "orders-mp"}, content=data)
        assert raw.status_code == 200 and raw.json()["status"] == "unchanged", raw.text
        # a JSON Lines file told by the form's filename field
        lines = b"".join(b'{"a": %d, "b": "x"}\n' % i for i in range(10))
        jsonl = client.post(
            "/v1/datasets",
            files={"file": ("blob", lines)},
            data={"name": "events-mp", "filename": "events.jsonl"},
        )
        assert jsonl.status_code == 202, jsonl.text
        _settled(client, jsonl.headers["location"])
        (version,) = client.get("/v1/datasets/events-mp/versions").json()["items"]
        assert version["format"] == "jsonl" and version["row_count"] == 10


def test_a_retried_multipart_upload_is_replayed(api: Server, tmp_path: Path) -> None:
    """httpx (like curl) draws a new random boundary for every request: the retry's body
    differs in its boundaries only, so it is the same request and gets the first answer;
    another file under the same key is refused."""
    data = small_csv(tmp_path / "retry.csv", 60).read_bytes()
    headers = {"Idempotency-Key": "upload-retry-mp"}
    with api.client(api.keys["acme-engineer"]) as client:

        def send(content: bytes) -> httpx.Response:
            return client.post(
                "/v1/datasets",
                data={"name": "retry-mp"},
                files={"file": ("retry.csv", content)},
                headers=headers,
            )

        first = send(data)
        assert first.status_code == 202, first.text
        again = send(data)
        assert again.status_code == 202 and again.json() == first.json(), again.text
        assert again.headers["idempotent-replayed"] == "true"
        other = send(data + b"999,x@example.com,1\n")
        assert "body" in assert_problem(other, 422)["detail"]
        _settled(client, first.headers["location"])
        assert len(client.get("/v1/datasets/retry-mp/versions").json()["items"]) == 1


def _settled(client: httpx.Client, location: str) -> None:
    import time

    deadline = time.monotonic() + 120
    while (body := client.get(location).json())["status"] == "queued":
        assert time.monotonic() < deadline, body
        time.sleep(0.1)  # the intake thread is processing: ask again
    assert body["status"] == "accepted", body


def test_a_bad_multipart_upload_is_422_and_records_nothing(api: Server) -> None:
    with api.client(api.keys["acme-admin"]) as client:
        before = client.get("/v1/datasets", params={"limit": 100}).json()["items"]
        objects = sorted((api.home / "objects").rglob("*.parquet"))
        bad: list[tuple[dict[str, Any], str]] = [
            ({"files": {"file": ("x.parquet", b"PAR1 not really parquet")}}, "x.parquet"),
            ({"files": {"file": ("x.csv", b"a,b\n\x00\x01\x02,3\n")}}, ""),
            ({"files": {"file": ("x.csv", b"")}}, "empty"),
            ({"files": {"other": ("x.csv", b"a\n1\n")}}, "unknown part"),
            ({"files": {"file": ("x.csv", b"a\n1\n")}, "data": {"colour": "red"}}, "unknown"),
            ({"files": {"file": ("x.csv", b"a\n1\n")}, "data": {"name": ""}}, "name"),
            ({"files": {"file": ("x.csv", b"a\n1\n")}, "data": {"name": "y" * 201}}, "name"),
            ({"data": {"name": "broken"}}, ""),  # a form without the file
        ]
        for request, said in bad:
            data = request.get("data", {"name": "broken"})
            files = request.get("files")
            if files is None:  # a multipart body with no file part
                files = {"name": (None, data["name"])}
                data = {}
            response = client.post("/v1/datasets", data=data, files=files)
            problem = assert_problem(response, 422)
            assert said in problem["detail"], problem
        # the name in the query and the form, differently
        twice = client.post(
            "/v1/datasets",
            params={"name": "one"},
            data={"name": "two"},
            files={"file": ("x.csv", b"a\n1\n")},
        )
        assert "differently" in assert_problem(twice, 422)["detail"]
        mangled = client.post(
            "/v1/datasets?name=broken",
            content=b"--xyz\r\nnot a header\r\n\r\nbody",
            headers={"content-type": "multipart/form-data; boundary=xyz"},
        )
        assert_problem(mangled, 422)
        nobound = client.post(
            "/v1/datasets?name=broken",
            content=b"a\n1\n",
            headers={"content-type": "multipart/form-data"},
        )
        assert "boundary" in assert_problem(nobound, 422)["detail"]
        assert client.get("/v1/datasets", params={"limit": 100}).json()["items"] == before
        assert sorted((api.home / "objects").rglob("*.parquet")) == objects
    with api.client(api.keys["acme-viewer"]) as client:
        denied = client.post("/v1/datasets", files={"file": ("x.csv", b"a\n1\n")})
        assert_problem(denied, 403)


def test_a_multipart_upload_over_the_limit_is_413(tmp_path: Path) -> None:
    home = tmp_path / "home"
    key = create_key(home, "acme", "engineer")
    server = start_server(home, tmp_path / "serve.log", DATRIX_API_MAX_UPLOAD_MB="0.01")
    try:
        with server.client(key) as client:
            big = b"a,b\n" + b"1,2\n" * 5000  # 20 kB > 10 kB
            over = client.post("/v1/datasets", data={"name": "big"}, files={"file": big})
            assert "DATRIX_API_MAX_UPLOAD_MB" in assert_problem(over, 413)["detail"]
            # a file just under the limit passes, though the form's overhead is over it
            fits = b"a,b\n" + b"1,2\n" * 2400  # 9.6 kB
            ok = client.post("/v1/datasets", data={"name": "fits"}, files={"file": fits})
            assert ok.status_code == 202, ok.text
            names = [d["name"] for d in client.get("/v1/datasets").json()["items"]]
            assert "big" not in names
    finally:
        server.stop()
    assert not any((home / "tmp").glob("upload-*"))


def test_openapi_declares_both_upload_bodies(api: Server) -> None:
    doc = httpx.get(f"{api.url}/openapi.json").json()
    body = doc["paths"]["/v1/datasets"]["post"]["requestBody"]["content"]
    assert body["application/octet-stream"]["schema"]["format"] == "binary"
    form = body["multipart/form-data"]["schema"]
    assert form["required"] == ["file"] and form["properties"]["file"]["format"] == "binary"
    paths = doc["paths"]
    for path in ("/v1/audit", "/v1/audit/verify", "/v1/scans/{scan_id}/issues/{issue_id}/rows"):
        assert "get" in paths[path], path


# -- memory while a large file streams in ---------------------------------------------
def test_a_large_upload_keeps_server_memory_flat(tmp_path: Path) -> None:
    """A 200 MB CSV, raw and multipart, to a live server: the server's peak RSS while it
    receives the body grows by far less than the file. The bound: uvicorn reads the
    socket at most 64 KiB at a time and stops reading while a request's unread body
    passes 64 KiB; the route writes each chunk to disk before it takes the next, and the
    multipart parser hands over slices of that chunk. So the body in memory at any time is
    a few hundred KiB; 32 MiB leaves room for the allocator's arenas and thread stacks and
    is still a sixth of the file (held whole, it would be 200 MiB or more). Measured with
    the kernel's own peak (VmHWM, reset before each upload), not by sampling. "Receive":
    the dataset name is refused after the body is on disk and before the file is read
    (bench_upload.py measures the whole upload too, conversion included)."""
    from tests.benchmarks.bench_upload import BAD_NAME, reset_peak, status_kb, upload, write_csv

    home = tmp_path / "home"
    key = create_key(home, "acme", "engineer")
    size = 200 * 2**20
    big = write_csv(tmp_path / "big.csv", size)
    small = write_csv(tmp_path / "small.csv", 100_000)
    server = start_server(home, tmp_path / "serve.log")
    try:
        pid = server.proc.pid
        reset_peak(pid)
        assert status_kb(pid, "VmHWM") <= status_kb(pid, "VmRSS") + 1024  # the reset works
        for multipart in (False, True):
            upload(server.url, key, pid, small, multipart=multipart, name=BAD_NAME)  # warm up
            found = upload(server.url, key, pid, big, multipart=multipart, name=BAD_NAME)
            assert found.status == 422, found
            assert found.growth_mb < 32, found
        log = (tmp_path / "serve.log").read_text()
        assert "Traceback" not in log, log[-3000:]
    finally:
        server.stop()
    assert not any((home / "tmp").glob("upload-*"))


def test_readme_multipart_rows_and_audit_examples_run(tmp_path: Path) -> None:
    """The README's second curl block, as written, against a live server."""
    import re
    import subprocess

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    found = re.search(r"<!-- api-example-more -->\s*```bash\n(.*?)```", readme, re.S)
    assert found, "README.md has no api-example-more block"
    home = tmp_path / "home"
    key = create_key(home, "acme", "admin")
    work = tmp_path / "work"
    work.mkdir()
    done = scan(home, small_csv(work / "sales.csv", 50), "sales", "acme")
    server = start_server(home, tmp_path / "serve.log")
    try:
        ran = subprocess.run(
            [
                "bash",
                "-euo",
                "pipefail",
                "-c",
                'auth="Authorization: Bearer $DATRIX_API_KEY"\n' + found.group(1),
            ],
            capture_output=True,
            text=True,
            timeout=180,
            cwd=work,
            env={
                "PATH": "/usr/bin:/bin",
                "DATRIX_URL": server.url,
                "DATRIX_API_KEY": key,
                "SCAN_ID": done["scan_id"],
            },
            stdin=subprocess.DEVNULL,
        )
    finally:
        server.stop()
    assert ran.returncode == 0, ran.stderr
    decoder = json.JSONDecoder()  # curl prints the bodies back to back
    bodies, at = [], 0
    while at < len(ran.stdout.rstrip()):
        body, at = decoder.raw_decode(ran.stdout, at)
        bodies.append(body)
        while at < len(ran.stdout) and ran.stdout[at].isspace():
            at += 1
    uploaded, rows, audit, verified = bodies
    assert uploaded["status"] == "unchanged"  # the file scanned already, by the CLI
    assert rows["issue_id"] == "I001" and rows["items"]
    assert audit["items"] and verified["ok"] is True
