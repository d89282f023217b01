"""The schema contract on the dataset aggregate (SetSchemaContract -> SchemaContractSet)
and how a scan job is told the frozen version."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from datrix.aggregates import dataset, scan
from datrix.aggregates.common import Event, Meta, Rejected
from datrix.jobs.runner import scan_options
from datrix.streams.codec import AvroCodec, load_schema_set

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def meta() -> Meta:
    return Meta(command_id=uuid.uuid4(), time=T0, tenant="acme")


def fold(events: list[Event]) -> dataset.Dataset:
    state = None
    for e in events:
        state = dataset.evolve(state, e)
    assert state is not None
    return state


def version(ds_id: uuid.UUID, n: int) -> dataset.AddDatasetVersion:
    return dataset.AddDatasetVersion(
        dataset_id=ds_id,
        object_uri=f"datrix-object://acme/{n}",
        object_sha256=f"{n:064d}",
        source_uri="file:///x.csv",
        source_sha256=f"{n:064d}",
        format="csv",
        rows=10,
        columns=3,
        size_bytes=100,
        schema_json="{}",
    )


def decide(events: list[Event], command: object) -> list[Event]:
    found = dataset.decide(command, fold(events), meta())  # type: ignore[arg-type]
    events += found
    return found


def with_versions(n: int) -> tuple[uuid.UUID, list[Event]]:
    ds_id = dataset.dataset_id_for("acme", "sales")
    events = dataset.decide(dataset.RegisterDataset(ds_id, "sales"), None, meta())
    for i in range(n):
        decide(events, version(ds_id, i))
    return ds_id, events


def test_freeze_records_the_latest_version_and_unfreeze_ends_it() -> None:
    ds_id, events = with_versions(2)
    [frozen] = decide(events, dataset.SetSchemaContract(ds_id, True))
    assert isinstance(frozen, dataset.SchemaContractSet)
    assert (frozen.frozen, frozen.version) == (True, 2)
    state = fold(events)
    assert state.contract_version == 2
    assert state.contract_for(2) is None  # the frozen version itself is the contract
    decide(events, version(ds_id, 9))
    contract = fold(events).contract_for(3)
    assert contract is not None and contract.version == 2
    [unfrozen] = decide(events, dataset.SetSchemaContract(ds_id, False))
    assert (unfrozen.frozen, unfrozen.version) == (False, None)  # type: ignore[attr-defined]
    assert fold(events).contract_version is None and fold(events).contract_for(3) is None


@pytest.mark.parametrize(
    ("setup", "command", "reason"),
    [
        (0, dataset.SetSchemaContract, "has no version whose schema could be frozen"),
        (-1, dataset.SetSchemaContract, "already frozen (as of version 1)"),
        (1, lambda i, _f: dataset.SetSchemaContract(i, False), "is not frozen"),
        (1, lambda i, _f: dataset.SetSchemaContract(i, True, 3), "version 3 is not the latest"),
    ],
)
def test_refusals(setup: int, command: object, reason: str) -> None:
    ds_id, events = with_versions(abs(setup))
    if setup < 0:
        decide(events, dataset.SetSchemaContract(ds_id, True))
    with pytest.raises(Rejected, match=reason.replace("(", r"\(").replace(")", r"\)")):
        decide(events, command(ds_id, True))  # type: ignore[operator]


def test_a_deleted_dataset_keeps_its_contract() -> None:
    ds_id, events = with_versions(1)
    decide(events, dataset.DeleteDataset(ds_id))
    with pytest.raises(Rejected, match="is deleted"):
        decide(events, dataset.SetSchemaContract(ds_id, True))


def test_a_scan_after_the_freeze_is_told_the_frozen_version(tmp_path: Path) -> None:
    ds_id, events = with_versions(1)
    decide(events, dataset.SetSchemaContract(ds_id, True))
    decide(events, version(ds_id, 1))
    decide(events, version(ds_id, 2))
    state = fold(events)
    job = scan.decide(scan.RequestScan(uuid.uuid4(), ds_id), None, meta(), state)[1]
    assert isinstance(job, scan.JobRequested)
    assert (job.version, job.previous_version, job.contract_version) == (3, 2, 1)
    assert job.contract_object_uri == "datrix-object://acme/0"
    first = scan.decide(scan.RequestScan(uuid.uuid4(), ds_id, version=1), None, meta(), state)
    assert isinstance(first[1], scan.JobRequested) and first[1].contract_version is None


class _Store:
    """An object store holding the objects of ``present`` as local files."""

    def __init__(self, root: Path, present: set[str]) -> None:
        self.root, self.present = root, present

    def local_copy(self, uri: str, workdir: Path) -> Path:
        if uri not in self.present:
            raise KeyError(uri)
        path = self.root / uri.rsplit("/", 1)[-1]
        path.write_bytes(b"x")
        return path


def test_scan_options_carry_the_contract_and_keep_it_when_its_object_is_gone(
    tmp_path: Path,
) -> None:
    job = scan.JobRequested(
        originator_id=uuid.uuid4(),
        originator_version=2,
        timestamp=T0,
        job_id=uuid.uuid4(),
        kind="scan",
        engine="polars",
        tenant="acme",
        dataset_id=uuid.uuid4(),
        version=3,
        object_uri="datrix-object://acme/2",
        object_sha256="0" * 64,
        label_column=None,
        seed=0,
        attempt=1,
        previous_version=2,
        previous_object_uri="datrix-object://acme/1",
        contract_version=1,
        contract_object_uri="datrix-object://acme/0",
    )
    both = _Store(tmp_path, {"datrix-object://acme/1", "datrix-object://acme/0"})
    options = scan_options(job, both, tmp_path)  # type: ignore[arg-type]
    assert options.contract_frozen and options.contract_version == 1
    assert options.contract_path == tmp_path / "0" and options.previous_path == tmp_path / "1"
    gone = scan_options(job, _Store(tmp_path, {"datrix-object://acme/1"}), tmp_path)  # type: ignore[arg-type]
    assert gone.contract_frozen and gone.contract_path is None and gone.contract_version is None


def test_job_requested_written_before_the_contract_decodes_without_one(tmp_path: Path) -> None:
    """A JobRequested record of the schema before the contract fields replays with None."""
    import json

    text = (Path(__file__).parents[2] / "schemas/avro/datrix.job.JobRequested.avsc").read_text()
    before = json.loads(text)
    before["fields"] = [f for f in before["fields"] if not f["name"].startswith("contract_")]
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "datrix.job.JobRequested.avsc").write_text(json.dumps(before))
    old = AvroCodec(load_schema_set(tmp_path / "old"))
    # the reader: the current schema, the one before it as a released writer
    (tmp_path / "new" / "released" / "1").mkdir(parents=True)
    (tmp_path / "new" / "released" / "1" / "j.avsc").write_text(json.dumps(before))
    (tmp_path / "new" / "datrix.job.JobRequested.avsc").write_text(text)
    reader = AvroCodec(load_schema_set(tmp_path / "new"))
    record = {
        "job_id": str(uuid.uuid4()),
        "kind": "scan",
        "engine": "polars",
        "tenant": "acme",
        "dataset_id": str(uuid.uuid4()),
        "version": 2,
        "object_uri": "u",
        "object_sha256": "s",
        "label_column": None,
        "seed": 0,
        "attempt": 1,
        "weights": None,
        "previous_version": 1,
        "previous_object_uri": "p",
    }
    name, decoded = reader.decode(old.encode("datrix.job.JobRequested", record))
    assert name == "datrix.job.JobRequested"
    assert decoded["contract_version"] is None and decoded["contract_object_uri"] is None
