"""The SDK's one implementation of the API's protocol, sans I/O.

Every operation (upload and wait, list a page, scan, wait for a scan...) is a *flow*: a
generator that yields what it needs done, ``Send`` (an HTTP request) or ``Sleep`` (a
pause), and is sent back the outcome (an ``httpx.Response``, or the
``httpx.TransportError`` the request raised; None after a sleep); its return value is
the operation's result. Request building, answer parsing, typed errors, retries with
backoff and ``Retry-After``, Idempotency-Keys, polling and paging all live here, once.
The sync client (``client.py``) and the async one (``async_client.py``) are two thin
drivers that perform the steps with ``httpx.Client`` / ``httpx.AsyncClient`` and
``time.sleep`` / ``asyncio.sleep``: neither holds any logic of the protocol.

Retries: a request is retried (at most ``max_retries`` times) on 429 and 503, and on a
connection error, when repeating it is safe: a GET always; a POST or DELETE only because
it carries the ``Idempotency-Key`` this module sets itself (one uuid4 per logical call,
the same on every attempt, so the server answers a repeat with the first answer and
submits nothing new; its 409 "still being processed" for that key is retried too). The
pause is the answer's ``Retry-After`` when it has one, else an exponential backoff with
jitter.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections.abc import Callable, Generator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import quote, urlsplit

import httpx

from datrix.sdk.errors import (
    CommandRejected,
    ConnectionFailed,
    DatrixError,
    FixFailed,
    NotFound,
    ScanFailed,
    ScanSuperseded,
    WaitTimeout,
    error_for,
    parse_retry_after,
)
from datrix.sdk.models import (
    CommandStatus,
    DatasetInfo,
    FixPreview,
    FixResult,
    Issue,
    ProvenanceEntry,
    QualityScore,
    Rollback,
    ScanStatus,
    VersionInfo,
)

DEFAULT_URL = "http://127.0.0.1:8000"  # `datrix serve`'s default --host and --port
PROBLEM = "application/problem+json"
VERSION = "0.1.0"
UPLOAD_CHUNK = 1 << 20  # bytes read from the file per chunk of an upload
MAX_PAGE = 100  # the API's largest page
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
IDEMPOTENCY_IN_USE = "idempotency-key-in-use"  # the type slug of the server's 409

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


# -- the steps a flow yields -------------------------------------------------------------------
@dataclass(frozen=True)
class Send:
    """Perform this HTTP request; send back the ``httpx.Response`` (read in full), or the
    ``httpx.TransportError`` it raised."""

    method: str
    path: str
    params: dict[str, str | int] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None
    upload: Path | None = None  # the body is this file's bytes, read in chunks

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("Idempotency-Key")

    @property
    def retry_is_safe(self) -> bool:
        """A repeat cannot do the work twice: a read, or a keyed write."""
        return self.method not in UNSAFE or self.idempotency_key is not None


@dataclass(frozen=True)
class Sleep:
    """Pause this long (seconds); send back None."""

    seconds: float


@dataclass(frozen=True)
class OpenStream:
    """Perform this request and keep its body open (server-sent events); send back the
    ``httpx.Response`` (status and headers read, body not), or the
    ``httpx.TransportError`` it raised."""

    send: Send


@dataclass(frozen=True)
class ReadLine:
    """Read the next line of the open ``response``; send back the line (without its end),
    None at the end of the body, or the ``httpx.TransportError`` the read raised."""

    response: httpx.Response


@dataclass(frozen=True)
class CloseStream:
    """Close the open ``response``; send back None."""

    response: httpx.Response


Step = Send | Sleep | OpenStream | ReadLine | CloseStream
Flow = Generator[Step, Any, T]


@dataclass(frozen=True)
class Answer:
    """A successful answer: its status, JSON body (None when empty) and headers."""

    status: int
    body: Any
    headers: dict[str, str]


class Reporter(Protocol):
    """Told what a wait sees: the scan's status, the seconds waited so far and, when
    the server streams progress, the job's phase and the share of it done (0-1)."""

    def update(
        self, status: str, elapsed: float, phase: str | None = None, done: float | None = None
    ) -> None: ...

    def close(self) -> None: ...


class Silent:
    def update(
        self, status: str, elapsed: float, phase: str | None = None, done: float | None = None
    ) -> None:
        pass

    def close(self) -> None:
        pass


# -- configuration -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Config:
    """How to reach the API: from the arguments, else ``DATRIX_API_KEY`` and
    ``DATRIX_URL`` (default ``http://127.0.0.1:8000``)."""

    api_key: str
    url: str
    timeout: float = 30.0
    max_retries: int = 5
    backoff: float = 0.5  # the first pause before a retry without Retry-After (doubles)
    max_backoff: float = 30.0  # no pause is longer (a longer Retry-After included)
    poll_min: float = 0.2  # the first pause of a wait's polling (x1.5 each poll)
    poll_max: float = 2.0

    @classmethod
    def build(
        cls,
        api_key: str | None,
        url: str | None,
        *,
        timeout: float = 30.0,
        max_retries: int = 5,
    ) -> Config:
        key = api_key if api_key is not None else os.environ.get("DATRIX_API_KEY", "")
        key = key.strip()
        if not key:
            raise ValueError(
                "no API key: pass Datrix(api_key='dtx_...') or set DATRIX_API_KEY "
                "(`datrix keys create` makes one)"
            )
        if any(c.isspace() or not c.isprintable() for c in key):
            raise ValueError("the API key has spaces or control characters: not a Datrix key")
        chosen = (url if url is not None else os.environ.get("DATRIX_URL", "")).strip()
        chosen = (chosen or DEFAULT_URL).rstrip("/")
        parts = urlsplit(chosen)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"url must be http(s)://host[:port], got {chosen!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries!r}")
        return cls(api_key=key, url=chosen, timeout=timeout, max_retries=max_retries)

    @property
    def headers(self) -> dict[str, str]:
        """Sent with every request."""
        return {
            "Authorization": f"Bearer {self.api_key}",
            "Accept": f"application/json, {PROBLEM}",
            "User-Agent": f"datrix-sdk/{VERSION} httpx/{httpx.__version__}",
        }

    def pause(self, attempt: int) -> float:
        """The backoff before retry ``attempt`` (0-based), with jitter (half to all)."""
        ceiling = min(self.max_backoff, self.backoff * 2**attempt)
        return float(ceiling * random.uniform(0.5, 1.0))


# -- one request, with retries -----------------------------------------------------------------
def send(
    config: Config,
    method: str,
    path: str,
    *,
    params: dict[str, str | int | None] | None = None,
    json: Any = None,
    upload: Path | None = None,
) -> Flow[Answer]:
    """One logical call: the request, retried while that is safe and useful; returns the
    successful answer or raises the ``DatrixError`` of the problem."""
    headers: dict[str, str] = {}
    if method in UNSAFE:
        headers["Idempotency-Key"] = str(uuid.uuid4())  # the same on every attempt
    if upload is not None:
        headers["Content-Type"] = "application/octet-stream"
    step = Send(
        method=method,
        path=path,
        params={k: v for k, v in (params or {}).items() if v is not None},
        headers=headers,
        json=json,
        upload=upload,
    )
    attempt = 0
    while True:
        if upload is not None:  # the size as the server will see it (413 before the body)
            size = str(upload.stat().st_size)
            step = replace(step, headers={**step.headers, "Content-Length": size})
        result = yield step
        if isinstance(result, httpx.TransportError):
            if not step.retry_is_safe or attempt >= config.max_retries:
                raise ConnectionFailed(
                    f"{method} {config.url}{path}: {type(result).__name__}: {result}"
                ) from result
            delay = config.pause(attempt)
        else:
            response: httpx.Response = result
            if response.is_success:
                return Answer(response.status_code, _json(response), dict(response.headers))
            problem = problem_of(response)
            headers_ = {k.lower(): v for k, v in response.headers.items()}
            error = error_for(response.status_code, problem, headers_)
            if not (_transient(response, problem) and step.retry_is_safe):
                raise error
            if attempt >= config.max_retries:
                raise error
            waited = parse_retry_after(response.headers.get("retry-after"))
            delay = config.pause(attempt) if waited is None else waited
        yield Sleep(min(delay, config.max_backoff))
        attempt += 1


def _transient(response: httpx.Response, problem: dict[str, Any]) -> bool:
    status = response.status_code
    if status in (429, 503):
        return True
    kind = problem.get("type")
    return status == 409 and isinstance(kind, str) and kind.endswith("/" + IDEMPOTENCY_IN_USE)


def _json(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise DatrixError(
            f"the server answered {response.status_code} with a body that is not JSON "
            f"({response.headers.get('content-type', 'no content type')})",
            status=response.status_code,
        ) from None


def problem_of(response: httpx.Response) -> dict[str, Any]:
    """The RFC 9457 body of an error answer (one made up from the status and the text
    when the answer is not a problem, as a proxy in between may send)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "status" in body:
        return body
    text = response.text.strip()[:500]
    return {
        "type": "about:blank",
        "title": response.reason_phrase or f"HTTP {response.status_code}",
        "status": response.status_code,
        "detail": text or response.reason_phrase or f"HTTP {response.status_code}",
    }


def ref(value: str) -> str:
    """A dataset or scan reference as one path segment (a name may hold '/' or '?')."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a non-empty id or name, got {value!r}")
    return quote(value, safe="")


# -- the operations ----------------------------------------------------------------------------
class Deadline:
    def __init__(self, timeout: float | None) -> None:
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds or None, got {timeout!r}")
        self.start = time.monotonic()
        self.timeout = timeout

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float | None:
        return None if self.timeout is None else self.timeout - self.elapsed


def _poll_pause(config: Config, polls: int, deadline: Deadline) -> float:
    pause = min(config.poll_max, config.poll_min * 1.5**polls)
    left = deadline.left()
    return pause if left is None else max(0.0, min(pause, left))


def get_dataset(config: Config, name_or_id: str) -> Flow[DatasetInfo]:
    answer = yield from send(config, "GET", f"/v1/datasets/{ref(name_or_id)}")
    return DatasetInfo.from_api(answer.body)


def upload(
    config: Config, path: str | os.PathLike[str], name: str | None, timeout: float | None
) -> Flow[DatasetInfo]:
    """Upload a file as a dataset (or a new version of the dataset ``name``), wait until
    its command is accepted, and return the dataset."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"no file {str(file)!r} to upload")
    chosen = name if name is not None else file.stem
    deadline = Deadline(timeout)
    answer = yield from send(
        config,
        "POST",
        "/v1/datasets",
        params={"name": chosen, "filename": file.name},
        upload=file,
    )
    dataset_id = answer.body["dataset_id"]
    command_id = answer.body.get("command_id")
    if command_id is not None:  # None: the same bytes again, nothing to do (200 unchanged)
        done = yield from wait_command(config, command_id, deadline)
        if done.status == "rejected":
            raise CommandRejected(done.id, done.reason)
    polls = 0
    while True:  # the command is accepted; the dataset's read model may trail it a moment
        try:
            return (yield from get_dataset(config, dataset_id))
        except NotFound:
            left = deadline.left()
            if left is not None and left <= 0:
                raise
            if polls >= 20:
                raise
        yield Sleep(_poll_pause(config, polls, deadline))
        polls += 1


def get_command(config: Config, command_id: str) -> Flow[CommandStatus]:
    answer = yield from send(config, "GET", f"/v1/commands/{ref(command_id)}")
    return CommandStatus.from_api(answer.body)


def wait_command(
    config: Config, command_id: str, deadline: Deadline | float | None = None
) -> Flow[CommandStatus]:
    """Poll the command until it is processed (accepted or rejected: both returned)."""
    clock = deadline if isinstance(deadline, Deadline) else Deadline(deadline)
    polls = 0
    while True:
        status = yield from get_command(config, command_id)
        if status.done:
            return status
        left = clock.left()
        if left is not None and left <= 0:
            raise WaitTimeout(
                f"command {command_id} still {status.status} after {clock.timeout:g} s"
            )
        yield Sleep(_poll_pause(config, polls, clock))
        polls += 1


def delete_dataset(
    config: Config, dataset_id: str, wait: bool, timeout: float | None
) -> Flow[CommandStatus]:
    deadline = Deadline(timeout)
    answer = yield from send(config, "DELETE", f"/v1/datasets/{ref(dataset_id)}")
    status = CommandStatus(id=answer.body["command_id"], status="queued")
    if not wait:
        return status
    done = yield from wait_command(config, status.id, deadline)
    if done.status == "rejected":
        raise CommandRejected(done.id, done.reason)
    return done


ENGINES = ("auto", "polars", "spark")


def request_scan(
    config: Config, dataset_id: str, engine: str, weights: dict[str, float] | None
) -> Flow[tuple[str, str, str]]:
    """Ask for a scan of the dataset's latest version: (dataset id, scan id, command id)."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    body: dict[str, Any] = {"engine": engine}
    if weights is not None:
        body["weights"] = dict(weights)
    answer = yield from send(config, "POST", f"/v1/datasets/{ref(dataset_id)}/scan", json=body)
    doc = answer.body
    return str(doc["dataset_id"]), str(doc["scan_id"]), str(doc["command_id"])


def scan_status(config: Config, dataset_id: str, scan_id: str) -> Flow[ScanStatus]:
    answer = yield from send(config, "GET", f"/v1/datasets/{ref(dataset_id)}/scan/{ref(scan_id)}")
    return ScanStatus.from_api(answer.body)


@dataclass(frozen=True)
class Event:
    """One server-sent event (``event:`` name, default ``message``; ``data:`` lines
    joined by newlines; ``id:``)."""

    name: str
    data: str
    id: str | None = None


class EventParser:
    """Server-sent events from lines (the WHATWG event-stream format): ``feed`` each
    line; an event is complete at a blank line. Comments (``:``) and unknown fields are
    skipped."""

    def __init__(self) -> None:
        self._name = ""
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, line: str) -> Event | None:
        if not line:
            if not self._data and not self._name:
                return None
            event = Event(self._name or "message", "\n".join(self._data), self._id)
            self._name, self._data = "", []
            return event
        if line.startswith(":"):
            return None
        key, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if key == "event":
            self._name = value
        elif key == "data":
            self._data.append(value)
        elif key == "id" and "\0" not in value:
            self._id = value
        return None


EVENT_STREAM = "text/event-stream"
ENDINGS = ("completed", "failed")  # the events that end a job's stream


def follow_events(config: Config, path: str, reporter: Reporter, deadline: Deadline) -> Flow[None]:
    """Report a job's progress from its server-sent events (``GET path``, ``Accept:
    text/event-stream``) until an ending event (``completed``, ``failed``), the end of
    the stream, or any trouble: a server without the stream (404...), a broken
    connection, a silence longer than the read timeout. It decides nothing: the caller
    reads the outcome from the status resource afterwards. ``progress`` events are read
    as JSON ``{"phase": ..., "done": n, "total": n}`` (the job-progress records)."""
    attempt = 0
    while True:  # a 429 or 503 is waited out and asked again, as any GET is
        opened = yield OpenStream(
            Send("GET", path, headers={"Accept": f"{EVENT_STREAM}, {PROBLEM}"})
        )
        if isinstance(opened, httpx.TransportError):
            return
        response: httpx.Response = opened
        if response.status_code not in (429, 503) or attempt >= config.max_retries:
            break
        waited = parse_retry_after(response.headers.get("retry-after"))
        yield CloseStream(response)
        yield Sleep(min(config.pause(attempt) if waited is None else waited, config.max_backoff))
        attempt += 1
    kind = response.headers.get("content-type", "")
    if response.status_code == 200 and kind.startswith(EVENT_STREAM):
        yield from _read_events(response, reporter, deadline)
    yield CloseStream(response)


def _read_events(response: httpx.Response, reporter: Reporter, deadline: Deadline) -> Flow[None]:
    parser = EventParser()
    while True:
        line = yield ReadLine(response)
        if line is None or isinstance(line, httpx.TransportError):
            return
        event = parser.feed(line)
        if event is None:
            continue
        if event.name in ENDINGS:
            return
        if event.name == "progress":
            phase, done = _progress(event.data)
            reporter.update("running", deadline.elapsed, phase, done)
        left = deadline.left()
        if left is not None and left <= 0:
            return


def _progress(data: str) -> tuple[str | None, float | None]:
    try:
        doc = json.loads(data)
    except ValueError:
        return None, None
    if not isinstance(doc, dict):
        return None, None
    phase = doc.get("phase") if isinstance(doc.get("phase"), str) else None
    done, total = doc.get("done"), doc.get("total")
    if isinstance(done, int | float) and isinstance(total, int | float) and total > 0:
        return phase, max(0.0, min(1.0, float(done) / float(total)))
    return phase, None


def wait_scan(
    config: Config,
    dataset_id: str,
    scan_id: str,
    timeout: float | None,
    reporter: Reporter,
    events: bool = True,
) -> Flow[ScanStatus]:
    """Wait for the scan: completed (returned) or failed (``ScanFailed``);
    ``WaitTimeout`` past ``timeout``. With ``events``, first follow the job's
    server-sent events (``/v1/jobs/{scanId}/events``, when the server has them: the
    progress bar then shows the phase and the share done); then, or without them, poll
    the scan's status (pauses growing from ``poll_min`` to ``poll_max``), which alone
    decides the outcome."""
    deadline = Deadline(timeout)
    polls = 0
    known: ScanStatus | None = None
    try:
        if events:
            known = yield from scan_status(config, dataset_id, scan_id)
            if not known.done:
                reporter.update(known.status, deadline.elapsed)
                path = f"/v1/jobs/{ref(scan_id)}/events"
                yield from follow_events(config, path, reporter, deadline)
                known = None  # the stream ended: the status says how
        while True:
            status = known or (yield from scan_status(config, dataset_id, scan_id))
            known = None
            reporter.update(status.status, deadline.elapsed)
            if status.status == "completed":
                return status
            if status.status == "failed":
                raise ScanFailed(scan_id, status.error)
            left = deadline.left()
            if left is not None and left <= 0:
                raise WaitTimeout(f"scan {scan_id} still {status.status} after {timeout:g} s")
            yield Sleep(_poll_pause(config, polls, deadline))
            polls += 1
    finally:
        reporter.close()


def quality_score(config: Config, dataset_id: str) -> Flow[QualityScore]:
    answer = yield from send(config, "GET", f"/v1/quality/{ref(dataset_id)}/score")
    return QualityScore.from_quality(answer.body)


# -- fixes -------------------------------------------------------------------------------------
FIX_ENDED = ("previewed", "completed", "failed", "rolled_back")  # a fix's final statuses


def fix_body(
    scan_id: str | None, issues: list[str] | None, options: dict[str, str] | None
) -> dict[str, Any]:
    """The body of ``POST /v1/quality/{id}/fix[/preview]``, checked before it is sent."""
    body: dict[str, Any] = {}
    if scan_id is not None:
        body["scanId"] = scan_id
    if issues is not None:
        if isinstance(issues, str) or not all(isinstance(i, str) and i for i in issues):
            raise ValueError(f"issues must be a list of issue ids (e.g. ['I001']), got {issues!r}")
        if not issues:
            raise ValueError("issues: name at least one issue id, or leave it out (all of them)")
        body["issueIds"] = list(issues)
    if options is not None:
        if not isinstance(options, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in options.items()
        ):
            raise ValueError(f"options must map names to strings, got {options!r}")
        body["options"] = dict(options)
    return body


def request_fix(
    config: Config,
    dataset_id: str,
    *,
    preview: bool,
    scan_id: str | None = None,
    issues: list[str] | None = None,
    options: dict[str, str] | None = None,
) -> Flow[dict[str, Any]]:
    """Hand a fix in (202): the answer (``fix_id``, ``status_url``...)."""
    body = fix_body(scan_id, issues, options)
    path = f"/v1/quality/{ref(dataset_id)}/fix" + ("/preview" if preview else "")
    answer = yield from send(config, "POST", path, json=body)
    doc: dict[str, Any] = answer.body
    return doc


def fix_status(config: Config, dataset_id: str, fix_id: str) -> Flow[dict[str, Any]]:
    answer = yield from send(config, "GET", f"/v1/quality/{ref(dataset_id)}/fix/{ref(fix_id)}")
    doc: dict[str, Any] = answer.body
    return doc


def wait_fix(
    config: Config, dataset_id: str, fix_id: str, timeout: float | None, reporter: Reporter
) -> Flow[dict[str, Any]]:
    """Poll the fix until it ended: its document (``FixFailed`` when it failed;
    ``WaitTimeout`` past ``timeout``). An apply ends once its version is re-scanned."""
    deadline = Deadline(timeout)
    polls = 0
    try:
        while True:
            doc = yield from fix_status(config, dataset_id, fix_id)
            status = str(doc.get("status"))
            reporter.update(status, deadline.elapsed)
            if status == "failed":
                raise FixFailed(fix_id, doc.get("error"))
            if status in FIX_ENDED:
                return doc
            left = deadline.left()
            if left is not None and left <= 0:
                raise WaitTimeout(f"fix {fix_id} still {status} after {timeout:g} s")
            yield Sleep(_poll_pause(config, polls, deadline))
            polls += 1
    finally:
        reporter.close()


def fix_all(
    config: Config,
    dataset_id: str,
    scan_id: str | None,
    *,
    dry_run: bool,
    confirm: bool,
    issues: list[str] | None,
    options: dict[str, str] | None,
    timeout: float | None,
    reporter: Reporter,
) -> Flow[FixPreview | FixResult]:
    """``scan.fix_all(dry_run=True)`` (a preview) or ``(confirm=True)`` (apply): hand the
    fix in and wait for its outcome."""
    if dry_run and confirm:
        reporter.close()
        raise ValueError("fix_all: dry_run=True and confirm=True together; choose one")
    if not dry_run and not confirm:
        reporter.close()
        raise ValueError(
            "fix_all needs dry_run=True (a preview: what would change, nothing written) or "
            "confirm=True (apply: a new version of the dataset)"
        )
    accepted = yield from request_fix(
        config, dataset_id, preview=dry_run, scan_id=scan_id, issues=issues, options=options
    )
    doc = yield from wait_fix(config, dataset_id, str(accepted["fix_id"]), timeout, reporter)
    return FixPreview.from_api(doc) if dry_run else FixResult.from_api(doc)


def rollback_fix(
    config: Config,
    dataset_id: str,
    fix_id: str,
    *,
    wait: bool,
    timeout: float | None,
    reporter: Reporter,
) -> Flow[Rollback]:
    """Roll an applied fix back; with ``wait``, also wait for the restored version's
    re-scan (``ScanFailed`` if it fails)."""
    try:
        answer = yield from send(
            config, "DELETE", f"/v1/quality/{ref(dataset_id)}/fix/{ref(fix_id)}"
        )
    except BaseException:
        reporter.close()
        raise
    done = Rollback.from_api(answer.body)
    if wait and done.rescan_id is not None:
        yield from wait_scan(config, done.dataset_id, done.rescan_id, timeout, reporter)
    else:
        reporter.close()
    return done


def dataset_versions(config: Config, dataset_id: str) -> Flow[list[VersionInfo]]:
    answer = yield from send(config, "GET", f"/v1/datasets/{ref(dataset_id)}/versions")
    return [VersionInfo.from_api(v) for v in answer.body["items"]]


def _optional_int(name: str, value: int | None, least: int) -> int | None:
    if value is not None and (
        not isinstance(value, int) or isinstance(value, bool) or value < least
    ):
        raise ValueError(f"{name} must be an integer >= {least} or None, got {value!r}")
    return value


@dataclass(frozen=True)
class ProvenanceQuery:
    """``GET /v1/datasets/{id}/versions/{v}/provenance`` (``version`` None: the dataset's
    latest version, read first), filtered by row and column."""

    dataset_id: str
    version: int | None = None
    row: int | None = None
    column: str | None = None
    limit: int | None = None
    page_size: int = 100

    def __post_init__(self) -> None:
        _optional_int("version", self.version, 1)
        _optional_int("row", self.row, 0)
        if self.column is not None and not isinstance(self.column, str):
            raise ValueError(f"column must be a string, got {self.column!r}")
        _limit(self.limit)
        _page_size(self.page_size)

    def pager(self, config: Config) -> Pager[ProvenanceEntry]:
        chosen: list[int] = []  # the version, once known

        def fetch(cursor: str | None, size: int) -> Flow[Page[ProvenanceEntry]]:
            if not chosen:
                version = self.version
                if version is None:
                    version = (yield from get_dataset(config, self.dataset_id)).latest_version
                chosen.append(version)
            answer = yield from send(
                config,
                "GET",
                f"/v1/datasets/{ref(self.dataset_id)}/versions/{chosen[0]}/provenance",
                params={"limit": size, "cursor": cursor, "row": self.row, "column": self.column},
            )
            doc = answer.body
            items = [ProvenanceEntry.from_api(d) for d in doc["items"]]
            return items, doc.get("next_cursor")

        return Pager(fetch, self.limit, self.page_size)


# -- lists -------------------------------------------------------------------------------------
Page = tuple[list[T], str | None]


class Pager(Generic[T]):
    """The paging of one iteration over a list: ``next_page()`` is the flow of the next
    page's items (at most ``limit`` in all), or None when the list is exhausted. Both
    clients iterate with it: nothing is fetched before the first item is asked for, and
    each page only when the one before is used up."""

    def __init__(
        self, fetch: Callable[[str | None, int], Flow[Page[T]]], limit: int | None, page_size: int
    ) -> None:
        self._fetch = fetch
        self._limit = limit
        self._size = page_size
        self._cursor: str | None = None
        self._seen = 0
        self._done = limit == 0

    def next_page(self) -> Flow[list[T]] | None:
        return None if self._done else self._page()

    def _page(self) -> Flow[list[T]]:
        size = self._size if self._limit is None else min(self._size, self._limit - self._seen)
        items, cursor = yield from self._fetch(self._cursor, size)
        if self._limit is not None:
            items = items[: self._limit - self._seen]
        self._seen += len(items)
        self._cursor = cursor
        self._done = (
            cursor is None or not items or (self._limit is not None and self._seen >= self._limit)
        )
        return items


def _page_size(value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_PAGE:
        raise ValueError(f"page_size must be an integer from 1 to {MAX_PAGE}, got {value!r}")
    return value


def _limit(value: int | None) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"limit must be an integer >= 0 or None, got {value!r}")
    return value


DATASET_SORTS = ("created_at", "updated_at", "name")
DATASET_STATUSES = ("registered", "active", "deleted")


@dataclass(frozen=True)
class DatasetQuery:
    """``GET /v1/datasets``: sort (``name``; ``-name`` descending), filters, limit."""

    sort: str = "created_at"
    status: str | None = None
    name: str | None = None
    limit: int | None = None
    page_size: int = 20

    def __post_init__(self) -> None:
        field_ = self.sort.removeprefix("-")
        if field_ not in DATASET_SORTS:
            raise ValueError(
                f"datasets sort by {', '.join(DATASET_SORTS)} (a leading '-': descending), "
                f"not {self.sort!r}"
            )
        if self.status is not None and self.status not in DATASET_STATUSES:
            raise ValueError(
                f"status must be one of {', '.join(DATASET_STATUSES)}, got {self.status!r}"
            )
        _limit(self.limit)
        _page_size(self.page_size)

    def pager(self, config: Config) -> Pager[DatasetInfo]:
        def fetch(cursor: str | None, size: int) -> Flow[Page[DatasetInfo]]:
            answer = yield from send(
                config,
                "GET",
                "/v1/datasets",
                params={
                    "limit": size,
                    "cursor": cursor,
                    "sort": self.sort.removeprefix("-"),
                    "order": "desc" if self.sort.startswith("-") else "asc",
                    "status": self.status,
                    "name": self.name,
                },
            )
            doc = answer.body
            return [DatasetInfo.from_api(d) for d in doc["items"]], doc.get("next_cursor")

        return Pager(fetch, self.limit, self.page_size)


# The orders the API can list issues in: by impact, highest first, only. 'impact' is the
# seeds' spelling (``scan.issues.order_by('impact')``: the most important first);
# '-impact' says "descending" explicitly. Anything else (ascending too) is refused.
ISSUE_ORDERS = ("impact", "-impact")
ISSUE_FILTERS = ("dimension", "severity", "column")


@dataclass(frozen=True)
class IssueQuery:
    """``GET /v1/quality/{dataset}/issues``: by impact, filtered, at most ``limit``.
    With ``scan_id`` the issues must be that scan's (``ScanSuperseded`` if the API's
    newest completed scan of the dataset is another)."""

    dataset_id: str
    scan_id: str | None = None
    order: str = "impact"
    filters: tuple[tuple[str, str], ...] = ()
    limit: int | None = None
    page_size: int = 20

    def order_by(self, order: str) -> IssueQuery:
        if order not in ISSUE_ORDERS:
            raise ValueError(
                f"issues can be ordered by {' or '.join(map(repr, ISSUE_ORDERS))} (both: the "
                f"highest impact first, the only order the API lists them in), not {order!r}"
            )
        return _replace(self, order=order)

    def where(self, **filters: str) -> IssueQuery:
        unknown = sorted(set(filters) - set(ISSUE_FILTERS))
        if unknown:
            raise ValueError(
                f"issues can be filtered by {', '.join(ISSUE_FILTERS)}, not {', '.join(unknown)}"
            )
        for key, value in filters.items():
            if not isinstance(value, str):
                raise ValueError(f"{key} must be a string, got {value!r}")
        merged = {**dict(self.filters), **filters}
        return _replace(self, filters=tuple(sorted(merged.items())))

    def limited(self, n: int) -> IssueQuery:
        return _replace(self, limit=_limit(n))

    def sized(self, page_size: int) -> IssueQuery:
        return _replace(self, page_size=_page_size(page_size))

    def pager(self, config: Config) -> Pager[Issue]:
        def fetch(cursor: str | None, size: int) -> Flow[Page[Issue]]:
            answer = yield from send(
                config,
                "GET",
                f"/v1/quality/{ref(self.dataset_id)}/issues",
                params={"limit": size, "cursor": cursor, **dict(self.filters)},
            )
            doc = answer.body
            served = str(doc["scan_id"])
            if self.scan_id is not None and served != self.scan_id:
                raise ScanSuperseded(
                    f"the API lists the issues of the dataset's newest completed scan, "
                    f"{served}, no longer of scan {self.scan_id}"
                )
            return [Issue.from_api(d, served) for d in doc["items"]], doc.get("next_cursor")

        return Pager(fetch, self.limit, self.page_size)


def _replace(query: IssueQuery, **changes: Any) -> IssueQuery:
    return replace(query, **changes)
