"""Near-duplicate detection: MinHash estimates, pair verification, and the engine on small
hand-made frames (typos, case/whitespace, surrogate keys, exact copies, big buckets)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from jobs.quality import near_duplicates as nd
from jobs.quality.polars_engine import PolarsScanEngine
from jobs.report import Issue, ScanOptions, ScanReport


def scan(tmp_path: Path, frame: pl.DataFrame) -> ScanReport:
    path = tmp_path / "data.parquet"
    frame.write_parquet(path)
    return PolarsScanEngine().scan(path, ScanOptions())


def near_issue(report: ScanReport) -> Issue | None:
    found = [i for i in report.issues if i.type == "near_duplicates"]
    assert len(found) <= 1
    return found[0] if found else None


def customers(n: int, seed: int = 1) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    first = ["Anna", "Ben", "Carla", "David", "Eva", "Frank", "Gina", "Hugo"]
    last = ["Johnson", "Miller", "Schmidt", "Garcia", "Nguyen", "Rossi", "Novak", "Berg"]
    cities = ["Berlin", "Paris", "Madrid", "Rome", "Vienna"]
    return pl.DataFrame(
        {
            "id": np.arange(1000, 1000 + n, dtype=np.int64),
            "first": [first[i] for i in rng.integers(0, len(first), n)],
            "last": [last[i] for i in rng.integers(0, len(last), n)],
            "email": [f"user{i}.{int(rng.integers(0, 10**6))}@example.com" for i in range(n)],
            "phone": [f"+49 30 {int(x):07d}" for x in rng.integers(0, 10**7, n)],
            "city": [cities[i] for i in rng.integers(0, len(cities), n)],
            "street": [f"{int(x)} Main Street" for x in rng.integers(1, 500, n)],
            "amount": np.round(rng.uniform(0, 1000, n), 2),
            "visits": rng.integers(0, 50, n),
            "vip": rng.random(n) < 0.3,
        }
    )


def with_row(frame: pl.DataFrame, source: int, **changes: object) -> pl.DataFrame:
    row = frame[source].to_dicts()[0]
    row.update(changes)
    return pl.concat([frame, pl.DataFrame([row], schema=frame.schema)])


def test_minhash_estimates_jaccard() -> None:
    """30 cheap permutations of mixed tokens: the mean agreement over many pairs is the
    Jaccard similarity (here 0.5 and 0.9)."""
    rng = np.random.default_rng(7)
    for shared, size, jaccard in ((20, 30, 0.5), (38, 40, 38 / 42)):
        pairs = 300
        left = rng.integers(0, 2**63, (size, pairs), dtype=np.uint64)
        right = left.copy()
        right[shared:] = rng.integers(0, 2**63, (size - shared, pairs), dtype=np.uint64)
        sig_l = nd.minhash(nd.mix_tokens(left))
        sig_r = nd.minhash(nd.mix_tokens(right))
        estimate = float((sig_l == sig_r).mean())
        assert estimate == pytest.approx(jaccard, abs=0.03)


def test_minhash_of_consecutive_integers_is_unbiased() -> None:
    """Structured tokens (raw consecutive numbers) go through the mixer first."""
    left = np.arange(40, dtype=np.uint64)[:, None] + np.arange(0, 4000, 40, dtype=np.uint64)
    right = left.copy()
    right[20:] += np.uint64(10**6)  # 20 of 40 shared -> J = 1/3
    estimate = float((nd.minhash(nd.mix_tokens(left)) == nd.minhash(nd.mix_tokens(right))).mean())
    assert estimate == pytest.approx(1 / 3, abs=0.05)


def test_verify_pairs_scores_fields() -> None:
    frame = pl.DataFrame(
        {
            "s": ["Johnson", " johnson ", "Jonson", "Smith"],
            "n": [1, 1, 2, 1],
            "t": [None, None, "x", None],
        }
    )
    pairs = pl.DataFrame({"a": [0, 0, 0], "b": [1, 2, 3]})
    columns = ["s", "n", "t"]
    similarity, evidence = nd.verify_pairs(frame, pairs, columns, [5.0, 1.0, 2.0], 0.0)
    # (0,1): equal after normalisation, equal, both null (not counted) -> 1
    # (0,2): "johnson"/"jonson" Indel similarity 12/13 (counted partly), n differs, t one
    #        side null -> (12/13 + 0 + 0) / 3; (0,3): n agrees only; strings too far apart
    assert similarity.tolist() == pytest.approx([1.0, (12 / 13) / 3, 1 / 2])
    assert evidence.tolist() == pytest.approx([6.0, 5.0 * 12 / 13, 1.0])
    # at the real threshold, hopeless pairs skip the string work: lower bounds
    similarity, _ = nd.verify_pairs(frame, pairs, columns)
    assert similarity.tolist() == pytest.approx([1.0, 0.0, 0.5])


def test_typos_case_and_whitespace_copies_are_found(tmp_path: Path) -> None:
    base = customers(300)
    frame = with_row(base, 3, id=5000, last=base["last"][3][:2] + base["last"][3][3:])  # typo
    frame = with_row(
        frame,
        10,
        id=5001,
        city=str(base["city"][10]).upper(),
        street=" " + base["street"][10].replace(" ", "  ") + " ",
    )
    frame = with_row(frame, 20)  # an exact copy: reported as such, not as a near duplicate
    frame = with_row(frame, 30, id=5002, amount=-1.0, visits=999)  # 2 of 9 fields differ
    report = scan(tmp_path, frame)
    issue = near_issue(report)
    assert issue is not None
    assert issue.column is None and issue.dimension == "consistency"
    assert report.affected_rows[issue.id] == [3, 10, 300, 301]
    assert issue.affected_count == 4
    assert "2 near-duplicate pairs" in issue.description
    assert "'id' ignored as key" in issue.description
    exact = next(i for i in report.issues if i.type == "exact_duplicates")
    assert report.affected_rows[exact.id] == [302]
    assert not issue.fix_available


def test_exact_copies_of_a_near_copy(tmp_path: Path) -> None:
    base = customers(200)
    name = str(base["first"][5])
    frame = with_row(base, 5, id=9000, first=name + name[-1])
    frame = with_row(frame, 200)  # repeats the near copy exactly
    report = scan(tmp_path, frame)
    issue = near_issue(report)
    assert issue is not None
    assert report.affected_rows[issue.id] == [5, 200]  # row 201 is only an exact duplicate


def test_clean_data_has_no_near_duplicates(tmp_path: Path) -> None:
    assert near_issue(scan(tmp_path, customers(500, seed=3))) is None


def test_rows_equal_but_for_their_key_in_a_big_bucket(tmp_path: Path) -> None:
    """100 copies of one customer under new ids share every bucket; the bucket is linked
    to its first row (linear work) and every copy is still found."""
    base = customers(300, seed=4)
    copies = pl.concat([base[7]] * 100).with_columns(id=pl.int_range(7000, 7100, dtype=pl.Int64))
    report = scan(tmp_path, pl.concat([base, copies]))
    issue = near_issue(report)
    assert issue is not None
    assert report.affected_rows[issue.id] == [7, *range(300, 400)]
    assert "100 near-duplicate pairs" in issue.description
    assert report.score.consistency < 100.0


def test_chance_agreement_is_no_evidence(tmp_path: Path) -> None:
    """Orders that differ only by their id in a narrow, low-cardinality table agree by
    chance, not because they are one record entered twice."""
    rng = np.random.default_rng(2)
    n = 2000
    orders = pl.DataFrame(
        {
            "order_id": np.arange(n),
            "product": [f"P{int(i)}" for i in rng.integers(0, 20, n)],
            "qty": rng.integers(1, 4, n),
            "status": [["open", "paid", "sent"][int(i)] for i in rng.integers(0, 3, n)],
        }
    )
    assert near_issue(scan(tmp_path, orders)) is None


def test_candidate_limit(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(nd, "MAX_CANDIDATES", 5)
    base = customers(300, seed=5)
    copies = pl.concat([base[0]] * 40).with_columns(id=pl.int_range(7000, 7040, dtype=pl.Int64))
    issue = near_issue(scan(tmp_path, pl.concat([base, copies])))
    assert issue is not None
    assert "candidate limit" in issue.description
    assert issue.affected_count == 6  # the first 5 star pairs around row 0


def test_tiny_and_odd_frames(tmp_path: Path) -> None:
    assert near_issue(scan(tmp_path, pl.DataFrame({"a": [1]}))) is None
    lists = pl.DataFrame({"l": [[1], [1], [2]], "id": [1, 2, 3]})
    assert near_issue(scan(tmp_path, lists)) is None  # nothing comparable left
    nulls = pl.DataFrame(
        {"id": [1, 2, 3], "x": [None, None, None]}, schema_overrides={"x": pl.String}
    )
    assert near_issue(scan(tmp_path, nulls)) is None  # agreeing on nothing is no evidence
