"""The embedded runtime end to end in process, with a tiny stand-in engine (the real
engines have their own tests; this checks the loop, projections, audit and replay)."""

from __future__ import annotations

import uuid
from pathlib import Path

import polars as pl
import pytest

from datrix.aggregates.dataset import (
    AddDatasetVersion,
    DeleteDataset,
    RegisterDataset,
    dataset_id_for,
)
from datrix.aggregates.scan import RequestScan
from datrix.jobs import runner
from datrix.jobs.engine import ProgressFn, no_progress
from datrix.jobs.report import ColumnProfile, Issue, ScanOptions, ScanReport, Scores
from datrix.projections import audit
from datrix.projections.queries import Views
from datrix.projections.replay import rebuild, table_checksums
from datrix.projections.store import SQLiteReadStore
from datrix.runtime.bootstrap import bootstrap
from datrix.runtime.embedded import EmbeddedRuntime
from datrix.streams.settings import Settings


class CountingEngine:
    """Reports row count and one dataset-level issue; fails on a file named 'boom'."""

    name = "polars"

    def scan(
        self, parquet_path: Path, options: ScanOptions, progress: ProgressFn = no_progress
    ) -> ScanReport:
        frame = pl.read_parquet(parquet_path)
        if "boom" in frame.columns:
            raise ValueError("cannot scan a column named boom")
        progress("count", frame.height, frame.height)
        issue = Issue(
            "I001", "constant_column", "a", "distribution", "info", "constant", 0, 0.0, 1.0, True
        )
        profile = ColumnProfile("a", "integer", 0, 0.0, frame["a"].n_unique())
        return ScanReport(
            frame.height,
            frame.width,
            Scores(90, 100, 100, 100, 80, 100),
            [profile],
            [issue],
            {"I001": [0, 2]},
        )


@pytest.fixture
def rt(tmp_path: Path) -> EmbeddedRuntime:
    # jobs in this process: the child process a job normally runs in would not have the
    # stand-in engine (the CLI tests run jobs the real way)
    runtime = bootstrap(
        Settings(home=tmp_path / "home", tenant="acme"),
        engines={"polars": lambda tuning: CountingEngine()},
        jobs_in_process=True,
    ).runtime
    assert isinstance(runtime, EmbeddedRuntime)
    return runtime


def add_version(
    rt: EmbeddedRuntime, ds_id: uuid.UUID, tmp: Path, cols: dict[str, list[int]]
) -> None:
    path = tmp / f"{uuid.uuid4()}.parquet"
    pl.DataFrame(cols).write_parquet(path)
    uri, sha = rt.objects.put_file("acme", path, ".parquet")
    rt.submit(
        AddDatasetVersion(ds_id, uri, sha, path.as_uri(), sha, "parquet", 3, 1, 10, "{}"), ds_id
    )


def test_scan_flows_to_read_models_and_replays_identically(
    rt: EmbeddedRuntime, tmp_path: Path
) -> None:
    ds_id, scan_id = dataset_id_for("acme", "sales"), uuid.uuid4()
    rt.submit(RegisterDataset(ds_id, "sales"), ds_id)
    add_version(rt, ds_id, tmp_path, {"a": [1, 2, 3]})
    rt.submit(RequestScan(scan_id, ds_id), scan_id)
    phases: list[str] = []
    rt.drain(lambda phase, done, total: phases.append(phase))
    assert "count" in phases

    views = Views(rt.read_store, "acme")
    scan = views.scan(str(scan_id))
    assert scan is not None and scan["status"] == "completed" and scan["row_count"] == 3
    assert [i["issue_id"] for i in views.issues(str(scan_id))] == ["I001"]
    assert runner.affected_rows(scan["report_uri"], "I001", rt.objects) == [0, 2]
    orgs = rt.read_store.query("SELECT id, slug, plan FROM organisations")
    assert orgs == [("acme", "acme", "starter")]
    # tenant isolation in the views
    assert Views(rt.read_store, "other").scan(str(scan_id)) is None

    rows = rt.read_store.query(
        f"SELECT {', '.join(audit.COLUMNS)}, hash FROM audit_log ORDER BY chain, seq"
    )
    checked, broken = audit.verify(rows)
    assert broken is None and checked == rt.events.head()

    fresh = SQLiteReadStore(tmp_path / "replay.db")
    result = rebuild(rt.events, fresh)
    assert result.events == rt.events.head()
    assert result.checksums == table_checksums(rt.read_store)


def test_failed_job_becomes_scan_failed(rt: EmbeddedRuntime, tmp_path: Path) -> None:
    ds_id, scan_id = dataset_id_for("acme", "bad"), uuid.uuid4()
    rt.submit(RegisterDataset(ds_id, "bad"), ds_id)
    add_version(rt, ds_id, tmp_path, {"boom": [1, 2, 3]})
    rt.submit(RequestScan(scan_id, ds_id), scan_id)
    rt.drain()
    scan = Views(rt.read_store, "acme").scan(str(scan_id))
    assert scan is not None and scan["status"] == "failed"
    assert "boom" in scan["error"]


def test_rejections_reach_command_status(rt: EmbeddedRuntime) -> None:
    ds_id = uuid.uuid4()
    env = rt.submit(DeleteDataset(ds_id), ds_id)
    rt.drain()
    status = Views(rt.read_store, "acme").command_status(str(env.id))
    assert status is not None and status["status"] == "rejected"
    assert "not registered" in status["reason"]


def test_drain_twice_changes_nothing(rt: EmbeddedRuntime, tmp_path: Path) -> None:
    ds_id, scan_id = dataset_id_for("acme", "s"), uuid.uuid4()
    rt.submit(RegisterDataset(ds_id, "s"), ds_id)
    add_version(rt, ds_id, tmp_path, {"a": [1, 1, 1]})
    rt.submit(RequestScan(scan_id, ds_id), scan_id)
    rt.drain()
    before = (rt.commands.head(), rt.events.head(), table_checksums(rt.read_store))
    rt.drain()
    assert (rt.commands.head(), rt.events.head(), table_checksums(rt.read_store)) == before


def test_resubmitting_a_command_id_is_dropped(rt: EmbeddedRuntime, tmp_path: Path) -> None:
    """A client that retries (same command id) after its first try went through: the log
    keeps the first, the retry adds no command, no event and no read-model change."""
    ds_id, scan_id = dataset_id_for("acme", "s"), uuid.uuid4()
    register = rt.submit(RegisterDataset(ds_id, "s"), ds_id)
    add_version(rt, ds_id, tmp_path, {"a": [1, 1, 1]})
    request = rt.submit(RequestScan(scan_id, ds_id), scan_id)
    rt.drain()
    before = (rt.commands.head(), rt.events.head(), table_checksums(rt.read_store))
    logged = [env.id for _, env in rt.commands.read(0, 100)]
    assert logged.count(register.id) == 1 and logged.count(request.id) == 1

    # the same ids again; the register retry even names another dataset: still dropped
    rt.submit(RegisterDataset(ds_id, "other"), ds_id, command_id=register.id)
    rt.submit(RequestScan(scan_id, ds_id), scan_id, command_id=request.id)
    assert rt.commands.head() == before[0]
    rt.drain()
    assert (rt.commands.head(), rt.events.head(), table_checksums(rt.read_store)) == before
    assert [env.id for _, env in rt.commands.read(0, 100)] == logged
    datasets = Views(rt.read_store, "acme").datasets()
    assert [d["name"] for d in datasets] == ["s"]
    assert rt.commands.append(register) is False  # the log says it dropped it
    # a new id is a new command: the log takes it (and the aggregate refuses it)
    again = rt.submit(RegisterDataset(ds_id, "s"), ds_id)
    assert [env.id for _, env in rt.commands.read(0, 100)] == [*logged, again.id]


def test_job_rerun_after_crash_resubmits_the_same_result(
    rt: EmbeddedRuntime, tmp_path: Path
) -> None:
    ds_id, scan_id = dataset_id_for("acme", "s"), uuid.uuid4()
    rt.submit(RegisterDataset(ds_id, "s"), ds_id)
    add_version(rt, ds_id, tmp_path, {"a": [1, 2, 3]})
    rt.submit(RequestScan(scan_id, ds_id), scan_id)
    rt.drain()
    # simulate a dispatcher that crashed before saving its position
    with __import__("sqlite3").connect(rt.commands.path) as db:
        db.execute("DELETE FROM consumer_positions")
    n_commands = rt.commands.head()
    rt.drain()
    assert rt.commands.head() == n_commands
    assert sum(1 for _, e in rt.events.read(0, 100) if e.type == "datrix.scan.ScanCompleted") == 1


def test_read_model_migrations_are_recorded_once(tmp_path: Path) -> None:
    from datrix.projections import migrations

    path = tmp_path / "rm.db"
    SQLiteReadStore(path)
    store = SQLiteReadStore(path)  # a second open applies nothing again
    versions = [r[0] for r in store.query("SELECT version FROM schema_migrations ORDER BY 1")]
    assert versions == [m.version for m in migrations.MIGRATIONS]


def test_auto_engine_picks_spark_only_for_large_inputs_on_a_cluster() -> None:
    from datrix.gateway.services import SPARK_THRESHOLD_BYTES, choose_engine

    big, small = SPARK_THRESHOLD_BYTES, SPARK_THRESHOLD_BYTES - 1
    assert choose_engine("auto", big, "spark://cluster:7077") == "spark"
    assert choose_engine("auto", small, "spark://cluster:7077") == "polars"
    assert choose_engine("auto", big, None) == "polars"
    assert choose_engine("spark", small, None) == "spark"
    assert choose_engine("polars", big, "spark://cluster:7077") == "polars"
