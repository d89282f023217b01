"""Read models are registered, not wired: a read model declared in this test module only
(its own table, its own migration, its own handlers) is projected beside the core ones by
the embedded runtime on SQLite, is part of replay's checksums, and leaves the core tables
and the audit trail exactly as they are without it."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from datrix.aggregates.dataset import (
    DatasetRegistered,
    DeleteDataset,
    RegisterDataset,
    dataset_id_for,
)
from datrix.aggregates.outcome import CommandAccepted, CommandRejected
from datrix.projections import audit, migrations
from datrix.projections.projector import Projector
from datrix.projections.read_model import Dispatch, ReadModel, ReadModelError
from datrix.projections.read_models import CORE_READ_MODELS
from datrix.projections.replay import checksum_order, rebuild, table_checksums
from datrix.projections.store import SQLiteReadStore, Tx
from datrix.runtime.embedded import EmbeddedRuntime
from datrix.streams.messages import Envelope
from datrix.streams.settings import load_settings

# -- a toy read model: accepted and rejected commands counted per tenant and type ----------
_TOY_TABLE = """
CREATE TABLE IF NOT EXISTS toy_command_counts (
    tenant       TEXT NOT NULL,
    command_type TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    count        INTEGER NOT NULL,
    PRIMARY KEY (tenant, command_type, outcome)
)"""


def _count(tx: Tx, env: Envelope, event: CommandAccepted | CommandRejected) -> str | None:
    outcome = "rejected" if isinstance(event, CommandRejected) else "accepted"
    tx.execute(
        "INSERT INTO toy_command_counts (tenant, command_type, outcome, count) "
        "VALUES (?, ?, ?, 1) ON CONFLICT (tenant, command_type, outcome) "
        "DO UPDATE SET count = toy_command_counts.count + 1",
        (env.tenant, event.command_type, outcome),
    )
    return None


TOY = ReadModel(
    name="toy-command-counts",
    tables={"toy_command_counts": "tenant, command_type, outcome"},
    handlers={CommandAccepted: _count, CommandRejected: _count},
    migrations=[
        migrations.Migration(
            1,
            "command counts",
            [_TOY_TABLE],
            lambda _schema: [_TOY_TABLE, *migrations.tenant_isolation("toy_command_counts")],
        )
    ],
)

# -- two more that handle one event type that a core read model handles as well ------------
_FIRST = "CREATE TABLE IF NOT EXISTS toy_first (dataset_id TEXT PRIMARY KEY, name TEXT NOT NULL)"
_SECOND = (
    "CREATE TABLE IF NOT EXISTS toy_second (dataset_id TEXT PRIMARY KEY, "
    "first_rows INTEGER NOT NULL, datasets_rows INTEGER NOT NULL)"
)


def _first(tx: Tx, env: Envelope, event: DatasetRegistered) -> str | None:
    tx.execute("INSERT INTO toy_first (dataset_id, name) VALUES (?, ?)", (env.subject, event.name))
    return None


def _second(tx: Tx, env: Envelope, event: DatasetRegistered) -> str | None:
    # what the read models registered before this one have written for the same event
    first = tx.fetch_one("SELECT COUNT(*) FROM toy_first WHERE dataset_id = ?", (env.subject,))
    core = tx.fetch_one("SELECT COUNT(*) FROM datasets WHERE id = ?", (env.subject,))
    assert first is not None and core is not None
    tx.execute(
        "INSERT INTO toy_second (dataset_id, first_rows, datasets_rows) VALUES (?, ?, ?)",
        (env.subject, first[0], core[0]),
    )
    return "not-the-dataset"  # the core read model registered first names it already


def _shout(record: dict[str, Any]) -> dict[str, Any]:
    record["name"] = str(record["name"]).upper()
    return record


FIRST = ReadModel(
    "toy-first",
    {"toy_first": "dataset_id"},
    {DatasetRegistered: _first},
    audit_summaries={DatasetRegistered: _shout},
    migrations=[migrations.Migration(1, "first", [_FIRST], lambda _s: [_FIRST])],
)
SECOND = ReadModel(
    "toy-second",
    {"toy_second": "dataset_id"},
    {DatasetRegistered: _second},
    migrations=[migrations.Migration(1, "second", [_SECOND], lambda _s: [_SECOND])],
)


def _runtime(home: Path, monkeypatch: pytest.MonkeyPatch, *models: ReadModel) -> EmbeddedRuntime:
    monkeypatch.setenv("DATRIX_HOME", str(home))
    monkeypatch.setenv("DATRIX_TENANT", "acme")
    return EmbeddedRuntime(load_settings(), jobs_in_process=True, read_models=models)


def some_commands(rt: EmbeddedRuntime) -> None:
    sales, stock = dataset_id_for("acme", "sales"), dataset_id_for("acme", "stock")
    rt.submit(RegisterDataset(sales, "sales"), sales)
    rt.submit(RegisterDataset(stock, "stock"), stock)
    rt.submit(RegisterDataset(sales, "sales"), sales)  # rejected: it exists
    rt.submit(DeleteDataset(stock), stock)
    rt.catch_up()


def _audit_rows(store: SQLiteReadStore) -> list[tuple[Any, ...]]:
    return store.query(f"SELECT {', '.join(audit.COLUMNS)}, hash FROM audit_log ORDER BY seq")


ANCHOR_COMMAND = "datrix.audit.RecordAuditCheckpoint"


def _anchoring(store: SQLiteReadStore) -> int:
    """Entries of the audit anchor's checkpoints (their events and outcomes): the embedded
    runtime signs the chain's head after each catch-up (docs/security.md)."""
    rows = store.query("SELECT COUNT(*) FROM audit_log WHERE actor = ?", (audit.ANCHOR_ACTOR,))
    return int(rows[0][0])


def test_a_read_model_from_a_test_module_is_projected_and_replayed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = (*CORE_READ_MODELS, TOY)
    rt = _runtime(tmp_path / "home", monkeypatch, *models)
    some_commands(rt)

    counts = rt.read_store.query(
        "SELECT * FROM toy_command_counts WHERE command_type != ? ORDER BY 1, 2, 3",
        (ANCHOR_COMMAND,),
    )
    assert counts == [
        ("acme", "datrix.dataset.DeleteDataset", "accepted", 1),
        ("acme", "datrix.dataset.RegisterDataset", "accepted", 2),
        ("acme", "datrix.dataset.RegisterDataset", "rejected", 1),
    ]
    # the core read models beside it, and every event audited once
    assert rt.read_store.query("SELECT name, status FROM datasets ORDER BY name") == [
        ("sales", "registered"),
        ("stock", "deleted"),
    ]
    checked, broken = audit.verify(_audit_rows(rt.read_store))
    assert broken is None and checked == rt.events.head() == 7 + _anchoring(rt.read_store)
    # its own migration, in its own ledger; the core's numbering is untouched
    assert rt.read_store.query("SELECT read_model, version FROM read_model_migrations") == [
        ("toy-command-counts", 1)
    ]
    assert [r[0] for r in rt.read_store.query("SELECT version FROM schema_migrations")] == [
        m.version for m in migrations.MIGRATIONS
    ]

    # replay rebuilds it too, and its table is part of the checksums
    replayed = rebuild(rt.events, SQLiteReadStore(tmp_path / "replay.db"), read_models=models)
    assert "toy_command_counts" in replayed.checksums
    assert replayed.checksums == table_checksums(rt.read_store, models)
    # ... and leaves the core tables and the audit trail exactly as a core-only replay
    core = rebuild(rt.events, SQLiteReadStore(tmp_path / "core.db"))
    assert "toy_command_counts" not in core.checksums
    assert {t: replayed.checksums[t] for t in core.checksums} == core.checksums


def test_a_replay_without_the_read_model_does_not_match_one_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checksum covers the extension's rows: a replay that lost one would show."""
    models = (*CORE_READ_MODELS, TOY)
    rt = _runtime(tmp_path / "home", monkeypatch, *models)
    some_commands(rt)
    target = SQLiteReadStore(tmp_path / "replay.db")
    replayed = rebuild(rt.events, target, read_models=models)
    with sqlite3.connect(target.path) as db:
        db.execute("DELETE FROM toy_command_counts WHERE outcome = 'rejected'")
    assert (
        table_checksums(target, models)["toy_command_counts"]
        != (replayed.checksums["toy_command_counts"])
    )


def test_two_read_models_handling_one_event_both_apply_in_registration_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = _runtime(tmp_path / "home", monkeypatch, *CORE_READ_MODELS, FIRST, SECOND)
    some_commands(rt)
    assert rt.read_store.query("SELECT name FROM toy_first ORDER BY name") == [
        ("sales",),
        ("stock",),
    ]
    # the second ran after the core read model and after the first, in the same transaction
    assert rt.read_store.query("SELECT first_rows, datasets_rows FROM toy_second") == [
        (1, 1),
        (1, 1),
    ]
    # the audit entry names the dataset the first read model that names one gave, and its
    # summary is shaped by the hook the first toy declared
    rows = rt.read_store.query(
        "SELECT subject, dataset_id, summary FROM audit_log "
        "WHERE event_type = 'datrix.dataset.DatasetRegistered' ORDER BY seq"
    )
    assert [(dataset == subject, summary) for subject, dataset, summary in rows] == [
        (True, '{"description":null,"name":"SALES","source_type":"file","tenant":"acme"}'),
        (True, '{"description":null,"name":"STOCK","source_type":"file","tenant":"acme"}'),
    ]


def test_events_no_read_model_handles_are_still_audited(tmp_path: Path) -> None:
    source = SQLiteReadStore(tmp_path / "source.db")
    home = tmp_path / "home"
    with pytest.MonkeyPatch.context() as mp:
        rt = _runtime(home, mp, *CORE_READ_MODELS)
        some_commands(rt)
    bare = Projector(source, read_models=())
    events = 7 + _anchoring(rt.read_store)
    assert bare.apply_batch(list(rt.events.read(0, 100))) == events
    assert source.query("SELECT COUNT(*) FROM datasets") == [(0,)]
    assert source.query("SELECT COUNT(*) FROM command_status") == [(0,)]
    checked, broken = audit.verify(_audit_rows(source))
    assert broken is None and checked == events

    # the same entries as with the read models (the audit trail is generic), except the
    # dataset each names: that is what the read models' handlers tell it
    def entries(store: SQLiteReadStore) -> list[tuple[Any, ...]]:
        return [(r[2], r[4], r[11]) for r in _audit_rows(store)]

    assert entries(source) == entries(rt.read_store)
    assert source.query("SELECT DISTINCT dataset_id FROM audit_log") == [(None,)]


def test_the_core_read_models_checksum_the_tables_replay_always_checked() -> None:
    assert checksum_order() == {
        "organisations": "id",
        "datasets": "id",
        "dataset_versions": "dataset_id, version",
        "quality_scans": "id",
        "quality_issues": "scan_id, issue_id",
        "columns": "scan_id, position",
        "fixes": "fix_id",
        "streams": "stream_id",
        "stream_windows": "window_id",
        "stream_alerts": "alert_id",
        "command_status": "command_id",
        "audit_log": "chain, seq",
    }


def test_read_models_that_clash_are_refused() -> None:
    with pytest.raises(ReadModelError, match="registered twice"):
        Dispatch.of([TOY, TOY])
    stealer = ReadModel("stealer", {"datasets": "id"}, {})
    with pytest.raises(ReadModelError, match="'datasets' is owned by both 'datasets'"):
        Dispatch.of([*CORE_READ_MODELS, stealer])
    with pytest.raises(ReadModelError, match="belongs to the projector"):
        Dispatch.of([ReadModel("audit", {"audit_log": "seq"}, {})])
    other_shape = ReadModel("shaper", {}, {}, audit_summaries={DatasetRegistered: _shout})
    with pytest.raises(ReadModelError, match="shaped by both 'toy-first' and 'shaper'"):
        Dispatch.of([FIRST, other_shape])


def test_a_read_models_later_migration_upgrades_an_existing_store(tmp_path: Path) -> None:
    path = tmp_path / "rm.db"
    Projector(SQLiteReadStore(path), read_models=(*CORE_READ_MODELS, TOY))
    extra = migrations.Migration(
        2,
        "last seen",
        ["ALTER TABLE toy_command_counts ADD COLUMN last_seen TEXT"],
        lambda _s: ["ALTER TABLE toy_command_counts ADD COLUMN IF NOT EXISTS last_seen TEXT"],
    )
    upgraded = ReadModel(TOY.name, TOY.tables, TOY.handlers, migrations=[*TOY.migrations, extra])
    store = SQLiteReadStore(path)
    Projector(store, read_models=(*CORE_READ_MODELS, upgraded))
    Projector(store, read_models=(*CORE_READ_MODELS, upgraded))  # nothing left to apply
    assert store.install(upgraded.name, upgraded.migrations) == []
    assert store.query("SELECT version, name FROM read_model_migrations ORDER BY 1") == [
        (1, "command counts"),
        (2, "last seen"),
    ]
    columns = [r[1] for r in store.query("PRAGMA table_info(toy_command_counts)")]
    assert columns[-1] == "last_seen"
    # a core-only store never gets the extension ledger: existing databases stay as they are
    core_only = SQLiteReadStore(tmp_path / "core.db")
    Projector(core_only)
    assert (
        core_only.query("SELECT name FROM sqlite_master WHERE name = 'read_model_migrations'") == []
    )


def test_the_core_read_models_handle_every_event_type_they_did() -> None:
    handled = {t.__name__ for t in Dispatch.of(CORE_READ_MODELS).handlers}
    assert handled == {
        "DatasetRegistered",
        "DatasetVersionAdded",
        "DatasetDeleted",
        "ScanRequested",
        "JobRequested",
        "ScanCompleted",
        "ScanFailed",
        "ScanCancelled",
        "CommandAccepted",
        "CommandRejected",
        # issue 10: fixes, their versions and rollbacks
        "FixApplied",
        "FixRolledBack",
        "FixRequested",
        "FixJobRequested",
        "FixPreviewed",
        "FixCompleted",
        "FixFailed",
        # issue 13: streams, their windows and quality alerts
        "StreamRegistered",
        "StreamWindowClosed",
        "StreamQualityDegraded",
        "StreamQualityRecovered",
        "StreamSnapshotted",
        "StreamRemoved",
    }
