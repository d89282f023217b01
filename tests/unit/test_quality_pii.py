"""PII detection: shapes, checksums, the 30 % column rule, the per-value search, and the
issue it becomes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from datrix.jobs.quality import pii
from datrix.jobs.quality.polars_engine import PolarsScanEngine
from datrix.jobs.report import ScanOptions, ScanReport


def scan(tmp_path: Path, frame: pl.DataFrame) -> ScanReport:
    path = tmp_path / "data.parquet"
    frame.write_parquet(path)
    return PolarsScanEngine().scan(path, ScanOptions())


def pii_columns(report: ScanReport) -> dict[str, str]:
    return {i.column or "": i.description for i in report.issues if i.type == "pii_detected"}


def mask(kind: str, values: Sequence[str | None]) -> list[bool]:
    return [bool(v) for v in pii.kind_mask(kind, pl.Series(values, dtype=pl.String))]


def test_luhn() -> None:
    numbers = ["4111111111111111", "4111111111111112", "79927398713", "5555555555554444", "0"]
    valid = pii.luhn_valid(pl.Series(numbers)).tolist()
    assert valid == [True, False, True, True, True]


def test_iban_mod97() -> None:
    ibans = ["DE89370400440532013000", "GB82WEST12345698765432", "GB82WEST12345698765433"]
    assert pii.iban_valid(pl.Series(ibans)).tolist() == [True, True, False]
    # spaces and lower case are tolerated by the kind check, not by the raw checksum
    assert mask("iban", ["de89 3704 0044 0532 0130 00", "DE00370400440532013000"]) == [
        True,
        False,
    ]


@pytest.mark.parametrize(
    ("kind", "yes", "no"),
    [
        (
            "email",
            ["ada.lovelace@example.com", " x+y@mail.example.org "],
            ["not an email", "a@b", "a@@b.com", "mail me: a@b.com"],
        ),
        (
            "phone",
            ["+1-201-555-0123", "+49 30 1234567", "(201) 555-0123", "201.555.0123"],
            ["2024-01-31", "192.168.10.20", "12345", "4111111111111111", "123-45-6789"],
        ),
        (
            "credit_card",
            ["4111111111111111", "4111 1111 1111 1111", "5555-5555-5555-4444"],
            ["4111111111111112", "1234", "4111-1111-1111", "+1-201-555-0123"],
        ),
        ("ip_address", ["10.0.0.1", "255.255.255.255"], ["256.1.1.1", "1.2.3", "a.b.c.d"]),
        ("ssn", ["123-45-6789"], ["000-45-6789", "666-45-6789", "923-45-6789", "123-00-6789"]),
    ],
)
def test_kind_shapes(kind: str, yes: list[str], no: list[str]) -> None:
    assert mask(kind, [*yes, None]) == [True] * len(yes) + [False]
    assert mask(kind, no) == [False] * len(no)


def test_columns_need_a_real_share(tmp_path: Path) -> None:
    n = 100
    text = [f"note number {i}" for i in range(n)]
    emails = [f"user{i}@example.com" for i in range(n)]
    frame = pl.DataFrame(
        {
            "contact": emails[:40] + text[40:],  # 40 %: flagged, 40 rows
            "remarks": emails[:20] + text[20:],  # 20 %: found value by value
            "card_like": ["4111111111111112"] * n,  # right shape, fails Luhn
            "card_int": pl.Series([4111111111111111] * 50 + [5555555555554444] * 50),
            "ssn": [f"{100 + i:03d}-{10 + i % 80:02d}-{1000 + i:04d}" for i in range(n)],
            "amount": np.arange(n, dtype=np.float64),
        }
    )
    report = scan(tmp_path, frame)
    found = pii_columns(report)
    assert set(found) == {"contact", "remarks", "card_int", "ssn"}
    assert "[email]: 40" in found["contact"]
    # under the 30 % rule, but every value is searched: 20 rows with an e-mail inside
    assert "inside its values in 20 rows" in found["remarks"]
    assert "[email]: 20" in found["remarks"]
    assert "[credit_card]: 100" in found["card_int"]
    assert "[ssn]: 100" in found["ssn"]
    issue = next(i for i in report.issues if i.column == "contact" and i.type == "pii_detected")
    assert report.affected_rows[issue.id] == list(range(40))
    assert (issue.severity, issue.dimension, issue.fix_available) == (
        "warning",
        "consistency",
        True,
    )
    card = next(i for i in report.issues if i.column == "card_int")
    assert card.severity == "warning"  # 100 % of rows, still only a warning


def test_pii_costs_little_score(tmp_path: Path) -> None:
    n = 50
    frame = pl.DataFrame(
        {
            "email": [f"user{i}@example.com" for i in range(n)],
            "ip": [f"10.0.{i}.1" for i in range(n)],
            "x": list(range(n)),
        }
    )
    report = scan(tmp_path, frame)
    assert set(pii_columns(report)) == {"email", "ip"}
    assert report.score.consistency == 98.0  # 1 point per PII column, at most 5
    assert report.score.overall >= 99.0


def test_samples_are_evenly_spaced() -> None:
    frame = pl.DataFrame({"a": [str(i) for i in range(1000)], "b": [None, "x"] * 500})
    samples = pii.sample_frame(frame.lazy(), {"a": 1000, "b": 500}, 100)
    a = samples["a"].explode()
    assert a.len() == 100 and a[0] == "0" and a[-1] == "990"
    assert samples["b"].explode().to_list() == ["x"] * 100
