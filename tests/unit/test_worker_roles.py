"""``datrix worker`` with no ``--roles`` runs every role of ``runtime/worker``'s ROLES: its
default was once a copy of the list that lacked the stream monitor, so a newcomer's
streams never closed a window."""

from __future__ import annotations

import click

from datrix.gateway.cli import cli
from datrix.runtime.worker import ROLES


def test_the_worker_runs_every_role_by_default() -> None:
    command = cli.commands["worker"]
    [option] = [p for p in command.params if p.name == "roles"]
    with click.Context(command) as ctx:
        default = option.get_default(ctx)
    assert default == ",".join(ROLES)
    assert "monitor" in str(default).split(",")
