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
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

from eventsourcing.persistence import Tracking

from datrix.aggregates.common import AggregateSpec, Command, Event, Meta, Rejected
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
log = logging.getLogger("datrix.processor")


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    events: tuple[Envelope, ...] = ()
    reason: str | None = None
    # set when the command is not merely refused by its aggregate but cannot be handled
    # at all (not a command, a handler that raised, a conflict that never cleared): the
    # Kafka processor role sends its record to the dead-letter topic
    dead_letter: str | None = None


class HandlerError(Exception):
    """An aggregate's ``decide`` or ``evolve`` raised something other than ``Rejected``:
    a bug or a stored history it cannot fold. The command is recorded as rejected with
    this reason and dead-lettered; the processor moves on."""


def envelope_problem(env: Envelope) -> str | None:
    """Why a command envelope cannot be processed (a required attribute missing or
    malformed), or None. Never defaulted: a command without a tenant, actor or time is
    refused, not applied as someone else's."""
    if not env.type:
        return "the envelope has no type (ce_type)"
    if not env.tenant.strip():
        return "the envelope has no tenant"
    if not env.actor.strip():
        return "the envelope has no actor"
    if not env.correlation_id.strip():
        return "the envelope has no correlation id"
    if env.time.tzinfo is None or env.time.utcoffset() is None:
        return f"the envelope time {env.time.isoformat()} has no time zone"
    try:
        UUID(env.subject)
    except ValueError:
        return f"the envelope subject {env.subject!r} is not an aggregate id (a UUID)"
    return None


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
    spec: AggregateSpec, aggregate_id: UUID, history: Sequence[Envelope], table: TypeTable
) -> Any:
    """The state of one aggregate. A stream that holds another aggregate's events (an id
    that names a scan where a dataset is expected, or a command's outcome) is a domain
    rejection; an ``evolve`` that raises on the aggregate's own events is a HandlerError."""
    state: Any = None
    own = set(spec.events)
    for env in history:
        event = decode_event(env, table=table)
        if type(event) not in own:
            raise Rejected(
                f"{aggregate_id} is not a {spec.name}: it is the id of a "
                f"{type(event).__name__} stream"
            )
        try:
            state = spec.evolve(state, event)
        except Exception as exc:
            raise HandlerError(
                f"{spec.name} evolve failed on {type(event).__name__} of {aggregate_id}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    return state


def _report(envelope: Envelope, result: Result) -> None:
    """Log a refused command once, structured (the fields as ``extra``, for a JSON log
    formatter, and in the message for a plain one)."""
    if result.outcome != "rejected":
        return
    fields = {
        "command_id": str(envelope.id),
        "command_type": envelope.type,
        "tenant": envelope.tenant,
        "reason": result.reason,
        "dead_letter": result.dead_letter is not None,
    }
    level = logging.ERROR if result.dead_letter else logging.INFO
    log.log(level, "command rejected %s", fields, extra=fields)


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
        stream = (history or self.store.load)(aggregate_id)
        return _fold(spec, aggregate_id, stream, self.registry.table)

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
        try:
            return spec.decide(command, state, meta, related)
        except Rejected:
            raise
        except Exception as exc:
            raise HandlerError(
                f"{spec.name} decide raised on {type(command).__name__}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def _outcome_events(
        self, envelope: Envelope, history: Callable[[UUID], Sequence[Envelope]] | None
    ) -> tuple[Outcome, str | None, tuple[Envelope, ...], str | None]:
        meta = Meta(
            command_id=envelope.id,
            time=envelope.time,
            tenant=envelope.tenant,
            actor=envelope.actor,
        )
        outcome: Outcome = "applied"
        reason: str | None = None
        dead_letter: str | None = None
        table = self.registry.table
        try:
            problem = envelope_problem(envelope)
            if problem is not None:
                raise CodecError(problem)
            command = decode_command(envelope.data, table=table)
            named = table.names[type(command)]
            if named != envelope.type:
                raise CodecError(
                    f"the envelope type {envelope.type} does not match its payload, {named}"
                )
            decided = self.decide(command, meta, history)
            for event in decided:
                if event.originator_id == envelope.id:
                    raise Rejected(
                        f"command id {envelope.id} is also the id of the "
                        f"{type(event).__name__} stream it would create; "
                        "a command id must not name an aggregate"
                    )
            events = [*decided, self._accepted(envelope, meta)]
        except Rejected as exc:
            outcome, reason = "rejected", str(exc)
            events = [self._rejected(envelope, meta, reason)]
        except (CodecError, HandlerError) as exc:
            outcome, reason = "rejected", str(exc)
            dead_letter = f"{type(exc).__name__}: {exc}"
            events = [self._rejected(envelope, meta, reason)]
        return (
            outcome,
            reason,
            tuple(event_envelope(e, envelope, table) for e in events),
            dead_letter,
        )

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
            seen = history(env.id)
            if seen:
                results.append(self._seen(env, seen))
                continue
            outcome, reason, envelopes, dead = self._outcome_events(env, history)
            for new in envelopes:
                history(UUID(new.subject)).append(new)
            recorded.extend(envelopes)
            results.append(Result(outcome, envelopes, reason, dead))
        try:
            self.store.record(recorded, Tracking(tracking_name, todo[-1][0]))
        except IntegrityError:
            return [self.process(tracking_name, p, e) for p, e in todo]
        for (_, env), result in zip(todo, results, strict=True):
            _report(env, result)
        return results

    def process(self, tracking_name: str, position: int, envelope: Envelope) -> Result:
        tracking = Tracking(tracking_name, position)
        for attempt in range(self.MAX_CONFLICT_RETRIES):
            if self.store.has_tracking(tracking_name, position):
                return Result("duplicate")
            seen = self.store.load(envelope.id)
            if seen:
                # Same command id seen at another position: only move the position on.
                self._track_only(tracking)
                result = self._seen(envelope, seen)
                _report(envelope, result)
                return result
            outcome, reason, envelopes, dead = self._outcome_events(envelope, None)
            try:
                self.store.record(envelopes, tracking)
            except IntegrityError:
                # Either this position or this command id was recorded meanwhile, or
                # another writer took an aggregate version first: look again, decide anew.
                time.sleep(0.01 * 2**attempt)
                continue
            result = Result(outcome, envelopes, reason, dead)
            _report(envelope, result)
            return result
        # A conflict that never clears is not transient: record the refusal (or, if even
        # that conflicts, only the position) and move on; the worker dead-letters it.
        reason = f"command {envelope.id} kept conflicting with stored events"
        meta = Meta(envelope.id, envelope.time, envelope.tenant, envelope.actor)
        rejected: tuple[Envelope, ...] = (
            event_envelope(self._rejected(envelope, meta, reason), envelope, self.registry.table),
        )
        try:
            self.store.record(rejected, tracking)
        except IntegrityError:
            rejected = ()
            self._track_only(tracking)
        result = Result("rejected", rejected, reason, reason)
        _report(envelope, result)
        return result

    def refuse(
        self, tracking_name: str, position: int, reason: str, envelope: Envelope | None
    ) -> Result:
        """Move past a record that is no command at all (its envelope is broken): record
        a refusal under its id when ``envelope`` holds what can be read (id, tenant,
        time), else only the position. Nothing in it is ever applied."""
        tracking = Tracking(tracking_name, position)
        if self.store.has_tracking(tracking_name, position):
            return Result("duplicate")
        recorded: tuple[Envelope, ...] = ()
        if envelope is not None and not self.store.load(envelope.id):
            meta = Meta(envelope.id, envelope.time, envelope.tenant, envelope.actor)
            rejected = self._rejected(envelope, meta, reason)
            recorded = (event_envelope(rejected, envelope, self.registry.table),)
            try:
                self.store.record(recorded, tracking)
            except IntegrityError:
                recorded = ()
        if not recorded:
            self._track_only(tracking)
        result = Result("rejected", recorded, reason, reason)
        if envelope is not None:
            _report(envelope, result)
        return result

    def _seen(self, envelope: Envelope, stream: Sequence[Envelope]) -> Result:
        """A command whose id already has a stream: its own outcome (a duplicate), or an
        aggregate's (the id collides: refused, nothing recorded under its id)."""
        outcome_types = {self.registry.table.names[c] for c in (CommandAccepted, CommandRejected)}
        if stream[0].type in outcome_types:
            return Result("duplicate")
        reason = f"command id {envelope.id} is the id of an existing {stream[0].type} stream"
        return Result("rejected", (), reason, reason)

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
