"""The issue types a scan marks ``fix_available`` are exactly those ``datrix fix`` fixes:
the fix aggregate's list (which decides what a fix request may name) and the default fix of
each type (``spec_for_issue``) agree, for every issue type a scan reports."""

from __future__ import annotations

from datrix.aggregates.fix import FIXABLE_TYPES
from datrix.jobs.quality.issues import FIXABLE
from datrix.jobs.report import ISSUE_TYPES
from datrix.jobs.transforms.specs import spec_for_issue


def test_the_scan_marks_fixable_exactly_what_the_fix_aggregate_accepts() -> None:
    assert FIXABLE == FIXABLE_TYPES
    assert set(ISSUE_TYPES) >= FIXABLE_TYPES


def test_every_fixable_type_has_a_default_fix_and_no_other_type_has_one() -> None:
    with_fix = {
        kind
        for kind in ISSUE_TYPES
        if spec_for_issue(kind, "amount", [0, 1], {}, "2 values in column 'amount'") is not None
    }
    assert with_fix == FIXABLE_TYPES
