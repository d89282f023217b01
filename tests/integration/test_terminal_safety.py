"""Data never controls the terminal: rich markup and control characters in column names,
values and dataset names print as visible text under a pseudo-terminal, and JSON keeps
the exact text."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from tests.integration.conftest import DATRIX, Cli
from tests.integration.terminal import run_in_terminal

pytestmark = pytest.mark.integration

MARKUP = "[bold red]EVIL[/bold red][link=http://evil.example]x[/link]"
TITLE = "\x1b]0;pwned\x07"  # OSC 0: sets the terminal's window title
SHOWN_TITLE = "\\x1b]0;pwned\\x07"  # how render.printable shows it


def _squeeze(text: str) -> str:
    """The screen's text without table borders and whitespace (long cells fold)."""
    return re.sub(r"[\s│┃]+", "", text)


@pytest.fixture
def evil_csv(tmp_path: Path) -> Path:
    path = tmp_path / "evil.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", MARKUP, TITLE, "city"])
        for i in range(400):
            city = TITLE if i % 3 else TITLE.upper()  # variants of a value holding ESC
            w.writerow([i, "" if i % 5 == 0 else i * 2, "" if i % 7 == 0 else f"v{i % 4}", city])
    return path


def test_markup_and_escape_sequences_in_data_print_as_text(cli: Cli, evil_csv: Path) -> None:
    name = "[blink]sales[/blink] :warning:"
    run = run_in_terminal([DATRIX, "scan", str(evil_csv), "--name", name], cli.env(), columns=200)
    assert run.code == 0, run.text[-3000:]
    # nothing from the data reached the terminal as a control sequence: no OSC at all
    # (window titles, OSC 8 hyperlinks), no BEL, and no raw ESC of the title sequence
    assert b"\x1b]" not in run.raw
    assert b"\x07" not in run.raw
    assert b"pwned\x07" not in run.raw
    assert b"evil.example" in run.raw  # printed, as text
    # the column names print literally, markup and all
    flat = _squeeze(run.text)
    assert _squeeze(MARKUP) in flat
    assert SHOWN_TITLE in flat
    assert "[blink]sales[/blink]:warning:" in flat  # the dataset name: no style, no emoji
    assert "\u26a0" not in run.text


def test_issue_list_and_errors_show_control_characters_visibly(cli: Cli, evil_csv: Path) -> None:
    scan = cli("scan", str(evil_csv), "--name", "evil", "--format", "json")
    assert scan.code == 0, scan.stderr
    doc = scan.json()
    # JSON keeps the exact text
    assert [c["name"] for c in doc["column_profiles"]] == ["id", MARKUP, TITLE, "city"]
    variants = [i for i in doc["issues"] if i["type"] == "inconsistent_format"]
    assert variants and variants[0]["column"] == "city"

    run = run_in_terminal([DATRIX, "issues", doc["scan_id"]], cli.env(), columns=220)
    assert run.code == 0, run.text[-3000:]
    assert b"\x1b]" not in run.raw and b"\x07" not in run.raw
    flat = _squeeze(run.text)
    assert _squeeze(MARKUP) in flat and SHOWN_TITLE in flat

    # an error line naming data (here the --label the user typed) is made visible too
    bad = run_in_terminal(
        [DATRIX, "scan", str(evil_csv), "--label", "x\x1b]0;owned\x07"], cli.env()
    )
    assert bad.code == 2, bad.text
    assert b"\x1b]0;owned" not in bad.raw and b"\x07" not in bad.raw
    assert "x\\x1b]0;owned\\x07" in bad.text
