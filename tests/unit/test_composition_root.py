"""The composition root (``runtime/bootstrap.py``): the runtime follows the settings, and
tests (and the API) hand it parts instead of patching module globals or the environment.

(``tests/unit/test_bootstrap.py`` is about the install script ``scripts/bootstrap``.)"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from datrix.gateway import services
from datrix.gateway.cli import main
from datrix.gateway.errors import NotFound
from datrix.jobs.engine import ScanTuning
from datrix.jobs.report import ScanOptions, ScanReport, Scores
from datrix.runtime.bootstrap import App, bootstrap
from datrix.runtime.embedded import EmbeddedRuntime
from datrix.streams.object_store import LocalObjectStore
from datrix.streams.ports import ProgressFn, no_progress
from datrix.streams.settings import Settings, SettingsError


class StandInEngine:
    """Counts rows; remembers the tuning it was built with."""

    name = "polars"
    built_with: list[ScanTuning] = []

    def __init__(self, tuning: ScanTuning) -> None:
        self.built_with.append(tuning)

    def scan(
        self, parquet_path: Path, options: ScanOptions, progress: ProgressFn = no_progress
    ) -> ScanReport:
        frame = pl.read_parquet(parquet_path)
        return ScanReport(frame.height, frame.width, Scores(100, 100, 100, 100, 100, 100), [], [])


def _csv(tmp_path: Path, rows: int = 50) -> Path:
    path = tmp_path / "data.csv"
    pl.DataFrame({"a": list(range(rows)), "b": [i % 7 for i in range(rows)]}).write_csv(path)
    return path


def _embedded(app: App) -> EmbeddedRuntime:
    runtime = app.runtime
    assert isinstance(runtime, EmbeddedRuntime)
    return runtime


def test_the_runtime_follows_the_settings(tmp_path: Path) -> None:
    app = bootstrap(Settings(home=tmp_path / "home"))
    runtime = _embedded(app)
    assert runtime.settings is app.settings and app.runtime is runtime  # built once
    assert runtime.objects is app.objects and app.objects.location == str(
        tmp_path / "home" / "objects"
    )
    assert (tmp_path / "home" / "commands.db").exists()
    # a broker in the settings: the Kafka-mode client (which wants its database first)
    kafka = bootstrap(Settings(home=tmp_path / "k", kafka_bootstrap="localhost:1"))
    assert not kafka.settings.embedded
    with pytest.raises(RuntimeError, match="Kafka mode needs DATRIX_DATABASE_URL"):
        _ = kafka.runtime
    with pytest.raises(SettingsError, match="datrix worker needs DATRIX_KAFKA_BOOTSTRAP"):
        app.run_worker()


def test_overrides_are_checked_like_the_environment(tmp_path: Path) -> None:
    base = Settings(home=tmp_path / "home", tenant="acme")
    app = bootstrap(base, tenant="other", scan_chunk_rows="3000")
    assert (app.settings.tenant, app.settings.home) == ("other", tmp_path / "home")
    assert app.settings.scan_chunk_rows == 3000 and app.tuning.chunk_rows == 3000
    assert app.topics.events == "datrix.events"
    with pytest.raises(SettingsError, match=r"^DATRIX_JOB_TIMEOUT_S must be a number"):
        bootstrap(base, job_timeout_s="-1")
    with pytest.raises(SettingsError, match="DATRIX_NO_SUCH: Extra inputs are not permitted"):
        bootstrap(base, no_such=1)


def test_injected_object_store_and_stand_in_engine(tmp_path: Path) -> None:
    elsewhere = LocalObjectStore(tmp_path / "elsewhere")
    notices: list[str] = []
    StandInEngine.built_with.clear()
    app = bootstrap(
        Settings(home=tmp_path / "home", scan_in_memory_mb=0),
        objects=elsewhere,
        engines={"polars": StandInEngine},
        jobs_in_process=True,
        notice=notices.append,
    )
    runtime = _embedded(app)
    assert runtime.objects is elsewhere and runtime.notice == notices.append
    outcome = services.scan_file(runtime, _csv(tmp_path), name="sales")
    doc = services.report_document(runtime, outcome.scan_id)  # raises unless completed
    assert doc["rows"] == 50
    # the version went to the store given, none to the home's folder
    assert list(elsewhere.root.rglob("*.parquet"))
    assert not (tmp_path / "home" / "objects").exists()
    # the engine was built with the settings' tuning
    assert StandInEngine.built_with == [ScanTuning.from_settings(app.settings)]
    assert StandInEngine.built_with[0].in_memory_mb == 0


def test_stand_in_engines_need_jobs_in_process(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="jobs_in_process=True"):
        bootstrap(Settings(home=tmp_path), engines={"polars": StandInEngine})
    with pytest.raises(ValueError, match="apply to the embedded runtime"):
        bootstrap(Settings(home=tmp_path, kafka_bootstrap="localhost:1"), jobs_in_process=True)


def test_the_job_process_runs_with_its_parents_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Settings given to the runtime, not in the environment, reach the job process: a
    bounded scan reports the rows its chunks read; in memory it reports phases only."""
    for name in ("DATRIX_SCAN_IN_MEMORY_MB", "DATRIX_SCAN_CHUNK_ROWS"):
        monkeypatch.delenv(name, raising=False)
    seen: list[tuple[str, int, int]] = []
    app = bootstrap(Settings(home=tmp_path / "home", scan_in_memory_mb=0, scan_chunk_rows=400))
    runtime = _embedded(app)
    outcome = services.scan_file(
        runtime, _csv(tmp_path, rows=2_000), name="sales", progress=lambda *p: seen.append(p)
    )
    assert services.report_document(runtime, outcome.scan_id)["rows"] == 2_000
    chunks = [(phase, done) for phase, done, total in seen if total == 2_000]
    assert ("duplicates", 400) in chunks and ("duplicates", 2_000) in chunks


def test_a_bad_setting_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("DATRIX_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DATRIX_SCAN_IN_MEMORY_ROWS", "many")
    with pytest.raises(SystemExit) as ended:
        main(["datasets"])
    assert ended.value.code == 2
    assert capsys.readouterr().err == (
        "datrix: DATRIX_SCAN_IN_MEMORY_ROWS must be a number, got 'many'\n"
    )


def test_datrix_debug_is_a_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("DATRIX_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DATRIX_DEBUG", "0")
    with pytest.raises(SystemExit) as ended:
        main(["scans", "no-such-dataset"])
    assert ended.value.code == 2 and capsys.readouterr().err.startswith("datrix: ")
    monkeypatch.setenv("DATRIX_DEBUG", "1")
    with pytest.raises(NotFound):  # the traceback, not one line
        main(["scans", "no-such-dataset"])
