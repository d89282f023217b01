"""Accuracy checks: the outlier vote (z-score or IQR, and an IsolationForest), sentinel codes
and impossible negatives, as pure rules and through the Polars engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from datrix.jobs.quality import outliers, sentinels
from datrix.jobs.quality.polars_engine import PolarsScanEngine
from datrix.jobs.quality.profiling import ColumnStats, NumericSummary
from datrix.jobs.quality.sentinels import NegativeCounts
from datrix.jobs.report import ISSUE_TYPES, Issue, ScanOptions, ScanReport


def numeric_stats(
    p25: float,
    p50: float,
    p75: float,
    name: str = "x",
    lowest: list[tuple[float, int]] | None = None,
    highest: list[tuple[float, int]] | None = None,
    distinct: int = 1000,
) -> ColumnStats:
    summary = NumericSummary(min=None, max=None, mean=None, std=None, p25=p25, p50=p50, p75=p75)
    return ColumnStats(
        name, "float", 0, distinct, summary, lowest=lowest or [], highest=highest or []
    )


def scan(tmp_path: Path, frame: pl.DataFrame) -> ScanReport:
    path = tmp_path / "data.parquet"
    frame.write_parquet(path)
    return PolarsScanEngine().scan(path, ScanOptions())


def issues_of(report: ScanReport, type_: str) -> dict[str | None, Issue]:
    return {i.column: i for i in report.issues if i.type == type_}


# ---- the univariate rule -------------------------------------------------------------


def test_symmetric_columns_get_a_robust_z_score() -> None:
    rule = outliers.outlier_rule(numeric_stats(-0.6745, 0.0, 0.6745))
    assert rule is not None and rule.method == "z-score"
    # IQR / 1.349 is the standard deviation of a normal: the fences sit at +-5 sd
    assert rule.fences.low == pytest.approx(-5.0, rel=1e-3)
    assert rule.fences.high == pytest.approx(5.0, rel=1e-3)


def test_skewed_positive_columns_get_a_log_scale_upper_fence() -> None:
    rule = outliers.outlier_rule(numeric_stats(10.0, 20.0, 40.0))  # Bowley skew 1/3
    assert rule is not None and rule.method == "log-IQR"
    assert rule.fences.low == pytest.approx(10.0 - 3 * 30.0)
    assert rule.fences.high == pytest.approx(40.0 * 4.0**3)  # exp(ln 40 + 3 ln 4)


def test_skewed_columns_reaching_zero_keep_tukey_fences() -> None:
    rule = outliers.outlier_rule(numeric_stats(-10.0, 0.0, 30.0))
    assert rule is not None and rule.method == "IQR"
    assert (rule.fences.low, rule.fences.high) == (-130.0, 150.0)


def test_no_spread_no_rule() -> None:
    assert outliers.outlier_rule(numeric_stats(3.0, 3.0, 3.0)) is None


# ---- the IsolationForest vote --------------------------------------------------------


def test_isolation_vote_confirms_isolated_values_and_rejects_dense_ones() -> None:
    rng = np.random.default_rng(0)
    bulk = rng.normal(0, 1, 3000)
    cluster = np.full(600, 8.0) + rng.normal(0, 0.01, 600)  # a second mode: 17 % of rows
    sample = np.concatenate([bulk, cluster, [40.0]])
    votes = outliers.isolation_votes(sample, np.array([40.0, 8.0, np.inf]), seed=1)
    assert votes.tolist() == [True, False, True]  # infinity: isolated by definition


def test_isolation_vote_is_deterministic() -> None:
    sample = np.random.default_rng(3).normal(size=500)
    candidates = np.array([4.0, 6.0, 9.0])
    first = outliers.isolation_votes(sample, candidates, seed=7)
    assert (first == outliers.isolation_votes(sample, candidates, seed=7)).all()


def test_sample_step_spreads_evenly() -> None:
    assert outliers.sample_step(10, 100) == 1
    assert outliers.sample_step(1_000_000, 100_000) == 10
    assert outliers.sample_step(1_000_001, 100_000) == 11


# ---- sentinels -----------------------------------------------------------------------

DAYS_LOW = [(-1.0, 300), (0.0, 100), (1.0, 95), (2.0, 105), (3.0, 99), (4.0, 101)]
DAYS_HIGH = [(364.0, 98), (363.0, 100), (362.0, 97), (361.0, 101), (360.0, 99), (359.0, 100)]


def test_a_code_spiking_at_the_edge_is_a_sentinel() -> None:
    stats = numeric_stats(90, 180, 270, lowest=DAYS_LOW, highest=DAYS_HIGH, distinct=366)
    found = sentinels.find_sentinels(stats, numeric_values=36_000)
    assert [(s.value, s.count) for s in found] == [(-1.0, 300)]


def test_two_codes_at_one_end_are_both_found() -> None:
    low = [(-999.0, 500), (-1.0, 400), *DAYS_LOW[1:]]
    stats = numeric_stats(90, 180, 270, lowest=low, highest=DAYS_HIGH, distinct=367)
    found = sentinels.find_sentinels(stats, numeric_values=36_000)
    assert [s.value for s in found] == [-999.0, -1.0]


def test_a_ceiling_is_not_a_sentinel() -> None:
    # a score capped at 850 piles up there, but 850 is neither a code nor detached
    high = [(850.0, 6000), (849.0, 200), (848.0, 210), (847.0, 205), (846.0, 220), (845.0, 230)]
    stats = numeric_stats(600, 650, 700, highest=high, lowest=DAYS_LOW[1:], distinct=500)
    assert sentinels.find_sentinels(stats, numeric_values=1_000_000) == []


def test_a_detached_placeholder_is_a_sentinel_but_a_rare_code_is_not() -> None:
    low = [(0.0, 500), (140.0, 3), (141.0, 4), (142.0, 3), (143.0, 5), (144.0, 4)]
    stats = numeric_stats(160, 170, 180, lowest=low, highest=DAYS_HIGH, distinct=400)
    assert [s.value for s in sentinels.find_sentinels(stats, 100_000)] == [0.0]
    rare = [(-1.0, 4), *DAYS_LOW[1:]]  # spike, but 4 of 100,000 values
    stats = numeric_stats(90, 180, 270, lowest=rare, highest=DAYS_HIGH, distinct=366)
    assert sentinels.find_sentinels(stats, 100_000) == []


def test_codes() -> None:
    assert all(sentinels.is_code(v) for v in (-1, -9, 99, 999, -999, 9999, 99999))
    assert not any(sentinels.is_code(v) for v in (0, 1, 9, 98, 100, 999.5, 850))


# ---- impossible negatives ------------------------------------------------------------


def test_name_words() -> None:
    assert sentinels.name_words("orderAmount_EUR") == ["order", "amount", "eur"]
    assert sentinels.name_says_non_negative("unit_price")
    assert sentinels.name_says_non_negative("days_since_last_login")
    assert not sentinels.name_says_non_negative("account_balance")
    assert not sentinels.name_says_non_negative("price_change")


def test_impossible_negatives_by_name_or_by_distribution() -> None:
    few = NegativeCounts(rows=[3, 9], below=0, above=0)
    assert sentinels.impossible_negatives("age", few, 1000) == "name"
    assert sentinels.impossible_negatives("reading", few, 1000) is None  # no floor seen
    floored = NegativeCounts(rows=[3, 9], below=1, above=150)
    assert sentinels.impossible_negatives("reading", floored, 1000) == "distribution"
    crossing = NegativeCounts(rows=[3, 9], below=1, above=2)
    assert sentinels.impossible_negatives("reading", crossing, 1000) is None
    many = NegativeCounts(rows=list(range(80)), below=40, above=50)
    assert sentinels.impossible_negatives("age", many, 1000) is None  # 8 %: not a few


# ---- through the engine --------------------------------------------------------------


def test_engine_reports_sentinels_impossible_values_and_voted_outliers(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    n = 4000
    days = rng.integers(0, 365, n)
    days[::50] = -1  # 2 % placeholder
    price = np.round(rng.lognormal(3.0, 0.5, n), 2)
    price[[7, 8]] = [-4.5, -12.0]  # wrong sign, plausible magnitude
    price[9] = -5000.0  # wrong sign and far out: an outlier, reported once
    weight = rng.normal(75, 10, n)
    weight[[100, 200]] = [400.0, -300.0]
    report = scan(
        tmp_path, pl.DataFrame({"days_since_login": days, "price": price, "weight": weight})
    )
    assert {i.type for i in report.issues} <= set(ISSUE_TYPES)

    sentinel = issues_of(report, "sentinel_values")["days_since_login"]
    assert sentinel.dimension == "accuracy" and sentinel.fix_available  # set to null
    assert report.affected_rows[sentinel.id] == list(range(0, n, 50))
    assert "-1 (80x)" in sentinel.description

    impossible = issues_of(report, "impossible_values")
    assert set(impossible) == {"price"}
    assert report.affected_rows[impossible["price"].id] == [7, 8]
    assert "name" in impossible["price"].description

    found = issues_of(report, "outliers")
    assert report.affected_rows[found["price"].id] == [9]
    assert report.affected_rows[found["weight"].id] == [100, 200]
    assert "IsolationForest" in found["weight"].description
    assert "z-score" in found["weight"].description
    assert "days_since_login" not in found  # the -1 codes are sentinels, not outliers
    assert report.score.accuracy < 100.0


def test_engine_is_deterministic(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    x = rng.normal(0, 1, 2000)
    x[[1, 2, 3]] = [30.0, -25.0, 12.0]
    frame = pl.DataFrame({"x": x})
    first, second = scan(tmp_path, frame), scan(tmp_path, frame)
    assert first.issues == second.issues
    assert first.affected_rows == second.affected_rows
