"""The dataset aggregate: a named dataset and its immutable versions.

Invariants: a name is printable text on one line, 1-200 characters; a dataset is
registered once, under the id ``dataset_id_for(tenant, name)``, so a tenant has at most one
dataset of a name however many producers race to register it (a name whose dataset was
deleted stays taken: registering it again is refused); versions are numbered 1, 2, 3, ...
with no gaps (the aggregate assigns them); a version of the same file read the same way
as the latest one (same source and object digests) adds nothing, so racing scans of one
file add one version; a deleted dataset takes no new versions and cannot be deleted twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID, uuid5

from datrix.aggregates.common import AggregateSpec, Command, Event, Meta, Rejected, next_version


# ---- commands -------------------------------------------------------------------------
@dataclass(frozen=True)
class RegisterDataset(Command):
    dataset_id: UUID
    name: str
    source_type: str = "file"
    description: str | None = None


@dataclass(frozen=True)
class AddDatasetVersion(Command):
    dataset_id: UUID
    object_uri: str
    object_sha256: str
    source_uri: str
    source_sha256: str
    format: str
    rows: int
    columns: int
    size_bytes: int
    schema_json: str
    # How the file was read, as JSON (CSV: the sniffed or given dialect; Excel: the sheet);
    # None in events written before it existed.
    read_options_json: str | None = None


@dataclass(frozen=True)
class DeleteDataset(Command):
    dataset_id: UUID
    reason: str | None = None


# ---- events ---------------------------------------------------------------------------
class DatasetRegistered(Event):
    tenant: str
    name: str
    source_type: str
    description: str | None


class DatasetVersionAdded(Event):
    version: int
    object_uri: str
    object_sha256: str
    source_uri: str
    source_sha256: str
    format: str
    rows: int
    columns: int
    size_bytes: int
    schema_json: str
    read_options_json: str | None = None


class DatasetDeleted(Event):
    reason: str | None


MAX_NAME_LENGTH = 200


def name_problem(name: str) -> str | None:
    """Why ``name`` (already stripped) cannot name a dataset, or None when it can."""
    if not name:
        return "a dataset needs a non-empty name"
    if len(name) > MAX_NAME_LENGTH:
        return f"a dataset name has at most {MAX_NAME_LENGTH} characters, not {len(name):,}"
    if not name.isprintable():
        return "a dataset name must be printable text on one line (no line breaks or controls)"
    return None


# Fixed for ever: changing it would give existing names other ids.
DATASET_NAMESPACE = UUID("5b0c6f1e-3d0a-4f43-9a55-0d7a7c1d2a10")


def dataset_id_for(tenant: str, name: str) -> UUID:
    """The id of the dataset ``name`` (already stripped) of ``tenant``: deterministic, so
    two producers registering the same name register the same aggregate and one of them
    is refused. Datasets registered before this rule keep their random ids (events are
    replayed, not re-decided); they are found by name in the read model."""
    return uuid5(DATASET_NAMESPACE, f"{tenant}/{name}")


# ---- state ----------------------------------------------------------------------------
@dataclass(frozen=True)
class DatasetVersion:
    version: int
    object_uri: str
    object_sha256: str
    rows: int
    columns: int
    source_sha256: str = ""


@dataclass(frozen=True)
class Dataset:
    id: UUID
    version: int  # aggregate (event stream) version, not dataset version
    tenant: str
    name: str
    deleted: bool = False
    versions: tuple[DatasetVersion, ...] = ()

    @property
    def latest(self) -> DatasetVersion | None:
        return self.versions[-1] if self.versions else None

    def get_version(self, number: int) -> DatasetVersion | None:
        if 1 <= number <= len(self.versions):
            return self.versions[number - 1]
        return None

    def previous(self, number: int) -> DatasetVersion | None:
        """The version before ``number`` (what a scan of ``number`` checks drift against)."""
        return self.get_version(number - 1) if number > 1 else None


def decide(command: Command, state: Dataset | None, meta: Meta) -> list[Event]:
    if isinstance(command, RegisterDataset):
        name = command.name.strip()
        if state is not None and state.tenant != meta.tenant:
            # Another tenant's dataset: answered as if the id were free (the checks below
            # then reject it, since dataset_id_for(this tenant, name) never equals another
            # tenant's id), so its existence cannot be probed.
            state = None
        if state is not None:
            if state.deleted:
                raise Rejected(
                    f"dataset {state.name!r} was deleted; its name cannot be registered again"
                )
            raise Rejected(f"dataset {state.name!r} ({state.id}) is already registered")
        problem = name_problem(name)
        if problem is not None:
            raise Rejected(problem)
        if command.dataset_id != dataset_id_for(meta.tenant, name):
            raise Rejected(
                f"dataset id {command.dataset_id} is not the id of the name {name!r}; "
                "register it as dataset_id_for(tenant, name)"
            )
        return [
            DatasetRegistered(
                originator_id=command.dataset_id,
                originator_version=1,
                timestamp=meta.time,
                tenant=meta.tenant,
                name=name,
                source_type=command.source_type,
                description=command.description,
            )
        ]
    if state is None:
        raise Rejected(f"dataset {getattr(command, 'dataset_id', '?')} is not registered")
    if state.tenant != meta.tenant:
        # Same message as a missing dataset: another tenant's ids must not be probeable.
        raise Rejected(f"dataset {state.id} is not registered")
    if isinstance(command, AddDatasetVersion):
        if state.deleted:
            raise Rejected(f"dataset {state.id} is deleted; it takes no new versions")
        if command.rows < 0 or command.columns < 0:
            raise Rejected("row and column counts cannot be negative")
        latest = state.latest
        if (
            latest is not None
            and latest.source_sha256 == command.source_sha256
            and latest.object_sha256 == command.object_sha256
        ):
            return []  # the same file again (a concurrent twin added it): no new version
        return [
            DatasetVersionAdded(
                originator_id=state.id,
                originator_version=next_version(state.version),
                timestamp=meta.time,
                version=len(state.versions) + 1,
                object_uri=command.object_uri,
                object_sha256=command.object_sha256,
                source_uri=command.source_uri,
                source_sha256=command.source_sha256,
                format=command.format,
                rows=command.rows,
                columns=command.columns,
                size_bytes=command.size_bytes,
                schema_json=command.schema_json,
                read_options_json=command.read_options_json,
            )
        ]
    if isinstance(command, DeleteDataset):
        if state.deleted:
            raise Rejected(f"dataset {state.id} is already deleted")
        return [
            DatasetDeleted(
                originator_id=state.id,
                originator_version=next_version(state.version),
                timestamp=meta.time,
                reason=command.reason,
            )
        ]
    raise Rejected(f"the dataset aggregate does not handle {type(command).__name__}")


def evolve(state: Dataset | None, event: Event) -> Dataset:
    if isinstance(event, DatasetRegistered):
        if state is not None:
            raise ValueError("DatasetRegistered on an existing dataset")
        return Dataset(id=event.originator_id, version=1, tenant=event.tenant, name=event.name)
    if state is None:
        raise ValueError(f"{type(event).__name__} before DatasetRegistered")
    if event.originator_version != state.version + 1:
        raise ValueError(
            f"event version {event.originator_version} does not follow {state.version}"
        )
    if isinstance(event, DatasetVersionAdded):
        if event.version != len(state.versions) + 1:
            raise ValueError(f"dataset version {event.version} is not the next one")
        added = DatasetVersion(
            event.version,
            event.object_uri,
            event.object_sha256,
            event.rows,
            event.columns,
            event.source_sha256,
        )
        return replace(state, version=event.originator_version, versions=(*state.versions, added))
    if isinstance(event, DatasetDeleted):
        return replace(state, version=event.originator_version, deleted=True)
    raise ValueError(f"the dataset aggregate does not apply {type(event).__name__}")


def _decide(
    command: Command, state: Dataset | None, meta: Meta, _: Mapping[str, Any]
) -> list[Event]:
    return decide(command, state, meta)


AGGREGATE = AggregateSpec(
    name="dataset",
    namespace="datrix.dataset",
    commands=(RegisterDataset, AddDatasetVersion, DeleteDataset),
    events=(DatasetRegistered, DatasetVersionAdded, DatasetDeleted),
    id_field="dataset_id",
    decide=_decide,
    evolve=evolve,
)
