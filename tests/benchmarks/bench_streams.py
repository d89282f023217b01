"""Benchmark: the event pipeline in both modes: end-to-end command throughput, latency at
a fixed rate, and replay speed.

    .venv/bin/python tests/benchmarks/bench_streams.py [--commands N] [--rate R]
        [--latency-seconds S] [--workers W] [--skip-embedded] [--skip-kafka]

Embedded mode runs ``EmbeddedRuntime`` in a temporary DATRIX_HOME. Kafka mode uses the
services of ``deploy/local/up`` (started if needed; never stopped), isolated like the
integration tests: a topic prefix and a Postgres schema of its own, both removed at the
end, and ``datrix worker`` subprocess(es) that are terminated at the end.

Measurements (a command = one ``RegisterDataset``; it yields two events,
``DatasetRegistered`` and ``CommandAccepted``, and one ``command_status`` row):

* throughput: N commands sent as fast as the client can, timed from the first submit until
  the last one has its ``command_status`` row;
* latency: commands sent at R/s for S seconds (open loop: a late send is timed from when
  it was due); per command, from its submit until its ``command_status`` row exists (Kafka:
  a watcher thread polls the read model and the event store every ~5 ms and stamps ids when
  first seen, so the time to the event store is reported too; embedded: the CLI's submit +
  ``drain`` per tick);
* replay: events/s of rebuilding the read models from the log into a fresh store.

Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from datrix.aggregates.dataset import RegisterDataset, dataset_id_for
from datrix.projections.replay import BATCH, rebuild, rebuild_partitioned, table_checksums
from datrix.projections.store import PostgresReadStore, SQLiteReadStore
from datrix.runtime.embedded import EmbeddedRuntime
from datrix.streams.event_store import postgres_event_store
from datrix.streams.kafka import KafkaCommandLog, Topics, client_config, ensure_topics, read_topic
from datrix.streams.messages import command_envelope
from datrix.streams.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
DATRIX = str(Path(sys.executable).with_name("datrix"))
ACCEPTED = "datrix.command.CommandAccepted"

TARGET_THROUGHPUT = ">= 5,000 cmd/s"
TARGET_P99 = "p99 < 250 ms"
TARGET_REPLAY = ">= 50,000 ev/s"

Row = tuple[str, str, str, str]  # mode, metric, value, target


def log(msg: str) -> None:
    print(f"[bench_streams {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def latency_rows(mode: str, label: str, seconds: Sequence[float], target: bool) -> list[Row]:
    if not seconds:
        return [(mode, f"{label}", "no samples", TARGET_P99 if target else "")]
    ms = [s * 1000 for s in seconds]
    return [
        (mode, f"{label} p50 (ms)", f"{percentile(ms, 50):,.1f}", ""),
        (mode, f"{label} p95 (ms)", f"{percentile(ms, 95):,.1f}", ""),
        (mode, f"{label} p99 (ms)", f"{percentile(ms, 99):,.1f}", TARGET_P99 if target else ""),
        (mode, f"{label} max (ms)", f"{max(ms):,.1f}", ""),
    ]


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}" if seconds > 0 else "inf"


def new_command(i: int, prefix: str, tenant: str) -> tuple[RegisterDataset, uuid.UUID]:
    name = f"{prefix}-{i:06d}-{uuid.uuid4().hex[:8]}"  # a new name each run
    ds = dataset_id_for(tenant, name)
    return RegisterDataset(ds, name), ds


# =========================================================================================
# embedded
# =========================================================================================
def bench_embedded(args: argparse.Namespace, home: Path) -> list[Row]:
    mode = "embedded"
    rows: list[Row] = []
    settings = load_settings(
        home=home,
        tenant="bench",
        actor="bench",
        kafka_bootstrap=None,
        database_url=None,
        redis_url=None,
    )
    rt = EmbeddedRuntime(settings)

    # -- throughput ----------------------------------------------------------------------
    n = args.commands
    log(f"embedded: submitting {n:,} commands")
    t0 = time.perf_counter()
    for i in range(n):
        command, subject = new_command(i, "tput", "bench")
        rt.submit(command, subject)
    t1 = time.perf_counter()
    log("embedded: draining")
    rt.drain()
    t2 = time.perf_counter()
    seen = rt.read_store.query("SELECT COUNT(*) FROM command_status")[0][0]
    if seen != n:
        raise SystemExit(f"embedded: {seen} of {n} commands reached command_status")
    rows += [
        (mode, f"throughput, end to end ({n:,} cmds, cmd/s)", rate(n, t2 - t0), TARGET_THROUGHPUT),
        (mode, "  submit only (s / cmd/s)", f"{t1 - t0:.2f} s / {rate(n, t1 - t0)}", ""),
        (mode, "  drain only (s / cmd/s)", f"{t2 - t1:.2f} s / {rate(n, t2 - t1)}", ""),
    ]

    # -- latency at a fixed rate (submit + drain per tick, like the CLI) ---------------------
    total = int(args.rate * args.latency_seconds)
    log(f"embedded: {total:,} commands at {args.rate}/s (submit + drain per tick)")
    latencies: list[float] = []
    drains = 0
    start = time.perf_counter()
    i = 0
    while i < total:
        due = start + i / args.rate
        now = time.perf_counter()
        if now < due:
            time.sleep(due - now)
        batch: list[float] = []
        while i < total and start + i / args.rate <= time.perf_counter():
            command, subject = new_command(i, "lat", "bench")
            rt.submit(command, subject)
            batch.append(start + i / args.rate)
            i += 1
        rt.drain()
        drains += 1
        done = time.perf_counter()
        latencies.extend(done - t for t in batch)
    elapsed = time.perf_counter() - start
    rows += latency_rows(mode, f"latency @ {args.rate:g}/s", latencies, target=True)
    rows.append(
        (
            mode,
            "  achieved rate (cmd/s) / drains",
            f"{rate(total, elapsed)} / {drains:,} (avg {total / max(drains, 1):.1f} cmd per drain)",
            "",
        )
    )

    # -- replay --------------------------------------------------------------------------
    head = rt.events.head()
    log(f"embedded: replaying {head:,} events")
    t0 = time.perf_counter()
    position, read = 0, 0
    while True:
        got = rt.events.read(position, BATCH)
        if not got:
            break
        position, read = got[-1][0], read + len(got)
    t_read = time.perf_counter() - t0
    target = SQLiteReadStore(home / "replay.db")
    t0 = time.perf_counter()
    result = rebuild(rt.events, target)
    t_total = time.perf_counter() - t0
    t0 = time.perf_counter()
    table_checksums(target)
    t_sum = time.perf_counter() - t0
    t_apply = max(t_total - t_read - t_sum, 1e-9)
    rows += [
        (
            mode,
            f"replay, rebuild() total ({result.events:,} events, ev/s)",
            rate(result.events, t_total),
            TARGET_REPLAY,
        ),
        (mode, "  read + decode only (s / ev/s)", f"{t_read:.2f} s / {rate(read, t_read)}", ""),
        (
            mode,
            "  apply (total - read - checksums) (s / ev/s)",
            f"{t_apply:.2f} s / {rate(result.events, t_apply)}",
            "",
        ),
        (mode, "  table checksums (s)", f"{t_sum:.2f}", ""),
    ]
    return rows


# =========================================================================================
# Kafka
# =========================================================================================
def services_env() -> dict[str, str]:
    proc = subprocess.run(
        [str(ROOT / "deploy" / "local" / "up")],
        capture_output=True,
        text=True,
        timeout=1500,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        raise SystemExit(f"deploy/local/up failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    found: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("export ") and "=" in line:
            key, value = line[len("export ") :].split("=", 1)
            found[key] = value.strip().strip("'\"")
    for key in ("DATRIX_KAFKA_BOOTSTRAP", "DATRIX_DATABASE_URL", "DATRIX_REDIS_URL"):
        if key not in found:
            raise SystemExit(f"deploy/local/up did not export {key}")
    return found


def worker_credentials() -> dict[str, str]:
    """The workers' Kafka principal (``deploy/local/kafka-user worker``)."""
    proc = subprocess.run(
        [str(ROOT / "deploy" / "local" / "kafka-user"), "worker"],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        raise SystemExit(f"deploy/local/kafka-user worker failed:\n{proc.stderr[-3000:]}")
    return {
        k: v.strip("'\"")
        for k, _, v in (
            line[len("export ") :].partition("=")
            for line in proc.stdout.splitlines()
            if line.startswith("export ")
        )
    }


class Db:
    """One autocommit connection with the run's schema on the search path."""

    def __init__(self, url: str, schema: str) -> None:
        import psycopg

        self.conn = psycopg.connect(url, autocommit=True, options=f"-c search_path={schema}")

    def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.conn.execute(sql, tuple(params)).fetchone()
        return row[0] if row else None

    def column(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return [r[0] for r in self.conn.execute(sql, tuple(params)).fetchall()]

    def close(self) -> None:
        self.conn.close()


class Watcher(threading.Thread):
    """Polls every ``interval`` s for watched command ids: when the outcome event is in
    the event store (``stored_events``) and when the ``command_status`` row exists."""

    def __init__(self, url: str, schema: str, interval: float = 0.005) -> None:
        super().__init__(name="watcher", daemon=True)
        self.db = Db(url, schema)
        self.interval = interval
        self.lock = threading.Lock()
        self.sent: dict[str, float] = {}
        self.stored: dict[str, float] = {}
        self.seen: dict[str, float] = {}
        self._unstored: set[str] = set()
        self._unseen: set[str] = set()
        self.stop = threading.Event()
        self.polls = 0
        self.error: BaseException | None = None

    def watch(self, command_id: str, sent_at: float) -> None:
        with self.lock:
            self.sent[command_id] = sent_at
            self._unstored.add(command_id)
            self._unseen.add(command_id)

    def outstanding(self) -> int:
        with self.lock:
            return len(self._unseen)

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                with self.lock:
                    unstored, unseen = list(self._unstored), list(self._unseen)
                if unstored:
                    found = self.db.column(
                        "SELECT originator_id::text FROM stored_events "
                        "WHERE originator_id = ANY(%s::uuid[])",
                        (unstored,),
                    )
                    now = time.perf_counter()
                    with self.lock:
                        for cid in found:
                            self.stored.setdefault(cid, now)
                            self._unstored.discard(cid)
                if unseen:
                    found = self.db.column(
                        "SELECT command_id FROM command_status WHERE command_id = ANY(%s)",
                        (unseen,),
                    )
                    now = time.perf_counter()
                    with self.lock:
                        for cid in found:
                            self.seen.setdefault(cid, now)
                            self._unseen.discard(cid)
                self.polls += 1
                self.stop.wait(self.interval)
        except BaseException as exc:  # reported by the main thread
            self.error = exc
        finally:
            self.db.close()


@dataclasses.dataclass
class KafkaRun:
    env: dict[str, str]
    topics: Topics
    schema: str
    replay_schema: str
    home: Path
    workers: list[subprocess.Popen[bytes]] = dataclasses.field(default_factory=list)
    logs: list[Path] = dataclasses.field(default_factory=list)

    @property
    def settings(self) -> Settings:
        """The benchmark's own clients: the gateway/CLI principal of ``up``'s exports."""
        return load_settings(self.env)

    @property
    def url(self) -> str:
        return self.env["DATRIX_DATABASE_URL"]

    def worker_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DATRIX_")}
        env.update(self.env)
        env.update(worker_credentials())
        env.update(
            {
                "DATRIX_HOME": str(self.home),
                "DATRIX_TOPIC_PREFIX": self.topics.prefix,
                "DATRIX_DATABASE_SCHEMA": self.schema,
                "DATRIX_TENANT": "bench",
            }
        )
        return env

    def start_worker(self) -> None:
        path = self.home.parent / f"worker-{len(self.workers)}.log"
        with path.open("ab") as out:
            proc = subprocess.Popen(
                [DATRIX, "worker"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.worker_env(),
                stdin=subprocess.DEVNULL,
            )
        self.workers.append(proc)
        self.logs.append(path)

    def check_workers(self) -> None:
        for proc, path in zip(self.workers, self.logs, strict=True):
            if proc.poll() is not None:
                tail = path.read_text(errors="replace")[-3000:]
                raise SystemExit(f"datrix worker exited ({proc.returncode}):\n{tail}")

    def stop_workers(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.workers:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def cleanup(self) -> None:
        import psycopg
        from confluent_kafka.admin import AdminClient

        self.stop_workers()
        with psycopg.connect(self.url, autocommit=True) as db:
            for schema in (self.schema, self.replay_schema):
                db.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin = AdminClient(client_config(self.settings))
        names = [self.topics.commands, self.topics.events, self.topics.jobs]
        for name, future in admin.delete_topics(names, operation_timeout=30).items():
            try:
                future.result(timeout=60)
            except Exception as exc:
                log(f"could not delete topic {name}: {exc}")
        groups = [
            f"{self.topics.prefix}{g}" for g in ("processor", "dispatcher", "jobs", "projector")
        ]
        with contextlib.suppress(Exception):
            for future in admin.delete_consumer_groups(groups, request_timeout=30).values():
                with contextlib.suppress(Exception):
                    future.result(timeout=30)


def send(log_: KafkaCommandLog, i: int, tenant: str, prefix: str) -> str:
    command, subject = new_command(i, prefix, tenant)
    envelope = command_envelope(
        command, subject=subject, tenant=tenant, actor="bench", time=datetime.now(UTC)
    )
    log_.append(envelope)
    return str(envelope.id)


def wait_until(
    what: str, done: Callable[[], bool], timeout: float, interval: float, run: KafkaRun
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return
        run.check_workers()
        time.sleep(interval)
    raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")


def bench_kafka(args: argparse.Namespace, run: KafkaRun) -> list[Row]:
    mode = "kafka"
    rows: list[Row] = []
    ensure_topics(run.settings, run.topics)
    postgres_event_store(run.url, run.schema)
    PostgresReadStore(run.url, run.schema)
    for _ in range(args.workers):
        run.start_worker()
    producer = KafkaCommandLog(run.settings, run.topics)
    db = Db(run.url, run.schema)
    try:
        # -- ready: one warm-up round trip -----------------------------------------------
        log("kafka: waiting for the worker (warm-up round trip)")
        t0 = time.perf_counter()
        warm = send(producer, 0, "bench-warmup", "warm")
        producer.flush()

        def warmed() -> bool:
            with contextlib.suppress(Exception):  # tables may not exist yet
                return bool(db.one("SELECT 1 FROM command_status WHERE command_id = %s", (warm,)))
            return False

        wait_until("the warm-up command", warmed, args.ready_timeout, 0.05, run)
        log(f"kafka: worker ready after {time.perf_counter() - t0:.1f}s")
        accepted_before = int(
            db.one("SELECT COUNT(*) FROM stored_events WHERE topic = %s", (ACCEPTED,))
        )

        # -- throughput ------------------------------------------------------------------
        n = args.commands
        log(f"kafka: producing {n:,} commands as fast as possible")
        t0 = time.perf_counter()
        for i in range(n):
            send(producer, i, "bench-tput", "tput")
        producer.flush(timeout=300)
        t_produced = time.perf_counter()
        t_stored: float | None = None
        t_seen: float | None = None
        seen = 0
        deadline = time.monotonic() + args.drain_timeout
        while t_seen is None and time.monotonic() < deadline:
            if t_stored is None:
                stored = db.one("SELECT COUNT(*) FROM stored_events WHERE topic = %s", (ACCEPTED,))
                if int(stored) - accepted_before >= n:
                    t_stored = time.perf_counter()
            seen = db.one("SELECT COUNT(*) FROM command_status WHERE tenant = 'bench-tput'")
            if int(seen) >= n:
                t_seen = time.perf_counter()
                t_stored = t_stored or t_seen
                break
            run.check_workers()
            time.sleep(0.02)
        if t_seen is None or t_stored is None:
            raise SystemExit(f"kafka: only {seen} of {n} commands reached command_status")
        rows += [
            (
                mode,
                f"throughput, end to end ({n:,} cmds, {args.workers} worker(s), cmd/s)",
                rate(n, t_seen - t0),
                TARGET_THROUGHPUT,
            ),
            (
                mode,
                "  produce + flush only (s / cmd/s)",
                f"{t_produced - t0:.2f} s / {rate(n, t_produced - t0)}",
                "",
            ),
            (
                mode,
                "  until all in the event store (s / cmd/s)",
                f"{t_stored - t0:.2f} s / {rate(n, t_stored - t0)}",
                "",
            ),
            (
                mode,
                "  projection lag after the event store (s)",
                f"{t_seen - t_stored:.2f}",
                "",
            ),
        ]

        # -- latency at a fixed rate ------------------------------------------------------
        total = int(args.rate * args.latency_seconds)
        log(f"kafka: {total:,} commands at {args.rate}/s, watcher polling every 5 ms")
        watcher = Watcher(run.url, run.schema)
        watcher.start()
        start = time.perf_counter()
        for i in range(total):
            due = start + i / args.rate
            now = time.perf_counter()
            if now < due:
                time.sleep(due - now)
            cid = send(producer, i, "bench-lat", "lat")
            watcher.watch(cid, min(due, time.perf_counter()))
        producer.flush(timeout=300)
        sent_for = time.perf_counter() - start
        deadline = time.monotonic() + args.drain_timeout
        while watcher.outstanding() and time.monotonic() < deadline and watcher.is_alive():
            run.check_workers()
            time.sleep(0.05)
        watcher.stop.set()
        watcher.join()
        if watcher.error is not None:
            raise SystemExit(f"kafka: the watcher failed: {watcher.error!r}")
        missing = watcher.outstanding()
        to_view = [watcher.seen[c] - t for c, t in watcher.sent.items() if c in watcher.seen]
        to_store = [watcher.stored[c] - t for c, t in watcher.sent.items() if c in watcher.stored]
        store_to_view = [
            watcher.seen[c] - watcher.stored[c]
            for c in watcher.sent
            if c in watcher.seen and c in watcher.stored
        ]
        rows += latency_rows(
            mode, f"latency @ {args.rate:g}/s, submit -> read model", to_view, True
        )
        rows += latency_rows(mode, "  submit -> event store", to_store, False)
        rows += latency_rows(
            mode, "  event store -> read model (relay + projector)", store_to_view, False
        )
        rows.append(
            (
                mode,
                "  achieved send rate (cmd/s) / missing / watcher polls per s",
                f"{rate(total, sent_for)} / {missing} / "
                f"{watcher.polls / max(time.perf_counter() - start, 1e-9):,.0f}",
                "",
            )
        )
    finally:
        db.close()
        run.stop_workers()

    # -- replay (workers stopped: the log is complete and the machine is quiet) ------------
    log("kafka: reading the events topic")
    t0 = time.perf_counter()
    partitions = read_topic(run.settings, run.topics.events)
    t_read = time.perf_counter() - t0
    events = sum(len(v) for v in partitions.values())
    target = PostgresReadStore(run.url, schema=run.replay_schema)
    log(f"kafka: rebuilding {events:,} events into schema {run.replay_schema}")
    t0 = time.perf_counter()
    result = rebuild_partitioned(partitions, target)
    t_rebuild = time.perf_counter() - t0
    t0 = time.perf_counter()
    table_checksums(target)
    t_sum = time.perf_counter() - t0
    t_apply = max(t_rebuild - t_sum, 1e-9)
    rows += [
        (
            mode,
            f"replay, read_topic + rebuild_partitioned ({result.events:,} events, ev/s)",
            rate(result.events, t_read + t_rebuild),
            TARGET_REPLAY,
        ),
        (mode, "  read_topic only (s / ev/s)", f"{t_read:.2f} s / {rate(events, t_read)}", ""),
        (
            mode,
            "  apply (rebuild - checksums) (s / ev/s)",
            f"{t_apply:.2f} s / {rate(result.events, t_apply)}",
            "",
        ),
        (mode, "  table checksums (s)", f"{t_sum:.2f}", ""),
    ]
    return rows


# =========================================================================================
@contextlib.contextmanager
def kafka_run(tmp: Path) -> Iterator[KafkaRun]:
    tag = uuid.uuid4().hex[:10]
    run = KafkaRun(
        env=services_env(),
        topics=Topics(f"bench{tag}."),
        schema=f"bench_{tag}",
        replay_schema=f"bench_{tag}_replay",
        home=tmp / "kafka-home",
    )
    run.home.mkdir(parents=True)
    log(f"kafka: topic prefix {run.topics.prefix}, schema {run.schema}")
    try:
        yield run
    finally:
        log("kafka: cleaning up (workers, schemas, topics)")
        run.cleanup()


def machine() -> str:
    load = os.getloadavg()
    return (
        f"{os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, load average {load[0]:.2f} / {load[1]:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=1, help="datrix worker processes")
    parser.add_argument("--ready-timeout", type=float, default=300.0)
    parser.add_argument("--drain-timeout", type=float, default=300.0)
    parser.add_argument("--skip-embedded", action="store_true")
    parser.add_argument("--skip-kafka", action="store_true")
    args = parser.parse_args()

    command = shlex.join([".venv/bin/python", "tests/benchmarks/bench_streams.py", *sys.argv[1:]])
    before = machine()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-streams-") as tmp:
        if not args.skip_embedded:
            rows += bench_embedded(args, Path(tmp) / "embedded-home")
        if not args.skip_kafka:
            with kafka_run(Path(tmp)) as run:
                rows += bench_kafka(args, run)

    print(f"Command: `{command}`\n")
    print(f"Machine: {before} (at start); load average at end {os.getloadavg()[0]:.2f}\n")
    print("| mode | metric | value | target |")
    print("|---|---|---|---|")
    for mode, metric, value, target in rows:
        print(f"| {mode} | {metric.replace('|', '/')} | {value} | {target} |")


if __name__ == "__main__":
    main()
