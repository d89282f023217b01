"""Run one job in a child process under a monitor: time and memory budgets, cancellation.

The job (``runtime/job_process.py``) runs in its own process and session; this side
passes its progress on, and every ``POLL_S`` checks the elapsed time, the memory of the
child and its descendants (a Spark JVM counts), whether the scan was cancelled, and
whether the caller is stopping. Over a budget, the child's process tree is killed and the
job's result is its kind's failure command (``JobKind.failed``: a ``FailScan``) naming
the budget; cancelled or stopping, it is killed and there is no result (a cancelled scan
has already ended; a stopping caller leaves the job to be resumed). A child that dies on
its own ends as that failure with its last words on stderr. Budgets are enforced from
outside: a job cannot raise or dodge them.
"""

from __future__ import annotations

import base64
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from datrix.aggregates.common import Command
from datrix.jobs.engine import ProgressFn, no_progress
from datrix.streams import scratch
from datrix.streams.messages import Envelope, decode_command, encode_envelope
from datrix.streams.registry import JobKind
from datrix.streams.settings import Settings

POLL_S = 0.2
CANCEL_POLL_S = 0.5


@dataclass(frozen=True)
class Budgets:
    timeout_s: float = 0.0  # 0: none
    memory_mb: int = 0  # 0: none


@dataclass(frozen=True)
class JobOutcome:
    result: Command | None  # None: cancelled or stopped, nothing to report
    cancelled: bool = False


def _tree_rss_mb(proc: psutil.Process) -> float:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total / 2**20


def _kill_tree(pid: int) -> None:
    try:
        root = psutil.Process(pid)
        procs = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            continue


def _last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def run_supervised(
    kind: JobKind,
    envelope: Envelope,
    job: Any,
    objects_location: str,
    tmp_root: Path,
    budgets: Budgets,
    progress: ProgressFn = no_progress,
    cancelled: Callable[[], bool] = lambda: False,
    stopping: Callable[[], bool] = lambda: False,
    *,
    settings: Settings,
) -> JobOutcome:
    """Run the job in a child process given ``settings`` (its parent's, on stdin: the child
    reads no configuration of its own) and monitor it."""
    with scratch.tempdir(tmp_root, f"job-{str(job.job_id)[:8]}-") as workdir:
        env = {**os.environ, "TMPDIR": str(workdir), "POLARS_TEMP_DIR": str(workdir)}
        with (workdir / "stderr.log").open("wb") as errlog:
            child = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "datrix.runtime.job_process",
                    objects_location,
                    str(os.getpid()),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errlog,
                env=env,
                start_new_session=True,  # a Ctrl-C reaches the CLI, which then stops it
            )
        try:
            return _monitor(
                child,
                kind,
                settings,
                envelope,
                job,
                workdir,
                budgets,
                progress,
                cancelled,
                stopping,
            )
        finally:
            if child.poll() is None:
                _kill_tree(child.pid)
                child.wait()


def _monitor(
    child: subprocess.Popen[bytes],
    kind: JobKind,
    settings: Settings,
    envelope: Envelope,
    job: Any,
    workdir: Path,
    budgets: Budgets,
    progress: ProgressFn,
    cancelled: Callable[[], bool],
    stopping: Callable[[], bool],
) -> JobOutcome:
    assert child.stdin is not None and child.stdout is not None
    started = time.monotonic()
    try:
        child.stdin.write(settings.model_dump_json().encode() + b"\n")
        child.stdin.write(encode_envelope(envelope))
        child.stdin.close()
    except BrokenPipeError:
        pass
    proc = psutil.Process(child.pid)
    stdout = child.stdout
    os.set_blocking(stdout.fileno(), False)
    selector = selectors.DefaultSelector()
    selector.register(stdout, selectors.EVENT_READ)
    buffer = b""
    result: Command | None = None
    last_cancel_check = 0.0
    eof = False
    while not eof:
        for _key, _ in selector.select(POLL_S):
            chunk = stdout.read()
            if chunk == b"":
                eof = True
            elif chunk:
                buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            doc = json.loads(line)
            if "progress" in doc:
                phase, done, total = doc["progress"]
                progress(str(phase), int(done), int(total))
            elif "result" in doc:
                result = decode_command(base64.b64decode(doc["result"]))
        if eof:
            break
        elapsed = time.monotonic() - started
        if budgets.timeout_s and elapsed > budgets.timeout_s:
            _kill_tree(child.pid)
            return JobOutcome(
                kind.failed(
                    job,
                    "JobTimeout",
                    f"the job ran past its time budget of {budgets.timeout_s:g} s "
                    "(DATRIX_JOB_TIMEOUT_S)",
                )
            )
        if budgets.memory_mb:
            try:
                used = _tree_rss_mb(proc)
            except psutil.NoSuchProcess:
                used = 0.0
            if used > budgets.memory_mb:
                _kill_tree(child.pid)
                return JobOutcome(
                    kind.failed(
                        job,
                        "JobOutOfMemory",
                        f"the job used {used:,.0f} MB, over its memory budget of "
                        f"{budgets.memory_mb:,} MB (DATRIX_JOB_MEMORY_MB)",
                    )
                )
        if stopping():
            _kill_tree(child.pid)
            return JobOutcome(None)
        now = time.monotonic()
        if now - last_cancel_check >= CANCEL_POLL_S:
            last_cancel_check = now
            if cancelled():
                _kill_tree(child.pid)
                return JobOutcome(None, cancelled=True)
    code = child.wait()
    if result is not None and code == 0:
        return JobOutcome(result)
    if cancelled():
        return JobOutcome(None, cancelled=True)
    how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
    last = _last_line(workdir / "stderr.log")
    return JobOutcome(
        kind.failed(
            job,
            "JobCrashed",
            f"the job process ended without a result ({how})" + (f": {last}" if last else ""),
        )
    )
