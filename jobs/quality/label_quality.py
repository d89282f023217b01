"""Label quality and measured impact, the same for every engine (on a Polars frame).

With a label column, two things happen after the other detectors ran:

1. ``labels.find_label_issues`` (confident learning on out-of-fold probabilities of an
   automatically chosen model) flags rows whose label disagrees with the other columns;
   they become one ``label_issues`` finding in the ``label_quality`` dimension. When the
   other columns predict the label no better than chance (``labels.looks_like_noise``),
   the finding says the labels look like noise (critical, even with no row flagged) and
   label quality scores 0.
2. ``impact.measure_finding_impacts`` measures what fixing the findings with the highest
   estimated impact would do to a quick model: held-out accuracy of the model trained
   without and with the issue's standard fix (drop, impute, winsorise, canonical
   spelling...) applied to the training folds only, scored on the same untouched held-out
   rows. Those findings carry the measured impact (0..100) and say so in their
   description ("no measurable gain" when the gain is within the noise); the rest keep the
   share-based estimate.

Both need the rows in memory: the Polars engine has them; the Spark engine collects the
table to the driver for this step (the same trade-off as its near-duplicate pass).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

import polars as pl

from datrix.jobs.quality.impact import ImpactMeasurement, measure_finding_impacts
from datrix.jobs.quality.issues import Finding
from datrix.jobs.quality.labels import describe, find_label_issues, looks_like_noise

log = logging.getLogger("datrix.quality")


@dataclass(frozen=True)
class LabelQuality:
    findings: list[Finding]  # the input findings (impacts measured) + label_issues
    flagged_share: float  # share of assessed rows whose label looks wrong
    note: str | None  # why labels were not assessed, when they were not
    noise: bool = False  # the other columns predict the label no better than chance


def assess_labels(
    frame: pl.DataFrame, label: str, findings: Sequence[Finding], seed: int = 0
) -> LabelQuality:
    found = find_label_issues(frame, label, seed=seed)
    noise = looks_like_noise(found)
    out = list(findings)
    if found.rows or noise:
        out.append(
            Finding(
                type="label_issues",
                column=label,
                dimension="label_quality",
                description=describe(found, label),
                affected_count=len(found.rows),
                rows=found.rows,
                severity="critical" if noise else None,
            )
        )
    share = len(found.rows) / found.assessed_rows if found.assessed_rows else 0.0
    try:
        measured = measure_finding_impacts(frame, label, out, seed=seed)
    except ValueError as exc:  # e.g. a label a quick model cannot be fitted on
        log.warning("impact not measured: %s", exc)
        measured = {}
    for i, m in measured.items():
        f = out[i]
        out[i] = replace(
            f, impact=m.impact_score, description=f"{f.description}; {measured_text(m, label)}"
        )
    return LabelQuality(out, share, found.skipped, noise)


def measured_text(m: ImpactMeasurement, label: str) -> str:
    """What a measured impact says in an issue's description."""
    points = 100.0 * m.delta
    scores = (
        f"a quick model trained with the fix applied to its training rows scores "
        f"{m.after:.3f} instead of {m.before:.3f} accuracy on {label!r} over "
        f"{m.rows_scored:,} held-out rows the fix did not touch ({points:+.1f} points, "
        f"noise {100.0 * m.noise:.1f})"
    )
    if m.gained:
        return f"measured gain: {scores}"
    return f"measured: no measurable gain ({scores})"
