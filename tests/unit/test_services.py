"""The application services called without click (issue 8, item 4): the embedded runtime on
a temporary DATRIX_HOME, real files, the real read models; what an HTTP route will call."""

from __future__ import annotations

import gc
import shutil
import sqlite3
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from datrix.aggregates.dataset import DeleteDataset
from datrix.gateway import services
from datrix.gateway.errors import DatrixError, NotFound, UserInputError
from datrix.runtime.embedded import EmbeddedRuntime
from datrix.streams.settings import load_settings

CSV = "id,city,amount\n1,Oslo,10\n2,,20\n3,Bergen,30\n4,,40\n5,Oslo,50\n"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DATRIX_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def rt(home: Path) -> EmbeddedRuntime:
    return EmbeddedRuntime(load_settings())


@pytest.fixture(scope="module")
def scanned_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, services.ScanOutcome]:
    """A home where CSV was scanned as sales.csv, made once: a scan is a job process (most
    of the cost of a test here) and every test using it gets its own copy of the home."""
    base = tmp_path_factory.mktemp("scanned")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATRIX_HOME", str(base / "home"))
        path = base / "sales.csv"
        path.write_text(CSV)
        outcome = services.scan_file(EmbeddedRuntime(load_settings()), path)
    # The runtime is garbage now, but in a reference cycle: collect it here, so its SQLite
    # connections close (and remove their -wal/-shm files) before a test copies the home,
    # not at whatever moment the cyclic collector would run (in the middle of a copy).
    gc.collect()
    return base / "home", outcome


@pytest.fixture
def scanned(scanned_home: tuple[Path, services.ScanOutcome], home: Path) -> services.ScanOutcome:
    """The scanned home copied to this test's home; request it before ``rt`` (a runtime
    already there makes the copy fail: the home exists)."""
    template, outcome = scanned_home
    shutil.copytree(template, home)
    return outcome


def test_submit_returns_the_ids_at_once_and_await_gives_the_outcome(
    rt: EmbeddedRuntime, tmp_path: Path
) -> None:
    path = tmp_path / "sales.csv"
    path.write_text(CSV)
    submitted = services.submit_scan(rt, path)
    assert submitted.dataset_name == "sales"
    assert submitted.new_version
    assert submitted.register_command_id is not None
    uuid.UUID(submitted.scan_id), uuid.UUID(submitted.dataset_id)
    # nothing processed yet: the embedded runtime works when awaited
    assert services.command_status(rt, submitted.command_id) is None
    assert services.views(rt).scan(submitted.scan_id) is None

    phases: list[str] = []
    outcome = services.await_scan(rt, submitted, lambda phase, done, total: phases.append(phase))
    assert (outcome.scan_id, outcome.dataset_id, outcome.dataset_name) == (
        submitted.scan_id,
        submitted.dataset_id,
        "sales",
    )
    assert "profile" in phases  # the job's progress reached the callback
    status = services.command_status(rt, submitted.command_id)
    assert status is not None and status.accepted
    doc = services.report_document(rt, outcome.scan_id)
    assert (doc["rows"], doc["columns"]) == (5, 3)

    # the same bytes again: no new version, a second scan of version 1
    again = services.submit_scan(rt, path)
    assert (again.dataset_id, again.new_version) == (submitted.dataset_id, False)
    assert again.register_command_id is None and again.version_command_id is None
    assert services.await_scan(rt, again).scan_id == again.scan_id
    assert len(services.views(rt).scans(submitted.dataset_id)) == 2


def test_await_scan_of_a_refused_version_raises(rt: EmbeddedRuntime, tmp_path: Path) -> None:
    path = tmp_path / "sales.csv"
    path.write_text(CSV)
    first = services.scan_file(rt, path)
    status = services.await_command(rt, services.delete_dataset(rt, "sales", "gone"))
    assert status.accepted
    path.write_text(CSV + "6,Oslo,60\n")
    submitted = services.submit_scan(rt, path)
    assert submitted.dataset_id == first.dataset_id  # the name still resolves to it
    with pytest.raises(UserInputError, match=r"refused: .*deleted"):
        services.await_scan(rt, submitted)


def test_command_status_of_a_rejected_command(
    scanned: services.ScanOutcome, rt: EmbeddedRuntime
) -> None:
    subject = uuid.UUID(scanned.dataset_id)
    first = services.submit(rt, DeleteDataset(subject, "first"), subject)
    second = services.submit(rt, DeleteDataset(subject, "again"), subject)
    assert services.await_command(rt, first) == services.CommandStatus(str(first), "accepted", None)
    refused = services.await_command(rt, second)
    assert (refused.status, refused.accepted) == ("rejected", False)
    assert refused.reason is not None and "already deleted" in refused.reason
    with pytest.raises(UserInputError, match=r"refused: .*already deleted"):
        refused.raise_if_rejected()
    # the same command id again is processed once: its status stays
    services.submit(rt, DeleteDataset(subject, "first"), subject, command_id=first)
    assert services.await_command(rt, first).accepted
    with pytest.raises(NotFound, match="no command"):
        services.await_command(rt, uuid.uuid4())


def test_replay_rebuilds_and_verifies(scanned: services.ScanOutcome, rt: EmbeddedRuntime) -> None:
    done = services.replay(rt, verify=True)
    assert done.events > 0 and len(done.checksum) == 64
    assert done.identical and done.differ == [] and done.kept_in is None
    done.raise_if_different()
    assert list((rt.settings.home / "replay").iterdir()) == []  # not kept

    before = services.replay(rt, as_of=datetime(2000, 1, 1, tzinfo=UTC), keep=True)
    assert (before.events, before.datasets_as_of, before.verified) == (0, [], False)
    assert before.kept_in is not None and Path(before.kept_in).is_file()
    now = services.replay(rt, as_of=datetime.now(UTC))
    assert [d["name"] for d in now.datasets_as_of or []] == ["sales"]
    assert now.checksum == done.checksum

    with pytest.raises(UserInputError, match="cannot go with --as-of"):
        services.replay(rt, verify=True, as_of=datetime.now(UTC))


def test_replay_verify_reports_a_changed_read_model(
    scanned: services.ScanOutcome, rt: EmbeddedRuntime
) -> None:
    with sqlite3.connect(rt.settings.home / "readmodels.db") as db:
        db.execute("UPDATE quality_scans SET row_count = row_count + 1")
    done = services.replay(rt, verify=True)
    assert not done.identical and "quality_scans" in done.differ
    with pytest.raises(DatrixError, match=r"differ from a full replay in: .*quality_scans"):
        done.raise_if_different()


def test_audit_verify_detects_a_tampered_row(
    scanned: services.ScanOutcome, rt: EmbeddedRuntime
) -> None:
    check = services.verify_audit(rt)
    assert check.intact and check.checked > 3
    trail = services.audit_trail(rt, "sales")
    assert trail and all(e["subject"] for e in trail)
    assert len(services.audit_trail(rt, limit=2)) == 2

    with sqlite3.connect(rt.settings.home / "readmodels.db") as db:
        db.execute("UPDATE audit_log SET actor = 'someone-else' WHERE seq = 3")
    check = services.verify_audit(rt)
    assert not check.intact and check.checked == 2
    assert check.broken is not None and check.broken.seq == "3"
    with pytest.raises(DatrixError, match=r"audit chain broken at entry 3 .*does not match"):
        check.raise_if_broken()


def test_issue_rows(scanned: services.ScanOutcome, rt: EmbeddedRuntime) -> None:
    _, issues = services.scan_issues(rt, scanned.scan_id)
    nulls = next(i for i in issues if i["type"] == "null_values" and i["column"] == "city")
    found = services.issue_rows(rt, scanned.scan_id[:8], nulls["id"].lower())  # prefixes
    assert (found.scan_id, found.issue_id) == (scanned.scan_id, nulls["id"])
    assert list(found.rows) == [1, 3]
    with pytest.raises(NotFound, match="has no issue"):
        services.issue_rows(rt, scanned.scan_id, "I999")


def test_job_progress_and_jobs(scanned: services.ScanOutcome, rt: EmbeddedRuntime) -> None:
    with pytest.raises(UserInputError, match="published in Kafka mode"):
        services.job_progress(rt, scanned.scan_id)
    jobs = services.jobs_list(rt, include_ended=True)
    assert [(j["scan_id"], j["status"]) for j in jobs] == [(scanned.scan_id, "completed")]
    assert services.jobs_list(rt) == []
    with pytest.raises(UserInputError, match="nothing to cancel"):
        services.cancel_job(rt, scanned.scan_id[:8])
