"""Rich rendering of reports and lists for the terminal.

Data never controls the terminal: every string that comes from the data or the user
(column names, values quoted in descriptions, dataset and file names, error lines) goes
through ``safe`` before rich sees it (``printable`` where no rich markup is parsed, such
as the error line on stderr). The consoles are made with ``emoji=False`` so ``:name:``
codes in data stay text too. JSON output is not touched: ``json.dumps`` keeps the exact
text (control characters as ``\\u001b`` escapes)."""

from __future__ import annotations

import re
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

# C0 controls (tab and newline too: one value is one line), DEL, and the C1 controls
# (U+0080-U+009F: U+009B is a one-character CSI on some terminals).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def printable(text: object) -> str:
    """``str(text)`` with every control character shown as its Python escape: ESC as
    ``\\x1b``, BEL as ``\\x07``, newline as ``\\x0a``, U+009B as ``\\x9b``. Visible, one
    line, and nothing a terminal acts on."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def safe(text: object) -> str:
    """``printable(text)`` with rich markup escaped: ``[bold]x[/]`` prints as those very
    characters, never as a style or a hyperlink. Use it for every data-derived string
    handed to rich (table cells, titles, ``console.print``)."""
    return escape(printable(text))


SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}
SCORE_KEYS = ("overall", "completeness", "consistency", "accuracy", "distribution", "label_quality")
ID_COLUMNS = frozenset({"id", "dataset_id", "scan_id", "event_id", "subject", "job_id", "fix_id"})
# columns holding an id's unique 8-character prefix (as `datrix jobs list` shows them)
PREFIX_COLUMNS = frozenset({"job", "scan"})


def plural(count: int, word: str) -> str:
    """``1 row``, ``2 rows``, ``1,000 rows``."""
    return f"{count:,} {word}" + ("" if count == 1 else "s")


def _score_style(score: float) -> str:
    return "green" if score >= 85 else "yellow" if score >= 60 else "red"


def _score_cell(value: float | None) -> str:
    if value is None:
        return "[dim]n/a[/]"
    return f"[{_score_style(value)}]{value:.1f}[/]"


def report(
    console: Console,
    doc: dict[str, Any],
    dataset_name: str,
    max_issues: int = 25,
    command: str = "datrix",
) -> None:
    """The report of ``datrix scan``/``report``; ``command`` is how the closing hints name
    the CLI (``datrix``, or ``.venv/bin/datrix`` when that is not on PATH)."""
    score = doc["score"]
    head = Table.grid(padding=(0, 2))
    head.add_row(
        f"[bold]{safe(dataset_name)}[/] v{doc['version']}",
        f"{plural(doc['rows'], 'row')} x {plural(doc['columns'], 'column')}",
        f"scan {safe(doc['scan_id'])}",
    )
    if doc.get("scanned_at"):
        head.add_row("", "", f"at {safe(doc['scanned_at'])}")
    console.print(Panel(head, title="Datrix quality report", expand=False))
    if doc.get("read_as"):  # how the file was read: a Text, never markup (sheet names)
        console.print(Text(doc["read_as"], style="dim"))
    scores = Table(title="Scores (0-100)", show_edge=False)
    for key in SCORE_KEYS:
        scores.add_column(key.replace("_", " "), justify="right")
    scores.add_row(*(_score_cell(score.get(k)) for k in SCORE_KEYS))
    console.print(scores)
    dims = doc.get("overall_dimensions")
    if dims:
        note = "overall: weighted mean of " + ", ".join(d.replace("_", " ") for d in dims)
        if score.get("label_quality") is None:
            note += " (label quality n/a: no --label column named)"
        console.print(f"[dim]{safe(note)}[/]")
    missingness = {
        p["name"]: p.get("missingness") for p in doc.get("column_profiles", []) if p["null_count"]
    }
    shown = doc["issues"][:max_issues]
    issues(
        console, shown, title=f"Issues by impact ({len(doc['issues'])})", missingness=missingness
    )
    if len(doc["issues"]) > max_issues:
        console.print(
            f"... {len(doc['issues']) - max_issues} more: "
            f"{safe(command)} issues {safe(doc['scan_id'])}"
        )


def _issue_type(issue: dict[str, Any], missingness: dict[str, Any] | None) -> str:
    """The issue type; a null_values issue with its column's missingness class."""
    kind = safe(issue["type"])
    cls = issue.get("missingness")
    if cls is None and missingness is not None and issue["type"] == "null_values":
        cls = missingness.get(issue["column"])
    return f"{kind} ({safe(cls)})" if cls and cls != "none" else kind


def issues(
    console: Console,
    rows: list[dict[str, Any]],
    title: str = "Issues",
    missingness: dict[str, Any] | None = None,
) -> None:
    """Issues by impact; null_values issues carry the missingness class of their column
    (MCAR, MAR or MNAR) from the issue document or ``missingness`` (column -> class)."""
    wide = console.width >= 140
    table = Table(title=safe(title), show_edge=False)
    # ids, types and numbers are never cut (an id must work when typed); a long column
    # name folds onto more lines instead
    id_width = max((len(str(i["id"])) for i in rows), default=2)
    table.add_column("id", no_wrap=True, min_width=id_width)
    table.add_column("type", no_wrap=True, min_width=11)
    table.add_column("column", overflow="fold", max_width=40)
    table.add_column("severity", no_wrap=True, min_width=8)
    table.add_column("affected", justify="right", no_wrap=True, min_width=8)
    table.add_column("%", justify="right", no_wrap=True, min_width=6)
    table.add_column("impact", justify="right", no_wrap=True, min_width=6)
    if wide:
        table.add_column("description", overflow="fold")
    for issue in rows:
        cells = [
            safe(issue["id"]),
            _issue_type(issue, missingness),
            safe(issue["column"]) if issue["column"] is not None else "-",
            f"[{SEVERITY_STYLE.get(issue['severity'], '')}]{safe(issue['severity'])}[/]",
            f"{issue['affected_count']:,}",
            f"{issue['affected_pct']:.2f}",
            f"{issue['impact_score']:.1f}",
        ]
        table.add_row(*cells, *([safe(issue["description"])] if wide else []))
    console.print(table)


def _cell(value: Any, col: str = "") -> str:
    if value is None:
        return "-"
    if col.endswith("_at") and isinstance(value, str) and len(value) >= 19:
        return safe(value[:19].replace("T", " "))  # to the second, UTC (JSON: exact)
    if col == "checksum" and isinstance(value, str) and len(value) > 16:
        return safe(value[:16]) + "..."  # enough to compare by eye; JSON: the whole SHA-256
    if isinstance(value, dict):  # e.g. issue counts by severity
        return safe(", ".join(f"{k} {v}" for k, v in value.items()))
    return safe(value)


def simple_table(console: Console, title: str, rows: list[dict[str, Any]], cols: list[str]) -> None:
    """A list as a table. Id columns are never cut or folded (an id is shown whole, so
    it works when typed or copied); the other columns wrap or are cut around them."""
    table = Table(title=safe(title), show_edge=False)
    for col in cols:
        if col in ID_COLUMNS:
            table.add_column(col, no_wrap=True, min_width=36, overflow="ignore")
        elif col in PREFIX_COLUMNS:
            table.add_column(col, no_wrap=True, min_width=8, overflow="ignore")
        else:
            table.add_column(col)
    for row in rows:
        table.add_row(*(_cell(row.get(c), c) for c in cols))
    console.print(table)


def _number(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else "-"


def _delta_cell(before: Any, after: Any) -> str:
    if not isinstance(before, int | float) or not isinstance(after, int | float):
        return _score_cell(after if isinstance(after, int | float) else None)
    change = after - before
    sign = "+" if change >= 0 else ""
    return f"{_score_cell(before)} -> {_score_cell(after)} ({sign}{change:.1f})"


def fix(console: Console, doc: dict[str, Any], dataset_name: str, command: str = "datrix") -> None:
    """A fix's preview or outcome (``datrix fix``): per fix what it changes, the sample
    of rows before and after (preview), the scores before and after and the issues gone
    (apply)."""
    applied = doc.get("mode") == "apply"
    head = Table.grid(padding=(0, 2))
    version = doc.get("version")
    base = doc.get("base_version")
    if applied:
        what = f"v{base} -> [bold]v{version}[/]" if base is not None else f"v{version}"
    else:
        what = f"preview of v{base}, nothing written" if base is not None else "preview"
    head.add_row(f"[bold]{safe(dataset_name)}[/] {what}", f"fix {safe(doc.get('fix_id'))}")
    console.print(Panel(head, title="Datrix fix", expand=False))
    per_fix = Table(title="Fixes", show_edge=False)
    # Widths hold in an 80-column terminal: names fold, counts and ids never do.
    per_fix.add_column("issue", no_wrap=True, min_width=4)
    per_fix.add_column("type", overflow="fold", min_width=11)
    per_fix.add_column("column", overflow="fold", min_width=10, max_width=40)
    per_fix.add_column("rule", overflow="fold", min_width=12)
    per_fix.add_column("cells", justify="right", no_wrap=True, min_width=5)
    per_fix.add_column("removed", justify="right", no_wrap=True, min_width=7)
    for item in doc.get("fixes") or []:
        per_fix.add_row(
            safe(item.get("issue_id") or "-"),
            safe(item.get("type") or "-"),
            safe(item["column"]) if item.get("column") is not None else "-",
            safe(item.get("rule") or "-"),
            _number(item.get("cells_changed")),
            _number(item.get("rows_removed")),
        )
    console.print(per_fix)
    totals = [
        f"{_number(doc.get(key))} {label}"
        for key, label in (
            ("cells_changed", "cells changed"),
            ("rows_removed", "rows removed"),
            ("rows_affected", "rows affected"),
        )
        if doc.get(key) is not None
    ]
    if totals:
        console.print(("would change: " if not applied else "changed: ") + ", ".join(totals))
    preview = doc.get("preview")
    sample = preview.get("sample") if isinstance(preview, dict) else None
    if sample:
        _sample(console, sample)
    before, after = doc.get("score_before") or {}, doc.get("score_after") or {}
    if applied and (before or after):
        scores = Table(title="Scores before -> after", show_edge=False)
        scores.add_column("dimension")
        scores.add_column("score", justify="right")
        for key in SCORE_KEYS:
            if before.get(key) is None and after.get(key) is None:
                continue
            scores.add_row(key.replace("_", " "), _delta_cell(before.get(key), after.get(key)))
        console.print(scores)
    gone = doc.get("issues_gone")
    if applied and gone is not None:
        shown = [_gone_text(g) for g in gone]
        console.print(
            f"issues gone ({len(shown)}): " + (", ".join(safe(g) for g in shown) or "none")
        )
    if applied:
        name = safe(dataset_name)
        console.print(
            f"[dim]undo: {safe(command)} rollback {name} {safe(doc.get('fix_id'))}; "
            f"changed cells: {safe(command)} provenance {name}[/]"
        )
    else:
        console.print(
            f"[dim]apply: {safe(command)} fix {safe(doc.get('scan_id') or '<scan>')} --apply[/]"
        )


def _gone_text(item: Any) -> str:
    if isinstance(item, dict):
        keys = ("issue_id", "type", "column")
        parts = [str(item.get(k)) for k in keys if item.get(k) is not None]
        return " ".join(parts) if parts else str(item)
    return str(item)


def _sample(console: Console, sample: Any) -> None:
    """The preview's sample rows: each changed cell as before -> after."""
    table = Table(title="Sample (before -> after)", show_edge=False)
    table.add_column("row", justify="right", no_wrap=True)
    table.add_column("changes", overflow="fold")
    for item in sample if isinstance(sample, list) else []:
        if not isinstance(item, dict):
            continue
        given_before, after = item.get("before"), item.get("after")
        before: dict[str, Any] = given_before if isinstance(given_before, dict) else {}
        if not isinstance(after, dict) or item.get("removed"):
            changes = "removed (a duplicate)"
        else:
            changed = item.get("changed")
            columns = changed if isinstance(changed, list) else list(after)
            changes = "; ".join(
                f"{k}: {before.get(k)!r} -> {after.get(k)!r}"
                for k in columns
                if before.get(k) != after.get(k)
            )
        table.add_row(_cell(item.get("row", item.get("row_id"))), safe(changes or "-"))
    console.print(table)


def rolled_back(console: Console, doc: dict[str, Any]) -> None:
    """What ``datrix rollback`` made."""
    line = (
        f"rolled back fix {safe(doc.get('fix_id'))}: version {_cell(doc.get('version'))} "
        f"restores version {_cell(doc.get('restored_version'))}"
    )
    if doc.get("checksum"):
        line += f" (checksum {safe(doc['checksum'])})"
    console.print(line)
    if doc.get("rescan_id"):
        console.print(f"re-scanned: scan {safe(doc['rescan_id'])}")


PROVENANCE_COLS = ["row_id", "column", "old_value", "new_value", "rule", "confidence", "fix_id"]


def provenance(
    console: Console, rows: list[dict[str, Any]], total: int, offset: int, title: str
) -> None:
    """Provenance rows, as ``datrix provenance`` lists them."""
    table = Table(title=safe(title), show_edge=False)
    for col in PROVENANCE_COLS:
        if col == "fix_id":
            table.add_column(col, no_wrap=True, min_width=36, overflow="ignore")
        elif col in ("old_value", "new_value"):
            table.add_column(col, overflow="fold", max_width=40)
        else:
            table.add_column(col, justify="right" if col in ("row_id", "confidence") else "left")
    for row in rows:
        cells = []
        for col in PROVENANCE_COLS:
            value = row.get(col)
            if col == "confidence" and isinstance(value, int | float):
                cells.append(f"{value:.2f}")
            elif col == "column" and value is None:
                cells.append("[dim](row removed)[/]" if row.get("row_id") is not None else "-")
            else:
                cells.append(_cell(value, col))
        table.add_row(*cells)
    console.print(table)
    shown_to = offset + len(rows)
    console.print(
        f"[dim]{plural(total, 'change')}; showing {offset + 1 if rows else 0}-{shown_to}[/]"
    )
