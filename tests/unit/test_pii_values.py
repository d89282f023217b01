"""PII inside values: ``find_pii_spans`` per kind (valid forms found, look-alikes left),
masking, the per-value column finding, the masked profiles and HTML report, and the
precision/recall floors on the generator's free text (``bench generate --free-text``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from datrix.gateway.html_report import render_html
from datrix.jobs.bench.generate import FREE_TEXT_KINDS, generate
from datrix.jobs.quality import pii
from datrix.jobs.quality.pii import PiiSpan, find_pii_spans, mask_text, redact_spans
from datrix.jobs.quality.polars_engine import PolarsScanEngine
from datrix.jobs.report import ScanOptions, ScanReport


def found(text: str) -> list[tuple[str, str]]:
    return [(text[s.start : s.end], s.kind) for s in find_pii_spans(text)]


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("ada.lovelace@example.com", "email"),
        ("o'brien+tag@mail.example.co.uk", "email"),
        ("+44 20 7946 0958", "phone"),
        ("+1-415-867-5309", "phone"),
        ("+1 (212) 555-0123", "phone"),
        ("0044 20 7946 0958", "phone"),
        ("+49 30 12345678", "phone"),
        ("+33 6 12 34 56 78", "phone"),
        ("030 1234567", "phone"),  # national forms: Germany, France, the UK, the US
        ("06 12 34 56 78", "phone"),
        ("020 7946 0958", "phone"),
        ("(415) 867-5309", "phone"),
        ("4111 1111 1111 1111", "card"),
        ("4111-1111-1111-1111", "card"),
        ("5555555555554444", "card"),
        ("3782 822463 10005", "card"),  # American Express, 4-6-5
        ("DE89 3704 0044 0532 0130 00", "iban"),
        ("GB82WEST12345698765432", "iban"),
        ("NL91ABNA0417164300", "iban"),
        ("192.168.1.20", "ip"),
        ("2001:db8:85a3::8a2e:370:7334", "ip"),
        ("fe80::1ff:fe23:4567:890a", "ip"),
        ("123-45-6789", "national_id"),  # US SSN
        ("AB 12 34 56 C", "national_id"),  # UK NINO
        ("CE 123456 D", "national_id"),
        ("1 84 12 76 451 089 46", "national_id"),  # French NIR, key 46
    ],
)
def test_each_kind_inside_a_sentence(value: str, kind: str) -> None:
    text = f"Customer wrote: please use {value}, thanks."
    assert found(text) == [(value, kind)]
    start = text.index(value)
    assert find_pii_spans(text) == [PiiSpan(start, start + len(value), kind)]


def test_compact_nino_needs_its_word() -> None:
    assert found("NI number: CE123456D") == [("CE123456D", "national_id")]
    assert found("Code CE123456D shipped") == []  # a product code of the same shape


def test_bare_numbers_after_an_identifier_word_are_identifiers() -> None:
    assert found("my card 4111111111111111") == [("4111111111111111", "card")]
    assert found("Order 4111111111111111 shipped") == []
    assert found("tel 0612345678") == [("0612345678", "phone")]
    assert found("Account 0612345678 closed") == []
    assert found("Order ref: 06 12 34 56 78") == [("06 12 34 56 78", "phone")]  # written as one


def test_bsn_needs_its_word_and_its_11_test() -> None:
    assert found("BSN 111222333 on file") == [("111222333", "national_id")]
    assert found("bsn: 1112.22.333") == [("1112.22.333", "national_id")]
    assert found("BSN 111222334 on file") == []  # fails the 11-test
    assert found("order 111222333 on file") == []  # nine bare digits: no BSN


@pytest.mark.parametrize(
    "text",
    [
        "Order 123456789 shipped on 2024-01-15, total 1,299.00 EUR.",
        "Upgraded to version 4.2.0.1 after ticket #48213.",
        "Firmware 10.12.3.4 installed on 17.04.2020; v1.2.3.4 too.",
        "Called back at 10:30:45, resolved in 15 minutes; 12:30 - 14:00.",
        "Invoice INV-2024-0012345 paid 12.99, discount 15%.",
        "Card 4111 1111 1111 1112 fails Luhn; 4111-1111-1111 is too short.",
        "IBAN DE89 3704 0044 0532 0130 01 has a wrong check digit.",
        "256.1.1.1 is no address, nor is 01.02.03.04 or 1.2.3.",
        "Social 000-12-3456, 666-12-3456, 923-45-6789 are never issued.",
        "Phone 12345, year 2019-2023, price 0.123456789, zip 10115.",
        "Dates 01.02.2024, 2024/01/31, 31-01-2024 and 20240131.",
        "std::vector and a::b and Foo::Bar are code, not IPv6.",
        "Reference AB12 but nothing more; ISBN 978-3-16-148410-0; SKU 5012345678900.",
        "user at example dot com, @handle, me@localhost",
        "commit de88947495c064f4830454345253b565b5496cdd, id 02476440-dde6-5b1b-21f3-51cd92c3",
        "Ref 38986199543878 noted; Diners-like bare numbers are not cards.",
        "",
    ],
)
def test_look_alikes_stay_clean(text: str) -> None:
    assert found(text) == []


def test_overlaps_resolve_to_the_earlier_kind() -> None:
    # the IBAN's digits are not also a card, the e-mail's digits not a phone
    text = "DE89370400440532013000 and 4155551234567@example.com"
    assert [k for _, k in found(text)] == ["iban", "email"]


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="needs a str"):
        find_pii_spans(123)  # type: ignore[arg-type]


def test_redact_and_mask() -> None:
    text = "Mail ada@example.com or call +44 20 7946 0958."
    assert redact_spans(text) == "Mail <EMAIL> or call <PHONE>."
    masked = mask_text(text)
    assert (
        masked == "Mail a\u2022\u2022\u2022@e\u2022\u2022\u2022.com or call +\u2022\u2022\u20228."
    )
    assert "ada" not in masked and "7946" not in masked
    assert mask_text("Smith") == "S\u2022\u2022\u2022"  # a value without a span: first char


def test_embedded_pii_counts_rows_and_kinds() -> None:
    values = pl.Series(
        ["hello", None, "mail a@example.com, b@example.com", "call +1-415-867-5309", "x" * 5]
    )
    result = pii.embedded_pii(values)
    assert pii.kind_bits(result.kinds) == {
        "email": 1,
        "phone": 1,
        "card": 0,
        "iban": 0,
        "ip": 0,
        "national_id": 0,
    }
    assert result.spans["email"] == 2
    assert np.flatnonzero(result.kinds).tolist() == [2, 3]


def scan(tmp_path: Path, frame: pl.DataFrame) -> ScanReport:
    path = tmp_path / "data.parquet"
    frame.write_parquet(path)
    return PolarsScanEngine().scan(path, ScanOptions())


def test_free_text_column_reported_with_rows_and_kinds_never_values(tmp_path: Path) -> None:
    n = 400
    notes = [
        f"Order {100000 + i} shipped on 2024-01-{1 + i % 28:02d}, total {i}.99" for i in range(n)
    ]
    notes[7] = "Please write to jane.doe@example.com about it"
    notes[150] = "Call +44 20 7946 0958 or jane.doe@example.com"
    notes[299] = "Refund to DE89 3704 0044 0532 0130 00"
    clean = [
        f"Ticket {i}: upgraded to version 2.{i % 9}.{i % 7}.1 at 10:{i % 60:02d}" for i in range(n)
    ]
    frame = pl.DataFrame({"note": notes, "remark": clean, "amount": np.arange(n) * 1.5})
    report = scan(tmp_path, frame)
    issues = [i for i in report.issues if i.type == "pii_detected"]
    assert [i.column for i in issues] == ["note"]  # the PII-free text column stays clean
    issue = issues[0]
    assert report.affected_rows[issue.id] == [7, 150, 299]
    assert issue.affected_count == 3
    assert "[email]: 2" in issue.description and "[phone]: 1" in issue.description
    assert "[iban]: 1" in issue.description
    document = json.dumps(report.to_dict() if hasattr(report, "to_dict") else str(report))
    for secret in ("jane.doe", "7946", "3704"):
        assert secret not in issue.description
        assert secret not in document
    profile = next(p for p in report.column_profiles if p.name == "note")
    assert profile.extra["pii_masked"] is True
    tops = [t["value"] for t in profile.extra["top_values"]]
    assert tops and all("\u2022" in v for v in tops)


def test_pii_column_profiles_and_html_are_masked(tmp_path: Path) -> None:
    n = 60
    frame = pl.DataFrame(
        {
            "email": [f"person{i}@example.com" for i in range(n)],
            "card": pl.Series([4111111111111111] * n),
            "x": [1.0] * (n - 1) + [1e9],  # an outlier: its row is shown in a sample table
        }
    )
    frame = pl.concat([frame, frame.head(2)])  # exact duplicates: sample rows too
    path = tmp_path / "data.parquet"
    frame.write_parquet(path)
    report = PolarsScanEngine().scan(path, ScanOptions())
    assert {i.column for i in report.issues if i.type == "pii_detected"} == {"email", "card"}
    card = next(p for p in report.column_profiles if p.name == "card")
    assert not {"min", "max", "p25", "p50", "p75"} & set(card.extra)
    assert card.extra["top_values"][0]["value"] == "4\u2022\u2022\u20221"
    page = render_html(report, path, "t")
    assert "person0@example.com" not in page and "person1" not in page
    assert "4111111111111111" not in page and "4,111" not in page
    assert "p\u2022\u2022\u2022@e\u2022\u2022\u2022.com" in page


@pytest.fixture(scope="module")
def free_text(tmp_path_factory: pytest.TempPathFactory) -> tuple[pl.DataFrame, dict[str, object]]:
    out = tmp_path_factory.mktemp("free_text")
    truth = generate(4000, out, seed=5, free_text=True)
    return pl.read_parquet(out / "dirty.parquet"), truth


def test_generator_free_text_truth(free_text: tuple[pl.DataFrame, dict[str, object]]) -> None:
    frame, truth = free_text
    info = truth["free_text"]
    assert isinstance(info, dict) and info["column"] == "comment" == frame.columns[-1]
    share = len(info["pii_rows"]) / frame.height
    assert 0.03 < share < 0.07
    assert set(info["rows"]) == set(FREE_TEXT_KINDS)
    assert all(len(rows) > 0 for rows in info["rows"].values())


def test_precision_and_recall_floors(free_text: tuple[pl.DataFrame, dict[str, object]]) -> None:
    """Per kind on generated free text (the figures docs/quality.md states come from
    tests/benchmarks/bench_pii.py on 100,000 rows)."""
    frame, truth = free_text
    info = truth["free_text"]
    assert isinstance(info, dict)
    kinds = [{s.kind for s in find_pii_spans(v)} for v in frame["comment"].to_list()]
    for kind, rows in info["rows"].items():
        expected = set(rows)
        got = {i for i, k in enumerate(kinds) if kind in k}
        hits = len(expected & got)
        recall, precision = hits / len(expected), hits / max(1, len(got))
        assert recall >= 0.95 and precision >= 0.95, (kind, recall, precision)


def test_comment_option_changes_nothing_else(tmp_path: Path) -> None:
    plain = generate(500, tmp_path / "a", seed=3)
    with_text = generate(500, tmp_path / "b", seed=3, free_text=True)
    a = pl.read_parquet(tmp_path / "a" / "dirty.parquet")
    b = pl.read_parquet(tmp_path / "b" / "dirty.parquet")
    assert b.drop("comment").equals(a)
    for key in ("exact_duplicates", "near_duplicates", "outliers", "nulls"):
        expected = plain[key]
        if key == "nulls":
            expected = {**expected, "comment": 0}
        assert with_text[key] == expected
    assert "free_text" not in plain
    assert re.fullmatch(r"[^\n]+", b["comment"][0])
