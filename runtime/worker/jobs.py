"""The ``jobs`` role: run the jobs of ``datrix.jobs`` (each in a supervised child process),
results back to ``datrix.commands``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from eventsourcing.persistence import PersistenceError

from datrix.runtime.job_supervisor import Budgets, run_supervised
from datrix.runtime.worker.common import WorkerContext, _dead_letter, _retrying, log
from datrix.streams import scratch
from datrix.streams.dead_letters import DeadLetters
from datrix.streams.event_store import EventStore, postgres_event_store
from datrix.streams.job_progress import fan_out, progress_events
from datrix.streams.kafka import KafkaCommandLog, from_message, producer_config
from datrix.streams.messages import command_envelope, decode_event
from datrix.streams.progress import ProgressPublisher
from datrix.streams.registry import JobKind, Registry, RegistryError, result_command_id


def _ended(store: EventStore, registry: Registry, kind: JobKind, subject: uuid.UUID) -> bool:
    """Whether the job's subject (a scan) has ended: nothing left for its job to do."""
    ended = {registry.type_name(e) for e in kind.ended}
    return any(e.type in ended for e in store.load(subject))


def run_jobs(ctx: WorkerContext) -> None:
    """Run each job in a child process under its budgets. A job whose scan has already
    ended (cancelled while queued, or a redelivered copy) is skipped; a running job whose
    scan is cancelled is stopped and reports nothing (the scan has already failed)."""
    registry = ctx.registry
    objects = ctx.object_store()
    tmp_root = ctx.settings.home / "tmp"
    scratch.sweep(tmp_root)  # temp folders of jobs of a killed worker
    commands = KafkaCommandLog(ctx.settings, ctx.topics)
    store: EventStore = _retrying(
        ctx, "event store", lambda: postgres_event_store(ctx.database_url, ctx.schema)
    )
    budgets = Budgets(ctx.settings.job_timeout_s, ctx.settings.job_memory_mb)
    from confluent_kafka import Producer

    # the group must not evict a consumer busy with one long job (librdkafka's maximum
    # is a day)
    poll_ms = 86_400_000
    if budgets.timeout_s:
        poll_ms = min(max(1_800_000, int((budgets.timeout_s + 300) * 1000)), poll_ms)
    consumer = ctx.consumer("jobs", **{"max.poll.interval.ms": poll_ms})
    consumer.subscribe([ctx.topics.jobs])
    dead = DeadLetters(ctx.settings, "jobs")
    publisher = ProgressPublisher(ctx.settings)
    progress_producer = Producer(producer_config(ctx.settings, **{"linger.ms": 50}))

    def send_progress(key: bytes, value: bytes) -> None:
        progress_producer.produce(ctx.topics.progress, value=value, key=key)
        progress_producer.poll(0)

    try:
        while not ctx.stop.is_set():
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            try:
                env, _ = from_message(msg.headers(), msg.value())
                job: Any = decode_event(env)
            except Exception as exc:  # to <prefix>jobs.dlq (logged there), then on past it
                error = f"{type(exc).__name__}: {exc}"
                _dead_letter(ctx, dead, msg, error)
                consumer.commit(message=msg, asynchronous=False)
                continue
            if env.type not in registry.job_event_types:
                consumer.commit(message=msg, asynchronous=False)
                continue
            try:
                kind = registry.job_kind(getattr(job, "kind", ""))
            except RegistryError as exc:
                # not skipped: this worker tries it again (restarted with the extension,
                # or after a rebalance another worker that has it runs it)
                log.error("jobs: %s; set DATRIX_EXTENSIONS on this worker", exc)
                from confluent_kafka import TopicPartition

                consumer.seek(TopicPartition(msg.topic(), msg.partition(), msg.offset()))
                ctx.stop.wait(5.0)
                continue
            scan_id = job.originator_id

            def ended(s: uuid.UUID = scan_id, k: JobKind = kind) -> bool:
                return _ended(store, registry, k, s)

            if _retrying(ctx, "reading the scan", ended):
                log.info("jobs: skipping job %s: scan %s has ended", job.job_id, scan_id)
                consumer.commit(message=msg, asynchronous=False)
                continue
            progress = fan_out(
                publisher.for_scan(env.tenant, str(scan_id)),
                progress_events(send_progress, job.job_id, scan_id, env.tenant),
            )

            def cancelled(s: uuid.UUID = scan_id, k: JobKind = kind) -> bool:
                try:
                    return _ended(store, registry, k, s)
                except (PersistenceError, OSError) as exc:
                    log.warning("jobs: cannot check for a cancel (%s)", exc)
                    return False

            outcome = run_supervised(
                kind,
                env,
                job,
                objects.location,
                tmp_root,
                budgets,
                progress,
                cancelled=cancelled,
                stopping=ctx.stop.is_set,
                settings=ctx.settings,
            )
            progress_producer.flush(5)
            if outcome.result is None:
                if outcome.cancelled:
                    log.info("jobs: job %s stopped: scan %s was cancelled", job.job_id, scan_id)
                    consumer.commit(message=msg, asynchronous=False)
                continue  # stopping: not committed, so the job is redelivered
            # The result's time is when the job ended: the outcome event the aggregate
            # decides from it (ScanCompleted, ScanFailed) takes the command's time, so the
            # log says when the scan completed, not when it was requested. Stamped once,
            # here at the edge: a redelivered job's second result has the same id and is
            # dropped, and replay reads the time from the log.
            reply = command_envelope(
                outcome.result,
                subject=scan_id,
                tenant=env.tenant,
                actor=kind.actor_of(job),
                time=datetime.now(UTC),
                command_id=result_command_id(job.job_id),
                correlation_id=env.correlation_id,
                causation_id=str(env.id),
            )
            commands.append(reply)
            _retrying(ctx, "sending a job result", commands.flush)
            consumer.commit(message=msg, asynchronous=False)
    finally:
        consumer.close()
