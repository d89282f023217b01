"""Excel workbooks: the first sheet by default, --sheet NAME, and clear refusals."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest

from tests.integration.conftest import Cli

pytestmark = pytest.mark.integration


def _workbook(path: Path) -> Path:
    book = openpyxl.Workbook()
    sales = book.active
    assert sales is not None
    sales.title = "Sales"
    sales.append(["id", "amount", "region"])
    for i in range(1, 7):
        sales.append([i, i * 1.5, "north" if i % 2 else "south"])
    costs = book.create_sheet("Costs Q1")
    costs.append(["id", "cost"])
    for i in range(1, 4):
        costs.append([i, i * 2])
    book.save(path)
    return path


def test_first_sheet_by_default_and_sheet_by_name(cli: Cli, tmp_path: Path) -> None:
    path = _workbook(tmp_path / "book.xlsx")
    run = cli("scan", str(path), "--format", "json")
    assert run.code == 0, run.stderr
    doc = run.json()
    assert (doc["rows"], doc["columns"]) == (6, 3)
    assert doc["read_as"] == "read as Excel: sheet 'Sales'"
    types = {c["name"]: c["type"] for c in doc["column_profiles"]}
    assert types == {"id": "integer", "amount": "float", "region": "string"}

    run = cli("scan", str(path), "--sheet", "Costs Q1", "--format", "json")
    assert run.code == 0, run.stderr
    doc = run.json()
    assert (doc["rows"], doc["columns"], doc["version"]) == (3, 2, 2)
    assert doc["read_as"] == "read as Excel: sheet 'Costs Q1'"


def test_unknown_sheet_names_the_sheets(cli: Cli, tmp_path: Path) -> None:
    path = _workbook(tmp_path / "book.xlsx")
    run = cli("scan", str(path), "--sheet", "Nope")
    assert run.code == 2
    assert (
        run.stderr
        == "datrix: book.xlsx: no sheet named 'Nope'; its sheets are 'Sales', 'Costs Q1'\n"
    )


def test_fake_workbook_is_refused(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "fake.xlsx"
    path.write_text("id,amount\n1,2\n")
    run = cli("scan", str(path))
    assert run.code == 2
    assert run.stderr.startswith("datrix: fake.xlsx: not a readable Excel workbook")
    assert run.stderr.count("\n") == 1
    assert cli("datasets", "--format", "json").json() == []
