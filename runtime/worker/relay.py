"""The ``relay`` role: event store -> ``datrix.events`` in notification order, one leader at a
time via a Postgres advisory lock."""

from __future__ import annotations

import contextlib

from eventsourcing.persistence import PersistenceError, Tracking

from datrix.runtime.worker.common import WorkerContext, _retrying, log
from datrix.streams.event_store import EventStore, postgres_event_store
from datrix.streams.kafka import producer_config, to_message
from datrix.streams.messages import Envelope

RELAY_TRACKING = "relay:datrix.events"


def relay_lock_key(schema: str, prefix: str) -> int:
    """One relay per deployment (schema + topic prefix), not one per database."""
    import zlib

    return zlib.crc32(f"datrix-relay:{schema}:{prefix}".encode())


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
                ctx.settings,
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
