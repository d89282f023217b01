"""The ``processor`` role: commands from ``datrix.commands`` -> the event store, tracking per
partition in the same Postgres transaction."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from datrix.runtime.worker.common import WorkerContext, _commit, _consume, _poison, _retrying
from datrix.streams.event_store import postgres_event_store
from datrix.streams.kafka import BadMessage, from_message
from datrix.streams.messages import Envelope
from datrix.streams.processor import CommandProcessor


def run_processor(ctx: WorkerContext) -> None:
    store = _retrying(
        ctx, "event store", lambda: postgres_event_store(ctx.database_url, ctx.schema)
    )
    processor = CommandProcessor(store, ctx.registry)
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
