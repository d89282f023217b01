"""The ``monitor`` role: the stream quality monitor (issue 13).

Every ``REFRESH_S`` the role reads the active streams from the ``streams`` read model
(every tenant's, through the owner's store) and runs one consumer thread per stream,
stopping the threads of removed streams. A stream's thread consumes its topic in its own
consumer group (``<prefix>monitor.<stream id>``: two streams on one topic keep their own
positions; ``auto.offset.reset`` is the stream's ``start_from``) in micro-batches, decodes
each record (``jobs/streams/formats.py``; a ``json`` micro-batch of flat objects without
keys in one call, ``_take_flat``), places it in its partition's tumbling window
(``jobs/streams/window.py``: by the payload's event time, else the Kafka timestamp) and,
once per micro-batch, folds the batch's rows into each window's metrics
(``jobs/streams/metrics.py``). A window that closes becomes ``CloseStreamWindow`` on
``<prefix>commands``, under the command id ``window_id_for(stream, partition, start)``.

Crash safety, without any state of its own: a partition's offset is committed only up to
the first record of its oldest open window, after the commands of the windows that closed
are confirmed by the broker. A monitor killed at any moment is restarted (by the worker, or
another worker of the group takes the partition) from that offset: the open windows are
recomputed from their first record, and a closed window recomputed from a later offset is
submitted again under the same id, which the command processor drops (the command-id
uniqueness of its outcome stream). The baseline (PSI) and the previous window (schema
changes) of a partition come from the stream's recorded ``StreamWindowClosed`` events when
the partition is assigned.

A record that cannot be decoded is copied to ``<topic>.dlq`` (``streams/dead_letters.py``,
consumer ``monitor``; the topic is created when the stream's thread starts) and counted in
its window's ``poisoned``; the window goes on. A format that cannot be read at all
(``avro-confluent`` without ``DATRIX_SCHEMA_REGISTRY_URL``) is one error line and the
stream is not consumed until the settings change. A Kafka tombstone is no record but is
counted in the ``tombstones`` of the window of its record timestamp. A partition remembers
its recent record identities across its windows (``RecentIdentities``), so a redelivery
whose copies fall in two windows is one duplicate. A ``debezium`` stream's replication slot
lag is sampled every second (``slot_lag.py``: slot and database found through Kafka
Connect) and each window reports the largest sample from its start to its close.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from itertools import repeat
from operator import is_not
from typing import Any

import orjson

from datrix.aggregates.stream import (
    CloseStreamWindow,
    FieldMetrics,
    MarkStreamPartitionQuiet,
    StreamWindowClosed,
    WindowMetrics,
    window_id_for,
)
from datrix.jobs.streams.formats import (
    TOMBSTONE,
    Decoder,
    FormatError,
    RecordError,
    decode_flat_json_batch,
    decode_json,
    decoder_for,
)
from datrix.jobs.streams.metrics import (
    MAX_FIELDS,
    Baseline,
    RecentIdentities,
    WindowAccumulator,
    baselines_from,
)
from datrix.jobs.streams.window import PartitionWindows, Window
from datrix.runtime.worker.common import WorkerContext, _dead_letter, _retrying
from datrix.runtime.worker.slot_lag import SlotLag
from datrix.streams.dead_letters import DeadLetters, dlq_topic
from datrix.streams.kafka import FOREVER, KafkaCommandLog, client_config
from datrix.streams.messages import command_envelope, decode_event

log = logging.getLogger("datrix.worker.monitor")

REFRESH_S = 2.0  # how often the role re-reads the active streams
BATCH = 5000  # records per micro-batch at most
POLL_S = 0.1  # how long a quiet topic's poll waits
FETCH_QUEUE_BACKOFF_MS = 10  # see _run
# The cyclic garbage collector's first threshold while a monitor runs (``collect_less``)
GC_GEN0_THRESHOLD = 50_000
COMMIT_EVERY_S = 0.5  # flush the closed windows' commands and commit, at most this often
ACTOR = "monitor"


@dataclass(frozen=True)
class StreamSpec:
    """What the monitor needs of a stream (a row of the ``streams`` read model)."""

    stream_id: uuid.UUID
    tenant: str
    name: str
    topic: str
    format: str
    key_field: str | None
    window_seconds: int
    grace_seconds: int
    start_from: str
    snapshot_every_seconds: int | None = None

    @classmethod
    def of(cls, row: dict[str, Any]) -> StreamSpec:
        return cls(
            stream_id=uuid.UUID(str(row["stream_id"])),
            tenant=str(row["tenant"]),
            name=str(row["name"]),
            topic=str(row["topic"]),
            format=str(row["format"]),
            key_field=row.get("key_field") or None,
            window_seconds=int(row["window_seconds"]),
            grace_seconds=int(row["grace_seconds"]),
            start_from=str(row["start_from"]),
            snapshot_every_seconds=(
                int(row["snapshot_every_seconds"]) if row.get("snapshot_every_seconds") else None
            ),
        )


def active_streams(store: Any) -> dict[uuid.UUID, StreamSpec]:
    """Every tenant's active streams, from the ``streams`` read model (owner's store)."""
    from datrix.projections.read_models.streams import active_streams as rows

    return {spec.stream_id: spec for spec in map(StreamSpec.of, rows(store))}


def run_monitor(ctx: WorkerContext) -> None:
    """Run one consumer thread per active stream until the worker stops."""
    from datrix.projections.store import PostgresReadStore

    store = _retrying(
        ctx, "opening the read models", lambda: PostgresReadStore(ctx.database_url, ctx.schema)
    )
    running: dict[uuid.UUID, tuple[StreamSpec, threading.Event, threading.Thread]] = {}
    try:
        while not ctx.stop.is_set():
            active = _retrying(ctx, "reading the active streams", lambda: active_streams(store))
            for stream_id, (spec, stop, thread) in list(running.items()):
                if active.get(stream_id) != spec or not thread.is_alive():
                    stop.set()
                    thread.join(timeout=30)
                    del running[stream_id]
            for stream_id, spec in active.items():
                if stream_id not in running:
                    stop = threading.Event()
                    monitor = StreamMonitor(ctx, spec, stop)
                    thread = threading.Thread(
                        target=monitor.run, name=f"monitor-{spec.name}", daemon=True
                    )
                    thread.start()
                    running[stream_id] = (spec, stop, thread)
            ctx.stop.wait(REFRESH_S)
    finally:
        for _spec, stop, _thread in running.values():
            stop.set()
        for _spec, _stop, thread in running.values():
            thread.join(timeout=30)


def collect_less() -> None:
    """Raise this process's first garbage-collector threshold to ``GC_GEN0_THRESHOLD``
    (700 by default; never lowered). A micro-batch is ``BATCH`` Kafka ``Message`` objects,
    which the collector tracks, alive together: at 700 net allocations a collection runs
    many times a micro-batch, its survivors climb to the oldest generation and force full
    collections of the whole heap (Polars, numpy... loaded): 44 of them, 4-5 s of a
    10 s run of 1,000,000 records (docs/benchmarks.md, "Stream monitor"). Above a
    micro-batch's allocations, a collection finds the batch gone. Process-wide (one
    setting for all threads): the other roles of a worker only collect less often, and
    garbage cycles wait for 50,000 allocations rather than 700."""
    threshold = gc.get_threshold()
    if threshold[0] < GC_GEN0_THRESHOLD:
        gc.set_threshold(GC_GEN0_THRESHOLD, *threshold[1:])


@dataclass
class Partition:
    """One assigned partition: its windows and what its windows are compared with."""

    windows: PartitionWindows[WindowAccumulator]
    baselines: dict[str, Baseline] = field(default_factory=dict)
    previous: tuple[FieldMetrics, ...] | None = None
    next_offset: int | None = None  # after the last record read
    committed: int | None = None
    caught_up: bool = False
    quiet_until: int = 0  # snapshots: the latest quiet mark sent (ms)
    skipped: int = 0  # tombstones and other records that are no row change
    # identities (key + source position) of its latest records, across its windows
    recent: RecentIdentities = field(default_factory=RecentIdentities)


class Batch:
    """One partition's decoded records of one micro-batch, in offset order, not yet in
    their windows."""

    def __init__(self, part: Partition) -> None:
        self.part = part
        self.last_offset: int | None = None  # of the last record read (skipped ones too)
        self.clear()

    def clear(self) -> None:
        self.times: list[int] = []
        self.offsets: list[int] = []
        self.values: list[dict[str, Any] | None] = []
        self.identities: list[int | None] | None = None  # None: no record has one

    def identity(self, index: int, identity: int) -> None:
        if self.identities is None:
            self.identities = [None] * len(self.times)
        while len(self.identities) < len(self.times):
            self.identities.append(None)
        self.identities[index] = identity


class StreamMonitor:
    """The consumer of one stream's topic (one thread)."""

    def __init__(
        self,
        ctx: WorkerContext,
        spec: StreamSpec,
        stop: threading.Event,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ctx = ctx
        self.spec = spec
        self.stop = stop
        self.clock = clock
        self.parts: dict[int, Partition] = {}
        self.window_ms = spec.window_seconds * 1000
        self.grace_ms = spec.grace_seconds * 1000
        self.missing_topic_logged = False
        self.events: Any = None  # the event store, opened on first use
        self.objects: Any = None  # the object store (snapshot parts), opened on first use
        self.consumer: Any = None
        self.partitions = 0  # the topic's partition count (snapshots), read at most every 5 s
        self.partitions_read = 0.0
        self.unsent = 0  # window commands produced since the last flush
        self.last_commit = time.monotonic()
        # Debezium: the replication slot's lag, sampled while the stream is monitored
        self.slot_lag = (
            SlotLag(spec.topic, ctx.settings.connect_url, spec.name, clock)
            if spec.format == "debezium"
            else None
        )

    def stopped(self) -> bool:
        return self.stop.is_set() or self.ctx.stop.is_set()

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> None:
        spec = self.spec
        collect_less()
        try:
            decode = decoder_for(spec.format, self.ctx.settings.schema_registry_url)
        except FormatError as exc:
            log.error("stream %s (%s) is not monitored: %s", spec.name, spec.stream_id, exc)
            self.stop.wait()
            return
        try:
            self._run(decode)
        except InterruptedError:
            return
        except Exception:
            log.exception("monitor of stream %s crashed; restarting", spec.name)
        finally:
            if self.slot_lag is not None:
                self.slot_lag.close()

    def _run(self, decode: Decoder) -> None:
        ctx, spec = self.ctx, self.spec
        _retrying(ctx, f"creating {dlq_topic(spec.topic)}", self._ensure_dlq)
        commands = KafkaCommandLog(ctx.settings, ctx.topics)
        dead = DeadLetters(ctx.settings, ACTOR)
        consumer = ctx.consumer(
            f"monitor.{spec.stream_id}",
            **{
                "auto.offset.reset": spec.start_from,
                "enable.partition.eof": True,
                # a topic made after the stream was registered is found within seconds
                "topic.metadata.refresh.interval.ms": 5000,
                # librdkafka stops fetching a partition whose local queue holds
                # queued.min.messages (100,000) and waits this long (1,000 ms by default)
                # before the next fetch: at the default a consumer reads ~100,000 records/s
                # at most, however fast it is (docs/benchmarks.md, "Stream monitor")
                "fetch.queue.backoff.ms": FETCH_QUEUE_BACKOFF_MS,
            },
        )
        consumer.subscribe(
            [spec.topic], on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._revoked
        )
        self.consumer = consumer
        log.info("monitoring stream %s: topic %s (%s)", spec.name, spec.topic, spec.format)
        # a json stream without a key field: a micro-batch of flat objects without Kafka
        # keys is taken in bulk (``_take_flat``), the rest record by record
        bulk = decode is decode_json and spec.key_field is None
        try:
            while not self.stopped():
                messages = consumer.consume(BATCH, timeout=POLL_S)
                if self.slot_lag is not None:
                    self.slot_lag.sample()  # at most once a second
                now_ms = int(self.clock() * 1000)
                batches: dict[int, Batch] = {}
                if bulk and messages:
                    messages = self._take_flat(messages, batches, now_ms)
                if messages:
                    self._take(messages, batches, now_ms, decode, dead)
                touched = []
                for partition, batch in batches.items():
                    self._place(batch, now_ms)
                    if batch.last_offset is not None:
                        batch.part.next_offset = batch.last_offset + 1
                    touched.append(partition)
                for partition in touched:
                    for window in self.parts[partition].windows.open.values():
                        window.acc.fold()
                self.unsent += self._close_due(commands, int(self.clock() * 1000))
                if spec.snapshot_every_seconds is not None:
                    self.unsent += self._mark_quiet(commands, int(self.clock() * 1000))
                if time.monotonic() - self.last_commit >= COMMIT_EVERY_S:
                    self._flush_and_commit(consumer, commands)
            self._flush_and_commit(consumer, commands)
        finally:
            consumer.close()

    def _batch(self, batches: dict[int, Batch], partition: int) -> Batch:
        """The micro-batch's ``Batch`` of ``partition`` (made on its first record, the
        partition then not caught up until a partition EOF after its records)."""
        batch = batches.get(partition)
        if batch is None:
            part = self.parts.get(partition)
            if part is None:
                part = self.parts[partition] = self._partition(partition)
            batch = batches[partition] = Batch(part)
            part.caught_up = False
        return batch

    def _take_flat(self, messages: list[Any], batches: dict[int, Batch], now_ms: int) -> list[Any]:
        """Take a ``json`` stream's micro-batch in bulk, a partition at a time, where each
        record is a flat JSON object (``decode_flat_json_batch``) without a Kafka key (no
        identity to check) and no message is an error (a partition EOF): what ``_take``
        does with such records, with a Python call per micro-batch rather than per record
        (docs/benchmarks.md, "Stream monitor"). Returns the messages left for ``_take``:
        all of them when the micro-batch does not qualify, else the partitions whose
        records are not all flat objects (a partition's records stay together, in order)."""
        from confluent_kafka import Message

        nones = repeat(None)
        # ``is not`` rather than ``list.count(None)``: a KafkaError compared with None
        # raises a SystemError (confluent-kafka 2.16)
        if any(map(is_not, map(Message.error, messages), nones)) or any(
            map(is_not, map(Message.key, messages), nones)
        ):
            return messages
        # a consumed message (no error) has its partition and offset: not None
        partitions: list[int] = list(map(Message.partition, messages))  # type: ignore[arg-type]
        first = partitions[0]
        groups: dict[int, list[Any]]
        if partitions.count(first) == len(partitions):
            groups = {first: messages}
        else:
            groups = {}
            for msg, partition in zip(messages, partitions, strict=True):
                groups.setdefault(partition, []).append(msg)
        rest: list[Any] = []
        for partition, group in groups.items():
            rows = decode_flat_json_batch(list(map(Message.value, group)))
            if rows is None:
                rest.extend(group)
                continue
            batch = self._batch(batches, partition)
            offsets: list[int] = list(map(Message.offset, group))  # type: ignore[arg-type]
            batch.times.extend(
                # the record timestamp (kind 0: TIMESTAMP_NOT_AVAILABLE)
                [
                    at if kind != 0 and at >= 0 else now_ms
                    for kind, at in map(Message.timestamp, group)
                ]
            )
            batch.offsets.extend(offsets)
            batch.values.extend(rows)
            batch.last_offset = offsets[-1]
        return rest

    def _take(
        self,
        messages: list[Any],
        batches: dict[int, Batch],
        now_ms: int,
        decode: Decoder,
        dead: DeadLetters,
    ) -> None:
        """Decode the micro-batch's records one by one into their partitions' batches:
        partition EOFs, dead letters, tombstones, identities (key and source position)."""
        from confluent_kafka import KafkaError

        ctx, spec = self.ctx, self.spec
        key_field = spec.key_field
        keyed = key_field is not None
        flat_json = decode is decode_json
        loads = orjson.loads
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    part = self.parts.get(msg.partition())
                    if part is not None:
                        part.caught_up = True
                elif not self.missing_topic_logged:
                    self.missing_topic_logged = True
                    log.warning("stream %s: topic %s: %s", spec.name, spec.topic, err)
                continue
            partition, offset = msg.partition(), msg.offset()
            batch = batches.get(partition)
            if batch is None:
                batch = self._batch(batches, partition)
            value = msg.value()
            row: Any = None
            if flat_json and value is not None and value.find(b"{", 1) < 0:
                # the common case, what decode_json returns for a flat object,
                # without its Decoded (docs/benchmarks.md, "Stream monitor")
                try:
                    row = loads(value)
                except orjson.JSONDecodeError:
                    row = None  # decode_json says why, below
                if type(row) is not dict:
                    row = None
            if row is not None:
                values, at, position = row, None, None
            else:
                try:
                    decoded = decode(value)
                except RecordError as exc:
                    _dead_letter(ctx, dead, msg, f"RecordError: {exc}")
                    self._place(batch, now_ms)  # the records before it, in order
                    window = batch.part.windows.place(self._record_ms(msg, now_ms), offset)
                    if window is not None:
                        window.acc.poisoned += 1
                    batch.last_offset = offset
                    continue
                if decoded.skipped:
                    batch.last_offset = offset
                    batch.part.skipped += 1
                    if decoded is TOMBSTONE:  # counted in the window of its timestamp
                        self._place(batch, now_ms)  # the records before it, in order
                        at = self._record_ms(msg, now_ms)
                        window = batch.part.windows.place(at, offset)
                        if window is not None:
                            window.acc.tombstones += 1
                    continue
                values, at, position = decoded.values, decoded.event_ms, decoded.position
            batch.last_offset = offset
            if at is None:
                kind, at = msg.timestamp()
                if kind == 0 or at < 0:  # TIMESTAMP_NOT_AVAILABLE
                    at = now_ms
            batch.times.append(at)
            batch.offsets.append(offset)
            batch.values.append(values)
            key: Any = None
            if keyed and values is not None:
                key = values.get(key_field)
                if isinstance(key, list | dict):
                    key = orjson.dumps(key)
            if key is None:
                key = msg.key()
            if key is not None:
                where = position if position is not None else value
                batch.identity(len(batch.times) - 1, hash((key, where)))

    @staticmethod
    def _record_ms(msg: Any, now_ms: int) -> int:
        kind, at = msg.timestamp()
        return int(at) if kind != 0 and at >= 0 else now_ms  # 0: TIMESTAMP_NOT_AVAILABLE

    # -- windows --------------------------------------------------------------------------
    def _place(self, batch: Batch, now_ms: int) -> None:
        """Put the batch's decoded records into their windows, in offset order (a group
        of records of one window at a time), and empty it."""
        times = batch.times
        if not times:
            return
        if batch.identities is not None:  # the records after the last keyed one have none
            batch.identities += [None] * (len(times) - len(batch.identities))
        windows = batch.part.windows
        width = self.window_ms
        low, high = min(times), max(times)
        if low - low % width == high - high % width:  # the common case: one window
            groups = [list(range(len(times)))]
        else:
            by_start: dict[int, list[int]] = {}
            for i, at in enumerate(times):
                by_start.setdefault(at - at % width, []).append(i)
            groups = list(by_start.values())
        for group in groups:
            head = group[0]
            window = windows.place(times[head], batch.offsets[head])
            if window is None:
                windows.late += len(group) - 1  # place counted the first
                continue
            window.acc.seen = batch.part.recent  # duplicates across the partition's windows
            latest = max(times[i] for i in group) if len(groups) > 1 else high
            if latest > window.latest:
                window.latest = latest
            if len(groups) == 1:
                values, offsets, stamps = batch.values, batch.offsets, times
                identities = batch.identities
            else:
                values = [batch.values[i] for i in group]
                offsets = [batch.offsets[i] for i in group]
                stamps = [times[i] for i in group]
                identities = (
                    [batch.identities[i] for i in group] if batch.identities is not None else None
                )
            window.acc.add_many(values, offsets, stamps, now_ms, identities)
        batch.clear()

    def _partition(self, partition: int) -> Partition:
        windows = PartitionWindows(self.window_ms, self.grace_ms, self._accumulator)
        part = Partition(windows)
        history = _retrying(
            self.ctx, "reading the stream's closed windows", lambda: self._history(partition)
        )
        if history:
            part.baselines = baselines_from([w.fields for w in history])
            part.previous = history[-1].fields
        return part

    def _accumulator(self, start_ms: int, end_ms: int) -> WindowAccumulator:
        acc = WindowAccumulator(start_ms, end_ms)
        if self.spec.snapshot_every_seconds is not None:
            acc.frames = []  # kept for the window's snapshot part
        return acc

    def _records_uri(self, window: Window[WindowAccumulator]) -> str | None:
        """Store the window's records as its snapshot part (content-addressed: a window
        recomputed after a crash stores the same object); None without a snapshot period."""
        frames = window.acc.frames
        if frames is None:
            return None
        from datrix.jobs.streams.snapshot import write_part

        if self.objects is None:
            self.objects = self.ctx.object_store()
        objects = self.objects
        uri: str | None = _retrying(
            self.ctx,
            "storing a window's records",
            lambda: write_part(objects, self.spec.tenant, frames),
        )
        return uri

    def _topic_partitions(self) -> int:
        """How many partitions the topic has (a snapshot period waits for all of them); 0
        when unknown (no snapshot period, or the metadata did not come)."""
        if self.spec.snapshot_every_seconds is None or self.consumer is None:
            return 0
        if time.monotonic() - self.partitions_read >= 5.0 or not self.partitions:
            try:
                found = self.consumer.list_topics(self.spec.topic, timeout=5).topics
                topic = found.get(self.spec.topic)
                if topic is not None and topic.error is None:
                    self.partitions = max(self.partitions, len(topic.partitions))
                    self.partitions_read = time.monotonic()
            except Exception as exc:  # the partitions seen still count
                log.warning("stream %s: no topic metadata (%s)", self.spec.name, exc)
        return self.partitions

    def _history(self, partition: int) -> list[WindowMetrics]:
        """The partition's recorded windows, oldest first (from the event store)."""
        from datrix.streams.event_store import postgres_event_store

        if self.events is None:
            self.events = postgres_event_store(self.ctx.database_url, self.ctx.schema)
        store = self.events
        table = self.ctx.registry.table
        closed = []
        for env in store.load(self.spec.stream_id):
            if not env.type.endswith(".StreamWindowClosed"):
                continue
            event = decode_event(env, table=table)
            if isinstance(event, StreamWindowClosed) and event.partition == partition:
                closed.append((event.window_start, event.metrics))
        return [metrics for _start, metrics in sorted(closed, key=lambda c: c[0])]

    def _flush_and_commit(self, consumer: Any, commands: KafkaCommandLog) -> None:
        """Have the broker confirm the closed windows' commands, then commit: a committed
        offset never passes a window whose command could still be lost."""
        if self.unsent:
            _retrying(self.ctx, "sending closed windows", commands.flush)
            self.unsent = 0
        self._commit(consumer)
        self.last_commit = time.monotonic()

    def _close_due(self, commands: KafkaCommandLog, now_ms: int) -> int:
        """Close the windows that are due and produce their commands (not flushed: see
        ``_flush_and_commit``); how many."""
        sent = 0
        for partition, part in sorted(self.parts.items()):
            for window in part.windows.due(now_ms, part.caught_up):
                metrics = window.acc.finish(part.baselines, part.previous)
                if self.slot_lag is not None:
                    lag = self.slot_lag.worst(window.start_ms, now_ms)
                    metrics = replace(metrics, slot_lag_bytes=lag)
                if window.acc.fields_dropped:
                    log.warning(
                        "stream %s partition %d: %d fields past the first %d of a window "
                        "are not measured (e.g. %s)",
                        self.spec.name,
                        partition,
                        len(window.acc.fields_dropped),
                        MAX_FIELDS,
                        sorted(window.acc.fields_dropped)[:3],
                    )
                records_uri = self._records_uri(window)
                commands.append(self._command(partition, window, metrics, records_uri))
                sent += 1
                part.windows.close(window)
                if metrics.fields:
                    part.previous = metrics.fields
                for name, baseline in baselines_from([metrics.fields]).items():
                    part.baselines.setdefault(name, baseline)
                log.debug(
                    "stream %s partition %d window %d closed: %d records, %d late so far",
                    self.spec.name,
                    partition,
                    window.start_ms,
                    metrics.count,
                    part.windows.late,
                )
        return sent

    def _mark_quiet(self, commands: KafkaCommandLog, now_ms: int) -> int:
        """Snapshots: tell the aggregate that each caught-up partition without an open
        window has covered time up to the last window whose grace has passed (a record
        before it read later is late: ``closed_before``), so a quiet partition does not
        hold the stream's snapshots back. Once per window and partition at most; the
        command id is deterministic, so a restarted monitor's repeat is dropped."""
        sent = 0
        until = (now_ms - self.grace_ms) // self.window_ms * self.window_ms
        for partition, part in sorted(self.parts.items()):
            if not part.caught_up or part.windows.open or until <= part.quiet_until:
                continue
            closed = part.windows.closed_before
            part.windows.closed_before = until if closed is None else max(closed, until)
            part.quiet_until = until
            spec = self.spec
            command = MarkStreamPartitionQuiet(
                stream_id=spec.stream_id,
                partition=partition,
                until=datetime.fromtimestamp(until / 1000, UTC),
                topic_partitions=self._topic_partitions(),
            )
            commands.append(
                command_envelope(
                    command,
                    subject=spec.stream_id,
                    tenant=spec.tenant,
                    actor=ACTOR,
                    time=datetime.now(UTC),
                    command_id=uuid.uuid5(spec.stream_id, f"quiet/{partition}/{until}"),
                    table=self.ctx.registry.table,
                )
            )
            sent += 1
        return sent

    def _command(
        self,
        partition: int,
        window: Window[WindowAccumulator],
        metrics: WindowMetrics,
        records_uri: str | None = None,
    ) -> Any:
        spec = self.spec
        window_id = window_id_for(spec.stream_id, partition, window.start_ms)
        command = CloseStreamWindow(
            stream_id=spec.stream_id,
            window_id=window_id,
            partition=partition,
            window_start=datetime.fromtimestamp(window.start_ms / 1000, UTC),
            window_end=datetime.fromtimestamp(window.end_ms / 1000, UTC),
            metrics=metrics,
            records_uri=records_uri,
            topic_partitions=self._topic_partitions(),
        )
        return command_envelope(
            command,
            subject=spec.stream_id,
            tenant=spec.tenant,
            actor=ACTOR,
            time=datetime.now(UTC),
            command_id=window_id,
            table=self.ctx.registry.table,
        )

    # -- offsets and assignment -----------------------------------------------------------
    def _commit(self, consumer: Any) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        offsets = []
        for partition, part in self.parts.items():
            if part.next_offset is None:
                continue
            upto = part.windows.committable(part.next_offset)
            if upto != part.committed:
                offsets.append((partition, upto))
        if not offsets:
            return
        try:
            # Explicit offsets, all safe already (see _commit in worker/common.py on why a
            # commit never goes without them); asynchronous: a lost commit only means
            # reading a little more again after a crash.
            consumer.commit(
                offsets=[TopicPartition(self.spec.topic, p, o) for p, o in offsets],
                asynchronous=True,
            )
        except KafkaException as exc:  # a rebalance under way: the next batch commits
            log.debug("stream %s: commit failed (%s)", self.spec.name, exc)
            return
        for partition, upto in offsets:
            self.parts[partition].committed = upto

    def _assigned(self, _consumer: Any, partitions: list[Any]) -> None:
        for tp in partitions:
            if tp.partition not in self.parts:
                self.parts[tp.partition] = self._partition(tp.partition)
        log.info(
            "stream %s: partitions %s assigned",
            self.spec.name,
            sorted(tp.partition for tp in partitions),
        )

    def _revoked(self, _consumer: Any, partitions: list[Any]) -> None:
        for tp in partitions:
            # its open windows are recomputed by whoever gets it, from the committed offset
            self.parts.pop(tp.partition, None)

    def _ensure_dlq(self) -> None:
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import (  # type: ignore[attr-defined,unused-ignore]
            AdminClient,
            NewTopic,
        )

        settings, topics = self.ctx.settings, self.ctx.topics
        admin = AdminClient(client_config(settings))
        config = {**FOREVER, "min.insync.replicas": str(topics.min_insync_replicas)}
        wanted = NewTopic(dlq_topic(self.spec.topic), 1, topics.replication_factor, config=config)
        for name, future in admin.create_topics([wanted]).items():
            try:
                future.result(timeout=settings.kafka_timeout_s)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise RuntimeError(f"cannot create topic {name}: {exc}") from exc
