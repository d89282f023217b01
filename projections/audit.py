"""The hash-chained audit trail: each row carries the hash of the previous one.

The hash covers every column of the row except the hash itself, in a canonical JSON form,
so altering any stored field — or deleting or reordering rows — breaks the chain at the
first affected entry, which ``verify`` names.

The chain alone cannot catch whoever rewrites the table consistently (edits a row and
re-hashes every later one, or deletes the tail). So it is anchored outside the table:

- ``against_events`` compares the table with the audit trail rebuilt from the event log
  (every event has exactly one entry, with the content the projector gives it);
- each chain's head ``(seq, hash)`` is signed with HMAC-SHA256 under a key the database
  does not hold (``anchor_key``: ``DATRIX_AUDIT_KEY``, or the embedded default's
  ``DATRIX_HOME/audit.key``) and recorded in the event log as an ``AuditCheckpoint``
  event (``datrix.aggregates.audit``); ``against_checkpoints`` checks the table against
  every checkpoint in the log.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datrix.streams.settings import Settings

GENESIS = "0" * 64
COLUMNS = (
    "chain",
    "seq",
    "event_id",
    "tenant",
    "event_type",
    "subject",
    "dataset_id",
    "actor",
    "occurred_at",
    "causation_id",
    "correlation_id",
    "summary",
    "prev_hash",
)


def entry_hash(values: Sequence[Any]) -> str:
    canonical = json.dumps(list(values), separators=(",", ":"), sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Break:
    seq: str  # "17", or "chain/seq" for partitioned logs
    event_id: str
    reason: str


def verify(rows: Iterable[Sequence[Any]]) -> tuple[int, Break | None]:
    """Walk rows (COLUMNS + hash, ordered by chain, seq). Return (entries checked, first
    break). Each chain starts at seq 1 from the genesis hash."""
    prev = GENESIS
    chain: int | None = None
    expected_seq = 1
    count = 0
    for row in rows:
        values, stored_hash = list(row[: len(COLUMNS)]), row[len(COLUMNS)]
        row_chain, seq, event_id, prev_hash = (
            int(values[0]),
            int(values[1]),
            str(values[2]),
            values[-1],
        )
        if row_chain != chain:
            chain, prev, expected_seq = row_chain, GENESIS, 1
        where = f"{seq}" if row_chain == 0 else f"{row_chain}/{seq}"
        if seq != expected_seq:
            return count, Break(where, event_id, f"sequence gap: expected {expected_seq}")
        if prev_hash != prev:
            return count, Break(where, event_id, "prev_hash does not match the previous entry")
        if entry_hash(values) != stored_hash:
            return count, Break(where, event_id, "entry content does not match its hash")
        prev = stored_hash
        expected_seq += 1
        count += 1
    return count, None


# -- the anchor ---------------------------------------------------------------------------
KEY_FILE = "audit.key"
ANCHOR_ACTOR = "datrix:audit-anchor"  # the actor of checkpoint commands
CHECKPOINT_TYPE = "datrix.audit.AuditCheckpoint"
# A checkpoint adds two entries of its own (its AuditCheckpoint and its CommandAccepted):
# after a checkpoint at S, a head at S + 2 or below holds nothing new to anchor.
CHECKPOINT_FOOTPRINT = 2


class AnchorKeyError(Exception):
    """The key file of the embedded default cannot be used (one line, for the user)."""


def anchor_key(settings: Settings, create: bool = False) -> bytes | None:
    """The key that signs checkpoints: ``DATRIX_AUDIT_KEY``; else, in the embedded default,
    ``DATRIX_HOME/audit.key`` (made with mode 0600 when ``create``); else None (Kafka mode
    without a key: not anchored)."""
    if settings.audit_key:
        return settings.audit_key.encode()
    if not settings.embedded:
        return None
    path = settings.home / KEY_FILE
    if create and not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first: read theirs
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32) + "\n")
                f.flush()
                os.fsync(f.fileno())
    try:
        mode = path.stat().st_mode & 0o777
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AnchorKeyError(f"cannot read the audit key {path}: {exc.strerror}") from None
    if mode & 0o077:
        raise AnchorKeyError(
            f"the audit key {path} is readable by others (mode {mode:o}); chmod 600 it"
        )
    if len(text) < 32:
        raise AnchorKeyError(f"the audit key {path} is shorter than 32 characters")
    return text.encode()


def verification_keys(settings: Settings, current: bytes | None) -> dict[str, bytes]:
    """The keys a verifier checks checkpoints with, by key id: the signing key
    (``current``, from ``anchor_key``) and the retired ones
    (``DATRIX_AUDIT_PREVIOUS_KEYS``), so checkpoints signed before a rotation still check."""
    keys = [k.encode() for k in settings.audit_previous_keys]
    if current is not None:
        keys.insert(0, current)
    return {key_id(k): k for k in keys}


def key_id(key: bytes) -> str:
    """Names a key without revealing it (which key signed a checkpoint)."""
    return hashlib.sha256(b"datrix-audit-key-id\n" + key).hexdigest()[:16]


def sign(key: bytes, chain: int, seq: int, digest: str) -> str:
    message = f"datrix-audit-anchor/1\n{chain}\n{seq}\n{digest}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Checkpoint:
    """One ``AuditCheckpoint`` event as read from the event log."""

    chain: int
    seq: int
    hash: str
    key_id: str
    signature: str
    event_id: str


def head(rows: Sequence[Sequence[Any]]) -> tuple[int, str] | None:
    return (int(rows[0][0]), str(rows[0][1])) if rows else None


def checkpoint_due(
    query: Any, chain: int, slack: int = CHECKPOINT_FOOTPRINT
) -> tuple[int, str] | None:
    """The chain's head ``(seq, hash)`` when it is more than ``slack`` entries past its last
    checkpoint (as projected into the table), else None. Refuses (``AnchorMismatch``) when
    the entry the last checkpoint names no longer has the checkpointed hash: a rewritten
    chain is never signed. ``query(sql, params)`` reads the read store."""
    top = head(
        query("SELECT seq, hash FROM audit_log WHERE chain = ? ORDER BY seq DESC LIMIT 1", (chain,))
    )
    if top is None:
        return None
    last: tuple[int, str] | None = None
    for (summary,) in query(
        "SELECT summary FROM audit_log WHERE event_type = ?", (CHECKPOINT_TYPE,)
    ):
        record = json.loads(summary)
        if int(record["chain"]) == chain and (last is None or int(record["seq"]) > last[0]):
            last = (int(record["seq"]), str(record["hash"]))
    if last is not None:
        at = query("SELECT hash FROM audit_log WHERE chain = ? AND seq = ?", (chain, last[0]))
        if not at or str(at[0][0]) != last[1]:
            raise AnchorMismatch(
                f"audit chain {chain} no longer matches its checkpoint at entry {last[0]}; "
                "not signing it (run datrix audit verify)"
            )
    return top if top[0] > (last[0] if last else 0) + slack else None


class AnchorMismatch(Exception):
    """The table no longer holds what the last checkpoint signed."""


def _where(chain: int, seq: int) -> str:
    return f"{seq}" if chain == 0 else f"{chain}/{seq}"


def against_checkpoints(
    entries: Mapping[tuple[int, int], tuple[str, str]],
    checkpoints: Sequence[Checkpoint],
    keys: Mapping[str, bytes] | bytes | None,
) -> Break | None:
    """Check the table's entries (``(chain, seq) -> (hash, event id)``) against every
    checkpoint in the log: each must be signed with the key its key id names (``keys``:
    by key id, ``verification_keys``; one key alone is the only one) and name an entry
    that still has the signed hash. The first failing checkpoint (lowest seq) is the
    break."""
    if isinstance(keys, bytes):
        keys = {key_id(keys): keys}
    keys = keys or {}
    for cp in sorted(checkpoints, key=lambda c: (c.seq, c.chain)):
        where = _where(cp.chain, cp.seq)
        if not keys:
            return Break(
                where,
                cp.event_id,
                "the log holds audit checkpoints but no key to check them: set DATRIX_AUDIT_KEY",
            )
        key = keys.get(cp.key_id)
        if key is None:
            return Break(
                where,
                cp.event_id,
                f"checkpoint signature invalid: signed with key {cp.key_id}, which this "
                "verifier does not hold (forged, or a retired key: add it to "
                "DATRIX_AUDIT_PREVIOUS_KEYS)",
            )
        if not hmac.compare_digest(cp.signature, sign(key, cp.chain, cp.seq, cp.hash)):
            return Break(
                where, cp.event_id, f"checkpoint signature invalid (forged; key {cp.key_id})"
            )
        found = entries.get((cp.chain, cp.seq))
        if found is None:
            return Break(
                where, cp.event_id, "entry missing: the chain was truncated below a checkpoint"
            )
        if found[0] != cp.hash:
            return Break(
                where, found[1], "entry does not match the signed checkpoint (chain rewritten)"
            )
    return None


def against_events(
    live: Sequence[Sequence[Any]], rebuilt: Sequence[Sequence[Any]]
) -> tuple[int, Break | None]:
    """Compare the table's ``(chain, seq, event_id, hash)`` rows with those rebuilt from
    the event log (both ordered by chain, seq): every event has exactly one entry, with
    the same content. Return (entries matched, the first difference)."""
    have = {(int(r[0]), int(r[1])): (str(r[2]), str(r[3])) for r in live}
    want = {(int(r[0]), int(r[1])): (str(r[2]), str(r[3])) for r in rebuilt}
    matched = 0
    for chain, seq in sorted(have.keys() | want.keys()):
        where = _where(chain, seq)
        got, expected = have.get((chain, seq)), want.get((chain, seq))
        if got is None and expected is not None:
            return matched, Break(
                where, expected[0], "entry missing: the event log has an event with no entry"
            )
        if expected is None and got is not None:
            return matched, Break(where, got[0], "entry has no event in the log")
        if got != expected and got is not None and expected is not None:
            reason = (
                "entry does not match the event it was projected from"
                if got[0] == expected[0]
                else f"entry is for another event than the log's ({expected[0]})"
            )
            return matched, Break(where, got[0], reason)
        matched += 1
    return matched, None


# -- the witness: what an earlier verify saw ------------------------------------------------
class WitnessError(Exception):
    """A witness file that cannot be read or written (one line, for the user)."""


def latest_per_chain(checkpoints: Sequence[Checkpoint]) -> dict[int, Checkpoint]:
    latest: dict[int, Checkpoint] = {}
    for cp in checkpoints:
        if cp.chain not in latest or cp.seq > latest[cp.chain].seq:
            latest[cp.chain] = cp
    return latest


def read_witness(path: Path) -> dict[int, Checkpoint]:
    """The newest checkpoint of each chain an earlier ``audit verify --witness`` saw
    (none when the file does not exist yet)."""
    try:
        doc = json.loads(path.read_text())
        return {
            int(c["chain"]): Checkpoint(
                int(c["chain"]),
                int(c["seq"]),
                str(c["hash"]),
                str(c["key_id"]),
                str(c["signature"]),
                str(c["event_id"]),
            )
            for c in doc["checkpoints"]
        }
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise WitnessError(f"cannot read the witness file {path}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError):
        raise WitnessError(
            f"{path} is not a witness file written by datrix audit verify --witness"
        ) from None


def write_witness(path: Path, checkpoints: Sequence[Checkpoint]) -> None:
    """Record the newest checkpoint of each chain (mode 0600, replaced atomically)."""
    doc = {
        "about": "datrix audit verify --witness: the newest checkpoint of each audit chain "
        "seen in the event log; a later verify fails if one is gone",
        "checkpoints": [
            {
                "chain": cp.chain,
                "seq": cp.seq,
                "hash": cp.hash,
                "key_id": cp.key_id,
                "signature": cp.signature,
                "event_id": cp.event_id,
            }
            for _, cp in sorted(latest_per_chain(checkpoints).items())
        ],
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise WitnessError(f"cannot write the witness file {path}: {exc.strerror}") from None


def against_witness(
    witnessed: Mapping[int, Checkpoint], checkpoints: Sequence[Checkpoint]
) -> Break | None:
    """Every checkpoint an earlier verify saw must still be in the log: deleting
    checkpoint events (to hide a rewrite after them) is otherwise invisible, since what is
    left is consistent."""
    present = {(cp.chain, cp.seq, cp.signature) for cp in checkpoints}
    for chain, cp in sorted(witnessed.items()):
        if (chain, cp.seq, cp.signature) not in present:
            return Break(
                _where(chain, cp.seq),
                cp.event_id,
                "checkpoint missing from the event log, though an earlier verify saw it "
                "(the witness file): checkpoint events were deleted",
            )
    return None
