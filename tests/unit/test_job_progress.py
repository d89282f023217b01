"""Job-progress events: Avro round trip and the throttle (first, phase changes, ends)."""

from __future__ import annotations

import logging
import uuid

import pytest

from datrix.streams.job_progress import JobProgress, decode, encode, progress_events


def test_round_trip() -> None:
    update = JobProgress(
        job_id=str(uuid.uuid4()),
        scan_id=str(uuid.uuid4()),
        tenant="acme",
        seq=3,
        phase="profile",
        done=500,
        total=1000,
        at="2026-11-23T10:00:00+00:00",
    )
    assert decode(encode(update)) == update


def test_throttle_keeps_phase_changes_and_phase_ends() -> None:
    now = [0.0]
    sent: list[tuple[bytes, JobProgress]] = []
    job, scan = uuid.uuid4(), uuid.uuid4()
    publish = progress_events(
        lambda k, v: sent.append((k, decode(v))), job, scan, "acme", clock=lambda: now[0]
    )
    publish("read", 0, 100)  # first: sent
    for done in range(1, 100):
        now[0] += 0.004
        publish("read", done, 100)  # within 0.5 s: dropped
    publish("read", 100, 100)  # phase end: sent
    now[0] += 0.01
    publish("profile", 0, 0)  # phase change: sent
    now[0] += 0.6
    publish("profile", 5, 0)  # interval passed: sent
    assert [(u.phase, u.done, u.seq) for _, u in sent] == [
        ("read", 0, 1),
        ("read", 100, 2),
        ("profile", 0, 3),
        ("profile", 5, 4),
    ]
    assert {k for k, _ in sent} == {str(scan).encode()}
    assert {u.job_id for _, u in sent} == {str(job)}


def test_a_failing_sink_never_fails_the_job(caplog: pytest.LogCaptureFixture) -> None:
    tried: list[JobProgress] = []

    def broken(_k: bytes, v: bytes) -> None:
        tried.append(decode(v))
        raise OSError("broker gone")

    publish = progress_events(broken, uuid.uuid4(), uuid.uuid4(), "acme")
    with caplog.at_level(logging.WARNING, logger="datrix.progress"):
        publish("read", 1, 2)  # raises nothing
        publish("profile", 0, 0)  # and the next update is still tried
    assert [(u.phase, u.seq) for u in tried] == [("read", 1), ("profile", 2)]
    warnings = [r.getMessage() for r in caplog.records if r.name == "datrix.progress"]
    assert warnings == ["job progress not published: broker gone"] * 2
