from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from datrix.jobs.quality.labels import (
    MIN_CLASS_MEMBERS,
    LabelFindings,
    build_features,
    chance_margin,
    describe,
    find_label_issues,
    looks_like_noise,
)


def _noisy_frame(n: int, seed: int, flip_share: float = 0.1) -> tuple[pl.DataFrame, set[int]]:
    """Two informative numbers, a category that shifts the boundary, a noise column with
    nulls and a per-row id; ``flip_share`` of the labels flipped."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.normal(size=n)
    group = rng.choice(["north", "south", "east"], n)
    shift = np.select([group == "north", group == "south"], [1.5, -1.5], 0.0)
    y = np.where(x1 + x2 + shift > 0, "yes", "no")
    flipped = rng.choice(n, int(flip_share * n), replace=False)
    y[flipped] = np.where(y[flipped] == "yes", "no", "yes")
    noise = np.where(rng.random(n) < 0.2, np.nan, rng.normal(size=n))
    frame = pl.DataFrame(
        {
            "customer_id": [f"C{i:07d}" for i in range(n)],
            "x1": x1,
            "x2": x2,
            "group": group,
            "noise": noise,
            "label": y,
        }
    ).with_columns(pl.col("noise").fill_nan(None))
    return frame, {int(i) for i in flipped}


def _f1(found: list[int], truth: set[int]) -> float:
    hits = len(set(found) & truth)
    if hits == 0:
        return 0.0
    precision, recall = hits / len(found), hits / len(truth)
    return 2 * precision * recall / (precision + recall)


def test_missing_label_column_is_a_clear_error() -> None:
    frame = pl.DataFrame({"x": [1.0, 2.0]})
    with pytest.raises(ValueError, match="label column 'y' is not a column"):
        find_label_issues(frame, "y")


def test_single_class_is_skipped_not_judged() -> None:
    frame = pl.DataFrame({"x": np.arange(200.0), "y": ["a"] * 200})
    found = find_label_issues(frame, "y")
    assert found.skipped is not None and "two classes" in found.skipped
    assert found.rows == [] and found.model is None
    assert np.isnan(found.scores).all() and len(found.scores) == 200


def test_too_few_rows_is_skipped() -> None:
    frame = pl.DataFrame({"x": np.arange(20.0), "y": ["a", "b"] * 10})
    found = find_label_issues(frame, "y")
    assert found.skipped is not None and "rows can be assessed" in found.skipped


def test_no_usable_feature_is_skipped() -> None:
    frame = pl.DataFrame({"note": [f"free text {i}" for i in range(100)], "y": ["a", "b"] * 50})
    found = find_label_issues(frame, "y")
    assert found.skipped == "no column usable as a feature"


def test_features_keep_numbers_and_bounded_categories_and_drop_ids_and_text() -> None:
    n = 100
    frame = pl.DataFrame(
        {
            "row": np.arange(n),  # counts up, unique: an id
            "code": [f"K{i}" for i in range(n)],  # unique text: an id
            "amount": [None if i % 10 == 0 else float(i) for i in range(n)],
            "flag": [i % 2 == 0 for i in range(n)],
            "day": [dt.date(2024, 1, 1) + dt.timedelta(days=i % 7) for i in range(n)],
            "colour": [None if i % 9 == 0 else ["red", "blue"][i % 2] for i in range(n)],
            "constant": ["same"] * n,
            "y": ["a", "b"] * (n // 2),
        }
    )
    features = build_features(frame, "y")
    assert features.names == ["amount", "flag", "day", "colour"]
    assert features.categorical == [False, False, False, True]
    assert features.matrix.shape == (n, 4)
    assert np.isnan(features.matrix[0, 0])  # null amount stays missing
    assert np.isnan(features.matrix[0, 3])  # null colour stays missing
    assert set(np.unique(features.matrix[1:9, 3])) <= {0.0, 1.0}
    assert features.levels[3] == 2


def test_long_tail_category_is_lumped_and_free_text_dropped() -> None:
    n = 1_000
    # 3 common values on 900 rows and 100 rare ones: 103 levels, but the 32 commonest
    # cover 92.9 % of the rows, so those are kept and the other 71 share one code.
    values = ["a", "b", "c"] * 300 + [f"rare{i}" for i in range(100)]
    frame = pl.DataFrame(
        {"cat": values, "text": [f"note {i}" for i in range(n)], "y": ["p", "q"] * (n // 2)}
    )
    features = build_features(frame, "y")
    assert features.names == ["cat"]
    assert features.levels == [33]
    codes = features.matrix[:, 0]
    assert set(np.unique(codes[:900])) == {0.0, 1.0, 2.0}
    assert int((codes == 32.0).sum()) == 71


@pytest.fixture(scope="module")
def small() -> tuple[pl.DataFrame, set[int], LabelFindings]:
    """400 rows, 10 % flipped, and what the check finds (seed 0): shared, it is the cost."""
    frame, flipped = _noisy_frame(400, seed=3)
    return frame, flipped, find_label_issues(frame, "label", seed=0)


def test_flags_flipped_labels_on_a_small_frame(
    small: tuple[pl.DataFrame, set[int], LabelFindings],
) -> None:
    _, flipped, found = small
    assert found.skipped is None
    assert found.rows == sorted(found.rows)
    assert _f1(found.rows, flipped) >= 0.7
    assert found.model is not None and found.model.count("+") == 1
    assert set(found.model.split("+")) <= set(found.candidate_logloss)
    assert found.accuracy is not None and 0.8 <= found.accuracy <= 0.95
    assert found.assessed_rows == 400 and found.fitted_rows == 400 and found.classes == 2
    assert "customer_id" not in found.features and "group" in found.features
    assert np.isfinite(found.scores).all()
    # Flagged rows have lower label-quality scores than the rest, on average.
    flagged = np.zeros(400, dtype=bool)
    flagged[found.rows] = True
    assert found.scores[flagged].mean() < found.scores[~flagged].mean()
    # Deterministic for a seed: test_integer_and_categorical_labels runs it again.


def test_null_labels_and_rare_classes_are_not_assessed() -> None:
    frame, _ = _noisy_frame(300, seed=4)
    labels = frame["label"].to_list()
    labels[0] = None
    labels[1] = None
    for i in range(2, 2 + MIN_CLASS_MEMBERS - 1):
        labels[i] = "typo"  # 4 members: too few to hold out
    frame = frame.with_columns(pl.Series("label", labels))
    found = find_label_issues(frame, "label")
    assert found.skipped is None
    assert found.assessed_rows == 300 - 2 - (MIN_CLASS_MEMBERS - 1)
    assert np.isnan(found.scores[: 2 + MIN_CLASS_MEMBERS - 1]).all()
    assert np.isfinite(found.scores[2 + MIN_CLASS_MEMBERS - 1 :]).all()
    assert not set(found.rows) & set(range(2 + MIN_CLASS_MEMBERS - 1))
    assert found.classes == 2


def test_above_the_row_cap_every_row_is_still_assessed() -> None:
    frame, flipped = _noisy_frame(1_500, seed=5)
    found = find_label_issues(frame, "label", seed=1, max_rows=500)
    assert found.skipped is None
    assert found.fitted_rows == 500 and found.assessed_rows == 1_500
    assert np.isfinite(found.scores).all()
    assert "svm_rbf" in found.candidate_logloss  # 500 fitted rows: the SVM is a candidate
    # Rows outside the fitting sample are flagged as well as the sampled ones.
    assert _f1(found.rows, flipped) >= 0.7
    assert len([r for r in found.rows if r in flipped]) >= 0.6 * len(flipped)


def test_integer_and_categorical_labels(
    small: tuple[pl.DataFrame, set[int], LabelFindings],
) -> None:
    """The same labels as text (the shared check), integers (no < yes as 0 < 1) and
    categories find the same rows with the same models: the check is also deterministic
    for a seed (a categorical label is read as its text, so ``b`` runs it again)."""
    frame, flipped, found = small
    as_int = frame.with_columns((pl.col("label") == "yes").cast(pl.Int32).alias("label"))
    as_cat = frame.with_columns(pl.col("label").cast(pl.Categorical))
    a = find_label_issues(as_int, "label", seed=0)
    b = find_label_issues(as_cat, "label", seed=0)
    assert a.rows == b.rows == found.rows
    assert a.model == b.model == found.model
    np.testing.assert_array_equal(b.scores, found.scores)
    assert _f1(a.rows, flipped) >= 0.7


def test_random_labels_look_like_noise_and_real_ones_do_not(
    small: tuple[pl.DataFrame, set[int], LabelFindings],
) -> None:
    rng = np.random.default_rng(11)
    n = 400
    random = pl.DataFrame(
        {f"x{i}": rng.normal(size=n) for i in range(5)} | {"y": rng.integers(0, 2, n)}
    )
    found = find_label_issues(random, "y", seed=0)
    assert found.majority_rate is not None and 0.5 <= found.majority_rate <= 0.55
    assert found.accuracy is not None
    assert found.accuracy < found.majority_rate + chance_margin(found)
    assert looks_like_noise(found)
    text = describe(found, "y")
    assert text.startswith("labels in 'y' look like noise")
    assert "no evidence of individual wrong labels" in text
    # 3 binomial standard errors of a ~0.5 rate over 400 rows: ~7.5 points.
    assert 0.07 <= chance_margin(found) <= 0.08

    real = small[2]  # 400 rows, 10 % of the labels flipped
    assert not looks_like_noise(real)
    assert "look like noise" not in describe(real, "label")
    skipped = find_label_issues(pl.DataFrame({"x": np.arange(200.0), "y": ["a"] * 200}), "y")
    assert not looks_like_noise(skipped)
