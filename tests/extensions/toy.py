"""A toy extension, registered from this test module only (``DATRIX_EXTENSIONS=
tests.extensions.toy``): a ticket aggregate with two commands and two events, its own Avro
schemas (``avro/``), a policy that closes low-priority tickets as they open, and a read
model (``toy_tickets``, its own migration) that the projector keeps and replay rebuilds.

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
from datrix.projections import migrations
from datrix.projections.read_model import ReadModel
from datrix.projections.store import Tx
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


# ---- the read model -------------------------------------------------------------------
_TICKETS = """
CREATE TABLE IF NOT EXISTS toy_tickets (
    id       TEXT PRIMARY KEY,
    tenant   TEXT NOT NULL,
    title    TEXT NOT NULL,
    priority TEXT NOT NULL,
    status   TEXT NOT NULL,
    reason   TEXT
)"""


def _opened(tx: Tx, env: Envelope, event: TicketOpened) -> str | None:
    tx.execute(
        "INSERT INTO toy_tickets (id, tenant, title, priority, status) VALUES (?, ?, ?, ?, 'open')",
        (env.subject, env.tenant, event.title, event.priority),
    )
    return None


def _closed(tx: Tx, env: Envelope, event: TicketClosed) -> str | None:
    tx.execute(
        "UPDATE toy_tickets SET status = 'closed', reason = ? WHERE id = ?",
        (event.reason, env.subject),
    )
    return None


TICKETS = ReadModel(
    name="toy-tickets",
    tables={"toy_tickets": "id"},
    handlers={TicketOpened: _opened, TicketClosed: _closed},
    migrations=[
        migrations.Migration(
            1,
            "tickets",
            [_TICKETS],
            lambda _schema: [_TICKETS, *migrations.tenant_isolation("toy_tickets")],
        )
    ],
)


def register(registry: Registry) -> None:
    registry.add_schemas(SCHEMAS)
    registry.add_aggregate(AGGREGATE)
    registry.add_policy(TRIAGE)
    registry.add_read_model(TICKETS)
