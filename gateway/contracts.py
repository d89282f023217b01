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
    dataset_id = uuid.UUID(str(found["id"]))
    latest = int(found.get("latest_version") or 0)
    version = latest if frozen and latest > 0 else None
    command = SetSchemaContract(dataset_id=dataset_id, frozen=frozen, version=version)
    submitted = runtime.submit(command, dataset_id, command_id=command_id, actor=actor)
    status = await_command(runtime, submitted.id, timeout=timeout)
    status.raise_if_rejected()
    return {
        "dataset_id": str(dataset_id),
        "name": found["name"],
        "frozen": frozen,
        "version": version,
    }
