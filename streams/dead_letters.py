"""Dead-letter topics: where a Kafka-mode consumer puts a record it cannot handle, so it
moves on instead of crash-looping on it.

Each consumed topic has one (``<prefix>commands.dlq``, ``<prefix>events.dlq``,
``<prefix>jobs.dlq``). A dead letter is the original record, byte for byte (key, value,
headers), plus headers saying what went wrong and where it came from:
``datrix_dlq_error``, ``datrix_dlq_topic``, ``datrix_dlq_partition``,
``datrix_dlq_offset``, ``datrix_dlq_consumer`` and ``datrix_dlq_time``. ``datrix dlq
list|show|replay`` reads them and resubmits one to its topic.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from datrix.streams.kafka import Headers, Topics, producer_config, record_attribute, records_to_end
from datrix.streams.settings import Settings
from datrix.streams.structured import is_structured

log = logging.getLogger("datrix.dlq")
PREFIX = "datrix_dlq_"
REPLAY_OF = "datrix_replay_of"


class DeadLetterError(RuntimeError):
    """A dead letter the broker did not confirm (transient: the caller retries)."""


def dlq_topic(topic: str) -> str:
    return f"{topic}.dlq"


class DeadLetters:
    """The producer side, one per consumer role. ``send`` returns once the broker has
    the copy, so the consumer may move its position on after it."""

    def __init__(self, settings: Settings, consumer: str) -> None:
        from confluent_kafka import Producer

        self.consumer = consumer
        self.producer = Producer(producer_config(settings))

    def send(self, msg: Any, error: str) -> None:
        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
        headers: Headers = [*(msg.headers() or [])]
        headers += [
            (f"{PREFIX}error", error.encode("utf-8", "replace")),
            (f"{PREFIX}topic", topic.encode()),
            (f"{PREFIX}partition", str(partition).encode()),
            (f"{PREFIX}offset", str(offset).encode()),
            (f"{PREFIX}consumer", self.consumer.encode()),
            (f"{PREFIX}time", datetime.now(UTC).isoformat().encode()),
        ]
        failures: list[str] = []

        def delivered(err: Any, _msg: Any) -> None:
            if err is not None:
                failures.append(str(err))

        self.producer.produce(
            dlq_topic(topic),
            value=msg.value(),
            key=msg.key(),
            headers=headers,
            on_delivery=delivered,
        )
        if self.producer.flush(30) or failures:
            raise DeadLetterError(f"dead letter not confirmed: {'; '.join(failures)}")
        fields = {
            "consumer": self.consumer,
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "ce_id": record_attribute(headers, msg.value(), "id"),
            "ce_type": record_attribute(headers, msg.value(), "type"),
            "error": error,
        }
        log.error("dead-lettered %s", fields, extra={"dead_letter": fields})


def _header(headers: Any, name: str) -> str | None:
    for key, value in headers or []:
        if key == name:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return None


@dataclass(frozen=True)
class DeadLetter:
    dlq: str  # the dead-letter topic
    offset: int  # its offset there
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]  # the original record's, without the datrix_dlq_*
    error: str
    topic: str
    partition: int
    source_offset: int
    consumer: str
    time: str

    @property
    def ce_id(self) -> str | None:
        """The record's id in either content mode (structured: the JSON's)."""
        return record_attribute(self.headers, self.value, "id")

    @property
    def ce_type(self) -> str | None:
        return record_attribute(self.headers, self.value, "type")

    def summary(self) -> dict[str, Any]:
        return {
            "offset": self.offset,
            "from": f"{self.topic}/{self.partition}@{self.source_offset}",
            "consumer": self.consumer,
            "time": self.time,
            "ce_id": self.ce_id,
            "ce_type": self.ce_type,
            "error": self.error,
        }

    def document(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "dlq": self.dlq,
            "key": self.key.decode("utf-8", "replace") if self.key is not None else None,
            "headers": {k: (v or b"").decode("utf-8", "replace") for k, v in self.headers},
            "value_bytes": len(self.value or b""),
            "value_hex": (self.value or b"")[:256].hex(),
        }


def _dead_letter(dlq: str, msg: Any) -> DeadLetter:
    raw = [(k, v if isinstance(v, bytes) else (v or "").encode()) for k, v in msg.headers() or []]
    meta = {k[len(PREFIX) :]: v.decode("utf-8", "replace") for k, v in raw if k.startswith(PREFIX)}
    return DeadLetter(
        dlq=dlq,
        offset=msg.offset(),
        key=msg.key(),
        value=msg.value(),
        headers=[(k, v) for k, v in raw if not k.startswith(PREFIX)],
        error=meta.get("error", ""),
        topic=meta.get("topic", ""),
        partition=int(meta.get("partition", "-1")),
        source_offset=int(meta.get("offset", "-1")),
        consumer=meta.get("consumer", ""),
        time=meta.get("time", ""),
    )


def read_dead_letters(settings: Settings, dlq: str, timeout: float = 30.0) -> list[DeadLetter]:
    """Every record of one dead-letter topic, oldest first ([] when it does not exist)."""
    found = records_to_end(settings, dlq, "datrix-dlq", timeout, timeout)
    if found is None:
        return []
    try:
        letters = [_dead_letter(dlq, msg) for msg in found[1]]
    except RuntimeError as exc:  # not read to its end in time
        raise DeadLetterError(str(exc)) from exc
    return sorted(letters, key=lambda d: (d.time, d.offset))


def replay(settings: Settings, letter: DeadLetter, timeout: float = 30.0) -> str | None:
    """Send a dead letter's original record back to its topic; return the id it now has.

    A command whose id is readable goes back under a new id derived from it and the dead
    letter's offset (``uuid5``: replaying the same dead letter twice sends the same id, so
    the processor takes it once), because its first id already has its refusal recorded;
    ``datrix_replay_of`` names the original id."""
    from confluent_kafka import Producer

    headers: Headers = list(letter.headers)
    value = letter.value
    new_id: str | None = letter.ce_id
    original = letter.ce_id
    if original is not None:
        try:
            new_id = str(uuid.uuid5(uuid.UUID(original), f"replay:{letter.dlq}@{letter.offset}"))
        except ValueError:
            new_id = original
        if is_structured(_header(headers, "content-type")) and value is not None:
            # structured JSON mode: the id is the event's own attribute
            value = json.dumps({**json.loads(value), "id": new_id}).encode()
        else:
            headers = [(k, v) for k, v in headers if k != "ce_id"]
            headers.append(("ce_id", new_id.encode()))
        headers.append((REPLAY_OF, original.encode()))
    failures: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    producer = Producer(producer_config(settings))
    producer.produce(
        letter.topic, value=value, key=letter.key, headers=headers, on_delivery=delivered
    )
    if producer.flush(timeout) or failures:
        raise DeadLetterError(f"the broker did not confirm the replay: {'; '.join(failures)}")
    return new_id


def dlq_topics(topics: Topics) -> dict[str, str]:
    """The dead-letter topic of each consumed topic, by short name."""
    return {
        "commands": dlq_topic(topics.commands),
        "events": dlq_topic(topics.events),
        "jobs": dlq_topic(topics.jobs),
    }
