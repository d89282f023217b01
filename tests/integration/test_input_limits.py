"""Malformed text is refused early and in bounded memory (issue 14, item 4).

A 50 MB CSV that is one line of commas took 124 s and 22 GB before it was refused; a 50 MB
single field ended as exit 1 "internal error: field larger than field limit". Each case
here runs the real CLI on a generated 50 MB file and records the child's peak RSS
(``os.wait4``): refused with exit 2 in seconds, well under 1 GiB (measured on the
2-core dev machine, CLI start-up included: 1.5-2.8 s and 150-235 MiB; docs/quality.md,
"Input limits"). pytest -s prints the figures."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.conftest import DATRIX, Cli

pytestmark = pytest.mark.integration

MB = 2**20
SIZE = 50 * MB


def _run(cli: Cli, tmp: Path, *args: str, **env: str) -> tuple[int, str, float, int]:
    """(exit code, stderr, seconds, peak RSS in bytes) of one CLI run."""
    out, err = tmp / "stdout", tmp / "stderr"
    with out.open("wb") as o, err.open("wb") as e:
        started = time.monotonic()
        proc = subprocess.Popen(
            [DATRIX, *args], stdout=o, stderr=e, env={**cli.env(), **env}, stdin=subprocess.DEVNULL
        )
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.monotonic() - started
    return os.waitstatus_to_exitcode(status), err.read_text(), elapsed, usage.ru_maxrss * 1024


def _one_line_of_commas(path: Path) -> None:
    with path.open("wb") as fh:
        for _ in range(SIZE // MB):
            fh.write(b"a," * (MB // 2))


def _one_field(path: Path) -> None:
    with path.open("wb") as fh:
        for _ in range(SIZE // MB):
            fh.write(b"x" * MB)


def _quoted_field_across_lines(path: Path) -> None:
    with path.open("wb") as fh:
        fh.write(b'id,text\n1,"')
        for _ in range(SIZE // MB):
            fh.write(b"ab\n" * (MB // 3 + 1))
        fh.write(b'"\n2,b\n')


def _long_line_late(path: Path) -> None:
    """30 MB of good rows, then one 20 MB line."""
    with path.open("wb") as fh:
        fh.write(b"a,b\n")
        fh.write(b"1,x\n" * (30 * MB // 4))
        fh.write(b"2," + b"y" * (20 * MB) + b"\n")


CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "one-line-of-commas": (_one_line_of_commas, "line 1 is longer than 16 MB (DATRIX_MAX_LINE_MB)"),
    "one-field": (_one_field, "line 1 is longer than 16 MB (DATRIX_MAX_LINE_MB)"),
    "quoted-field-across-lines": (
        _quoted_field_across_lines,
        "a record (a quoted field across lines) is longer than 16 MB",
    ),
    "long-line-late": (_long_line_late, "line 7,864,322 is longer than 16 MB"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_50mb_malformed_csv_is_refused_fast_in_bounded_memory(
    cli: Cli, tmp_path: Path, case: str
) -> None:
    make, expected = CASES[case]
    path = tmp_path / f"{case}.csv"
    make(path)
    assert path.stat().st_size >= SIZE
    code, stderr, seconds, rss = _run(cli, tmp_path, "scan", str(path))
    print(f"{case}: exit {code} in {seconds:.2f} s, peak RSS {rss / MB:.0f} MiB")
    assert code == 2, stderr
    assert stderr.startswith(f"datrix: {path.name}: ") and stderr.count("\n") == 1, stderr
    assert expected in stderr
    assert "DATRIX_MAX_LINE_MB higher" in stderr  # how to raise it
    assert seconds < 60  # was 124 s for the one-line file (1.5-2.8 s measured idle)
    assert rss < 1024 * MB  # was 22 GB
    assert cli("datasets", "--format", "json").json() == []


def test_header_with_too_many_columns(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"c{i}" for i in range(30_000)) + "\n" + "1," * 29_999 + "1\n")
    code, stderr, seconds, rss = _run(cli, tmp_path, "scan", str(path))
    assert code == 2, stderr
    assert stderr == (
        "datrix: wide.csv: the first line has 30,000 fields, more than 20,000 columns "
        "(DATRIX_MAX_COLUMNS); set DATRIX_MAX_COLUMNS higher to read it\n"
    )
    assert seconds < 30 and rss < 1024 * MB


def test_limits_can_be_raised_and_lowered(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    path.write_text("id,text\n1," + "y" * 3 * MB + "\n2,short\n")
    code, stderr, _, _ = _run(cli, tmp_path, "scan", str(path), DATRIX_MAX_LINE_MB="1")
    assert code == 2 and "line 2 is longer than 1 MB" in stderr, stderr
    code, stderr, _, _ = _run(cli, tmp_path, "scan", str(path), DATRIX_MAX_LINE_MB="4")
    assert code == 0, stderr
    code, stderr, _, _ = _run(cli, tmp_path, "scan", str(path), DATRIX_MAX_COLUMNS="1")
    assert code == 2 and "more than 1 columns (DATRIX_MAX_COLUMNS)" in stderr, stderr
    code, stderr, _, _ = _run(cli, tmp_path, "scan", str(path), DATRIX_MAX_LINE_MB="lots")
    assert (
        code == 2 and stderr == "datrix: DATRIX_MAX_LINE_MB must be a positive number, got 'lots'\n"
    )
