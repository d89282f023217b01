"""Deterministic crash points, for tests only: ``DATRIX_TEST_JOB_FAULT=ACTION@POINT``.

A POINT is a job phase (``profile``, ``duplicates``...: ``runtime/job_process.py``, where
``kill`` also kills the CLI or worker that runs the job, ``pause`` stops the job and
``crash`` makes it exit with code 3) or one of the embedded runtime's ``RUNTIME_POINTS``,
where ``kill`` SIGKILLs the process that reaches it: a CLI killed at a named moment of
its work instead of after a wall-clock delay that depends on the machine's speed.
"""

from __future__ import annotations

import os
import signal

FAULT_ENV = "DATRIX_TEST_JOB_FAULT"
ACTIONS = ("kill", "pause", "crash")
RUNTIME_POINTS = (
    "command-logged",  # a command is in the log, not processed yet
    "events-recorded",  # a batch of commands decided and its events recorded, not projected
    "read-models-updated",  # a batch of events projected (committed with its position)
    "job-result-logged",  # a job's CompleteScan/FailScan is in the log, not processed yet
)


def fault() -> tuple[str, str] | None:
    """(action, point) named by the environment, or None."""
    raw = os.environ.get(FAULT_ENV, "")
    action, _, point = raw.partition("@")
    return (action, point) if action in ACTIONS and point else None


_KILL_WITH: list[int] = []  # a job process's parent: a kill inside a job kills it too


def kill_with(pid: int) -> None:
    """A ``kill`` at a crash point of this process also SIGKILLs ``pid`` (the job process
    names its parent, the CLI or worker running the job, as a job phase's kill does)."""
    _KILL_WITH.append(pid)


def crash_point(point: str) -> None:
    """SIGKILL this process (and those of ``kill_with``) when the environment says
    ``kill@POINT``; else nothing."""
    found = fault()
    if found is not None and found == ("kill", point):
        for pid in _KILL_WITH:
            os.kill(pid, signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)
