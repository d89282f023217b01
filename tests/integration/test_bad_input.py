"""Bad files end with one clear line and exit 2, and leave the stores consistent."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import DATRIX, Cli

pytestmark = pytest.mark.integration

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000") + b"\x00" * 40


def _write(tmp: Path, name: str, data: bytes) -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path


CASES = {
    "missing": (None, "no such file"),
    "empty": (b"", "empty"),
    "whitespace": (b"   \n\n  \n", "whitespace"),
    "binary": (PNG, "binary"),
    "png-named-csv": (PNG, "binary"),
    "undecodable": ("name,city\nAnna,M\u00fcnchen\n".encode("latin-1"), "not valid utf-8"),
    "ragged-short": (b"a,b,c\n1,2,3\n4,5\n", "ragged"),
    "ragged-long": (b"a,b,c\n1,2,3\n4,5,6,7\n", "ragged"),
    "bad-json": (b'[{"a": 1}, {"a": ', "invalid json"),
    "json-not-rows": (b'{"a": 1}', "array of objects"),
    "corrupt-parquet": (b"PAR1" + b"\x01" * 64, "parquet"),
}
SUFFIX = {
    "bad-json": ".json",
    "json-not-rows": ".json",
    "corrupt-parquet": ".parquet",
    "binary": ".bin",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_file_is_one_line_exit_2(cli: Cli, tmp_path: Path, case: str) -> None:
    data, expected = CASES[case]
    path = tmp_path / f"{case}{SUFFIX.get(case, '.csv')}"
    if data is not None:
        path.write_bytes(data)
    run = cli("scan", str(path))
    assert run.code == 2, (run.stdout, run.stderr)
    assert run.stderr.count("\n") == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert expected in run.stderr.lower()


def test_bad_inputs_leave_stores_consistent(cli: Cli, tmp_path: Path) -> None:
    good = _write(tmp_path, "good.csv", b"a,b\n1,x\n2,y\n2,y\n")
    assert cli("scan", str(good), "--name", "good").code == 0
    for case in ("empty", "ragged-short", "undecodable"):
        data, _ = CASES[case]
        assert data is not None
        assert cli("scan", str(_write(tmp_path, case + ".csv", data)), "--name", "good").code == 2
    datasets = cli("datasets", "--format", "json").json()
    assert [(d["name"], d["latest_version"]) for d in datasets] == [("good", 1)]
    assert cli("audit", "verify").code == 0
    assert cli("replay", "--verify").code == 0


def test_encoding_option_reads_latin1(cli: Cli, tmp_path: Path) -> None:
    path = _write(
        tmp_path, "latin.csv", "name,city\nAnna,M\u00fcnchen\nBo,K\u00f6ln\n".encode("latin-1")
    )
    run = cli("scan", str(path), "--encoding", "latin-1", "--format", "json")
    assert run.code == 0, run.stderr
    assert run.json()["rows"] == 2


def test_label_must_be_a_column(cli: Cli, tmp_path: Path) -> None:
    path = _write(tmp_path, "l.csv", b"a,b\n1,2\n")
    run = cli("scan", str(path), "--label", "nope")
    assert run.code == 2 and "not a column" in run.stderr


# ---- every refusal of input or arguments (issue 14, items 4-7 and 12) -----------------
def _xlsx(rows: list[list[object]], sheet: str = "Data") -> bytes:
    import io

    import openpyxl

    book = openpyxl.Workbook()
    ws = book.active
    assert ws is not None
    ws.title = sheet
    for row in rows:
        ws.append(row)
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def _parquet_with_duplicate_names() -> bytes:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_arrays([pa.array([1, 2]), pa.array([3, 4])], names=["a", "a"])
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


GOOD = b"a,b\n1,x\n2,y\n"
# case: (file name, content, extra arguments, environment, expected part of the line)
REFUSALS: dict[str, tuple[str, bytes, tuple[str, ...], dict[str, str], str]] = {
    "encoding-unknown": ("t.csv", GOOD, ("--encoding", "bogus"), {}, "not a known text encoding"),
    "line-too-long": (
        "t.csv",
        b"a,b\n1," + b"x" * 2**21 + b"\n",
        (),
        {"DATRIX_MAX_LINE_MB": "1"},
        "line 2 is longer than 1 MB (DATRIX_MAX_LINE_MB)",
    ),
    "one-line-of-commas": (
        "t.csv",
        b"a," * 2**20,
        (),
        {"DATRIX_MAX_LINE_MB": "1"},
        "line 1 is longer than 1 MB",
    ),
    "field-across-lines-too-long": (
        "t.csv",
        b'a,b\n1,"' + b"x\n" * 2**20 + b'"\n',
        (),
        {"DATRIX_MAX_LINE_MB": "1"},
        "a record (a quoted field across lines) is longer than 1 MB",
    ),
    "too-many-columns": (
        "t.csv",
        b"a,b,c,d\n1,2,3,4\n",
        (),
        {"DATRIX_MAX_COLUMNS": "3"},
        "the first line has 4 fields, more than 3 columns (DATRIX_MAX_COLUMNS)",
    ),
    "limit-not-a-number": ("t.csv", GOOD, (), {"DATRIX_MAX_LINE_MB": "x"}, "must be a positive"),
    "header-only-csv": ("t.csv", b"a,b,c\n", (), {}, "the file has no rows"),
    "header-only-excel": ("t.xlsx", _xlsx([["a", "b"]]), (), {}, "the file has no rows"),
    "header-only-json": ("t.json", b"[]", (), {}, "no columns found"),
    "duplicate-columns-csv": ("t.csv", b"a,b,a\n1,2,3\n", (), {}, "duplicate column names: 'a'"),
    "duplicate-columns-json": (
        "t.json",
        b'[{"a": 1, "a": 2}]',
        (),
        {},
        "duplicate column names: 'a'",
    ),
    "duplicate-columns-jsonl": (
        "t.jsonl",
        b'{"a": 1, "b": 2}\n{"b": 1, "b": 2}\n',
        (),
        {},
        "line 2: duplicate column names: 'b'",
    ),
    "duplicate-columns-excel": (
        "t.xlsx",
        _xlsx([["a", "b", "b"], [1, 2, 3]]),
        (),
        {},
        "duplicate column names: 'b'",
    ),
    "duplicate-columns-parquet": (
        "t.parquet",
        _parquet_with_duplicate_names(),
        (),
        {},
        "duplicate column names: 'a'",
    ),
    "fake-excel": ("t.xlsx", b"PK\x03\x04 not really", (), {}, "not a readable excel workbook"),
    "unknown-sheet": (
        "t.xlsx",
        _xlsx([["a"], [1]]),
        ("--sheet", "Other"),
        {},
        "no sheet named 'Other'; its sheets are 'Data'",
    ),
    "sheet-on-csv": ("t.csv", GOOD, ("--sheet", "x"), {}, "--sheet applies to excel files"),
    "csv-option-on-parquet": (
        "t.parquet",
        b"PAR1",
        ("--delimiter", ";"),
        {},
        "apply to csv files",
    ),
    "delimiter-two-chars": ("t.csv", GOOD, ("--delimiter", ";;"), {}, "--delimiter must be one"),
    "quote-is-delimiter": (
        "t.csv",
        GOOD,
        ("--delimiter", ";", "--quote", ";"),
        {},
        "--quote and --delimiter",
    ),
    "decimal-comma-with-commas": (
        "t.csv",
        GOOD,
        ("--decimal", ","),
        {},
        "cannot also be the decimal mark",
    ),
    "decimal-not-a-mark": ("t.csv", GOOD, ("--decimal", ";"), {}, "invalid value for '--decimal'"),
    "engine-unknown": ("t.csv", GOOD, ("--engine", "x"), {}, "invalid value for '--engine'"),
    "label-not-a-column": ("t.csv", GOOD, ("--label", "nope"), {}, "not a column"),
    "label-all-null": (
        "t.csv",
        b"a,y\n1,\n2,\n",
        ("--label", "y"),
        {},
        "--label 'y' has no values",
    ),
    "name-empty": ("t.csv", GOOD, ("--name", ""), {}, "--name: a dataset needs a non-empty name"),
    "name-blank": ("t.csv", GOOD, ("--name", "   "), {}, "a dataset needs a non-empty name"),
    "name-newline": ("t.csv", GOOD, ("--name", "a\nb"), {}, "printable text on one line"),
    "name-control": ("t.csv", GOOD, ("--name", "a\x1b]0;x\x07"), {}, "printable text"),
    "name-too-long": ("t.csv", GOOD, ("--name", "n" * 201), {}, "at most 200 characters"),
    "file-name-unusable": ("a\x07b.csv", GOOD, (), {}, "the file name cannot be used, pass --name"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_every_refusal_is_exit_2_one_line_and_stores_nothing(
    cli: Cli, tmp_path: Path, case: str
) -> None:
    file_name, data, args, env, expected = REFUSALS[case]
    path = _write(tmp_path, file_name, data)
    proc = subprocess.run(
        [DATRIX, "scan", str(path), *args],
        capture_output=True,
        text=True,
        env={**cli.env(), **env},
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stderr.startswith("datrix: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "internal error" not in proc.stderr
    assert expected.lower() in proc.stderr.lower(), proc.stderr
    objects = cli.home / "objects"
    assert not objects.exists() or not [p for p in objects.rglob("*") if p.is_file()]
