"""Turn detector findings into ordered, numbered ``Issue`` records.

Ids are assigned only after sorting (impact desc, then type, then column) so the same data
always yields the same ids, whatever order the detectors ran in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from jobs.quality.scoring import impact_score, severity_for
from jobs.report import Dimension, Issue

FIXABLE = frozenset({"null_values", "exact_duplicates", "outliers", "constant_column"})


@dataclass(frozen=True)
class Finding:
    """An issue before it has an id. ``rows`` are its sorted 0-based row indices."""

    type: str
    column: str | None
    dimension: Dimension
    description: str
    affected_count: int
    rows: list[int] = field(default_factory=list)


def number_issues(
    findings: Iterable[Finding], total_rows: int
) -> tuple[list[Issue], dict[str, list[int]]]:
    """Score, sort and number findings; return the issues and issue id -> affected rows
    (only for issues that have rows)."""
    scored = []
    for f in findings:
        share = f.affected_count / total_rows if total_rows > 0 else 0.0
        severity = severity_for(share)
        scored.append((impact_score(share, severity), severity, round(100.0 * share, 3), f))
    scored.sort(key=lambda s: (-s[0], s[3].type, s[3].column or ""))
    issues: list[Issue] = []
    rows: dict[str, list[int]] = {}
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
