"""Distribution-shape findings from the profile: near-constant, skewed, high cardinality."""

from __future__ import annotations

import numpy as np
import polars as pl

from datrix.jobs.quality.assembly import distribution_findings
from datrix.jobs.quality.profiling import profile_columns


def findings(frame: pl.DataFrame) -> dict[str, str]:
    lazy = frame.lazy()
    rows, stats = profile_columns(lazy, dict(lazy.collect_schema()))
    return {f.column or "": f.type for s in stats for f in distribution_findings(s, rows)}


def test_shapes() -> None:
    rng = np.random.default_rng(0)
    n = 20_000
    frame = pl.DataFrame(
        {
            "normal": rng.normal(50, 5, n),
            "lognormal": rng.lognormal(3, 1.2, n),
            "almost_one_value": ["a"] * (n - 20) + ["b"] * 20,
            "exploded_category": [f"city-{i % 4000}" for i in range(n)],
            "unique_key": [f"id-{i}" for i in range(n)],
            "dates_as_text": [
                f"2024-01-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}" for i in range(n)
            ],
            "small_counts": rng.poisson(0.3, n),
        }
    )
    assert findings(frame) == {
        "lognormal": "skewed_distribution",
        "almost_one_value": "constant_column",
        "exploded_category": "high_cardinality",
    }
