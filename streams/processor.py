"""The command processor: load aggregates, decide, record events + tracking atomically.

One command is processed effectively once: its events and the tracking record of its log
position go into the event store in one transaction. On redelivery the tracking insert
fails, nothing is stored, and the command counts as a duplicate. A command an invariant
refuses is recorded as a ``CommandRejected`` event (in a stream keyed by the command id)
with the same tracking record, so callers can learn why.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar
from uuid import UUID

from eventsourcing.persistence import Tracking

from aggregates import dataset, scan
from aggregates.common import Command, Event, Meta, Rejected
from aggregates.rejection import CommandRejected
from streams.codec import CodecError
from streams.event_store import EventStore, IntegrityError
from streams.messages import Envelope, decode_command, decode_event, event_envelope

S = TypeVar("S")
Outcome = Literal["applied", "rejected", "duplicate"]


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    events: tuple[Envelope, ...] = ()
    reason: str | None = None


def _fold(evolve: Callable[[S | None, Event], S], history: Sequence[Envelope]) -> S | None:
    state: S | None = None
    for env in history:
        state = evolve(state, decode_event(env))
    return state


class CommandProcessor:
    """Stateless between commands: aggregates are loaded from the store each time."""

    MAX_CONFLICT_RETRIES = 5

    def __init__(self, store: EventStore) -> None:
        self.store = store

    def load_dataset(self, dataset_id: UUID) -> dataset.Dataset | None:
        return _fold(dataset.evolve, self.store.load(dataset_id))

    def load_scan(self, scan_id: UUID) -> scan.Scan | None:
        return _fold(scan.evolve, self.store.load(scan_id))

    def decide(self, command: Command, meta: Meta) -> list[Event]:
        if isinstance(
            command, dataset.RegisterDataset | dataset.AddDatasetVersion | dataset.DeleteDataset
        ):
            return dataset.decide(command, self.load_dataset(command.dataset_id), meta)
        if isinstance(command, scan.RequestScan):
            return scan.decide(
                command,
                self.load_scan(command.scan_id),
                meta,
                self.load_dataset(command.dataset_id),
            )
        if isinstance(command, scan.CompleteScan | scan.FailScan):
            return scan.decide(command, self.load_scan(command.scan_id), meta)
        raise Rejected(f"no handler for {type(command).__name__}")

    def process(self, tracking_name: str, position: int, envelope: Envelope) -> Result:
        tracking = Tracking(tracking_name, position)
        for _attempt in range(self.MAX_CONFLICT_RETRIES):
            if self.store.has_tracking(tracking_name, position):
                return Result("duplicate")
            outcome: Outcome = "applied"
            reason: str | None = None
            meta = Meta(command_id=envelope.id, time=envelope.time, tenant=envelope.tenant)
            try:
                command = decode_command(envelope.data)
                events = self.decide(command, meta)
            except (Rejected, CodecError) as exc:
                outcome, reason = "rejected", str(exc)
                events = [self._rejection(envelope, meta, reason)]
            envelopes = tuple(event_envelope(e, envelope) for e in events)
            try:
                self.store.record(envelopes, tracking)
            except IntegrityError:
                # Either this position was recorded meanwhile (redelivery) or another
                # writer took an aggregate version first: look again and decide anew.
                continue
            return Result(outcome, envelopes, reason)
        raise RuntimeError(f"command {envelope.id} kept conflicting; giving up for now")

    @staticmethod
    def _rejection(envelope: Envelope, meta: Meta, reason: str) -> CommandRejected:
        try:
            aggregate_id = UUID(envelope.subject)
        except ValueError:
            aggregate_id = uuid.UUID(int=0)
        return CommandRejected(
            originator_id=envelope.id,
            originator_version=1,
            timestamp=meta.time,
            tenant=meta.tenant,
            command_type=envelope.type,
            aggregate_id=aggregate_id,
            reason=reason,
        )
