"""The SDK's fixes end to end against one real ``datrix serve`` (embedded default), sync
and async: ``scan.fix_all(dry_run=True)`` (a preview: nothing written),
``scan.fix_all(confirm=True)`` (a new version, re-scanned, scores before and after),
``dataset.versions()``, ``dataset.provenance(...)``, ``dataset.rollback(fix_id)`` (the
version before, checksum for checksum), and the typed errors of a refused rollback and of
a role that may not fix."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from datrix import Datrix
from datrix.async_client import AsyncDatrix
from datrix.sdk import (
    Conflict,
    FixPreview,
    FixResult,
    PermissionDenied,
    ProvenanceEntry,
    QualityScore,
    ValidationFailed,
)
from tests.integration.api_server import Server, create_key, start_server
from tests.integration.test_cli_fix import dirty_csv

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("sdk-fix")
    home = root / "home"
    keys = {role: create_key(home, "acme", role) for role in ("engineer", "viewer")}
    server = start_server(home, root / "serve.log")
    server.keys = keys
    try:
        yield server
    finally:
        server.stop()


def test_sync_preview_apply_provenance_rollback(api: Server, tmp_path: Path) -> None:
    with Datrix(api_key=api.keys["engineer"], url=api.url) as client:
        ds = client.datasets.upload(dirty_csv(tmp_path / "orders.csv"))
        scan = ds.scan().wait(timeout=300, progress=False)

        preview = scan.fix_all(dry_run=True, progress=False)
        assert isinstance(preview, FixPreview)
        assert preview.rows_affected > 0 and preview.cells_changed > 0
        assert any(f.rows_removed == 6 and f.type == "exact_duplicates" for f in preview.fixes)
        assert [v.version for v in ds.versions()] == [1]  # nothing written

        result = scan.fix_all(confirm=True, progress=False)
        assert isinstance(result, FixResult)
        assert result.version == 2 and result.base_version == 1
        assert isinstance(result.score_before, QualityScore)
        assert result.score_after.overall is not None and result.score_before.overall is not None
        assert result.score_after.overall > result.score_before.overall
        assert result.issues_gone and result.rescan_id

        versions = ds.versions()
        assert [(v.version, v.cause) for v in versions] == [(1, "upload"), (2, "fix")]
        assert versions[1].fix_id == result.fix_id and len(versions[1].checksum) == 64

        entries = list(ds.provenance(page_size=5))  # the latest version, five a request
        assert entries and all(isinstance(e, ProvenanceEntry) for e in entries)
        assert {e.fix_id for e in entries} == {result.fix_id}
        assert sum(1 for e in entries if e.column is None) == 6  # the removed duplicates
        city = ds.provenance(2, column="city").all()
        assert city and {e.column for e in city} == {"city"}
        row = city[0].row_id
        assert {e.row_id for e in ds.provenance(2, row=row)} == {row}
        assert ds.provenance(1).all() == []  # an upload: no provenance

        back = ds.rollback(result.fix_id, progress=False)  # waits for the re-scan
        assert back.version == 3 and back.restored_version == 1 and back.rescan_id
        after = ds.versions()
        assert after[2].cause == "rollback" and after[2].checksum == after[0].checksum
        with pytest.raises(Conflict) as refused:
            ds.rollback(result.fix_id)
        assert refused.value.status == 409 and refused.value.detail

        with pytest.raises(ValueError, match="dry_run=True"):
            scan.fix_all()  # neither: refused before anything is sent
        with pytest.raises(ValueError, match="choose one"):
            scan.fix_all(dry_run=True, confirm=True)
        with pytest.raises(ValidationFailed) as unknown:
            scan.fix_all(dry_run=True, issues=["I999"], progress=False)
        assert "I999" in unknown.value.detail

    with Datrix(api_key=api.keys["viewer"], url=api.url) as viewer:
        seen = viewer.datasets.get(ds.id)
        assert [v.version for v in seen.versions()] == [1, 2, 3]
        with pytest.raises(PermissionDenied):
            seen.rollback(result.fix_id)


def test_async_preview_apply_rollback(api: Server, tmp_path: Path) -> None:
    data = dirty_csv(tmp_path / "async_orders.csv", 120)

    async def run() -> None:
        async with AsyncDatrix(api_key=api.keys["engineer"], url=api.url) as client:
            ds = await client.datasets.upload(data)
            scan = await (await ds.scan()).wait(timeout=300, progress=False)
            preview = await scan.fix_all(dry_run=True, progress=False)
            assert isinstance(preview, FixPreview) and preview.rows_affected > 0
            result = await scan.fix_all(confirm=True, progress=False)
            assert isinstance(result, FixResult) and result.version == 2
            entries = [e async for e in ds.provenance(2, column="city")]
            assert entries and {e.column for e in entries} == {"city"}
            assert await ds.provenance(2).all()
            back = await ds.rollback(result.fix_id, progress=False)
            assert back.restored_version == 1
            versions = await ds.versions()
            assert [v.cause for v in versions] == ["upload", "fix", "rollback"]
            assert versions[2].checksum == versions[0].checksum

    asyncio.run(run())
