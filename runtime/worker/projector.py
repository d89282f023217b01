"""The ``projector`` role: ``datrix.events`` -> Postgres read models + audit chain per
partition, position in the same transaction."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from datrix.aggregates.audit import RecordAuditCheckpoint, audit_chain_id, checkpoint_command_id
from datrix.projections import audit
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
from datrix.streams.kafka import BadMessage, KafkaCommandLog, from_message
from datrix.streams.messages import Envelope, command_envelope


class Anchor:
    """Checkpoints the audit chains this projector appends to (``projections/audit.py``):
    a chain more than ``DATRIX_AUDIT_CHECKPOINT_EVERY`` entries past its last checkpoint
    after a batch, and every chain with anything new at shutdown. Without
    ``DATRIX_AUDIT_KEY`` it does nothing and says so once."""

    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.key = audit.anchor_key(ctx.settings)
        self.commands = KafkaCommandLog(ctx.settings, ctx.topics) if self.key else None
        self.chains: set[int] = set()
        if self.key is None:
            log.warning(
                "projector: audit anchoring is off (DATRIX_AUDIT_KEY is unset): the audit "
                "chains are checked against the event log only; datrix audit verify says "
                "'not anchored'"
            )

    def after_batch(self, store: PostgresReadStore, chain: int) -> None:
        self.chains.add(chain)
        self._checkpoint(store, chain, self.ctx.settings.audit_checkpoint_every)

    def at_shutdown(self, store: PostgresReadStore) -> None:
        import psycopg

        for chain in sorted(self.chains):
            try:
                self._checkpoint(store, chain, audit.CHECKPOINT_FOOTPRINT)
            except (psycopg.Error, OSError) as exc:
                log.error("projector: no audit checkpoint of chain %s at shutdown: %s", chain, exc)

    def _checkpoint(self, store: PostgresReadStore, chain: int, slack: int) -> None:
        if self.key is None or self.commands is None:
            return
        try:
            due = audit.checkpoint_due(store.query, chain, slack)
        except audit.AnchorMismatch as exc:
            log.error("projector: %s", exc)
            return
        if due is None:
            return
        seq, digest = due
        command = RecordAuditCheckpoint(
            audit_chain_id(chain),
            chain,
            seq,
            digest,
            audit.key_id(self.key),
            audit.sign(self.key, chain, seq, digest),
        )
        self.commands.append(
            command_envelope(
                command,
                subject=command.chain_id,
                tenant=self.ctx.settings.tenant,
                actor=audit.ANCHOR_ACTOR,
                time=datetime.now(UTC),
                command_id=checkpoint_command_id(chain, seq, digest),
            )
        )
        if not self.ctx.stop.is_set():
            _retrying(self.ctx, "sending an audit checkpoint", self.commands.flush)
            return
        try:  # shutting down: one try (_retrying gives up once the worker stops)
            self.commands.flush()
        except RuntimeError as exc:
            log.error("projector: audit checkpoint at shutdown not confirmed: %s", exc)


def run_projector(ctx: WorkerContext) -> None:
    from datrix.streams.progress import SummaryCache

    read_models = ctx.read_models

    def open_store() -> PostgresReadStore:
        opened = PostgresReadStore(ctx.database_url, ctx.schema)
        install(opened, read_models)  # a read model's own tables, before the first batch
        return opened

    store = _retrying(ctx, "read store", open_store)
    cache = SummaryCache(ctx.settings)
    anchor = Anchor(ctx)
    consumer = ctx.consumer("projector")
    dead = DeadLetters(ctx.settings, "projector")

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
            records: dict[tuple[int, int], Any] = {}  # (partition, position) -> its record
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
                records[(msg.partition(), position)] = msg
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
                for failed in projector.failures:
                    # audited, read models untouched: to <prefix>events.dlq (logged there)
                    _dead_letter(
                        ctx,
                        dead,
                        records[(partition, failed.position)],
                        f"not projected: {failed.error}",
                    )
                log.debug(
                    "projector: partition %s offsets ..%s (%s events) applied %s",
                    partition,
                    offsets[partition],
                    len(batch),
                    applied,
                )
                cache.invalidate(env for _, env in batch)
                if applied:
                    anchor.after_batch(store, partition)
            _commit(consumer, messages)
    finally:
        try:
            anchor.at_shutdown(store)
        finally:
            consumer.close()
