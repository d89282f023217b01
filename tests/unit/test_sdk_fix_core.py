"""The SDK's fix flows of the sans-IO core (``sdk/_core.py``) driven with scripted answers:
what ``fix_all`` sends and waits for, the preview and result it returns, a failed fix,
rollback waiting for the re-scan, provenance paging (the latest version read first), and
the arguments refused before anything is sent."""

from __future__ import annotations

from typing import Any

import pytest

from datrix.sdk import _core
from datrix.sdk.errors import FixFailed, WaitTimeout
from datrix.sdk.models import FixPreview, FixResult, QualityScore
from tests.unit.test_sdk_core import CONFIG, Recorder, drive, response, scripted, sends, sleeps

SCORE_BEFORE = {"overall": 70.0, "completeness": 80.0, "consistency": 60.0}
SCORE_AFTER = {"overall": 90.0, "completeness": 100.0, "consistency": 95.0}
FIXES = [
    {"issue_id": "I001", "type": "exact_duplicates", "column": None, "rule": "dedupe.exact",
     "cells_changed": 0, "rows_removed": 6},
    {"issue_id": "I002", "type": "null_values", "column": "amount", "rule": "impute.median",
     "cells_changed": 34, "rows_removed": 0},
]  # fmt: skip


def _accepted(mode: str) -> dict[str, Any]:
    return {
        "command_id": "c1",
        "status": "queued",
        "status_url": "/v1/quality/ds-1/fix/f1",
        "dataset_id": "ds-1",
        "fix_id": "f1",
        "scan_id": "s1",
        "mode": mode,
        "links": {},
    }


def _fix(status: str, mode: str = "apply", **more: Any) -> dict[str, Any]:
    return {"fix_id": "f1", "dataset_id": "ds-1", "scan_id": "s1", "mode": mode,
            "status": status, **more}  # fmt: skip


def test_a_preview_posts_then_polls_until_previewed() -> None:
    shown = Recorder()
    done = _fix(
        "previewed",
        mode="preview",
        base_version=1,
        fixes=FIXES,
        cells_changed=34,
        rows_removed=6,
        rows_affected=40,
        preview={"sample": [{"row": 3, "before": {"amount": None}, "after": {"amount": "12"}}]},
    )
    preview, steps = drive(
        _core.fix_all(
            CONFIG, "ds-1", "s1", dry_run=True, confirm=False, issues=None, options=None,
            timeout=None, reporter=shown,
        ),
        scripted(
            response(202, _accepted("preview")),
            response(200, _fix("queued", mode="preview")),
            response(200, _fix("running", mode="preview")),
            response(200, done),
        ),
    )  # fmt: skip
    assert isinstance(preview, FixPreview)
    assert preview.rows_affected == 40 and preview.cells_changed == 34
    assert [f.rows_removed for f in preview.fixes] == [6, 0]
    assert preview.sample and preview.sample[0]["row"] == 3
    posted, *polls = sends(steps)
    assert (posted.method, posted.path) == ("POST", "/v1/quality/ds-1/fix/preview")
    assert posted.json == {"scanId": "s1"} and posted.idempotency_key
    assert {p.path for p in polls} == {"/v1/quality/ds-1/fix/f1"}
    assert shown.seen == ["queued", "running", "previewed"] and shown.closed
    waits = sleeps(steps)
    assert waits == sorted(waits) and len(waits) == 2


def test_an_apply_returns_the_new_version_and_the_scores() -> None:
    done = _fix(
        "completed",
        version=2,
        base_version=1,
        fixes=FIXES,
        cells_changed=34,
        rows_removed=6,
        rows_affected=40,
        score_before=SCORE_BEFORE,
        score_after=SCORE_AFTER,
        issues_gone=[{"id": "I001", "type": "exact_duplicates", "column": None}],
        rescan_id="s2",
    )
    result, steps = drive(
        _core.fix_all(
            CONFIG, "ds-1", "s1", dry_run=False, confirm=True, issues=["I001", "I002"],
            options={"impute": "knn"}, timeout=None, reporter=Recorder(),
        ),
        scripted(response(202, _accepted("apply")), response(200, done)),
    )  # fmt: skip
    assert isinstance(result, FixResult)
    assert result.version == 2 and result.rescan_id == "s2"
    assert isinstance(result.score_after, QualityScore)
    assert result.score_before.overall == 70.0 and result.score_after.overall == 90.0
    assert result.score_after.scan_id == "s2" and result.issues_gone[0]["id"] == "I001"
    posted = sends(steps)[0]
    assert (posted.method, posted.path) == ("POST", "/v1/quality/ds-1/fix")
    assert posted.json == {
        "scanId": "s1",
        "issueIds": ["I001", "I002"],
        "options": {"impute": "knn"},
    }


def test_a_failed_fix_raises_with_its_error_and_a_wait_can_time_out() -> None:
    shown = Recorder()
    with pytest.raises(FixFailed, match="disk full"):
        drive(
            _core.wait_fix(CONFIG, "ds-1", "f1", None, shown),
            scripted(response(200, _fix("failed", error="OSError: disk full"))),
        )
    assert shown.closed
    with pytest.raises(WaitTimeout, match="still running"):
        drive(
            _core.wait_fix(CONFIG, "ds-1", "f1", 0.01, Recorder()),
            lambda step: response(200, _fix("running")),
        )


@pytest.mark.parametrize(
    ("dry_run", "confirm", "message"),
    [(False, False, "needs dry_run=True"), (True, True, "choose one")],
)
def test_fix_all_needs_exactly_one_of_dry_run_and_confirm(
    dry_run: bool, confirm: bool, message: str
) -> None:
    shown = Recorder()
    flow = _core.fix_all(
        CONFIG, "ds-1", "s1", dry_run=dry_run, confirm=confirm, issues=None, options=None,
        timeout=None, reporter=shown,
    )  # fmt: skip
    with pytest.raises(ValueError, match=message):
        drive(flow, scripted())  # nothing sent
    assert shown.closed


@pytest.mark.parametrize(
    ("issues", "options", "message"),
    [
        ("I001", None, "list of issue ids"),
        ([], None, "at least one"),
        (["I001", ""], None, "list of issue ids"),
        (None, {"pii": 3}, "options must map"),
    ],
)
def test_bad_fix_arguments_are_refused_before_sending(
    issues: Any, options: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        _core.fix_body(None, issues, options)


def test_rollback_waits_for_the_rescan_unless_told_not_to() -> None:
    undone = {
        "dataset_id": "ds-1",
        "fix_id": "f1",
        "version": 3,
        "restored_version": 1,
        "rescan_id": "s3",
        "status": "queued",
        "status_url": "/v1/datasets/ds-1/scan/s3",
        "links": {},
    }
    completed = {"scan_id": "s3", "dataset_id": "ds-1", "status": "completed", "score": SCORE_AFTER}
    shown = Recorder()
    back, steps = drive(
        _core.rollback_fix(CONFIG, "ds-1", "f1", wait=True, timeout=None, reporter=shown),
        scripted(response(202, undone), response(200, completed)),
    )
    assert (back.version, back.restored_version, back.rescan_id) == (3, 1, "s3")
    deleted, status = sends(steps)
    assert (deleted.method, deleted.path) == ("DELETE", "/v1/quality/ds-1/fix/f1")
    assert deleted.idempotency_key and status.path == "/v1/datasets/ds-1/scan/s3"
    assert shown.closed
    quick = Recorder()
    back, steps = drive(
        _core.rollback_fix(CONFIG, "ds-1", "f1", wait=False, timeout=None, reporter=quick),
        scripted(response(202, undone)),
    )
    assert len(sends(steps)) == 1 and quick.closed


def _entry(row: int) -> dict[str, Any]:
    return {"row_id": row, "column": "city", "old_value": " Paris", "new_value": "Paris",
            "fix_id": "f1", "rule": "normalise.canonical", "confidence": 1.0}  # fmt: skip


def test_provenance_reads_the_latest_version_then_pages() -> None:
    dataset = {"id": "ds-1", "name": "orders", "status": "active", "latest_version": 2,
               "row_count": 10, "column_count": 3, "size_bytes": 100,
               "created_at": "t", "updated_at": "t"}  # fmt: skip
    pager = _core.ProvenanceQuery("ds-1", column="city", page_size=2, limit=3).pager(CONFIG)
    answers = scripted(
        response(200, dataset),
        response(200, {"dataset_id": "ds-1", "version": 2, "total": 4,
                       "items": [_entry(0), _entry(1)], "next_cursor": "c2"}),
        response(200, {"dataset_id": "ds-1", "version": 2, "total": 4,
                       "items": [_entry(2)], "next_cursor": "c3"}),
    )  # fmt: skip
    first = pager.next_page()
    assert first is not None
    items, steps = drive(first, answers)
    read, page = sends(steps)
    assert read.path == "/v1/datasets/ds-1"
    assert page.path == "/v1/datasets/ds-1/versions/2/provenance"
    assert page.params == {"limit": 2, "column": "city"}
    second = pager.next_page()
    assert second is not None
    more, steps = drive(second, answers)
    assert [e.row_id for e in items + more] == [0, 1, 2]
    assert sends(steps)[0].params == {"limit": 1, "cursor": "c2", "column": "city"}
    assert pager.next_page() is None  # the limit of 3 is reached


@pytest.mark.parametrize(
    ("field", "value"), [("version", 0), ("row", -1), ("column", 5), ("page_size", 101)]
)
def test_bad_provenance_arguments_are_refused(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=field):
        _core.ProvenanceQuery("ds-1", **{field: value})
