"""The record of a refused command, kept in its own one-event stream per command id."""

from __future__ import annotations

from uuid import UUID

from aggregates.common import Event


class CommandRejected(Event):
    tenant: str
    command_type: str
    aggregate_id: UUID
    reason: str
