"""Checkpoints name the key that signed them (``key_id``); a verifier holds the signing
key and the retired ones (``DATRIX_AUDIT_PREVIOUS_KEYS``), so the key can be rotated."""

from __future__ import annotations

from datrix.projections import audit
from datrix.streams.settings import Settings

OLD, NEW = b"o" * 32, b"n" * 32
ENTRIES = {(0, 3): ("3" * 64, "e3"), (0, 9): ("9" * 64, "e9")}


def checkpoint(key: bytes, seq: int) -> audit.Checkpoint:
    digest = ENTRIES[(0, seq)][0]
    return audit.Checkpoint(
        0, seq, digest, audit.key_id(key), audit.sign(key, 0, seq, digest), f"cp{seq}"
    )


def test_checkpoints_of_a_rotated_key_check_with_the_retired_key() -> None:
    both = [checkpoint(OLD, 3), checkpoint(NEW, 9)]  # rotated between the two
    settings = Settings(audit_key=NEW.decode(), audit_previous_keys=(OLD.decode(),))
    keys = audit.verification_keys(settings, NEW)
    assert set(keys) == {audit.key_id(OLD), audit.key_id(NEW)}
    assert audit.against_checkpoints(ENTRIES, both, keys) is None

    # without the retired key, the old checkpoint is named, with what to do
    broken = audit.against_checkpoints(ENTRIES, both, NEW)
    assert broken is not None and (broken.seq, broken.event_id) == ("3", "cp3")
    assert broken.reason == (
        f"checkpoint signature invalid: signed with key {audit.key_id(OLD)}, which this "
        "verifier does not hold (forged, or a retired key: add it to "
        "DATRIX_AUDIT_PREVIOUS_KEYS)"
    )


def test_a_forged_signature_under_a_known_key_id_is_named() -> None:
    forged = audit.Checkpoint(0, 3, "3" * 64, audit.key_id(NEW), "f" * 64, "cp3")
    broken = audit.against_checkpoints(ENTRIES, [forged], {audit.key_id(NEW): NEW})
    assert broken is not None
    assert broken.reason == f"checkpoint signature invalid (forged; key {audit.key_id(NEW)})"


def test_no_key_at_all_is_named() -> None:
    broken = audit.against_checkpoints(ENTRIES, [checkpoint(OLD, 3)], {})
    assert broken is not None and "no key to check them" in broken.reason
    assert audit.verification_keys(Settings(), None) == {}
