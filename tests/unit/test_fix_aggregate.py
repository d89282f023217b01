"""The fix aggregate's decider and the dataset's fixed versions and rollbacks (pure: no I/O),
and the two fix policies' reactions."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from datrix.aggregates import dataset, fix, scan
from datrix.aggregates.common import Event, Meta, Rejected
from datrix.projections.read_models.fixes import rescan_id_for
from datrix.runtime.fixes import FIX_VERSIONS, RESCAN_AFTER_FIX
from datrix.runtime.registry import default_registry
from datrix.streams.messages import decode_event, event_envelope
from datrix.streams.registry import policy_reactions

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def meta(tenant: str = "acme") -> Meta:
    return Meta(command_id=uuid.uuid4(), time=T0, tenant=tenant)


def fold(module: Any, events: list[Event]) -> Any:
    state = None
    for event in events:
        state = module.evolve(state, event)
    return state


def issue(issue_id: str, kind: str, column: str | None = "a") -> scan.IssueSummary:
    return scan.IssueSummary(
        issue_id, kind, column, "completeness", "warning", "d", 3, 1.0, 1.0, True
    )


ISSUES = (
    issue("I001", "null_values"),
    issue("I002", "exact_duplicates", None),
    issue("I003", "constant_column", "b"),
)


@dataclasses.dataclass
class World:
    """A registered dataset with one uploaded version and a completed scan of it."""

    dataset_events: list[Event]
    scan_events: list[Event]

    @property
    def ds(self) -> dataset.Dataset:
        state = fold(dataset, self.dataset_events)
        assert isinstance(state, dataset.Dataset)
        return state

    @property
    def sc(self) -> scan.Scan:
        state = fold(scan, self.scan_events)
        assert isinstance(state, scan.Scan)
        return state

    @property
    def ds_id(self) -> uuid.UUID:
        return self.ds.id

    @property
    def scan_id(self) -> uuid.UUID:
        return self.sc.id

    def decide_dataset(self, command: Any) -> list[Event]:
        events = dataset.decide(command, self.ds, meta())
        self.dataset_events += events
        return events


def upload(ds_id: uuid.UUID, n: int) -> dataset.AddDatasetVersion:
    return dataset.AddDatasetVersion(
        dataset_id=ds_id,
        object_uri=f"datrix-object://acme/{n}",
        object_sha256=f"{n:064d}",
        source_uri="file:///x.csv",
        source_sha256=f"{n:064x}",
        format="csv",
        rows=10,
        columns=3,
        size_bytes=100 + n,
        schema_json='{"a": "Int64"}',
    )


def scanned(issues: tuple[scan.IssueSummary, ...] = ISSUES, status: str = "completed") -> World:
    ds_id = dataset.dataset_id_for("acme", "sales")
    events = dataset.decide(dataset.RegisterDataset(ds_id, "sales"), None, meta())
    world = World(events, [])
    world.decide_dataset(upload(ds_id, 1))
    return rescanned(world, issues, status)


def rescanned(
    world: World,
    issues: tuple[scan.IssueSummary, ...] = ISSUES,
    status: str = "completed",
    weights: dict[str, float] | None = None,
) -> World:
    scan_id = uuid.uuid4()
    request = scan.RequestScan(
        scan_id, world.ds_id, engine="polars", label_column="y", weights=weights
    )
    events = scan.decide(request, None, meta(), world.ds)
    if status == "completed":
        done = scan.CompleteScan(
            scan_id,
            events[1].job_id,  # type: ignore[attr-defined]
            "polars",
            10,
            3,
            scan.ScoreCard(80, 80, 80, 80, 80, 80),
            issues,
            (),
            "datrix-object://acme/report.json",
            "r" * 64,
            5,
        )
        events += scan.decide(done, fold(scan, events), meta())
    world.scan_events = events
    return world


def request(
    world: World, mode: str = "apply", state: fix.Fix | None = None, **changes: Any
) -> list[Event]:
    kind = fix.ApplyFix if mode == "apply" else fix.PreviewFix
    fields: dict[str, Any] = {
        "fix_id": uuid.uuid4(),
        "dataset_id": world.ds_id,
        "scan_id": world.scan_id,
        "issue_ids": (),
        "options": None,
        **changes,
    }
    return fix.decide(kind(**fields), state, meta(), world.ds, world.sc)


def completion(state: fix.Fix, mode: str = "apply", n: int = 9, **changes: Any) -> fix.CompleteFix:
    fields: dict[str, Any] = {
        "fix_id": state.id,
        "job_id": state.job_id,
        "mode": mode,
        "object_uri": f"datrix-object://acme/{n}" if mode == "apply" else "",
        "object_sha256": f"{n:064d}" if mode == "apply" else "",
        "rows": 9,
        "columns": 3,
        "size_bytes": 90,
        "schema_json": '{"a": "Int64"}',
        "provenance_uri": "datrix-object://acme/p.parquet" if mode == "apply" else "",
        "provenance_sha256": "p" * 64 if mode == "apply" else "",
        "cells_changed": 3,
        "rows_removed": 1,
        "per_fix_json": "[]",
        "preview_uri": None if mode == "apply" else "datrix-object://acme/preview.json",
    }
    fields.update(changes)
    return fix.CompleteFix(**fields)


# ---- requesting a fix --------------------------------------------------------------------
def test_an_apply_records_the_request_and_the_job_of_every_fixable_issue() -> None:
    world = scanned()
    events = request(world)
    requested, job = events
    assert isinstance(requested, fix.FixRequested) and isinstance(job, fix.FixJobRequested)
    assert requested.issue_ids == ("I001", "I002")  # constant_column has no fix
    assert (requested.mode, requested.base_version, requested.label_column) == ("apply", 1, "y")
    assert job.kind == "fix" and job.attempt == 1 and job.mode == "apply"
    assert job.job_id == fix.job_id_for(requested.originator_id, 1)
    assert (job.object_uri, job.version) == (world.ds.versions[0].object_uri, 1)
    assert job.report_uri == "datrix-object://acme/report.json"
    assert job.scan_id == world.scan_id and job.issue_ids == requested.issue_ids
    assert [e.originator_version for e in events] == [1, 2]
    assert all(e.timestamp == T0 for e in events)
    state = fold(fix, events)
    assert (state.status, state.mode, state.job_id) == ("running", "apply", job.job_id)


def test_named_issues_and_options_are_kept() -> None:
    world = scanned()
    requested = request(world, "preview", issue_ids=("I002",), options={"dedupe_keep": "merge"})[0]
    assert isinstance(requested, fix.FixRequested)
    assert requested.issue_ids == ("I002",) and requested.options == {"dedupe_keep": "merge"}
    assert requested.mode == "preview"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"issue_ids": ("I009",)}, "has no issue I009"),
        ({"issue_ids": ("I003",)}, "no fix exists for issue I003 (constant_column)"),
        ({"issue_ids": ("I001", "I001")}, "given twice"),
        ({"scan_id": uuid.uuid4()}, "was never requested"),
        ({"dataset_id": uuid.uuid4()}, "is not registered"),
    ],
)
def test_a_request_is_refused_with_its_reason(change: dict[str, Any], reason: str) -> None:
    world = scanned()
    scan_state = world.sc if "scan_id" not in change else None
    ds_state = world.ds if "dataset_id" not in change else None
    kind_fields = {"fix_id": uuid.uuid4(), "dataset_id": world.ds_id, "scan_id": world.scan_id}
    command = fix.ApplyFix(**{**kind_fields, **change})
    with pytest.raises(Rejected, match=reason.replace("(", r"\(").replace(")", r"\)")):
        fix.decide(command, None, meta(), ds_state, scan_state)


def test_nothing_to_fix_is_refused() -> None:
    world = scanned(issues=(issue("I001", "constant_column"),))
    with pytest.raises(Rejected, match="nothing to fix"):
        request(world)
    with pytest.raises(Rejected, match="nothing to fix"):
        request(scanned(issues=()), "preview")


def test_another_tenants_scan_answers_as_unknown() -> None:
    world = scanned()
    command = fix.ApplyFix(uuid.uuid4(), world.ds_id, world.scan_id)
    with pytest.raises(Rejected, match="was never requested"):
        fix.decide(command, None, meta("globex"), world.ds, world.sc)


def test_a_running_scan_cannot_be_fixed() -> None:
    world = scanned(status="running")
    with pytest.raises(Rejected, match="is running; only a completed scan can be fixed"):
        request(world)


def test_a_scan_of_another_dataset_is_refused() -> None:
    world = scanned()
    other_id = dataset.dataset_id_for("acme", "other")
    other = fold(dataset, dataset.decide(dataset.RegisterDataset(other_id, "other"), None, meta()))
    command = fix.ApplyFix(uuid.uuid4(), other_id, world.scan_id)
    with pytest.raises(Rejected, match="a scan of another dataset"):
        fix.decide(command, None, meta(), other, world.sc)


def test_a_deleted_dataset_cannot_be_fixed() -> None:
    world = scanned()
    world.decide_dataset(dataset.DeleteDataset(world.ds_id))
    with pytest.raises(Rejected, match="is deleted; it cannot be fixed"):
        request(world)


def test_a_fix_id_is_used_once() -> None:
    world = scanned()
    fix_id = uuid.uuid4()
    state = fold(fix, request(world, fix_id=fix_id))
    with pytest.raises(Rejected, match="was already used"):
        request(world, "preview", fix_id=fix_id, state=state)


def test_an_apply_needs_a_scan_of_the_latest_version_a_preview_does_not() -> None:
    world = scanned()
    world.decide_dataset(upload(world.ds_id, 2))
    with pytest.raises(
        Rejected, match=r"checked version 1 .* latest version is 2; scan the latest"
    ):
        request(world)
    assert isinstance(request(world, "preview")[0], fix.FixRequested)


# ---- the job's result ----------------------------------------------------------------------
def test_an_apply_completes_with_what_the_new_version_needs() -> None:
    world = scanned()
    history = request(world)
    state = fold(fix, history)
    (completed,) = fix.decide(completion(state), state, meta())
    assert isinstance(completed, fix.FixCompleted)
    assert (completed.dataset_id, completed.base_version, completed.scan_id) == (
        world.ds_id,
        1,
        world.scan_id,
    )
    assert (completed.engine, completed.label_column) == ("polars", "y")
    assert completed.originator_version == 3 and completed.provenance_uri.endswith("p.parquet")
    done = fold(fix, [*history, completed])
    assert done.status == "completed"
    with pytest.raises(Rejected, match="already completed; it ends only once"):
        fix.decide(completion(done), done, meta())


def test_a_preview_completes_without_a_version() -> None:
    world = scanned()
    state = fold(fix, request(world, "preview"))
    (previewed,) = fix.decide(completion(state, "preview"), state, meta())
    assert isinstance(previewed, fix.FixPreviewed)
    assert previewed.preview_uri == "datrix-object://acme/preview.json"
    assert (previewed.cells_changed, previewed.rows_removed) == (3, 1)


def test_results_for_another_job_or_mode_or_without_objects_are_refused() -> None:
    world = scanned()
    state = fold(fix, request(world))
    with pytest.raises(Rejected, match="is not the job of fix"):
        fix.decide(completion(state, job_id=uuid.uuid4()), state, meta())
    with pytest.raises(Rejected, match="requested as apply; a preview result"):
        fix.decide(completion(state, "preview"), state, meta())
    with pytest.raises(Rejected, match="needs its version and provenance objects"):
        fix.decide(completion(state, provenance_uri=""), state, meta())
    with pytest.raises(Rejected, match="cannot be negative"):
        fix.decide(completion(state, cells_changed=-1), state, meta())
    with pytest.raises(Rejected, match="was never requested"):
        fix.decide(completion(state), None, meta())
    with pytest.raises(Rejected, match="was never requested"):
        fix.decide(completion(state), state, meta("globex"))


def test_a_failed_job_fails_the_fix_once() -> None:
    world = scanned()
    history = request(world)
    state = fold(fix, history)
    assert state.job_id is not None
    failure = fix.FailFix(state.id, state.job_id, "JobCrashed", "killed")
    (failed,) = fix.decide(failure, state, meta())
    assert isinstance(failed, fix.FixFailed) and failed.message == "killed"
    done = fold(fix, [*history, failed])
    assert done.status == "failed"
    with pytest.raises(Rejected, match="already failed"):
        fix.decide(failure, done, meta())


# ---- the dataset's fixed versions and rollbacks -------------------------------------------
def apply_fix(world: World, n: int, weights: dict[str, float] | None = None) -> uuid.UUID:
    """A fix of the latest version (via a scan of it, with ``weights``) that makes version
    content ``n``."""
    rescanned(world, weights=weights)
    history = request(world)
    state = fold(fix, history)
    (completed,) = fix.decide(completion(state, n=n), state, meta())
    assert isinstance(completed, fix.FixCompleted)
    (reaction,) = FIX_VERSIONS.react(completed, None)  # type: ignore[arg-type]
    (applied,) = world.decide_dataset(reaction.command)
    assert isinstance(applied, dataset.FixApplied)
    return applied.fix_id


def test_a_fixed_version_is_the_next_version_with_cause_fix() -> None:
    world = scanned()
    fix_id = apply_fix(world, 7)
    latest = world.ds.latest
    assert latest is not None
    assert (latest.version, latest.cause, latest.fix_id, latest.base_version) == (
        2,
        "fix",
        fix_id,
        1,
    )
    assert latest.object_sha256 == f"{7:064d}"
    assert world.ds.versions[0].cause == "upload"


def test_a_fixed_version_is_added_once_and_only_on_the_latest_version() -> None:
    world = scanned()
    history = request(world)
    state = fold(fix, history)
    (completed,) = fix.decide(completion(state, n=7), state, meta())
    (reaction,) = FIX_VERSIONS.react(completed, None)  # type: ignore[arg-type]
    world.decide_dataset(reaction.command)
    with pytest.raises(Rejected, match="already made version 2"):
        world.decide_dataset(reaction.command)
    assert isinstance(reaction.command, dataset.AddFixedVersion)
    late = dataclasses.replace(reaction.command, fix_id=uuid.uuid4())
    with pytest.raises(Rejected, match=r"built on version 1 .* latest version is now 2"):
        world.decide_dataset(late)


def test_a_rollback_is_a_new_version_equal_to_the_one_before_the_fix() -> None:
    world = scanned()
    fix_id = apply_fix(world, 7)
    (rolled,) = world.decide_dataset(dataset.RollbackFix(world.ds_id, fix_id))
    assert isinstance(rolled, dataset.FixRolledBack)
    first = world.ds.versions[0]
    assert (rolled.version, rolled.fixed_version, rolled.restored_version) == (3, 2, 1)
    assert (rolled.object_uri, rolled.object_sha256) == (first.object_uri, first.object_sha256)
    assert (rolled.rows, rolled.size_bytes, rolled.schema_json) == (
        first.rows,
        first.size_bytes,
        first.schema_json,
    )
    latest = world.ds.latest
    assert latest is not None and (latest.cause, latest.fix_id) == ("rollback", fix_id)
    assert world.ds.versions[1].rolled_back_by == 3
    with pytest.raises(Rejected, match="already rolled back \\(version 3\\)"):
        world.decide_dataset(dataset.RollbackFix(world.ds_id, fix_id))
    with pytest.raises(Rejected, match="has no version made by fix"):
        world.decide_dataset(dataset.RollbackFix(world.ds_id, uuid.uuid4()))
    # uploading the original file again adds nothing: the rollback's content is that file's
    assert world.decide_dataset(upload(world.ds_id, 1)) == []


def test_three_chained_fixes_roll_back_newest_first_only() -> None:
    world = scanned()
    first, second, third = (apply_fix(world, n) for n in (7, 8, 9))
    assert [v.cause for v in world.ds.versions] == ["upload", "fix", "fix", "fix"]
    with pytest.raises(Rejected) as refused:
        world.decide_dataset(dataset.RollbackFix(world.ds_id, second))
    assert f"fix {third} (version 4) built on it" in refused.value.reason
    with pytest.raises(
        Rejected, match=f"fix {third} \\(version 4\\), fix {second} \\(version 3\\) built"
    ):
        world.decide_dataset(dataset.RollbackFix(world.ds_id, first))
    restored = []
    for fix_id in (third, second, first):
        (rolled,) = world.decide_dataset(dataset.RollbackFix(world.ds_id, fix_id))
        assert isinstance(rolled, dataset.FixRolledBack)
        restored.append((rolled.version, rolled.restored_version, rolled.object_sha256))
    assert restored == [(5, 3, f"{8:064d}"), (6, 2, f"{7:064d}"), (7, 1, f"{1:064d}")]
    assert world.ds.latest is not None and world.ds.latest.object_sha256 == f"{1:064d}"


def test_a_fix_on_a_rolled_back_version_and_an_upload_both_stand_on_the_fix_below() -> None:
    world = scanned()
    first = apply_fix(world, 7)
    second = apply_fix(world, 8)
    world.decide_dataset(dataset.RollbackFix(world.ds_id, second))  # v4 = v2's content
    third = apply_fix(world, 9)  # v5, built on v4 (which stands for v2)
    with pytest.raises(Rejected, match=f"fix {third} \\(version 5\\) built on it"):
        world.decide_dataset(dataset.RollbackFix(world.ds_id, first))
    world.decide_dataset(dataset.RollbackFix(world.ds_id, third))  # v6 = v4's content
    world.decide_dataset(upload(world.ds_id, 3))  # v7: an upload on top
    with pytest.raises(Rejected, match="upload version 7 built on it"):
        world.decide_dataset(dataset.RollbackFix(world.ds_id, first))


def test_versions_refuse_fix_and_rollback_causes_by_upload_and_deleted_datasets_take_none() -> None:
    world = scanned()
    with pytest.raises(Rejected, match="not 'fix'"):
        world.decide_dataset(dataclasses.replace(upload(world.ds_id, 2), cause="fix"))
    (added,) = world.decide_dataset(dataclasses.replace(upload(world.ds_id, 2), cause="pipeline"))
    assert isinstance(added, dataset.DatasetVersionAdded) and added.cause == "pipeline"
    fix_id = apply_fix(world, 7)
    world.decide_dataset(dataset.DeleteDataset(world.ds_id))
    with pytest.raises(Rejected, match="deleted; its fixes cannot be rolled back"):
        world.decide_dataset(dataset.RollbackFix(world.ds_id, fix_id))


# ---- the policies and the log ------------------------------------------------------------
def test_the_policies_issue_the_version_and_deterministic_rescans() -> None:
    world = scanned()
    fix_id = apply_fix(world, 7)
    applied = world.dataset_events[-1]
    assert isinstance(applied, dataset.FixApplied)
    (rescan,) = RESCAN_AFTER_FIX.react(applied, None)  # type: ignore[arg-type]
    command = rescan.command
    assert isinstance(command, scan.RequestScan)
    assert command.scan_id == rescan_id_for(fix_id) == uuid.uuid5(fix_id, "rescan")
    assert (command.version, command.engine, command.label_column) == (2, "polars", "y")
    (rolled,) = world.decide_dataset(dataset.RollbackFix(world.ds_id, fix_id))
    (again,) = RESCAN_AFTER_FIX.react(rolled, None)  # type: ignore[arg-type]
    assert again.command.scan_id == uuid.uuid5(fix_id, "rescan-rollback")  # type: ignore[attr-defined]
    # through the registry: ids derive from the event, keys are the dataset's
    registry = default_registry()
    cause = _envelope(registry, world, applied)
    first = policy_reactions(registry, RESCAN_AFTER_FIX, cause)
    assert first == policy_reactions(registry, RESCAN_AFTER_FIX, cause)
    assert first[0][1] == str(world.ds_id)


def test_the_rescans_after_a_fix_and_its_rollback_use_the_fixed_scans_weights() -> None:
    weights = {"completeness": 3.0, "accuracy": 0.5, "label_quality": 0.0}
    world = scanned()
    fix_id = apply_fix(world, 7, weights)
    # the weights travel: scan -> FixRequested -> FixCompleted -> AddFixedVersion -> FixApplied
    assert world.sc.weights == weights
    applied = world.dataset_events[-1]
    assert isinstance(applied, dataset.FixApplied) and applied.weights == weights
    latest = world.ds.latest
    assert latest is not None and latest.weights == weights
    (rescan,) = RESCAN_AFTER_FIX.react(applied, None)  # type: ignore[arg-type]
    assert isinstance(rescan.command, scan.RequestScan)
    assert (rescan.command.engine, rescan.command.label_column, rescan.command.weights) == (
        "polars",
        "y",
        weights,
    )
    # the re-scan is a scan with those weights (its decider checks them like any scan's)
    (requested, job) = scan.decide(rescan.command, None, meta(), world.ds)
    assert isinstance(requested, scan.ScanRequested) and requested.weights == weights
    assert isinstance(job, scan.JobRequested) and job.weights == weights
    # the rollback's re-scan likewise
    (rolled,) = world.decide_dataset(dataset.RollbackFix(world.ds_id, fix_id))
    assert isinstance(rolled, dataset.FixRolledBack) and rolled.weights == weights
    (again,) = RESCAN_AFTER_FIX.react(rolled, None)  # type: ignore[arg-type]
    assert isinstance(again.command, scan.RequestScan) and again.command.weights == weights
    # a scan without weights: none carried (the engine's defaults), and the codec keeps both
    plain = apply_fix(world, 8)
    unweighted = world.dataset_events[-1]
    assert isinstance(unweighted, dataset.FixApplied) and unweighted.fix_id == plain
    assert unweighted.weights is None
    (default,) = RESCAN_AFTER_FIX.react(unweighted, None)  # type: ignore[arg-type]
    assert default.command.weights is None  # type: ignore[attr-defined]
    registry = default_registry()
    for event in (applied, rolled, unweighted):
        assert decode_event(_envelope(registry, world, event), table=registry.table) == event


def test_fix_events_written_before_weights_decode_without_them(tmp_path: Path) -> None:
    """FixRequested, FixCompleted, FixApplied, FixRolledBack and AddFixedVersion gained
    ``weights`` (default null): a record of the schema without it (as released) reads as
    None with the current reader."""
    import json
    import shutil

    from fastavro import parse_schema
    from fastavro.utils import generate_many

    from datrix.streams.codec import SCHEMA_DIR, AvroCodec, SchemaSet, load_schema_set

    names = (
        "datrix.fix.FixRequested",
        "datrix.fix.FixCompleted",
        "datrix.dataset.AddFixedVersion",
        "datrix.dataset.FixApplied",
        "datrix.dataset.FixRolledBack",
    )
    (tmp_path / "released" / "1").mkdir(parents=True)
    before: dict[str, dict[str, Any]] = {}
    for name in names:
        shutil.copy(SCHEMA_DIR / f"{name}.avsc", tmp_path)
        raw = json.loads((SCHEMA_DIR / f"{name}.avsc").read_text())
        assert raw["fields"][-1]["name"] == "weights" and raw["fields"][-1]["default"] is None
        before[name] = {**raw, "fields": raw["fields"][:-1]}
        (tmp_path / "released" / "1" / f"{name}.avsc").write_text(json.dumps(before[name]))
    reader = AvroCodec(load_schema_set(tmp_path))
    for name in names:
        old = SchemaSet()
        old.add(before[name], current=True)
        (record,) = generate_many(parse_schema(before[name], named_schemas={}), 1)
        decoded_name, decoded = reader.decode(AvroCodec(old).encode(name, record))
        assert decoded_name == name and decoded["weights"] is None
        assert set(decoded) == {*record, "weights"}


def _envelope(registry: Any, world: World, event: Event) -> Any:
    from datrix.streams.messages import command_envelope

    cause = command_envelope(
        dataset.RollbackFix(world.ds_id, uuid.uuid4()),
        subject=world.ds_id,
        tenant="acme",
        actor="test",
        time=T0,
        table=registry.table,
    )
    return event_envelope(event, cause, registry.table)


def test_every_fix_event_survives_the_codec() -> None:
    world = scanned()
    registry = default_registry()
    history = request(world)
    state = fold(fix, history)
    completed = fix.decide(completion(state), state, meta())
    apply_fix(world, 7)
    fix_id = apply_fix(world, 8)
    world.decide_dataset(dataset.RollbackFix(world.ds_id, fix_id))
    for event in [*history, *completed, *world.dataset_events]:
        env = _envelope(registry, world, event)
        assert decode_event(env, table=registry.table) == event


def test_fixed_and_rolled_back_versions_check_drift_against_their_base_versions_baseline() -> None:
    """Drift is about data that arrived: the scan of a fixed version (and of a rollback)
    compares with what the fixed version's base was compared with, not with the version the
    fix changed on purpose."""
    world = scanned()
    world.decide_dataset(upload(world.ds_id, 2))  # v2, checked against v1
    fix_id = apply_fix(world, 7)  # v3 = v2 fixed
    assert [v.cause for v in world.ds.versions] == ["upload", "upload", "fix"]
    baseline = world.ds.previous(3)
    assert baseline is not None and baseline.version == 1
    job = scan.decide(
        scan.RequestScan(uuid.uuid4(), world.ds_id, version=3), None, meta(), world.ds
    )[1]
    assert isinstance(job, scan.JobRequested)
    assert (job.previous_version, job.previous_object_uri) == (1, world.ds.versions[0].object_uri)
    world.decide_dataset(dataset.RollbackFix(world.ds_id, fix_id))  # v4 = v2 again
    rolled = world.ds.previous(4)
    assert rolled is not None and rolled.version == 1
    world.decide_dataset(upload(world.ds_id, 5))  # v5, new data: checked against v4
    after_upload = world.ds.previous(5)
    assert after_upload is not None and after_upload.version == 4


def test_the_fixes_row_is_the_same_whichever_partition_is_projected_first(tmp_path: Path) -> None:
    """The fix's events and the dataset's (FixApplied, FixRolledBack) lie on different
    partitions; a replay projects one partition after the other, in either order. The fix's
    row must end the same both ways (replay --verify compares them)."""
    from datrix.projections.read_models.fixes import READ_MODEL, fix_row
    from datrix.projections.store import SQLiteReadStore

    registry = default_registry()
    world = scanned()
    history = request(world)
    state = fold(fix, history)
    fix_events = [*history, *fix.decide(completion(state, n=7), state, meta())]
    (reaction,) = FIX_VERSIONS.react(fix_events[-1], None)  # type: ignore[arg-type]
    dataset_events = [*world.decide_dataset(reaction.command)]
    dataset_events += world.decide_dataset(dataset.RollbackFix(world.ds_id, state.id))

    def project(name: str, events: list[Event]) -> dict[str, Any]:
        store = SQLiteReadStore(tmp_path / f"{name}.db")
        with registry.installed(), store.transaction() as tx:
            for event in events:
                env = _envelope(registry, world, event)
                READ_MODEL.handlers[type(event)](tx, env, decode_event(env))
        row = fix_row(store, "acme", str(state.id))
        assert row is not None
        return row

    fix_first = project("fix-first", [*fix_events, *dataset_events])
    dataset_first = project("dataset-first", [*dataset_events, *fix_events])
    assert fix_first == dataset_first
    assert (fix_first["status"], fix_first["new_version"], fix_first["rolled_back_by_version"]) == (
        "rolled_back",
        2,
        3,
    )
    assert fix_first["issue_ids_json"] != "[]" and fix_first["job_id"] is not None
