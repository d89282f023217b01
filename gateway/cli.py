"""The ``datrix`` command line. Errors end as one line on stderr, never a traceback
(set DATRIX_DEBUG=1 to see one): exit 2 for bad input, 1 for failures."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from datrix.gateway import render, services
from datrix.gateway.cli_schema import datasets_group
from datrix.gateway.errors import DatrixError, NotFound, Unreachable, UserInputError
from datrix.jobs.engine import ProgressFn
from datrix.runtime.bootstrap import App, bootstrap
from datrix.streams.kafka_logging import BrokerUnreachable
from datrix.streams.object_store import ObjectStoreError
from datrix.streams.settings import SettingsError

# emoji=False: ":name:" in data stays text (markup and control characters: render.safe)
out = Console(emoji=False)
if not out.is_terminal:
    out = Console(width=120, emoji=False)  # pipes and files: wide enough that tables do not fold
err = Console(stderr=True, emoji=False)


def command_name() -> str:
    """The CLI as the user can type it: ``datrix`` when that is what PATH finds, else
    the path it was started by (``.venv/bin/datrix`` from the checkout), for hints."""
    started = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if started is None or started.name != "datrix":
        return "datrix"
    found = shutil.which("datrix")
    try:
        if found is not None and Path(found).resolve() == started.resolve():
            return "datrix"
        path = started.absolute()
        try:
            return str(path.relative_to(Path.cwd()))
        except ValueError:
            return str(path)
    except OSError:
        return "datrix"


def runtime(app: App | None = None) -> services.Runtime:
    """The embedded default, or Kafka mode when DATRIX_KAFKA_BOOTSTRAP is set, as the
    composition root (``runtime/bootstrap.py``) builds it from the settings."""
    app = app or bootstrap()
    _ = app.registry  # a bad DATRIX_EXTENSIONS: a SettingsError line, not "cannot reach"
    if app.settings.embedded:
        return app.runtime
    try:
        return app.runtime
    except SettingsError:
        raise  # a setting is missing or wrong (a superuser URL): one line, exit 2
    except BrokerUnreachable as exc:
        raise Unreachable(str(exc)) from exc
    except Exception as exc:
        raise DatrixError(f"cannot reach the Kafka-mode services: {exc}") from exc


class CountColumn(ProgressColumn):
    """``done/total`` with thousands separators; just ``done`` while the total is unknown
    (rich keeps ``task.total`` None then, and a format spec on None raises TypeError)."""

    def render(self, task: Task) -> Text:
        if task.total is None:
            return Text(f"{task.completed:,.0f}" if task.completed else "")
        return Text(f"{task.completed:,.0f}/{task.total:,.0f}")


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[ProgressFn]:
    """A rich progress bar on stderr; yields the callback jobs report phases to."""
    if not enabled:
        yield lambda phase, done, total: None
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description:<12}"),
        BarColumn(),
        CountColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("starting", total=None)

        def update(phase: str, done: int, total: int) -> None:
            bar.update(task, description=phase, completed=done, total=total or None)

        yield update


def _dump(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="datrix")
def cli() -> None:
    """Datrix: data quality as a replayable, auditable event stream."""


@cli.command()
@click.argument("path", type=click.Path(path_type=Path), metavar="PATH_OR_DATASET")
@click.option("--name", help="Dataset name (default: the file name without extension).")
@click.option("--label", help="Label column, for label-quality checks.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option("--encoding", default="utf-8", show_default=True, help="Text encoding of the file.")
@click.option(
    "--engine",
    type=click.Choice(["auto", "polars", "spark"]),
    default="auto",
    show_default=True,
    help="auto: Spark for inputs over 100 MB when DATRIX_SPARK_MASTER names a cluster, "
    "else Polars. spark: PySpark (local[*] without DATRIX_SPARK_MASTER), same checks",
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(path_type=Path),
    help="Also write a self-contained HTML report to this file.",
)
@click.option(
    "--weights",
    "weights_text",
    metavar="DIM=W,...",
    help="Weights of the overall score, e.g. completeness=0.3,accuracy=0.1 (dimensions: "
    "completeness, consistency, accuracy, distribution, label_quality; weights >= 0). "
    "Dimensions left out keep their default (0.25, 0.25, 0.2, 0.15, 0.15).",
)
@click.option(
    "--delimiter",
    help="CSV field separator (one character, or 'tab'); default: sniffed among , ; tab |",
)
@click.option("--quote", help="CSV quote character; default: sniffed (\" or ').")
@click.option(
    "--decimal",
    type=click.Choice([".", ","]),
    help="CSV decimal mark; default: ',' when the file is ';'-separated with numbers like 1,5",
)
@click.option(
    "--header/--no-header",
    default=None,
    help="Whether the CSV's first line is a header (no: columns column_0, ...); default: sniffed.",
)
@click.option("--sheet", help="Excel: the sheet to read (default: the first).")
def scan(
    path: Path,
    name: str | None,
    label: str | None,
    fmt: str,
    encoding: str,
    engine: str,
    html_path: Path | None,
    weights_text: str | None,
    delimiter: str | None,
    quote: str | None,
    decimal: str | None,
    header: bool | None,
    sheet: str | None,
) -> None:
    """Register PATH (or add a version when NAME exists), scan it and print the report.
    PATH_OR_DATASET may also name a registered dataset (its name, id or a unique prefix
    of the id) when no such file exists: its latest version is scanned again.

    A CSV's dialect (separator, quotes, decimal mark, header) is sniffed from its first
    megabyte and shown in the report; the CSV options override it."""
    from datrix.jobs.csv_dialect import options_from_cli
    from datrix.jobs.quality.scoring import parse_weights

    try:
        csv_options = options_from_cli(delimiter, quote, decimal, header)
    except ValueError as exc:
        raise UserInputError(str(exc)) from None

    if html_path is not None and not html_path.resolve().parent.is_dir():
        raise UserInputError(f"cannot write {html_path}: its folder does not exist")
    weights = None
    if weights_text is not None:
        try:
            weights = parse_weights(weights_text)
        except ValueError as exc:
            raise UserInputError(f"--weights: {exc}") from None
    rt = runtime()
    dataset = None if path.exists() else _existing_dataset(rt, str(path))
    if dataset is not None:
        file_only = {
            "--name": name is not None,
            "--label": label is not None,
            "--encoding": encoding != "utf-8",
            "--delimiter": delimiter is not None,
            "--quote": quote is not None,
            "--decimal": decimal is not None,
            "--header/--no-header": header is not None,
            "--sheet": sheet is not None,
        }
        given = [option for option, used in file_only.items() if used]
        if given:
            raise UserInputError(
                f"{', '.join(given)}: only for a file; {render.printable(path)} is a "
                "registered dataset (its latest version is scanned as it is stored)"
            )
    with progress_bar(enabled=sys.stderr.isatty()) as progress:
        if dataset is not None:
            outcome = _scan_dataset(rt, dataset, engine, weights, progress)
        else:
            outcome = services.scan_file(
                rt,
                path,
                name=name,
                label=label,
                encoding=encoding,
                engine=engine,
                weights=weights,
                progress=progress,
                csv_options=csv_options,
                sheet=sheet,
            )
    doc = services.report_document(rt, outcome.scan_id)
    if html_path is not None:
        services.write_html_report(rt, outcome.scan_id, html_path)
        err.print(f"HTML report written to {render.safe(html_path)}")
    if fmt == "json":
        _dump(doc)
    else:
        render.report(out, doc, outcome.dataset_name, command=command_name())


def _existing_dataset(rt: services.Runtime, ref: str) -> dict[str, Any] | None:
    """The registered dataset ``ref`` names (name, id or unique id prefix), or None when
    there is none (then ``ref`` is a file that does not exist: the file's error says so)."""
    try:
        return services.resolve_dataset(rt, ref)
    except NotFound:
        return None


def _scan_dataset(
    rt: services.Runtime,
    dataset: dict[str, Any],
    engine: str,
    weights: dict[str, float] | None,
    progress: ProgressFn,
) -> services.ScanOutcome:
    """Scan a registered dataset's latest version and wait for it (``datrix scan NAME``)."""
    rt.drain(progress)  # finish what died first, as a scan of a file does
    requested = services.request_scan(rt, dataset["id"], engine=engine, weights=weights)

    def settled() -> bool:
        v = services.views(rt)
        status = v.command_status(requested.command_id)
        if status is None:
            return False
        if status["status"] == "rejected":
            return True
        scan = v.scan(requested.scan_id)
        return scan is not None and scan["status"] in ("completed", "failed")

    rt.wait_for(settled, progress, scan_id=requested.scan_id)
    decided = services.command_status(rt, requested.command_id)
    if decided is not None:
        decided.raise_if_rejected()
    scan = services.views(rt).scan(requested.scan_id)
    if scan is not None and scan["status"] == "failed":
        raise DatrixError(f"scan {requested.scan_id} failed: {scan['error']}")
    name = str(dataset["name"])
    return services.ScanOutcome(requested.dataset_id, name, requested.scan_id, False)


@cli.command()
@click.argument("scan_id")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def report(scan_id: str, fmt: str) -> None:
    """Print the report of an earlier scan (SCAN_ID: the id or a unique prefix of it)."""
    rt = runtime()
    doc = services.report_document(rt, scan_id)
    if fmt == "json":
        _dump(doc)
    else:
        found = services.views(rt).dataset(doc["dataset_id"])
        name = found["name"] if found else doc["dataset_id"]
        render.report(out, doc, name, command=command_name())


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def datasets(fmt: str) -> None:
    """List registered datasets."""
    rows = services.views(runtime()).datasets()
    if fmt == "json":
        _dump(rows)
    else:
        render.simple_table(
            out,
            "Datasets",
            rows,
            ["id", "name", "status", "latest_version", "row_count", "column_count", "updated_at"],
        )


@cli.command()
@click.argument("dataset")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def scans(dataset: str, fmt: str) -> None:
    """List the scans of DATASET (name, id or a unique prefix of the id)."""
    rt = runtime()
    found = services.resolve_dataset(rt, dataset)
    rows = services.views(rt).scans(found["id"])
    if fmt == "json":
        _dump(rows)
    else:
        render.simple_table(
            out,
            f"Scans of {found['name']}",
            rows,
            [
                "id",
                "dataset_version",
                "status",
                "overall_score",
                "row_count",
                "created_at",
                "error",
            ],
        )


@cli.command()
@click.argument("scan_id")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def issues(scan_id: str, fmt: str) -> None:
    """List the issues of a scan, by impact (SCAN_ID: the id or a unique prefix)."""
    rt = runtime()
    scan_id, docs = services.scan_issues(rt, scan_id)
    if fmt == "json":
        _dump(docs)
    else:
        render.issues(out, docs, title=f"Issues of scan {scan_id}")


@cli.command()
@click.argument("scan_id")
@click.argument("issue_id")
def rows(scan_id: str, issue_id: str) -> None:
    """Print the 0-based row indices an issue affects, one per line (ids or unique
    prefixes of them)."""
    from datrix.jobs.runner import row_blocks

    found = services.issue_rows(runtime(), scan_id, issue_id)
    for block in row_blocks(found.rows):  # a block at a time: an issue may flag every row
        sys.stdout.write("".join(f"{i}\n" for i in block.tolist()))


@cli.command()
@click.argument("scan_id")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def progress(scan_id: str, fmt: str) -> None:
    """The job-progress events of a scan (Kafka mode: topic datrix.job-progress, kept a day)."""
    from dataclasses import asdict

    found = services.job_progress(runtime(), scan_id)
    updates = found.updates
    if fmt == "json":
        _dump([asdict(u) for u in updates])
        return
    table = Table(title=f"Progress of scan {render.safe(found.scan_id)}")
    for column in ("seq", "at", "phase", "done", "total"):
        table.add_column(column, justify="right" if column in ("seq", "done", "total") else "left")
    for u in updates:
        table.add_row(
            str(u.seq), render.safe(u.at), render.safe(u.phase), f"{u.done:,}", f"{u.total:,}"
        )
    out.print(table)


def _options(pairs: tuple[str, ...]) -> dict[str, str] | None:
    """``--option k=v`` (repeatable) as a dict; None when none was given."""
    chosen: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise UserInputError(f"--option {pair!r}: expected KEY=VALUE, e.g. pii=hash")
        if key in chosen and chosen[key] != value:
            raise UserInputError(f"--option {key}: given twice ({chosen[key]!r}, {value!r})")
        chosen[key] = value
    from datrix.jobs.transforms.specs import check_options

    try:
        check_options(chosen)  # before a job is started for them
    except ValueError as exc:
        raise UserInputError(f"--option: {exc}") from None
    return chosen or None


def _issue_refs(issues_text: str | None, every: bool) -> list[str] | None:
    """``--issues I001,I004`` as a list; None (every fixable issue) for ``--all`` or neither."""
    if issues_text is not None and every:
        raise UserInputError("--issues and --all: choose one (--all fixes every fixable issue)")
    if issues_text is None:
        return None
    refs = [r.strip() for r in issues_text.split(",") if r.strip()]
    if not refs:
        raise UserInputError("--issues: name at least one issue id, e.g. --issues I001,I004")
    return refs


@cli.command()
@click.argument("scan_id")
@click.option("--issues", "issues_text", metavar="ID,ID", help="Fix these issues of the scan.")
@click.option("--all", "every", is_flag=True, help="Fix every fixable issue (the default).")
@click.option("--preview", is_flag=True, help="Show what would change; write nothing (default).")
@click.option("--apply", "apply_", is_flag=True, help="Write a new version, then re-scan it.")
@click.option(
    "--option",
    "option_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="How to fix, e.g. pii=hash, impute=knn, dedupe_keep=merge (docs/quality.md).",
)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def fix(
    scan_id: str,
    issues_text: str | None,
    every: bool,
    preview: bool,
    apply_: bool,
    option_pairs: tuple[str, ...],
    fmt: str,
) -> None:
    """Fix the issues of a scan (SCAN_ID: the id or a unique prefix).

    --preview (the default) runs the fixes as a job and shows, per fix, the cells and
    rows it would change and a sample of rows before and after, writing nothing.
    --apply writes a new version of the dataset (never editing one in place) with the
    provenance of every changed cell, re-scans it and shows the scores before and after
    and the issues gone. `datrix rollback` undoes it."""
    from datrix.gateway import fixes

    if preview and apply_:
        raise UserInputError("--preview and --apply: choose one (--preview writes nothing)")
    refs = _issue_refs(issues_text, every)
    options = _options(option_pairs)
    rt = runtime()
    with progress_bar(enabled=sys.stderr.isatty()) as progress:
        submitted = fixes.submit_fix(rt, scan_id, refs, preview=not apply_, options=options)
        outcome = fixes.await_fix(rt, submitted.fix_id, progress=progress)
    doc = fixes.fix_document(outcome)
    if fmt == "json":
        _dump(doc)
        return
    found = services.views(rt).dataset(str(doc.get("dataset_id") or submitted.dataset_id))
    name = found["name"] if found else str(submitted.dataset_id)
    render.fix(out, doc, name, command=command_name())


@cli.command()
@click.argument("dataset")
@click.argument("fix_id")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def rollback(dataset: str, fix_id: str, fmt: str) -> None:
    """Undo an applied fix of DATASET (name, id or unique id prefix): a new version whose
    content is byte for byte the version the fix started from, re-scanned. Fixes are
    undone newest first: a fix that later fixes built on is refused, naming them."""
    from datrix.gateway import fixes

    rt = runtime()
    with progress_bar(enabled=sys.stderr.isatty()) as progress:
        done = fixes.rollback_fix(rt, dataset, fix_id)
        rescan = done.get("rescan_id")
        if rescan:  # the automatic re-scan of the restored version

            def scanned() -> bool:
                found = services.views(rt).scan(str(rescan))
                return found is not None and found["status"] in ("completed", "failed")

            rt.wait_for(scanned, progress, scan_id=str(rescan))
    if fmt == "json":
        _dump(done)
        return
    render.rolled_back(out, done)


@cli.command()
@click.argument("dataset")
@click.option("--version", "version", type=click.IntRange(min=1), help="Default: the latest.")
@click.option("--row", type=click.IntRange(min=0), help="Only this row (0-based, as scans count).")
@click.option("--column", help="Only changes of this column.")
@click.option("--limit", type=click.IntRange(min=1, max=10_000), default=100, show_default=True)
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def provenance(
    dataset: str,
    version: int | None,
    row: int | None,
    column: str | None,
    limit: int,
    offset: int,
    fmt: str,
) -> None:
    """The cell-level provenance of a fixed version of DATASET: per changed cell its row
    (0-based in the version the fix started from), column, old and new value, the fix,
    the rule and its confidence (0-1); a removed row has no column and its old record."""
    from datrix.gateway import fixes

    rt = runtime()
    rows_, total = fixes.provenance_rows(rt, dataset, version, row, column, offset, limit)
    if fmt == "json":
        _dump({"total": total, "offset": offset, "items": rows_})
        return
    render.provenance(out, rows_, total, offset, title=f"Provenance of {dataset}")


@cli.command()
@click.argument("dataset")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def versions(dataset: str, fmt: str) -> None:
    """The versions of DATASET, oldest first: checksum (SHA-256 of the version's content)
    and cause (upload, fix, rollback, pipeline)."""
    from datrix.gateway import fixes

    rows_ = fixes.dataset_versions(runtime(), dataset)
    if fmt == "json":
        _dump(rows_)
        return
    render.simple_table(
        out,
        f"Versions of {dataset}",
        rows_,
        ["version", "cause", "fix_id", "checksum", "created_at"],
    )


@cli.group()
def audit() -> None:
    """The tamper-evident audit trail."""


@audit.command("log")
@click.option("--dataset", "dataset", help="Only entries about this dataset (name or id).")
@click.option("--limit", type=int, help="At most this many entries.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def audit_log(dataset: str | None, limit: int | None, fmt: str) -> None:
    """Show audit entries, oldest first."""
    rows_ = services.audit_trail(runtime(), dataset, limit)
    if fmt == "json":
        _dump(rows_)
    else:
        render.simple_table(
            out,
            "Audit log",
            rows_,
            ["seq", "occurred_at", "event_type", "subject", "actor", "hash"],
        )


@audit.command("verify")
@click.option(
    "--witness",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A file kept away from the event log: fail if a checkpoint an earlier verify "
    "recorded there is gone from the log, then record the newest ones.",
)
def audit_verify(witness: Path | None) -> None:
    """Check the audit trail: its hash chains, against the event log (every event has
    exactly one entry) and against the signed checkpoints in the log; exit 1 naming the
    first bad entry."""
    check = services.verify_audit(runtime(), witness=witness)
    check.raise_if_broken()
    out.print(check.summary())


@cli.command()
@click.option(
    "--verify", is_flag=True, help="Compare with the live read models; exit 1 if different."
)
@click.option(
    "--as-of",
    "as_of",
    type=click.DateTime(
        formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"]
    ),
    help="Rebuild the state as it was at this time (UTC) and list its datasets.",
)
@click.option("--keep", is_flag=True, help="Keep the rebuilt tables and say where they are.")
def replay(verify: bool, as_of: datetime | None, keep: bool) -> None:
    """Rebuild the read models from the event log into fresh tables and print a checksum."""
    when = as_of.replace(tzinfo=UTC) if as_of else None
    done = services.replay(runtime(), verify=verify, as_of=when, keep=keep)
    out.print(f"replayed {done.events} events; checksum {done.checksum}")
    if when is not None:
        render.simple_table(
            out,
            f"Datasets as of {when.isoformat()}",
            done.datasets_as_of or [],
            ["id", "name", "status", "latest_version", "updated_at"],
        )
    if done.kept_in is not None:
        out.print(f"rebuilt tables kept in {render.safe(done.kept_in)}")
    if verify:
        done.raise_if_different()
        out.print(f"live read models are identical to the replay ({len(done.tables)} tables)")


@cli.group()
def jobs() -> None:
    """Scan jobs: list them, cancel one."""


@jobs.command("list")
@click.option("--all", "include_ended", is_flag=True, help="Also jobs whose scan has ended.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def jobs_list(include_ended: bool, fmt: str) -> None:
    """Jobs whose scan has not ended (running, queued, or interrupted: its process died).

    An interrupted job is finished by the next `datrix scan`, or ended by `datrix jobs
    cancel ID`."""
    rows = services.jobs_list(runtime(), include_ended=include_ended)
    if fmt == "json":
        _dump(rows)
        return
    shown = [
        {
            **r,
            "job": str(r["job_id"] or "")[:8],
            "scan": str(r["scan_id"])[:8],
            "rows": f"{r['rows']:,}" if isinstance(r["rows"], int) else None,
            "started": r["started_at"] or r["requested_at"],
        }
        for r in rows
    ]
    cols = ["job", "scan", "dataset", "version", "status", "phase", "started", "rows"]
    if include_ended:
        cols.append("error")
    title = "Jobs" if include_ended else "Unfinished jobs"
    if not shown:
        out.print("no unfinished jobs" if not include_ended else "no jobs")
        return
    render.simple_table(out, title, shown, cols)


@jobs.command("cancel")
@click.argument("job_id")
def jobs_cancel(job_id: str) -> None:
    """Cancel a job (JOB_ID: a job or scan id, or a unique prefix of one); its scan ends as
    failed, "cancelled by" you."""
    job = services.cancel_job(runtime(), job_id)
    out.print(f"cancelled scan {job['scan_id']} (job {job['job_id']}): {job['error']}")


@cli.group()
def dlq() -> None:
    """Dead letters (Kafka mode): records a worker could not handle, kept with the error."""


_DLQ_TOPIC = click.option(
    "--topic",
    "which",
    type=click.Choice(["commands", "events", "jobs"]),
    default="commands",
    show_default=True,
    help="Whose dead letters: the consumers of this topic.",
)


@dlq.command("list")
@_DLQ_TOPIC
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def dlq_list(which: str, fmt: str) -> None:
    """Every dead letter of one topic's consumers, oldest first."""
    letters = services.dead_letters(bootstrap().settings, which)
    rows = [letter.summary() for letter in letters]
    if fmt == "json":
        _dump(rows)
        return
    if not rows:
        out.print(f"no dead letters for {which}")
        return
    render.simple_table(
        out, f"Dead letters ({which})", rows, ["offset", "from", "ce_type", "ce_id", "error"]
    )


@dlq.command("show")
@_DLQ_TOPIC
@click.argument("offset", type=int)
def dlq_show(which: str, offset: int) -> None:
    """One dead letter (OFFSET: its offset, from `datrix dlq list`) as JSON: the error, where
    it came from, the original headers and the first bytes of its value."""
    _dump(services.dead_letter(bootstrap().settings, which, offset).document())


@dlq.command("replay")
@_DLQ_TOPIC
@click.argument("offset", type=int)
def dlq_replay(which: str, offset: int) -> None:
    """Send one dead letter back to the topic it came from (a command under a new id
    derived from the old one: its first id already has its refusal recorded)."""
    letter, new_id = services.replay_dead_letter(bootstrap().settings, which, offset)
    out.print(
        f"replayed dead letter {offset} to {render.safe(letter.topic)}"
        + (f" as {new_id}" if new_id else "")
    )


def _every_role() -> str:
    from datrix.runtime.worker import ROLES

    return ",".join(ROLES)


@cli.command()
@click.option(
    "--roles",
    default=_every_role,
    show_default="every role: processor, relay, dispatcher, jobs, projector, policies, "
    "intake, monitor",
    help="Comma-separated roles to run in this process.",
)
def worker(roles: str) -> None:
    """Run the Kafka-mode stream processors (needs DATRIX_KAFKA_BOOTSTRAP and _DATABASE_URL)."""
    import logging

    from datrix.runtime.worker import ROLES

    app = bootstrap()
    settings = app.settings
    if settings.embedded or not settings.database_url:
        raise UserInputError("datrix worker needs DATRIX_KAFKA_BOOTSTRAP and DATRIX_DATABASE_URL")
    chosen = tuple(r.strip() for r in roles.split(",") if r.strip())
    unknown = [r for r in chosen if r not in ROLES]
    if unknown:
        raise UserInputError(
            f"unknown role(s) {', '.join(unknown)}; choose from {', '.join(ROLES)}"
        )
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(threadName)s %(levelname)s %(message)s",
    )
    app.run_worker(chosen)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Server processes (each builds the API from the same settings).",
)
def serve(host: str, port: int, workers: int) -> None:
    """Serve the HTTP API (FastAPI on uvicorn): /docs, /openapi.json, /v1/...

    Every request needs an API key (`datrix keys create`). On the embedded default's first
    serve, when no key exists yet, an admin key is made and written to
    DATRIX_HOME/api-admin.key."""
    import uvicorn

    from datrix.gateway.api.keys import ensure_local_admin, open_key_store

    app = bootstrap()
    if not app.settings.embedded and not app.settings.object_store:
        raise SettingsError(
            "datrix serve in Kafka mode needs DATRIX_OBJECT_STORE=s3://... : uploads go to "
            "the object store the workers read, not to this server's disk"
        )
    runtime(app)  # a bad setting or an unreachable service: one line before listening
    made = ensure_local_admin(app.settings, open_key_store(app.settings))
    if made is not None:  # plain lines: a path the console wrapped could not be copied
        sys.stderr.write(
            f"made a local admin API key (tenant {render.printable(app.settings.tenant)}); "
            f"it is in {render.printable(str(made))} (mode 0600)\n"
        )
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # /metrics sums every worker process's (gateway/api/metrics.py): a fresh folder
        metrics_dir = app.settings.home / "metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(mode=0o700, parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    sys.stderr.write(f"Datrix API on http://{render.printable(host)}:{port} (docs: /docs)\n")
    sys.stderr.flush()
    uvicorn.run(
        "datrix.gateway.api:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=app.settings.log_level.lower(),
        server_header=False,
    )


@cli.group()
def keys() -> None:
    """API keys of the HTTP API: each bound to one tenant and one role."""


@keys.command("create")
@click.option("--tenant", required=True, help="The tenant the key acts for.")
@click.option(
    "--role",
    required=True,
    type=click.Choice(["admin", "engineer", "scientist", "annotator", "viewer"]),
)
@click.option("--name", default="", help="A note on what the key is for.")
def keys_create(tenant: str, role: str, name: str) -> None:
    """Make a key; it is printed once, as the last token of stdout (only a hash is kept)."""
    from datrix.gateway.api.keys import KeyError_, open_key_store

    try:
        key, full = open_key_store(bootstrap().settings).create(tenant, role, name)
    except KeyError_ as exc:
        raise UserInputError(str(exc)) from None
    err.print(
        f"API key {key.id} for tenant {render.safe(key.tenant)}, role {key.role}; "
        "shown once, keep it now:"
    )
    sys.stdout.write(full + "\n")


@keys.command("list")
@click.option("--tenant", help="Only this tenant's keys.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def keys_list(tenant: str | None, fmt: str) -> None:
    """The keys (never their secrets): id, tenant, role, name, created, revoked."""
    from dataclasses import asdict

    from datrix.gateway.api.keys import open_key_store

    rows = [asdict(k) for k in open_key_store(bootstrap().settings).list(tenant)]
    if fmt == "json":
        _dump(rows)
        return
    render.simple_table(
        out, "API keys", rows, ["id", "tenant", "role", "name", "created_at", "revoked_at"]
    )


@keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke a key (KEY_ID: its id, as `datrix keys list` shows it); it stops working at
    once."""
    from datrix.gateway.api.keys import KeyError_, open_key_store

    try:
        key = open_key_store(bootstrap().settings).revoke(key_id)
    except KeyError_ as exc:
        raise NotFound(str(exc)) from None
    out.print(f"revoked API key {key.id} (tenant {render.safe(key.tenant)}, role {key.role})")


@cli.group()
def bench() -> None:
    """Benchmark helpers."""


@bench.command("generate")
@click.option("--rows", type=click.IntRange(min=1), required=True)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--free-text",
    is_flag=True,
    help="Add a 'comment' column with PII inside ~5 % of its notes (truth: free_text).",
)
def bench_generate(rows: int, out_dir: Path, seed: int, free_text: bool) -> None:
    """Write a seeded dirty dataset (CSV + Parquet) and its ground truth."""
    from datrix.jobs.bench.generate import generate

    with err.status(f"generating {rows:,} rows"):
        generate(rows, out_dir, seed, free_text=free_text)
    for name in ("dirty.csv", "dirty.parquet", "ground_truth.json"):
        out.print(render.safe(out_dir / name))


@cli.command()
@click.option("--rows", type=click.IntRange(min=100), default=5000, show_default=True)
def demo(rows: int) -> None:
    """Generate a small dirty dataset, scan it and print the report."""
    from datrix.jobs.bench.generate import generate

    rt = runtime()
    demo_dir = rt.settings.home / "demo"
    if demo_dir.exists():
        shutil.rmtree(demo_dir)
    with err.status("generating a dirty demo dataset"):
        generate(rows, demo_dir, seed=7)
    with progress_bar(enabled=sys.stderr.isatty()) as progress:
        outcome = services.scan_file(rt, demo_dir / "dirty.csv", name="demo", progress=progress)
    command = command_name()
    doc = services.report_document(rt, outcome.scan_id)
    render.report(out, doc, outcome.dataset_name, command=command)
    out.print(
        f"\nstate kept in {render.safe(rt.settings.home)}; try: {render.safe(command)} audit "
        f"verify, {render.safe(command)} replay --verify"
    )


from datrix.gateway.cli_streams import streams  # noqa: E402 (it imports this module lazily)

cli.add_command(streams)
from datrix.gateway.cli_connectors import connectors  # noqa: E402

cli.add_command(connectors)  # datrix connectors ... (Kafka Connect, cli_connectors.py)


cli.add_command(datasets_group(datasets))  # datrix datasets [contract NAME] (cli_schema.py)


def _debug() -> bool:
    """DATRIX_DEBUG: tracebacks instead of one-line errors (not when the settings are bad)."""
    try:
        return bootstrap().settings.debug
    except SettingsError:
        return False


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="datrix", standalone_mode=False)
    except click.exceptions.Abort:
        err.print("aborted")
        sys.exit(130)
    except click.exceptions.UsageError as exc:  # bad arguments: one line, exit 2
        hint = f" (see '{exc.ctx.command_path} -h')" if exc.ctx is not None else ""
        message = " ".join(exc.format_message().split())
        sys.stderr.write(f"datrix: {render.printable(message)}{hint}\n")
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (DatrixError, UserInputError) as exc:
        if _debug():
            raise
        sys.stderr.write(f"datrix: {render.printable(exc)}\n")
        sys.exit(exc.exit_code)
    except SettingsError as exc:
        sys.stderr.write(f"datrix: {render.printable(exc)}\n")
        sys.exit(2)
    except BrokerUnreachable as exc:  # the broker went away after the command started
        if _debug():
            raise
        sys.stderr.write(f"datrix: {render.printable(exc)}\n")
        sys.exit(Unreachable.exit_code)
    except ObjectStoreError as exc:  # a store that is down, or refuses the keys
        if _debug():
            raise
        sys.stderr.write(f"datrix: {render.printable(exc)}\n")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.stderr.write("datrix: interrupted\n")
        sys.exit(130)
    except Exception as exc:
        if _debug():
            raise
        first = render.printable((str(exc).splitlines() or [""])[0])
        sys.stderr.write(
            f"datrix: internal error: {type(exc).__name__}: {first}"
            " (DATRIX_DEBUG=1 shows the traceback)\n"
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
