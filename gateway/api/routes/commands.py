"""``/v1/commands/{id}``: what became of a command."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request

from datrix.gateway import services
from datrix.gateway.api.deps import CommandReader, Submissions
from datrix.gateway.api.models import CommandOutcome
from datrix.gateway.api.problems import ApiProblem

router = APIRouter(tags=["commands"])


@router.get("/v1/commands/{command_id}", response_model=CommandOutcome)
def get_command(request: Request, caller: CommandReader, command_id: str) -> CommandOutcome:
    """What became of a command: accepted, or rejected with the reason."""
    found = services.command_status(caller.runtime, command_id)
    if found is None:
        submissions: Submissions = request.app.state.submissions
        if submissions.has_command(caller.key.tenant, command_id):
            return CommandOutcome(id=command_id, status="queued", reason=None)
        raise ApiProblem(404, f"no command {command_id}")
    status: Literal["accepted", "rejected"] = (
        "accepted" if found.status == "accepted" else "rejected"
    )
    return CommandOutcome(id=found.command_id, status=status, reason=found.reason)
