"""The fix endpoints over real HTTP against one real ``datrix serve`` (embedded default),
with real keys of every role: preview, apply (a new version, re-scanned), the provenance
of the fixed version a page at a time, rollback (checksum for checksum), the problems of
bad input, and access: a viewer cannot fix, another tenant sees nothing."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.api_server import (
    Server,
    assert_problem,
    role_keys,
    run_cli,
    scan,
    start_server,
)
from tests.integration.test_cli_fix import dirty_csv

pytestmark = pytest.mark.integration

ENDED = ("previewed", "completed", "failed", "rolled_back")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Tenant acme: "dirty" (scanned, with a preview fix made by the CLI) and "clean"
    (nothing to fix); tenant globex: a dataset of its own. Keys of every role."""
    root = tmp_path_factory.mktemp("api-fixes")
    home = root / "home"
    keys = role_keys(home)
    dirty = scan(home, dirty_csv(root / "dirty.csv"), "dirty", "acme")
    clean_csv = root / "clean.csv"
    clean_csv.write_text("id,code\n" + "".join(f"{i},c{i:04d}\n" for i in range(60)))
    clean = scan(home, clean_csv, "clean", "acme")
    scan(home, dirty_csv(root / "g.csv", 60), "theirs", "globex")
    made = run_cli(home, "fix", dirty["scan_id"], "--preview", "--format", "json", tenant="acme")
    assert made.returncode == 0, made.stderr
    server = start_server(home, root / "serve.log")
    server.keys = {
        **keys,
        "dataset": dirty["dataset_id"],
        "scan": dirty["scan_id"],
        "clean": clean["dataset_id"],
        "cli_fix": json.loads(made.stdout)["fix_id"],
        "fixable_issue": next(i["id"] for i in dirty["issues"] if i["fix_available"]),
    }
    try:
        yield server
    finally:
        server.stop()


def _client(api: Server, who: str) -> httpx.Client:
    return api.client(api.keys[who])


def _wait_fix(client: httpx.Client, location: str, timeout: float = 300) -> dict[str, Any]:
    """Poll the fix's status until it ended (the server runs its job in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        doc: dict[str, Any] = client.get(location).raise_for_status().json()
        if doc["status"] in ENDED:
            return doc
        assert time.monotonic() < deadline, f"fix still {doc['status']} after {timeout} s"
        time.sleep(0.2)  # the next poll: the status is only known by asking


def _versions(client: httpx.Client, dataset: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.get(f"/v1/datasets/{dataset}/versions").json()["items"]
    return items


def test_preview_apply_provenance_rollback(api: Server) -> None:
    dataset = api.keys["dataset"]
    with _client(api, "acme-engineer") as client:
        # preview: 202 and a Location; the result says what would change; no version
        preview = client.post(f"/v1/quality/{dataset}/fix/preview", json={})
        assert preview.status_code == 202, preview.text
        accepted = preview.json()
        assert preview.headers["Location"] == accepted["status_url"]
        assert accepted["mode"] == "preview" and accepted["scan_id"] == api.keys["scan"]
        assert accepted["links"]["self"] == accepted["status_url"]
        done = _wait_fix(client, accepted["status_url"])
        assert done["status"] == "previewed", done
        assert done["fixes"] and done["rows_affected"] > 0 and done["cells_changed"] > 0
        assert any(f["rows_removed"] == 6 for f in done["fixes"])
        assert done["version"] is None
        assert [v["version"] for v in _versions(client, dataset)] == [1]

        # apply: a new version, re-scanned: scores before and after, issues gone
        applied = client.post(
            f"/v1/quality/{dataset}/fix", json={"scanId": api.keys["scan"], "all": True}
        )
        assert applied.status_code == 202, applied.text
        fix_id = applied.json()["fix_id"]
        result = _wait_fix(client, applied.headers["Location"])
        assert result["status"] == "completed", result
        assert result["version"] == 2 and result["base_version"] == 1
        assert result["score_after"]["overall"] > result["score_before"]["overall"]
        assert "exact_duplicates" in json.dumps(result["issues_gone"])
        listed = _versions(client, dataset)
        assert [(v["version"], v["cause"]) for v in listed] == [(1, "upload"), (2, "fix")]
        assert listed[1]["fix_id"] == fix_id

        # provenance, a page at a time: every row once, the same total on every page
        path = f"/v1/datasets/{dataset}/versions/2/provenance"
        seen: list[dict[str, Any]] = []
        cursor = None
        totals = set()
        while True:
            page = client.get(path, params={"limit": 7, **({"cursor": cursor} if cursor else {})})
            assert page.status_code == 200, page.text
            body = page.json()
            totals.add(body["total"])
            seen += body["items"]
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert len(totals) == 1 and len(seen) == totals.pop() > 7
        keys = {json.dumps(s, sort_keys=True) for s in seen}
        assert len(keys) == len(seen)  # no row twice across the pages
        assert all(s["fix_id"] == fix_id and 0 <= s["confidence"] <= 1 for s in seen)
        city = client.get(path, params={"column": "city", "limit": 100}).json()
        assert city["total"] == sum(1 for s in seen if s["column"] == "city") > 0
        assert {i["column"] for i in city["items"]} == {"city"}
        row = city["items"][0]["row_id"]
        one = client.get(path, params={"row": row}).json()
        assert one["items"] and {i["row_id"] for i in one["items"]} == {row}
        upload = client.get(f"/v1/datasets/{dataset}/versions/1/provenance").json()
        assert upload["total"] == 0 and upload["items"] == []  # no fix made version 1
        bad = client.get(path, params={"cursor": "bm90LWEtY3Vyc29y"})
        assert_problem(bad, 400)
        other = client.get(path, params={"cursor": body_cursor(client, path), "column": "id"})
        assert_problem(other, 400)  # a cursor of another filter

        # rollback: 202, a version restoring version 1, checksum for checksum
        back = client.delete(f"/v1/quality/{dataset}/fix/{fix_id}")
        assert back.status_code == 202, back.text
        undone = back.json()
        assert undone["version"] == 3 and undone["restored_version"] == 1
        assert back.headers["Location"] == undone["status_url"]
        listed = _versions(client, dataset)
        assert [v["cause"] for v in listed] == ["upload", "fix", "rollback"]
        assert listed[2]["object_sha256"] == listed[0]["object_sha256"]
        status = client.get(f"/v1/quality/{dataset}/fix/{fix_id}").json()
        assert status["status"] == "rolled_back"
        # twice: refused as things are, with the aggregate's reason
        again = assert_problem(client.delete(f"/v1/quality/{dataset}/fix/{fix_id}"), 409)
        assert "roll" in again["detail"]


def body_cursor(client: httpx.Client, path: str) -> str:
    """A real cursor of the unfiltered list (to send with another filter)."""
    cursor: str = client.get(path, params={"limit": 1}).json()["next_cursor"]
    return cursor


def test_bad_fix_requests_are_problems(api: Server) -> None:
    dataset = api.keys["dataset"]
    with _client(api, "acme-admin") as client:
        fix = f"/v1/quality/{dataset}/fix"
        unknown = assert_problem(client.post(fix, json={"scanId": "0000dead"}), 422)
        assert "0000dead" in unknown["detail"]
        issue = assert_problem(client.post(f"{fix}/preview", json={"issueIds": ["I999"]}), 422)
        assert "I999" in issue["detail"]
        both = assert_problem(client.post(fix, json={"issueIds": ["I001"], "all": True}), 422)
        assert "all" in both["detail"]
        assert_problem(client.post(fix, json={"issueIds": []}), 422)
        assert_problem(client.post(fix, json={"surprise": 1}), 422)
        options = assert_problem(client.post(fix, json={"options": {"pii": "shred"}}), 422)
        assert "shred" in options["detail"]
        nothing = client.post(f"/v1/quality/{api.keys['clean']}/fix", json={})
        assert "nothing to fix" in assert_problem(nothing, 409)["detail"]
        unknown_fix = f"/v1/quality/{dataset}/fix/{uuid.uuid4()}"
        assert_problem(client.delete(unknown_fix), 404)
        assert_problem(client.get(unknown_fix), 404)
        assert_problem(client.get(f"/v1/quality/{dataset}/fix/0000dead"), 404)  # not an id
        # a preview made no version: there is nothing to roll back
        preview = client.delete(f"/v1/quality/{dataset}/fix/{api.keys['cli_fix']}")
        assert "preview" in assert_problem(preview, 409)["detail"]
        assert_problem(client.get(f"/v1/datasets/{dataset}/versions/0/provenance"), 422)


def test_roles_and_tenants(api: Server) -> None:
    dataset, fix_id = api.keys["dataset"], api.keys["cli_fix"]
    fix = f"/v1/quality/{dataset}/fix"
    for who in ("acme-viewer", "acme-annotator"):
        with _client(api, who) as client:
            for response in (
                client.post(fix, json={}),
                client.post(f"{fix}/preview", json={}),
                client.delete(f"{fix}/{fix_id}"),
            ):
                assert who.split("-")[1] in assert_problem(response, 403)["detail"]
    with _client(api, "acme-scientist") as client:  # may preview (a computation), not apply
        assert_problem(client.post(fix, json={}), 403)
    with _client(api, "acme-viewer") as client:  # reads are for readers
        seen = client.get(f"{fix}/{fix_id}")
        assert seen.status_code == 200 and seen.json()["status"] == "previewed", seen.text
        assert client.get(f"/v1/datasets/{dataset}/versions/1/provenance").status_code == 200
    with _client(api, "globex-admin") as client:  # acme's fix, dataset, provenance: none
        for response in (
            client.get(f"{fix}/{fix_id}"),
            client.post(fix, json={}),
            client.post(f"{fix}/preview", json={}),
            client.delete(f"{fix}/{fix_id}"),
            client.get(f"/v1/datasets/{dataset}/versions/1/provenance"),
        ):
            body = assert_problem(response, 404)
            assert fix_id not in body.get("title", "")


def test_a_retried_fix_post_is_one_fix(api: Server) -> None:
    """The same POST with the same Idempotency-Key (a client's retry) gets the first
    answer and makes no second fix; the fix ids derive from the key."""
    dataset = api.keys["dataset"]
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    with _client(api, "acme-engineer") as client:
        path = f"/v1/quality/{dataset}/fix/preview"
        # the first scan's (the dataset's newest may be a re-scan still running)
        one = {"scanId": api.keys["scan"], "issueIds": [api.keys["fixable_issue"]]}
        first = client.post(path, json=one, headers=headers)
        again = client.post(path, json=one, headers=headers)
        assert first.status_code == again.status_code == 202, again.text
        assert again.headers.get("Idempotent-Replayed") == "true"
        assert again.json()["fix_id"] == first.json()["fix_id"]
        done = _wait_fix(client, first.json()["status_url"])
        assert done["status"] == "previewed"
        assert [f["issue_id"] for f in done["fixes"]] == [api.keys["fixable_issue"]]
        other = client.post(path, json={"scanId": api.keys["scan"]}, headers=headers)
        assert_problem(other, 422)  # the same key on another request
