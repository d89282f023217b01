"""The overall score as a weighted mean with configurable weights, and what the new accuracy
and drift findings cost their dimensions."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from datrix.jobs.quality.polars_engine import PolarsScanEngine
from datrix.jobs.quality.scoring import (
    ScoreInputs,
    build_scores,
    dimension_scores,
    overall_score,
    parse_weights,
    validate_weights,
)
from datrix.jobs.report import DEFAULT_WEIGHTS, DIMENSIONS, ScanOptions

SCORES = {
    "completeness": 90.0,
    "consistency": 80.0,
    "accuracy": 70.0,
    "distribution": 60.0,
    "label_quality": 50.0,
}


def test_default_weights_are_the_specs() -> None:
    assert DEFAULT_WEIGHTS == {
        "completeness": 0.25,
        "consistency": 0.25,
        "accuracy": 0.2,
        "distribution": 0.15,
        "label_quality": 0.15,
    }
    assert set(DEFAULT_WEIGHTS) == set(DIMENSIONS)
    assert sum(DEFAULT_WEIGHTS.values()) == pytest.approx(1.0)


def test_overall_is_the_weighted_mean() -> None:
    expected = 0.25 * 90 + 0.25 * 80 + 0.2 * 70 + 0.15 * 60 + 0.15 * 50
    assert overall_score(SCORES, DEFAULT_WEIGHTS, has_label=True) == pytest.approx(expected)
    # without a label column its weight is dropped and the rest renormalised
    unlabelled = (0.25 * 90 + 0.25 * 80 + 0.2 * 70 + 0.15 * 60) / 0.85
    assert overall_score(SCORES, DEFAULT_WEIGHTS, has_label=False) == pytest.approx(unlabelled)
    only_accuracy = dict.fromkeys(DIMENSIONS, 0.0) | {"accuracy": 2.0}
    assert overall_score(SCORES, only_accuracy, has_label=True) == pytest.approx(70.0)


def test_parse_weights_overrides_the_named_dimensions() -> None:
    weights = parse_weights("completeness=0.5, accuracy=0")
    assert weights == DEFAULT_WEIGHTS | {"completeness": 0.5, "accuracy": 0.0}
    assert parse_weights("label_quality=1,") == DEFAULT_WEIGHTS | {"label_quality": 1.0}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("speed=1", "unknown score dimension 'speed'"),
        ("accuracy=-0.1", "must be a number >= 0"),
        ("accuracy=lots", "must be a number >= 0, got 'lots'"),
        ("accuracy=nan", "must be a number >= 0"),
        ("accuracy=inf", "must be a number >= 0"),
        ("accuracy", "expected DIMENSION=WEIGHT"),
        ("accuracy=1,accuracy=2", "given twice"),
        ("", "no weights given"),
        (",".join(f"{d}=0" for d in DIMENSIONS), "must not all be zero"),
    ],
)
def test_parse_weights_refuses_bad_input_with_one_line(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        parse_weights(text)
    assert "\n" not in str(caught.value)


def test_validate_weights() -> None:
    validate_weights(DEFAULT_WEIGHTS)
    with pytest.raises(ValueError, match="unknown score dimension"):
        validate_weights({"accuracy": 1.0, "vibes": 1.0})


def test_accuracy_counts_sentinel_and_impossible_cells() -> None:
    base = ScoreInputs(rows=100, columns=2, numeric_cells=200)
    wrong = ScoreInputs(
        rows=100,
        columns=2,
        numeric_cells=200,
        outlier_cells=1,
        sentinel_cells=2,
        impossible_cells=1,
    )
    assert dimension_scores(base)["accuracy"] == 100.0
    assert dimension_scores(wrong)["accuracy"] == pytest.approx(100 * (1 - 10 * 4 / 200))


def test_drifted_columns_cost_distribution() -> None:
    inputs = ScoreInputs(rows=10, columns=4, constant_columns=1, drifted_columns=1)
    assert dimension_scores(inputs)["distribution"] == pytest.approx(50.0)
    everything = ScoreInputs(rows=10, columns=2, constant_columns=2, drifted_columns=2)
    assert dimension_scores(everything)["distribution"] == 0.0


def test_build_scores_rounds_and_weighs() -> None:
    inputs = ScoreInputs(rows=10, columns=4, null_cells=4, worst_column_null_share=0.4)
    heavy = build_scores(inputs, DEFAULT_WEIGHTS | {"completeness": 10.0})
    light = build_scores(inputs, DEFAULT_WEIGHTS | {"completeness": 0.0})
    assert heavy.completeness == light.completeness < 100.0
    assert light.overall == 100.0 and heavy.overall < 95.0


def test_engine_uses_the_weights(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pl.DataFrame({"a": [1, None, 3, 4], "b": [1, 2, 3, 4]}).write_parquet(path)
    plain = PolarsScanEngine().scan(path, ScanOptions())
    only_completeness = dict.fromkeys(DIMENSIONS, 0.0) | {"completeness": 1.0}
    weighted = PolarsScanEngine().scan(path, ScanOptions(weights=only_completeness))
    assert weighted.score.overall == weighted.score.completeness < plain.score.overall


def test_huge_weights_are_normalised_not_overflowed() -> None:
    # 1e308 + 1e308 is inf; inf / inf was NaN, and the clamp turned it into 100
    huge = dict.fromkeys(DIMENSIONS, 0.0) | {"completeness": 1e308, "accuracy": 1e308}
    assert overall_score(SCORES, huge, has_label=False) == pytest.approx((90.0 + 70.0) / 2)
    # the defaults left for the other dimensions weigh nothing beside 1e308
    parsed = parse_weights("completeness=1e308,accuracy=1e308")
    assert overall_score(SCORES, parsed, has_label=True) == pytest.approx(80.0)
    every = dict.fromkeys(DIMENSIONS, 1.7e308)
    assert overall_score(SCORES, every, has_label=True) == pytest.approx(70.0)
    tiny = dict.fromkeys(DIMENSIONS, 0.0) | {"distribution": 5e-324}
    assert overall_score(SCORES, tiny, has_label=True) == pytest.approx(60.0)


def test_labels_that_look_like_noise_score_zero_label_quality() -> None:
    base = ScoreInputs(rows=1_000, columns=5, label_null_share=0.0, label_issue_share=0.2)
    assert dimension_scores(base)["label_quality"] == pytest.approx(60.0)
    noise = ScoreInputs(
        rows=1_000, columns=5, label_null_share=0.0, label_issue_share=0.2, label_noise=True
    )
    assert dimension_scores(noise)["label_quality"] == 0.0
    assert dimension_scores(ScoreInputs(rows=1_000, columns=5))["label_quality"] == 100.0
