"""Benchmark: the HTTP API's two hot reads under 200 concurrent clients, against the same
queries straight from the read model (no HTTP) at the same concurrency, in the same run.

    .venv/bin/python tests/benchmarks/bench_api.py [--seconds S] [--clients C]
        [--workers 1,2] [--rows N]

* Setup: a temporary DATRIX_HOME; ``datrix scan`` of a generated CSV (``--rows``, default
  20,000 rows x 8 columns with nulls, outliers, case variants and duplicates, so the scan
  has issues); ``datrix keys create`` (one viewer key); ``datrix serve --workers W`` for
  each W of ``--workers`` on a free port, with ``DATRIX_API_RATE_LIMIT=0`` (the per-key
  limiter would otherwise answer most of 200 clients sharing one key with 429).
* Load (closed loop): C asyncio tasks in this process, each with its own connection of one
  ``httpx.AsyncClient`` (max C connections), each alternating ``GET
  /v1/quality/{id}/score`` and ``GET /v1/quality/{id}/issues`` (the default page of 20)
  for S seconds after a 2-second warm-up; every request timed from send to the full body.
  Any non-200 answer stops the run.
* Baseline (named "read model, no HTTP"): C threads in this process, each alternating the
  two queries exactly as the routes make them (``services.resolve_dataset`` +
  ``latest_scan`` + ``score_document`` + ``overall_dimensions``; ``resolve_dataset`` +
  ``latest_scan`` + ``scan_issues`` + the first page) on the same home, for S seconds.
* Service time (where the time goes): one client, sequential, for S/2 seconds each:
  ``/health/live`` (uvicorn + FastAPI, no key, no query), the score and issues routes, and
  in this process the key check (``KeyStore.authenticate``) and the two baseline queries.

Prints Markdown tables for docs/benchmarks.md ("HTTP API reads"); load average and CPU
count are printed with them, because other processes share the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from datrix.gateway import services
from datrix.gateway.api.keys import open_key_store
from datrix.runtime.bootstrap import bootstrap
from datrix.streams.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
DATRIX = str(Path(sys.executable).with_name("datrix"))
TENANT = "bench"
WARMUP_S = 2.0
TARGET = "p95 < 50 ms"


def log(msg: str) -> None:
    print(f"[bench_api {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass
class Result:
    name: str
    concurrency: int
    seconds: float
    latencies: list[float] = field(default_factory=list)  # seconds, every request

    def row(self, target: str = "") -> str:
        ms = [x * 1000 for x in self.latencies]
        if not ms:
            return f"| {self.name} | {self.concurrency} | no samples | | | | {target} |"
        rate = len(ms) / self.seconds
        return (
            f"| {self.name} | {self.concurrency} | {percentile(ms, 50):,.1f} | "
            f"{percentile(ms, 95):,.1f} | {percentile(ms, 99):,.1f} | {rate:,.0f} | {target} |"
        )


# -- setup ----------------------------------------------------------------------------------
def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATRIX_")}
    env.update(DATRIX_HOME=str(home), DATRIX_TENANT=TENANT, **extra)
    return env


def make_csv(path: Path, rows: int) -> Path:
    rng = random.Random(0)
    cities = ["Paris", "paris", "Berlin", " Berlin", "Rome", "ROME", "Madrid"]
    with path.open("w") as out:
        out.write("id,email,amount,age,city,score,joined,segment\n")
        for i in range(rows):
            email = "" if i % 6 == 0 else f"user{i}@example.com"
            amount = rng.gauss(100, 15) if i % 97 else 10_000.0
            age = "" if i % 11 == 0 else str(rng.randint(18, 90))
            city = cities[i % len(cities)]
            score = f"{rng.random():.3f}" if i % 13 else "n/a"
            joined = f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}"
            segment = rng.choice(["a", "b", "c"])
            out.write(
                f"{i % (rows - 50)},{email},{amount:.2f},{age},{city},{score},{joined},{segment}\n"
            )
    return path


def run(home: Path, *args: str) -> str:
    done = subprocess.run(
        [DATRIX, *args], capture_output=True, text=True, env=env_for(home), timeout=900
    )
    if done.returncode != 0:
        raise SystemExit(f"datrix {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Serve:
    def __init__(self, home: Path, workers: int) -> None:
        self.port = free_port()
        self.log = home / f"serve-{workers}.log"
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [DATRIX, "serve", "--port", str(self.port), "--workers", str(workers)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env_for(home, DATRIX_API_RATE_LIMIT="0", DATRIX_LOG_LEVEL="WARNING"),
                stdin=subprocess.DEVNULL,
            )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"datrix serve exited:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)  # not listening yet
        self.stop()
        raise SystemExit(f"datrix serve did not answer:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- load over HTTP -----------------------------------------------------------------------------
async def http_load(url: str, key: str, dataset: str, clients: int, seconds: float) -> Result:
    paths = [f"/v1/quality/{dataset}/score", f"/v1/quality/{dataset}/issues"]
    result = Result("", clients, seconds)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as c:
        start = time.perf_counter()
        measure_from = start + WARMUP_S
        stop_at = measure_from + seconds

        async def one(i: int) -> None:
            n = i
            while True:
                t0 = time.perf_counter()
                if t0 >= stop_at:
                    return
                response = await c.get(paths[n % 2])
                t1 = time.perf_counter()
                if response.status_code != 200:
                    raise SystemExit(f"{paths[n % 2]}: {response.status_code} {response.text}")
                if t0 >= measure_from:
                    result.latencies.append(t1 - t0)
                n += 1

        await asyncio.gather(*(one(i) for i in range(clients)))
    return result


def sequential_http(url: str, key: str, path: str, seconds: float, name: str) -> Result:
    result = Result(name, 1, seconds)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as c:
        c.get(path)
        stop_at = time.perf_counter() + seconds
        while (t0 := time.perf_counter()) < stop_at:
            response = c.get(path)
            result.latencies.append(time.perf_counter() - t0)
            if response.status_code != 200:
                raise SystemExit(f"{path}: {response.status_code} {response.text}")
    return result


# -- the baseline: the routes' queries, no HTTP -------------------------------------------------
def queries(home: Path, dataset: str) -> list[Callable[[], Any]]:
    runtime = bootstrap(load_settings(env_for(home), actor="bench")).runtime

    def score() -> Any:  # what GET /v1/quality/{id}/score asks the read model
        found = services.resolve_dataset(runtime, dataset)
        scan = services.latest_scan(runtime, found["id"])
        return (
            services.score_document(scan),
            services.overall_dimensions(scan["label_column"], scan["weights"]),
        )

    def issues() -> Any:  # what GET /v1/quality/{id}/issues asks (the first page of 20)
        found = services.resolve_dataset(runtime, dataset)
        scan = services.latest_scan(runtime, found["id"])
        _, docs = services.scan_issues(runtime, scan["id"])
        return docs[:20]

    return [score, issues]


def threaded(name: str, calls: list[Callable[[], Any]], clients: int, seconds: float) -> Result:
    result = Result(name, clients, seconds)
    lock = threading.Lock()
    start = time.perf_counter()
    measure_from, stop_at = start + WARMUP_S, start + WARMUP_S + seconds
    failures: list[BaseException] = []

    def one(i: int) -> None:
        n, mine = i, []
        try:
            while (t0 := time.perf_counter()) < stop_at:
                calls[n % len(calls)]()
                if t0 >= measure_from:
                    mine.append(time.perf_counter() - t0)
                n += 1
        except BaseException as exc:
            failures.append(exc)
        with lock:
            result.latencies += mine

    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise SystemExit(f"{name}: {failures[0]!r}")
    return result


def sequential(name: str, call: Callable[[], Any], seconds: float) -> Result:
    result = Result(name, 1, seconds)
    call()
    stop_at = time.perf_counter() + seconds
    while (t0 := time.perf_counter()) < stop_at:
        call()
        result.latencies.append(time.perf_counter() - t0)
    return result


# -- main ---------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured, per run")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--workers", default="1,2", help="datrix serve --workers, each")
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",") if w.strip()]
    command = "python tests/benchmarks/bench_api.py " + shlex.join(sys.argv[1:])
    load_before = os.getloadavg()[0]

    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        home = Path(tmp) / "home"
        data = make_csv(Path(tmp) / "orders.csv", args.rows)
        log(f"scanning {args.rows:,} rows (datrix scan)")
        run(home, "scan", str(data), "--name", "orders", "--format", "json")
        key = run(home, "keys", "create", "--tenant", TENANT, "--role", "viewer").split()[-1]
        calls = queries(home, "orders")
        issue_count = len(calls[1]())
        key_store = open_key_store(load_settings(env_for(home)))

        results: list[tuple[Result, str]] = []
        log(f"baseline: {args.clients} threads, {args.seconds:g} s")
        results.append(
            (threaded("read model, no HTTP (baseline)", calls, args.clients, args.seconds), "")
        )
        service: list[Result] = []
        for w in workers:
            server = Serve(home, w)
            try:
                log(f"HTTP, --workers {w}: {args.clients} clients, {args.seconds:g} s")
                measured = asyncio.run(
                    http_load(server.url, key, "orders", args.clients, args.seconds)
                )
                measured.name = f"HTTP, `datrix serve --workers {w}`"
                results.append((measured, TARGET))
                if w == workers[0]:
                    half = args.seconds / 2
                    log("service time, one client")
                    for path, name in (
                        ("/health/live", "HTTP /health/live (no key, no query)"),
                        ("/v1/quality/orders/score", "HTTP /v1/quality/{id}/score"),
                        ("/v1/quality/orders/issues", "HTTP /v1/quality/{id}/issues"),
                    ):
                        service.append(sequential_http(server.url, key, path, half, name))
            finally:
                server.stop()
        half = args.seconds / 2
        service.append(
            sequential(
                "key check (KeyStore.authenticate)", lambda: key_store.authenticate(key), half
            )
        )
        service.append(sequential("score query, no HTTP", calls[0], half))
        service.append(sequential("issues query, no HTTP", calls[1], half))

    print(f"Command: `{command}`\n")
    print(
        f"Machine: {os.cpu_count()} CPUs ({platform.machine()}), Python "
        f"{platform.python_version()}; load average {load_before:.2f} at start, "
        f"{os.getloadavg()[0]:.2f} at end; the dataset: {args.rows:,} rows, "
        f"{issue_count} issues (a page of 20)\n"
    )
    print("| run | concurrent clients | p50 (ms) | p95 (ms) | p99 (ms) | requests/s | target |")
    print("|---|---|---|---|---|---|---|")
    for result, target in results:
        print(result.row(target))
    print("\nService time (one client, sequential):\n")
    print("| run | concurrent clients | p50 (ms) | p95 (ms) | p99 (ms) | requests/s | target |")
    print("|---|---|---|---|---|---|---|")
    for result in service:
        print(result.row())


if __name__ == "__main__":
    main()
