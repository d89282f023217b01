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

Both need the rows in memory: the Polars engine has them. The Spark engine brings the
table to the driver only while its labelled rows are at most ``labels.MAX_ROWS``; above
that it draws a seeded sample of ``MAX_ROWS`` rows stratified by label where the data is
and fetches only those (a ``LabelSample``): labels are then assessed (and impacts measured)
on that sample only, the flagged rows are mapped back to their positions in the table, and
the finding says "assessed on a stratified sample of N of M labelled rows".
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import polars as pl

from datrix.jobs.quality.impact import ImpactMeasurement, measure_finding_impacts
from datrix.jobs.quality.issues import Finding
from datrix.jobs.quality.labels import (
    MAX_ROWS,
    MIN_ROWS,
    describe,
    find_label_issues,
    looks_like_noise,
)
from datrix.jobs.quality.rowset import as_indices

log = logging.getLogger("datrix.quality")


@dataclass(frozen=True)
class LabelSample:
    """Rows of a table too large to bring whole to the driver: ``frame`` holds the rows at
    ``positions`` (sorted 0-based positions in the table), a sample stratified by label of
    the table's ``labelled`` rows with a label."""

    frame: pl.DataFrame
    positions: np.ndarray[Any, np.dtype[np.int64]]
    labelled: int


@dataclass(frozen=True)
class LabelQuality:
    findings: list[Finding]  # the input findings (impacts measured) + label_issues
    flagged_share: float  # share of assessed rows whose label looks wrong
    note: str | None  # why labels were not assessed, when they were not
    noise: bool = False  # the other columns predict the label no better than chance


def assess_labels(
    rows: pl.DataFrame | LabelSample, label: str, findings: Sequence[Finding], seed: int = 0
) -> LabelQuality:
    """Label issues and measured impacts on the whole table (a frame) or on a
    ``LabelSample`` of it (see the module docstring)."""
    if isinstance(rows, LabelSample):
        return _assess_sample(rows, label, findings, seed)
    return _assess(rows, label, findings, seed)


def _assess_sample(
    sample: LabelSample, label: str, findings: Sequence[Finding], seed: int
) -> LabelQuality:
    """``_assess`` on the sample's rows: the other findings' rows are translated into
    positions in the sample (those outside it dropped) for the impact measurements, and
    back, with the label finding's rows, into positions in the table."""
    at = sample.positions
    local = []
    for f in findings:
        held = as_indices(f.rows)
        inside = held[np.isin(held, at)]
        local.append(replace(f, rows=np.searchsorted(at, inside).tolist()))
    size = sample.frame.height
    note = f"assessed on a stratified sample of {size:,} of {sample.labelled:,} labelled rows"
    done = _assess(sample.frame, label, local, seed, max_rows=max(size, MIN_ROWS))
    out = []
    for i, f in enumerate(done.findings):
        if i < len(findings):  # the table's rows, the measured impact and its text
            out.append(replace(findings[i], impact=f.impact, description=f.description))
        else:
            rows = at[np.asarray(f.rows, dtype=np.int64)].tolist()
            out.append(replace(f, rows=rows, description=f"{f.description}; {note}"))
    return replace(done, findings=out)


def _assess(
    frame: pl.DataFrame,
    label: str,
    findings: Sequence[Finding],
    seed: int,
    max_rows: int = MAX_ROWS,
) -> LabelQuality:
    found = find_label_issues(frame, label, seed=seed, max_rows=max_rows)
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
