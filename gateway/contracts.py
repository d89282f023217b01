"""The schema contract of a dataset (``datrix datasets contract NAME --freeze|--unfreeze``):
freezing records the latest version's schema on the dataset aggregate
(``SetSchemaContract`` -> ``SchemaContractSet``); every scan of a later version then
compares its schema with that version's, and any change is a critical ``schema_change``
issue (``jobs/quality/schema_change.py``). Unfreezing ends it: scans compare with the
drift baseline again, with the usual severities."""

from __future__ import annotations

import uuid
from typing import Any

from datrix.aggregates.dataset import SetSchemaContract
from datrix.gateway.services import Runtime, await_command, resolve_dataset


def set_contract(
    runtime: Runtime,
    dataset_ref: str,
    frozen: bool,
    *,
    actor: str | None = None,
    command_id: uuid.UUID | None = None,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Freeze (``frozen``) or unfreeze the schema contract of dataset ``dataset_ref``
    (name, id or unique id prefix) and wait until it is processed. Freezing names the
    latest version the read side knows, so a version added meanwhile is refused rather
    than frozen unseen. Returns ``dataset_id``, ``name``, ``frozen`` and ``version`` (the
    version frozen; None when unfrozen). NotFound for an unknown dataset, UserInputError
    with the reason when refused (already frozen, not frozen, no version, deleted)."""
    found = resolve_dataset(runtime, dataset_ref)
    submitted, version = submit_contract(runtime, found, frozen, actor=actor, command_id=command_id)
    status = await_command(runtime, submitted, timeout=timeout)
    status.raise_if_rejected()
    return {"dataset_id": found["id"], "name": found["name"], "frozen": frozen, "version": version}


def submit_contract(
    runtime: Runtime,
    found: dict[str, Any],
    frozen: bool,
    *,
    actor: str | None = None,
    command_id: uuid.UUID | None = None,
) -> tuple[uuid.UUID, int | None]:
    """Submit the contract change of dataset ``found`` (its read-model row, from
    ``resolve_dataset``) without waiting (the API's 202); returns the command id and the
    version a freeze names (None when unfreezing or without versions)."""
    dataset_id = uuid.UUID(str(found["id"]))
    latest = int(found.get("latest_version") or 0)
    version = latest if frozen and latest > 0 else None
    command = SetSchemaContract(dataset_id=dataset_id, frozen=frozen, version=version)
    submitted = runtime.submit(command, dataset_id, command_id=command_id, actor=actor)
    return submitted.id, version
