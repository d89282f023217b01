"""Job-progress events on ``datrix.job-progress``: phase and rows done, per job.

Progress is not part of the event-sourced history (a scan's outcome is its CompleteScan or
FailScan command), so these records go to their own short-lived topic, Avro-encoded like
every other Datrix message and keyed by scan id so a scan's updates stay in order. Redis
pub/sub carries the same updates to the CLI's progress bar; the topic is for any other
watcher (dashboards, the API) and survives a Redis outage.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from datrix.streams.codec import default_codec
from datrix.streams.ports import ProgressFn
from datrix.streams.settings import Settings

log = logging.getLogger("datrix.progress")
SCHEMA = "datrix.job.JobProgress"
MIN_INTERVAL_S = 0.5  # at most two updates a second per job, plus every phase change


@dataclass(frozen=True)
class JobProgress:
    job_id: str
    scan_id: str
    tenant: str
    seq: int
    phase: str
    done: int
    total: int
    at: str


def encode(update: JobProgress) -> bytes:
    return default_codec().encode(SCHEMA, asdict(update))


def decode(data: bytes) -> JobProgress:
    name, record = default_codec().decode(data)
    if name != SCHEMA:
        raise ValueError(f"{name} is not a job-progress record")
    return JobProgress(
        **{**record, "job_id": str(record["job_id"]), "scan_id": str(record["scan_id"])}
    )


def progress_events(
    send: Callable[[bytes, bytes], None],
    job_id: uuid.UUID,
    scan_id: uuid.UUID,
    tenant: str,
    clock: Callable[[], float] = time.monotonic,
) -> ProgressFn:
    """A progress callback that emits JobProgress records through ``send(key, value)``:
    the first update, every phase change, the last update of a phase (done == total) and
    otherwise at most one every MIN_INTERVAL_S."""
    state: dict[str, Any] = {"seq": 0, "phase": None, "at": -1e9}

    def publish(phase: str, done: int, total: int) -> None:
        now = clock()
        changed = phase != state["phase"]
        finished = total > 0 and done >= total
        if not (changed or finished or now - state["at"] >= MIN_INTERVAL_S):
            return
        state.update(seq=state["seq"] + 1, phase=phase, at=now)
        update = JobProgress(
            job_id=str(job_id),
            scan_id=str(scan_id),
            tenant=tenant,
            seq=state["seq"],
            phase=phase,
            done=max(0, int(done)),
            total=max(0, int(total)),
            at=datetime.now(UTC).isoformat(),
        )
        try:
            send(str(scan_id).encode(), encode(update))
        except Exception as exc:  # progress must never fail the job
            log.warning("job progress not published: %s", exc)

    return publish


def fan_out(*callbacks: ProgressFn) -> ProgressFn:
    def publish(phase: str, done: int, total: int) -> None:
        for callback in callbacks:
            callback(phase, done, total)

    return publish


def read_job_progress(
    settings: Settings, topic: str, scan_id: str, timeout: float = 30.0
) -> list[JobProgress]:
    """Every JobProgress record of one scan still on ``topic`` (kept one day), in order."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    from datrix.streams.kafka import client_config

    consumer = Consumer(
        client_config(
            settings,
            **{
                "group.id": f"datrix-progress-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
            },
        )
    )
    try:
        meta = consumer.list_topics(topic, timeout=timeout)
        if topic not in meta.topics or meta.topics[topic].error is not None:
            return []
        partitions = sorted(meta.topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        todo, found = set(partitions), []
        deadline = time.monotonic() + timeout
        key = scan_id.encode()
        while todo and time.monotonic() < deadline:
            for msg in consumer.consume(1000, timeout=0.5):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        todo.discard(msg.partition())
                    continue
                value = msg.value()
                if msg.key() == key and value is not None:
                    found.append(decode(value))
        return sorted(found, key=lambda u: (u.job_id, u.seq))
    finally:
        consumer.close()
