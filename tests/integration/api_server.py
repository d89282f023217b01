"""A real ``datrix serve`` in a subprocess on a free port, and the CLI beside it on the
same ``DATRIX_HOME`` (keys, scans), for the HTTP API's tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

DATRIX = str(Path(sys.executable).with_name("datrix"))
PROBLEM = "application/problem+json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def datrix_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATRIX_")}
    env["DATRIX_HOME"] = str(home)
    env.update(extra)
    return env


def run_cli(home: Path, *args: str, tenant: str = "default") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DATRIX, *args],
        capture_output=True,
        text=True,
        env=datrix_env(home, DATRIX_TENANT=tenant),
        timeout=600,
        stdin=subprocess.DEVNULL,
    )


def create_key(home: Path, tenant: str, role: str) -> str:
    """``datrix keys create``: the key is the last token of stdout."""
    done = run_cli(home, "keys", "create", "--tenant", tenant, "--role", role)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()[-1]


def scan(home: Path, path: Path, name: str, tenant: str) -> dict[str, Any]:
    import json

    done = run_cli(home, "scan", str(path), "--name", name, "--format", "json", tenant=tenant)
    assert done.returncode == 0, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


ROLES_OF_THE_TESTS = [
    ("acme", "admin"),
    ("acme", "engineer"),
    ("acme", "scientist"),
    ("acme", "viewer"),
    ("acme", "annotator"),
    ("globex", "admin"),
]


def role_keys(home: Path) -> dict[str, str]:
    """A key of every role for tenant acme and an admin key for globex, named
    ``<tenant>-<role>``."""
    return {f"{t}-{r}": create_key(home, t, r) for t, r in ROLES_OF_THE_TESTS}


def small_csv(path: Path, rows: int) -> Path:
    """``rows`` rows of id, email (every fourth empty), amount."""
    lines = ["id,email,amount"]
    lines += [f"{i},{'' if i % 4 == 0 else f'u{i}@example.com'},{i % 9}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Server:
    home: Path
    port: int
    proc: subprocess.Popen[str]
    log: Path
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def stop(self) -> str:
        """Stop the server (SIGTERM, then SIGKILL) and return what it wrote."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.log.read_text()


def start_server(home: Path, log: Path, *args: str, tenant: str = "default", **env: str) -> Server:
    """``datrix serve`` on a free port; returns once /health/live answers (fails the test
    with the server's output when the process ends first or it never answers)."""
    port = free_port()
    out = log.open("w")
    proc = subprocess.Popen(
        [DATRIX, "serve", "--port", str(port), *args],
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
        env=datrix_env(home, DATRIX_TENANT=tenant, **env),
        stdin=subprocess.DEVNULL,
    )
    out.close()
    server = Server(home, port, proc, log)
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=server.url, timeout=2) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"datrix serve exited {proc.returncode}:\n{log.read_text()}")
            try:
                if client.get("/health/live").status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            time.sleep(0.1)  # the port is not listening yet: poll again
    server.stop()
    raise AssertionError(f"datrix serve did not answer in 60 s:\n{log.read_text()}")


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """``response`` is an RFC 9457 problem with ``status``; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].startswith("https://") and body["title"]
    assert body["instance"] == response.request.url.path
    assert "Traceback" not in response.text
    return body
