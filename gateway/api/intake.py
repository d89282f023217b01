"""What the API submitted, settled in the background.

Kafka mode: the workers process commands and run jobs; the API only makes sure its
commands reached the broker, before it answers 202 (``settle`` flushes in the request's
thread: a 202 is a command the broker has, acks=all; a broker that does not confirm within
DATRIX_KAFKA_TIMEOUT_S is a 503 problem, and the client's retry, with its
Idempotency-Key, submits it again). The embedded default has no workers: the
process that submits a command processes it, and the process that requests a scan holds
its job and runs it (``runtime/embedded.py``). So the API process keeps one intake
thread that, for each submission in order, processes the commands and runs the scan's
job (``wait_for`` with its scan id, which also releases the job's claim). Request threads
never wait for it: they answer 202 at once. At start it drains the home once, finishing
scans whose process died (as the CLI's next scan would).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from datrix.gateway.errors import Unreachable
from datrix.gateway.services import Runtime
from datrix.streams.kafka_logging import BrokerUnreachable
from datrix.streams.ports import ProgressFn, no_progress

log = logging.getLogger("datrix.api")


@dataclass(frozen=True)
class _Work:
    runtime: Runtime
    scan_id: str | None
    settled: Callable[[], None] | None = None  # called once done, even when it failed


class Intake:
    def __init__(self, progress: ProgressFn = no_progress) -> None:
        """``progress``: where the jobs it runs report (whichever submission's drain runs
        a job: a job may run in the drain of a submission that came before its own)."""
        self._progress = progress
        self._queue: queue.Queue[_Work | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def settle(
        self,
        runtime: Runtime,
        scan_id: str | None = None,
        settled: Callable[[], None] | None = None,
    ) -> None:
        """Process what ``runtime`` was given (and run the job of ``scan_id``), soon;
        then call ``settled``. Kafka mode: now, in this thread (``Unreachable`` when the
        broker does not confirm); ``settled`` is called once the broker has it."""
        if not runtime.settings.embedded:
            try:
                runtime.drain()
            except BrokerUnreachable as exc:
                raise Unreachable(str(exc)) from None
            finally:
                if settled is not None:
                    settled()
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="intake", daemon=True)
                self._thread.start()
            self._queue.put(_Work(runtime, scan_id, settled))

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            work = self._queue.get()
            if work is None:
                return
            try:
                self._settle(work)
            except Exception:  # never let one submission stop the intake
                log.exception("settling a submission failed")
            finally:
                if work.settled is not None:
                    work.settled()

    def _settle(self, work: _Work) -> None:
        runtime = work.runtime  # the embedded default's (Kafka mode settles in settle)
        if work.scan_id is None:
            runtime.drain(self._progress)
            return
        runtime.wait_for(lambda: True, self._progress, scan_id=work.scan_id)
