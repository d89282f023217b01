"""The synchronous client: ``from datrix import Datrix``.

    from datrix import Datrix

    with Datrix(api_key="dtx_...", url="http://127.0.0.1:8000") as client:
        ds = client.datasets.upload("training_data.csv")
        scan = ds.scan()            # returns at once
        scan.wait()                 # a progress line when stderr is a terminal
        print(scan.score)           # QualityScore(overall=74, completeness=89, ...)
        for issue in scan.issues.order_by("impact").limit(5):
            print(f"{issue.column}: {issue.description} (impact: {issue.impact_pct:.1f}%)")

A thin driver of the flows of ``_core.py`` (where the protocol lives) over
``httpx.Client``; ``async_client.AsyncDatrix`` is the same over ``httpx.AsyncClient``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx

from datrix.sdk import _core
from datrix.sdk._core import (
    Config,
    DatasetQuery,
    Flow,
    IssueQuery,
    OpenStream,
    Pager,
    ProvenanceQuery,
    ReadLine,
    Send,
    Sleep,
    Step,
)
from datrix.sdk._progress import reporter
from datrix.sdk._shared import IssueRefinements
from datrix.sdk.errors import ScanNotCompleted
from datrix.sdk.models import (
    CommandStatus,
    DatasetFields,
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

T = TypeVar("T")


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as file:
        while chunk := file.read(_core.UPLOAD_CHUNK):
            yield chunk


class Datrix:
    """A client of the Datrix API. ``api_key`` defaults to ``DATRIX_API_KEY``, ``url`` to
    ``DATRIX_URL`` or ``http://127.0.0.1:8000``. Use it as a context manager, or
    ``close()`` it. ``transport``: an ``httpx`` transport to send through (tests)."""

    def __init__(
        self,
        api_key: str | None = None,
        url: str | None = None,
        *,
        timeout: float = 30.0,
        max_retries: int = 5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._config = Config.build(api_key, url, timeout=timeout, max_retries=max_retries)
        self._http = httpx.Client(
            base_url=self._config.url,
            headers=self._config.headers,
            timeout=self._config.timeout,
            transport=transport,
        )
        self.datasets = Datasets(self)
        self.commands = Commands(self)

    @property
    def url(self) -> str:
        return self._config.url

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Datrix:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Datrix(url={self.url!r})"

    # -- the driver ------------------------------------------------------------------------
    def _run(self, flow: Flow[T]) -> T:
        """Perform the flow's steps until it returns (or raises)."""
        result: Any = None
        streams: dict[int, tuple[httpx.Response, Iterator[str]]] = {}
        try:
            while True:
                result = self._perform(flow.send(result), streams)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        finally:
            for response, _ in streams.values():  # a flow that ended while reading
                response.close()

    def _perform(self, step: Step, streams: dict[int, tuple[httpx.Response, Iterator[str]]]) -> Any:
        try:
            if isinstance(step, Sleep):
                time.sleep(step.seconds)
                return None
            if isinstance(step, Send):
                return self._http.request(
                    step.method,
                    step.path,
                    params=step.params,
                    headers=step.headers,
                    json=step.json,
                    content=_chunks(step.upload) if step.upload is not None else None,
                )
            if isinstance(step, OpenStream):
                request = self._http.build_request(
                    step.send.method, step.send.path, headers=step.send.headers
                )
                response = self._http.send(request, stream=True)
                streams[id(response)] = (response, response.iter_lines())
                return response
            if isinstance(step, ReadLine):
                return next(streams[id(step.response)][1], None)
            streams.pop(id(step.response), None)
            step.response.close()
            return None
        except httpx.TransportError as exc:
            return exc

    def _iterate(self, pager: Pager[T]) -> Iterator[T]:
        while (page := pager.next_page()) is not None:
            yield from self._run(page)


class Datasets:
    """``client.datasets``: upload, list, get."""

    def __init__(self, client: Datrix) -> None:
        self._client = client

    def upload(
        self, path: str | os.PathLike[str], name: str | None = None, *, timeout: float = 300.0
    ) -> Dataset:
        """Upload a file (CSV, TSV, JSON, JSON Lines, Parquet, Excel) as the dataset
        ``name`` (default: the file name without its extension; an existing name gets a
        new version), and return it once the server has accepted the upload's command.
        A bad file raises ``ValidationFailed`` (nothing is recorded)."""
        client = self._client
        info = client._run(_core.upload(client._config, path, name, timeout))
        return Dataset(client, info)

    def list(
        self,
        *,
        sort: str = "created_at",
        status: str | None = None,
        name: str | None = None,
        limit: int | None = None,
        page_size: int = 20,
    ) -> DatasetList:
        """Every dataset (all but deleted ones unless ``status`` says), fetched a page at a
        time as the iteration goes; ``sort``: created_at, updated_at or name, ``-`` first
        for descending."""
        query = DatasetQuery(sort=sort, status=status, name=name, limit=limit, page_size=page_size)
        return DatasetList(self._client, query)

    def get(self, name_or_id: str) -> Dataset:
        """The dataset with this name, id, or unique id prefix (``NotFound`` if none)."""
        client = self._client
        return Dataset(client, client._run(_core.get_dataset(client._config, name_or_id)))


class DatasetList:
    """A lazy list of datasets: iterate it (pages are fetched as needed)."""

    def __init__(self, client: Datrix, query: DatasetQuery) -> None:
        self._client = client
        self._query = query

    def __iter__(self) -> Iterator[Dataset]:
        client = self._client
        for info in client._iterate(self._query.pager(client._config)):
            yield Dataset(client, info)

    def all(self) -> list[Dataset]:
        return list(self)


class Dataset(DatasetFields):
    """A dataset: its fields (``id``, ``name``, ``latest_version``...) as the API last
    answered them, and what can be done with it."""

    def __init__(self, client: Datrix, info: DatasetInfo) -> None:
        self._client = client
        self.info = info

    def refresh(self) -> Dataset:
        """Read the dataset again (its ``info`` is replaced); returns it."""
        self.info = self._client._run(_core.get_dataset(self._client._config, self.id))
        return self

    def scan(self, *, engine: str = "auto", weights: dict[str, float] | None = None) -> Scan:
        """Scan the dataset's latest version: returns at once (then ``wait()`` on the scan)."""
        flow = _core.request_scan(self._client._config, self.id, engine, weights)
        dataset_id, scan_id, command_id = self._client._run(flow)
        return Scan(self._client, dataset_id, scan_id, command_id)

    def quality_score(self) -> QualityScore:
        """The dataset's current quality: its newest completed scan's scores."""
        return self._client._run(_core.quality_score(self._client._config, self.id))

    @property
    def issues(self) -> IssueList:
        """The issues of the dataset's newest completed scan (a lazy query)."""
        return IssueList(self._client, IssueQuery(self.id))

    def versions(self) -> list[VersionInfo]:
        """Every version, oldest first: ``checksum`` (SHA-256 of the content) and ``cause``
        (upload, fix, rollback, pipeline)."""
        return self._client._run(_core.dataset_versions(self._client._config, self.id))

    def provenance(
        self,
        version: int | None = None,
        *,
        row: int | None = None,
        column: str | None = None,
        limit: int | None = None,
        page_size: int = 100,
    ) -> ProvenanceList:
        """The cell-level provenance of a fixed version (default: the latest), filtered
        by ``row`` (0-based in the version the fix started from) and ``column``: a lazy
        list of ``ProvenanceEntry``, fetched a page at a time."""
        query = ProvenanceQuery(self.id, version, row, column, limit, page_size)
        return ProvenanceList(self._client, query)

    def rollback(
        self,
        fix_id: str,
        *,
        wait: bool = True,
        timeout: float | None = 600.0,
        progress: bool | None = None,
    ) -> Rollback:
        """Undo an applied fix: a new version whose content is byte for byte the version
        the fix started from (``Conflict`` if later fixes built on it: undo those first).
        By default wait (at most ``timeout`` s) for the restored version's re-scan."""
        shown = reporter(progress if wait else False, f"rollback {fix_id[:8]}")
        flow = _core.rollback_fix(
            self._client._config, self.id, fix_id, wait=wait, timeout=timeout, reporter=shown
        )
        return self._client._run(flow)

    def delete(self, *, wait: bool = True, timeout: float | None = 300.0) -> CommandStatus:
        """Delete the dataset; by default wait (at most ``timeout`` s) until the deletion
        is accepted (``CommandRejected`` if it is refused)."""
        flow = _core.delete_dataset(self._client._config, self.id, wait, timeout)
        return self._client._run(flow)


class Scan:
    """A scan handed in: ``wait()`` for it, then read ``score`` and ``issues``."""

    def __init__(self, client: Datrix, dataset_id: str, scan_id: str, command_id: str) -> None:
        self._client = client
        self.id = scan_id
        self.dataset_id = dataset_id
        self.command_id = command_id
        self.last: ScanStatus | None = None  # the status last read

    def __repr__(self) -> str:
        return f"Scan(id={self.id!r}, dataset_id={self.dataset_id!r}, status={self.status!r})"

    def refresh(self) -> ScanStatus:
        """Read the scan's status now."""
        self.last = self._client._run(
            _core.scan_status(self._client._config, self.dataset_id, self.id)
        )
        return self.last

    def wait(self, timeout: float | None = None, *, progress: bool | None = None) -> Scan:
        """Block until the scan is completed (returns the scan) or failed (``ScanFailed``);
        ``WaitTimeout`` after ``timeout`` seconds. A progress line on stderr when it is a
        terminal (``progress`` True/False: always/never)."""
        shown = reporter(progress, f"scan {self.id[:8]}")
        flow = _core.wait_scan(self._client._config, self.dataset_id, self.id, timeout, shown)
        self.last = self._client._run(flow)
        return self

    @property
    def status(self) -> str:
        """The status last read (``refresh()`` reads it again)."""
        return self.last.status if self.last is not None else "queued"

    @property
    def score(self) -> QualityScore:
        """The scan's scores (read once more if the scan was not seen completed yet)."""
        last = self.last
        if last is None or last.status != "completed":
            last = self.refresh()
        if last.score is None:
            raise ScanNotCompleted(
                f"scan {self.id} is {last.status}: no score yet (scan.wait() first)"
            )
        return last.score

    def fix_all(
        self,
        *,
        dry_run: bool = False,
        confirm: bool = False,
        issues: list[str] | None = None,
        options: dict[str, str] | None = None,
        timeout: float | None = 600.0,
        progress: bool | None = None,
    ) -> FixPreview | FixResult:
        """Fix this scan's issues (every fixable one, or ``issues``; ``options`` such as
        ``{"pii": "hash"}``) and wait for the outcome. ``dry_run=True``: a ``FixPreview``
        (``rows_affected``, ``cells_changed``, per fix counts, a sample), nothing written.
        ``confirm=True``: a ``FixResult``, the new ``version`` re-scanned, with
        ``score_before`` and ``score_after``. One of the two must be given."""
        shown = reporter(progress, f"fix of scan {self.id[:8]}")
        flow = _core.fix_all(
            self._client._config,
            self.dataset_id,
            self.id,
            dry_run=dry_run,
            confirm=confirm,
            issues=issues,
            options=options,
            timeout=timeout,
            reporter=shown,
        )
        return self._client._run(flow)

    @property
    def issues(self) -> IssueList:
        """This scan's issues, by impact (a lazy query: ``.order_by('impact').limit(5)``)."""
        return IssueList(self._client, IssueQuery(self.dataset_id, scan_id=self.id))


class IssueList(IssueRefinements["Datrix"]):
    """A lazy query of issues: refine it (``order_by``, ``where``, ``limit``), then
    iterate it (pages are fetched as needed)."""

    def __iter__(self) -> Iterator[Issue]:
        return self._client._iterate(self.query.pager(self._client._config))

    def all(self) -> list[Issue]:
        return list(self)


class ProvenanceList:
    """A lazy list of provenance rows: iterate it (pages are fetched as needed)."""

    def __init__(self, client: Datrix, query: ProvenanceQuery) -> None:
        self._client = client
        self.query = query

    def __iter__(self) -> Iterator[ProvenanceEntry]:
        return self._client._iterate(self.query.pager(self._client._config))

    def all(self) -> list[ProvenanceEntry]:
        return list(self)


class Commands:
    """``client.commands``: what became of a command."""

    def __init__(self, client: Datrix) -> None:
        self._client = client

    def get(self, command_id: str) -> CommandStatus:
        """The command's status now: queued, accepted, or rejected with the reason."""
        return self._client._run(_core.get_command(self._client._config, command_id))

    def wait(self, command_id: str, timeout: float | None = 60.0) -> CommandStatus:
        """Poll until the command is accepted or rejected (both returned)."""
        return self._client._run(_core.wait_command(self._client._config, command_id, timeout))
