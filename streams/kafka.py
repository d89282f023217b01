"""Kafka adapters: topics, the CloudEvents mapping of records, the command producer.

A message is keyed by the aggregate id, its value is the Avro single-object payload, and
the envelope's attributes and extensions travel as CloudEvents Kafka headers (``ce_id``,
``ce_type``, ``ce_tenant``, ..., see ``streams/messages.py`` ``cloudevents_headers``);
records written before issue 12 carry the extensions without the ``ce_`` prefix and are
read too. Commands may also arrive in CloudEvents structured JSON mode
(``streams/structured.py``), read into the same envelope. Events also carry
``datrix_position``: their notification id in the event store, a gap-free, per-partition
increasing number the projectors use to drop redelivered copies.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from datrix.streams.kafka_logging import (
    HEALTH,
    BrokerUnreachable,
    kafka_logging_config,
    wait_for_broker,
)
from datrix.streams.messages import (
    EXTENSIONS,
    Envelope,
    active_types,
    cloudevents_headers,
    dataschema,
)
from datrix.streams.settings import Settings
from datrix.streams.structured import (
    StructuredError,
    attribute_text,
    attributes,
    is_structured,
    parse_event,
    to_envelope,
)

PARTITIONS = {"commands": 6, "events": 6, "jobs": 3, "progress": 3, "intake": 3}
# The external producer a command came from, set by the intake role alone (only trusted
# principals may write the commands topic, and the intake role drops any such header an
# external producer sent); absent: a trusted principal's own command (gateway/CLI,
# workers). The processor checks the envelope's tenant against the principal's binding.
PRINCIPAL_HEADER = "datrix_principal"
FOREVER = {"retention.ms": "-1", "retention.bytes": "-1"}


@dataclass(frozen=True)
class Topics:
    prefix: str = "datrix."
    # What ensure_topics creates them with (DATRIX_KAFKA_REPLICATION_FACTOR,
    # DATRIX_KAFKA_MIN_INSYNC_REPLICAS); producers write with acks=all.
    replication_factor: int = 1
    min_insync_replicas: int = 1

    @property
    def commands(self) -> str:
        return f"{self.prefix}commands"

    @property
    def events(self) -> str:
        return f"{self.prefix}events"

    @property
    def jobs(self) -> str:
        return f"{self.prefix}jobs"

    @property
    def progress(self) -> str:
        return f"{self.prefix}job-progress"

    def intake(self, principal: str) -> str:
        """The topic external producer ``principal`` writes its commands to (its only
        right on the broker); the intake role forwards them to ``commands``."""
        return f"{self.prefix}intake.{principal}"

    def principal_of(self, intake_topic: str) -> str | None:
        """The producer whose intake topic this is, or None."""
        head = f"{self.prefix}intake."
        return intake_topic[len(head) :] if intake_topic.startswith(head) else None

    @property
    def consumed(self) -> tuple[str, str, str]:
        """The topics consumers read, each with a dead-letter topic ``<topic>.dlq``."""
        return (self.commands, self.events, self.jobs)


def topics_for(settings: Settings) -> Topics:
    """The topics of a deployment (``DATRIX_TOPIC_PREFIX``) and their replication
    (``DATRIX_KAFKA_REPLICATION_FACTOR``, ``DATRIX_KAFKA_MIN_INSYNC_REPLICAS``)."""
    return Topics(
        settings.topic_prefix,
        replication_factor=settings.kafka_replication_factor,
        min_insync_replicas=settings.kafka_min_insync_replicas,
    )


def client_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    """The configuration of every Kafka client of Datrix (producer, consumer, admin): the
    broker (``DATRIX_KAFKA_BOOTSTRAP``) and who this process is to it
    (``DATRIX_KAFKA_SASL_USERNAME`` / ``_PASSWORD`` / ``_MECHANISM``), then ``extra``.
    The one place a client configuration is built (tests included)."""
    if settings.kafka_bootstrap is None:
        raise RuntimeError("Kafka mode needs DATRIX_KAFKA_BOOTSTRAP")
    config: dict[str, Any] = {"bootstrap.servers": settings.kafka_bootstrap}
    if settings.kafka_sasl_username is not None:
        config.update(
            {
                "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": settings.kafka_sasl_mechanism,
                "sasl.username": settings.kafka_sasl_username,
                "sasl.password": settings.kafka_sasl_password,
            }
        )
    return {**config, **kafka_logging_config(settings.kafka_bootstrap), **extra}


def ensure_topics(settings: Settings, topics: Topics, timeout: float | None = None) -> None:
    """Create the topics with explicit partitions, replication factor and
    ``min.insync.replicas`` (idempotent: a topic that exists is left as it is); events and
    commands are kept forever: they are the system's history. The intake topics of the
    external producers the settings bind are created too, and the OpenLineage topic of
    ``DATRIX_OPENLINEAGE_URL=kafka://TOPIC``."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined,unused-ignore]

    wait = settings.kafka_timeout_s if timeout is None else timeout
    admin = AdminClient(client_config(settings))
    wait_for_broker(admin, str(settings.kafka_bootstrap), wait)
    rf = topics.replication_factor
    isr = {"min.insync.replicas": str(topics.min_insync_replicas)}
    wanted = [
        NewTopic(topics.commands, PARTITIONS["commands"], rf, config={**FOREVER, **isr}),
        NewTopic(topics.events, PARTITIONS["events"], rf, config={**FOREVER, **isr}),
        NewTopic(topics.jobs, PARTITIONS["jobs"], rf, config={"retention.ms": "604800000", **isr}),
        NewTopic(
            topics.progress, PARTITIONS["progress"], rf, config={"retention.ms": "86400000", **isr}
        ),
        # dead letters (streams/dead_letters.py): one partition each, kept until read
        *(NewTopic(f"{t}.dlq", 1, rf, config={**FOREVER, **isr}) for t in topics.consumed),
        # one intake topic per bound external producer (DATRIX_KAFKA_PRODUCERS)
        *(
            NewTopic(topics.intake(name), PARTITIONS["intake"], rf, config={**FOREVER, **isr})
            for name, _tenants in settings.kafka_producers
        ),
        # the OpenLineage run events' topic (DATRIX_OPENLINEAGE_URL=kafka://TOPIC)
        *(
            [NewTopic(lineage, 1, rf, config={"retention.ms": "604800000", **isr})]
            if (lineage := openlineage_topic(settings))
            else []
        ),
    ]
    for name, future in admin.create_topics(wanted, request_timeout=wait).items():
        try:
            future.result(timeout=wait)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise RuntimeError(f"cannot create topic {name}: {exc}") from exc


def openlineage_topic(settings: Settings) -> str | None:
    """The topic of ``DATRIX_OPENLINEAGE_URL=kafka://TOPIC`` (as given: no prefix), or None."""
    url = settings.openlineage_url or ""
    return url[len("kafka://") :] if url.startswith("kafka://") else None


Headers = list[tuple[str, str | bytes | None]]


def to_message(env: Envelope, position: int | None = None) -> tuple[bytes, bytes, Headers]:
    headers: Headers = list(cloudevents_headers(env))
    if position is not None:
        headers.append(("datrix_position", str(position).encode()))
    return (env.partition_key or env.subject).encode(), env.data, headers


class BadMessage(ValueError):
    """A record on a Datrix topic that is not a Datrix message."""


REQUIRED_HEADERS = (
    "ce_specversion",
    "ce_id",
    "ce_type",
    "ce_source",
    "ce_subject",
    "ce_time",
    "ce_tenant",
    "ce_actor",
    "ce_correlationid",
)
# Before issue 12 the extensions travelled without the ``ce_`` prefix; records in existing
# logs still carry those names, and are read as if they had the new ones.
LEGACY_HEADERS = {f"ce_{name}": name for name in EXTENSIONS}


def _text_headers(headers: Any) -> dict[str, str]:
    """The headers as text. Kafka allows a name twice; an attribute given twice with
    different values is refused (readers that keep the first or the last would disagree)."""
    pairs = headers.items() if isinstance(headers, dict) else (headers or [])
    out: dict[str, str] = {}
    for key, value in pairs:
        if isinstance(value, bytes):
            try:
                text = value.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise BadMessage(f"header {key} is not UTF-8") from exc
        else:
            text = value or ""
        attribute = key.startswith("ce_") or key in LEGACY_HEADERS.values()
        if attribute and key in out and out[key] != text:
            raise BadMessage(f"header {key} appears twice: {out[key]!r} and {text!r}")
        out[key] = text
    return out


def _attributes(h: dict[str, str]) -> dict[str, str]:
    """The headers with each legacy extension name read as its ``ce_`` name. A record that
    carries both names with different values is refused: which one is meant is unknown."""
    out = dict(h)
    for name, legacy in LEGACY_HEADERS.items():
        if legacy not in h:
            continue
        old = out.pop(legacy)
        if name in h and not _same(h[name], old, numeric=name == "ce_sequence"):
            raise BadMessage(f"header {legacy} {old!r} contradicts {name} {h[name]!r}")
        out.setdefault(name, old)
    return out


def _same(new: str, old: str, numeric: bool) -> bool:
    """Whether two values of one attribute agree (a sequence: as numbers, since the new
    header is zero-padded and the old one is not)."""
    if new == old:
        return True
    digits = (new + old).isascii() and new.isdigit() and old.isdigit()
    return numeric and digits and int(new) == int(old)


def header_attribute(headers: Any, name: str) -> str | None:
    """One CloudEvents attribute of a record (``tenant``: ``ce_tenant``, or ``tenant`` in a
    record written before issue 12) as text, whatever else is wrong with the record; None
    when it is absent or unreadable."""
    pairs = headers.items() if isinstance(headers, dict) else (headers or [])
    found = dict(pairs)
    for key in (f"ce_{name}", LEGACY_HEADERS.get(f"ce_{name}")):
        value = found.get(key) if key else None
        if value is None:
            continue
        try:
            return value.decode("utf-8") if isinstance(value, bytes) else str(value)
        except UnicodeDecodeError:
            return None
    return None


def from_message(headers: Any, value: bytes | None) -> tuple[Envelope, int | None]:
    """Envelope and (for events) event-store position of one Kafka record.

    Binary content mode (the attributes in ``ce_`` headers, the value the Avro payload) or
    structured JSON mode (``content-type: application/cloudevents+json``: the value one
    CloudEvents JSON object whose ``data`` is converted to the Avro schema ``type`` names,
    ``streams/structured.py``); both give the same envelope for the same command.
    Every required attribute must be present and well-formed; a record that lacks one is
    a ``BadMessage`` naming it, never an envelope with a made-up tenant, actor or time.
    Records written before issue 12 (extensions without the ``ce_`` prefix) are read too.
    A ``ce_dataschema``, when present, must name the payload's type and writer schema."""
    raw = _text_headers(headers)
    if is_structured(raw.get("content-type")):
        return _from_structured(raw, value)
    h = _attributes(raw)
    command_id, when, sequence, position = _checked(h)
    env = Envelope(
        id=command_id,
        type=h["ce_type"],
        subject=h["ce_subject"],
        time=when,
        tenant=h["ce_tenant"],
        actor=h["ce_actor"],
        correlation_id=h["ce_correlationid"],
        causation_id=h.get("ce_causationid") or None,
        sequence=sequence,
        data=value or b"",
        source=h["ce_source"],
        partition_key=h.get("ce_partitionkey") or None,
    )
    if "ce_dataschema" in h:
        expected = dataschema(env)
        if h["ce_dataschema"] != expected:
            what = "a value that is no Avro single-object" if expected is None else expected
            raise BadMessage(f"ce_dataschema {h['ce_dataschema']!r} does not name {what}")
    return env, position


def _checked(h: dict[str, str]) -> tuple[uuid.UUID, datetime, int | None, int | None]:
    """The required attributes present and well-formed: the id, time, sequence and
    event-store position, parsed."""
    missing = [name for name in REQUIRED_HEADERS if not h.get(name, "").strip()]
    if missing:
        raise BadMessage(f"missing CloudEvents header(s): {', '.join(missing)}")
    if h["ce_specversion"] != "1.0":
        raise BadMessage(f"unsupported ce_specversion {h['ce_specversion']!r} (expected 1.0)")
    try:
        command_id = uuid.UUID(h["ce_id"])
    except ValueError:
        raise BadMessage(f"ce_id {h['ce_id']!r} is not a UUID") from None
    try:
        when = _parse_time(h["ce_time"])
    except ValueError as exc:
        raise BadMessage(f"ce_time {h['ce_time']!r} is not an RFC 3339 time: {exc}") from None
    return command_id, when, _int_header(h, "ce_sequence"), _int_header(h, "datrix_position")


def _from_structured(raw: dict[str, str], value: bytes | None) -> tuple[Envelope, int | None]:
    """A structured-mode record: the attributes are the JSON object's (named here as their
    ``ce_`` headers, so the binary mode's checks and messages apply); a ``ce_`` header
    beside them must agree with the JSON (no second tenant slipped past a reader)."""
    try:
        document = parse_event(value)
        attrs = attributes(document)
    except StructuredError as exc:
        raise BadMessage(str(exc)) from None
    for name, text in _attributes(raw).items():
        if name.startswith("ce_") and name in attrs and attrs[name] != text:
            raise BadMessage(f"header {name} {text!r} contradicts the event's {attrs[name]!r}")
    h = {**{k: v for k, v in raw.items() if not k.startswith("ce_")}, **attrs}
    command_id, when, sequence, position = _checked(h)
    try:
        env = to_envelope(
            document, active_types().codec, id=command_id, time=when, sequence=sequence
        )
    except StructuredError as exc:
        raise BadMessage(str(exc)) from None
    return env, position


def record_attribute(headers: Any, value: bytes | None, name: str) -> str | None:
    """One CloudEvents attribute of a record in either content mode (``header_attribute``
    for binary mode; the JSON object's for structured mode), whatever else is wrong with
    it; None when absent or unreadable."""
    pairs = headers.items() if isinstance(headers, dict) else (headers or [])
    content = next((v for k, v in pairs if k == "content-type"), None)
    if isinstance(content, bytes):
        content = content.decode("utf-8", "replace")
    if not is_structured(content):
        return header_attribute(headers, name)
    try:
        return attribute_text(parse_event(value), name)
    except StructuredError:
        return None


def record_id(headers: Any, value: bytes | None) -> uuid.UUID | None:
    """The id of a record in either content mode if it can be read (``readable_id``)."""
    text = record_attribute(headers, value, "id")
    try:
        return uuid.UUID(text) if text is not None else None
    except ValueError:
        return None


def readable_id(headers: Any) -> uuid.UUID | None:
    """The ``ce_id`` of a record if it can be read, whatever else is wrong with it."""
    pairs = headers.items() if isinstance(headers, dict) else (headers or [])
    for key, value in pairs:
        if key == "ce_id":
            try:
                text = value.decode() if isinstance(value, bytes) else str(value)
                return uuid.UUID(text)
            except (UnicodeDecodeError, ValueError):
                return None
    return None


def _int_header(h: dict[str, str], name: str) -> int | None:
    if name not in h:
        return None
    try:
        return int(h[name])
    except ValueError:
        raise BadMessage(f"header {name} {h[name]!r} is not an integer") from None


def _parse_time(value: str) -> datetime:
    """An RFC 3339 timestamp: a date, a time and a UTC offset (``Z`` or ``+hh:mm``)."""
    parsed = datetime.fromisoformat(value)
    if "T" not in value.upper() and " " not in value:
        raise ValueError("no time of day")
    if parsed.tzinfo is None:
        raise ValueError("no UTC offset")
    return parsed


def producer_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    return {
        **client_config(settings),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        **extra,
    }


class KafkaCommandLog:
    """Producer side of ``datrix.commands`` (idempotent producer, keyed by aggregate id)."""

    def __init__(self, settings: Settings, topics: Topics) -> None:
        from confluent_kafka import Producer

        self.bootstrap = str(settings.kafka_bootstrap)
        self.timeout = settings.kafka_timeout_s  # of flush
        self.topics = topics
        self.producer = Producer(producer_config(settings))
        self._errors: list[str] = []

    def _delivered(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self._errors.append(str(err))

    def append(self, envelope: Envelope, key: str | None = None) -> bool:
        subject_key, value, headers = to_message(envelope)
        key_bytes = key.encode() if key is not None else subject_key
        while True:
            try:
                self.producer.produce(
                    self.topics.commands,
                    value=value,
                    key=key_bytes,
                    headers=headers,
                    on_delivery=self._delivered,
                )
                break
            except BufferError:
                self.producer.poll(0.05)
        self.producer.poll(0)
        return True

    def flush(self, timeout: float | None = None) -> None:
        wait = self.timeout if timeout is None else timeout
        remaining = self.producer.flush(wait)
        if remaining and HEALTH.down:
            raise BrokerUnreachable(
                f"Kafka did not confirm {remaining} command(s) within {wait:g} s: the broker "
                f"at {self.bootstrap} is unreachable (DATRIX_KAFKA_TIMEOUT_S)"
            )
        if remaining or self._errors:
            errors, self._errors = self._errors, []
            raise RuntimeError(
                f"Kafka did not confirm {remaining} command(s): {'; '.join(errors[:3])}"
            )


def records_to_end(
    settings: Settings, topic: str, group: str, wait: float = 30.0, deadline: float = 600.0
) -> tuple[list[int], Iterator[Any]] | None:
    """The partitions of ``topic`` and every record on them from offset 0 to their end
    when called, in offset order per partition (partitions interleave); None when the topic
    does not exist. ``wait``: for metadata; ``deadline``: for the whole read, past
    which it raises ``RuntimeError`` naming the partitions not read to their end."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    consumer = Consumer(
        client_config(
            settings,
            **{
                "group.id": f"{group}-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                # A transactional producer (the relay) ends a partition with a commit or
                # abort marker that is never delivered as a message: "reached the end" is
                # the EOF event, not a message at the high watermark.
                "enable.partition.eof": True,
            },
        )
    )
    meta = consumer.list_topics(topic, timeout=wait)
    if topic not in meta.topics or meta.topics[topic].error is not None:
        consumer.close()
        return None
    partitions = sorted(meta.topics[topic].partitions)
    ends = {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=wait)[1]
        for p in partitions
    }

    def read() -> Iterator[Any]:
        try:
            todo = {p for p in partitions if ends[p] > 0}
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in todo])
            until = time.monotonic() + deadline
            while todo and time.monotonic() < until:
                for msg in consumer.consume(5000, timeout=0.5):
                    p, offset = msg.partition() or 0, msg.offset() or 0
                    err = msg.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF and offset >= ends[p]:
                            todo.discard(p)
                        continue
                    yield msg
                    if offset + 1 >= ends[p]:
                        todo.discard(p)
            if todo:
                raise RuntimeError(f"could not read {topic} to its end (partitions {sorted(todo)})")
        finally:
            consumer.close()

    return partitions, read()


def read_topic(
    settings: Settings, topic: str, timeout: float = 30.0
) -> dict[int, list[tuple[int, Envelope]]]:
    """Every Datrix event on ``topic`` from offset 0 to the current end, per partition, as
    (event-store position, envelope); redelivered copies (same position) appear once."""
    found = records_to_end(settings, topic, "datrix-replay", timeout, max(timeout, 600.0))
    if found is None:
        raise RuntimeError(f"topic {topic} does not exist")
    partitions, records = found
    out: dict[int, list[tuple[int, Envelope]]] = {p: [] for p in partitions}
    last: dict[int, int] = {}
    for msg in records:
        p = msg.partition() or 0
        try:
            env, position = from_message(msg.headers(), msg.value())
        except BadMessage:
            continue  # in <prefix>events.dlq; never projected, so never replayed
        if position is not None and position > last.get(p, 0):
            out[p].append((position, env))
            last[p] = position
    return out
