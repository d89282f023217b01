"""Label quality and measured impact, the same for every engine (on a Polars frame).

With a label column, two things happen after the other detectors ran:

1. ``labels.find_label_issues`` (confident learning on out-of-fold probabilities of an
   automatically chosen model) flags rows whose label disagrees with the other columns;
   they become one ``label_issues`` finding in the ``label_quality`` dimension.
2. ``impact.measure_finding_impacts`` measures what fixing the findings with the highest
   estimated impact would do to a quick model: cross-validated accuracy before and after
   the issue's standard fix (drop, impute, winsorise, canonical spelling...). Those
   findings carry the measured impact (0..100) and say so in their description; the rest
   keep the share-based estimate.

Both need the rows in memory: the Polars engine has them; the Spark engine collects the
table to the driver for this step (the same trade-off as its near-duplicate pass).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

import polars as pl

from jobs.quality.impact import measure_finding_impacts
from jobs.quality.issues import Finding
from jobs.quality.labels import describe, find_label_issues

log = logging.getLogger("datrix.quality")


@dataclass(frozen=True)
class LabelQuality:
    findings: list[Finding]  # the input findings (impacts measured) + label_issues
    flagged_share: float  # share of assessed rows whose label looks wrong
    note: str | None  # why labels were not assessed, when they were not


def assess_labels(
    frame: pl.DataFrame, label: str, findings: Sequence[Finding], seed: int = 0
) -> LabelQuality:
    found = find_label_issues(frame, label, seed=seed)
    out = list(findings)
    if found.rows:
        out.append(
            Finding(
                type="label_issues",
                column=label,
                dimension="label_quality",
                description=describe(found, label),
                affected_count=len(found.rows),
                rows=found.rows,
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
            f,
            impact=m.impact_score,
            description=(
                f"{f.description}; measured: fixing it moves a quick model's cross-validated "
                f"accuracy on {label!r} from {m.before:.3f} to {m.after:.3f}"
            ),
        )
    return LabelQuality(out, share, found.skipped)
