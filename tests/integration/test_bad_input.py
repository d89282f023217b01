"""Bad files end with one clear line and exit 2, and leave the stores consistent."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import Cli

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
