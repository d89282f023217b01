"""An extension whose handlers raise on purpose (``DATRIX_EXTENSIONS=
tests.extensions.fragile``), for the poison tests of the Kafka roles
(tests/integration/test_poison_roles.py): the toy ticket aggregate and schemas, with

- a ``decide`` that raises (not ``Rejected``) for a ticket titled ``raise in decide…``;
- a read model (``fragile_tickets``) whose handler raises for ``raise in projection…``;
- a policy that raises for ``raise in policy…`` and, for a ticket closed with the
  reason ``follow up``, opens a follow-up ticket (``follow_up_id``).

Registered instead of the toy (the same command and event types), never beside it.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from typing import Any

from datrix.aggregates.common import Command, Event, Meta
from datrix.projections import migrations
from datrix.projections.read_model import ReadModel
from datrix.projections.store import Tx
from datrix.streams.messages import Envelope
from datrix.streams.registry import Policy, Reaction, Registry
from tests.extensions import toy

RAISE_IN_DECIDE = "raise in decide"
RAISE_IN_PROJECTION = "raise in projection"
RAISE_IN_POLICY = "raise in policy"
FOLLOW_UP = "follow up"


def follow_up_id(ticket_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(ticket_id, "follow-up")


def decide(
    command: Command, state: toy.Ticket | None, meta: Meta, related: Mapping[str, Any]
) -> list[Event]:
    if isinstance(command, toy.OpenTicket) and command.title.startswith(RAISE_IN_DECIDE):
        raise KeyError(f"decide cannot take {command.title!r}")  # a bug, not a refusal
    return toy.decide(command, state, meta, related)


AGGREGATE = dataclasses.replace(toy.AGGREGATE, decide=decide)


def react(event: toy.TicketOpened | toy.TicketClosed, envelope: Envelope) -> list[Reaction]:
    if isinstance(event, toy.TicketOpened) and event.title.startswith(RAISE_IN_POLICY):
        raise ValueError(f"the policy cannot take {event.title!r}")
    if isinstance(event, toy.TicketClosed) and event.reason == FOLLOW_UP:
        follow = follow_up_id(event.originator_id)
        return [Reaction(toy.OpenTicket(follow, f"follow-up of {event.originator_id}"), follow)]
    return []


POLICY = Policy(name="fragile", follows=(toy.TicketOpened, toy.TicketClosed), react=react)

_TABLE = """
CREATE TABLE IF NOT EXISTS fragile_tickets (
    id     TEXT PRIMARY KEY,
    title  TEXT,
    status TEXT NOT NULL
)"""


def _opened(tx: Tx, env: Envelope, event: toy.TicketOpened) -> str | None:
    if event.title.startswith(RAISE_IN_PROJECTION):
        raise ValueError(f"the read model cannot take {event.title!r}")
    tx.execute(
        "INSERT INTO fragile_tickets (id, title, status) VALUES (?, ?, 'open')",
        (env.subject, event.title),
    )
    return None


def _closed(tx: Tx, env: Envelope, event: toy.TicketClosed) -> str | None:
    tx.execute(
        "INSERT INTO fragile_tickets (id, status) VALUES (?, 'closed') "
        "ON CONFLICT (id) DO UPDATE SET status = 'closed'",
        (env.subject,),
    )
    return None


READ_MODEL = ReadModel(
    name="fragile-tickets",
    tables={"fragile_tickets": "id"},
    handlers={toy.TicketOpened: _opened, toy.TicketClosed: _closed},
    migrations=[migrations.Migration(1, "tickets", [_TABLE], lambda _schema: [_TABLE])],
)


def register(registry: Registry) -> None:
    registry.add_schemas(toy.SCHEMAS)
    registry.add_aggregate(AGGREGATE)
    registry.add_policy(POLICY)
    registry.add_read_model(READ_MODEL)
