"""datrix.gateway.render: one sanitiser for every data-derived string the CLI prints."""

from __future__ import annotations

import io
import re

from rich.console import Console

from datrix.gateway import render

EVIL = "[bold red]EVIL[/bold red][link=http://evil.example]x[/link]"
SGR = re.compile(r"\x1b\[[0-9;]*m")  # colours and bold: what rich itself adds


def _seen(raw: str) -> str:
    return SGR.sub("", raw)


def test_printable_shows_every_control_character_as_its_escape() -> None:
    assert render.printable("a\x1b]0;pwned\x07b") == "a\\x1b]0;pwned\\x07b"
    assert render.printable("tab\tnew\nline\r") == "tab\\x09new\\x0aline\\x0d"
    assert render.printable("del\x7f c1\x9b\x85") == "del\\x7f c1\\x9b\\x85"
    assert render.printable("ünïcödé ✓ [x]") == "ünïcödé ✓ [x]"  # printable text is kept


def test_safe_text_prints_literally_on_a_colour_terminal() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, color_system="truecolor", emoji=False)
    console.print(render.safe(EVIL + " :warning: \x1b]0;t\x07 end"))
    raw = buffer.getvalue()
    assert "\x1b]" not in raw and "\x07" not in raw  # no OSC 8 link, no title
    seen = _seen(raw)
    assert EVIL in seen and ":warning:" in seen and "\\x1b]0;t\\x07" in seen


def test_report_renders_data_fields_safely() -> None:
    doc = {
        "version": 1,
        "scan_id": "s-1",
        "rows": 1,
        "columns": 2,
        "score": dict.fromkeys(
            ("overall", "completeness", "consistency", "accuracy", "distribution"), 90.0
        )
        | {"label_quality": None},
        "overall_dimensions": ["completeness", "consistency", "accuracy", "distribution"],
        "column_profiles": [{"name": EVIL, "null_count": 1, "missingness": "MAR"}],
        "issues": [
            {
                "id": "I001",
                "type": "null_values",
                "column": EVIL,
                "severity": "critical",
                "description": f"1 null value in column {EVIL!r}\x1b[2J",
                "affected_count": 1,
                "affected_pct": 100.0,
                "impact_score": 100.0,
            }
        ],
    }
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=400, emoji=False)
    render.report(console, doc, "[blink]ds\x1b[5m", command=".venv/bin/datrix")
    raw = buffer.getvalue()
    assert "\x1b]" not in raw and "\x1b[2J" not in raw and "\x1b[5m" not in raw
    seen = _seen(raw)
    assert "[blink]ds\\x1b[5m v1" in seen and "1 row x 2 columns" in seen
    assert EVIL in seen and "\\x1b[2J" in seen and "null_values (MAR)" in seen
    assert "n/a" in seen


def test_id_prefix_columns_are_never_cut_in_a_narrow_terminal() -> None:
    """`datrix jobs list` shows 8-character prefixes that must work when typed; on an
    80-column terminal rich cut them to 'bb7a17…'."""
    buf = io.StringIO()
    console = Console(file=buf, width=80, color_system=None)
    row = {
        "job": "bb7a1709",
        "scan": "9d926b90",
        "dataset": "a dataset with a long name",
        "version": 1,
        "status": "completed",
        "phase": None,
        "started": "2026-11-30T23:09:16.116899+00:00",
        "rows": "500",
        "error": "cancelled by cli:someone with a long name",
    }
    render.simple_table(console, "Jobs", [row], list(row))
    assert "bb7a1709" in buf.getvalue() and "9d926b90" in buf.getvalue()
