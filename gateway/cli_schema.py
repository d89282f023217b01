"""``datrix datasets contract NAME --freeze|--unfreeze``: the schema contract of a dataset
(``gateway/contracts.py``).

``datrix datasets`` was a command (it lists the datasets); ``datasets_group`` turns it into
a group that still lists when given no subcommand (``datrix datasets [--format json]``) and
has ``contract`` under it. ``gateway/cli.py`` registers it in place of the command."""

from __future__ import annotations

import json
from typing import Any

import click

from datrix.gateway import render


@click.command("contract")
@click.argument("dataset")
@click.option(
    "--freeze/--unfreeze",
    "frozen",
    default=None,
    help="Freeze the schema of the latest version, or end the contract.",
)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def contract(dataset: str, frozen: bool | None, fmt: str) -> None:
    """Freeze (--freeze) or unfreeze (--unfreeze) the schema contract of DATASET (name, id
    or unique id prefix). While frozen, a scan of any later version compares its schema
    with the frozen version's: any column added, removed, renamed, retyped, newly
    nullable or with a changed value set is a critical schema_change issue."""
    from datrix.gateway.cli import out, runtime
    from datrix.gateway.contracts import set_contract

    if frozen is None:
        raise click.UsageError("say --freeze or --unfreeze")
    done = set_contract(runtime(), dataset, frozen)
    if fmt == "json":
        click.echo(json.dumps(done))
        return
    name = render.printable(str(done["name"]))
    if frozen:
        out.print(
            f"schema contract of {name!r} frozen as of version {done['version']}: any schema "
            "change in a later version is a critical schema_change issue",
            markup=False,
            highlight=False,
        )
    else:
        out.print(f"schema contract of {name!r} unfrozen", markup=False, highlight=False)


def datasets_group(listing: click.Command) -> click.Group:
    """``listing`` (the ``datasets`` command) as a group: without a subcommand it lists
    as before, with the same options; ``contract`` is its subcommand."""

    @click.pass_context
    def callback(ctx: click.Context, /, **options: Any) -> None:
        if ctx.invoked_subcommand is None and listing.callback is not None:
            ctx.invoke(listing.callback, **options)

    group = click.Group(
        name="datasets",
        params=list(listing.params),
        callback=callback,
        invoke_without_command=True,
        help=(listing.help or "") + "\n\nWith a subcommand: see 'datasets contract -h'.",
    )
    group.add_command(contract)
    return group
