"""The SDK's sans-IO core (``sdk/_core.py``), stepped by hand: what each flow sends, how
it reads answers and problems, when and how long it pauses, when it retries, and that
the two drivers (sync ``Datrix``, async ``AsyncDatrix``) perform the same flows over
``httpx.MockTransport`` (the HTTP edge; the live server is tests/integration/test_sdk.py)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from datrix.sdk import _core
from datrix.sdk._core import (
    CloseStream,
    Config,
    DatasetQuery,
    Flow,
    IssueQuery,
    OpenStream,
    ReadLine,
    Send,
    Sleep,
)
from datrix.sdk.errors import (
    AuthenticationError,
    CommandRejected,
    Conflict,
    ConnectionFailed,
    DatrixError,
    NotFound,
    PermissionDenied,
    RateLimited,
    ScanFailed,
    ScanNotCompleted,
    ScanSuperseded,
    ServerError,
    ServiceUnavailable,
    ValidationFailed,
    WaitTimeout,
)
from datrix.sdk.models import Issue, QualityScore

ROOT = Path(__file__).resolve().parents[2]
URL = "http://datrix.test"
CONFIG = Config(api_key="dtx_test", url=URL, max_retries=3)

Handler = Callable[[Send], httpx.Response | httpx.TransportError]


def response(
    status: int, body: Any = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    kind = "application/problem+json" if status >= 400 else "application/json"
    content = b"" if body is None else json.dumps(body).encode()
    return httpx.Response(
        status, content=content, headers={"content-type": kind, **(headers or {})}
    )


def problem(status: int, detail: str, slug: str = "x", **extra: Any) -> dict[str, Any]:
    return {
        "type": f"https://api.datrix.ai/errors/{slug}",
        "title": f"title {status}",
        "status": status,
        "detail": detail,
        "instance": "/v1/x",
        **extra,
    }


def drive(flow: Flow[Any], handler: Handler) -> tuple[Any, list[Any]]:
    """Run ``flow`` with ``handler`` answering its requests (a stream's lines: its
    answer's text); its result and its steps."""
    steps: list[Any] = []
    result: Any = None
    lines: dict[int, list[str]] = {}
    try:
        while True:
            step = flow.send(result)
            steps.append(step)
            if isinstance(step, Send):
                result = handler(step)
            elif isinstance(step, OpenStream):
                result = handler(step.send)
                if isinstance(result, httpx.Response):
                    lines[id(result)] = result.text.splitlines()
            elif isinstance(step, ReadLine):
                pending = lines[id(step.response)]
                result = pending.pop(0) if pending else None
            else:
                assert isinstance(step, Sleep | CloseStream)
                lines.pop(id(getattr(step, "response", None)), None)
                result = None
    except StopIteration as stop:
        assert not lines, "a stream was left open"
        return stop.value, steps


def scripted(*answers: httpx.Response | httpx.TransportError) -> Handler:
    queue = list(answers)

    def handler(step: Send) -> httpx.Response | httpx.TransportError:
        assert queue, f"unexpected request {step.method} {step.path}"
        return queue.pop(0)

    return handler


def sends(steps: list[Any]) -> list[Send]:
    return [s for s in steps if isinstance(s, Send)]


def sleeps(steps: list[Any]) -> list[float]:
    return [s.seconds for s in steps if isinstance(s, Sleep)]


# -- configuration ---------------------------------------------------------------------------
def test_the_key_and_url_come_from_the_arguments_else_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DATRIX_API_KEY", raising=False)
    monkeypatch.delenv("DATRIX_URL", raising=False)
    with pytest.raises(ValueError, match="DATRIX_API_KEY"):
        Config.build(None, None)
    monkeypatch.setenv("DATRIX_API_KEY", "dtx_env")
    config = Config.build(None, None)
    assert (config.api_key, config.url) == ("dtx_env", "http://127.0.0.1:8000")
    monkeypatch.setenv("DATRIX_URL", "https://api.example.com/")
    assert Config.build(None, None).url == "https://api.example.com"
    assert Config.build("dtx_arg", "http://h:1").api_key == "dtx_arg"
    assert Config.build("dtx_arg", None).headers["Authorization"] == "Bearer dtx_arg"
    for bad_url in ("ftp://h", "h:8000", "http://"):
        with pytest.raises(ValueError, match="url must be"):
            Config.build("k", bad_url)
    with pytest.raises(ValueError, match="control characters"):
        Config.build("dtx_a\nb", None)
    with pytest.raises(ValueError, match="timeout"):
        Config.build("k", None, timeout=0)


# -- one request -----------------------------------------------------------------------------
def test_a_get_returns_the_body() -> None:
    answer, steps = drive(
        _core.send(CONFIG, "GET", "/v1/datasets", params={"limit": 5, "cursor": None}),
        scripted(response(200, {"items": []})),
    )
    assert answer.body == {"items": []} and answer.status == 200
    (only,) = sends(steps)
    assert only.params == {"limit": 5}  # None is left out
    assert only.idempotency_key is None


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, DatrixError),
        (401, AuthenticationError),
        (403, PermissionDenied),
        (404, NotFound),
        (409, Conflict),
        (422, ValidationFailed),
        (500, ServerError),
        (418, DatrixError),
    ],
)
def test_an_error_is_the_typed_exception_carrying_the_problem(
    status: int, cls: type[DatrixError]
) -> None:
    body = problem(status, "what went wrong", errors=[{"loc": ["query", "name"], "msg": "bad"}])
    with pytest.raises(cls) as caught:
        drive(_core.send(CONFIG, "GET", "/v1/x"), scripted(response(status, body)))
    error = caught.value
    assert type(error) is cls or status == 400
    assert error.status == status and error.detail == "what went wrong"
    assert error.title == f"title {status}" and error.type == body["type"]
    assert error.problem == body and error.instance == "/v1/x"
    assert error.errors == [{"loc": ["query", "name"], "msg": "bad"}]
    assert str(error) == f"{status} title {status}: what went wrong"


def test_an_answer_that_is_no_problem_still_raises_by_its_status() -> None:
    bad_gateway = httpx.Response(502, text="<html>bad gateway</html>")
    with pytest.raises(ServerError, match="bad gateway") as caught:
        drive(_core.send(CONFIG, "GET", "/v1/x"), scripted(bad_gateway))
    assert caught.value.status == 502


def test_429_is_retried_after_the_retry_after_seconds() -> None:
    limited = response(429, problem(429, "slow down"), {"Retry-After": "3"})
    answer, steps = drive(
        _core.send(CONFIG, "GET", "/v1/datasets"),
        scripted(limited, limited, response(200, {"ok": True})),
    )
    assert answer.body == {"ok": True}
    assert sleeps(steps) == [3.0, 3.0]
    assert len(sends(steps)) == 3


def test_a_retry_after_longer_than_the_cap_waits_the_cap() -> None:
    limited = response(429, problem(429, "slow"), {"Retry-After": "3600"})
    _, steps = drive(_core.send(CONFIG, "GET", "/v1/x"), scripted(limited, response(200, {})))
    assert sleeps(steps) == [CONFIG.max_backoff]


def test_retries_end_with_the_typed_error_and_its_retry_after() -> None:
    limited = response(429, problem(429, "slow down"), {"Retry-After": "2"})
    with pytest.raises(RateLimited) as caught:
        drive(_core.send(CONFIG, "GET", "/v1/x"), scripted(*[limited] * 4))
    assert caught.value.retry_after == 2.0 and caught.value.status == 429
    unavailable = response(503, problem(503, "down"))
    with pytest.raises(ServiceUnavailable):
        drive(_core.send(CONFIG, "GET", "/v1/x"), scripted(*[unavailable] * 4))


def test_a_503_without_retry_after_backs_off_exponentially() -> None:
    down = response(503, problem(503, "down"))
    _, steps = drive(_core.send(CONFIG, "GET", "/v1/x"), scripted(down, down, down, response(200)))
    waits = sleeps(steps)
    assert len(waits) == 3
    for attempt, wait in enumerate(waits):  # half to all of backoff * 2**attempt
        ceiling = CONFIG.backoff * 2**attempt
        assert ceiling / 2 <= wait <= ceiling


def test_a_post_carries_one_idempotency_key_on_every_attempt() -> None:
    down = response(503, problem(503, "down"), {"Retry-After": "0"})
    in_use = response(
        409, problem(409, "busy", slug="idempotency-key-in-use"), {"Retry-After": "1"}
    )
    answer, steps = drive(
        _core.send(CONFIG, "POST", "/v1/datasets/d/scan", json={"engine": "auto"}),
        scripted(down, in_use, response(202, {"command_id": "c"})),
    )
    assert answer.status == 202
    posted = sends(steps)
    keys = {s.idempotency_key for s in posted}
    assert len(posted) == 3 and len(keys) == 1 and None not in keys
    assert sleeps(steps) == [0.0, 1.0]
    # another logical call gets another key
    _, again = drive(_core.send(CONFIG, "POST", "/v1/datasets/d/scan"), scripted(response(202, {})))
    assert sends(again)[0].idempotency_key not in keys


def test_a_write_without_an_idempotency_key_is_never_retried() -> None:
    assert not Send("POST", "/v1/x").retry_is_safe
    assert not Send("DELETE", "/v1/x").retry_is_safe
    assert Send("POST", "/v1/x", headers={"Idempotency-Key": "k"}).retry_is_safe
    assert Send("GET", "/v1/x").retry_is_safe


def test_a_conflict_that_is_not_the_idempotency_key_in_use_is_not_retried() -> None:
    conflict = response(409, problem(409, "the scan is not completed", slug="conflict"))
    with pytest.raises(Conflict):
        drive(_core.send(CONFIG, "POST", "/v1/x"), scripted(conflict))


def test_a_connection_error_is_retried_then_raised() -> None:
    refused = httpx.ConnectError("connection refused")
    answer, steps = drive(
        _core.send(CONFIG, "GET", "/v1/x"), scripted(refused, response(200, {"ok": 1}))
    )
    assert answer.body == {"ok": 1} and len(sleeps(steps)) == 1
    with pytest.raises(ConnectionFailed, match="connection refused") as caught:
        drive(_core.send(CONFIG, "GET", "/v1/x"), scripted(*[refused] * 4))
    assert caught.value.status is None


# -- operations ------------------------------------------------------------------------------
def _dataset(id_: str = "ds-1", name: str = "sales") -> dict[str, Any]:
    return {
        "id": id_,
        "name": name,
        "status": "active",
        "latest_version": 1,
        "row_count": 10,
        "column_count": 3,
        "size_bytes": 100,
        "created_at": "2026-12-01T00:00:00",
        "updated_at": "2026-12-01T00:00:00",
    }


def test_upload_streams_the_file_then_waits_for_its_command(tmp_path: Path) -> None:
    file = tmp_path / "sales.csv"
    file.write_text("a,b\n1,2\n")
    answer, steps = drive(
        _core.upload(CONFIG, file, None, timeout=60),
        scripted(
            response(202, {"command_id": "c1", "dataset_id": "ds-1", "status": "queued"}),
            response(200, {"id": "c1", "status": "queued", "reason": None}),
            response(200, {"id": "c1", "status": "accepted", "reason": None}),
            response(200, {**_dataset(), "latest_scan_id": None, "score": None}),
        ),
    )
    assert answer.id == "ds-1" and answer.name == "sales"
    post, poll1, poll2, get = sends(steps)
    assert (post.method, post.path, post.upload) == ("POST", "/v1/datasets", file)
    assert post.params == {"name": "sales", "filename": "sales.csv"}
    assert post.headers["Content-Length"] == str(file.stat().st_size)
    assert post.idempotency_key is not None
    assert poll1.path == poll2.path == "/v1/commands/c1" and get.path == "/v1/datasets/ds-1"
    assert sleeps(steps) == [CONFIG.poll_min]


def test_an_upload_whose_command_is_rejected_raises_with_the_reason(tmp_path: Path) -> None:
    file = tmp_path / "x.csv"
    file.write_text("a\n1\n")
    with pytest.raises(CommandRejected, match="name taken") as caught:
        drive(
            _core.upload(CONFIG, file, "mine", timeout=60),
            scripted(
                response(202, {"command_id": "c1", "dataset_id": "ds-1"}),
                response(200, {"id": "c1", "status": "rejected", "reason": "name taken"}),
            ),
        )
    assert caught.value.reason == "name taken"
    with pytest.raises(FileNotFoundError, match=r"nope\.csv"):
        drive(_core.upload(CONFIG, tmp_path / "nope.csv", None, None), scripted())


def test_the_same_file_again_is_unchanged_and_not_waited_for(tmp_path: Path) -> None:
    file = tmp_path / "x.csv"
    file.write_text("a\n1\n")
    answer, steps = drive(
        _core.upload(CONFIG, file, None, timeout=60),
        scripted(
            response(200, {"command_id": None, "status": "unchanged", "dataset_id": "ds-1"}),
            response(200, _dataset()),
        ),
    )
    assert answer.id == "ds-1" and [s.path for s in sends(steps)][-1] == "/v1/datasets/ds-1"


class Recorder:
    def __init__(self) -> None:
        self.seen: list[str] = []
        self.progress: list[tuple[str | None, float | None]] = []
        self.closed = False

    def update(
        self, status: str, elapsed: float, phase: str | None = None, done: float | None = None
    ) -> None:
        self.seen.append(status)
        self.progress.append((phase, done))

    def close(self) -> None:
        self.closed = True


def _scan(status: str, **extra: Any) -> dict[str, Any]:
    return {"scan_id": "s1", "dataset_id": "ds-1", "status": status, **extra}


SCORE = {
    "overall": 74.0,
    "completeness": 89.5,
    "consistency": 60.0,
    "accuracy": 71.0,
    "distribution": 80.0,
    "label_quality": None,
}


def test_waiting_for_a_scan_polls_with_growing_pauses_until_it_completes() -> None:
    shown = Recorder()
    status, steps = drive(
        _core.wait_scan(CONFIG, "ds-1", "s1", None, shown, events=False),
        scripted(
            response(200, _scan("queued")),
            response(200, _scan("running")),
            response(200, _scan("running")),
            response(200, _scan("completed", score=SCORE, dataset_version=1)),
        ),
    )
    assert status.status == "completed" and status.score is not None
    assert status.score.overall == 74.0 and status.score.scan_id == "s1"
    assert shown.seen == ["queued", "running", "running", "completed"] and shown.closed
    waits = sleeps(steps)
    assert waits == sorted(waits) and waits[0] == CONFIG.poll_min
    assert {s.path for s in sends(steps)} == {"/v1/datasets/ds-1/scan/s1"}


def test_a_failed_scan_raises_and_a_wait_can_time_out() -> None:
    shown = Recorder()
    with pytest.raises(ScanFailed, match="out of memory"):
        drive(
            _core.wait_scan(CONFIG, "ds-1", "s1", None, shown),
            scripted(response(200, _scan("failed", error="out of memory"))),
        )
    assert shown.closed
    flow = _core.wait_scan(CONFIG, "ds-1", "s1", 0.01, Recorder(), events=False)
    with pytest.raises(WaitTimeout, match="still running"):
        drive(flow, lambda step: response(200, _scan("running")))


SSE = (
    ": the job's events\n\n"
    'event: progress\ndata: {"phase": "profiling", "done": 1, "total": 4}\nid: 1\n\n'
    'event: progress\ndata: {"phase": "issues", "done": 3, "total": 4}\nid: 2\n\n'
    "event: completed\ndata: {}\nid: 3\n\n"
)


def _events(status: int = 200, text: str = SSE) -> httpx.Response:
    kind = "text/event-stream" if status == 200 else "application/problem+json"
    return httpx.Response(status, text=text, headers={"content-type": kind})


def test_a_wait_follows_the_jobs_events_then_reads_the_outcome() -> None:
    shown = Recorder()
    status, steps = drive(
        _core.wait_scan(CONFIG, "ds-1", "s1", None, shown),
        scripted(
            response(200, _scan("running")),
            _events(),
            response(200, _scan("completed", score=SCORE)),
        ),
    )
    assert status.status == "completed"
    (opened,) = [s for s in steps if isinstance(s, OpenStream)]
    assert opened.send.path == "/v1/jobs/s1/events"
    assert opened.send.headers["Accept"].startswith("text/event-stream")
    assert shown.progress[1:3] == [("profiling", 0.25), ("issues", 0.75)]
    assert sleeps(steps) == [] and sum(isinstance(s, CloseStream) for s in steps) == 1


def test_opening_the_events_waits_out_a_429() -> None:
    limited = response(429, problem(429, "slow"), {"Retry-After": "2"})
    status, steps = drive(
        _core.wait_scan(CONFIG, "ds-1", "s1", None, Recorder()),
        scripted(
            response(200, _scan("running")),
            limited,
            _events(),
            response(200, _scan("completed", score=SCORE)),
        ),
    )
    assert status.status == "completed" and sleeps(steps) == [2.0]
    assert sum(isinstance(s, OpenStream) for s in steps) == 2
    assert sum(isinstance(s, CloseStream) for s in steps) == 2


def test_without_the_events_a_wait_polls() -> None:
    """A server without /v1/jobs/{id}/events (today's), or a stream that breaks."""
    for trouble in (_events(404, "{}"), httpx.ReadTimeout("silence"), _events(text="data: x\n")):
        shown = Recorder()
        status, steps = drive(
            _core.wait_scan(CONFIG, "ds-1", "s1", None, shown),
            scripted(
                response(200, _scan("queued")),
                trouble,
                response(200, _scan("running")),
                response(200, _scan("completed", score=SCORE)),
            ),
        )
        assert status.status == "completed" and len(sleeps(steps)) == 1
        assert shown.seen == ["queued", "running", "completed"]


def test_the_event_parser_follows_the_event_stream_format() -> None:
    parser = _core.EventParser()
    lines = [": comment", "event: progress", "data: a", "data:b", "id: 7", "retry: 10", ""]
    events = [parser.feed(line) for line in lines]
    assert events[:-1] == [None] * 6
    assert events[-1] == _core.Event("progress", "a\nb", "7")
    assert parser.feed("") is None  # no event without data or a name
    assert [parser.feed("data: x"), parser.feed("")][1] == _core.Event("message", "x", "7")


def test_the_quality_score_reads_like_the_seeds() -> None:
    score = QualityScore.from_api({**SCORE, "overall": 74})
    assert repr(score) == (
        "QualityScore(overall=74, completeness=89.5, consistency=60, accuracy=71, "
        "distribution=80, label_quality=None)"
    )


def test_an_issue_has_impact_pct_from_impact_score() -> None:
    doc = {
        "id": "I001",
        "type": "missing_values",
        "column": "email",
        "dimension": "completeness",
        "severity": "high",
        "description": "25% missing",
        "affected_count": 25,
        "affected_pct": 25.0,
        "impact_score": 42.5,
        "fix_available": True,
        "missingness": "MCAR",
    }
    issue = Issue.from_api(doc, "s1")
    assert issue.impact_pct == 42.5 and issue.column == "email" and issue.scan_id == "s1"


# -- lists -----------------------------------------------------------------------------------
def _issue(i: int) -> dict[str, Any]:
    return {
        "id": f"I{i:03d}",
        "type": "t",
        "column": f"c{i}",
        "dimension": "accuracy",
        "severity": "low",
        "description": "d",
        "affected_count": 1,
        "affected_pct": 1.0,
        "impact_score": 100.0 - i,
        "fix_available": False,
    }


def _drain(pager: _core.Pager[Any], handler: Handler) -> tuple[list[Any], list[Send]]:
    items: list[Any] = []
    requests: list[Send] = []
    while (page := pager.next_page()) is not None:
        got, steps = drive(page, handler)
        items += got
        requests += sends(steps)
    return items, requests


def _issue_server(total: int, scan_id: str = "s1") -> Handler:
    def handler(step: Send) -> httpx.Response:
        start = int(str(step.params.get("cursor", "0")))
        size = int(step.params["limit"])
        end = min(total, start + size)
        return response(
            200,
            {
                "dataset_id": "ds-1",
                "scan_id": scan_id,
                "items": [_issue(i) for i in range(start, end)],
                "next_cursor": str(end) if end < total else None,
            },
        )

    return handler


def test_issues_page_lazily_up_to_the_limit() -> None:
    query = IssueQuery("ds-1", scan_id="s1").order_by("impact").limited(5)
    items, requests = _drain(query.pager(CONFIG), _issue_server(50))
    assert [i.id for i in items] == [f"I{i:03d}" for i in range(5)]
    assert [r.params for r in requests] == [{"limit": 5}]  # one request, of five
    assert requests[0].path == "/v1/quality/ds-1/issues"
    # past one page: 100, then what is left of the limit
    items, requests = _drain(
        IssueQuery("ds-1").sized(100).limited(150).pager(CONFIG), _issue_server(400)
    )
    assert len(items) == 150 and [r.params["limit"] for r in requests] == [100, 50]
    # without a limit: until the last page
    items, requests = _drain(IssueQuery("ds-1").pager(CONFIG), _issue_server(45))
    assert len(items) == 45 and len(requests) == 3
    # filters go to the server
    query = IssueQuery("ds-1").where(dimension="accuracy", column="c1")
    _, requests = _drain(query.pager(CONFIG), _issue_server(1))
    assert requests[0].params == {"limit": 20, "dimension": "accuracy", "column": "c1"}


def test_issues_refuse_an_order_or_filter_the_api_lacks() -> None:
    query = IssueQuery("ds-1")
    assert query.order_by("-impact").order == "-impact"
    for bad in ("severity", "+impact", "impact desc", ""):
        with pytest.raises(ValueError, match="'impact' or '-impact'"):
            query.order_by(bad)
    with pytest.raises(ValueError, match="filtered by dimension, severity, column"):
        query.where(kind="x")
    with pytest.raises(ValueError, match="limit"):
        query.limited(-1)
    with pytest.raises(ValueError, match="page_size"):
        query.sized(101)


def test_a_scans_issues_refuse_a_newer_scans() -> None:
    with pytest.raises(ScanSuperseded, match="s2"):
        _drain(IssueQuery("ds-1", scan_id="s1").pager(CONFIG), _issue_server(3, scan_id="s2"))


def test_datasets_sort_both_ways_and_refuse_an_unknown_sort() -> None:
    def handler(step: Send) -> httpx.Response:
        return response(200, {"items": [_dataset()], "next_cursor": None})

    _, requests = _drain(DatasetQuery(sort="-name").pager(CONFIG), handler)
    assert requests[0].params == {"limit": 20, "sort": "name", "order": "desc"}
    with pytest.raises(ValueError, match="created_at, updated_at, name"):
        DatasetQuery(sort="size")
    with pytest.raises(ValueError, match="status"):
        DatasetQuery(status="gone")


# -- the two drivers over the HTTP edge --------------------------------------------------------
class FakeApi:
    """Just enough of the API's HTTP contract for the drivers: 45 datasets, a scan."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.uploaded = b""
        self.polls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path, params = request.url.path, request.url.params
        if request.headers.get("authorization") != "Bearer dtx_test":
            return response(401, problem(401, "the API key is not valid"))
        if path == "/v1/datasets" and request.method == "GET":
            start = int(params.get("cursor", "0"))
            end = min(45, start + int(params["limit"]))
            items = [_dataset(f"ds-{i}", f"n{i}") for i in range(start, end)]
            return response(200, {"items": items, "next_cursor": str(end) if end < 45 else None})
        if path == "/v1/datasets" and request.method == "POST":
            self.uploaded = request.read()
            return response(202, {"command_id": "c1", "dataset_id": "ds-1", "status": "queued"})
        if path == "/v1/commands/c1":
            return response(200, {"id": "c1", "status": "accepted", "reason": None})
        if path == "/v1/datasets/ds-1":
            return response(200, _dataset())
        if path == "/v1/datasets/ds-1/scan":
            return response(202, {"command_id": "c2", "dataset_id": "ds-1", "scan_id": "s1"})
        if path == "/v1/datasets/ds-1/scan/s1":
            self.polls += 1
            done = self.polls > 1
            return response(200, _scan("completed", score=SCORE) if done else _scan("running"))
        if path == "/v1/jobs/s1/events":
            return _events()
        if path == "/v1/quality/ds-1/issues":
            return _issue_server(30)(Send("GET", path, params=dict(params)))  # type: ignore[arg-type]
        return response(404, problem(404, f"no resource at {path}"))


def test_the_sync_client_drives_the_flows(tmp_path: Path) -> None:
    from datrix import Datrix

    file = tmp_path / "sales.csv"
    file.write_bytes(b"a,b\n" + b"1,2\n" * 300_000)  # more than one upload chunk
    api = FakeApi()
    with Datrix(api_key="dtx_test", url=URL, transport=httpx.MockTransport(api)) as client:
        assert len([d.id for d in client.datasets.list()]) == 45
        ds = client.datasets.upload(file)
        assert api.uploaded == file.read_bytes()
        scan = ds.scan()
        assert scan.wait(progress=False) is scan and scan.score.overall == 74.0
        assert [r.url.path for r in api.requests].count("/v1/jobs/s1/events") == 1
        api.polls, shown = 0, Recorder()  # the stream's lines, read by this driver
        client._run(_core.wait_scan(client._config, "ds-1", "s1", None, shown))
        assert shown.progress[1:3] == [("profiling", 0.25), ("issues", 0.75)]
        top = list(scan.issues.order_by("impact").limit(5))
        assert [i.impact_pct for i in top] == [100.0, 99.0, 98.0, 97.0, 96.0]
        with pytest.raises(NotFound):
            client.datasets.get("nope")
    with (
        Datrix(api_key="dtx_bad", url=URL, transport=httpx.MockTransport(api)) as client,
        pytest.raises(AuthenticationError),
    ):
        client.datasets.get("ds-1")


def test_the_async_client_drives_the_same_flows(tmp_path: Path) -> None:
    from datrix.async_client import AsyncDatrix

    file = tmp_path / "sales.csv"
    file.write_bytes(b"a,b\n" + b"1,2\n" * 300_000)
    api = FakeApi()

    async def main() -> None:
        transport = httpx.MockTransport(api)
        async with AsyncDatrix(api_key="dtx_test", url=URL, transport=transport) as client:
            assert len([d.id async for d in client.datasets.list()]) == 45
            ds = await client.datasets.upload(file)
            assert api.uploaded == file.read_bytes()
            scan = await ds.scan()
            with pytest.raises(ScanNotCompleted, match=r"await scan\.wait"):
                _ = scan.score
            await scan.wait(progress=False)
            assert scan.score.overall == 74.0
            assert [r.url.path for r in api.requests].count("/v1/jobs/s1/events") == 1
            api.polls, shown = 0, Recorder()
            await client._run(_core.wait_scan(client._config, "ds-1", "s1", None, shown))
            assert shown.progress[1:3] == [("profiling", 0.25), ("issues", 0.75)]
            top = [i async for i in scan.issues.order_by("impact").limit(5)]
            assert [i.id for i in top] == ["I000", "I001", "I002", "I003", "I004"]
            with pytest.raises(NotFound):
                await client.datasets.get("nope")

    asyncio.run(main())


def test_importing_the_server_does_not_load_the_sdk() -> None:
    """Workers import datrix.*: the SDK (and httpx) load only on `from datrix import Datrix`."""
    code = (
        "import sys, datrix, datrix.streams.settings, datrix.runtime.bootstrap\n"
        "assert 'httpx' not in sys.modules and 'datrix.sdk' not in sys.modules\n"
        "from datrix import Dataset, Datrix\n"
        "from datrix.async_client import AsyncDatrix\n"
        "assert Datrix.__module__ == Dataset.__module__ == 'datrix.sdk.client'\n"
        "assert 'httpx' in sys.modules\n"
        "try:\n    from datrix import Pipeline\nexcept ImportError as e:\n    print(e)\n"
        "print('ok')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    refused, ok = done.stdout.splitlines()
    assert refused.startswith("cannot import name 'Pipeline' from 'datrix'") and ok == "ok"


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_retried_upload_sends_the_whole_file_again_with_its_key(
    kind: str, tmp_path: Path
) -> None:
    """The body is streamed from the file: each attempt must read it afresh."""
    from datrix import Datrix
    from datrix.async_client import AsyncDatrix

    file = tmp_path / "sales.csv"
    file.write_bytes(b"a,b\n" + b"1,2\n" * 300_000)
    bodies: list[tuple[bytes, str | None, str | None]] = []
    api = FakeApi()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == "/v1/datasets":
            headers = request.headers
            bodies.append(
                (request.read(), headers.get("idempotency-key"), headers.get("content-length"))
            )
            if len(bodies) == 1:
                return response(503, problem(503, "busy"), {"Retry-After": "0"})
        return api(request)

    if kind == "sync":
        with Datrix(api_key="dtx_test", url=URL, transport=httpx.MockTransport(handler)) as c:
            c.datasets.upload(file)
    else:

        async def main() -> None:
            transport = httpx.MockTransport(handler)
            async with AsyncDatrix(api_key="dtx_test", url=URL, transport=transport) as c:
                await c.datasets.upload(file)

        asyncio.run(main())
    assert len(bodies) == 2
    assert bodies[0][0] == bodies[1][0] == file.read_bytes()
    assert bodies[0][1] == bodies[1][1] is not None
    assert bodies[0][2] == bodies[1][2] == str(file.stat().st_size)
