"""``datrix worker``: the Kafka-mode processes, one thread per role.

Roles: ``processor`` (commands -> event store, tracking per partition in the same
Postgres transaction), ``relay`` (event store -> ``datrix.events`` in notification order,
one leader at a time via a Postgres advisory lock), ``dispatcher`` (``JobRequested`` ->
``datrix.jobs``), ``jobs`` (run jobs, results back to ``datrix.commands``), ``projector``
(``datrix.events`` -> Postgres read models + audit chain per partition, position in the
same transaction). Every consumer is at-least-once; every sink drops redelivered copies
by a position it stores transactionally, so correctness never depends on Kafka
transactions or on faust's exactly-once mode.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import PersistenceError, Tracking

from aggregates.scan import JobRequested
from jobs.runner import result_command_id
from projections.projector import Projector
from projections.store import PostgresReadStore
from runtime.job_supervisor import Budgets, run_supervised
from streams import scratch
from streams.event_store import EventStore, postgres_event_store
from streams.job_progress import fan_out, progress_events
from streams.kafka import (
    BadMessage,
    KafkaCommandLog,
    Topics,
    ensure_topics,
    from_message,
    producer_config,
    to_message,
)
from streams.messages import Envelope, command_envelope, decode_event
from streams.object_store import open_object_store
from streams.processor import CommandProcessor
from streams.progress import ProgressPublisher
from streams.settings import Settings

log = logging.getLogger("datrix.worker")
ROLES = ("processor", "relay", "dispatcher", "jobs", "projector")
RELAY_TRACKING = "relay:datrix.events"


def relay_lock_key(schema: str, prefix: str) -> int:
    """One relay per deployment (schema + topic prefix), not one per database."""
    import zlib

    return zlib.crc32(f"datrix-relay:{schema}:{prefix}".encode())


@dataclass
class WorkerContext:
    settings: Settings
    topics: Topics
    stop: threading.Event

    @property
    def bootstrap(self) -> str:
        assert self.settings.kafka_bootstrap is not None
        return self.settings.kafka_bootstrap

    @property
    def database_url(self) -> str:
        if not self.settings.database_url:
            raise RuntimeError("Kafka mode needs DATRIX_DATABASE_URL (PostgreSQL)")
        return self.settings.database_url

    @property
    def schema(self) -> str:
        return self.settings.database_schema

    def consumer(self, group: str, **extra: Any) -> Any:
        from confluent_kafka import Consumer

        return Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"{self.topics.prefix}{group}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                # A SIGKILLed worker never leaves its group: the coordinator notices only
                # when its session times out, and partitions wait until then (45 s by
                # default). 6 s is the broker's minimum.
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 1500,
                **extra,
            }
        )


def _retrying(ctx: WorkerContext, what: str, fn: Callable[[], Any]) -> Any:
    """Retry on database or broker outages until it works or the worker stops."""
    import psycopg

    delay = 0.1
    while not ctx.stop.is_set():
        try:
            return fn()
        except (PersistenceError, psycopg.Error, OSError, RuntimeError) as exc:
            log.warning("%s failed (%s); retrying in %.1fs", what, exc, delay)
            ctx.stop.wait(delay)
            delay = min(delay * 2, 5.0)
    raise InterruptedError(what)


def _consume(consumer: Any, limit: int, wait: float = 0.2) -> list[Any]:
    """Block until one record arrives (or ``wait`` passes), then take whatever else is
    already fetched. ``consume(n, timeout)`` alone waits for a full batch or the whole
    timeout, which adds up to ``wait`` of latency at every stage under light load."""
    first = consumer.consume(1, timeout=wait)
    if not first:
        return []
    return list(first) + list(consumer.consume(limit - 1, timeout=0))


def _last_offsets(messages: list[Any]) -> dict[tuple[str, int], int]:
    """The highest offset per (topic, partition) among ``messages``."""
    last: dict[tuple[str, int], int] = {}
    for msg in messages:
        if msg.error():
            continue
        key = (msg.topic(), msg.partition())
        last[key] = max(last.get(key, -1), msg.offset())
    return last


def _commit(consumer: Any, messages: list[Any], asynchronous: bool = True) -> None:
    """Commit exactly the offsets after ``messages``.

    Never ``commit()`` without offsets: it commits the consumer's *stored* offsets when
    the request is sent, and with an asynchronous commit that can be after the next
    ``consume()`` returned (and stored) records nobody has handled yet. A SIGKILL then
    leaves the group's offset past unhandled records (seen: a projector skipped 1 % of
    events). Consumers whose sink stores its own offset seek to it on assignment anyway;
    the committed offset is then only for lag monitoring.
    """
    from confluent_kafka import TopicPartition

    last = _last_offsets(messages)
    if last:
        offsets = [TopicPartition(t, p, o + 1) for (t, p), o in sorted(last.items())]
        consumer.commit(offsets=offsets, asynchronous=asynchronous)


def _poison(topic: str, partition: int, offset: int, value: bytes | None) -> Envelope:
    """A stand-in envelope for an undecodable record, so it is rejected and recorded."""
    from datetime import UTC, datetime

    rid = uuid.uuid5(uuid.NAMESPACE_URL, f"kafka://{topic}/{partition}/{offset}")
    return Envelope(
        id=rid,
        type="unknown",
        subject=str(uuid.UUID(int=0)),
        time=datetime.fromtimestamp(0, UTC),
        tenant="unknown",
        actor="unknown",
        correlation_id=str(rid),
        data=value or b"",
    )


# -- processor ---------------------------------------------------------------------------
def run_processor(ctx: WorkerContext) -> None:
    store = _retrying(
        ctx, "event store", lambda: postgres_event_store(ctx.database_url, ctx.schema)
    )
    processor = CommandProcessor(store)
    consumer = ctx.consumer("processor")

    def tracking_name(partition: int) -> str:
        return f"command-processor:{ctx.topics.commands}:{partition}"

    def on_assign(c: Any, partitions: list[Any]) -> None:
        from confluent_kafka import OFFSET_BEGINNING

        for tp in partitions:
            name = tracking_name(tp.partition)

            def read(n: str = name) -> int:
                return int(store.position(n))

            position = _retrying(ctx, "reading tracking", read)
            # position = last processed offset + 1; the tracking record, not the group's
            # committed offset, says where this partition's processing stands
            tp.offset = position if position else OFFSET_BEGINNING
        c.assign(partitions)

    consumer.subscribe([ctx.topics.commands], on_assign=on_assign)
    try:
        while not ctx.stop.is_set():
            messages = _consume(consumer, 500)
            by_partition: dict[int, list[tuple[int, Envelope]]] = defaultdict(list)
            for msg in messages:
                if msg.error():
                    continue
                try:
                    env, _ = from_message(msg.headers(), msg.value())
                except BadMessage:
                    env = _poison(msg.topic(), msg.partition(), msg.offset(), msg.value())
                by_partition[msg.partition()].append((msg.offset() + 1, env))
            for partition, batch in by_partition.items():
                name = tracking_name(partition)

                def process(n: str = name, b: list[tuple[int, Envelope]] = batch) -> object:
                    return processor.process_batch(n, b)

                _retrying(ctx, "processing commands", process)
            _commit(consumer, messages)
    finally:
        consumer.close()


# -- relay -------------------------------------------------------------------------------
def relay_transactional_id(schema: str, prefix: str) -> str:
    return f"datrix-relay:{schema}:{prefix}"


class _RelayProducer:
    """A transactional producer: each batch of events reaches ``datrix.events`` whole or
    not at all (consumers read committed), so a failed send can never leave a gap that a
    later resend would hide behind higher positions. The fixed transactional id also
    fences a stale relay that lost its lock but is still sending."""

    def __init__(self, ctx: WorkerContext) -> None:
        from confluent_kafka import Producer

        self.producer = Producer(
            producer_config(
                ctx.bootstrap,
                **{
                    "linger.ms": 2,
                    "transactional.id": relay_transactional_id(ctx.schema, ctx.topics.prefix),
                    "transaction.timeout.ms": 15_000,
                },
            )
        )
        self.producer.init_transactions(30)

    def send(self, topic: str, batch: list[tuple[int, Envelope]]) -> None:
        self.producer.begin_transaction()
        try:
            for nid, env in batch:
                key, value, headers = to_message(env, position=nid)
                while True:
                    try:
                        self.producer.produce(topic, value=value, key=key, headers=headers)
                        break
                    except BufferError:
                        self.producer.poll(0.05)
            self.producer.commit_transaction(60)
        except Exception:
            with contextlib.suppress(Exception):
                self.producer.abort_transaction(30)
            raise


def run_relay(ctx: WorkerContext) -> None:
    import psycopg
    from confluent_kafka import KafkaException

    store: EventStore = _retrying(
        ctx, "event store", lambda: postgres_event_store(ctx.database_url, ctx.schema)
    )
    producer: _RelayProducer | None = None
    lock_conn = None
    while not ctx.stop.is_set():
        try:
            if lock_conn is None or lock_conn.closed:
                lock_conn = psycopg.connect(ctx.database_url, autocommit=True)
                got = lock_conn.execute(
                    "SELECT pg_try_advisory_lock(%s)",
                    (relay_lock_key(ctx.schema, ctx.topics.prefix),),
                )
                row = got.fetchone()
                if not (row and row[0]):
                    lock_conn.close()
                    lock_conn = None
                    ctx.stop.wait(1.0)  # another worker relays; stand by
                    continue
            if producer is None:
                producer = _RelayProducer(ctx)
            position = store.position(RELAY_TRACKING)
            batch = store.read(position, 2000)
            if not batch:
                ctx.stop.wait(0.01)
                continue
            producer.send(ctx.topics.events, batch)
            store.recorder.insert_tracking(Tracking(RELAY_TRACKING, batch[-1][0]))
        except (PersistenceError, psycopg.Error, KafkaException, RuntimeError, OSError) as exc:
            log.warning("relay: %s; retrying", exc)
            producer = None  # a fresh producer re-initialises the transactional id
            if lock_conn is not None:
                lock_conn.close()
                lock_conn = None
            ctx.stop.wait(0.5)
    if lock_conn is not None:
        lock_conn.close()


# -- dispatcher --------------------------------------------------------------------------
def run_dispatcher(ctx: WorkerContext) -> None:
    from confluent_kafka import Producer

    producer = Producer(producer_config(ctx.bootstrap))
    consumer = ctx.consumer("dispatcher")
    consumer.subscribe([ctx.topics.events])
    try:
        while not ctx.stop.is_set():
            messages = _consume(consumer, 500)
            jobs = 0
            for msg in messages:
                if msg.error():
                    continue
                headers = dict(msg.headers() or [])
                if headers.get("ce_type") == b"datrix.job.JobRequested":
                    producer.produce(
                        ctx.topics.jobs, value=msg.value(), key=msg.key(), headers=msg.headers()
                    )
                    jobs += 1
            if jobs and producer.flush(30):
                log.warning("dispatcher: jobs not confirmed; will redeliver")
                continue
            _commit(consumer, messages, asynchronous=False)
    finally:
        consumer.close()


# -- jobs --------------------------------------------------------------------------------
SCAN_ENDED = ("datrix.scan.ScanCompleted", "datrix.scan.ScanFailed", "datrix.scan.ScanCancelled")


def _scan_ended(store: EventStore, scan_id: uuid.UUID) -> bool:
    return any(e.type in SCAN_ENDED for e in store.load(scan_id))


def run_jobs(ctx: WorkerContext) -> None:
    """Run each job in a child process under its budgets. A job whose scan has already
    ended (cancelled while queued, or a redelivered copy) is skipped; a running job whose
    scan is cancelled is stopped and reports nothing (the scan has already failed)."""
    objects = open_object_store(ctx.settings)
    tmp_root = ctx.settings.home / "tmp"
    scratch.sweep(tmp_root)  # temp folders of jobs of a killed worker
    commands = KafkaCommandLog(ctx.bootstrap, ctx.topics)
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
    publisher = ProgressPublisher(ctx.settings.redis_url)
    progress_producer = Producer(producer_config(ctx.bootstrap, **{"linger.ms": 50}))

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
                job = decode_event(env)
            except Exception as exc:
                log.error("jobs: undecodable job record at offset %s: %s", msg.offset(), exc)
                consumer.commit(message=msg, asynchronous=False)
                continue
            if not isinstance(job, JobRequested):
                consumer.commit(message=msg, asynchronous=False)
                continue
            scan_id = job.originator_id

            def ended(s: uuid.UUID = scan_id) -> bool:
                return _scan_ended(store, s)

            if _retrying(ctx, "reading the scan", ended):
                log.info("jobs: skipping job %s: scan %s has ended", job.job_id, scan_id)
                consumer.commit(message=msg, asynchronous=False)
                continue
            progress = fan_out(
                publisher.for_scan(env.tenant, str(scan_id)),
                progress_events(send_progress, job.job_id, scan_id, env.tenant),
            )

            def cancelled(s: uuid.UUID = scan_id) -> bool:
                try:
                    return _scan_ended(store, s)
                except (PersistenceError, OSError) as exc:
                    log.warning("jobs: cannot check for a cancel (%s)", exc)
                    return False

            outcome = run_supervised(
                env,
                job,
                objects.location,
                tmp_root,
                budgets,
                progress,
                cancelled=cancelled,
                stopping=ctx.stop.is_set,
            )
            progress_producer.flush(5)
            if outcome.result is None:
                if outcome.cancelled:
                    log.info("jobs: job %s stopped: scan %s was cancelled", job.job_id, scan_id)
                    consumer.commit(message=msg, asynchronous=False)
                continue  # stopping: not committed, so the job is redelivered
            reply = command_envelope(
                outcome.result,
                subject=scan_id,
                tenant=env.tenant,
                actor=f"worker:{job.engine}",
                time=env.time,
                command_id=result_command_id(job.job_id),
                correlation_id=env.correlation_id,
                causation_id=str(env.id),
            )
            commands.append(reply)
            _retrying(ctx, "sending a job result", commands.flush)
            consumer.commit(message=msg, asynchronous=False)
    finally:
        consumer.close()


# -- projector ---------------------------------------------------------------------------
def run_projector(ctx: WorkerContext) -> None:
    from streams.progress import SummaryCache

    store = _retrying(ctx, "read store", lambda: PostgresReadStore(ctx.database_url, ctx.schema))
    cache = SummaryCache(ctx.settings.redis_url)
    consumer = ctx.consumer("projector")

    def on_assign(c: Any, partitions: list[Any]) -> None:
        from confluent_kafka import OFFSET_BEGINNING

        for tp in partitions:
            projector = Projector(store, name=f"read-models:{tp.partition}", chain=tp.partition)
            done = _retrying(ctx, "reading the projector offset", projector.source_offset)
            tp.offset = done + 1 if done is not None else OFFSET_BEGINNING
        log.debug("projector: assigned %s", [(tp.partition, tp.offset) for tp in partitions])
        c.assign(partitions)

    def on_revoke(c: Any, partitions: list[Any]) -> None:
        log.debug("projector: revoked %s", [tp.partition for tp in partitions])

    consumer.subscribe([ctx.topics.events], on_assign=on_assign, on_revoke=on_revoke)
    try:
        while not ctx.stop.is_set():
            messages = _consume(consumer, 1000)
            # every partition with records gets a batch, even one with no Datrix events,
            # so its offset moves on
            offsets = {p: o for (_t, p), o in _last_offsets(messages).items()}
            by_partition: dict[int, list[tuple[int, Envelope]]] = {p: [] for p in offsets}
            for msg in messages:
                if msg.error():
                    continue
                try:
                    env, position = from_message(msg.headers(), msg.value())
                except BadMessage as exc:
                    log.error("projector: skipping a non-Datrix record: %s", exc)
                    continue
                if position is None:
                    continue
                by_partition[msg.partition()].append((position, env))
            if messages and log.isEnabledFor(logging.DEBUG):
                spans: dict[int, list[int]] = {}
                for msg in messages:
                    spans.setdefault(msg.partition(), []).append(msg.offset())
                log.debug(
                    "projector: consumed offsets %s",
                    {p: (min(o), max(o), len(o)) for p, o in sorted(spans.items())},
                )
            for partition, batch in by_partition.items():
                projector = Projector(store, name=f"read-models:{partition}", chain=partition)

                def project(
                    p: Projector = projector, b: list[Any] = batch, o: int = offsets[partition]
                ) -> int:
                    return p.apply_batch(b, source_offset=o)

                applied = _retrying(ctx, "projecting", project)
                log.debug(
                    "projector: partition %s offsets ..%s (%s events) applied %s",
                    partition,
                    offsets[partition],
                    len(batch),
                    applied,
                )
                cache.invalidate(env for _, env in batch)
            _commit(consumer, messages)
    finally:
        consumer.close()


RUNNERS: dict[str, Callable[[WorkerContext], None]] = {
    "processor": run_processor,
    "relay": run_relay,
    "dispatcher": run_dispatcher,
    "jobs": run_jobs,
    "projector": run_projector,
}


def run_worker(settings: Settings, topics: Topics, roles: tuple[str, ...] = ROLES) -> None:
    """Run the roles until SIGTERM/SIGINT; a role that crashes is restarted."""
    stop = threading.Event()
    ctx = WorkerContext(settings, topics, stop)
    ensure_topics(ctx.bootstrap, topics)
    # create the tables once, before the roles race to do it
    _retrying(
        ctx, "creating the event store", lambda: postgres_event_store(ctx.database_url, ctx.schema)
    )
    _retrying(
        ctx, "creating the read models", lambda: PostgresReadStore(ctx.database_url, ctx.schema)
    )

    def guarded(role: str) -> None:
        while not stop.is_set():
            try:
                RUNNERS[role](ctx)
            except InterruptedError:
                return
            except Exception:
                log.exception("role %s crashed; restarting in 1s", role)
                stop.wait(1.0)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    threads = [threading.Thread(target=guarded, args=(r,), name=r, daemon=True) for r in roles]
    for t in threads:
        t.start()
    log.info("worker running roles: %s", ", ".join(roles))
    while not stop.is_set():
        time.sleep(0.2)
    for t in threads:
        t.join(timeout=10)
