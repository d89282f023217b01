"""deploy/local keeps the services' data private (issue 12, item 10): the state folders of
Kafka, PostgreSQL, Redis and S3Proxy are their owner's alone, and what a fresh ``up``
creates is too, even when it is started with ``umask 000``."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, admin_url

pytestmark = pytest.mark.integration

UP, DOWN = str(ROOT / "deploy" / "local" / "up"), str(ROOT / "deploy" / "local" / "down")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def running_state(services: dict[str, str]) -> Path:
    """The state folder of the services the suite runs against: where the running
    PostgreSQL keeps its data (``<state>/postgres/data``). On a fresh machine that is this
    HOME's (``DATRIX_STATE``, default ``~/.cache/datrix/state``); where ``up`` reused
    services that another state folder started (another HOME on the same machine), it is
    theirs, which is what must be private."""
    import psycopg

    # only a superuser may see it: the administrator's role, not Datrix's run-time ones
    with psycopg.connect(admin_url(services)) as db:
        row = db.execute("SHOW data_directory").fetchone()
    assert row is not None
    return Path(row[0]).parent.parent


def test_service_state_folders_are_closed_to_others(services: dict[str, str]) -> None:
    state = running_state(services)
    # the state folder: never readable or writable by others (as root, others keep x:
    # the postgres user traverses it to its data)
    assert mode(state) & 0o066 == 0, f"{state} is {mode(state):04o}"
    folders = ["kafka", "postgres", "postgres/data", "redis", "s3proxy"]
    found = {name: mode(state / name) for name in folders}
    assert found == dict.fromkeys(folders, 0o700)


def test_fresh_state_under_umask_000_is_private(tmp_path: Path) -> None:
    with socket.socket() as s:  # a free port for a Redis of our own
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    state = tmp_path / "state"
    env = {**os.environ, "DATRIX_STATE": str(state), "DATRIX_REDIS_PORT": str(port)}
    try:
        up = subprocess.run(
            ["sh", "-c", f'umask 000 && exec "{UP}" redis'],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        assert up.returncode == 0, up.stderr
        assert f"export DATRIX_REDIS_URL=redis://127.0.0.1:{port}/0" in up.stdout
        created = {str(p.relative_to(state)): mode(p) for p in [state, *state.rglob("*")]}
        assert {"redis", "redis/redis.log", "redis/redis.pid", ".lock"} <= created.keys()
        assert {p: f"{m:04o}" for p, m in created.items() if m & 0o077} == {}
    finally:
        subprocess.run(
            [DOWN, "redis"], capture_output=True, env=env, timeout=60, stdin=subprocess.DEVNULL
        )
