"""The schema contract over HTTP against a real ``datrix serve`` (embedded default):
``PUT /v1/datasets/{id}/contract`` freezes it, ``DELETE`` unfreezes it (202, then poll
the command); a version uploaded after the freeze without one of the columns is scanned
with a critical schema_change issue; refusals are rejected commands with the reason; a
role without ``datasets:write`` is 403, another tenant's dataset 404."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.api_server import (
    Server,
    assert_problem,
    create_key,
    scan,
    small_csv,
    start_server,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("api-contract")
    home = root / "home"
    keys = {
        "engineer": create_key(home, "acme", "engineer"),
        "scientist": create_key(home, "acme", "scientist"),
        "globex": create_key(home, "globex", "admin"),
    }
    sales = scan(home, small_csv(root / "sales.csv", 200), "sales", "acme")
    server = start_server(home, root / "serve.log")
    server.keys = {**keys, "sales_id": sales["dataset_id"]}
    try:
        yield server
    finally:
        server.stop()


def settled(client: httpx.Client, response: httpx.Response) -> dict[str, Any]:
    """The command a 202 handed in, once processed (at most two minutes)."""
    assert response.status_code == 202, response.text
    location = response.headers["location"]
    deadline = time.monotonic() + 120
    while True:
        body: dict[str, Any] = client.get(location).json()
        if body["status"] != "queued":
            return body
        assert time.monotonic() < deadline, f"{location} still {body}"
        time.sleep(0.1)  # the intake thread is processing: ask again


def test_freeze_upload_scan_unfreeze(api: Server, tmp_path: Path) -> None:
    with api.client(api.keys["engineer"]) as client:
        frozen = settled(client, client.put("/v1/datasets/sales/contract"))
        assert frozen["status"] == "accepted", frozen
        again = settled(client, client.put("/v1/datasets/sales/contract"))
        assert again["status"] == "rejected"
        assert "already frozen (as of version 1)" in again["reason"]

        # version 2 lost its amount column
        lines = small_csv(tmp_path / "v2.csv", 150).read_text().splitlines()
        data = "\n".join(",".join(line.split(",")[:2]) for line in lines) + "\n"
        added = client.post("/v1/datasets", params={"name": "sales"}, content=data.encode())
        assert settled(client, added)["status"] == "accepted"
        scanned = client.post("/v1/datasets/sales/scan")
        assert scanned.status_code == 202, scanned.text
        deadline = time.monotonic() + 180
        while (status := client.get(scanned.headers["location"]).json())["status"] in (
            "queued",
            "running",
        ):
            assert time.monotonic() < deadline, status
            time.sleep(0.2)  # the scan job is running: ask again
        assert status["status"] == "completed", status
        issues = client.get("/v1/quality/sales/issues").json()["items"]
        assert issues[0]["type"] == "schema_change" and issues[0]["severity"] == "critical"
        assert "column 'amount' (integer) was removed" in issues[0]["description"]

        unfrozen = settled(client, client.delete("/v1/datasets/sales/contract"))
        assert unfrozen["status"] == "accepted"
        twice = settled(client, client.delete("/v1/datasets/sales/contract"))
        assert twice["status"] == "rejected" and "is not frozen" in twice["reason"]


def test_the_role_and_the_tenant_are_checked(api: Server) -> None:
    with api.client(api.keys["scientist"]) as client:
        body = assert_problem(client.put("/v1/datasets/sales/contract"), 403)
        assert "scientist" in body["detail"]
    with api.client(api.keys["globex"]) as client:
        for method in ("PUT", "DELETE"):
            path = f"/v1/datasets/{api.keys['sales_id']}/contract"
            assert_problem(client.request(method, path), 404)
    with api.client(api.keys["engineer"]) as client:
        assert_problem(client.put("/v1/datasets/no-such-dataset/contract"), 404)
