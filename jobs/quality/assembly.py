"""What every scan engine assembles the same way from the same counts: column profiles,
the core findings (exact duplicates, nulls, outliers, sentinel and impossible values,
constant columns, drift), the near-duplicate, PII and format findings and the score
inputs, so the Polars and Spark engines cannot drift apart in wording or scoring."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import polars as pl

from datrix.jobs.engine import ProgressFn
from datrix.jobs.quality import drift
from datrix.jobs.quality.accuracy import Accuracy
from datrix.jobs.quality.accuracy import numeric_values as numeric_cells
from datrix.jobs.quality.dates import DateChecks
from datrix.jobs.quality.formats import FormatFinding
from datrix.jobs.quality.issues import Finding, counted, number_issues, verb
from datrix.jobs.quality.near_duplicates import DEFINITION, NearDuplicates
from datrix.jobs.quality.outliers import IF_THRESHOLD
from datrix.jobs.quality.pii import (
    KIND_LABELS,
    SPAN_LABELS,
    PiiColumn,
    mask_findings,
    mask_profiles,
)
from datrix.jobs.quality.profiling import ColumnStats
from datrix.jobs.quality.schema_change import (
    SchemaComparison,
    changed_columns,
    schema_change_finding,
)
from datrix.jobs.quality.scoring import ScoreInputs, build_scores
from datrix.jobs.report import ColumnProfile, ScanOptions, ScanReport
from datrix.jobs.transforms.pii_tokens import redaction_markers

if TYPE_CHECKING:
    from datrix.jobs.quality.label_quality import LabelSample


def is_constant(stats: ColumnStats, rows: int) -> bool:
    """One distinct non-null value over at least two non-null rows (a one-row dataset is
    not "constant" in any useful sense), unless that value is a PII fix's redaction marker
    (``transforms.pii_tokens.redaction_markers``: ``<REDACTED>``, ``<EMAIL>``, ...): a
    column of e-mail addresses redacted by a fix is all ``<EMAIL>`` on purpose, not a new
    defect (no constant_column issue, no constant-column share in the score)."""
    if stats.distinct_count != 1 or rows - stats.null_count < 2:
        return False
    value = stats.top_values[0][0] if stats.top_values else None
    return not (isinstance(value, str) and value in redaction_markers())


def pct(count: int, rows: int) -> float:
    return 100.0 * count / rows if rows else 0.0


def column_profile(
    stats: ColumnStats,
    rows: int,
    missingness: str | None = None,
    drifted: drift.ColumnDrift | None = None,
    previous_version: int | None = None,
    stored_as: str | None = None,
) -> ColumnProfile:
    extra: dict[str, Any] = {**({"missingness": missingness} if missingness else {})}
    extra.update(stats.extra())
    if stored_as:  # the reader's type could not be stored as is (jobs/quality/types.py)
        extra["stored_as"] = stored_as
    if drifted is not None:
        extra["drift"] = drifted.as_extra(previous_version)
    return ColumnProfile(
        name=stats.name,
        type=stats.logical_type,
        null_count=stats.null_count,
        null_pct=round(pct(stats.null_count, rows), 3),
        distinct_count=stats.distinct_count,
        extra=extra,
    )


def column_profiles(
    stats: Sequence[ColumnStats],
    rows: int,
    missingness: Mapping[str, str] | None,
    drifts: Sequence[drift.ColumnDrift],
    previous_version: int | None,
    stored_as: Mapping[str, str] | None = None,
) -> list[ColumnProfile]:
    by_column = {d.column: d for d in drifts}
    return [
        column_profile(
            s,
            rows,
            (missingness or {}).get(s.name),
            by_column.get(s.name),
            previous_version,
            (stored_as or {}).get(s.name),
        )
        for s in stats
    ]


def core_findings(
    rows: int,
    stats: list[ColumnStats],
    redundant: list[int],
    null_rows: Mapping[str, Sequence[int]],
    accuracy: Accuracy,
    drifts: Sequence[drift.ColumnDrift] = (),
    previous_version: int | None = None,
    missingness_capped: Mapping[str, tuple[int, int]] | None = None,
) -> list[Finding]:
    findings: list[Finding] = []
    capped = missingness_capped or {}
    if redundant:
        n = len(redundant)
        findings.append(
            Finding(
                type="exact_duplicates",
                column=None,
                dimension="consistency",
                description=(
                    f"{counted(n, 'row')} ({pct(n, rows):.2f}% of rows) "
                    f"{verb(n, 'repeats', 'repeat')} an earlier row exactly"
                ),
                affected_count=n,
                rows=redundant,
            )
        )
    for s in stats:
        if s.null_count > 0:
            findings.append(
                Finding(
                    type="null_values",
                    column=s.name,
                    dimension="completeness",
                    description=(
                        f"{counted(s.null_count, 'null value')} in column {s.name!r} "
                        f"({pct(s.null_count, rows):.2f}% of rows)"
                        + _capped_note(capped.get(s.name))
                    ),
                    affected_count=s.null_count,
                    rows=null_rows.get(s.name, []),
                )
            )
        findings += _accuracy_findings(s.name, rows, accuracy)
        if is_constant(s, rows):
            value = s.top_values[0][0] if s.top_values else None
            findings.append(
                Finding(
                    type="constant_column",
                    column=s.name,
                    dimension="distribution",
                    description=f"column {s.name!r} holds a single value ({value!r})",
                    affected_count=0,
                )
            )
        else:
            findings += distribution_findings(s, rows)
    findings += [
        Finding(
            type="drift",
            column=d.column,
            dimension="distribution",
            description=drift.describe(d, previous_version),
            affected_count=0,
            severity="warning",
        )
        for d in drifts
        if d.drifted
    ]
    return findings


def _capped_note(capped: tuple[int, int] | None) -> str:
    if capped is None:
        return ""
    tested, could = capped
    return (
        f"; its missingness class was tested against the {tested:,} nearest of {could:,} "
        f"other usable columns (a cap on wide tables)"
    )


def _accuracy_findings(name: str, rows: int, accuracy: Accuracy) -> list[Finding]:
    findings: list[Finding] = []
    positions = accuracy.outliers.get(name, [])
    if positions:
        rule = accuracy.rules[name]
        findings.append(
            Finding(
                type="outliers",
                column=name,
                dimension="accuracy",
                description=(
                    f"{counted(len(positions), 'value')} in column {name!r} "
                    f"{verb(len(positions), 'is an outlier', 'are outliers')} by two "
                    f"methods: {rule.describe()}, and an IsolationForest score of at least "
                    f"{IF_THRESHOLD:g}"
                ),
                affected_count=len(positions),
                rows=positions,
            )
        )
    if name in accuracy.sentinels:
        codes, positions = accuracy.sentinels[name]
        shown = ", ".join(f"{c.value:g} ({c.count:,}x)" for c in codes)
        share = pct(len(positions), rows)
        findings.append(
            Finding(
                type="sentinel_values",
                column=name,
                dimension="accuracy",
                description=(
                    f"{counted(len(positions), 'value')} in column {name!r} ({share:.2f}% of "
                    f"rows) {verb(len(positions), 'is a placeholder code', 'are placeholder')}"
                    f"{verb(len(positions), '', ' codes')}, not measurements: {shown}; "
                    "treat them as missing"
                ),
                affected_count=len(positions),
                rows=positions,
            )
        )
    if name in accuracy.impossible:
        why, positions = accuracy.impossible[name]
        evidence = (
            "its name says it cannot be negative"
            if why == "name"
            else "its other values pile up against zero"
        )
        findings.append(
            Finding(
                type="impossible_values",
                column=name,
                dimension="accuracy",
                description=(
                    f"{len(positions):,} negative values in column {name!r}, which cannot be "
                    f"negative: {evidence}"
                ),
                affected_count=len(positions),
                rows=positions,
            )
        )
    return findings


def core_score_inputs(
    rows: int,
    stats: list[ColumnStats],
    redundant: list[int],
    accuracy: Accuracy,
    label: str | None,
    drifts: Sequence[drift.ColumnDrift] = (),
) -> ScoreInputs:
    """Score inputs from the core checks; engines with more detectors add their counts
    with ``dataclasses.replace``."""
    by_name = {s.name: s for s in stats}
    return ScoreInputs(
        rows=rows,
        columns=len(stats),
        null_cells=sum(s.null_count for s in stats),
        worst_column_null_share=(
            max((s.null_count for s in stats), default=0) / rows if rows else 0.0
        ),
        redundant_rows=len(redundant),
        numeric_cells=sum(numeric_cells(s, rows) for s in stats),
        outlier_cells=accuracy.outlier_cells,
        sentinel_cells=accuracy.sentinel_cells,
        impossible_cells=accuracy.impossible_cells,
        constant_columns=sum(1 for s in stats if is_constant(s, rows)),
        drifted_columns=sum(1 for d in drifts if d.drifted),
        label_null_share=(
            (by_name[label].null_count / rows if rows else 0.0) if label is not None else None
        ),
    )


@dataclass(frozen=True)
class TextChecks:
    pii: list[PiiColumn]
    formats: list[FormatFinding]
    cells: int  # non-null cells of the text columns checked
    # text columns that are numbers or dates (formats.infer_text_types)
    types: Mapping[str, str] = field(default_factory=dict)


def near_duplicate_findings(near: NearDuplicates, rows: int) -> list[Finding]:
    if not near.pairs:
        return []
    n = len(near.rows)
    ignored = (
        f"; {', '.join(repr(c) for c in near.keys_ignored)} ignored as key"
        f"{'s' if len(near.keys_ignored) > 1 else ''}"
        if near.keys_ignored
        else ""
    )
    limit = "; the candidate limit was reached, so there may be more" if near.truncated else ""
    segmented = ""
    if near.segments > 1:  # a bounded scan of a large table (near_duplicates: Segments)
        by = near.partition_column
        how = f" by a hash of {by!r}: pairs that differ there are mostly missed" if by else ""
        segmented = f"; searched in {near.segments:,} segments of rows{how}"
    return [
        Finding(
            type="near_duplicates",
            column=None,
            dimension="consistency",
            description=(
                f"{counted(n, 'row')} ({pct(n, rows):.2f}% of rows) {verb(n, 'forms', 'form')} "
                f"{counted(len(near.pairs), 'near-duplicate pair')}: {DEFINITION}; "
                f"{near.columns_compared} fields compared{ignored}{limit}{segmented}"
            ),
            affected_count=n,
            rows=near.rows,
        )
    ]


def pii_findings(columns: list[PiiColumn], rows: int) -> list[Finding]:
    """PII is a compliance finding: severity warning whatever its share (see scoring).

    Dimension "consistency": none of the report's dimensions measures compliance;
    consistency (values conform to the rules set for the data, here a data-protection
    rule) is the closest, and PII weighs little in its score."""
    findings = []
    for c in columns:
        n = len(c.rows)
        labels = SPAN_LABELS if c.embedded else KIND_LABELS
        kinds = ", ".join(f"{labels[k]} [{k}]: {c.counts[k]:,}" for k in c.kinds)
        description = (
            f"column {c.column!r} holds personal data: {kinds} "
            f"({pct(n, rows):.2f}% of rows); redact, mask or hash it"
        )
        if c.embedded:  # counts are rows per kind; never the values themselves
            description = (
                f"column {c.column!r} has personal data inside its values in "
                f"{counted(n, 'row')} ({pct(n, rows):.2f}% of rows): {kinds}; "
                "redact the spans (<EMAIL>, <PHONE>, ...)"
            )
        findings.append(
            Finding(
                type="pii_detected",
                column=c.column,
                dimension="consistency",
                description=description,
                affected_count=n,
                rows=c.rows,
                severity="warning",
            )
        )
    return findings


def detector_findings(near: NearDuplicates, text: TextChecks, rows: int) -> list[Finding]:
    """Findings of the detectors beyond the core checks: near duplicates, PII, formats."""
    findings = near_duplicate_findings(near, rows) + pii_findings(text.pii, rows)
    findings += [
        Finding(f.type, f.column, "consistency", f.description, len(f.rows), f.rows)
        for f in text.formats
    ]
    return findings


def detector_score_inputs(
    inputs: ScoreInputs, near: NearDuplicates, text: TextChecks
) -> ScoreInputs:
    """``inputs`` (from ``core_score_inputs``) plus the counts of those detectors."""
    return replace(
        inputs,
        near_duplicate_rows=near.redundant,
        text_cells=text.cells,
        format_cells=sum(len(f.rows) for f in text.formats),
        pii_columns=len(text.pii),
    )


# Distribution shape (info findings; they describe the data and cost no score points).
NEAR_CONSTANT_SHARE = 0.99  # one value holds >= 99 % of at least ...
NEAR_CONSTANT_MIN_ROWS = 100  # ... this many non-null values
SKEW_BOWLEY = 0.3  # quartile skewness (p75 + p25 - 2 p50) / (p75 - p25), or ...
SKEW_PEARSON = 1.0  # ... Pearson's median skewness 3 (mean - p50) / std
SKEW_MIN_DISTINCT = 12  # counts and codes with few values are not "skewed"
# A text column with at least this many distinct values that still repeats them (distinct
# values under half its values): a category with too many levels. Columns of mostly unique
# values are keys, free text or personal data, where many values are their nature.
HIGH_CARDINALITY_MIN = 1_000
HIGH_CARDINALITY_SHARE = 0.5
# dates and times kept as text (a CSV) are not categories
_DATE_LIKE = re.compile(r"^\s*(\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})")


def distribution_findings(s: ColumnStats, rows: int) -> list[Finding]:
    """Near-constant columns, strongly skewed numeric columns and high-cardinality text
    columns, from the profile alone (so every engine reports them identically)."""
    present = rows - s.null_count
    out: list[Finding] = []
    if present >= NEAR_CONSTANT_MIN_ROWS and s.top_values and s.distinct_count > 1:
        value, count = s.top_values[0]
        if count >= NEAR_CONSTANT_SHARE * present:
            out.append(
                Finding(
                    type="constant_column",
                    column=s.name,
                    dimension="distribution",
                    description=(
                        f"column {s.name!r} is nearly constant: {value!r} is "
                        f"{100.0 * count / present:.2f}% of its values"
                    ),
                    affected_count=0,
                    severity="info",
                )
            )
            return out
    n = s.numeric
    if (
        n is not None
        and s.logical_type in ("integer", "float")
        and s.distinct_count >= SKEW_MIN_DISTINCT
        and None not in (n.p25, n.p50, n.p75, n.mean, n.std)
    ):
        p25, p50, p75 = float(n.p25 or 0), float(n.p50 or 0), float(n.p75 or 0)
        mean, std = float(n.mean or 0), float(n.std or 0)
        bowley = (p75 + p25 - 2 * p50) / (p75 - p25) if p75 > p25 else 0.0
        pearson = 3 * (mean - p50) / std if std > 0 else 0.0
        if abs(bowley) >= SKEW_BOWLEY or abs(pearson) >= SKEW_PEARSON:
            side = "right" if (bowley or pearson) > 0 else "left"
            out.append(
                Finding(
                    type="skewed_distribution",
                    column=s.name,
                    dimension="distribution",
                    description=(
                        f"column {s.name!r} is strongly {side}-skewed (quartile skewness "
                        f"{bowley:.2f}, median skewness {pearson:.2f}): mean {mean:.4g} vs "
                        f"median {p50:.4g}; consider a log or rank transform for models"
                    ),
                    affected_count=0,
                    severity="info",
                )
            )
    if (
        s.logical_type == "string"
        and s.distinct_count >= HIGH_CARDINALITY_MIN
        and s.distinct_count < HIGH_CARDINALITY_SHARE * present
        and not any(_DATE_LIKE.match(str(v)) for v, _ in s.top_values[:3])
    ):
        out.append(
            Finding(
                type="high_cardinality",
                column=s.name,
                dimension="distribution",
                description=(
                    f"column {s.name!r} repeats {s.distinct_count:,} distinct values over "
                    f"{present:,} rows: a category with too many levels to model or "
                    f"group by (consider grouping rare values)"
                ),
                affected_count=0,
                severity="info",
            )
        )
    return out


def date_findings(dates: DateChecks) -> list[Finding]:
    """Placeholder dates, future timestamps and impossible birth dates (dates.py)."""
    return [
        Finding(f.type, f.column, "accuracy", f.description, len(f.rows), f.rows)
        for f in dates.findings
    ]


def date_score_inputs(inputs: ScoreInputs, dates: DateChecks) -> ScoreInputs:
    """Date cells count as measurement cells of the accuracy score, their placeholder and
    impossible values as wrong ones."""
    return replace(
        inputs,
        numeric_cells=inputs.numeric_cells + dates.cells,
        sentinel_cells=inputs.sentinel_cells + dates.placeholder_cells,
        impossible_cells=inputs.impossible_cells + dates.impossible_cells,
    )


def date_profiles(profiles: list[ColumnProfile], dates: DateChecks) -> list[ColumnProfile]:
    """The profiles of date columns with their (inferred) type, range and histogram."""
    out = []
    for p in profiles:
        if p.name in dates.profiles:
            kind, extra = dates.profiles[p.name]
            p = replace(p, type=kind, extra={**p.extra, **extra})
        out.append(p)
    return out


@dataclass(frozen=True)
class Detected:
    """What an engine's passes found: everything the score phase needs."""

    rows: int
    columns: int
    stats: list[ColumnStats]
    redundant: list[int]
    null_rows: Mapping[str, Sequence[int]]
    accuracy: Accuracy
    drifts: Sequence[drift.ColumnDrift]
    near: NearDuplicates
    text: TextChecks
    missingness: Mapping[str, str] | None
    # column -> the stored type and why it is not the reader's (types.stored_notes)
    stored_as: Mapping[str, str] = field(default_factory=dict)
    # date and timestamp columns, native or typed from text (dates.py)
    dates: DateChecks = field(default_factory=DateChecks)
    # columns whose missingness was tested against a capped set of partners:
    # (partners tested, partners that could have been) (``missingness.MAX_PARTNERS``)
    missingness_capped: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    # the schema against the baseline version or the frozen contract (schema_change.py)
    schema: SchemaComparison | None = None


def build_report(
    engine: str,
    found: Detected,
    options: ScanOptions,
    table: Callable[[], pl.DataFrame | LabelSample],
    progress: ProgressFn,
    total: int,
) -> ScanReport:
    """The score phase every engine shares: findings, label quality and measured impacts
    (``table()`` materialises the rows only when a label column asks for it: the whole
    table, or a ``LabelSample`` of it from an engine that cannot hold it), numbering,
    scores and the report."""
    rows, stats, label = found.rows, found.stats, options.label_column
    version = options.previous_version
    progress("score", total - 1, total)
    findings = core_findings(
        rows,
        stats,
        found.redundant,
        found.null_rows,
        found.accuracy,
        found.drifts,
        version,
        found.missingness_capped,
    )
    findings += detector_findings(found.near, found.text, rows)
    findings += date_findings(found.dates)
    schema = schema_change_finding(found.schema, rows)
    if schema is not None:
        findings.append(schema)
    inputs = detector_score_inputs(
        core_score_inputs(rows, stats, found.redundant, found.accuracy, label, found.drifts),
        found.near,
        found.text,
    )
    inputs = date_score_inputs(inputs, found.dates)
    inputs = replace(inputs, schema_changed_columns=changed_columns(found.schema))
    if label is not None and rows > 0:
        from datrix.jobs.quality.label_quality import assess_labels

        progress("labels", total - 1, total)
        labelled = assess_labels(table(), label, findings, options.seed)
        findings = labelled.findings
        inputs = replace(
            inputs, label_issue_share=labelled.flagged_share, label_noise=labelled.noise
        )
    findings = mask_findings(findings, {c.column for c in found.text.pii})
    issues, affected = number_issues(findings, rows)
    score = build_scores(inputs, options.weights)
    progress("score", total, total)
    return ScanReport(
        rows=rows,
        columns=found.columns,
        score=score,
        column_profiles=mask_profiles(
            date_profiles(
                column_profiles(
                    stats, rows, found.missingness, found.drifts, version, found.stored_as
                ),
                found.dates,
            ),
            {c.column for c in found.text.pii},
        ),
        issues=issues,
        affected_rows=affected,
        engine=engine,
    )
