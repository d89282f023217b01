"""The command processor: load aggregates, decide, record events + tracking atomically.

One command is processed effectively once: its events, its outcome (``CommandAccepted`` or
``CommandRejected`` with the reason, in a one-event stream keyed by the command id) and the
tracking record of its log position go into the event store in one transaction.
Redelivery of the same position fails the tracking insert; the same command id arriving at
another position fails the outcome stream's version-1 uniqueness. Either way nothing new is
stored and the command counts as a duplicate.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

from eventsourcing.persistence import Tracking

from datrix.aggregates.common import Command, Event, Meta, Rejected
from datrix.aggregates.outcome import CommandAccepted, CommandRejected
from datrix.streams.codec import CodecError
from datrix.streams.event_store import EventStore, IntegrityError
from datrix.streams.messages import (
    Envelope,
    TypeTable,
    decode_command,
    decode_event,
    event_envelope,
)
from datrix.streams.registry import Registry, core_registry

Outcome = Literal["applied", "rejected", "duplicate"]


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    events: tuple[Envelope, ...] = ()
    reason: str | None = None


def _aggregate_ids(envelope: Envelope, registry: Registry) -> list[UUID]:
    """Aggregates a command may load: its subject, and the others its aggregate declares
    it decides against (``loads``; those commands alone are decoded here)."""
    ids = []
    with contextlib.suppress(ValueError):
        ids.append(UUID(envelope.subject))
    cls = registry.table.types.get(envelope.type)
    spec = registry.aggregate_of(cls) if cls is not None else None
    if spec is not None and cls in spec.loads:
        try:
            command = decode_command(envelope.data, table=registry.table)
        except CodecError:
            return ids
        ids.extend(spec.related(command).values())
    return ids


def _fold(
    evolve: Callable[[Any, Event], Any], history: Sequence[Envelope], table: TypeTable
) -> Any:
    state: Any = None
    for env in history:
        state = evolve(state, decode_event(env, table=table))
    return state


class CommandProcessor:
    """Stateless between commands: aggregates are loaded from the store each time.
    Which aggregate decides a command, and what else it loads, is the registry's
    (``streams/registry.py``: each aggregate's ``AGGREGATE`` declaration)."""

    MAX_CONFLICT_RETRIES = 5

    def __init__(self, store: EventStore, registry: Registry | None = None) -> None:
        self.store = store
        self.registry = registry or core_registry()

    def load(
        self,
        aggregate: str,
        aggregate_id: UUID,
        history: Callable[[UUID], Sequence[Envelope]] | None = None,
    ) -> Any:
        """The state of one aggregate (by its registered name), folded from its events."""
        spec = self.registry.aggregate(aggregate)
        return _fold(spec.evolve, (history or self.store.load)(aggregate_id), self.registry.table)

    def decide(
        self,
        command: Command,
        meta: Meta,
        history: Callable[[UUID], Sequence[Envelope]] | None = None,
    ) -> list[Event]:
        spec = self.registry.aggregate_of(type(command))
        if spec is None:
            raise Rejected(f"no handler for {type(command).__name__}")
        state = self.load(spec.name, spec.aggregate_id(command), history)
        related = {
            name: self.load(name, other, history) for name, other in spec.related(command).items()
        }
        return spec.decide(command, state, meta, related)

    def _outcome_events(
        self, envelope: Envelope, history: Callable[[UUID], Sequence[Envelope]] | None
    ) -> tuple[Outcome, str | None, tuple[Envelope, ...]]:
        meta = Meta(
            command_id=envelope.id,
            time=envelope.time,
            tenant=envelope.tenant,
            actor=envelope.actor,
        )
        outcome: Outcome = "applied"
        reason: str | None = None
        try:
            command = decode_command(envelope.data, table=self.registry.table)
            events = [*self.decide(command, meta, history), self._accepted(envelope, meta)]
        except (Rejected, CodecError) as exc:
            outcome, reason = "rejected", str(exc)
            events = [self._rejected(envelope, meta, reason)]
        table = self.registry.table
        return outcome, reason, tuple(event_envelope(e, envelope, table) for e in events)

    def process_batch(
        self, tracking_name: str, batch: Sequence[tuple[int, Envelope]]
    ) -> list[Result]:
        """Process consecutive commands of one log partition in ONE transaction.

        Aggregates are loaded once for the batch (one query on Postgres) and kept up to
        date in memory as commands decide, so later commands see earlier ones' events.
        The events of the whole batch and the tracking record of its last position are
        recorded atomically; if anything conflicts (a concurrent writer, a duplicate id),
        the batch falls back to one command per transaction, which sorts it out.
        """
        done = self.store.position(tracking_name)
        todo = [(p, e) for p, e in batch if p > done]
        if not todo:
            return [Result("duplicate") for _ in batch]
        if len(todo) == 1:
            return [self.process(tracking_name, todo[0][0], todo[0][1])]
        ids: list[UUID] = []
        for _, env in todo:
            ids.append(env.id)
            for aggregate_id in _aggregate_ids(env, self.registry):
                ids.append(aggregate_id)
        histories = self.store.load_many(ids)

        def history(aggregate_id: UUID) -> list[Envelope]:
            return histories.setdefault(aggregate_id, [])

        results: list[Result] = []
        recorded: list[Envelope] = []
        for _, env in todo:
            if history(env.id):
                results.append(Result("duplicate"))
                continue
            outcome, reason, envelopes = self._outcome_events(env, history)
            for new in envelopes:
                history(UUID(new.subject)).append(new)
            recorded.extend(envelopes)
            results.append(Result(outcome, envelopes, reason))
        try:
            self.store.record(recorded, Tracking(tracking_name, todo[-1][0]))
        except IntegrityError:
            return [self.process(tracking_name, p, e) for p, e in todo]
        return results

    def process(self, tracking_name: str, position: int, envelope: Envelope) -> Result:
        tracking = Tracking(tracking_name, position)
        for _attempt in range(self.MAX_CONFLICT_RETRIES):
            if self.store.has_tracking(tracking_name, position):
                return Result("duplicate")
            if self.store.load(envelope.id):
                # Same command id seen at another position: only move the position on.
                self._track_only(tracking)
                return Result("duplicate")
            outcome, reason, envelopes = self._outcome_events(envelope, None)
            try:
                self.store.record(envelopes, tracking)
            except IntegrityError:
                # Either this position or this command id was recorded meanwhile, or
                # another writer took an aggregate version first: look again, decide anew.
                continue
            return Result(outcome, envelopes, reason)
        raise RuntimeError(f"command {envelope.id} kept conflicting; giving up for now")

    def _track_only(self, tracking: Tracking) -> None:
        with contextlib.suppress(IntegrityError):  # someone else moved it on already
            self.store.recorder.insert_tracking(tracking)

    @staticmethod
    def _aggregate_id(envelope: Envelope) -> UUID:
        try:
            return UUID(envelope.subject)
        except ValueError:
            return uuid.UUID(int=0)

    def _accepted(self, envelope: Envelope, meta: Meta) -> CommandAccepted:
        return CommandAccepted(**self._outcome_fields(envelope, meta))

    def _rejected(self, envelope: Envelope, meta: Meta, reason: str) -> CommandRejected:
        return CommandRejected(**self._outcome_fields(envelope, meta), reason=reason)

    def _outcome_fields(self, envelope: Envelope, meta: Meta) -> dict[str, Any]:
        return {
            "originator_id": envelope.id,
            "originator_version": 1,
            "timestamp": meta.time,
            "tenant": meta.tenant,
            "command_type": envelope.type,
            "aggregate_id": self._aggregate_id(envelope),
        }
