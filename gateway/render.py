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


def _score_style(score: float) -> str:
    return "green" if score >= 85 else "yellow" if score >= 60 else "red"


def report(console: Console, doc: dict[str, Any], dataset_name: str, max_issues: int = 25) -> None:
    score = doc["score"]
    head = Table.grid(padding=(0, 2))
    head.add_row(
        f"[bold]{dataset_name}[/] v{doc['version']}",
        f"{doc['rows']:,} rows x {doc['columns']} columns",
        f"scan {doc['scan_id']}",
    )
    console.print(Panel(head, title="Datrix quality report", expand=False))
    scores = Table(title="Scores (0-100)", show_edge=False)
    for key in (
        "overall",
        "completeness",
        "consistency",
        "accuracy",
        "distribution",
        "label_quality",
    ):
        scores.add_column(key.replace("_", " "), justify="right")
    scores.add_row(
        *(
            f"[{_score_style(score[k])}]{score[k]:.1f}[/]"
            for k in (
                "overall",
                "completeness",
                "consistency",
                "accuracy",
                "distribution",
                "label_quality",
            )
        )
    )
    console.print(scores)
    issues(console, doc["issues"][:max_issues], title=f"Issues by impact ({len(doc['issues'])})")
    if len(doc["issues"]) > max_issues:
        console.print(f"... {len(doc['issues']) - max_issues} more: datrix issues {doc['scan_id']}")


def issues(console: Console, rows: list[dict[str, Any]], title: str = "Issues") -> None:
    wide = console.width >= 140
    table = Table(title=title, show_edge=False)
    table.add_column("id", no_wrap=True)
    table.add_column("type", no_wrap=True)
    table.add_column("column", no_wrap=True, overflow="fold")
    table.add_column("severity", no_wrap=True)
    table.add_column("affected", justify="right", no_wrap=True)
    table.add_column("%", justify="right", no_wrap=True)
    table.add_column("impact", justify="right", no_wrap=True)
    if wide:
        table.add_column("description", overflow="fold")
    for issue in rows:
        cells = [
            issue["id"],
            issue["type"],
            issue["column"] or "-",
            f"[{SEVERITY_STYLE.get(issue['severity'], '')}]{issue['severity']}[/]",
            f"{issue['affected_count']:,}",
            f"{issue['affected_pct']:.2f}",
            f"{issue['impact_score']:.1f}",
        ]
        table.add_row(*cells, *([issue["description"]] if wide else []))
    console.print(table)


def simple_table(console: Console, title: str, rows: list[dict[str, Any]], cols: list[str]) -> None:
    table = Table(title=title, show_edge=False)
    for col in cols:
        table.add_column(col)
    for row in rows:
        table.add_row(*("-" if row.get(c) is None else str(row.get(c)) for c in cols))
    console.print(table)
