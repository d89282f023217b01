"""``datrix connectors add-file|add-postgres|list|status|pause|resume|restart|delete``:
Kafka Connect source connectors that bring data onto topics (issue 13 item 1), through
Connect's REST API at ``DATRIX_CONNECT_URL`` (``deploy/local/up connect`` prints it).

The configs are ``connectors/configs.py``, the REST client ``connectors/client.py``; this
parses options and renders. Errors are one line: a bad argument, an invalid config or an
unknown connector exit 2; Connect not reachable (or failing) exits 1. Registered on the
``datrix`` group by one line at the end of ``gateway/cli.py``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
from rich.console import Console
from rich.table import Table

from datrix.connectors.client import (
    ConnectClient,
    ConnectError,
    ConnectorNotFound,
    ConnectorStatus,
    ConnectUnreachable,
)
from datrix.connectors.configs import (
    DEFAULT_HEARTBEAT_MS,
    FILE_FORMATS,
    POSTGRES_CLASS,
    SNAPSHOT_MODES,
    ConfigError,
    Connector,
    file_source,
    postgres_source,
    redacted,
)
from datrix.gateway import render
from datrix.gateway.errors import DatrixError, NotFound, UserInputError
from datrix.streams.settings import Settings, load_settings

OUTPUT = click.Choice(["table", "json"])
# The local stack's CDC role and source database (deploy/postgres-cdc.sql).
CDC_ROLE = "datrix_cdc"
CDC_DATABASE = "datrix_sources"

out = Console(emoji=False)
if not out.is_terminal:
    out = Console(width=120, emoji=False)


@contextmanager
def _errors() -> Iterator[None]:
    """Connect's and the configs' errors as the CLI's one-line errors."""
    try:
        yield
    except ConfigError as exc:
        raise UserInputError(str(exc)) from None
    except ConnectorNotFound as exc:
        raise NotFound(str(exc)) from None
    except ConnectUnreachable as exc:
        raise DatrixError(str(exc)) from None
    except ConnectError as exc:
        if exc.status in (400, 409):  # an invalid config, a name taken: the arguments
            raise UserInputError(str(exc)) from None
        raise DatrixError(str(exc)) from None


def _settings() -> Settings:
    return load_settings()


@contextmanager
def _client(settings: Settings) -> Iterator[ConnectClient]:
    if settings.connect_url is None:
        raise UserInputError(
            "DATRIX_CONNECT_URL is not set: the Kafka Connect REST API, e.g. "
            'http://127.0.0.1:18083 (eval "$(deploy/local/up connect)" starts and exports it)'
        )
    with ConnectClient(settings.connect_url, timeout=60.0) as client, _errors():
        yield client


def _dump(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")


def _status_doc(status: ConnectorStatus) -> dict[str, Any]:
    return {
        "name": status.name,
        "type": status.type,
        "state": status.state,
        "worker_id": status.worker_id,
        "tasks": [
            {"id": t.id, "state": t.state, "worker_id": t.worker_id, "failure": t.failure}
            for t in status.tasks
        ],
        "failure": status.failure,
    }


def _tasks(status: ConnectorStatus) -> str:
    return ", ".join(f"{t.id} {t.state}" for t in status.tasks) or "-"


def _create(client: ConnectClient, connector: Connector, wait: float) -> None:
    client.create(connector)
    if wait <= 0:
        out.print(f"connector {render.safe(connector.name)} created")
        return
    try:
        status = client.wait(connector.name, lambda s: s.running, wait)
    except ConnectError as exc:
        hint = ""
        if "create filtered publication" in str(exc):
            hint = (
                " (Debezium creates the publication only as the table's owner: have the owner "
                "CREATE PUBLICATION name FOR TABLE table, then --existing-publication "
                "--publication name)"
            )
        raise ConnectError(
            f"{exc}{hint}; the connector is kept: datrix connectors delete {connector.name}",
            exc.status,
        ) from None
    out.print(f"connector {render.safe(connector.name)} created: {_tasks_line(status)}")


def _tasks_line(status: ConnectorStatus) -> str:
    return f"{status.state} ({len(status.tasks)} task{'s' if len(status.tasks) != 1 else ''})"


def _default_dsn(settings: Settings) -> str:
    """The local stack's CDC role on the server of DATRIX_DATABASE_URL, database
    datrix_sources."""
    if settings.database_url is None:
        raise UserInputError(
            "give --dsn postgresql://user:password@host:port/database (the database whose "
            "table Debezium captures); without it the default needs DATRIX_DATABASE_URL"
        )
    parts = urlsplit(settings.database_url)
    host = parts.hostname or "127.0.0.1"
    return f"postgresql://{CDC_ROLE}:{CDC_ROLE}@{host}:{parts.port or 5432}/{CDC_DATABASE}"


WAIT = click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="Wait until the connector and its task run (0: do not wait).",
)
PARTITIONS = click.option(
    "--partitions",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Partitions of the topic the connector creates (when it does not exist).",
)


@click.group()
def connectors() -> None:
    """Kafka Connect source connectors (DATRIX_CONNECT_URL): a JSON-lines or CSV file, or
    a PostgreSQL table through Debezium (CDC), onto a Kafka topic."""


@connectors.command("add-file")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--topic", required=True, help="The topic every line of the file goes to.")
@click.option("--name", help="The connector's name (default: file-TOPIC).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FILE_FORMATS),
    help="jsonl or csv (default: from the file's suffix).",
)
@PARTITIONS
@WAIT
def add_file(
    path: Path, topic: str, name: str | None, fmt: str | None, partitions: int, wait: float
) -> None:
    """Stream the lines of PATH (JSON lines or CSV), and those appended later, to a topic:
    one record per line, the line as it is. The Connect worker reads PATH itself (the
    local stack's runs on this machine)."""
    settings = _settings()
    with _errors():
        connector = file_source(
            path,
            topic,
            name=name,
            fmt=fmt,
            partitions=partitions,
            reserved_prefix=settings.topic_prefix,
        )
    with _client(settings) as client:
        _create(client, connector, wait)


@connectors.command("add-postgres")
@click.argument("table")
@click.option(
    "--topic-prefix",
    required=True,
    help="Debezium's topic.prefix: the table's changes go to PREFIX.SCHEMA.TABLE.",
)
@click.option(
    "--dsn",
    help="postgresql://user:password@host:port/database as the Connect worker reaches it "
    "(default: the local stack's datrix_cdc role, database datrix_sources, on the server "
    "of DATRIX_DATABASE_URL). The role needs REPLICATION and SELECT on the table.",
)
@click.option("--name", help="The connector's name (default: pg-PREFIX).")
@click.option("--slot", help="Replication slot (default: datrix_ + the name).")
@click.option("--publication", help="Publication (default: datrix_ + the name).")
@click.option(
    "--create-publication/--existing-publication",
    default=True,
    show_default=True,
    help="Debezium creates the publication for TABLE (the DSN's role must own it), or uses "
    "one the table's owner made (CREATE PUBLICATION p FOR TABLE t).",
)
@click.option(
    "--snapshot",
    type=click.Choice(SNAPSHOT_MODES),
    default="initial",
    show_default=True,
    help="initial: the table's rows first, then its changes; no_data: changes only.",
)
@click.option(
    "--heartbeat-ms",
    type=click.IntRange(min=1),
    default=DEFAULT_HEARTBEAT_MS,
    show_default=True,
    help="Heartbeat interval: the slot's position moves on while TABLE is quiet.",
)
@click.option(
    "--heartbeat-query",
    help="SQL Debezium runs on each heartbeat (a write in the captured database, so the "
    "slot advances when only other databases change).",
)
@click.option(
    "--no-schemas",
    is_flag=True,
    help="JSON records without Connect's schema/payload envelope.",
)
@PARTITIONS
@WAIT
def add_postgres(
    table: str,
    topic_prefix: str,
    dsn: str | None,
    name: str | None,
    slot: str | None,
    publication: str | None,
    create_publication: bool,
    snapshot: str,
    heartbeat_ms: int,
    heartbeat_query: str | None,
    no_schemas: bool,
    partitions: int,
    wait: float,
) -> None:
    """Capture TABLE ([schema.]table) of a PostgreSQL database with Debezium: its rows
    (snapshot) and every insert, update and delete, as Debezium change events (before,
    after, op, source) on PREFIX.SCHEMA.TABLE."""
    settings = _settings()
    with _errors():
        connector = postgres_source(
            table,
            topic_prefix,
            dsn if dsn is not None else _default_dsn(settings),
            name=name,
            slot=slot,
            publication=publication,
            create_publication=create_publication,
            snapshot=snapshot,
            heartbeat_ms=heartbeat_ms,
            heartbeat_query=heartbeat_query,
            partitions=partitions,
            schemas=not no_schemas,
            reserved_prefix=settings.topic_prefix,
        )
    with _client(settings) as client:
        _create(client, connector, wait)
    schema, _, tab = table.rpartition(".")
    topic = f"{topic_prefix}.{schema or 'public'}.{tab}"
    out.print(f"changes go to topic {render.safe(topic)}")


@connectors.command("list")
@click.option("--format", "fmt", type=OUTPUT, default="table")
def list_(fmt: str) -> None:
    """The connectors and their state."""
    with _client(_settings()) as client:
        found = client.connectors()
    if fmt == "json":
        _dump([_status_doc(s) for s in found])
        return
    if not found:
        out.print("no connectors")
        return
    table = Table(title="Connectors", show_edge=False)
    for col in ("name", "type", "state", "tasks", "failure"):
        table.add_column(col, overflow="fold")
    for s in found:
        table.add_row(
            render.safe(s.name),
            render.safe(s.type or "-"),
            render.safe(s.state),
            render.safe(_tasks(s)),
            render.safe(s.failure or "-"),
        )
    out.print(table)


@connectors.command("status")
@click.argument("name")
@click.option("--format", "fmt", type=OUTPUT, default="table")
def status(name: str, fmt: str) -> None:
    """A connector's state, its tasks' and its config (passwords masked)."""
    with _client(_settings()) as client:
        found = client.status(name)
        config = redacted(client.config(name))
    if fmt == "json":
        _dump({**_status_doc(found), "config": config})
        return
    out.print(
        f"[bold]{render.safe(found.name)}[/] {render.safe(found.type or '-')} "
        f"{render.safe(found.state)} on {render.safe(found.worker_id or '-')}"
    )
    for t in found.tasks:
        line = f"task {t.id}: {render.safe(t.state)}"
        out.print(line + (f" - {render.safe(t.failure)}" if t.failure else ""))
    if found.failure and not any(t.failure for t in found.tasks):
        out.print(f"failure: {render.safe(found.failure)}")
    for key in sorted(config):
        out.print(f"  {render.safe(key)} = {render.safe(config[key])}")


@connectors.command("pause")
@click.argument("name")
def pause(name: str) -> None:
    """Pause a connector (its tasks stop reading; the position is kept)."""
    with _client(_settings()) as client:
        client.status(name)  # 404 as one line for an unknown name
        client.pause(name)
    out.print(f"connector {render.safe(name)} paused")


@connectors.command("resume")
@click.argument("name")
def resume(name: str) -> None:
    """Resume a paused connector."""
    with _client(_settings()) as client:
        client.status(name)
        client.resume(name)
    out.print(f"connector {render.safe(name)} resumed")


@connectors.command("restart")
@click.argument("name")
@click.option("--failed-only", is_flag=True, help="Restart only what failed.")
def restart(name: str, failed_only: bool) -> None:
    """Restart a connector and its tasks (after fixing what made them fail)."""
    with _client(_settings()) as client:
        client.restart(name, include_tasks=True, only_failed=failed_only)
    out.print(f"connector {render.safe(name)} restarting")


@connectors.command("delete")
@click.argument("name")
def delete(name: str) -> None:
    """Delete a connector. A Debezium connector's replication slot is kept (it holds WAL,
    up to the server's max_slot_wal_keep_size): the command says how to drop it."""
    with _client(_settings()) as client:
        config = client.config(name)
        client.delete(name)
    out.print(f"connector {render.safe(name)} deleted")
    if config.get("connector.class") == POSTGRES_CLASS and config.get("slot.name"):
        slot = config["slot.name"]
        where = (
            f"{config.get('database.hostname')}:{config.get('database.port')}"
            f"/{config.get('database.dbname')}"
        )
        sys.stderr.write(
            f"datrix: replication slot {render.printable(slot)} on {render.printable(where)} is "
            f"not dropped with the connector (a slot holds WAL): once the connector is gone, "
            f"drop it with SELECT pg_drop_replication_slot('{render.printable(slot)}');\n"
        )
