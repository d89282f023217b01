"""What every aggregate shares: the rejection error and the event base class.

Aggregates are deciders: ``decide(command, state) -> events`` and
``evolve(state, event) -> state``, pure functions with no I/O, clock or randomness. Events
are ``eventsourcing`` domain events (frozen dataclasses carrying originator id, version and
timestamp) so the library's recorders store them with optimistic concurrency; their
timestamp is the command's time, handed in by the caller, never read from a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import dataclass_transform
from uuid import UUID

from eventsourcing.domain import DomainEvent


class Rejected(Exception):
    """A command an invariant refuses. The reason is recorded and shown to the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass_transform(frozen_default=True)
class Event(DomainEvent):
    """Base of all Datrix domain events (a frozen dataclass via eventsourcing's metaclass;
    ``dataclass_transform`` tells type checkers so)."""


@dataclass(frozen=True)
class Command:
    """Base of all commands: plain data, validated at the edge."""


@dataclass(frozen=True)
class Meta:
    """Facts about the command being decided that the decider may copy into events."""

    command_id: UUID
    time: datetime
    tenant: str
    actor: str = ""  # who sent the command (the envelope's actor, stamped at the edge)


def next_version(current: int | None) -> int:
    return 1 if current is None else current + 1
