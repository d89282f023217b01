"""The embedded runtime: every part of the pipeline in one process, on SQLite.

``catch_up`` processes commands (events + tracking, one transaction) and projects them
(read models + audit, position in the same transaction) until nothing is left, under a
short file lock (``engine.lock``) that is never held while a job runs: queries and
``replay`` never wait for a scan. ``drain`` also runs jobs, each in a child process under
a monitor (``runtime/job_supervisor.py``: time and memory budgets, cancellation), one at a
time (``jobs.lock``); results go back to the command log as commands.

Who runs which job: a process that requests a scan holds ``jobs/<scan id>.lock`` until
its scan has ended, and runs its own job. A job whose scan has not ended and whose lock
nobody holds was left by a process that died (a killed scan): the next ``drain`` (the
next ``datrix scan``) takes it over and says so ("finishing interrupted scan ..."), or
``datrix jobs cancel`` ends it. Every step is restart-safe, so a process killed at any
moment loses nothing.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from datrix.aggregates.audit import (
    RecordAuditCheckpoint,
    audit_chain_id,
    checkpoint_command_id,
)
from datrix.aggregates.common import Command
from datrix.projections import audit
from datrix.projections.projector import Projector
from datrix.projections.read_model import ReadModel
from datrix.projections.store import SQLiteReadStore
from datrix.runtime.job_supervisor import Budgets, run_supervised
from datrix.runtime.registry import load_registry, read_models_of, scan_job_kind
from datrix.streams import scratch
from datrix.streams.event_store import sqlite_event_store
from datrix.streams.faults import crash_point
from datrix.streams.messages import Envelope, command_envelope, decode_event
from datrix.streams.object_store import open_object_store
from datrix.streams.ports import ObjectStore, PerJobProgress, ProgressFn, no_progress
from datrix.streams.private_state import open_home, open_private, private_dirs
from datrix.streams.processor import CommandProcessor
from datrix.streams.registry import (
    JobKind,
    Registry,
    RegistryError,
    policy_reactions,
    result_command_id,
)
from datrix.streams.settings import Settings
from datrix.streams.sqlite_command_log import SQLiteCommandLog

if TYPE_CHECKING:
    from datrix.jobs.runner import EngineFactory

COMMAND_TRACKING = "command-processor:datrix.commands"
DISPATCHER = "job-dispatcher"
POLICY_POSITION = "policy:{}"  # one position per policy, in the command log's positions
BATCH = 500
log = logging.getLogger("datrix.projector")


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
    fd = open_private(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class EmbeddedRuntime:
    def __init__(
        self,
        settings: Settings,
        *,
        objects: ObjectStore | None = None,
        engines: Mapping[str, EngineFactory] | None = None,
        jobs_in_process: bool = False,
        notice: Callable[[str], None] | None = None,
        read_models: Sequence[ReadModel] | None = None,
        registry: Registry | None = None,
    ) -> None:
        """Built by the composition root (``runtime/bootstrap.py``). ``objects``: the
        object store (default: the one the settings name); ``jobs_in_process`` runs jobs
        in this process, without budgets or cancellation, with the scan on ``engines``
        (default ``datrix.jobs.runner.ENGINES``: tests with stand-in engines only; a job process
        has the real ones); ``notice`` receives one-line messages for the user (default:
        stderr); ``read_models`` are what the projector keeps (default: the core's and the
        registry's); ``registry``: the
        aggregates, policies and job kinds (default: the core and the extensions of
        ``settings``), installed for this process."""
        self.settings = settings
        self.registry = registry or load_registry(settings)
        if engines is not None:  # stand-in engines: only for jobs run in this process
            self.registry.add_job_kind(scan_job_kind(engines), replace=True)
        self.registry.install()
        self.notice = notice or _stderr_notice
        home = settings.home
        # folders 0700, files 0600 (streams/private_state.py); an open home: one warning
        exposed = open_home(home)
        if exposed:
            self.notice(exposed)
        # First-run set-up (tables, migrations, the event store's tracking migration) is
        # not safe when several processes start together on a new folder: serialise it.
        with exclusive_file(home / "setup.lock"):
            self.commands = SQLiteCommandLog(home / "commands.db")
            self.events = sqlite_event_store(home / "events.db")
            self.read_store = SQLiteReadStore(home / "readmodels.db")
        self.objects = objects if objects is not None else open_object_store(settings)
        self.owner_store = self.read_store  # one tenant-agnostic file; views filter by tenant
        self.processor = CommandProcessor(self.events, self.registry)
        self.read_models = (
            tuple(read_models) if read_models is not None else read_models_of(self.registry)
        )
        self.projector = Projector(self.read_store, read_models=self.read_models)
        self._lock_path = home / "engine.lock"
        self.jobs_dir = home / "jobs"
        self.tmp_root = home / "tmp"
        self.jobs_in_process = jobs_in_process
        self._claims: dict[str, int] = {}  # scan id -> fd holding jobs/<scan id>.lock
        self._anchor_warned = False

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
        if self.registry.requests_job(command):
            # claimed before the command exists, so no one ever sees our job unclaimed
            spec = self.registry.aggregate_of(type(command))
            self._claim(str(spec.aggregate_id(command) if spec else subject), wait=True)
        envelope = client_envelope(
            self.settings, command, subject, command_id=command_id, cause=cause, actor=actor
        )
        self.commands.append(envelope)
        crash_point("command-logged")
        return envelope

    # -- job ownership -----------------------------------------------------------------------
    def _claim(self, scan_id: str, wait: bool = False) -> bool:
        """Hold jobs/<scan id>.lock; False when another live process holds it."""
        if scan_id in self._claims:
            return True
        private_dirs(self.jobs_dir)
        fd = open_private(self.jobs_dir / f"{scan_id}.lock")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except OSError:
            os.close(fd)
            return False
        self._claims[scan_id] = fd
        return True

    def _release(self, scan_id: str, finished: bool) -> None:
        fd = self._claims.pop(scan_id, None)
        if finished:
            for suffix in (".lock", ".json"):
                (self.jobs_dir / f"{scan_id}{suffix}").unlink(missing_ok=True)
        if fd is not None:
            os.close(fd)

    def owner_alive(self, scan_id: str) -> bool:
        """Whether a live process holds the scan's job (ours included)."""
        if scan_id in self._claims:
            return True
        path = self.jobs_dir / f"{scan_id}.lock"
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)
        return False

    def job_activity(self, scan_id: str) -> dict[str, object]:
        """What this home knows of a scan's job: ``state`` (running, queued,
        interrupted) and, once it started, when and its last phase."""
        try:
            found: dict[str, object] = json.loads((self.jobs_dir / f"{scan_id}.json").read_text())
        except (OSError, ValueError):
            found = {}
        if not self.owner_alive(scan_id):
            found["state"] = "interrupted"
        else:
            found["state"] = "running" if found.get("phase") is not None else "queued"
        return found

    def _write_activity(self, scan_id: str, doc: dict[str, object]) -> None:
        target = self.jobs_dir / f"{scan_id}.json"
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, target)

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
        try:
            self.drain(progress)
            if not done():
                raise RuntimeError("the embedded runtime finished without the expected outcome")
        finally:
            if scan_id is not None:
                history = self.events.load(UUID(scan_id))  # empty: the request was refused
                ended = self.registry.ended_types
                finished = not history or any(e.type in ended for e in history)
                self._release(scan_id, finished=finished)

    def await_processed(self, done: Callable[[], bool], timeout: float = 0.0) -> None:
        """Process the submitted commands (no jobs run) and check ``done``."""
        self.catch_up()
        if not done():
            raise RuntimeError("the embedded runtime finished without the expected outcome")

    def drain(self, progress: ProgressFn = no_progress) -> None:
        """Everything: commands, projections, this process's jobs and the jobs of scans
        whose process died (each one announced)."""
        scratch.sweep(self.tmp_root)
        while True:
            self.catch_up()
            if self.run_jobs(progress) == 0:
                return

    def catch_up(self) -> None:
        """Process commands, project events and let the policies react until none are
        left; never runs a job."""
        with self._exclusive():
            while True:
                if self.process_commands() + self.project() + self.run_policies():
                    continue
                if not self.anchor():  # the end of a catch-up: sign the chain's head
                    return

    def anchor(self) -> int:
        """Checkpoint the audit chain's head into the event log when it holds entries the
        last checkpoint does not cover (``projections/audit.py``); return how many
        checkpoint commands were appended (0 or 1). The key is ``DATRIX_AUDIT_KEY`` or
        ``DATRIX_HOME/audit.key``, made on first use with mode 0600."""
        try:
            key = audit.anchor_key(self.settings, create=True)
            due = audit.checkpoint_due(self.read_store.query, 0) if key else None
        except (audit.AnchorKeyError, audit.AnchorMismatch) as exc:
            if not self._anchor_warned:
                self.notice(f"audit anchoring skipped: {exc}")
                self._anchor_warned = True
            return 0
        if key is None or due is None:
            return 0
        seq, digest = due
        command = RecordAuditCheckpoint(
            audit_chain_id(0), 0, seq, digest, audit.key_id(key), audit.sign(key, 0, seq, digest)
        )
        envelope = client_envelope(
            self.settings,
            command,
            command.chain_id,
            command_id=checkpoint_command_id(0, seq, digest),
            actor=audit.ANCHOR_ACTOR,
        )
        return int(self.commands.append(envelope))

    def process_commands(self) -> int:
        count = 0
        while True:
            after = self.events.position(COMMAND_TRACKING)
            batch = self.commands.read(after, BATCH)
            if not batch:
                return count
            self.processor.process_batch(COMMAND_TRACKING, batch)
            crash_point("events-recorded")
            count += len(batch)

    def project(self) -> int:
        count = 0
        while True:
            batch = self.events.read(self.projector.position(), BATCH)
            if not batch:
                return count
            count += self.projector.apply_batch(batch)
            for failed in self.projector.failures:  # audited, read models untouched
                fields = {
                    "position": failed.position,
                    "ce_id": str(failed.envelope.id),
                    "ce_type": failed.envelope.type,
                    "error": failed.error,
                }
                log.error("event not projected %s", fields, extra={"not_projected": fields})
            crash_point("read-models-updated")

    def run_policies(self) -> int:
        """Let each policy react to the events after its own position; its commands go to
        the command log. Return how many new commands they issued. Their ids derive from
        the event (``policy_command_id``), so reacting again after a crash between the
        append and the position adds nothing: the log drops the copies."""
        issued = 0
        for policy in self.registry.policies.values():
            name = POLICY_POSITION.format(policy.name)
            while True:
                batch = self.events.read(self.commands.get_position(name), BATCH)
                if not batch:
                    break
                for _, envelope in batch:
                    for command, _key in policy_reactions(self.registry, policy, envelope):
                        issued += int(self.commands.append(command))
                self.commands.set_position(name, batch[-1][0])
        return issued

    # -- jobs ------------------------------------------------------------------------------
    def _ended(self, subject: UUID, kind: JobKind) -> bool:
        """Whether the job's subject (a scan) has ended: nothing left for its job to do."""
        ended = {self.registry.type_name(e) for e in kind.ended}
        return any(e.type in ended for e in self.events.load(subject))

    def _kind(self, job: Any) -> JobKind | None:
        try:
            return self.registry.job_kind(job.kind)
        except RegistryError:
            return None

    def _job_done(self, job: Any) -> bool:
        if self.commands.exists(str(result_command_id(job.job_id))):
            return True
        kind = self._kind(job)
        return kind is not None and self._ended(job.originator_id, kind)

    def pending_jobs(self) -> list[tuple[Envelope, Any]]:
        """Jobs (events of a registered job kind) whose subject has not ended and whose
        result is not in the command log, in log order. The dispatcher's position moves
        past every job before the first one still pending. The job-kind-backed reaction to
        job events: it runs outside ``catch_up``, since a job may take long."""
        after = self.commands.get_position(DISPATCHER)
        pending: list[tuple[int, Envelope, Any]] = []
        last = after
        job_types = self.registry.job_event_types
        while True:
            batch = self.events.read(last, BATCH)
            if not batch:
                break
            last = batch[-1][0]
            for position, envelope in batch:
                if envelope.type in job_types:
                    job = decode_event(envelope)
                    if not self._job_done(job):
                        pending.append((position, envelope, job))
        self.commands.set_position(DISPATCHER, pending[0][0] - 1 if pending else last)
        return [(envelope, job) for _, envelope, job in pending]

    def run_jobs(self, progress: ProgressFn = no_progress) -> int:
        """Run this process's pending jobs and those nobody holds (interrupted); return
        how many ran. Jobs held by another live process are theirs to run."""
        count = 0
        for envelope, job in self.pending_jobs():
            kind = self._kind(job)
            if kind is None:
                self.notice(
                    f"job {str(job.job_id)[:8]} is of kind {job.kind!r}, which no extension "
                    "of this process registers (DATRIX_EXTENSIONS); it waits"
                )
                continue
            scan_id = str(job.originator_id)
            mine = scan_id in self._claims
            if not mine:
                if not self._claim(scan_id):
                    continue
                self.notice(kind.interrupted(job, self.read_store.query))
            try:
                count += self._run_job(kind, envelope, job, progress)
            finally:
                if not mine:
                    self._release(scan_id, finished=self._job_done(job))
        return count

    @contextmanager
    def _job_slot(self, kind: JobKind, job: Any) -> Iterator[None]:
        """One job at a time in a home (each may take most of the machine's memory)."""
        private_dirs(self.jobs_dir)
        with os.fdopen(open_private(self.jobs_dir / "slot.lock"), "a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                self.notice(
                    f"{kind.name} {str(job.originator_id)[:8]} waits for another "
                    f"{kind.name}'s job to end (`datrix jobs list` shows it)"
                )
                fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _run_job(self, kind: JobKind, envelope: Envelope, job: Any, progress: ProgressFn) -> int:
        scan_id = str(job.originator_id)
        with self._job_slot(kind, job):
            if self._job_done(job):  # cancelled, or run by someone else meanwhile
                return 0
            activity: dict[str, object] = {
                "job_id": str(job.job_id),
                "pid": os.getpid(),
                "started": datetime.now(UTC).isoformat(timespec="seconds"),
                "phase": None,
            }
            self._write_activity(scan_id, activity)

            report = progress.for_job(scan_id) if isinstance(progress, PerJobProgress) else progress

            def tracked(phase: str, done: int, total: int) -> None:
                if phase != activity["phase"]:
                    activity.update(phase=phase, done=done, total=total)
                    self._write_activity(scan_id, activity)
                report(phase, done, total)

            tracked("starting", 0, 0)
            if self.jobs_in_process:
                result: Command | None = kind.run(job, self.objects, tracked, self.settings)
            else:
                outcome = run_supervised(
                    kind,
                    envelope,
                    job,
                    self.objects.location,
                    self.tmp_root,
                    Budgets(self.settings.job_timeout_s, self.settings.job_memory_mb),
                    tracked,
                    cancelled=lambda: self._ended(job.originator_id, kind),
                    settings=self.settings,
                )
                result = outcome.result
            if result is not None:
                self.submit(
                    result,
                    job.originator_id,
                    command_id=result_command_id(job.job_id),
                    cause=envelope,
                    actor="worker:embedded",
                )
                crash_point("job-result-logged")
            return 1


def _stderr_notice(message: str) -> None:
    sys.stderr.write(f"{message}\n")
    sys.stderr.flush()
