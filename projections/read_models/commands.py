"""Read model ``commands``: ``command_status``, each command's acceptance or rejection."""

from __future__ import annotations

from datrix.aggregates.outcome import CommandAccepted, CommandRejected
from datrix.projections.read_model import ReadModel
from datrix.projections.store import Tx
from datrix.streams.messages import Envelope


def _outcome(tx: Tx, env: Envelope, event: CommandAccepted | CommandRejected) -> str | None:
    rejected = isinstance(event, CommandRejected)
    tx.execute(
        "INSERT INTO command_status (command_id, tenant, command_type, status, reason, "
        "aggregate_id, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            env.subject,
            env.tenant,
            event.command_type,
            "rejected" if rejected else "accepted",
            event.reason if isinstance(event, CommandRejected) else None,
            str(event.aggregate_id),
            env.time.isoformat(),
        ),
    )
    return None


READ_MODEL = ReadModel(
    name="commands",
    tables={"command_status": "command_id"},
    handlers={CommandAccepted: _outcome, CommandRejected: _outcome},
)
