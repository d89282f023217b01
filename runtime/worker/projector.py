"""The ``projector`` role: ``datrix.events`` -> Postgres read models + audit chain per
partition, position in the same transaction."""

from __future__ import annotations

import logging
from typing import Any

from datrix.projections.projector import Projector
from datrix.projections.read_model import install
from datrix.projections.store import PostgresReadStore
from datrix.runtime.worker.common import (
    WorkerContext,
    _commit,
    _consume,
    _dead_letter,
    _last_offsets,
    _retrying,
    log,
)
from datrix.streams.dead_letters import DeadLetters
from datrix.streams.kafka import BadMessage, from_message
from datrix.streams.messages import Envelope


def run_projector(ctx: WorkerContext) -> None:
    from datrix.streams.progress import SummaryCache

    read_models = ctx.read_models

    def open_store() -> PostgresReadStore:
        opened = PostgresReadStore(ctx.database_url, ctx.schema)
        install(opened, read_models)  # a read model's own tables, before the first batch
        return opened

    store = _retrying(ctx, "read store", open_store)
    cache = SummaryCache(ctx.settings)
    consumer = ctx.consumer("projector")
    dead = DeadLetters(ctx.bootstrap, "projector")

    def on_assign(c: Any, partitions: list[Any]) -> None:
        from confluent_kafka import OFFSET_BEGINNING

        for tp in partitions:
            projector = Projector(
                store,
                name=f"read-models:{tp.partition}",
                chain=tp.partition,
                read_models=read_models,
            )
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
                    # to <prefix>events.dlq (logged there), then on past it
                    error = f"BadMessage: {exc}"
                    _dead_letter(ctx, dead, msg, error)
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
                projector = Projector(
                    store, name=f"read-models:{partition}", chain=partition, read_models=read_models
                )

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
