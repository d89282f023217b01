from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from datrix.jobs.bench.generate import generate
from datrix.jobs.quality.missingness import classify


def _classify(frame: pl.DataFrame) -> dict[str, str]:
    nulls = [c for c in frame.columns if frame[c].null_count()]
    return classify(frame.lazy(), dict(frame.schema), nulls, frame.height)


def test_mcar_mar_and_none_on_a_planted_frame() -> None:
    rng = np.random.default_rng(1)
    n = 20_000
    group = rng.choice(["a", "b", "c"], n)
    x = rng.normal(0, 1, n)
    frame = pl.DataFrame(
        {
            "group": group,
            "x": x,
            "random_gaps": np.where(rng.random(n) < 0.1, None, rng.normal(5, 1, n)),
            "gaps_in_group_a": np.where((group == "a") & (rng.random(n) < 0.5), None, x),
        }
    )
    found = _classify(frame)
    assert found["group"] == "none" and found["x"] == "none"
    assert found["random_gaps"] == "MCAR"
    assert found["gaps_in_group_a"] == "MAR"


@pytest.mark.parametrize("seed", [3, 11])
def test_generated_ground_truth(tmp_path: Path, seed: int) -> None:
    truth = generate(20_000, tmp_path, seed=seed)
    lazy = pl.scan_parquet(tmp_path / "dirty.parquet")
    nulls = [c for c, v in truth["nulls"].items() if v]
    found = classify(lazy, dict(lazy.collect_schema()), nulls, truth["rows"])
    # the generator plants one column of each class: the loop below is never vacuous
    assert sorted(truth["missingness"].values()) == ["MAR", "MCAR", "MNAR"]
    for column, expected in truth["missingness"].items():
        assert found[column] == expected, column
