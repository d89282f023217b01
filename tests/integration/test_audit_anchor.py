"""The audit anchor end to end (embedded default, the CLI as a subprocess): whoever can
write ``readmodels.db`` but not the key or the event log cannot rewrite the audit trail
quietly — neither by editing a row and re-hashing every later one, nor by deleting the
tail (issue 12, item 6; docs/security.md "Audit anchor")."""

from __future__ import annotations

import json
import sqlite3
import stat
from pathlib import Path

import pytest

from datrix.projections import audit
from tests.integration.conftest import Cli

pytestmark = pytest.mark.integration

COLS = ", ".join((*audit.COLUMNS, "hash"))


def _scan(cli: Cli, tmp_path: Path, name: str, rows: int) -> None:
    path = tmp_path / f"{name}.csv"
    path.write_text("id,amount\n" + "".join(f"{i},{i * 3}\n" for i in range(rows)))
    run = cli("scan", str(path), "--name", name, "--format", "json")
    assert run.code == 0, run.stderr


def _rows(db: sqlite3.Connection) -> list[tuple[object, ...]]:
    return db.execute(f"SELECT {COLS} FROM audit_log ORDER BY chain, seq").fetchall()


def _rehash_from(db: sqlite3.Connection, seq: int) -> None:
    """The attack the chain alone misses: recompute every hash from ``seq`` on."""
    rows = _rows(db)
    prev = rows[seq - 2][-1] if seq > 1 else audit.GENESIS
    for row in rows[seq - 1 :]:
        values = [*row[: len(audit.COLUMNS) - 1], prev]
        digest = audit.entry_hash(values)
        db.execute(
            "UPDATE audit_log SET prev_hash = ?, hash = ? WHERE chain = ? AND seq = ?",
            (prev, digest, row[0], row[1]),
        )
        prev = digest
    db.commit()


def test_checkpoints_are_signed_into_the_log_and_replay_stays_identical(
    cli: Cli, tmp_path: Path
) -> None:
    _scan(cli, tmp_path, "sales", 50)
    key = cli.home / audit.KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600  # generated on first use, owner only
    verify = cli("audit", "verify")
    assert verify.code == 0, verify.stderr
    assert "match the event log" in verify.stdout and "signed checkpoint" in verify.stdout
    log = cli("audit", "log", "--format", "json").json()
    checkpoints = [e for e in log if e["event_type"] == audit.CHECKPOINT_TYPE]
    assert checkpoints and all(e["actor"] == audit.ANCHOR_ACTOR for e in checkpoints)
    # a command that changes nothing adds no checkpoint (the head is already anchored)
    assert cli("datasets").code == 0
    again = cli("audit", "log", "--format", "json").json()
    assert len(again) == len(log)
    replay = cli("replay", "--verify")
    assert replay.code == 0 and "identical" in replay.stdout, replay.stdout + replay.stderr


def test_an_edit_rehashed_forward_is_caught_and_named(cli: Cli, tmp_path: Path) -> None:
    _scan(cli, tmp_path, "sales", 50)
    db = sqlite3.connect(cli.home / "readmodels.db")
    db.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3")
    _rehash_from(db, 3)
    checked, broken = audit.verify(_rows(db))  # the chain alone now looks intact
    db.close()
    assert broken is None and checked >= 3
    tampered = cli("audit", "verify")
    assert tampered.code == 1
    assert "entry 3 " in tampered.stderr, tampered.stderr
    assert "does not match the event it was projected from" in tampered.stderr
    assert "Traceback" not in tampered.stderr
    # the next run refuses to sign the rewritten chain
    _scan(cli, tmp_path, "other", 20)
    assert cli("audit", "verify").code == 1


def test_a_deleted_tail_is_caught_even_after_the_sequence_is_reused(
    cli: Cli, tmp_path: Path
) -> None:
    _scan(cli, tmp_path, "sales", 50)
    db = sqlite3.connect(cli.home / "readmodels.db")
    (top,) = db.execute("SELECT max(seq) FROM audit_log").fetchone()
    db.execute("DELETE FROM audit_log WHERE seq > ?", (top - 4,))
    db.commit()
    assert audit.verify(_rows(db))[1] is None  # a shorter chain is still a valid chain
    truncated = cli("audit", "verify")
    assert truncated.code == 1
    assert f"entry {top - 3} " in truncated.stderr and "entry missing" in truncated.stderr
    # the projector then reuses the deleted sequence numbers for new events
    _scan(cli, tmp_path, "other", 20)
    (reused,) = db.execute("SELECT count(*) FROM audit_log WHERE seq = ?", (top - 3,)).fetchone()
    db.close()
    assert reused == 1
    after = cli("audit", "verify")
    assert after.code == 1 and f"entry {top - 3} " in after.stderr, after.stderr


def test_a_missing_key_or_a_forged_checkpoint_is_an_error(cli: Cli, tmp_path: Path) -> None:
    _scan(cli, tmp_path, "sales", 30)
    key = cli.home / audit.KEY_FILE
    real = key.read_text()
    key.chmod(0o644)
    loose = cli("audit", "verify")
    assert loose.code == 2 and "chmod 600" in loose.stderr, loose.stderr
    key.unlink()
    # embedded verify never makes a key: without it the checkpoints cannot be checked
    missing = cli("audit", "verify")
    assert missing.code == 1 and "no key to check them" in missing.stderr, missing.stderr
    # another key (an attacker's own) does not match the signatures in the log
    key.write_text("f" * 64)
    key.chmod(0o600)
    other = cli("audit", "verify")
    assert other.code == 1 and "signature invalid" in other.stderr, other.stderr
    key.write_text(real)
    assert cli("audit", "verify").code == 0


def test_the_signing_key_can_be_rotated(cli: Cli, tmp_path: Path) -> None:
    """Checkpoints carry the id of the key that signed them: after a rotation
    (DATRIX_AUDIT_KEY the new key, DATRIX_AUDIT_PREVIOUS_KEYS the old one) both the old
    and the new checkpoints check; without the old key the old ones are named."""
    import subprocess

    from tests.integration.conftest import DATRIX

    old, new = "a" * 64, "b" * 64

    def run(key: str, *args: str, previous: str = "") -> subprocess.CompletedProcess[str]:
        env = {**cli.env(), "DATRIX_AUDIT_KEY": key, "DATRIX_AUDIT_PREVIOUS_KEYS": previous}
        return subprocess.run(
            [DATRIX, *args], capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL
        )

    for name, key in (("before", old), ("after", new)):
        path = tmp_path / f"{name}.csv"
        path.write_text("id,amount\n" + "".join(f"{i},{i * 3}\n" for i in range(20)))
        scanned = run(key, "scan", str(path), "--name", name, "--format", "json")
        assert scanned.returncode == 0, scanned.stderr
    db = sqlite3.connect(cli.home / "readmodels.db")
    summaries = db.execute(
        "SELECT summary FROM audit_log WHERE event_type = ?", (audit.CHECKPOINT_TYPE,)
    ).fetchall()
    db.close()
    signed_by = {json.loads(s)["key_id"] for (s,) in summaries}
    assert signed_by == {audit.key_id(old.encode()), audit.key_id(new.encode())}
    rotated = run(new, "audit", "verify", previous=old)
    assert rotated.returncode == 0, rotated.stderr
    without_old = run(new, "audit", "verify")
    assert without_old.returncode == 1
    assert f"signed with key {audit.key_id(old.encode())}" in without_old.stderr
    assert "DATRIX_AUDIT_PREVIOUS_KEYS" in without_old.stderr
    # the old key alone does not check the new checkpoints either
    assert run(old, "audit", "verify").returncode == 1


def test_deleted_checkpoints_are_caught_by_the_witness_of_an_earlier_verify(
    cli: Cli, tmp_path: Path
) -> None:
    """Whoever can rewrite the event log and the table but holds no key can delete the
    checkpoints after the point they rewrite and re-project: what is left is consistent,
    so the anchor alone passes. A witness file an earlier verify kept elsewhere names the
    checkpoint that is gone."""
    _scan(cli, tmp_path, "sales", 30)
    witness = tmp_path / "auditor" / "witness.json"
    witness.parent.mkdir()
    first = cli("audit", "verify", "--witness", str(witness))
    assert first.code == 0, first.stderr
    assert f"witness {witness} updated" in " ".join(first.stdout.split())  # folded at 120
    assert stat.S_IMODE(witness.stat().st_mode) == 0o600
    seen = json.loads(witness.read_text())["checkpoints"]
    assert [c["chain"] for c in seen] == [0]
    again = cli("audit", "verify", "--witness", str(witness))  # nothing deleted: passes
    assert again.code == 0, again.stderr

    # the attack: the checkpoint events go from the log, the read models are projected
    # again from what is left (and the next command signs the new head)
    events = sqlite3.connect(cli.home / "events.db")
    deleted = events.execute(
        "DELETE FROM stored_events WHERE topic = ?", (audit.CHECKPOINT_TYPE,)
    ).rowcount
    events.commit()
    events.close()
    assert deleted >= 1
    for name in ("readmodels.db", "readmodels.db-wal", "readmodels.db-shm"):
        (cli.home / name).unlink(missing_ok=True)
    assert cli("datasets").code == 0
    assert cli("audit", "verify").code == 0  # without the witness: nothing to see
    caught = cli("audit", "verify", "--witness", str(witness))
    assert caught.code == 1
    assert f"entry {seen[0]['seq']} (event {seen[0]['event_id']})" in caught.stderr
    assert "checkpoint events were deleted" in caught.stderr, caught.stderr
    assert json.loads(witness.read_text())["checkpoints"] == seen  # not overwritten

    # a file that is no witness is one line, exit 2
    witness.write_text("{}")
    bad = cli("audit", "verify", "--witness", str(witness))
    assert bad.code == 2 and "is not a witness file" in bad.stderr, bad.stderr
