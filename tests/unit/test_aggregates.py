from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime

import pytest

from datrix.aggregates import dataset, scan
from datrix.aggregates.common import Event, Meta, Rejected

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def meta(tenant: str = "acme") -> Meta:
    return Meta(command_id=uuid.uuid4(), time=T0, tenant=tenant)


def fold_dataset(events: list[Event]) -> dataset.Dataset | None:
    state = None
    for e in events:
        state = dataset.evolve(state, e)
    return state


def add_version(ds_id: uuid.UUID, n: int = 0) -> dataset.AddDatasetVersion:
    return dataset.AddDatasetVersion(
        dataset_id=ds_id,
        object_uri=f"datrix-object://acme/{n}",
        object_sha256=f"{n:064d}",
        source_uri="file:///x.csv",
        source_sha256="s" * 64,
        format="csv",
        rows=10,
        columns=3,
        size_bytes=100,
        schema_json="{}",
    )


def registered(name: str = "sales") -> tuple[uuid.UUID, list[Event]]:
    ds_id = dataset.dataset_id_for("acme", name)
    return ds_id, dataset.decide(dataset.RegisterDataset(ds_id, name), None, meta())


def test_register_then_versions_are_numbered_without_gaps() -> None:
    ds_id, events = registered()
    state = fold_dataset(events)
    for n in range(3):
        new = dataset.decide(add_version(ds_id, n), state, meta())
        events += new
        state = fold_dataset(events)
    assert state is not None
    assert [v.version for v in state.versions] == [1, 2, 3]
    assert state.version == 4  # stream version: registered + three versions
    assert all(e.timestamp == T0 for e in events)  # time comes from the command, not a clock


def test_register_twice_is_rejected() -> None:
    ds_id, events = registered()
    with pytest.raises(Rejected, match="already registered"):
        dataset.decide(dataset.RegisterDataset(ds_id, "sales"), fold_dataset(events), meta())


def test_a_name_is_one_dataset_per_tenant_by_construction() -> None:
    """The id follows from tenant + name, so two producers registering ``sales`` at once
    register one aggregate: the second is refused (the edge then adds its version to the
    first), and a producer cannot dodge it with an id of its own."""
    ds_id, events = registered("sales")
    assert ds_id == dataset.dataset_id_for("acme", "sales")
    assert ds_id != dataset.dataset_id_for("other", "sales")  # per tenant
    assert ds_id != dataset.dataset_id_for("acme", "Sales")
    state = fold_dataset(events)
    with pytest.raises(Rejected, match=r"'sales' .* is already registered"):
        dataset.decide(dataset.RegisterDataset(ds_id, " sales "), state, meta())
    with pytest.raises(Rejected, match="is not the id of the name 'sales'"):
        dataset.decide(dataset.RegisterDataset(uuid.uuid4(), "sales"), None, meta())
    # the version the loser brings still lands on the one dataset
    events += dataset.decide(add_version(ds_id, 1), state, meta())
    assert [v.version for v in fold_dataset(events).versions] == [1]  # type: ignore[union-attr]


def test_another_tenants_id_is_answered_as_if_it_did_not_exist() -> None:
    """Registering another tenant's dataset id (or acting on it) gets exactly the answer a
    never-used id gets: nothing says the id exists (issue 12, item 4)."""
    ds_id, events = registered("sales")  # tenant acme
    state = fold_dataset(events)
    unused = uuid.uuid4()

    def answer(command: object, with_state: dataset.Dataset | None) -> str:
        with pytest.raises(Rejected) as caught:
            dataset.decide(command, with_state, meta("intruder"))  # type: ignore[arg-type]
        return str(caught.value).replace(str(ds_id), "ID").replace(str(unused), "ID")

    for name in ("sales", "other", " "):
        taken = answer(dataset.RegisterDataset(ds_id, name), state)
        free = answer(dataset.RegisterDataset(unused, name), None)
        assert taken == free and "already" not in taken, (name, taken, free)
    assert answer(add_version(ds_id), state) == answer(add_version(unused), None)
    assert answer(dataset.DeleteDataset(ds_id), state) == answer(
        dataset.DeleteDataset(unused), None
    )
    # its own tenant is still told the truth
    with pytest.raises(Rejected, match=r"'sales' .* is already registered"):
        dataset.decide(dataset.RegisterDataset(ds_id, "sales"), state, meta())


def test_a_deleted_name_cannot_be_registered_again() -> None:
    """Deletion is final for the name (the id is the name's): registering it again is
    refused with the reason, and replay needs no rule for a revived stream."""
    ds_id, events = registered("sales")
    events += dataset.decide(dataset.DeleteDataset(ds_id), fold_dataset(events), meta())
    with pytest.raises(Rejected, match="'sales' was deleted; its name cannot be registered"):
        dataset.decide(dataset.RegisterDataset(ds_id, "sales"), fold_dataset(events), meta())


def test_the_same_file_again_adds_no_version() -> None:
    """Racing scans of one file both send AddDatasetVersion; the second, identical to the
    latest version (source and object digests), adds nothing, so the count does not depend
    on timing. Another file, or the same file read another way, is a new version."""
    ds_id, events = registered()
    events += dataset.decide(add_version(ds_id, 1), fold_dataset(events), meta())
    assert dataset.decide(add_version(ds_id, 1), fold_dataset(events), meta()) == []
    events += dataset.decide(add_version(ds_id, 2), fold_dataset(events), meta())
    again_first = dataset.decide(add_version(ds_id, 1), fold_dataset(events), meta())
    assert [e.version for e in again_first] == [3]  # type: ignore[attr-defined]


def test_empty_name_is_rejected() -> None:
    with pytest.raises(Rejected, match="name"):
        dataset.decide(dataset.RegisterDataset(uuid.uuid4(), "  "), None, meta())


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "non-empty"),
        ("a\nb", "one line"),
        ("tab\there", "one line"),
        ("\x1b]0;pwned\x07", "printable"),
        ("x" * 201, "at most 200 characters"),
    ],
)
def test_names_are_printable_one_line_and_at_most_200_characters(name: str, reason: str) -> None:
    """Held by the aggregate, so every producer of commands is held to it, not the CLI only."""
    with pytest.raises(Rejected, match=reason):
        dataset.decide(dataset.RegisterDataset(uuid.uuid4(), name), None, meta())
    for good in ("Umsätze 2026 (v2)", "x" * 200):
        ok = dataset.decide(
            dataset.RegisterDataset(dataset.dataset_id_for("acme", good), good), None, meta()
        )
        assert ok[0].name == good  # type: ignore[attr-defined]


def test_read_options_travel_from_command_to_event() -> None:
    ds_id, events = registered()
    command = add_version(ds_id)
    assert dataset.decide(command, fold_dataset(events), meta())[0].read_options_json is None  # type: ignore[attr-defined]
    with_options = dataclasses.replace(command, read_options_json='{"delimiter": ";"}')
    added = dataset.decide(with_options, fold_dataset(events), meta())[0]
    assert added.read_options_json == '{"delimiter": ";"}'  # type: ignore[attr-defined]


def test_deleted_dataset_takes_no_versions_and_no_second_delete() -> None:
    ds_id, events = registered()
    events += dataset.decide(dataset.DeleteDataset(ds_id), fold_dataset(events), meta())
    state = fold_dataset(events)
    assert state is not None and state.deleted
    with pytest.raises(Rejected, match="deleted"):
        dataset.decide(add_version(ds_id), state, meta())
    with pytest.raises(Rejected, match="already deleted"):
        dataset.decide(dataset.DeleteDataset(ds_id), state, meta())


def test_other_tenant_cannot_touch_a_dataset() -> None:
    ds_id, events = registered()
    with pytest.raises(Rejected, match="not registered"):
        dataset.decide(add_version(ds_id), fold_dataset(events), meta("other"))


def test_evolve_refuses_out_of_order_events() -> None:
    ds_id, events = registered()
    state = fold_dataset(events)
    v1 = dataset.decide(add_version(ds_id), state, meta())[0]
    assert isinstance(v1, dataset.DatasetVersionAdded)
    later = dataset.DatasetVersionAdded(**{**v1.__dict__, "originator_version": 5})
    with pytest.raises(ValueError, match="does not follow"):
        dataset.evolve(state, later)


def scan_ready() -> tuple[dataset.Dataset, uuid.UUID]:
    ds_id, events = registered()
    events += dataset.decide(add_version(ds_id), fold_dataset(events), meta())
    state = fold_dataset(events)
    assert state is not None
    return state, ds_id


def fold_scan(events: list[Event]) -> scan.Scan | None:
    state = None
    for e in events:
        state = scan.evolve(state, e)
    return state


def complete(scan_id: uuid.UUID, job_id: uuid.UUID, overall: float = 90.0) -> scan.CompleteScan:
    return scan.CompleteScan(
        scan_id=scan_id,
        job_id=job_id,
        engine="polars",
        rows=10,
        columns=3,
        score=scan.ScoreCard(overall, 100, 100, 100, 100, 100),
        issues=(),
        column_profiles=(),
        report_uri="datrix-object://acme/r",
        report_sha256="r" * 64,
        duration_ms=5,
    )


def test_scan_request_emits_scan_and_job_with_deterministic_job_id() -> None:
    ds, ds_id = scan_ready()
    scan_id = uuid.uuid4()
    events = scan.decide(scan.RequestScan(scan_id, ds_id), None, meta(), ds)
    assert [type(e).__name__ for e in events] == ["ScanRequested", "JobRequested"]
    job = events[1]
    assert isinstance(job, scan.JobRequested)
    assert job.job_id == scan.job_id_for(scan_id, 1) == uuid.uuid5(scan_id, "job-1")
    assert job.version == 1


def test_no_scan_of_a_deleted_or_unknown_dataset() -> None:
    ds, ds_id = scan_ready()
    deleted = dataset.evolve(ds, dataset.decide(dataset.DeleteDataset(ds_id), ds, meta())[0])
    with pytest.raises(Rejected, match="deleted"):
        scan.decide(scan.RequestScan(uuid.uuid4(), ds_id), None, meta(), deleted)
    with pytest.raises(Rejected, match="not registered"):
        scan.decide(scan.RequestScan(uuid.uuid4(), ds_id), None, meta(), None)
    with pytest.raises(Rejected, match="no version 7"):
        scan.decide(scan.RequestScan(uuid.uuid4(), ds_id, version=7), None, meta(), ds)


def test_scan_completes_or_fails_exactly_once() -> None:
    ds, ds_id = scan_ready()
    scan_id = uuid.uuid4()
    events = scan.decide(scan.RequestScan(scan_id, ds_id), None, meta(), ds)
    job_id = scan.job_id_for(scan_id, 1)
    events += scan.decide(complete(scan_id, job_id), fold_scan(events), meta())
    state = fold_scan(events)
    assert state is not None and state.status == "completed"
    with pytest.raises(Rejected, match="ends only once"):
        scan.decide(complete(scan_id, job_id), state, meta())
    with pytest.raises(Rejected, match="ends only once"):
        scan.decide(scan.FailScan(scan_id, job_id, "X", "y"), state, meta())


def test_scan_result_from_a_foreign_job_is_rejected() -> None:
    ds, ds_id = scan_ready()
    scan_id = uuid.uuid4()
    events = scan.decide(scan.RequestScan(scan_id, ds_id), None, meta(), ds)
    with pytest.raises(Rejected, match="is not the job"):
        scan.decide(complete(scan_id, uuid.uuid4()), fold_scan(events), meta())


def test_score_out_of_range_is_rejected() -> None:
    ds, ds_id = scan_ready()
    scan_id = uuid.uuid4()
    events = scan.decide(scan.RequestScan(scan_id, ds_id), None, meta(), ds)
    with pytest.raises(Rejected, match="between 0 and 100"):
        scan.decide(complete(scan_id, scan.job_id_for(scan_id, 1), 101), fold_scan(events), meta())


def test_unknown_engine_is_rejected() -> None:
    ds, ds_id = scan_ready()
    with pytest.raises(Rejected, match="unknown engine"):
        scan.decide(scan.RequestScan(uuid.uuid4(), ds_id, engine="duckdb"), None, meta(), ds)


def test_deciders_are_pure() -> None:
    ds, ds_id = scan_ready()
    scan_id = uuid.uuid4()
    m = meta()
    first = scan.decide(scan.RequestScan(scan_id, ds_id), None, m, ds)
    second = scan.decide(scan.RequestScan(scan_id, ds_id), None, m, ds)
    assert first == second


def test_previous_version_of_a_dataset() -> None:
    ds_id, events = registered()
    for n in range(3):
        events += dataset.decide(add_version(ds_id, n), fold_dataset(events), meta())
    state = fold_dataset(events)
    assert state is not None
    assert state.previous(1) is None
    previous = state.previous(3)
    assert previous is not None and previous.version == 2
    assert previous.object_uri == "datrix-object://acme/1"


def test_scan_job_names_the_previous_version_as_drift_baseline() -> None:
    ds, ds_id = scan_ready()
    first = scan.decide(scan.RequestScan(uuid.uuid4(), ds_id), None, meta(), ds)[1]
    assert isinstance(first, scan.JobRequested)
    assert (first.previous_version, first.previous_object_uri) == (None, None)
    two = dataset.evolve(ds, dataset.decide(add_version(ds_id, 7), ds, meta())[0])
    job = scan.decide(scan.RequestScan(uuid.uuid4(), ds_id), None, meta(), two)[1]
    assert isinstance(job, scan.JobRequested)
    assert (job.version, job.previous_version) == (2, 1)
    assert job.previous_object_uri == "datrix-object://acme/0"
    explicit = scan.decide(scan.RequestScan(uuid.uuid4(), ds_id, version=1), None, meta(), two)
    assert isinstance(explicit[1], scan.JobRequested) and explicit[1].previous_version is None


def test_scan_weights_travel_to_the_job_and_are_validated() -> None:
    ds, ds_id = scan_ready()
    weights = {"accuracy": 0.5, "completeness": 0.0}
    events = scan.decide(scan.RequestScan(uuid.uuid4(), ds_id, weights=weights), None, meta(), ds)
    requested, job = events
    assert isinstance(requested, scan.ScanRequested) and isinstance(job, scan.JobRequested)
    assert requested.weights == job.weights == weights
    bad: list[tuple[dict[str, float], str]] = [
        ({"speed": 1.0}, "unknown score dimension"),
        ({"accuracy": -1.0}, ">= 0"),
        ({"accuracy": float("inf")}, ">= 0"),
        ({"accuracy": 0.0}, "all be zero"),
    ]
    for weights, reason in bad:
        with pytest.raises(Rejected, match=reason):
            scan.decide(scan.RequestScan(uuid.uuid4(), ds_id, weights=weights), None, meta(), ds)


def test_a_running_scan_can_be_cancelled_once_naming_who_cancelled() -> None:
    ds, ds_id = scan_ready()
    scan_id = uuid.uuid4()
    events = scan.decide(scan.RequestScan(scan_id, ds_id), None, meta(), ds)
    job_id = scan.job_id_for(scan_id, 1)
    by_bob = Meta(command_id=uuid.uuid4(), time=T0, tenant="acme", actor="cli:bob")
    cancelled = scan.decide(scan.CancelScan(scan_id), fold_scan(events), by_bob)
    assert len(cancelled) == 1
    event = cancelled[0]
    assert isinstance(event, scan.ScanCancelled)
    assert (event.job_id, event.cancelled_by, event.originator_version) == (job_id, "cli:bob", 3)
    # deciding is pure: the same command on the same state gives the same event
    assert scan.decide(scan.CancelScan(scan_id), fold_scan(events), by_bob) == cancelled
    events += cancelled
    state = fold_scan(events)
    assert state is not None and state.status == "failed"
    # the job's late result is refused, and so is a second cancel
    with pytest.raises(Rejected, match="ends only once"):
        scan.decide(complete(scan_id, job_id), state, meta())
    with pytest.raises(Rejected, match="nothing to cancel"):
        scan.decide(scan.CancelScan(scan_id), state, by_bob)
    # a finished scan cannot be cancelled; nor one of another tenant
    done = events[:2] + scan.decide(complete(scan_id, job_id), fold_scan(events[:2]), meta())
    with pytest.raises(Rejected, match="already completed"):
        scan.decide(scan.CancelScan(scan_id), fold_scan(done), by_bob)
    with pytest.raises(Rejected, match="never requested"):
        scan.decide(scan.CancelScan(scan_id), fold_scan(events[:2]), meta("other"))
