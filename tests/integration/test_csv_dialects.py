"""CSV as people export it: the dialect is sniffed, shown in the report, and overridable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Cli

pytestmark = pytest.mark.integration

# What Excel writes as "CSV UTF-8" in a German locale: BOM, CRLF, ';', decimal commas,
# quoted fields holding ';' and doubled quotes.
GERMAN = (
    "\ufeffKunde;Betrag;Menge;Notiz\r\n"
    '"Müller; Anna";1234,56;3;"sagt ""hallo"""\r\n'
    "Schmidt;-7,5;1;\r\n"
    'Lang;0,25;12;"a;b"\r\n'
    "Öztürk;19,99;2;ok\r\n"
)


def _types(doc: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["type"] for c in doc["column_profiles"]}


def _scan_json(cli: Cli, path: Path, *options: str) -> dict[str, Any]:
    run = cli("scan", str(path), "--format", "json", *options)
    assert run.code == 0, run.stderr
    doc: dict[str, Any] = run.json()
    return doc


def test_german_export(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "umsatz.csv"
    path.write_text(GERMAN, encoding="utf-8", newline="")
    doc = _scan_json(cli, path)
    assert (doc["rows"], doc["columns"]) == (4, 4)
    assert _types(doc) == {
        "Kunde": "string",
        "Betrag": "float",
        "Menge": "integer",
        "Notiz": "string",
    }
    assert doc["read_as"] == "read as CSV: delimiter ';', quote '\"', decimal ',', header yes"
    table = cli("report", doc["scan_id"])
    assert table.code == 0
    assert "read as CSV: delimiter ';', quote '\"', decimal ',', header yes" in table.stdout


def test_german_export_in_cp1252(cli: Cli, tmp_path: Path) -> None:
    """Excel's plain "CSV" in a German locale is Windows-1252, no BOM."""
    path = tmp_path / "umsatz.csv"
    path.write_bytes(GERMAN.removeprefix("\ufeff").encode("cp1252"))
    doc = _scan_json(cli, path, "--encoding", "cp1252")
    assert _types(doc)["Betrag"] == "float"
    assert "delimiter ';'" in doc["read_as"]


def test_pipe_separated(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("id|name|score\n1|a, b|1.5\n2|c|2.5\n3|d|3.5\n")
    doc = _scan_json(cli, path)
    assert (doc["rows"], doc["columns"]) == (3, 3)
    assert doc["read_as"].startswith("read as CSV: delimiter '|'")
    assert _types(doc)["score"] == "float"


def test_tab_in_a_csv(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("id\tname\tscore\n1\ta, b\t1.5\n2\tc\t2.5\n")
    doc = _scan_json(cli, path)
    assert (doc["rows"], doc["columns"]) == (2, 3)
    assert "delimiter tab" in doc["read_as"]


def test_no_header(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "n.csv"
    path.write_text("1,2.5,x\n2,3.5,y\n3,4.5,z\n")
    doc = _scan_json(cli, path)
    assert doc["rows"] == 3
    assert "header no" in doc["read_as"]
    assert list(_types(doc)) == ["column_0", "column_1", "column_2"]
    # years as column names look like data: --header says otherwise
    years = tmp_path / "years.csv"
    years.write_text("2024,2025\n1,2\n3,4\n")
    assert "header no" in _scan_json(cli, years)["read_as"]
    doc = _scan_json(cli, years, "--header", "--name", "years2")
    assert doc["rows"] == 2 and list(_types(doc)) == ["2024", "2025"]


def test_overrides(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "umsatz.csv"
    path.write_text(GERMAN, encoding="utf-8", newline="")
    # --decimal . keeps "1234,56" as text
    doc = _scan_json(cli, path, "--decimal", ".", "--name", "dot")
    assert _types(doc)["Betrag"] == "string"
    assert "decimal '.'" in doc["read_as"]
    # --no-header: the header line becomes a row
    doc = _scan_json(cli, path, "--no-header", "--name", "nohead")
    assert doc["rows"] == 5 and "header no" in doc["read_as"]
    # --delimiter and --quote: a file whose quotes are single quotes, separated by '|'
    other = tmp_path / "q.csv"
    other.write_text("a|b\n'x|y'|1\n'z'|2\n")
    doc = _scan_json(cli, other, "--delimiter", "|", "--quote", "'")
    assert (doc["rows"], doc["columns"]) == (2, 2)
    # the same file read another way is a new version of the same dataset
    again = _scan_json(cli, path, "--decimal", ".", "--name", "dot")
    assert again["version"] == 1
    changed = _scan_json(cli, path, "--name", "dot")
    assert changed["version"] == 2 and _types(changed)["Betrag"] == "float"
