"""A toy extension, registered from this test module only (``DATRIX_EXTENSIONS=
tests.extensions.toy``): a ticket aggregate with two commands and two events, its own Avro
schemas (``avro/``), and a policy that closes low-priority tickets as they open.

Nothing outside tests/ names it: the registry, the processor, both runtimes and the
projector handle it from this registration alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from uuid import UUID

from datrix.aggregates.common import AggregateSpec, Command, Event, Meta, Rejected, next_version
from datrix.streams.messages import Envelope
from datrix.streams.registry import Policy, Reaction, Registry

NAMESPACE = "toy.ticket"
SCHEMAS = Path(__file__).resolve().parent / "avro"
AUTO_CLOSE_REASON = "auto-closed: low priority"


# ---- commands -------------------------------------------------------------------------
@dataclass(frozen=True)
class OpenTicket(Command):
    ticket_id: UUID
    title: str
    priority: str = "normal"


@dataclass(frozen=True)
class CloseTicket(Command):
    ticket_id: UUID
    reason: str


# ---- events ---------------------------------------------------------------------------
class TicketOpened(Event):
    tenant: str
    title: str
    priority: str


class TicketClosed(Event):
    reason: str


# ---- the decider ----------------------------------------------------------------------
@dataclass(frozen=True)
class Ticket:
    id: UUID
    version: int
    tenant: str
    closed: bool = False


def decide(
    command: Command, state: Ticket | None, meta: Meta, _related: Mapping[str, Any]
) -> list[Event]:
    if isinstance(command, OpenTicket):
        if state is not None:
            raise Rejected(f"ticket {command.ticket_id} is already open")
        if not command.title.strip():
            raise Rejected("a ticket needs a title")
        return [
            TicketOpened(
                originator_id=command.ticket_id,
                originator_version=1,
                timestamp=meta.time,
                tenant=meta.tenant,
                title=command.title,
                priority=command.priority,
            )
        ]
    if isinstance(command, CloseTicket):
        if state is None or state.tenant != meta.tenant:
            raise Rejected(f"ticket {command.ticket_id} was never opened")
        if state.closed:
            raise Rejected(f"ticket {state.id} is already closed")
        return [
            TicketClosed(
                originator_id=state.id,
                originator_version=next_version(state.version),
                timestamp=meta.time,
                reason=command.reason,
            )
        ]
    raise Rejected(f"the ticket aggregate does not handle {type(command).__name__}")


def evolve(state: Ticket | None, event: Event) -> Ticket:
    if isinstance(event, TicketOpened):
        return Ticket(id=event.originator_id, version=1, tenant=event.tenant)
    if state is None:
        raise ValueError(f"{type(event).__name__} before TicketOpened")
    if isinstance(event, TicketClosed):
        return replace(state, version=event.originator_version, closed=True)
    raise ValueError(f"the ticket aggregate does not apply {type(event).__name__}")


AGGREGATE = AggregateSpec(
    name="ticket",
    namespace=NAMESPACE,
    commands=(OpenTicket, CloseTicket),
    events=(TicketOpened, TicketClosed),
    id_field="ticket_id",
    decide=decide,
    evolve=evolve,
)


# ---- the policy -----------------------------------------------------------------------
def triage(event: TicketOpened, envelope: Envelope) -> list[Reaction]:
    """A low-priority ticket is closed as soon as it opens."""
    if event.priority != "low":
        return []
    close = CloseTicket(ticket_id=event.originator_id, reason=AUTO_CLOSE_REASON)
    return [Reaction(close, event.originator_id)]


TRIAGE = Policy(name="ticket-triage", follows=(TicketOpened,), react=triage)


def register(registry: Registry) -> None:
    registry.add_schemas(SCHEMAS)
    registry.add_aggregate(AGGREGATE)
    registry.add_policy(TRIAGE)
