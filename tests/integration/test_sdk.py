"""The Python SDK end to end against a real ``datrix serve`` (embedded default), sync and
async: upload, list across pages, scan and wait, score, issues by impact, typed errors,
and retries (the server's own rate limiter answering 429 with Retry-After; an answer
lost on the way back, retried with the same Idempotency-Key: one command).

The requests go through the SDK's real HTTP transport; ``Recording`` only notes what
passed (and, in one test, drops one answer on the floor after the server sent it)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from datrix import Datrix
from datrix.async_client import AsyncDatrix
from datrix.sdk import (
    AuthenticationError,
    DatrixError,
    NotFound,
    PermissionDenied,
    QualityScore,
    ValidationFailed,
)
from tests.integration.api_server import Server, create_key, start_server
from tests.integration.terminal import run_in_terminal

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _csv(path: Path, rows: int, seed: int = 0) -> Path:
    lines = ["id,email,amount,city"]
    for i in range(rows):
        email = "" if i % 4 == 0 else f"u{i}@example.com"
        amount = 10_000 if i % 50 == 7 else (i * 7 + seed) % 90
        city = ("Paris", "paris", "Berlin", " Berlin", "Rome")[i % 5]
        lines.append(f"{i},{email},{amount},{city}")
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Seen:
    method: str
    path: str
    status: int | None  # None: the answer was dropped
    idempotency_key: str | None
    replayed: bool
    at: float
    retry_after: str | None


class Recording(httpx.HTTPTransport):
    """The real transport, noting each exchange; ``drop_next_answer_to`` a path makes
    the next answer to it vanish (the server did the work; the client sees a timeout)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Seen] = []
        self.drop_next_answer_to: str | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = super().handle_request(request)
        answer.read()
        dropped = self.drop_next_answer_to == request.url.path
        self.seen.append(
            Seen(
                request.method,
                request.url.path,
                None if dropped else answer.status_code,
                request.headers.get("idempotency-key"),
                answer.headers.get("idempotent-replayed") == "true",
                time.monotonic(),
                answer.headers.get("retry-after"),
            )
        )
        if dropped:
            self.drop_next_answer_to = None
            raise httpx.ReadTimeout("the answer was lost (test)", request=request)
        return answer


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("sdk")
    home = root / "home"
    server_keys = {
        role: create_key(home, "acme", role) for role in ("engineer", "viewer", "scientist")
    }
    server_keys["globex"] = create_key(home, "globex", "admin")
    server = start_server(home, root / "serve.log")
    server.keys = server_keys
    try:
        yield server
    finally:
        server.stop()


def test_sync_upload_scan_wait_score_issues_delete(api: Server, tmp_path: Path) -> None:
    data = _csv(tmp_path / "orders.csv", 300)
    with Datrix(api_key=api.keys["engineer"], url=api.url) as client:
        ds = client.datasets.upload(data)
        assert ds.name == "orders" and ds.latest_version == 1 and ds.row_count == 300
        assert client.datasets.get("orders").id == ds.id == client.datasets.get(ds.id[:10]).id
        scan = ds.scan()
        assert scan.status == "queued"  # returned at once: nothing waited for yet
        assert scan.wait(timeout=300, progress=False) is scan
        score = scan.score
        assert isinstance(score, QualityScore) and score.scan_id == scan.id
        assert score.overall is not None and 0 <= score.overall <= 100
        assert repr(score).startswith(f"QualityScore(overall={score.overall:g}, completeness=")
        top = list(scan.issues.order_by("impact").limit(5))
        assert 1 <= len(top) <= 5
        impacts = [i.impact_pct for i in top]
        assert impacts == sorted(impacts, reverse=True)
        assert all(i.scan_id == scan.id for i in top)
        # the same issues the HTTP API lists, in its order
        with api.client(api.keys["engineer"]) as raw:
            page = raw.get(f"/v1/quality/{ds.id}/issues", params={"limit": 5}).json()
        assert [i.id for i in top] == [i["id"] for i in page["items"]]
        assert [i.impact_score for i in top] == [i["impact_score"] for i in page["items"]]
        nulls = next(i for i in scan.issues if i.column == "email" and i.type == "null_values")
        assert nulls.affected_count == 75
        assert all(i.dimension == "accuracy" for i in scan.issues.where(dimension="accuracy"))
        # the dataset's current quality is this scan's
        assert ds.quality_score().scan_id == scan.id
        assert client.commands.get(scan.command_id).status == "accepted"
        # deleted: accepted, then gone
        done = ds.delete()
        assert done.status == "accepted" and client.commands.get(done.id) == done
        with pytest.raises(NotFound):
            client.datasets.get(ds.id)


def test_list_pages_through_every_dataset(api: Server, tmp_path: Path) -> None:
    transport = Recording()
    names = [f"page-{i}" for i in range(5)]
    with Datrix(api_key=api.keys["engineer"], url=api.url, transport=transport) as client:
        for i, name in enumerate(names):
            client.datasets.upload(_csv(tmp_path / f"{name}.csv", 20, seed=i), name=name)
        transport.seen.clear()
        listed = [d.name for d in client.datasets.list(sort="name", page_size=2)]
        assert [n for n in listed if n.startswith("page-")] == names
        pages = [s for s in transport.seen if s.path == "/v1/datasets"]
        assert len(pages) == (len(listed) + 1) // 2 and len(pages) >= 3  # 2 per page
        newest_first = [d.name for d in client.datasets.list(sort="-name", limit=3)]
        assert newest_first == sorted(listed, reverse=True)[:3]
        # lazy: nothing is fetched until the iteration asks
        transport.seen.clear()
        lazy = client.datasets.list(page_size=2)
        assert transport.seen == []
        first = next(iter(lazy))
        assert first.name and len(transport.seen) == 1


def test_errors_are_typed_and_carry_the_problem(api: Server, tmp_path: Path) -> None:
    with (
        Datrix(api_key="dtx_not_a_real_key", url=api.url) as client,
        pytest.raises(AuthenticationError) as unauthorized,
    ):
        client.datasets.list().all()
    assert unauthorized.value.status == 401
    assert "not valid" in (unauthorized.value.detail or "")
    assert unauthorized.value.type == "https://api.datrix.ai/errors/unauthorized"
    assert unauthorized.value.problem["instance"] == "/v1/datasets"
    with Datrix(api_key=api.keys["engineer"], url=api.url) as client:
        mine = client.datasets.upload(_csv(tmp_path / "mine.csv", 10))
        with pytest.raises(NotFound) as missing:
            client.datasets.get("no-such-dataset")
        assert missing.value.status == 404 and "no-such-dataset" in missing.value.detail
        bad = tmp_path / "broken.parquet"
        bad.write_bytes(b"PAR1 not really parquet")
        with pytest.raises(ValidationFailed) as invalid:
            client.datasets.upload(bad)
        assert invalid.value.status == 422 and invalid.value.detail
        with pytest.raises(NotFound):  # nothing was recorded
            client.datasets.get("broken")
    with Datrix(api_key=api.keys["viewer"], url=api.url) as client:
        with pytest.raises(PermissionDenied) as denied:
            client.datasets.upload(_csv(tmp_path / "x.csv", 5))
        assert denied.value.status == 403 and "viewer" in denied.value.detail
    with (
        Datrix(api_key=api.keys["globex"], url=api.url) as client,  # another tenant
        pytest.raises(NotFound),
    ):
        client.datasets.get(mine.id)
    assert issubclass(PermissionDenied, DatrixError)


def test_async_upload_list_scan_wait_score_issues(api: Server, tmp_path: Path) -> None:
    data = _csv(tmp_path / "async-orders.csv", 200)

    async def main() -> None:
        async with AsyncDatrix(api_key=api.keys["scientist"], url=api.url) as reader:
            async with AsyncDatrix(api_key=api.keys["engineer"], url=api.url) as client:
                ds = await client.datasets.upload(data, name="async-orders")
            assert ds.latest_version == 1
            listed = [d.name async for d in reader.datasets.list(page_size=2)]
            assert "async-orders" in listed
            found = await reader.datasets.get("async-orders")
            scan = await found.scan()
            await scan.wait(timeout=300, progress=False)
            assert scan.status == "completed" and scan.score.overall is not None
            top = [i async for i in scan.issues.order_by("-impact").limit(3)]
            assert len(top) == 3
            assert [i.impact_pct for i in top] == sorted((i.impact_pct for i in top), reverse=True)
            assert (await reader.commands.get(scan.command_id)).status == "accepted"
            with pytest.raises(NotFound):
                await reader.datasets.get("no-such")
        async with AsyncDatrix(api_key="dtx_nope", url=api.url) as stranger:
            with pytest.raises(AuthenticationError):
                await stranger.datasets.get("async-orders")

    asyncio.run(main())


def test_a_lost_answer_is_retried_with_the_same_key_and_submits_once(
    api: Server, tmp_path: Path
) -> None:
    transport = Recording()
    with Datrix(api_key=api.keys["engineer"], url=api.url, transport=transport) as client:
        ds = client.datasets.upload(_csv(tmp_path / "lost.csv", 50))
        with api.client(api.keys["engineer"]) as raw:
            before = raw.get(f"/v1/quality/{ds.id}/history").json()["items"]
        transport.drop_next_answer_to = f"/v1/datasets/{ds.id}/scan"
        scan = ds.scan()
        scan.wait(timeout=300, progress=False)
        with api.client(api.keys["engineer"]) as raw:
            after = raw.get(f"/v1/quality/{ds.id}/history").json()["items"]
    posts = [s for s in transport.seen if s.path == f"/v1/datasets/{ds.id}/scan"]
    assert [p.status for p in posts] == [None, 202], posts
    assert posts[0].idempotency_key and posts[0].idempotency_key == posts[1].idempotency_key
    assert posts[1].replayed  # the server's first answer, not a second submission
    assert [h["scan_id"] for h in after[len(before) :]] == [scan.id]  # one scan, not two


def test_429_is_retried_after_retry_after_on_the_real_rate_limiter(tmp_path: Path) -> None:
    """0.5 request/s per key, a bucket of one: right after an answered request the next
    one is a 429 (Retry-After: 2), so the scan's POST is refused once, then retried."""
    home = tmp_path / "home"
    key, reader = create_key(home, "acme", "engineer"), create_key(home, "acme", "viewer")
    server = start_server(home, tmp_path / "serve.log", DATRIX_API_RATE_LIMIT="0.5")
    transport = Recording()
    try:
        with Datrix(api_key=key, url=server.url, transport=transport) as client:
            ds = client.datasets.upload(_csv(tmp_path / "limited.csv", 20))
            assert client.datasets.get(ds.id).id == ds.id  # the bucket is empty again
            scan = ds.scan()
            scan.wait(timeout=300, progress=False)  # its polls are throttled too
        with server.client(reader) as raw:  # another key: a bucket of its own
            history = raw.get(f"/v1/quality/{ds.id}/history").json()["items"]
    finally:
        server.stop()
    limited = [i for i, s in enumerate(transport.seen) if s.status == 429]
    assert limited, transport.seen
    for i in limited:  # each retry waited at least the server's Retry-After
        retry_after = transport.seen[i].retry_after
        assert retry_after is not None
        gap = transport.seen[i + 1].at - transport.seen[i].at
        assert gap >= float(retry_after) * 0.95, (gap, retry_after)
        assert transport.seen[i + 1].path == transport.seen[i].path
    posts = [s for s in transport.seen if s.path == f"/v1/datasets/{ds.id}/scan"]
    assert posts[0].status == 429 and posts[-1].status == 202, posts
    assert len({p.idempotency_key for p in posts}) == 1 and posts[0].idempotency_key
    assert [h["scan_id"] for h in history] == [scan.id]  # one scan submitted


def _readme_block(marker: str, language: str) -> str:
    readme = (ROOT / "README.md").read_text()
    found = re.search(rf"<!-- {marker} -->\s*```{language}\n(.*?)```", readme, re.S)
    assert found, f"README.md has no {marker} block"
    return found.group(1)


def test_readme_sdk_example_runs(tmp_path: Path) -> None:
    """The README's ten lines of SDK code, as written, in a fresh interpreter."""
    code = _readme_block("sdk-example", "python")
    assert len(code.strip().splitlines()) <= 10, code
    home = tmp_path / "home"
    key = create_key(home, "acme", "engineer")
    work = tmp_path / "work"
    work.mkdir()
    _csv(work / "sales.csv", 100)
    server = start_server(home, tmp_path / "serve.log")
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "DATRIX_URL": server.url,
        "DATRIX_API_KEY": key,
    }
    try:
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=work,
            env=env,
            stdin=subprocess.DEVNULL,
        )
        # at a terminal: the same, with the wait's progress line (rich, on stderr)
        with pytest.MonkeyPatch.context() as patch:
            patch.chdir(work)  # the terminal's process starts in the working folder
            seen = run_in_terminal([sys.executable, "-c", code], env, timeout=300)
    finally:
        server.stop()
    assert seen.code == 0, seen.text
    assert re.search(r"scan [0-9a-f]{8} .*completed", seen.text), seen.text
    assert "QualityScore(overall=" in seen.text
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("QualityScore(overall="), done.stdout
    issues = lines[1:]
    assert 1 <= len(issues) <= 5
    impacts = [float(re.search(r"\(impact: ([\d.]+)%\)$", line).group(1)) for line in issues]  # type: ignore[union-attr]
    assert impacts == sorted(impacts, reverse=True)
    assert "\x1b" not in done.stderr  # no progress bar when stderr is not a terminal
