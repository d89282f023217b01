"""The process one job runs in: ``python -m datrix.runtime.job_process OBJECTS PARENT_PID``.

OBJECTS is the parent's object store (``ObjectStore.location``: a folder, or
``s3://bucket/prefix`` with the service's DATRIX_S3_* settings). Objects a remote store
holds are downloaded into the job's scratch folder (its TMPDIR).

It reads its parent's ``Settings`` (one JSON line: the child reads no configuration of
its own, so settings a test or the API gave its runtime reach the job too) and the job
event (``JobRequested``) on stdin, runs the job of its kind (the registry's
``JobKind.run``: the scan, with the engines' ``ScanTuning`` from those settings), and
writes JSON lines on the stdout it was given: ``{"progress": [phase, done, total]}``
while it works and ``{"result": <base64 Avro payload of the result command,
CompleteScan or FailScan>}`` at the end. Anything
else the libraries print goes to stderr. It dies with its parent (the CLI or the worker),
so a killed CLI never leaves a scan running on its own; the parent's monitor
(``runtime/job_supervisor.py``) kills it when it passes its budgets or is cancelled.

``DATRIX_TEST_JOB_FAULT=kill@PHASE`` (tests only) kills the parent and this process when
the job reports PHASE: a CLI killed mid-job, deterministically. ``pause@PHASE`` stops this
process there (SIGSTOP) until its monitor kills it; ``crash@PHASE`` makes it exit there
with code 3 and a last word on stderr (a job that dies on its own). The same switch names
crash points of the embedded runtime too (``streams/faults.py``).
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import os
import signal
import sys
import threading
import time
from typing import IO

from datrix.streams.faults import fault as test_fault
from datrix.streams.faults import kill_with
from datrix.streams.private_state import private_umask

PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """SIGKILL when the parent dies (Linux prctl), and a watchdog thread elsewhere."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(70)
            time.sleep(0.5)

    if os.getppid() != parent:
        os._exit(70)
    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _emit(out: IO[str], doc: object) -> None:
    out.write(json.dumps(doc) + "\n")
    out.flush()


def main(argv: list[str]) -> int:
    objects_location, parent = argv[0], int(argv[1])
    _die_with_parent(parent)
    kill_with(parent)  # a crash point inside the job (tests) kills the CLI running it too
    private_umask()  # inherited from the parent already; files the job writes: 0600
    # our protocol keeps the real stdout; stray prints of libraries go to stderr
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)

    from datrix.runtime.registry import load_registry
    from datrix.streams.messages import decode_envelope, decode_event, encode_payload
    from datrix.streams.object_store import open_object_store
    from datrix.streams.settings import Settings

    settings = Settings.model_validate_json(sys.stdin.buffer.readline())
    registry = load_registry(settings)  # the job kinds and types of DATRIX_EXTENSIONS too
    registry.install()
    envelope = decode_envelope(sys.stdin.buffer.read())
    if envelope.type not in registry.job_event_types:
        raise SystemExit(f"not a job: {envelope.type}")
    job = decode_event(envelope)
    kind = registry.job_kind(getattr(job, "kind", ""))
    fault = test_fault()

    def progress(phase: str, done: int, total: int) -> None:
        _emit(out, {"progress": [phase, int(done), int(total)]})
        if fault is not None and phase == fault[1]:
            if fault[0] == "kill":
                os.kill(parent, signal.SIGKILL)
                os.kill(os.getpid(), signal.SIGKILL)
            if fault[0] == "crash":
                sys.stderr.write(f"test fault: crashed at {phase}\n")
                sys.stderr.flush()
                os._exit(3)
            os.kill(os.getpid(), signal.SIGSTOP)

    objects = open_object_store(settings, objects_location)
    result = kind.run(job, objects, progress, settings)
    _emit(out, {"result": base64.b64encode(encode_payload(result)).decode("ascii")})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
