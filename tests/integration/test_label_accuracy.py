"""Label issues against planted label noise on scikit-learn's bundled datasets.

10 % of the labels are flipped (seeded; each to a different class drawn at random) and the
flagged rows are compared with the flipped ones: F1 per seed, mean over 5 seeds. Aims:
digits >= 0.92, breast_cancer >= 0.84; wine is reported (and held to a floor) too.
Measured (2 shared cores): digits 0.930, breast_cancer 0.892, wine 0.936; see
``/tmp/labels-notes.md``. Takes about 3-5 minutes, most of it gradient boosting on digits'
10 classes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pytest

from datrix.jobs.quality.impact import drop_rows, measure_finding_impacts, measure_impacts
from datrix.jobs.quality.issues import Finding
from datrix.jobs.quality.labels import find_label_issues

pytestmark = pytest.mark.integration

SEEDS = range(5)
AIMS = {"digits": 0.92, "breast_cancer": 0.84, "wine": 0.85}


def flip_labels(y: np.ndarray[Any, Any], seed: int, share: float = 0.10) -> tuple[Any, set[int]]:
    rng = np.random.default_rng(seed)
    n = len(y)
    rows = rng.choice(n, round(share * n), replace=False)
    classes = np.unique(y)
    noisy = y.copy()
    for i in rows:
        noisy[i] = rng.choice(classes[classes != y[i]])
    return noisy, {int(i) for i in rows}


def f1(found: list[int], truth: set[int]) -> float:
    hits = len(set(found) & truth)
    if hits == 0:
        return 0.0
    precision, recall = hits / len(found), hits / len(truth)
    return 2 * precision * recall / (precision + recall)


@pytest.mark.parametrize("dataset", sorted(AIMS))
def test_flagged_rows_match_flipped_labels(dataset: str, record_property: Any) -> None:
    from sklearn import datasets

    x, y = getattr(datasets, f"load_{dataset}")(return_X_y=True)
    scores: list[float] = []
    models: list[str] = []
    for seed in SEEDS:
        noisy, flipped = flip_labels(y, seed)
        frame = pl.DataFrame(x, schema=[f"f{i}" for i in range(x.shape[1])]).with_columns(
            pl.Series("label", noisy)
        )
        found = find_label_issues(frame, "label", seed=seed)
        assert found.skipped is None and found.model is not None
        scores.append(f1(found.rows, flipped))
        models.append(found.model)
    mean = float(np.mean(scores))
    record_property("mean_f1", round(mean, 3))
    print(f"{dataset}: mean F1 {mean:.3f} per seed {np.round(scores, 3).tolist()} {models}")
    assert mean >= AIMS[dataset]


def test_fixing_flipped_labels_gains_on_held_out_rows(record_property: Any) -> None:
    """Issue 14 item 8: measured impacts are scored on held-out rows no fix touched, so a
    gain has to be real. Wine with 10 % of its labels flipped: dropping the rows the label
    check flags (found again on the training folds alone) raises held-out accuracy on the
    given (still noisy) labels for every seed, measurably for seed 0. Measured: +6.7, +2.8
    and +3.9 points for seeds 0-2 (noise 4.1 and 3.7 for the first two: on 178 rows a
    point is under two rows)."""
    from sklearn import datasets

    x, y = datasets.load_wine(return_X_y=True)
    deltas: list[float] = []
    for seed in range(3):
        noisy, _ = flip_labels(y, seed)
        frame = pl.DataFrame(x, schema=[f"f{i}" for i in range(x.shape[1])]).with_columns(
            pl.Series("label", noisy)
        )
        found = find_label_issues(frame, "label", seed=seed)
        finding = Finding(
            "label_issues", "label", "label_quality", "labels", len(found.rows), found.rows
        )
        m = measure_finding_impacts(frame, "label", [finding], seed=seed)[0]
        assert m.rows_scored == len(y)  # every row scored, none dropped from scoring
        assert m.delta > 0, (seed, m)
        if seed == 0:
            assert m.gained and m.impact_score >= 50, m
        deltas.append(m.delta)
    record_property("wine_mean_gain", round(float(np.mean(deltas)), 4))
    print(f"wine, 10 % flipped: held-out gains {np.round(deltas, 4).tolist()}")


def _random_labels(n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {f"x{i}": rng.normal(size=n) for i in range(5)} | {"y": rng.integers(0, 2, n)}
    )


def test_random_labels_show_no_measured_gain() -> None:
    """Issue 14 item 8: random labels, about 45 % of rows flagged, and the old protocol
    claimed fixing them moved accuracy from 0.50 to 0.78."""
    frame = _random_labels(2_000, seed=5)
    found = find_label_issues(frame, "y", seed=0)
    assert len(found.rows) > 0.3 * frame.height  # confident learning flags a lot...
    finding = Finding("label_issues", "y", "label_quality", "labels", len(found.rows), found.rows)
    measured = measure_finding_impacts(frame, "y", [finding], seed=0)[0]
    # ...and fixing them gains nothing measurable on held-out rows.
    assert measured.impact_score == 0.0 and not measured.gained
    assert abs(measured.delta) <= measured.noise
    assert abs(measured.before - 0.5) < 0.05 and abs(measured.after - 0.5) < 0.05
    # Why the label check is re-run on the training folds: the rows flagged on the whole
    # table were chosen by models that saw the held-out labels; dropping those from
    # training carries the held-out labels into the model (a spurious gain).
    leaky = measure_impacts(frame, "y", {"leaky": drop_rows(found.rows)}, seed=0)["leaky"]
    assert leaky.gained and leaky.delta > 0.02
