"""Benchmark: the server's memory while a large file is uploaded (``POST /v1/datasets``),
as a raw body and as a multipart form.

    .venv/bin/python tests/benchmarks/bench_upload.py [--mb 1000]

A generated CSV of ``--mb`` MB (default 1000: 1 GB) is sent to a real ``datrix serve``
(embedded default, a temporary DATRIX_HOME) by httpx, streamed from the file in 1 MiB
chunks, twice per body kind:

* receive only: the upload names the dataset ``bad<TAB>name``, which the use case refuses
  (422) after the body is on disk and before the file is read: the request is the body's
  transfer to disk and nothing else;
* the whole upload: the body to disk, then the validation and the conversion to Parquet
  (Polars, streaming), the object stored and the commands submitted (202).

Before each, the server's peak RSS is reset to its current RSS (``echo 5 >
/proc/PID/clear_refs``); after it, the peak (``VmHWM``) less the RSS before it is the
request's growth. Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.integration.api_server import create_key, start_server  # noqa: E402

CHUNK = 1 << 20  # what the client sends at a time
BAD_NAME = "bad\tname"  # refused after the body is received, before it is read


def status_kb(pid: int, field: str) -> int:
    """A ``kB`` field of /proc/PID/status (VmRSS, VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak(pid: int) -> None:
    """Set the process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def write_csv(path: Path, size: int) -> Path:
    """A CSV of about ``size`` bytes: 8 columns, a block of varied rows repeated."""
    header = b"id,name,email,city,amount,score,flag,note\n"
    rows = [
        f"{i},name{i % 997},user{i % 4093}@example.com,city{i % 61},{i % 10007}.{i % 100:02d},"
        f"{(i * 7) % 1000 / 10},{'yes' if i % 3 else 'no'},note number {i % 211}\n".encode()
        for i in range(20_000)
    ]
    block = b"".join(rows)
    with path.open("wb") as out:
        out.write(header)
        written = len(header)
        while written + len(block) <= size:
            out.write(block)
            written += len(block)
        rest = size - written
        cut = block[:rest]
        out.write(cut[: cut.rfind(b"\n") + 1])
    return path


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


@dataclass(frozen=True)
class Measured:
    body: str
    phase: str
    status: int
    rss_before_mb: float
    peak_mb: float
    seconds: float

    @property
    def growth_mb(self) -> float:
        return self.peak_mb - self.rss_before_mb


def upload(url: str, key: str, pid: int, path: Path, *, multipart: bool, name: str) -> Measured:
    """Upload ``path`` as dataset ``name`` and measure the server's peak RSS meanwhile."""
    reset_peak(pid)
    before = status_kb(pid, "VmRSS")
    started = time.monotonic()
    with httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=3600
    ) as client:
        if multipart:
            with path.open("rb") as f:  # httpx reads a file part a chunk at a time
                response = client.post(
                    "/v1/datasets", data={"name": name}, files={"file": (path.name, f)}
                )
        else:
            response = client.post(
                "/v1/datasets",
                params={"name": name, "filename": path.name},
                content=_chunks(path),
            )
    seconds = time.monotonic() - started
    return Measured(
        "multipart" if multipart else "raw",
        "receive only" if name == BAD_NAME else "whole upload",
        response.status_code,
        before / 1024,
        status_kb(pid, "VmHWM") / 1024,
        seconds,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=1000, help="size of the CSV in MB (1e6 B)")
    args = parser.parse_args()
    size = args.mb * 1_000_000
    with tempfile.TemporaryDirectory(prefix="datrix-bench-upload-") as tmp:
        root = Path(tmp)
        home = root / "home"
        key = create_key(home, "bench", "engineer")
        csv = write_csv(root / "big.csv", size)
        small = write_csv(root / "small.csv", 200_000)
        limit = str(max(2048, 2 * args.mb))
        results: list[Measured] = []
        idle: list[float] = []
        for multipart in (False, True):
            # a fresh server per body kind: nothing of the other's in its heap
            server = start_server(home, root / "serve.log", DATRIX_API_MAX_UPLOAD_MB=limit)
            try:
                pid = server.proc.pid
                idle.append(status_kb(pid, "VmRSS") / 1024)
                for name in (BAD_NAME, "warm-up"):  # first use of each code path
                    upload(server.url, key, pid, small, multipart=multipart, name=name)
                for name in (BAD_NAME, f"big-{'multipart' if multipart else 'raw'}"):
                    found = upload(server.url, key, pid, csv, multipart=multipart, name=name)
                    print(found, file=sys.stderr)
                    results.append(found)
            finally:
                server.stop()
    print(
        f"\n{platform.node()} ({os.cpu_count()} CPUs), Python {platform.python_version()}, "
        f"a {size / 1e9:.2f} GB CSV ({args.mb:,} MB), sent in {CHUNK >> 20} MiB chunks; "
        f"idle server RSS {min(idle):.0f}-{max(idle):.0f} MB\n"
    )
    print(
        "| body | phase | answer | RSS before (MB) | peak RSS (MB) | growth (MB) "
        "| growth / file size | time (s) |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for m in results:
        print(
            f"| {m.body} | {m.phase} | {m.status} | {m.rss_before_mb:.0f} | {m.peak_mb:.0f} "
            f"| {m.growth_mb:.1f} | {m.growth_mb * 2**20 / size:.2%} | {m.seconds:.1f} |"
        )


if __name__ == "__main__":
    main()
