"""The toy read model of tests/unit/test_read_models.py on PostgreSQL: its own migration
creates its table with row-level security (``migrations.tenant_isolation``), the projector
fills it beside the core read models, a tenant-scoped store sees only its tenant's rows,
and a replay into a fresh schema checksums it identically."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from datrix.projections.projector import Projector
from datrix.projections.read_models import CORE_READ_MODELS
from datrix.projections.replay import rebuild_partitioned, table_checksums
from datrix.projections.store import PostgresReadStore
from datrix.runtime.embedded import EmbeddedRuntime
from datrix.streams.messages import Envelope
from datrix.streams.settings import load_settings
from tests.unit.test_read_models import TOY, some_commands

pytestmark = pytest.mark.integration

MODELS = (*CORE_READ_MODELS, TOY)


@pytest.fixture
def schema(services: dict[str, str]) -> Iterator[str]:
    name = f"t_rm_{uuid.uuid4().hex[:8]}"
    yield name
    with psycopg.connect(services["DATRIX_DATABASE_URL"], autocommit=True) as db:
        for (found,) in db.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (f"{name}%",)
        ).fetchall():
            db.execute(f'DROP SCHEMA IF EXISTS "{found}" CASCADE')


def _events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, Envelope]]:
    monkeypatch.setenv("DATRIX_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DATRIX_TENANT", "acme")
    rt = EmbeddedRuntime(load_settings(), jobs_in_process=True)
    some_commands(rt)
    return list(rt.events.read(0, 100))


def test_a_toy_read_model_on_postgres(
    services: dict[str, str], schema: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = services["DATRIX_DATABASE_URL"]
    events = _events(tmp_path, monkeypatch)
    store = PostgresReadStore(url, schema, reader_url=services["DATRIX_DATABASE_READER_URL"])
    try:
        assert Projector(store, read_models=MODELS).apply_batch(events) == len(events)
        Projector(store, read_models=MODELS)  # a second projector applies nothing again
        assert store.query("SELECT read_model, version FROM read_model_migrations") == [
            ("toy-command-counts", 1)
        ]
        # the embedded runtime's audit checkpoints (projections/audit.py) are commands too
        anchoring = store.query(
            "SELECT command_type, outcome FROM toy_command_counts "
            "WHERE command_type LIKE 'datrix.audit.%'"
        )
        assert anchoring in ([], [("datrix.audit.RecordAuditCheckpoint", "accepted")])
        assert store.query(
            "SELECT * FROM toy_command_counts WHERE command_type NOT LIKE 'datrix.audit.%' "
            "ORDER BY 1, 2, 3"
        ) == [
            ("acme", "datrix.dataset.DeleteDataset", "accepted", 1),
            ("acme", "datrix.dataset.RegisterDataset", "accepted", 2),
            ("acme", "datrix.dataset.RegisterDataset", "rejected", 1),
        ]
        # row-level security on the read model's own table, as on the core ones
        rows = store.query("SELECT * FROM toy_command_counts")
        assert len(rows) == 3 + len(anchoring)
        assert len(store.for_tenant("acme").query("SELECT * FROM toy_command_counts")) == len(rows)
        assert store.for_tenant("other").query("SELECT * FROM toy_command_counts") == []

        target = PostgresReadStore(url, f"{schema}_replay")
        try:
            replayed = rebuild_partitioned({0: events}, target, read_models=MODELS)
            assert "toy_command_counts" in replayed.checksums
            assert replayed.checksums == table_checksums(store, MODELS)
        finally:
            target.close()
    finally:
        store.close()
