"""The dataset aggregate: a named dataset and its immutable versions.

Invariants: a name is printable text on one line, 1-200 characters; a dataset is
registered once, under the id ``dataset_id_for(tenant, name)``, so a tenant has at most one
dataset of a name however many producers race to register it (a name whose dataset was
deleted stays taken: registering it again is refused); versions are numbered 1, 2, 3, ...
with no gaps (the aggregate assigns them); a version of the same file read the same way
as the latest one (same source and object digests) adds nothing, so racing scans of one
file add one version; a deleted dataset takes no new versions and cannot be deleted twice.

Every version has a ``cause``: ``upload`` (``AddDatasetVersion``; events written before
causes existed replay as uploads), ``pipeline`` or ``stream`` (``AddDatasetVersion`` with
that cause; ``stream``: a stream's snapshot, added by the ``stream-snapshot`` job),
``fix`` (``AddFixedVersion`` -> ``FixApplied``, issued by the policy ``fix-versions`` when a
fix job completes: the fixed Parquet and its provenance object, built on ``base_version``,
which must still be the latest version) or ``rollback`` (``RollbackFix`` ->
``FixRolledBack``: the new version *is* the version before the fix, the same object URI and
SHA-256, so its content is byte for byte that version's).

Fixes chain; rollbacks undo them in reverse order. Each version stands on one below it: a
fix on its base version, an upload (or pipeline output) on the version that was latest when
it came, and a rollback version stands for the version it restores. The *top* of the
dataset is the latest version, seen through rollbacks to the version it restores. Rolling
back fix F (its version vF) is allowed only while vF is the top; otherwise the versions
standing on vF (later fixes not rolled back, uploads) are named in the refusal, newest
first, and rolling those fixes back first makes F's rollback possible (an upload on top of
a fix cannot be rolled back: upload the content wanted instead). A fix is rolled back at
most once, and a fixed version is added once per fix.

The schema contract (``SetSchemaContract`` -> ``SchemaContractSet``) freezes the schema of
the latest version; a frozen contract is unfrozen before a later version is frozen, and a
dataset needs a version to freeze. Scans of later versions are told the frozen version
(``contract_for``), against which any schema change is a critical issue.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID, uuid5

from datrix.aggregates.common import (
    AggregateSpec,
    Command,
    Event,
    Meta,
    Rejected,
    check_follows,
    next_version,
)


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
    cause: str = "upload"  # upload | pipeline (fixes and rollbacks have their own commands)


@dataclass(frozen=True)
class AddFixedVersion(Command):
    """The version a completed fix wrote (issued by the policy ``fix-versions``)."""

    dataset_id: UUID
    fix_id: UUID
    object_uri: str
    object_sha256: str
    rows: int
    columns: int
    size_bytes: int
    schema_json: str
    provenance_uri: str
    provenance_sha256: str
    base_version: int
    scan_id: UUID
    engine: str = "polars"
    label_column: str | None = None
    weights: dict[str, float] | None = None  # the fixed scan's score weights


@dataclass(frozen=True)
class RollbackFix(Command):
    """Undo a fix: a new version equal to the version before it."""

    dataset_id: UUID
    fix_id: UUID


@dataclass(frozen=True)
class SetSchemaContract(Command):
    """Freeze the dataset's schema as its latest version has it (``frozen``), or unfreeze
    it: while frozen, a scan of a later version compares the schema with the frozen
    version's and any change is a critical issue (``jobs/quality/schema_change.py``)."""

    dataset_id: UUID
    frozen: bool
    # freezing: the version meant, which must still be the latest (None: the latest)
    version: int | None = None


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
    cause: str = "upload"


class FixApplied(Event):
    version: int
    fix_id: UUID
    base_version: int
    object_uri: str
    object_sha256: str
    rows: int
    columns: int
    size_bytes: int
    schema_json: str
    provenance_uri: str
    provenance_sha256: str
    scan_id: UUID
    engine: str
    label_column: str | None
    weights: dict[str, float] | None = None


class FixRolledBack(Event):
    """``version`` is new and holds exactly ``restored_version``'s object: the version
    before the fix that made ``fixed_version``."""

    version: int
    fix_id: UUID
    fixed_version: int
    restored_version: int
    object_uri: str
    object_sha256: str
    rows: int
    columns: int
    size_bytes: int
    schema_json: str
    engine: str
    label_column: str | None
    weights: dict[str, float] | None = None


class DatasetDeleted(Event):
    reason: str | None


class SchemaContractSet(Event):
    """``version``: the version whose schema is frozen; None when unfrozen."""

    frozen: bool
    version: int | None = None


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
CAUSES = ("upload", "fix", "rollback", "pipeline", "stream")


@dataclass(frozen=True)
class DatasetVersion:
    version: int
    object_uri: str
    object_sha256: str
    rows: int
    columns: int
    source_sha256: str = ""
    size_bytes: int = 0
    schema_json: str = ""
    cause: str = "upload"
    fix_id: UUID | None = None
    # fix: the version it was built on; rollback: the version it restores
    base_version: int | None = None
    engine: str = "polars"  # fix versions: how the fix's scan ran (its re-scans run so)
    label_column: str | None = None
    weights: dict[str, float] | None = None  # ... and with these score weights
    rolled_back_by: int | None = None  # fix versions: the rollback version that undid it


@dataclass(frozen=True)
class Dataset:
    id: UUID
    version: int  # aggregate (event stream) version, not dataset version
    tenant: str
    name: str
    deleted: bool = False
    versions: tuple[DatasetVersion, ...] = ()
    # the version whose schema is frozen (``SetSchemaContract``); None: no contract
    contract_version: int | None = None

    @property
    def latest(self) -> DatasetVersion | None:
        return self.versions[-1] if self.versions else None

    def get_version(self, number: int) -> DatasetVersion | None:
        if 1 <= number <= len(self.versions):
            return self.versions[number - 1]
        return None

    def previous(self, number: int) -> DatasetVersion | None:
        """What a scan of version ``number`` checks drift against: the version before it,
        except that a fix or rollback version is checked against what its base version
        was checked against. Drift is about data that *arrived*; a fix changes the
        distributions on purpose (imputed, canonical, redacted values), and checking the
        fixed version against the one it fixed reported every fix as drift."""
        version = self.get_version(number)
        if (
            version is not None
            and version.cause in ("fix", "rollback")
            and version.base_version is not None
            and version.base_version < number
        ):
            return self.previous(version.base_version)
        return self.get_version(number - 1) if number > 1 else None

    def contract_for(self, number: int) -> DatasetVersion | None:
        """The frozen version a scan of version ``number`` must keep the schema of: the
        contract's version when a contract is frozen and ``number`` came after it."""
        frozen = self.contract_version
        if frozen is None or number <= frozen:
            return None
        return self.get_version(frozen)

    def fixed_by(self, fix_id: UUID) -> DatasetVersion | None:
        """The version fix ``fix_id`` made, if any."""
        return next((v for v in self.versions if v.cause == "fix" and v.fix_id == fix_id), None)

    def stands_for(self, number: int) -> DatasetVersion:
        """The version ``number`` is, seen through rollbacks (a rollback version stands
        for the version it restores)."""
        version = self.versions[number - 1]
        while version.cause == "rollback" and version.base_version is not None:
            version = self.versions[version.base_version - 1]
        return version

    def below(self, version: DatasetVersion) -> DatasetVersion | None:
        """The version ``version`` stands on (a fix: its base; an upload: the version that
        was latest before it), seen through rollbacks."""
        under = version.base_version if version.cause == "fix" else version.version - 1
        return self.stands_for(under) if under is not None and under >= 1 else None

    def standing_on(self, number: int) -> list[DatasetVersion]:
        """The versions above version ``number`` in the chain of the top, newest first
        (empty when ``number`` is the top)."""
        found: list[DatasetVersion] = []
        current = self.stands_for(len(self.versions)) if self.versions else None
        while current is not None and current.version != number:
            found.append(current)
            current = self.below(current)
        return found


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
        if command.cause not in ("upload", "pipeline", "stream"):
            raise Rejected(
                "a version added by upload has cause upload, pipeline or stream (a stream's "
                f"snapshot), not {command.cause!r} "
                "(fixes and rollbacks have commands of their own)"
            )
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
                cause=command.cause,
            )
        ]
    if isinstance(command, AddFixedVersion):
        return [_fixed(command, state, meta)]
    if isinstance(command, RollbackFix):
        return [_rollback(command, state, meta)]
    if isinstance(command, SetSchemaContract):
        return [_contract(command, state, meta)]
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


def _fixed(command: AddFixedVersion, state: Dataset, meta: Meta) -> FixApplied:
    if state.deleted:
        raise Rejected(f"dataset {state.id} is deleted; it takes no fixed version")
    done = state.fixed_by(command.fix_id)
    if done is not None:
        raise Rejected(f"fix {command.fix_id} already made version {done.version}")
    latest = state.latest
    if latest is None or latest.version != command.base_version:
        raise Rejected(
            f"fix {command.fix_id} was built on version {command.base_version} of dataset "
            f"{state.name!r}, whose latest version is now "
            f"{latest.version if latest else 'none'}; scan it and fix again"
        )
    if min(command.rows, command.columns, command.size_bytes) < 0:
        raise Rejected("row, column and byte counts cannot be negative")
    return FixApplied(
        originator_id=state.id,
        originator_version=next_version(state.version),
        timestamp=meta.time,
        version=len(state.versions) + 1,
        fix_id=command.fix_id,
        base_version=command.base_version,
        object_uri=command.object_uri,
        object_sha256=command.object_sha256,
        rows=command.rows,
        columns=command.columns,
        size_bytes=command.size_bytes,
        schema_json=command.schema_json,
        provenance_uri=command.provenance_uri,
        provenance_sha256=command.provenance_sha256,
        scan_id=command.scan_id,
        engine=command.engine,
        label_column=command.label_column,
        weights=command.weights,
    )


def _contract(command: SetSchemaContract, state: Dataset, meta: Meta) -> SchemaContractSet:
    if state.deleted:
        raise Rejected(f"dataset {state.name!r} is deleted; its schema contract cannot change")
    frozen = state.contract_version
    if command.frozen:
        if state.latest is None:
            raise Rejected(f"dataset {state.name!r} has no version whose schema could be frozen")
        if command.version is not None and command.version != state.latest.version:
            raise Rejected(
                f"version {command.version} is not the latest version of dataset "
                f"{state.name!r} ({state.latest.version}); freeze the latest one"
            )
        if frozen is not None:
            raise Rejected(
                f"the schema contract of dataset {state.name!r} is already frozen "
                f"(as of version {frozen}); unfreeze it first to freeze a later version"
            )
    elif frozen is None:
        raise Rejected(f"the schema contract of dataset {state.name!r} is not frozen")
    return SchemaContractSet(
        originator_id=state.id,
        originator_version=next_version(state.version),
        timestamp=meta.time,
        frozen=command.frozen,
        version=state.latest.version if command.frozen and state.latest else None,
    )


def _describe(version: DatasetVersion) -> str:
    if version.cause == "fix":
        return f"fix {version.fix_id} (version {version.version})"
    return f"{version.cause} version {version.version}"


def _rollback(command: RollbackFix, state: Dataset, meta: Meta) -> FixRolledBack:
    if state.deleted:
        raise Rejected(f"dataset {state.id} is deleted; its fixes cannot be rolled back")
    fixed = state.fixed_by(command.fix_id)
    if fixed is None or fixed.base_version is None:
        raise Rejected(f"dataset {state.name!r} has no version made by fix {command.fix_id}")
    if fixed.rolled_back_by is not None:
        raise Rejected(
            f"fix {command.fix_id} was already rolled back (version {fixed.rolled_back_by})"
        )
    above = state.standing_on(fixed.version)
    if above:
        raise Rejected(
            f"fix {command.fix_id} (version {fixed.version}) cannot be rolled back: "
            + ", ".join(_describe(v) for v in above)
            + " built on it; roll back later fixes first, newest first"
        )
    restored = state.versions[fixed.base_version - 1]
    return FixRolledBack(
        originator_id=state.id,
        originator_version=next_version(state.version),
        timestamp=meta.time,
        version=len(state.versions) + 1,
        fix_id=command.fix_id,
        fixed_version=fixed.version,
        restored_version=restored.version,
        object_uri=restored.object_uri,
        object_sha256=restored.object_sha256,
        rows=restored.rows,
        columns=restored.columns,
        size_bytes=restored.size_bytes,
        schema_json=restored.schema_json,
        engine=fixed.engine,
        label_column=fixed.label_column,
        weights=fixed.weights,
    )


def evolve(state: Dataset | None, event: Event) -> Dataset:
    if isinstance(event, DatasetRegistered):
        if state is not None:
            raise ValueError("DatasetRegistered on an existing dataset")
        return Dataset(id=event.originator_id, version=1, tenant=event.tenant, name=event.name)
    if state is None:
        raise ValueError(f"{type(event).__name__} before DatasetRegistered")
    check_follows(state.version, event)
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
            size_bytes=event.size_bytes,
            schema_json=event.schema_json,
            cause=event.cause or "upload",
        )
        return replace(state, version=event.originator_version, versions=(*state.versions, added))
    if isinstance(event, FixApplied | FixRolledBack):
        if event.version != len(state.versions) + 1:
            raise ValueError(f"dataset version {event.version} is not the next one")
        versions = list(state.versions)
        if isinstance(event, FixApplied):
            base, cause, source = event.base_version, "fix", ""
        else:
            base, cause = event.restored_version, "rollback"
            source = versions[event.restored_version - 1].source_sha256
            undone = versions[event.fixed_version - 1]
            versions[event.fixed_version - 1] = replace(undone, rolled_back_by=event.version)
        versions.append(
            DatasetVersion(
                event.version,
                event.object_uri,
                event.object_sha256,
                event.rows,
                event.columns,
                source,
                size_bytes=event.size_bytes,
                schema_json=event.schema_json,
                cause=cause,
                fix_id=event.fix_id,
                base_version=base,
                engine=event.engine,
                label_column=event.label_column,
                weights=event.weights,
            )
        )
        return replace(state, version=event.originator_version, versions=tuple(versions))
    if isinstance(event, DatasetDeleted):
        return replace(state, version=event.originator_version, deleted=True)
    if isinstance(event, SchemaContractSet):
        frozen = event.version if event.frozen else None
        return replace(state, version=event.originator_version, contract_version=frozen)
    raise ValueError(f"the dataset aggregate does not apply {type(event).__name__}")


def _decide(
    command: Command, state: Dataset | None, meta: Meta, _: Mapping[str, Any]
) -> list[Event]:
    return decide(command, state, meta)


AGGREGATE = AggregateSpec(
    name="dataset",
    namespace="datrix.dataset",
    commands=(
        RegisterDataset,
        AddDatasetVersion,
        AddFixedVersion,
        RollbackFix,
        DeleteDataset,
        SetSchemaContract,
    ),
    events=(
        DatasetRegistered,
        DatasetVersionAdded,
        FixApplied,
        FixRolledBack,
        DatasetDeleted,
        SchemaContractSet,
    ),
    id_field="dataset_id",
    decide=_decide,
    evolve=evolve,
)
