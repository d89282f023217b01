"""What the worker roles share: their context (settings, topics, the stop event, Kafka
consumers), retrying through outages, and the consume/commit helpers."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.persistence import PersistenceError

from datrix.projections.read_model import ReadModel
from datrix.projections.read_models import CORE_READ_MODELS
from datrix.streams.dead_letters import DeadLetters
from datrix.streams.kafka import Topics, client_config, record_attribute, record_id
from datrix.streams.messages import Envelope
from datrix.streams.object_store import open_object_store
from datrix.streams.ports import ObjectStore
from datrix.streams.registry import Registry, core_registry
from datrix.streams.settings import Settings

log = logging.getLogger("datrix.worker")


@dataclass
class WorkerContext:
    settings: Settings
    topics: Topics
    stop: threading.Event
    objects: ObjectStore | None = None  # None: the one the settings name
    # aggregates, policies and job kinds of this worker (its settings' extensions)
    registry: Registry = field(default_factory=core_registry)
    # what the projector role keeps
    read_models: tuple[ReadModel, ...] = CORE_READ_MODELS

    def object_store(self) -> ObjectStore:
        return self.objects if self.objects is not None else open_object_store(self.settings)

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
            client_config(
                self.settings,
                **{
                    "group.id": f"{self.topics.prefix}{group}",
                    "enable.auto.commit": False,
                    "auto.offset.reset": "earliest",
                    "isolation.level": "read_committed",
                    # A SIGKILLed worker never leaves its group: the coordinator notices
                    # only when its session times out, and partitions wait until then (45 s
                    # by default). 6 s is the broker's minimum.
                    "session.timeout.ms": 6000,
                    "heartbeat.interval.ms": 1500,
                    **extra,
                },
            )
        )


def _retrying(ctx: WorkerContext, what: str, fn: Callable[[], Any]) -> Any:
    """Retry on database or broker outages until it works or the worker stops: one
    warning when it first fails, the later attempts at DEBUG, one line when it works
    again (an outage of minutes is two lines per role, not one every 5 s)."""
    import psycopg

    delay = 0.1
    failures = 0
    while not ctx.stop.is_set():
        try:
            result = fn()
        except (PersistenceError, psycopg.Error, OSError, RuntimeError) as exc:
            failures += 1
            level = logging.WARNING if failures == 1 else logging.DEBUG
            log.log(level, "%s failed (%s); retrying every %.1f-5 s", what, exc, delay)
            ctx.stop.wait(delay)
            delay = min(delay * 2, 5.0)
            continue
        if failures:
            log.warning("%s works again (after %d failed attempts)", what, failures)
        return result
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


def _dead_letter(ctx: WorkerContext, dead: DeadLetters, msg: Any, error: str) -> None:
    """Copy ``msg`` to its topic's dead-letter topic, retrying while the broker is away."""

    def send() -> None:
        dead.send(msg, error)

    _retrying(ctx, "sending a dead letter", send)


def _stand_in(msg: Any) -> Envelope | None:
    """What can be read of a record whose envelope is broken, to record its refusal under
    its own id (``CommandProcessor.refuse``): None unless its ``ce_id`` and ``tenant`` are
    readable. Its time is its ``ce_time`` if that parses, else the broker's timestamp of
    the record; nothing in it is ever applied, and no attribute is made up."""
    from datetime import UTC, datetime

    headers, value = msg.headers() or [], msg.value()
    command_id = record_id(headers, value)  # either content mode (structured: the JSON's)
    tenant = (record_attribute(headers, value, "tenant") or "").strip()
    actor = (record_attribute(headers, value, "actor") or "").strip()
    kind = (record_attribute(headers, value, "type") or "").strip()
    if command_id is None or not tenant:
        return None
    try:
        when = datetime.fromisoformat(record_attribute(headers, value, "time") or "")
        if when.tzinfo is None:
            raise ValueError("no UTC offset")
    except ValueError:
        _kind, millis = msg.timestamp()
        when = datetime.fromtimestamp(max(millis, 0) / 1000, UTC)
    return Envelope(
        id=command_id,
        type=kind,
        subject=str(uuid.UUID(int=0)),
        time=when,
        tenant=tenant,
        actor=actor,
        correlation_id=str(command_id),
        data=msg.value() or b"",
    )
