"""The outcome of each command, in a one-event stream keyed by the command id.

Every processed command records exactly one outcome: ``CommandAccepted`` beside the events
it caused, or ``CommandRejected`` with the reason an invariant gave. Because the stream is
keyed by the command id and holds version 1 only, the event store's uniqueness constraint
refuses a second processing of the same command id, however it was redelivered (a
resubmitted Idempotency-Key, a producer retry, a Kafka redelivery at another offset).
"""

from __future__ import annotations

from uuid import UUID

from datrix.aggregates.common import Event


class CommandAccepted(Event):
    tenant: str
    command_type: str
    aggregate_id: UUID


class CommandRejected(Event):
    tenant: str
    command_type: str
    aggregate_id: UUID
    reason: str


NAMESPACE = "datrix.command"
EVENTS: tuple[type[Event], ...] = (CommandAccepted, CommandRejected)
