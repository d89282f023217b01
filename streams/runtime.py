"""The embedded runtime: every part of the pipeline in one process, on SQLite.

``drain`` runs the same loop the Kafka-mode worker runs, until nothing is left to do:
commands -> processor (events + tracking, one transaction) -> job dispatcher (jobs run
in-process; results go back to the command log as commands) -> projector (read models +
audit, position in the same transaction). A file lock keeps two CLI processes from
draining at once; every step is restart-safe, so a process killed at any moment loses
nothing and a later drain finishes the work.
"""

from __future__ import annotations

import fcntl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

from aggregates.common import Command
from aggregates.scan import JobRequested
from jobs.engine import ProgressFn, no_progress
from jobs.runner import result_command_id, run_scan_job
from projections.projector import Projector
from projections.store import SQLiteReadStore
from streams.event_store import sqlite_event_store
from streams.messages import Envelope, command_envelope, decode_event
from streams.object_store import LocalObjectStore
from streams.processor import CommandProcessor
from streams.settings import Settings
from streams.sqlite_command_log import SQLiteCommandLog

COMMAND_TRACKING = "command-processor:datrix.commands"
DISPATCHER = "job-dispatcher"
BATCH = 500


def client_envelope(
    settings: Settings,
    command: Command,
    subject: UUID,
    *,
    command_id: UUID | None = None,
    cause: Envelope | None = None,
    actor: str | None = None,
) -> Envelope:
    """Wrap a command submitted by this process: the configured tenant and actor, or those
    of the envelope that caused it (a job's result carries its job's tenant)."""
    return command_envelope(
        command,
        subject=subject,
        tenant=cause.tenant if cause else settings.tenant,
        actor=actor or settings.actor,
        time=datetime.now(UTC),
        command_id=command_id,
        correlation_id=cause.correlation_id if cause else None,
        causation_id=str(cause.id) if cause else None,
    )


@contextmanager
def exclusive_file(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing); the kernel releases it
    when the process dies."""
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class EmbeddedRuntime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        home = settings.home
        home.mkdir(parents=True, exist_ok=True)
        # First-run set-up (tables, migrations, the event store's tracking migration) is
        # not safe when several processes start together on a new folder: serialise it.
        with exclusive_file(home / "setup.lock"):
            self.commands = SQLiteCommandLog(home / "commands.db")
            self.events = sqlite_event_store(home / "events.db")
            self.read_store = SQLiteReadStore(home / "readmodels.db")
        self.objects = LocalObjectStore(home / "objects")
        self.owner_store = self.read_store  # one tenant-agnostic file; views filter by tenant
        self.processor = CommandProcessor(self.events)
        self.projector = Projector(self.read_store)
        self._lock_path = home / "engine.lock"

    # -- intake ----------------------------------------------------------------------------
    def submit(
        self,
        command: Command,
        subject: UUID,
        *,
        command_id: UUID | None = None,
        cause: Envelope | None = None,
        actor: str | None = None,
    ) -> Envelope:
        envelope = client_envelope(
            self.settings, command, subject, command_id=command_id, cause=cause, actor=actor
        )
        self.commands.append(envelope)
        return envelope

    # -- the loop --------------------------------------------------------------------------
    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        with exclusive_file(self._lock_path):
            yield

    def wait_for(
        self,
        done: Callable[[], bool],
        progress: ProgressFn = no_progress,
        scan_id: str | None = None,
        timeout: float = 0.0,
    ) -> None:
        """In one process, all work is done by the time ``drain`` returns."""
        self.drain(progress)
        if not done():
            raise RuntimeError("the embedded runtime finished without the expected outcome")

    def drain(self, progress: ProgressFn = no_progress) -> None:
        with self._exclusive():
            while True:
                done = self.process_commands()
                done += self.project()
                done += self.dispatch_jobs(progress)
                if done == 0:
                    return

    def process_commands(self) -> int:
        count = 0
        while True:
            after = self.events.position(COMMAND_TRACKING)
            batch = self.commands.read(after, BATCH)
            if not batch:
                return count
            self.processor.process_batch(COMMAND_TRACKING, batch)
            count += len(batch)

    def project(self) -> int:
        count = 0
        while True:
            batch = self.events.read(self.projector.position(), BATCH)
            if not batch:
                return count
            count += self.projector.apply_batch(batch)

    def dispatch_jobs(self, progress: ProgressFn = no_progress) -> int:
        count = 0
        while True:
            after = self.commands.get_position(DISPATCHER)
            batch = self.events.read(after, BATCH)
            if not batch:
                return count
            for position, envelope in batch:
                if envelope.type == "datrix.job.JobRequested":
                    job = decode_event(envelope)
                    assert isinstance(job, JobRequested)
                    reply_id = result_command_id(job.job_id)
                    if not self.commands.exists(str(reply_id)):
                        result = run_scan_job(job, self.objects, progress)
                        self.submit(
                            result,
                            job.originator_id,
                            command_id=reply_id,
                            cause=envelope,
                            actor="worker:embedded",
                        )
                        self.commands.set_position(DISPATCHER, position)
                        count += 1
            self.commands.set_position(DISPATCHER, batch[-1][0])
