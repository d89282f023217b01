"""What every aggregate shares: the rejection error, the event base class and the
declaration of an aggregate (``AggregateSpec``).

Aggregates are deciders: ``decide(command, state) -> events`` and
``evolve(state, event) -> state``, pure functions with no I/O, clock or randomness. Events
are ``eventsourcing`` domain events (frozen dataclasses carrying originator id, version and
timestamp) so the library's recorders store them with optimistic concurrency; their
timestamp is the command's time, handed in by the caller, never read from a clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, dataclass_transform
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


def check_follows(current: int, event: Event) -> None:
    """``evolve``'s guard: ``event`` must be the next event of a stream at ``current``."""
    if event.originator_version != current + 1:
        raise ValueError(f"event version {event.originator_version} does not follow {current}")


def avro_names(
    namespace: str, classes: Sequence[type], namespaces: Mapping[type, str] | None = None
) -> dict[str, type]:
    """Avro full name -> class: ``<namespace>.<ClassName>``, or the class's own namespace
    from ``namespaces`` (``JobRequested`` lives in ``datrix.job``)."""
    overrides = namespaces or {}
    return {f"{overrides.get(cls, namespace)}.{cls.__name__}": cls for cls in classes}


@dataclass(frozen=True)
class AggregateSpec:
    """One aggregate, declared once by its module (``AGGREGATE = AggregateSpec(...)``).

    The command processor, the type table of the codec and the Kafka routing read these
    declarations; nothing outside the aggregate's module names its command types.

    - ``name``: how other aggregates' declarations refer to it (``loads``).
    - ``namespace``: the Avro namespace of its commands and events (``datrix.scan``);
      ``namespaces`` overrides it per class.
    - ``id_field``: the command field holding the id of the aggregate a command decides
      on (every command of the aggregate has it).
    - ``loads``: per command type, the other aggregates it decides against, as
      ``{aggregate name: command field holding that aggregate's id}``; their states reach
      ``decide`` by name.
    - ``routing``: per command type, the command field whose id is its Kafka key when not
      the command's subject (a scan request is keyed by its dataset, so it never overtakes
      the registration it needs).
    - ``decide(command, state, meta, related) -> events`` and ``evolve(state, event)``.
    """

    name: str
    namespace: str
    commands: tuple[type[Command], ...]
    events: tuple[type[Event], ...]
    id_field: str
    decide: Callable[[Command, Any, Meta, Mapping[str, Any]], list[Event]]
    evolve: Callable[[Any, Event], Any]
    loads: Mapping[type[Command], Mapping[str, str]] = field(default_factory=dict)
    routing: Mapping[type[Command], str] = field(default_factory=dict)
    namespaces: Mapping[type, str] = field(default_factory=dict)

    def avro_names(self) -> dict[str, type]:
        return avro_names(self.namespace, (*self.commands, *self.events), self.namespaces)

    def aggregate_id(self, command: Command) -> UUID:
        value = getattr(command, self.id_field)
        assert isinstance(value, UUID)
        return value

    def related(self, command: Command) -> dict[str, UUID]:
        """The ids of the other aggregates ``command`` decides against, by aggregate name."""
        fields = self.loads.get(type(command), {})
        return {name: getattr(command, f) for name, f in fields.items()}

    def routing_id(self, command: Command) -> UUID | None:
        name = self.routing.get(type(command))
        return None if name is None else getattr(command, name)
