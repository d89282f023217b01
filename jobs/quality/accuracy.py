"""The accuracy and drift checks both engines run the same way.

An engine does three things with data; everything else is decided here, from plain numbers:

1. ``plan_rows`` says what its one row pass must collect (null positions; per numeric column
   the values outside the outlier fences, sentinel cells, negative cells and the counts
   around zero), and the engine returns it as ``RowFacts``;
2. ``outlier_sample_columns`` and ``drift_columns`` say which columns its evenly spaced
   samples (``outliers.sample_step``) must hold: of this version for the IsolationForests,
   of both versions for the drift checks;
3. ``judge_accuracy`` and ``compare_versions`` turn facts and samples into results.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from datrix.jobs.quality import drift, outliers, sentinels
from datrix.jobs.quality.profiling import ColumnStats
from datrix.jobs.quality.sentinels import NegativeCounts, Sentinel

MAX_CATEGORIES = 10_000  # current distinct values above which a text column is not compared


@dataclass(frozen=True)
class RowPlan:
    null_columns: list[str]
    rules: dict[str, outliers.OutlierRule]  # collect values outside the fences
    sentinels: dict[str, list[Sentinel]]  # collect cells equal to these; excluded elsewhere
    negatives: dict[str, float]  # column -> floor window w: collect x < 0, count around 0

    def sentinel_values(self, name: str) -> list[float]:
        return [s.value for s in self.sentinels.get(name, [])]


@dataclass(frozen=True)
class RowFacts:
    nulls: Mapping[str, Sequence[int]] = field(default_factory=dict)  # lists or RowSets
    candidates: dict[str, tuple[list[int], list[float]]] = field(default_factory=dict)
    sentinel_rows: dict[str, list[int]] = field(default_factory=dict)
    negatives: dict[str, NegativeCounts] = field(default_factory=dict)


def numeric_values(stats: ColumnStats, rows: int) -> int:
    if stats.numeric is None:
        return 0
    return rows - stats.null_count - stats.numeric.nan_count


def plan_rows(stats: Sequence[ColumnStats], rows: int) -> RowPlan:
    rules: dict[str, outliers.OutlierRule] = {}
    found: dict[str, list[Sentinel]] = {}
    negatives: dict[str, float] = {}
    for s in stats:
        if not s.is_numeric or rows == 0:
            continue
        rule = outliers.outlier_rule(s)
        if rule is not None:
            rules[s.name] = rule
        codes = sentinels.find_sentinels(s, numeric_values(s, rows))
        if codes:
            found[s.name] = codes
        if sentinels.negative_candidate(s):
            negatives[s.name] = sentinels.floor_window(s)
    nulls = [s.name for s in stats if s.null_count > 0]
    return RowPlan(nulls, rules, found, negatives)


@dataclass(frozen=True)
class Accuracy:
    rules: dict[str, outliers.OutlierRule]
    outliers: dict[str, list[int]]  # both votes agree
    sentinels: dict[str, tuple[list[Sentinel], list[int]]]
    impossible: dict[str, tuple[str, list[int]]]  # column -> (evidence, rows)

    # The three sets of cells are disjoint: sentinel cells take no part in the other checks
    # and negatives already reported as outliers are not reported again.
    @property
    def outlier_cells(self) -> int:
        return sum(len(r) for r in self.outliers.values())

    @property
    def sentinel_cells(self) -> int:
        return sum(len(r) for _, r in self.sentinels.values())

    @property
    def impossible_cells(self) -> int:
        return sum(len(r) for _, r in self.impossible.values())


def outlier_sample_columns(plan: RowPlan, facts: RowFacts) -> list[str]:
    return [name for name in plan.rules if facts.candidates.get(name, ([], []))[0]]


def judge_accuracy(
    stats: Sequence[ColumnStats],
    rows: int,
    plan: RowPlan,
    facts: RowFacts,
    sample: Mapping[str, pa.Array],
    seed: int,
) -> Accuracy:
    """Outlier votes, sentinel cells and impossible negatives (see ``outliers`` and
    ``sentinels`` for the rules)."""
    position = {s.name: i for i, s in enumerate(stats)}
    sentinel_values = {name: plan.sentinel_values(name) for name in plan.sentinels}
    voted = outliers.voted_outliers(
        facts.candidates,
        {name: _numbers(sample[name]) for name in outlier_sample_columns(plan, facts)},
        sentinel_values,
        position,
        seed,
    )
    found_sentinels = {
        name: (codes, facts.sentinel_rows.get(name, []))
        for name, codes in plan.sentinels.items()
        if facts.sentinel_rows.get(name)
    }
    by_name = {s.name: s for s in stats}
    impossible: dict[str, tuple[str, list[int]]] = {}
    for name, counts in facts.negatives.items():
        why = sentinels.impossible_negatives(name, counts, numeric_values(by_name[name], rows))
        if why is None:
            continue
        already = set(voted.get(name, []))
        remaining = [r for r in counts.rows if r not in already]
        if remaining:
            impossible[name] = (why, remaining)
    return Accuracy(plan.rules, voted, found_sentinels, impossible)


def _numbers(values: pa.Array) -> NDArray[np.float64]:
    return np.asarray(values.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def is_identifier(stats: ColumnStats, rows: int) -> bool:
    """A key, not a measurement: named ``..._id``/``key``/``uuid``, or integers that are all
    distinct. New versions of a key column always "drift" (new ids), so it is not compared."""
    if sentinels.name_words(stats.name)[-1:] in (["id"], ["key"], ["uuid"], ["pk"]):
        return True
    present = rows - stats.null_count
    return stats.logical_type == "integer" and present > 1 and stats.distinct_count == present


def drift_columns(
    stats: Sequence[ColumnStats], previous_types: Mapping[str, str], rows: int
) -> tuple[list[str], list[str]]:
    """(numeric, categorical) columns present in both versions with a comparable type,
    identifiers left out."""
    numeric, categorical = [], []
    for s in stats:
        before = previous_types.get(s.name)
        if is_identifier(s, rows):
            continue
        if s.logical_type in drift.NUMERIC and before in drift.NUMERIC:
            numeric.append(s.name)
        elif (
            s.logical_type in drift.CATEGORICAL
            and before == s.logical_type
            and s.distinct_count <= MAX_CATEGORIES
        ):
            categorical.append(s.name)
    return numeric, categorical


def compare_versions(
    stats: Sequence[ColumnStats],
    rows: int,
    previous_types: Mapping[str, str],
    current: Mapping[str, pa.Array],
    previous: Mapping[str, pa.Array],
) -> list[drift.ColumnDrift]:
    """One result per compared column, in column order."""
    numeric, categorical = drift_columns(stats, previous_types, rows)
    results: list[drift.ColumnDrift] = []
    for s in stats:
        found = None
        if s.name in numeric:
            found = drift.numeric_drift(
                s.name,
                outliers.finite(_numbers(previous[s.name])),
                outliers.finite(_numbers(current[s.name])),
            )
        elif s.name in categorical:
            found = drift.categorical_drift(s.name, previous[s.name], current[s.name])
        if found is not None:
            results.append(found)
    return results
