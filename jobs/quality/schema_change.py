"""Schema changes between two versions of a dataset (or two windows of a stream).

One detector for both: ``detect_schema_changes(before, after)`` compares two lists of
``ColumnProfile`` and returns the ``SchemaChange``s (the stream aggregate's dataclass, so a
stream window and a file scan report changes the same way):

- ``added`` / ``removed``: a column only after / only before;
- ``renamed``: a removed and an added column of the same type whose contents match (see
  ``rename_confidence``), reported as a *likely* rename with its confidence; each column
  takes part in one rename at most, the most confident pairs first;
- ``retyped``: a kept column whose logical type changed (integer -> string, ...);
- ``nullability``: a kept column that had no nulls and now has some (losing its nulls
  breaks no reader and is not reported);
- ``values``: a kept text column that is categorical in both (at most ``MAX_CATEGORIES``
  distinct values, each seen ``MIN_REPEATS`` times on average) whose value set changed.

A scan builds the profiles of both versions with ``profile_table`` (``scan_schema_changes``),
the same way whichever engine runs the scan: exact null counts and exact value sets of the
categorical columns over the whole column, the rename fingerprints from an evenly spaced
sample of at most ``SAMPLE_ROWS`` rows (``outliers.sample_step``).

Rename fingerprints: ``(null rate, distinct ratio, *content)``, content being the 11 quantiles
(0, 0.1, ..., 1) of a numeric, boolean, date or time column, and for a text column the
bottom-``MINHASH_K`` sketch of its distinct values' hashes (each scaled to [0, 1)): the
Jaccard similarity of two value sets is estimated from the union's ``MINHASH_K`` smallest
hashes (exact when both sets have fewer values than that). Hashes are Polars' seeded hash,
stable within one Polars release: fingerprints are compared in the process that built them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from datrix.aggregates.stream import SchemaChange
from datrix.jobs.quality.detection import evenly_spaced
from datrix.jobs.quality.issues import Finding, counted
from datrix.jobs.quality.outliers import sample_step
from datrix.jobs.quality.profiling import logical_type
from datrix.jobs.quality.table import ScanTable
from datrix.jobs.report import ScanOptions, Severity

__all__ = [
    "ColumnProfile",
    "SchemaChange",
    "SchemaComparison",
    "detect_schema_changes",
    "profile_frame",
    "profile_table",
    "rename_confidence",
    "scan_schema_changes",
    "schema_change_finding",
]

MAX_CATEGORIES = 50
MIN_REPEATS = 5  # a categorical column's values repeat: non-null values >= 5 x distinct
SAMPLE_ROWS = 100_000
SAMPLE_CELLS = 5_000_000  # a wide table's sample has fewer rows (at least MIN_SAMPLE_ROWS)
MIN_SAMPLE_ROWS = 1_000
MINHASH_K = 64
HASH_SEED = 0x5C4E
RENAME_CONFIDENCE = 0.8  # a removed and an added column this alike are a likely rename
QUANTILES = tuple(i / 10 for i in range(11))
NUMERIC_LIKE = frozenset({"integer", "float", "boolean", "date", "datetime"})
MAX_LISTED = 20  # changes spelt out in the issue's description; the rest are counted
# Changes that can break a reader of the data (the issue's severity): a column gone, moved,
# of another type, with nulls it never had, or with values its readers do not know.
BREAKING = frozenset({"removed", "renamed", "retyped", "nullability"})


@dataclass(frozen=True)
class ColumnProfile:
    """What the detector compares. Built from a Polars frame (``profile_frame``), a
    dataset version (``profile_table``) or a stream window's metrics."""

    name: str
    type: str  # the scan's logical type names (profiling.logical_type)
    nullable: bool  # any null seen
    values: frozenset[str] | None  # a categorical column's value set, else None
    fingerprint: tuple[float, ...]  # (null rate, distinct ratio, *content) for renames


# ---------------------------------------------------------------------------- detection


def detect_schema_changes(
    before: Sequence[ColumnProfile], after: Sequence[ColumnProfile]
) -> list[SchemaChange]:
    """The changes from ``before`` to ``after``: the columns of ``before`` in their order
    (removed, renamed, retyped, nullability, values), then the added columns in the
    order of ``after``. Raises ValueError when a side names a column twice."""
    old = _by_name(before, "before")
    new = _by_name(after, "after")
    removed = [c for c in before if c.name not in new]
    added = [c for c in after if c.name not in old]
    renames = _match_renames(removed, added)
    renamed_to = {a.name for a, _ in renames.values()}
    changes: list[SchemaChange] = []
    for column in before:
        if column.name in renames:
            target, confidence = renames[column.name]
            changes.append(
                SchemaChange(
                    kind="renamed",
                    column=target.name,
                    before=column.name,
                    after=target.name,
                    detail=(
                        f"column {column.name!r} looks renamed to {target.name!r} "
                        f"(confidence {confidence:.2f}: same type {column.type}, matching "
                        "content)"
                    ),
                )
            )
        elif column.name not in new:
            changes.append(
                SchemaChange(
                    "removed",
                    column.name,
                    column.type,
                    None,
                    f"column {column.name!r} ({column.type}) was removed",
                )
            )
        else:
            changes += _kept(column, new[column.name])
    for column in added:
        if column.name not in renamed_to:
            changes.append(
                SchemaChange(
                    "added",
                    column.name,
                    None,
                    column.type,
                    f"column {column.name!r} ({column.type}) was added",
                )
            )
    return changes


def _by_name(columns: Sequence[ColumnProfile], side: str) -> dict[str, ColumnProfile]:
    found: dict[str, ColumnProfile] = {}
    for c in columns:
        if c.name in found:
            raise ValueError(f"column {c.name!r} appears twice in the {side} schema")
        found[c.name] = c
    return found


def _kept(old: ColumnProfile, new: ColumnProfile) -> list[SchemaChange]:
    name = old.name
    changes: list[SchemaChange] = []
    if old.type != new.type:
        changes.append(
            SchemaChange(
                "retyped",
                name,
                old.type,
                new.type,
                f"column {name!r} changed type from {old.type} to {new.type}",
            )
        )
    if not old.nullable and new.nullable:
        changes.append(
            SchemaChange(
                "nullability",
                name,
                "not null",
                "nullable",
                f"column {name!r} had no nulls and now has some",
            )
        )
    if (
        old.type == new.type
        and old.values is not None
        and new.values is not None
        and old.values != new.values
    ):
        gained, lost = sorted(new.values - old.values), sorted(old.values - new.values)
        parts = []
        if gained:
            parts.append(f"new {_plural(len(gained), 'value')} {_listed(gained)}")
        if lost:
            parts.append(f"no more {_listed(lost)}")
        changes.append(
            SchemaChange(
                "values",
                name,
                _listed(sorted(old.values)),
                _listed(sorted(new.values)),
                f"the values of categorical column {name!r} changed: " + "; ".join(parts),
            )
        )
    return changes


def _plural(n: int, word: str) -> str:
    return word if n == 1 else word + "s"


def _listed(values: Sequence[str]) -> str:
    return ", ".join(repr(v) for v in values)


def _match_renames(
    removed: Sequence[ColumnProfile], added: Sequence[ColumnProfile]
) -> dict[str, tuple[ColumnProfile, float]]:
    """Removed column name -> (added column, confidence): the most confident pairs at or
    above ``RENAME_CONFIDENCE`` first, each column in one pair at most."""
    pairs = []
    for i, r in enumerate(removed):
        for j, a in enumerate(added):
            confidence = rename_confidence(r, a)
            if confidence >= RENAME_CONFIDENCE:
                pairs.append((-confidence, i, j))
    pairs.sort()
    taken_r: set[int] = set()
    taken_a: set[int] = set()
    found: dict[str, tuple[ColumnProfile, float]] = {}
    for negative, i, j in pairs:
        if i in taken_r or j in taken_a:
            continue
        taken_r.add(i)
        taken_a.add(j)
        found[removed[i].name] = (added[j], -negative)
    return found


def rename_confidence(before: ColumnProfile, after: ColumnProfile) -> float:
    """How likely ``after`` is ``before`` under a new name, 0..1 (rounded to 3 decimals):
    0 for different types; else 0.7 x content similarity + 0.3 x shape similarity.

    Shape: 1 - the mean absolute difference of the null rates and the distinct ratios.
    Content of a numeric-like column: 1 - 5 x the mean absolute difference of the 11
    quantiles over the larger of the two ranges (clipped at 0); of a text column: the
    estimated Jaccard similarity of the distinct values (bottom-k MinHash). Without
    content (a fingerprint of two numbers) the content similarity counts as 0, so shape
    alone never makes a rename."""
    if before.type != after.type:
        return 0.0
    fa, fb = before.fingerprint, after.fingerprint
    if len(fa) < 2 or len(fb) < 2:
        return 0.0
    shape = 1.0 - (abs(fa[0] - fb[0]) + abs(fa[1] - fb[1])) / 2.0
    ca, cb = fa[2:], fb[2:]
    content = 0.0
    if before.type in NUMERIC_LIKE:
        if len(ca) == len(cb) == len(QUANTILES):
            qa, qb = np.asarray(ca), np.asarray(cb)
            scale = max(float(qa[-1] - qa[0]), float(qb[-1] - qb[0]))
            gap = float(np.mean(np.abs(qa - qb)))
            if scale <= 0:
                content = 1.0 if gap == 0 else 0.0
            else:
                content = max(0.0, 1.0 - 5.0 * gap / scale)
    elif ca and cb:
        content = _jaccard(ca, cb)
    return round(max(0.0, min(1.0, 0.7 * content + 0.3 * shape)), 3)


def _jaccard(a: Sequence[float], b: Sequence[float]) -> float:
    """Jaccard estimate of two sets from their bottom-k sketches (sorted hash minima)."""
    sa, sb = set(a), set(b)
    union = sorted(sa | sb)[:MINHASH_K]
    if not union:
        return 0.0
    return sum(1 for h in union if h in sa and h in sb) / len(union)


# ---------------------------------------------------------------------------- profiles


def profile_frame(
    frame: pl.DataFrame,
    nulls: Mapping[str, int] | None = None,
    rows: int | None = None,
    values: Mapping[str, frozenset[str] | None] | None = None,
) -> list[ColumnProfile]:
    """Profiles of ``frame``'s columns, in order. ``frame`` may be a sample of a larger
    table: ``nulls`` (exact null counts), ``rows`` (the table's rows) and ``values``
    (exact value sets of the columns that are categorical) then replace what the sample
    shows; without them the frame is the whole table."""
    total = frame.height if rows is None else rows
    profiles = []
    for name, series in frame.to_dict().items():
        kind = logical_type(series.dtype)
        null_count = (nulls or {}).get(name, series.null_count())
        present = series.drop_nulls()
        distinct = present.n_unique() if present.len() else 0
        ratio = distinct / present.len() if present.len() else 0.0
        null_rate = null_count / total if total else 0.0
        if values is not None and name in values:
            category = values[name]
        else:
            category = _categories(present) if kind == "string" else None
        profiles.append(
            ColumnProfile(
                name=name,
                type=kind,
                nullable=null_count > 0,
                values=category,
                fingerprint=(round(null_rate, 6), round(ratio, 6), *_content(kind, present)),
            )
        )
    return profiles


def _categories(present: pl.Series) -> frozenset[str] | None:
    """The value set of a categorical text column (its non-null values), else None."""
    distinct = present.n_unique()
    if distinct == 0 or distinct > MAX_CATEGORIES or present.len() < MIN_REPEATS * distinct:
        return None
    return frozenset(str(v) for v in present.unique().to_list())


def _content(kind: str, present: pl.Series) -> tuple[float, ...]:
    if present.len() == 0:
        return ()
    if kind in NUMERIC_LIKE:
        x = present.to_physical().cast(pl.Float64)
        x = x.filter(x.is_finite())
        if x.len() == 0:
            return ()
        ordered = np.sort(x.to_numpy())
        found = np.quantile(ordered, QUANTILES)
        return tuple(float(v) for v in found)
    if kind == "string":
        hashes = present.unique().hash(seed=HASH_SEED).sort().head(MINHASH_K)
        return tuple(float(h) / 2.0**64 for h in hashes.to_list())
    return ()


def profile_table(table: ScanTable, sample_rows: int = SAMPLE_ROWS) -> list[ColumnProfile]:
    """Profiles of a dataset version: exact null counts and categorical value sets over
    every row (on the streaming engine when the table is bounded), fingerprints from an
    evenly spaced sample of at most ``sample_rows`` rows (fewer on a wide table: at most
    ``SAMPLE_CELLS`` cells, at least ``MIN_SAMPLE_ROWS`` rows)."""
    schema = table.lazy.collect_schema()
    columns = list(schema)
    if not columns:
        return []
    rows = table.rows if table.rows else table.collect(table.lazy.select(pl.len())).item()
    nulls_frame = table.collect(table.lazy.select(pl.all().null_count()))
    nulls = {c: int(nulls_frame[c][0]) for c in columns}
    limit = min(sample_rows, max(MIN_SAMPLE_ROWS, SAMPLE_CELLS // len(columns)))
    sampled = evenly_spaced(table, columns, sample_step(rows, limit))
    sample = pl.DataFrame({c: pl.Series(c, sampled[c]) for c in columns})
    maybe = [
        c
        for c in columns
        if logical_type(schema[c]) == "string" and _categories(sample[c].drop_nulls()) is not None
    ]
    values: dict[str, frozenset[str] | None] = {}
    if maybe:
        # exact value sets (a rare value the sample missed is still a value), at most
        # MAX_CATEGORIES + 1 per column however many the column really has
        query = table.lazy.select(
            [
                pl.col(c).drop_nulls().unique().head(MAX_CATEGORIES + 1).implode().alias(c)
                for c in maybe
            ]
        )
        found = table.collect(query)
        for c in maybe:
            listed = found[c][0].to_list()
            present = rows - nulls[c]
            fits = len(listed) <= MAX_CATEGORIES and present >= MIN_REPEATS * len(listed)
            values[c] = frozenset(str(v) for v in listed) if fits else None
    for c in columns:
        if c not in values:
            values[c] = None
    return profile_frame(sample, nulls, rows, values)


# ---------------------------------------------------------------------------- the scan


@dataclass(frozen=True)
class SchemaComparison:
    """A scan's schema check: the changes against ``against_version`` (None: the version
    is unknown), and whether the dataset's schema contract is frozen."""

    changes: tuple[SchemaChange, ...]
    against_version: int | None
    frozen: bool = False


def scan_schema_changes(
    table: ScanTable,
    options: ScanOptions,
    open_table: Callable[[Path], ScanTable] = ScanTable.open,
) -> SchemaComparison | None:
    """The schema check of a scan: against the contract's version when the dataset's
    contract is frozen (``options.contract_path``), else against the drift baseline
    (``options.previous_path``); None when the version has no baseline."""
    baseline, version = options.previous_path, options.previous_version
    if options.contract_path is not None:
        baseline, version = options.contract_path, options.contract_version
    if baseline is None:
        return None
    before = profile_table(open_table(Path(baseline)))
    after = profile_table(table)
    changes = detect_schema_changes(before, after)
    return SchemaComparison(tuple(changes), version, options.contract_frozen)


def schema_change_finding(found: SchemaComparison | None, rows: int) -> Finding | None:
    """One ``schema_change`` issue listing every change (consistency dimension), or None
    without changes. Severity: critical under a frozen contract; else warning when a
    change can break a reader (a column removed, renamed, retyped or newly nullable, a
    categorical column with new values), else info. A breaking change (or any change
    under a contract) affects every row, which ranks the issue by impact like the others
    (a removed column weighs as much as a column with every value missing)."""
    if found is None or not found.changes:
        return None
    breaking = [c for c in found.changes if is_breaking(c)]
    severity: Severity = "critical" if found.frozen else ("warning" if breaking else "info")
    since = f"version {found.against_version}" if found.against_version else "the previous version"
    listed = "; ".join(c.detail for c in found.changes[:MAX_LISTED])
    more = len(found.changes) - MAX_LISTED
    if more > 0:
        listed += f"; and {counted(more, 'more change')}"
    columns = len({c.column for c in found.changes})
    head = f"the schema changed since {since} ({counted(len(found.changes), 'change')} in "
    head += f"{counted(columns, 'column')}): "
    if found.frozen:
        head = (
            f"the schema contract (frozen as of {since}) is broken: "
            f"{counted(len(found.changes), 'change')} in {counted(columns, 'column')}: "
        )
    return Finding(
        type="schema_change",
        column=None,
        dimension="consistency",
        description=head + listed,
        affected_count=rows if (breaking or found.frozen) else 0,
        severity=severity,
    )


def is_breaking(change: SchemaChange) -> bool:
    """Whether a change can break a reader: ``BREAKING`` kinds, and new categorical
    values (a reader's list of the values does not know them)."""
    if change.kind in BREAKING:
        return True
    return change.kind == "values" and "new value" in change.detail


def changed_columns(found: SchemaComparison | None) -> int:
    """Columns with a breaking change (any change under a frozen contract): the score's
    count (``ScoreInputs.schema_changed_columns``)."""
    if found is None:
        return 0
    return len({c.column for c in found.changes if found.frozen or is_breaking(c)})
