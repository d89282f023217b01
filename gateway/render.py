"""Rich rendering of reports and lists for the terminal."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

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
    if doc.get("read_as"):  # how the file was read: a Text, never markup (sheet names)
        console.print(Text(doc["read_as"], style="dim"))
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
