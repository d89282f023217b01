"""Benchmark: the HTTP API's two hot reads under 200 concurrent clients, against the same
queries straight from the read model (no HTTP) at the same concurrency, in the same run.

    .venv/bin/python tests/benchmarks/bench_api.py [--seconds S] [--clients C]
        [--workers 1,2] [--rows N] [--client raw|httpx]

* Setup: a temporary DATRIX_HOME; ``datrix scan`` of a generated CSV (``--rows``, default
  20,000 rows x 8 columns with nulls, outliers, case variants and duplicates, so the scan
  has issues); ``datrix keys create`` (one viewer key); ``datrix serve --workers W`` for
  each W of ``--workers`` on a free port, with ``DATRIX_API_RATE_LIMIT=0`` (the per-key
  limiter would otherwise answer most of 200 clients sharing one key with 429).
* Load (closed loop): C asyncio tasks in this process, each with its own keep-alive
  connection (``--client raw``, the default: HTTP/1.1 on asyncio streams, because
  ``httpx.AsyncClient`` itself kept more than one of the two CPUs busy, which starved the
  server; ``--client httpx``: one ``httpx.AsyncClient``), each alternating ``GET
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
count are printed with them, because other processes share the machine, and for each
concurrent run the CPUs it kept busy (CPU seconds per wall second: the server's process
tree and this process, which runs the clients or the baseline's threads).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
import psutil

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
    cpu: str = ""  # CPU seconds used during the run, by whom

    def row(self, target: str = "") -> str:
        ms = [x * 1000 for x in self.latencies]
        if not ms:
            return f"| {self.name} | {self.concurrency} | no samples | | | | | {target} |"
        rate = len(ms) / self.seconds
        return (
            f"| {self.name} | {self.concurrency} | {percentile(ms, 50):,.1f} | "
            f"{percentile(ms, 95):,.1f} | {percentile(ms, 99):,.1f} | {rate:,.0f} | "
            f"{self.cpu} | {target} |"
        )


def cpu_seconds(proc: psutil.Process | None = None) -> float:
    """CPU seconds (user + system) of ``proc`` and its children (uvicorn's workers), or
    of this process alone (whose children are the servers)."""
    procs = [proc, *proc.children(recursive=True)] if proc else [psutil.Process()]
    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


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
async def http_load(
    url: str, key: str, dataset: str, clients: int, seconds: float, client: str
) -> Result:
    """``clients`` closed-loop clients for ``seconds`` (after the warm-up); ``client``:
    ``raw`` (a keep-alive HTTP/1.1 connection each on asyncio streams: the cheapest
    client Python has, so that the load generator, which shares the machine, leaves the
    CPUs to the server) or ``httpx`` (one ``httpx.AsyncClient``, a connection each)."""
    paths = [f"/v1/quality/{dataset}/score", f"/v1/quality/{dataset}/issues"]
    result = Result("", clients, seconds)
    start = time.perf_counter()
    measure_from = start + WARMUP_S
    stop_at = measure_from + seconds

    def record(t0: float, path: str, status: int, body: bytes) -> None:
        if status != 200:
            raise SystemExit(f"{path}: {status} {body[:500]!r}")
        if t0 >= measure_from:
            result.latencies.append(time.perf_counter() - t0)

    if client == "httpx":
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(
            base_url=url, headers=headers, limits=limits, timeout=120
        ) as c:

            async def one_httpx(i: int) -> None:
                n = i
                while (t0 := time.perf_counter()) < stop_at:
                    response = await c.get(paths[n % 2])
                    record(t0, paths[n % 2], response.status_code, response.content)
                    n += 1

            await asyncio.gather(*(one_httpx(i) for i in range(clients)))
        return result

    host, port = url.removeprefix("http://").split(":")
    requests = [
        (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {key}\r\nAccept: application/json\r\n\r\n"
        ).encode()
        for path in paths
    ]

    async def one_raw(i: int) -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        n = i
        try:
            while (t0 := time.perf_counter()) < stop_at:
                writer.write(requests[n % 2])
                status = int((await reader.readline()).split()[1])
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length)
                record(t0, paths[n % 2], status, body)
                n += 1
        finally:
            writer.close()

    await asyncio.gather(*(one_raw(i) for i in range(clients)))
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


# -- where one request's time goes -------------------------------------------------------------
PARTS = [  # (label, module path fragment, function name): cumulative time under each
    ("key check (KeyStore.authenticate)", "api/keys.py", "authenticate"),
    ("services.resolve_dataset (both)", "gateway/services.py", "resolve_dataset"),
    ("services.latest_scan (both)", "gateway/services.py", "latest_scan"),
    ("services.scan_issues (issues only)", "gateway/services.py", "scan_issues"),
]
WHOLE = ("fastapi/applications.py", "__call__")


def profile(home: Path, key: str, dataset: str, count: int) -> list[str]:
    """``count`` requests (half score, half issues) through the API in this process over
    ``httpx.ASGITransport`` under cProfile, FastAPI's thread hops made inline so that one
    thread does it all (no socket, no uvicorn: the HTTP parsing is not in it)."""
    import cProfile
    import pstats

    import fastapi.dependencies.utils
    import fastapi.routing

    from datrix.gateway.api import create_app

    async def inline(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    fastapi.routing.run_in_threadpool = inline  # type: ignore[assignment]
    fastapi.dependencies.utils.run_in_threadpool = inline  # type: ignore[assignment]
    app = create_app(load_settings(env_for(home, DATRIX_API_RATE_LIMIT="0")))
    paths = [f"/v1/quality/{dataset}/score", f"/v1/quality/{dataset}/issues"]

    async def requests(n: int) -> None:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://bench",
            headers={"Authorization": f"Bearer {key}"},
        ) as c:
            for i in range(n):
                response = await c.get(paths[i % 2])
                if response.status_code != 200:
                    raise SystemExit(f"{paths[i % 2]}: {response.status_code} {response.text}")

    asyncio.run(requests(50))  # warm: the tenant's runtime, imports, caches
    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.enable()
    asyncio.run(requests(count))
    profiler.disable()
    wall = time.perf_counter() - t0
    stats: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    lines = [
        f"Profile: {count} requests (half score, half issues) in one thread, "
        f"{wall / count * 1000:.2f} ms each under cProfile (which slows Python code down)\n",
        "| part | ms per request (cumulative, profiled) |",
        "|---|---|",
    ]

    def under(where: str, name: str) -> float:
        return sum(
            value[3]
            for (file, _, func), value in stats.items()
            if func == name and where in file.replace("\\", "/")
        )

    whole = under(*WHOLE)
    parts = [(label, under(where, name)) for label, where, name in PARTS]
    sqlite = sum(  # time inside SQLite's own calls (C), wherever they are made from
        value[2]
        for (_, _, func), value in stats.items()
        if "sqlite3.Connection" in func or "sqlite3.Cursor" in func or "sqlite3.connect" in func
    )
    for label, seconds in parts:
        lines.append(f"| {label} | {seconds / count * 1000:.2f} |")
    rest = whole - sum(seconds for _, seconds in parts)
    lines.append(
        f"| the rest: FastAPI/Starlette (routing, dependencies, validation, JSON), "
        f"middleware | {rest / count * 1000:.2f} |"
    )
    lines.append(
        f"| **the API in all** (no socket, no HTTP parsing) | {whole / count * 1000:.2f} |"
    )
    lines.append(f"| of which inside SQLite calls | {sqlite / count * 1000:.2f} |")
    return lines


# -- main ---------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured, per run")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--workers", default="1,2", help="datrix serve --workers, each")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument(
        "--client", choices=("raw", "httpx"), default="raw", help="the load generator"
    )
    parser.add_argument("--profile", type=int, default=1000, help="requests profiled (0: none)")
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
        mine, t0 = cpu_seconds(), time.perf_counter()
        baseline = threaded("read model, no HTTP (baseline)", calls, args.clients, args.seconds)
        baseline.cpu = f"{(cpu_seconds() - mine) / (time.perf_counter() - t0):.2f}"
        results.append((baseline, ""))
        service: list[Result] = []
        for w in workers:
            server = Serve(home, w)
            try:
                log(f"HTTP, --workers {w}: {args.clients} clients, {args.seconds:g} s")
                served = psutil.Process(server.proc.pid)
                mine, theirs, t0 = cpu_seconds(), cpu_seconds(served), time.perf_counter()
                measured = asyncio.run(
                    http_load(server.url, key, "orders", args.clients, args.seconds, args.client)
                )
                wall = time.perf_counter() - t0
                measured.cpu = (
                    f"server {(cpu_seconds(served) - theirs) / wall:.2f}, "
                    f"clients {(cpu_seconds() - mine) / wall:.2f}"
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
        log("profile, in process")
        profiled = profile(home, key, "orders", args.profile) if args.profile else []

    print(f"Command: `{command}`\n")
    print(
        f"Machine: {os.cpu_count()} CPUs ({platform.machine()}), Python "
        f"{platform.python_version()}; load average {load_before:.2f} at start, "
        f"{os.getloadavg()[0]:.2f} at end; the dataset: {args.rows:,} rows, "
        f"{issue_count} issues (a page of 20)\n"
    )
    print(
        "| run | concurrent clients | p50 (ms) | p95 (ms) | p99 (ms) | requests/s "
        "| CPUs busy | target |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for result, target in results:
        print(result.row(target))
    print("\nService time (one client, sequential):\n")
    print(
        "| run | concurrent clients | p50 (ms) | p95 (ms) | p99 (ms) | requests/s "
        "| CPUs busy | target |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for result in service:
        print(result.row())
    if profiled:
        print()
        print("\n".join(profiled))


if __name__ == "__main__":
    main()
