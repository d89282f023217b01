"""A read-model handler that raises never stops the projector (issue 12, item 1): the event
is audited but not projected (its read models untouched, the error's type in its audit
entry), listed in ``Projector.failures`` and logged once; the events after it are
projected; a replay takes the same path, so it still matches. An outage is still raised,
for the caller to retry. (Kafka mode dead-letters it: tests/integration/test_poison.py.)"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import pytest

from datrix.aggregates.dataset import DatasetRegistered, RegisterDataset, dataset_id_for
from datrix.projections import audit, migrations
from datrix.projections.projector import NOT_PROJECTED, Projector
from datrix.projections.read_model import ReadModel
from datrix.projections.read_models import CORE_READ_MODELS
from datrix.projections.replay import rebuild, table_checksums
from datrix.projections.store import SQLiteReadStore, Tx
from datrix.runtime.embedded import EmbeddedRuntime
from datrix.streams.messages import Envelope
from datrix.streams.settings import Settings

_TABLE = "CREATE TABLE IF NOT EXISTS fragile_names (dataset_id TEXT PRIMARY KEY, name TEXT)"


def _fragile(tx: Tx, env: Envelope, event: DatasetRegistered) -> str | None:
    if event.name.startswith("poison"):
        raise ValueError(f"cannot take {event.name}")
    if event.name.startswith("outage"):
        raise sqlite3.OperationalError("database is locked")
    tx.execute("INSERT INTO fragile_names VALUES (?, ?)", (env.subject, event.name))
    return None


FRAGILE = ReadModel(
    "fragile",
    {"fragile_names": "dataset_id"},
    {DatasetRegistered: _fragile},
    migrations=[migrations.Migration(1, "names", [_TABLE], lambda _s: [_TABLE])],
)
MODELS = (*CORE_READ_MODELS, FRAGILE)


def _runtime(home: Path) -> EmbeddedRuntime:
    return EmbeddedRuntime(
        Settings(home=home, tenant="acme", audit_key="k" * 40),
        jobs_in_process=True,
        read_models=MODELS,
    )


def _register(rt: EmbeddedRuntime, name: str) -> None:
    ds = dataset_id_for("acme", name)
    rt.submit(RegisterDataset(ds, name), ds)


def _names(rt: EmbeddedRuntime) -> list[tuple[str, str]]:
    return rt.read_store.query(
        "SELECT d.name, f.name FROM datasets d LEFT JOIN fragile_names f ON f.dataset_id = d.id "
        "ORDER BY d.name"
    )


def test_a_raising_handler_is_audited_logged_once_and_passed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rt = _runtime(tmp_path / "home")
    _register(rt, "sales")
    rt.catch_up()
    # one batch: the bad event between two good ones
    _register(rt, "poison-1")
    _register(rt, "stock")
    rt.catch_up()
    # and on its own, after them
    _register(rt, "poison-2")
    rt.catch_up()
    _register(rt, "after")
    rt.catch_up()
    rt.catch_up()  # nothing new: nothing logged again

    # every other event projected, by every read model; the bad ones by none
    assert _names(rt) == [
        ("after", "after"),
        ("sales", "sales"),
        ("stock", "stock"),
    ]
    # audited, with the error's type, no dataset named
    rows = rt.read_store.query(
        "SELECT subject, dataset_id, summary FROM audit_log "
        "WHERE event_type = 'datrix.dataset.DatasetRegistered' ORDER BY seq"
    )
    summaries = {json.loads(s)["name"]: (json.loads(s), d) for _subj, d, s in rows}
    assert summaries["poison-1"] == (
        {
            "description": None,
            "name": "poison-1",
            "source_type": "file",
            "tenant": "acme",
            NOT_PROJECTED: "ValueError",
        },
        None,
    )
    assert summaries["poison-2"][0][NOT_PROJECTED] == "ValueError"
    assert NOT_PROJECTED not in summaries["sales"][0] and summaries["sales"][1] is not None
    # logged once each, with the fields as the record's extra
    logged = [r for r in caplog.records if r.name == "datrix.projector"]
    assert [r.not_projected["error"] for r in logged] == [  # type: ignore[attr-defined]
        "ValueError: cannot take poison-1",
        "ValueError: cannot take poison-2",
    ]
    assert all(r.levelno == logging.ERROR for r in logged)
    assert logged[0].not_projected["ce_type"] == "datrix.dataset.DatasetRegistered"  # type: ignore[attr-defined]

    # the chain holds, every event has its entry, and a replay takes the same path
    checked, broken = audit.verify(
        rt.read_store.query(f"SELECT {', '.join(audit.COLUMNS)}, hash FROM audit_log ORDER BY seq")
    )
    assert broken is None and checked == rt.events.head()
    replayed = rebuild(rt.events, SQLiteReadStore(tmp_path / "replay.db"), read_models=MODELS)
    assert replayed.checksums == table_checksums(rt.read_store, MODELS)


def test_an_outage_in_a_handler_is_raised_for_a_retry(tmp_path: Path) -> None:
    rt = EmbeddedRuntime(Settings(home=tmp_path / "home", tenant="acme"), jobs_in_process=True)
    _register(rt, "outage")
    rt.catch_up()  # projected without the fragile read model
    fresh = Projector(SQLiteReadStore(tmp_path / "other.db"), read_models=MODELS)
    with pytest.raises(sqlite3.OperationalError):
        fresh.apply_batch(list(rt.events.read(0, 100)))
    assert fresh.position() == 0 and fresh.failures == []
