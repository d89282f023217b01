"""The HTTP API's read side against a real ``datrix serve`` (embedded default): keys made
with ``datrix keys create``, data scanned with ``datrix scan`` by two tenants on one
home, every request over HTTP with httpx."""

from __future__ import annotations

import json
import re
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.api_server import (
    PROBLEM,
    Server,
    assert_problem,
    create_key,
    run_cli,
    scan,
    start_server,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _csv(path: Path, rows: int, bad_every: int) -> Path:
    lines = ["id,name,email,amount,city"]
    for i in range(rows):
        email = "" if i % bad_every == 0 else f"user{i}@example.com"
        amount = "" if i % (bad_every + 1) == 0 else str(10 + i % 7)
        city = "Berlin" if i % 3 else " berlin"
        lines.append(f"{i},name{i % 40},{email},{amount},{city}")
    lines += [lines[5], lines[6]]  # exact duplicates
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Tenant acme has datasets "sales" (two versions, two scans) and extra-0..2; tenant
    globex has "ledger" and a "sales" of its own; keys of every role."""
    root = tmp_path_factory.mktemp("api")
    home = root / "home"
    data = root / "data"
    data.mkdir()
    keys = {
        "acme-admin": create_key(home, "acme", "admin"),
        "acme-engineer": create_key(home, "acme", "engineer"),
        "acme-scientist": create_key(home, "acme", "scientist"),
        "acme-viewer": create_key(home, "acme", "viewer"),
        "acme-annotator": create_key(home, "acme", "annotator"),
        "globex-admin": create_key(home, "globex", "admin"),
    }
    first = scan(home, _csv(data / "sales1.csv", 120, 9), "sales", "acme")
    second = scan(home, _csv(data / "sales2.csv", 150, 5), "sales", "acme")
    for n in range(3):
        scan(home, _csv(data / f"extra{n}.csv", 30 + n, 4), f"extra-{n}", "acme")
    # a fix of acme's (a preview: it writes no version) for the fix endpoints' access check
    fixed = run_cli(home, "fix", second["scan_id"], "--preview", "--format", "json", tenant="acme")
    assert fixed.returncode == 0, fixed.stderr
    ledger = scan(home, _csv(data / "ledger.csv", 60, 6), "ledger", "globex")
    scan(home, _csv(data / "gsales.csv", 40, 3), "sales", "globex")
    server = start_server(home, root / "serve.log")
    server.keys = {
        **keys,
        "sales_first_scan": first["scan_id"],
        "sales_scan": second["scan_id"],
        "sales_id": second["dataset_id"],
        "ledger_id": ledger["dataset_id"],
        "ledger_scan": ledger["scan_id"],
        "sales_fix": json.loads(fixed.stdout)["fix_id"],
    }
    try:
        yield server
    finally:
        server.stop()


def get(api: Server, key: str, path: str, **params: Any) -> Any:
    with api.client(api.keys[key]) as client:
        return client.get(path, params=params)


def test_health_and_openapi_need_no_key(api: Server) -> None:
    with api.client() as client:
        assert client.get("/health/live").json() == {"status": "ok", "checks": {}}
        ready = client.get("/health/ready").json()
        assert ready["status"] == "ready"
        assert ready["checks"] == {"read_models": "ok", "keys": "ok", "object_store": "ok"}
        doc = client.get("/openapi.json").json()
        assert client.get("/docs").status_code == 200
    paths = doc["paths"]
    for path in (
        "/v1/datasets",
        "/v1/datasets/{dataset_id}",
        "/v1/datasets/{dataset_id}/columns",
        "/v1/datasets/{dataset_id}/versions",
        "/v1/quality/{dataset_id}/score",
        "/v1/quality/{dataset_id}/issues",
        "/v1/quality/{dataset_id}/history",
        "/v1/commands/{command_id}",
    ):
        assert path in paths
        responses = paths[path]["get"]["responses"]
        for status in ("401", "403", "404", "422"):
            assert list(responses[status]["content"]) == [PROBLEM], (path, status)
    assert "HTTPValidationError" not in doc["components"]["schemas"]


def test_datasets_list_is_the_keys_tenants_only(api: Server) -> None:
    acme = get(api, "acme-viewer", "/v1/datasets").json()
    assert [d["name"] for d in acme["items"]] == ["sales", "extra-0", "extra-1", "extra-2"]
    assert acme["next_cursor"] is None
    sales = acme["items"][0]
    assert sales["id"] == api.keys["sales_id"] and sales["latest_version"] == 2
    globex = get(api, "globex-admin", "/v1/datasets").json()
    assert sorted(d["name"] for d in globex["items"]) == ["ledger", "sales"]
    assert api.keys["sales_id"] not in {d["id"] for d in globex["items"]}


def test_cursor_pagination_sort_and_filters(api: Server) -> None:
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3, "sort": "name", "order": "desc"}
        if cursor:
            params["cursor"] = cursor
        page = get(api, "acme-viewer", "/v1/datasets", **params).json()
        assert len(page["items"]) <= 3
        seen += [d["name"] for d in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 2
    assert seen == ["sales", "extra-2", "extra-1", "extra-0"]
    only = get(api, "acme-viewer", "/v1/datasets", name="extra-1").json()["items"]
    assert [d["name"] for d in only] == ["extra-1"]
    assert get(api, "acme-viewer", "/v1/datasets", status="deleted").json()["items"] == []
    # a cursor is tied to its sort; a made-up one is refused
    first = get(api, "acme-viewer", "/v1/datasets", limit=1).json()
    mixed = get(api, "acme-viewer", "/v1/datasets", cursor=first["next_cursor"], sort="name")
    assert "sort=created_at" in assert_problem(mixed, 400)["detail"]
    assert_problem(get(api, "acme-viewer", "/v1/datasets", cursor="not-a-cursor"), 400)
    # default 20, at most 100: beyond it is a validation problem
    too_many = assert_problem(get(api, "acme-viewer", "/v1/datasets", limit=101), 422)
    assert too_many["errors"][0]["loc"] == ["query", "limit"]
    assert_problem(get(api, "acme-viewer", "/v1/datasets", sort="password"), 422)


def test_dataset_detail_columns_versions(api: Server) -> None:
    detail = get(api, "acme-viewer", f"/v1/datasets/{api.keys['sales_id']}").json()
    assert detail["name"] == "sales" and detail["latest_scan_id"] == api.keys["sales_scan"]
    assert 0 <= detail["score"]["overall"] <= 100 and detail["score"]["label_quality"] is None
    # by name and by a unique id prefix too
    assert get(api, "acme-viewer", "/v1/datasets/sales").json()["id"] == detail["id"]
    assert get(api, "acme-viewer", f"/v1/datasets/{detail['id'][:8]}").json()["id"] == detail["id"]
    columns = get(api, "acme-viewer", "/v1/datasets/sales/columns").json()
    assert columns["scan_id"] == api.keys["sales_scan"]
    assert [c["name"] for c in columns["items"]] == ["id", "name", "email", "amount", "city"]
    email = next(c for c in columns["items"] if c["name"] == "email")
    assert email["null_count"] == 31  # rows 0, 5, ..., 145, and the copy of row 5
    versions = get(api, "acme-viewer", "/v1/datasets/sales/versions").json()
    assert [v["version"] for v in versions["items"]] == [1, 2]
    assert [v["row_count"] for v in versions["items"]] == [122, 152]
    assert all(re.fullmatch(r"[0-9a-f]{64}", v["object_sha256"]) for v in versions["items"])


def test_quality_score_issues_history(api: Server) -> None:
    score = get(api, "acme-viewer", "/v1/quality/sales/score").json()
    assert score["scan_id"] == api.keys["sales_scan"] and score["dataset_version"] == 2
    assert set(score["score"]) == {
        "overall",
        "completeness",
        "consistency",
        "accuracy",
        "distribution",
        "label_quality",
    }
    assert score["overall_dimensions"] == [
        "completeness",
        "consistency",
        "accuracy",
        "distribution",
    ]
    # the same issues as the CLI's, by impact, a page at a time
    cli = run_cli(api.home, "issues", api.keys["sales_scan"], "--format", "json", tenant="acme")
    assert cli.returncode == 0, cli.stderr
    expected = json.loads(cli.stdout)
    assert len(expected) >= 3
    got: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = get(api, "acme-viewer", "/v1/quality/sales/issues", **params).json()
        got += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert got == expected
    impacts = [i["impact_score"] for i in got]
    assert impacts == sorted(impacts, reverse=True)
    nulls = get(api, "acme-viewer", "/v1/quality/sales/issues", column="email").json()["items"]
    assert nulls and all(i["column"] == "email" for i in nulls)
    history = get(api, "acme-viewer", "/v1/quality/sales/history").json()["items"]
    assert [h["scan_id"] for h in history] == [api.keys["sales_first_scan"], api.keys["sales_scan"]]
    assert [h["dataset_version"] for h in history] == [1, 2]
    assert all(h["status"] == "completed" for h in history)


def test_command_status(api: Server) -> None:
    db = sqlite3.connect(api.home / "readmodels.db")
    try:
        acme_cmd, reason = db.execute(
            "SELECT command_id, reason FROM command_status WHERE tenant = 'acme' "
            "AND status = 'accepted' LIMIT 1"
        ).fetchone()
        (globex_cmd,) = db.execute(
            "SELECT command_id FROM command_status WHERE tenant = 'globex' LIMIT 1"
        ).fetchone()
    finally:
        db.close()
    found = get(api, "acme-engineer", f"/v1/commands/{acme_cmd}").json()
    assert found == {"id": acme_cmd, "status": "accepted", "reason": reason}
    assert_problem(get(api, "acme-engineer", f"/v1/commands/{globex_cmd}"), 404)
    assert_problem(get(api, "acme-engineer", "/v1/commands/00000000-0000-0000-0000-0"), 404)


# every read endpoint, with a dataset of the other tenant's
def _endpoints(ref: str) -> list[str]:
    return [
        f"/v1/datasets/{ref}",
        f"/v1/datasets/{ref}/columns",
        f"/v1/datasets/{ref}/versions",
        f"/v1/quality/{ref}/score",
        f"/v1/quality/{ref}/issues",
        f"/v1/quality/{ref}/history",
    ]


def test_another_tenants_resource_is_not_found(api: Server) -> None:
    ledger = api.keys["ledger_id"]
    for ref in (ledger, ledger[:8], "ledger"):
        for path in _endpoints(ref):
            body = assert_problem(get(api, "acme-admin", path), 404)
            assert ledger not in body["detail"] or ref == ledger
        # and the owner sees it
        for path in _endpoints(ref):
            assert get(api, "globex-admin", path).status_code == 200, path
    # globex's "sales" is another dataset than acme's
    assert get(api, "globex-admin", "/v1/datasets/sales").json()["id"] != api.keys["sales_id"]


def test_roles(api: Server) -> None:
    for role in ("admin", "engineer", "scientist", "viewer"):
        for path in ["/v1/datasets", *_endpoints("sales")]:
            assert get(api, f"acme-{role}", path).status_code == 200, (role, path)
    # the annotator sees no data: 403 whether or not the thing exists
    for path in ["/v1/datasets", *_endpoints("sales"), *_endpoints("no-such")]:
        body = assert_problem(get(api, "acme-annotator", path), 403)
        assert "annotator" in body["detail"]
    # command outcomes: not for viewers or annotators
    assert_problem(get(api, "acme-viewer", "/v1/commands/x"), 403)


def test_missing_bad_and_revoked_keys_are_401(api: Server) -> None:
    with api.client() as anonymous:
        body = assert_problem(anonymous.get("/v1/datasets"), 401)
        assert "no API key" in body["detail"]
        assert anonymous.get("/v1/datasets").headers["www-authenticate"].startswith("Bearer")
        admin = api.keys["acme-admin"]
        tampered = admin[:-1] + ("B" if admin.endswith("A") else "A")  # one character off
        for bad in ("dtx_nope", "Bearer x", tampered):
            assert_problem(anonymous.get("/v1/datasets", headers={"X-API-Key": bad}), 401)
        # X-API-Key works as well as Authorization: Bearer
        ok = anonymous.get("/v1/datasets", headers={"X-API-Key": api.keys["acme-viewer"]})
        assert ok.status_code == 200
    key = create_key(api.home, "acme", "viewer")
    with api.client(key) as client:
        assert client.get("/v1/datasets").status_code == 200
        key_id = key.split("_")[1]
        done = run_cli(api.home, "keys", "revoke", key_id)
        assert done.returncode == 0, done.stderr
        assert_problem(client.get("/v1/datasets"), 401)


def test_errors_are_problems(api: Server) -> None:
    with api.client(api.keys["acme-admin"]) as client:
        assert_problem(client.get("/v1/nothing-here"), 404)
        wrong = assert_problem(client.put("/v1/datasets"), 405)
        assert "PUT" in wrong["detail"]
        assert_problem(client.get("/v1/datasets/no-such-dataset"), 404)
        assert_problem(client.get("/v1/datasets", params={"limit": "many"}), 422)
        assert_problem(client.get("/v1/quality/extra-9/score"), 404)


def test_keys_are_stored_hashed_and_private(api: Server) -> None:
    path = api.home / "keys.db"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    raw = path.read_bytes()
    for name, key in api.keys.items():
        if key.startswith("dtx_"):
            secret = key.split("_", 2)[2]
            assert secret.encode() not in raw, name
    listed = run_cli(api.home, "keys", "list", "--tenant", "acme", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert {r["role"] for r in rows} >= {"admin", "engineer", "scientist", "viewer", "annotator"}
    assert all(r["tenant"] == "acme" for r in rows)
    assert not any("hash" in r or "salt" in r for r in rows)
    assert "dtx_" not in listed.stdout


def test_keys_cli_refuses_bad_input(tmp_path: Path) -> None:
    home = tmp_path / "home"
    bad_role = run_cli(home, "keys", "create", "--tenant", "acme", "--role", "root")
    assert bad_role.returncode == 2 and "root" in bad_role.stderr
    bad_tenant = run_cli(home, "keys", "create", "--tenant", "a b", "--role", "viewer")
    assert bad_tenant.returncode == 2 and "tenant" in bad_tenant.stderr
    assert bad_tenant.stdout == ""
    unknown = run_cli(home, "keys", "revoke", "0123456789ab")
    assert unknown.returncode == 2 and "no API key" in unknown.stderr


def test_first_serve_makes_a_local_admin_key(tmp_path: Path) -> None:
    home = tmp_path / "home"
    server = start_server(home, tmp_path / "serve.log", tenant="solo")
    try:
        key_file = home / "api-admin.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        key = key_file.read_text().strip()
        with server.client(key) as client:
            assert client.get("/v1/datasets").json() == {"items": [], "next_cursor": None}
        listed = run_cli(home, "keys", "list", "--format", "json")
        (row,) = json.loads(listed.stdout)
        assert row["tenant"] == "solo" and row["role"] == "admin"
    finally:
        log = server.stop()
    assert str(key_file) in log and key not in log
    # a second serve makes no other key
    again = start_server(home, tmp_path / "serve2.log")
    try:
        assert len(json.loads(run_cli(home, "keys", "list", "--format", "json").stdout)) == 1
    finally:
        assert "admin API key" not in again.stop()


def test_schemathesis_against_the_live_openapi(api: Server, tmp_path: Path) -> None:
    """Property-based requests from /openapi.json: no 5xx, every response matches its
    schema and media type (errors: problem+json). Left out: positive_data_acceptance,
    which expects every schema-valid request to succeed; a cursor is opaque (any string
    fits its schema), so a made-up one is rightly a 400. And use_after_free, which expects
    a resource gone the moment its DELETE answers: a deletion is an asynchronous command
    (202 and a Location to poll), the dataset is gone once it is processed
    (test_api_commands.py::test_delete_is_accepted_then_the_dataset_is_gone).

    It runs as the admin of a tenant of its own, with a dataset of its own: its stateful
    phase deletes what it finds, which must not be the other tests' data (a test after
    it found acme's "sales" deleted)."""
    key = create_key(api.home, "fuzz", "admin")
    scan(api.home, _csv(tmp_path / "fuzz.csv", 50, 4), "sales", "fuzz")
    st = str(Path(sys.executable).with_name("schemathesis"))
    done = subprocess.run(
        [
            st,
            "run",
            f"{api.url}/openapi.json",
            "--header",
            f"Authorization: Bearer {key}",
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance,use_after_free",
            "--max-examples",
            "25",
            "--seed",
            "1",
            "--generation-database",
            "none",
            "--request-timeout",
            "60",  # a shared, busy machine: slowness is not what this test is about
            "--workers",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert re.search(r"\d+ passed", done.stdout), done.stdout[-2000:]


# -- every endpoint: its permission, and another tenant's key -------------------------------
# The permission each operation needs (None: public). The test reads the live OpenAPI
# document: an operation missing here fails it, so a new endpoint gets its access checks.
PERMISSION: dict[tuple[str, str], str | None] = {
    ("GET", "/health/live"): None,
    ("GET", "/health/ready"): None,
    ("GET", "/metrics"): None,
    ("GET", "/v1/datasets"): "datasets:read",
    ("POST", "/v1/datasets"): "datasets:write",
    ("GET", "/v1/datasets/{dataset_id}"): "datasets:read",
    ("DELETE", "/v1/datasets/{dataset_id}"): "datasets:write",
    ("PUT", "/v1/datasets/{dataset_id}/contract"): "datasets:write",
    ("DELETE", "/v1/datasets/{dataset_id}/contract"): "datasets:write",
    ("GET", "/v1/datasets/{dataset_id}/columns"): "datasets:read",
    ("GET", "/v1/datasets/{dataset_id}/versions"): "datasets:read",
    ("POST", "/v1/datasets/{dataset_id}/scan"): "scans:run",
    ("GET", "/v1/datasets/{dataset_id}/scan/{scan_id}"): "quality:read",
    ("GET", "/v1/quality/{dataset_id}/score"): "quality:read",
    ("GET", "/v1/quality/{dataset_id}/issues"): "quality:read",
    ("GET", "/v1/quality/{dataset_id}/history"): "quality:read",
    ("GET", "/v1/commands/{command_id}"): "commands:read",
    ("GET", "/v1/scans/{scan_id}/issues/{issue_id}/rows"): "quality:read",
    ("GET", "/v1/audit"): "audit:read",
    ("GET", "/v1/audit/verify"): "audit:read",
    ("GET", "/v1/jobs/{job_id}/events"): "quality:read",
    ("POST", "/v1/quality/{dataset_id}/fix"): "datasets:write",
    ("POST", "/v1/quality/{dataset_id}/fix/preview"): "scans:run",
    ("GET", "/v1/quality/{dataset_id}/fix/{fix_id}"): "quality:read",
    ("DELETE", "/v1/quality/{dataset_id}/fix/{fix_id}"): "datasets:write",
    ("GET", "/v1/datasets/{dataset_id}/versions/{version}/provenance"): "datasets:read",
    ("GET", "/v1/streams"): "datasets:read",
    ("POST", "/v1/streams"): "datasets:write",
    ("GET", "/v1/streams/{stream_id}"): "datasets:read",
    ("DELETE", "/v1/streams/{stream_id}"): "datasets:write",
    ("GET", "/v1/streams/{stream_id}/windows"): "quality:read",
    ("GET", "/v1/streams/{stream_id}/alerts"): "quality:read",
    ("GET", "/v1/streams/{stream_id}/alerts/events"): "quality:read",
}
# operations on no single resource: another tenant's key gets its own tenant's answer
# (checked below to hold nothing of acme's) or, for an upload, makes its own dataset
UNADDRESSED = {("GET", "/v1/datasets"), ("POST", "/v1/datasets"), ("GET", "/v1/audit")}
UNADDRESSED |= {("GET", "/v1/audit/verify"), ("GET", "/v1/streams"), ("POST", "/v1/streams")}
# a stream needs Kafka mode (test_api_streams.py): here even an allowed read finds none
NO_SUCH = {template for _, template in PERMISSION if "{stream_id}" in template}


def _acme_resources(api: Server) -> dict[str, str]:
    with sqlite3.connect(api.home / "readmodels.db") as db:
        [(command,)] = db.execute(
            "SELECT command_id FROM command_status WHERE tenant = 'acme' LIMIT 1"
        ).fetchall()
    return {
        "dataset_id": api.keys["sales_id"],
        "scan_id": api.keys["sales_scan"],
        "job_id": api.keys["sales_scan"],
        "issue_id": "I001",
        "command_id": command,
        "fix_id": api.keys["sales_fix"],
        "version": "1",
        "stream_id": "no-such-stream",
    }


def _send(api: Server, key: str, method: str, path: str) -> Any:
    """One request of ``method path`` that changes nothing whatever the answer: an upload
    with an empty body (a 422 once allowed), a scan or deletion of acme's data only by a
    key that must be refused."""
    with api.client(api.keys[key]) as client:
        if method == "POST" and path == "/v1/datasets":
            return client.post(path, params={"name": "access-check"}, content=b"")
        return client.request(method, path)


def test_every_endpoint_checks_the_role_and_hides_other_tenants(api: Server) -> None:
    from datrix.gateway.api.keys import ROLES

    with api.client() as anonymous:
        doc = anonymous.get("/openapi.json").json()
    operations = {(m.upper(), p) for p, item in doc["paths"].items() for m in item}
    operations.add(("GET", "/metrics"))  # not in the document (a text exposition)
    assert operations == set(PERMISSION), "give each new endpoint its permission here"
    acme = _acme_resources(api)
    harmless = {**acme, "dataset_id": "no-such-dataset"}  # what an allowed write is sent
    for (method, template), permission in sorted(PERMISSION.items()):
        if permission is None:
            continue
        for role, granted in ROLES.items():
            writes = method != "GET"
            path = template.format(**(harmless if writes else acme))
            response = _send(api, f"acme-{role}", method, path)
            if permission not in granted:
                body = assert_problem(response, 403)
                assert role in body["detail"], (role, method, path)
            elif writes:  # allowed, and refused for what it was sent: nothing changed
                expected = 422 if template in ("/v1/datasets", "/v1/streams") else 404
                assert_problem(response, expected)
            elif template in NO_SUCH:
                assert_problem(response, 404)
            else:
                assert response.status_code == 200, (role, method, path, response.text)
        if (method, template) in UNADDRESSED:
            continue
        # another tenant's admin, naming acme's resource: as if it did not exist
        path = template.format(**acme)
        body = assert_problem(_send(api, "globex-admin", method, path), 404)
        assert api.keys["sales_id"] not in body.get("title", ""), path
    # what the unaddressed reads give globex holds nothing of acme's
    for path in ("/v1/datasets", "/v1/audit", "/v1/audit/verify"):
        response = _send(api, "globex-admin", "GET", path)
        assert response.status_code == 200, (path, response.text)
        for ref in (api.keys["sales_id"], api.keys["sales_scan"], acme["command_id"]):
            assert ref not in response.text, (path, ref)
    # and acme's data is untouched by all of that
    assert get(api, "acme-admin", f"/v1/datasets/{api.keys['sales_id']}").status_code == 200
    names = [d["name"] for d in get(api, "acme-admin", "/v1/datasets").json()["items"]]
    assert "access-check" not in names
