"""A refused scan leaves no orphan object in the store, and never removes a shared one
(issue 14, item 7). Runs the real use case on the embedded runtime (SQLite); another
client deleting the dataset while the file is ingested (through the progress callback)
makes the version command be refused after its object was stored."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from datrix.aggregates.dataset import DeleteDataset
from datrix.gateway import services
from datrix.gateway.errors import UserInputError
from datrix.jobs.engine import ProgressFn
from datrix.runtime.bootstrap import bootstrap
from datrix.runtime.embedded import EmbeddedRuntime
from datrix.streams.settings import Settings


@pytest.fixture
def rt(tmp_path: Path) -> EmbeddedRuntime:
    runtime = bootstrap(Settings(home=tmp_path / "home")).runtime
    assert isinstance(runtime, EmbeddedRuntime)
    return runtime


def _objects(rt: EmbeddedRuntime) -> set[str]:
    """The dataset-version objects (``<sha>.parquet``; a report's rows are ``.rows.parquet``)."""
    return {p.name for p in rt.objects.root.rglob("*.parquet") if p.suffixes == [".parquet"]}


def _deleted_during_ingest(rt: EmbeddedRuntime, dataset_id: str) -> ProgressFn:
    def progress(phase: str, done: int, total: int) -> None:
        if phase == "ingest":
            subject = uuid.UUID(dataset_id)
            rt.submit(DeleteDataset(subject, "deleted by someone else"), subject)

    return progress


def test_refused_after_the_put_removes_only_unreferenced_objects(
    rt: EmbeddedRuntime, tmp_path: Path
) -> None:
    first = tmp_path / "first.csv"
    first.write_text("a,b\n1,x\n2,y\n3,z\n")
    other = tmp_path / "other.csv"
    other.write_text("a,b\n4,p\n5,q\n6,r\n")
    services.scan_file(rt, first, name="sales")
    copy = services.scan_file(rt, other, name="copy")
    stored = _objects(rt)
    assert len(stored) == 2

    # new bytes, refused after the put: their object goes
    third = tmp_path / "third.csv"
    third.write_text("a,b\n7,s\n8,t\n9,u\n")
    sales = services.views(rt).dataset("sales")
    assert sales is not None
    with pytest.raises(UserInputError, match="is deleted"):
        services.scan_file(
            rt, third, name="sales", progress=_deleted_during_ingest(rt, sales["id"])
        )
    assert _objects(rt) == stored

    # the bytes of "sales" v1 offered to "copy", refused: the object stays (v1 uses it)
    with pytest.raises(UserInputError, match="is deleted"):
        services.scan_file(
            rt, first, name="copy", progress=_deleted_during_ingest(rt, copy.dataset_id)
        )
    assert _objects(rt) == stored


def test_refused_before_the_put_stores_nothing(rt: EmbeddedRuntime, tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,\n2,\n")
    with pytest.raises(UserInputError, match="has no values"):
        services.scan_file(rt, path, label="b")
    with pytest.raises(UserInputError, match="non-empty name"):
        services.scan_file(rt, path, name="")
    assert _objects(rt) == set()
    assert services.views(rt).datasets() == []
