"""Severity, impact and dimension-score formulas, kept apart so they are easy to read,
test and tune. Every function is pure and deterministic; "share" is a fraction in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from datrix.jobs.report import DEFAULT_WEIGHTS, DIMENSIONS, Scores, Severity

# Severity by the share of rows an issue affects.
CRITICAL_SHARE = 0.20  # >= 20 % of rows
WARNING_SHARE = 0.05  # >= 5 % of rows; anything less is "info"
SEVERITY_WEIGHT: dict[Severity, float] = {"critical": 1.0, "warning": 0.6, "info": 0.3}

# Dimension-score tuning (see ``dimension_scores``).
COMPLETENESS_OVERALL_WEIGHT = 0.75  # the rest goes to the worst column
DUPLICATE_PENALTY = 2.0  # 50 % redundant rows -> consistency 0
OUTLIER_PENALTY = 10.0  # 10 % far-out numeric values -> accuracy 0
FORMAT_PENALTY = 5.0  # 20 % of text cells misspelt or mistyped -> that part of consistency 0
# PII is a compliance finding, not a defect of the data: it costs a little consistency so a
# report with PII never scores a perfect 100, and never more than a few points.
PII_PENALTY_PER_COLUMN = 1.0
PII_MAX_PENALTY = 5.0
# A column removed, renamed, retyped, newly nullable or with new categorical values since the
# baseline version (any change under a frozen schema contract) costs half its share of the
# columns: one breaking change in a 10-column table costs 5 consistency points.
SCHEMA_PENALTY = 0.5
LABEL_NOISE_PENALTY = 2.0  # 50 % of labels wrong -> label_quality 0


def severity_for(share: float) -> Severity:
    """critical at >= 20 % of rows affected, warning at >= 5 %, info below."""
    if share >= CRITICAL_SHARE:
        return "critical"
    if share >= WARNING_SHARE:
        return "warning"
    return "info"


def impact_score(share: float, severity: Severity) -> float:
    """How much fixing the issue matters, 0..100, rounded to 1 decimal::

        impact = 100 * w(severity) * (0.5 + 0.5 * sqrt(share))

    with w = 1.0 (critical), 0.6 (warning), 0.3 (info). The severity weight sets the band
    (critical 72.4..100, warning 36.7..43.4, info 15..18.4 when severity follows
    ``severity_for``), the square root spreads small shares apart within a band (1 % vs
    4 % matters more than 61 % vs 64 %), and the score rises monotonically with the share.
    """
    share = _clamp(share, 0.0, 1.0)
    return round(100.0 * SEVERITY_WEIGHT[severity] * (0.5 + 0.5 * math.sqrt(share)), 1)


@dataclass(frozen=True)
class ScoreInputs:
    """Counts the dimension scores are computed from."""

    rows: int
    columns: int
    null_cells: int = 0
    worst_column_null_share: float = 0.0
    redundant_rows: int = 0
    numeric_cells: int = 0  # non-null, non-NaN cells of numeric columns
    outlier_cells: int = 0
    sentinel_cells: int = 0  # placeholder codes such as -1 or 999
    impossible_cells: int = 0  # negatives where negatives cannot be
    constant_columns: int = 0
    drifted_columns: int = 0  # columns that drifted since the previous version
    label_null_share: float | None = None  # None when no label column is given
    label_issue_share: float = 0.0  # share of assessed rows whose label looks wrong
    label_noise: bool = False  # the other columns predict the label no better than chance
    near_duplicate_rows: int = 0  # rows beyond the first of each near-duplicate pair
    text_cells: int = 0  # non-null cells of the text columns the format checks looked at
    format_cells: int = 0  # of those, case/whitespace/date-format variants and mistypes
    pii_columns: int = 0
    schema_changed_columns: int = 0  # columns with a breaking schema change (schema_change.py)


def dimension_scores(inputs: ScoreInputs) -> dict[str, float]:
    """Unrounded 0..100 score per dimension (an empty dataset scores 100 everywhere):

    - completeness = 100 * (1 - (0.75 * null share of all cells + 0.25 * worst column's
      null share)): a single empty column out of many still costs a quarter;
    - consistency = 100 * (1 - min(1, 2 * (redundant + near-duplicate rows) / rows
      + 5 * misformatted share of text cells + 0.5 * columns with a breaking schema
      change / columns)) - min(5, 1 per PII column);
    - accuracy = 100 * (1 - min(1, 10 * share of numeric values that are outliers,
      sentinel codes or impossible negatives)): with far-out fences clean data has ~2
      outliers per million, so 10 % is already broken data;
    - distribution = 100 * (1 - (constant + drifted columns) / columns);
    - label_quality = 100 without a label column, else 100 * (1 - label null share
      - 2 * share of rows whose label looks wrong): 10 % flipped labels score about 80;
      0 when the labels look like noise (``labels.looks_like_noise``).
    """
    scores: dict[str, float] = dict.fromkeys(DIMENSIONS, 100.0)
    if inputs.rows <= 0 or inputs.columns <= 0:
        return scores
    cells = inputs.rows * inputs.columns
    null_share = inputs.null_cells / cells
    w = COMPLETENESS_OVERALL_WEIGHT
    scores["completeness"] = 100.0 * (
        1.0 - (w * null_share + (1.0 - w) * inputs.worst_column_null_share)
    )
    dup_share = (inputs.redundant_rows + inputs.near_duplicate_rows) / inputs.rows
    format_share = inputs.format_cells / inputs.text_cells if inputs.text_cells > 0 else 0.0
    defects = DUPLICATE_PENALTY * dup_share + FORMAT_PENALTY * format_share
    defects += SCHEMA_PENALTY * inputs.schema_changed_columns / inputs.columns
    scores["consistency"] = 100.0 * (1.0 - min(1.0, defects)) - min(
        PII_MAX_PENALTY, PII_PENALTY_PER_COLUMN * inputs.pii_columns
    )
    if inputs.numeric_cells > 0:
        wrong = inputs.outlier_cells + inputs.sentinel_cells + inputs.impossible_cells
        scores["accuracy"] = 100.0 * (
            1.0 - min(1.0, OUTLIER_PENALTY * wrong / inputs.numeric_cells)
        )
    odd_columns = inputs.constant_columns + inputs.drifted_columns
    scores["distribution"] = 100.0 * (1.0 - min(1.0, odd_columns / inputs.columns))
    if inputs.label_null_share is not None:
        scores["label_quality"] = 100.0 * (
            1.0 - inputs.label_null_share - LABEL_NOISE_PENALTY * inputs.label_issue_share
        )
        if inputs.label_noise:
            scores["label_quality"] = 0.0
    return {k: _clamp(v, 0.0, 100.0) for k, v in scores.items()}


def parse_weights(text: str) -> dict[str, float]:
    """``"completeness=0.3,accuracy=0.1"`` -> the default weights with those replaced.

    Dimensions left out keep their default weight (``DEFAULT_WEIGHTS``). Raises ValueError
    with a one-line reason for an unknown dimension, a repeated one, a value that is not a
    finite number >= 0, or weights that are all zero."""
    weights = dict(DEFAULT_WEIGHTS)
    seen: set[str] = set()
    for part in text.split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep:
            raise ValueError(f"expected DIMENSION=WEIGHT, got {part.strip()!r}")
        if name not in DIMENSIONS:
            raise ValueError(f"unknown score dimension {name!r}; use {', '.join(DIMENSIONS)}")
        if name in seen:
            raise ValueError(f"weight for {name} given twice")
        seen.add(name)
        try:
            weight = float(value)
        except ValueError:
            shown = value.strip()
            raise ValueError(f"weight for {name} must be a number >= 0, got {shown!r}") from None
        weights[name] = weight
    if not seen:
        raise ValueError("no weights given; use e.g. completeness=0.3,accuracy=0.2")
    validate_weights(weights)
    return weights


def validate_weights(weights: Mapping[str, float]) -> None:
    """Raises ValueError unless every key is a dimension and every weight a finite number
    >= 0, not all of them zero."""
    for name, weight in weights.items():
        if name not in DIMENSIONS:
            raise ValueError(f"unknown score dimension {name!r}; use {', '.join(DIMENSIONS)}")
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"weight for {name} must be a number >= 0, got {weight:g}")
    if not any(weight > 0 for weight in weights.values()):
        raise ValueError("score weights must not all be zero")


def overall_score(
    scores: Mapping[str, float], weights: Mapping[str, float], has_label: bool
) -> float:
    """Weighted mean of the dimension scores (seed spec 4.6; defaults in
    ``DEFAULT_WEIGHTS``). Without a label column label_quality's weight is dropped and the
    others renormalised; a dimension missing from ``weights`` weighs 0. Only the ratios of
    the weights count (any finite size, up to 1e308, is fine). Raises ValueError
    for negative weights or when no weight is left."""
    used = [d for d in DIMENSIONS if has_label or d != "label_quality"]
    raw = {dim: float(weights.get(dim, 0.0)) for dim in used}
    for dim, weight in raw.items():
        if weight < 0 or not math.isfinite(weight):
            raise ValueError(f"score weight for {dim} must be a finite number >= 0")
    scale = max(raw.values(), default=0.0)
    if scale <= 0:
        raise ValueError("score weights must not all be zero")
    # Divided by the largest first: weights are relative, and 1e308 + 1e308 would
    # overflow to inf (inf / inf is NaN, which the clamp turned into 100).
    total = 0.0
    weighted = 0.0
    for dim, weight in raw.items():
        total += weight / scale
        weighted += weight / scale * scores[dim]
    return _clamp(weighted / total, 0.0, 100.0)


def build_scores(inputs: ScoreInputs, weights: Mapping[str, float]) -> Scores:
    """Dimension scores and their weighted overall, each rounded to 1 decimal."""
    dims = dimension_scores(inputs)
    overall = overall_score(dims, weights, has_label=inputs.label_null_share is not None)
    return Scores(
        overall=round(overall, 1),
        completeness=round(dims["completeness"], 1),
        consistency=round(dims["consistency"], 1),
        accuracy=round(dims["accuracy"], 1),
        distribution=round(dims["distribution"], 1),
        label_quality=round(dims["label_quality"], 1),
    )


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))
