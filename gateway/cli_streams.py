"""``datrix streams add|list|status|windows|alerts|remove``: Kafka topics watched by the
stream quality monitor (issue 13). The use cases are ``gateway/streams.py``; this parses
options and renders. Registered on the ``datrix`` group by one line at the end of
``gateway/cli.py``; the CLI's helpers are imported when a command runs (cli.py imports
this module at its end)."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from datrix.aggregates.stream import (
    FORMATS,
    START_FROM,
    StreamThresholds,
    name_problem,
    topic_problem,
)
from datrix.gateway import render
from datrix.gateway import streams as stream_services
from datrix.gateway.errors import UserInputError

OUTPUT = click.Choice(["table", "json"])


def _cli() -> Any:
    from datrix.gateway import cli

    return cli


def _seconds(text: str | None, option: str, low: int, high: int) -> int | None:
    return None if text is None else stream_services.whole_seconds(text, option, low, high)


@click.group()
def streams() -> None:
    """Kafka topics watched by the stream quality monitor (Kafka mode): per tumbling window
    and partition, counts, null rates, distinct counts, drift, freshness, schema changes,
    and alerts when a threshold is crossed."""


@streams.command("add")
@click.argument("topic")
@click.option("--name", required=True, help="The stream's name (unique in the tenant).")
@click.option(
    "--format",
    "record_format",
    type=click.Choice(FORMATS),
    required=True,
    help="How the topic's record values are encoded.",
)
@click.option("--key", "key_field", help="The field that identifies a record (duplicates).")
@click.option("--window", default="1m", show_default=True, help="Window length: 30s, 1m, 1h.")
@click.option(
    "--grace", default="10s", show_default=True, help="How long late records are awaited."
)
@click.option("--snapshot-every", help="Also write the records as a dataset version this often.")
@click.option(
    "--from", "start_from", type=click.Choice(START_FROM), default="earliest", show_default=True
)
@click.option("--max-null-rate", type=click.FloatRange(0, 1), help="Any field's null rate, 0-1.")
@click.option("--max-lag", help="Freshness: event time to processing time, e.g. 30s.")
@click.option("--max-psi", type=click.FloatRange(min=0), help="Drift of a numeric field (PSI).")
@click.option("--max-duplicate-rate", type=click.FloatRange(0, 1), help="Duplicate deliveries.")
@click.option("--max-slot-lag", type=click.IntRange(min=0), metavar="BYTES", help="Debezium.")
@click.option("--min-records", type=click.IntRange(min=0), help="Fewer records in a window.")
def add(
    topic: str,
    name: str,
    record_format: str,
    key_field: str | None,
    window: str,
    grace: str,
    snapshot_every: str | None,
    start_from: str,
    max_null_rate: float | None,
    max_lag: str | None,
    max_psi: float | None,
    max_duplicate_rate: float | None,
    max_slot_lag: int | None,
    min_records: int | None,
) -> None:
    """Watch TOPIC as a stream (Kafka mode only)."""
    thresholds = StreamThresholds(
        max_null_rate=max_null_rate,
        max_lag_seconds=(
            None if max_lag is None else stream_services.parse_duration(max_lag, "--max-lag")
        ),
        max_psi=max_psi,
        max_duplicate_rate=max_duplicate_rate,
        max_slot_lag_bytes=max_slot_lag,
        min_records=min_records,
    )
    problem = name_problem(name.strip()) or topic_problem(topic)
    if problem is not None:  # before reaching the services
        raise UserInputError(problem)
    window_seconds = _seconds(window, "--window", 1, 86_400)
    grace_seconds = _seconds(grace, "--grace", 0, 86_400)
    snapshot_seconds = _seconds(snapshot_every, "--snapshot-every", 1, 366 * 86_400)
    cli = _cli()
    rt = cli.runtime()
    command = stream_services.check_registration(
        rt,
        topic=topic,
        name=name,
        format=record_format,
        key_field=key_field,
        window_seconds=window_seconds or 60,
        grace_seconds=grace_seconds or 0,
        snapshot_every_seconds=snapshot_seconds,
        start_from=start_from,
        thresholds=thresholds,
    )
    submitted = stream_services.register_stream(rt, command)
    cli.services.await_command(rt, submitted.command_id).raise_if_rejected()
    stream_services.await_stream(rt, submitted.stream_id)
    cli.out.print(
        f"stream {render.safe(command.name)} ({submitted.stream_id}) watches topic "
        f"{render.safe(topic)}: {record_format}, windows of {render.safe(window)}"
    )


def _table(title: str, rows: list[dict[str, Any]], cols: list[str]) -> None:
    table = Table(title=render.safe(title), show_edge=False)
    for col in cols:
        # ids and times are read whole (a cut window start names no window): the other
        # columns wrap around them
        width = 36 if col.endswith("_id") else 25 if col.endswith(("_start", "_end", "_at")) else 0
        table.add_column(col, no_wrap=width > 0, min_width=width or None)
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in cols))
    _cli().out.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return render.safe(", ".join(map(str, value))) or "-"
    if isinstance(value, dict):
        return render.safe(", ".join(f"{k} {_cell(v)}" for k, v in value.items())) or "-"
    return render.safe(value)


def _health(row: dict[str, Any]) -> str:
    degraded = row["degraded_partitions"]
    if not degraded:
        return "healthy"
    return "degraded (partition " + ", ".join(map(str, degraded)) + ")"


@streams.command("list")
@click.option("--format", "fmt", type=OUTPUT, default="table")
def list_(fmt: str) -> None:
    """List the streams."""
    cli = _cli()
    rows = stream_services.list_streams(cli.runtime())
    if fmt == "json":
        cli._dump(rows)
        return
    shown = [{**r, "health": _health(r)} for r in rows]
    _table(
        "Streams",
        shown,
        ["stream_id", "name", "topic", "format", "status", "health", "windows", "records"],
    )


@streams.command("status")
@click.argument("name")
@click.option("--format", "fmt", type=OUTPUT, default="table")
def status(name: str, fmt: str) -> None:
    """A stream's settings, health, latest window and latest alert (NAME: name or id)."""
    cli = _cli()
    doc = stream_services.stream_status(cli.runtime(), name)
    if fmt == "json":
        cli._dump(doc)
        return
    out = cli.out
    out.print(
        f"[bold]{render.safe(doc['name'])}[/] ({doc['stream_id']}) topic "
        f"{render.safe(doc['topic'])}, {render.safe(doc['format'])}, {doc['status']}"
    )
    out.print(
        f"windows of {doc['window_seconds']}s (grace {doc['grace_seconds']}s), from "
        f"{doc['start_from']}; {doc['windows']:,} windows closed, {doc['records']:,} records"
    )
    set_ = {k: v for k, v in doc["thresholds"].items() if v is not None}
    out.print("thresholds: " + (_cell(set_) if set_ else "none"))
    out.print(f"health: {_health(doc)}")
    latest = doc["latest_window"]
    if latest is not None:
        out.print(
            f"latest window {latest['window_start']} - {latest['window_end']}: "
            f"{latest['count']:,} records, null rates {_cell(latest['null_rate'])}"
        )
    if doc["last_snapshot_version"] is not None:
        out.print(
            f"latest snapshot: version {doc['last_snapshot_version']} of dataset "
            f"{doc['last_snapshot_dataset']} (records up to {doc['last_snapshot_end']})"
        )
    alert = doc["latest_alert"]
    if alert is not None:
        out.print(
            f"latest alert: {alert['kind']} on partition {alert['partition_number']} at "
            f"{alert['occurred_at']}"
        )


@streams.command("windows")
@click.argument("name")
@click.option("--format", "fmt", type=OUTPUT, default="table")
@click.option(
    "--limit",
    type=click.IntRange(1, stream_services.MAX_WINDOWS),
    default=20,
    show_default=True,
    help="The newest this many windows.",
)
def windows(name: str, fmt: str, limit: int) -> None:
    """The newest closed windows of a stream, oldest first, each merged across the topic's
    partitions (json: a list of {window_start, window_end, count, null_rate{field: rate},
    distinct{field: n}, ...})."""
    cli = _cli()
    rt = cli.runtime()
    found = stream_services.resolve_stream(rt, name)
    rows = stream_services.windows(rt, found["stream_id"], limit=limit)
    if fmt == "json":
        cli._dump(rows)
        return
    _table(
        f"Windows of {found['name']}",
        rows,
        [
            "window_start",
            "window_end",
            "partitions",
            "count",
            "null_rate",
            "distinct",
            "max_lag_seconds",
            "duplicates",
            "tombstones",
            "slot_lag_bytes",
        ],
    )


@streams.command("alerts")
@click.argument("name")
@click.option("--format", "fmt", type=OUTPUT, default="table")
def alerts(name: str, fmt: str) -> None:
    """A stream's quality alerts (degraded, recovered), oldest first."""
    cli = _cli()
    _, rows = stream_services.alerts(cli.runtime(), name)
    if fmt == "json":
        cli._dump(rows)
        return
    shown = [
        {
            **r,
            "breaches": [
                f"{b['metric']}{'(' + b['field'] + ')' if b.get('field') else ''} "
                f"{b['value']:.4g} (limit {b['limit']:.4g})"
                for b in r["breaches"]
            ],
        }
        for r in rows
    ]
    _table(
        f"Alerts of {name}",
        shown,
        ["occurred_at", "kind", "partition_number", "window_start", "breaches"],
    )


@streams.command("remove")
@click.argument("name")
@click.option("--reason", help="Why (kept in the audit trail).")
def remove(name: str, reason: str | None) -> None:
    """Stop watching a stream (its windows and alerts stay readable)."""
    cli = _cli()
    rt = cli.runtime()
    submitted = stream_services.remove_stream(rt, name, reason)
    cli.services.await_command(rt, submitted.command_id).raise_if_rejected()
    stream_id = str(submitted.stream_id)

    def removed() -> bool:
        return bool(stream_services.resolve_stream(rt, stream_id)["status"] == "removed")

    rt.await_processed(removed, timeout=60.0)
    cli.out.print(f"stream {render.safe(name)} ({stream_id}) removed")


__all__ = ["streams"]
