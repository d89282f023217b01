"""Turn detector findings into ordered, numbered ``Issue`` records.

Ids are assigned only after sorting (impact desc, then type, then column) so the same data
always yields the same ids, whatever order the detectors ran in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from datrix.aggregates.fix import FIXABLE_TYPES
from datrix.jobs.quality.scoring import impact_score, severity_for
from datrix.jobs.report import Dimension, Issue, Severity


def counted(n: int, one: str, many: str | None = None) -> str:
    """``1 value``, ``2 values``, ``1,000 values`` (``many``: an irregular plural)."""
    return f"{n:,} {one if n == 1 else many or one + 's'}"


def verb(n: int, one: str, many: str) -> str:
    """``one`` for a count of 1, else ``many`` (``is``/``are``)."""
    return one if n == 1 else many


# Issue types with an automatic fix (``datrix fix``): the fix aggregate's list, which
# ``jobs/transforms/specs.spec_for_issue`` gives a default fix for (a unit test holds the
# two together). Drift describes the data rather than a defect in it; label issues and
# constant or high-cardinality columns need a person's decision.
FIXABLE = FIXABLE_TYPES


@dataclass(frozen=True)
class Finding:
    """An issue before it has an id. ``rows`` are its sorted 0-based row indices: a list or
    a ``RowSet`` (jobs/quality/rowset.py), read only as a ``Sequence[int]``.

    ``severity`` overrides the share-based severity: a finding whose size says little
    about its importance (PII in every row of a column is a compliance note, not a
    critical defect) sets it explicitly. ``impact`` overrides the share-based impact
    estimate with a measured one (see ``label_quality``)."""

    type: str
    column: str | None
    dimension: Dimension
    description: str
    affected_count: int
    rows: Sequence[int] = field(default_factory=list)
    severity: Severity | None = None
    impact: float | None = None


def number_issues(
    findings: Iterable[Finding], total_rows: int
) -> tuple[list[Issue], dict[str, Sequence[int]]]:
    """Score, sort and number findings; return the issues and issue id -> affected rows
    (only for issues that have rows)."""
    scored = []
    for f in findings:
        share = f.affected_count / total_rows if total_rows > 0 else 0.0
        severity = f.severity or severity_for(share)
        impact = f.impact if f.impact is not None else impact_score(share, severity)
        scored.append((impact, severity, round(100.0 * share, 3), f))
    scored.sort(key=lambda s: (-s[0], s[3].type, s[3].column or ""))
    issues: list[Issue] = []
    rows: dict[str, Sequence[int]] = {}
    for n, (impact, severity, pct, f) in enumerate(scored, start=1):
        issue_id = f"I{n:03d}"
        issues.append(
            Issue(
                id=issue_id,
                type=f.type,
                column=f.column,
                dimension=f.dimension,
                severity=severity,
                description=f.description,
                affected_count=f.affected_count,
                affected_pct=pct,
                impact_score=impact,
                fix_available=f.type in FIXABLE,
            )
        )
        if f.rows:
            rows[issue_id] = f.rows
    return issues, rows
