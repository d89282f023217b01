"""The API's in-process job progress (gateway/api/progress.py): recorded from the intake's
thread, awaited by asyncio readers without polling, bounded, per tenant."""

from __future__ import annotations

import asyncio
import threading

import pytest

from datrix.gateway.api import progress
from datrix.gateway.api.progress import ProgressBoard, Update
from datrix.streams.ports import PerJobProgress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_recorder_reports_per_job_and_throttles() -> None:
    clock = Clock()
    board = ProgressBoard(clock)
    board.open("acme", "s1")
    recorder = board.recorder()
    assert isinstance(recorder, PerJobProgress)
    recorder("ignored", 1, 2)  # progress outside a job: dropped
    job, other = recorder.for_job("s1"), recorder.for_job("not-opened")
    job("profile", 0, 4)
    job("profile", 1, 4)  # same phase, too soon: dropped
    clock.now = 1.0
    job("profile", 2, 4)  # a while later: kept
    job("score", 3, 4)  # a new phase: kept at once
    job("score", 4, 4)  # the end of a phase: kept at once
    other("profile", 0, 1)  # a job not opened (yet): kept, shown to nobody
    snap = board.snapshot("acme", "s1", 0)
    assert snap is not None and not snap.settled
    assert snap.updates == (
        Update(1, "profile", 0, 4),
        Update(2, "profile", 2, 4),
        Update(3, "score", 3, 4),
        Update(4, "score", 4, 4),
    )
    assert [u.seq for u in board.snapshot("acme", "s1", 2).updates] == [3, 4]  # type: ignore[union-attr]
    assert board.snapshot("globex", "s1", 0) is None  # another tenant's: not here
    assert board.snapshot("acme", "not-opened", 0) is None
    # its request returns after the intake started its job: opened, what it did shows
    board.open("acme", "not-opened")
    early = board.snapshot("acme", "not-opened", 0)
    assert early is not None and early.updates == (Update(1, "profile", 0, 1),)
    board.settle("s1")
    job("late", 0, 0)  # after the job settled: dropped
    settled = board.snapshot("acme", "s1", 4)
    assert settled is not None and settled.settled and settled.updates == ()


def test_a_reader_wakes_when_the_intake_thread_records() -> None:
    board = ProgressBoard()
    board.open("acme", "s1")

    async def read() -> list[tuple[bool, int]]:
        seen = []
        # nothing yet: times out
        seen.append((await board.changed("acme", "s1", 0, 0.05), 0))
        started = threading.Event()

        def intake() -> None:
            started.wait()
            board.recorder().for_job("s1")("profile", 0, 1)
            board.settle("s1")

        thread = threading.Thread(target=intake)
        thread.start()
        started.set()
        woke = await board.changed("acme", "s1", 0, 30)
        seen.append((woke, len(board.snapshot("acme", "s1", 0).updates)))  # type: ignore[union-attr]
        await asyncio.to_thread(thread.join)
        # settled: returns at once, whatever the reader has seen
        seen.append((await board.changed("acme", "s1", 1, 30), 1))
        return seen

    assert asyncio.run(read()) == [(False, 0), (True, 1), (True, 1)]


def test_updates_and_settled_jobs_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "KEEP_UPDATES", 3)
    monkeypatch.setattr(progress, "KEEP_JOBS", 2)
    board = ProgressBoard()
    board.open("acme", "s0")
    job = board.recorder().for_job("s0")
    for phase in "abcde":
        job(phase, 0, 0)
    kept = board.snapshot("acme", "s0", 0)
    assert kept is not None and [u.seq for u in kept.updates] == [3, 4, 5]
    for n in range(4):
        board.open("acme", f"s{n}")
        board.settle(f"s{n}")
    board.open("acme", "running")  # opening forgets the oldest settled beyond KEEP_JOBS
    present = [s for s in ("s0", "s1", "s2", "s3") if board.snapshot("acme", s, 0)]
    assert present == ["s2", "s3"] and board.snapshot("acme", "running", 0) is not None
