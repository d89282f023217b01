"""``deploy/local/up registry`` on a state folder and port of its own (the suite's shared
registry is left alone): the export line, ``up`` twice reuses the running registry,
``status`` and ``down``, a registry started again serves the schema ids it gave before
(its H2 database is a file in the state, not memory), and what it creates is private even
under ``umask 000``."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import ROOT, exports

pytestmark = pytest.mark.integration

LOCAL = ROOT / "deploy" / "local"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def script(name: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", "-c", 'umask 000 && exec "$0" "$@"', str(LOCAL / name), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


def test_up_registry_is_idempotent_and_keeps_its_ids(tmp_path: Path) -> None:
    state = tmp_path / "state"
    port = free_port()
    env = {**os.environ, "DATRIX_STATE": str(state), "DATRIX_REGISTRY_PORT": str(port)}
    url = f"http://127.0.0.1:{port}/apis/ccompat/v7"
    try:
        up = script("up", "registry", env=env)
        assert up.returncode == 0, up.stderr[-3000:]
        assert exports(up.stdout) == {"DATRIX_SCHEMA_REGISTRY_URL": url}
        pid = (state / "registry" / "registry.pid").read_text().strip()

        schema = {"type": "record", "name": "T", "fields": [{"name": "a", "type": "long"}]}
        made = httpx.post(
            f"{url}/subjects/t-value/versions",
            json={"schema": json.dumps(schema)},
            timeout=10,
        )
        assert made.status_code == 200, made.text
        schema_id = made.json()["id"]

        again = script("up", "registry", env=env)
        assert again.returncode == 0, again.stderr[-3000:]
        assert "already running" in again.stderr
        assert (state / "registry" / "registry.pid").read_text().strip() == pid
        status = script("status", "registry", env=env)
        assert status.returncode == 0 and status.stdout.startswith("registry  up "), status

        down = script("down", "registry", env=env)
        assert down.returncode == 0, down.stderr
        status = script("status", "registry", env=env)
        assert status.returncode == 1 and status.stdout.startswith("registry  down "), status
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/subjects", timeout=5)

        # started again: the same id names the same schema
        up = script("up", "registry", env=env)
        assert up.returncode == 0, up.stderr[-3000:]
        served = httpx.get(f"{url}/schemas/ids/{schema_id}", timeout=10)
        assert served.status_code == 200, served.text
        assert json.loads(served.json()["schema"]) == schema
        assert httpx.get(f"{url}/subjects", timeout=10).json() == ["t-value"]

        created = {
            str(p.relative_to(state)): stat.S_IMODE(p.lstat().st_mode)
            for p in [state, *state.rglob("*")]
        }
        assert {"registry", "registry/data", "registry/registry.log"} <= created.keys()
        assert {p: f"{m:04o}" for p, m in created.items() if m & 0o077} == {}
    finally:
        script("down", "registry", env=env)
