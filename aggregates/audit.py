"""The audit anchor: signed checkpoints of the audit chains' heads, kept in the event log.

The audit trail is a read model (``projections/audit.py``): a hash chain per log partition
in the read-model database. Whoever can write that database can edit a row and re-hash
every row after it, or delete the tail. A checkpoint records a chain's head
``(seq, hash)`` with an HMAC-SHA256 signature made with a key the database does not hold
(``DATRIX_AUDIT_KEY``), in the event log, outside the table: ``datrix audit verify``
checks the table against every checkpoint. One aggregate per chain
(``audit_chain_id(chain)``); a checkpoint at or below the chain's last one adds nothing,
so a replayed or redelivered checkpoint (its command id is deterministic too) is harmless.
The signature itself is made and checked outside the aggregate (it needs the key)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID, uuid5

from datrix.aggregates.common import AggregateSpec, Command, Event, Meta, Rejected, next_version

# Fixed for ever: changing it would give existing chains other aggregate ids.
AUDIT_NAMESPACE = UUID("0f6a1c55-8d3e-4b7a-a1f2-6e5d4c3b2a19")
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class RecordAuditCheckpoint(Command):
    chain_id: UUID  # audit_chain_id(chain)
    chain: int
    seq: int
    hash: str
    key_id: str
    signature: str


class AuditCheckpoint(Event):
    chain: int
    seq: int
    hash: str
    key_id: str
    signature: str


def audit_chain_id(chain: int) -> UUID:
    return uuid5(AUDIT_NAMESPACE, f"audit-chain/{chain}")


def checkpoint_command_id(chain: int, seq: int, digest: str) -> UUID:
    """The same head always gives the same command id: a resubmitted checkpoint is
    dropped by the command log (embedded) or the outcome stream (Kafka)."""
    return uuid5(AUDIT_NAMESPACE, f"checkpoint/{chain}/{seq}/{digest}")


@dataclass(frozen=True)
class AuditChain:
    id: UUID
    version: int
    last_seq: int = 0


def decide(
    command: Command, state: AuditChain | None, meta: Meta, _: Mapping[str, Any]
) -> list[Event]:
    if not isinstance(command, RecordAuditCheckpoint):
        raise Rejected(f"the audit aggregate does not handle {type(command).__name__}")
    if command.chain < 0 or command.chain_id != audit_chain_id(command.chain):
        raise Rejected(f"audit chain {command.chain} does not have the id {command.chain_id}")
    if command.seq < 1:
        raise Rejected("an audit checkpoint names an entry from seq 1")
    if not _HEX64.fullmatch(command.hash) or not _HEX64.fullmatch(command.signature):
        raise Rejected("an audit checkpoint's hash and signature are 64 lowercase hex digits")
    if state is not None and command.seq <= state.last_seq:
        return []  # already anchored at or past this entry
    return [
        AuditCheckpoint(
            originator_id=command.chain_id,
            originator_version=next_version(state.version if state else None),
            timestamp=meta.time,
            chain=command.chain,
            seq=command.seq,
            hash=command.hash,
            key_id=command.key_id,
            signature=command.signature,
        )
    ]


def evolve(state: AuditChain | None, event: Event) -> AuditChain:
    if isinstance(event, AuditCheckpoint):
        base = state or AuditChain(event.originator_id, 0)
        return replace(base, version=event.originator_version, last_seq=event.seq)
    raise ValueError(f"the audit aggregate does not apply {type(event).__name__}")


AGGREGATE = AggregateSpec(
    name="audit",
    namespace="datrix.audit",
    commands=(RecordAuditCheckpoint,),
    events=(AuditCheckpoint,),
    id_field="chain_id",
    decide=decide,
    evolve=evolve,
)
