"""The progress of the jobs this API process runs, kept in memory for the event streams
(``routes/events.py``: ``GET /v1/jobs/{id}/events`` and ``/v1/ws``).

On the embedded default the API's intake thread runs the jobs of the scans this process
was asked for (``intake.py``). It hands the runtime ``ProgressBoard.recorder()``, a
``PerJobProgress``: the runtime reports each job's progress under the job's scan id, and
the board keeps, per job, its last ``KEEP_UPDATES`` updates (at most a few a second:
every phase change, the end of a phase, else one per ``MIN_INTERVAL_S``), numbered from
1, and whether the intake has settled it (its job ended: the outcome is in the read
models). Readers are asyncio tasks: ``changed`` awaits an ``asyncio.Event`` that the
intake thread sets through its loop's ``call_soon_threadsafe``, so nothing polls.

Bounded: ``KEEP_UPDATES`` per job, the newest ``KEEP_JOBS`` settled jobs (older ones are
forgotten; their streams answer from the read models). Lost on restart, like the
process that ran the job; the outcome never is (the read models hold it).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from datrix.streams.ports import PerJobProgress, ProgressFn

KEEP_UPDATES = 256
KEEP_JOBS = 1000
MIN_INTERVAL_S = 0.25


@dataclass(frozen=True)
class Update:
    """One progress update of a job: its number (from 1), the phase, rows done of total
    (total 0: not known)."""

    seq: int
    phase: str
    done: int
    total: int


@dataclass(frozen=True)
class Snapshot:
    """What the board holds of a job after a reader's last update."""

    updates: tuple[Update, ...]
    settled: bool


@dataclass
class _Job:
    tenant: str | None  # None: not opened (yet): its job started before its request returned
    updates: deque[Update] = field(default_factory=lambda: deque(maxlen=KEEP_UPDATES))
    seq: int = 0
    phase: str | None = None
    last_at: float = -1e9
    settled: bool = False
    waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = field(default_factory=list)


class _Recorder:
    """The ``PerJobProgress`` handed to the runtime: progress outside a job is dropped."""

    def __init__(self, board: ProgressBoard) -> None:
        self._board = board

    def __call__(self, phase: str, done: int, total: int) -> None:
        return None

    def for_job(self, scan_id: str) -> ProgressFn:
        return lambda phase, done, total: self._board.record(scan_id, phase, done, total)


class ProgressBoard:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, _Job] = OrderedDict()
        self._clock = clock

    # -- the intake's side (any thread) ----------------------------------------------------
    def open(self, tenant: str, scan_id: str) -> None:
        """A scan this process will run the job of (``POST /v1/datasets/{id}/scan``):
        its progress is shown to ``tenant``'s readers (what its job recorded before this,
        the intake being quick, included)."""
        with self._lock:
            self._jobs.setdefault(scan_id, _Job(tenant)).tenant = tenant
            self._forget_old()

    def recorder(self) -> PerJobProgress:
        return _Recorder(self)

    def record(self, scan_id: str, phase: str, done: int, total: int) -> None:
        """One progress call of the job of ``scan_id`` (kept, but shown to no reader,
        until the job is opened: a job this process runs that no request of it opened,
        such as an interrupted scan's, never is)."""
        now = self._clock()
        with self._lock:
            job = self._jobs.get(scan_id)
            if job is None:
                job = self._jobs[scan_id] = _Job(None)
                self._forget_old()
            if job.settled:
                return
            changed = phase != job.phase
            finished = total > 0 and done >= total
            if not (changed or finished or now - job.last_at >= MIN_INTERVAL_S):
                return
            job.seq += 1
            job.phase, job.last_at = phase, now
            job.updates.append(Update(job.seq, phase, max(0, int(done)), max(0, int(total))))
            waiters, job.waiters = job.waiters, []
        _wake(waiters)

    def settle(self, scan_id: str) -> None:
        """The intake is done with the scan's job (its outcome is in the read models, or
        the job could not run): wake its readers."""
        with self._lock:
            job = self._jobs.get(scan_id)
            if job is None:
                return
            job.settled = True
            waiters, job.waiters = job.waiters, []
        _wake(waiters)

    # -- the readers' side (the event loop) ------------------------------------------------
    def snapshot(self, tenant: str, scan_id: str, after: int) -> Snapshot | None:
        """The updates after number ``after``; None when this process does not run the
        job (or it is another tenant's)."""
        with self._lock:
            job = self._jobs.get(scan_id)
            if job is None or job.tenant != tenant:
                return None
            return Snapshot(tuple(u for u in job.updates if u.seq > after), job.settled)

    async def changed(self, tenant: str, scan_id: str, after: int, timeout: float) -> bool:
        """Wait until the job has an update after ``after`` or is settled (True), or
        ``timeout`` seconds passed (False)."""
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        with self._lock:
            job = self._jobs.get(scan_id)
            if job is None or job.tenant != tenant or job.settled or job.seq > after:
                return True
            job.waiters.append((loop, event))
        try:
            await asyncio.wait_for(event.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                if (loop, event) in job.waiters:
                    job.waiters.remove((loop, event))

    def _forget_old(self) -> None:
        """Keep at most KEEP_JOBS settled or never opened jobs (the oldest go first)."""
        done = [k for k, job in self._jobs.items() if job.settled or job.tenant is None]
        for key in done[: max(0, len(done) - KEEP_JOBS)]:
            del self._jobs[key]


def _wake(waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]) -> None:
    for loop, event in waiters:
        with contextlib.suppress(RuntimeError):  # the reader's loop is closed: nobody waits
            loop.call_soon_threadsafe(event.set)
