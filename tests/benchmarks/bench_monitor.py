"""Benchmark: the stream quality monitor's throughput on a pre-filled topic, against the
fastest plain confluent-kafka consumer loop that only decodes, in the same run.

    .venv/bin/python tests/benchmarks/bench_monitor.py [--records N] [--repeat K]
        [--window-seconds W] [--aiokafka-python PYTHON] [--faust-python PYTHON [--faust-records N]]

* The topic: ``N`` (1,000,000) JSON records of 10 fields (ints, floats, text, a boolean,
  a timestamp, ~5 % nulls in two fields), one partition (one consumer: the throughput of
  one worker process), record timestamps spread over 100 windows in the past. Produced
  once per run with plain confluent-kafka, on the broker of ``deploy/local/up`` (started
  if needed, never stopped) with the gateway principal of its exports; the topic is
  deleted at the end.
* ``bare``: ``Consumer.consume(5000)`` batches, ``orjson.loads`` of each value, nothing
  else (the baseline the issue names: the fastest loop that only decodes, no metrics), with
  the two process settings the monitor runs with (``runtime/worker/monitor.py``):
  librdkafka's ``fetch.queue.backoff.ms`` at 10 ms and the garbage collector's first
  threshold at 50,000.
* ``bare-defaults``: the same loop with librdkafka's and the collector's defaults (a
  partition whose local queue holds ``queued.min.messages`` waits 1 s before its next
  fetch: ~100,000 records/s at most however fast the loop).
* ``bare-json``: the ``bare`` loop with the standard library's ``json.loads``.
* ``monitor``: the monitor role's own loop (``runtime/worker/monitor.py``
  ``StreamMonitor``: decode, windows, duplicate check, per-micro-batch Polars metrics,
  closing windows and producing their ``CloseStreamWindow`` commands to a topic prefix of
  the run's own), with only the event-store lookup of earlier windows left out (a new
  stream has none).
* ``aiokafka`` (with ``--aiokafka-python``, an interpreter with ``aiokafka cramjam orjson``):
  the same decode-only loop on aiokafka, the client faust-streaming consumes with, so the
  ceiling of any faust agent on this machine.
* ``faust`` (with ``--faust-python``, an interpreter with ``faust-streaming cramjam
  orjson``): a faust agent that only decodes, in faust's batches (``stream.take(5000,
  within=0.5)``; record by record was slower still); ``--faust-records N``: only the first
  N records (at a few thousand records/s the whole topic takes minutes).
* Each measurement is a fresh child process (``--child MODE``): records/s from the first
  record read to the last (the group join excluded), and the child's peak RSS
  (``ru_maxrss``). Repeated ``--repeat`` times, alternating; the best and the worst rate
  are reported, with the 1-minute load average after each run.

Prints a Markdown table for docs/benchmarks.md ("Stream monitor").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
WINDOWS = 100


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
    if "DATRIX_KAFKA_BOOTSTRAP" not in found:
        raise SystemExit("deploy/local/up did not export DATRIX_KAFKA_BOOTSTRAP")
    return found


def fill(env: dict[str, str], topic: str, records: int, window_seconds: int) -> float:
    """Create ``topic`` (one partition) and write the records; seconds taken."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined,unused-ignore]

    from datrix.streams.kafka import client_config
    from datrix.streams.settings import load_settings

    settings = load_settings(env)
    admin = AdminClient(client_config(settings))
    for future in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        future.result(timeout=60)
    producer = Producer(
        client_config(
            settings,
            **{"linger.ms": 50, "batch.size": 1_000_000, "compression.type": "lz4"},
        )
    )
    rng = random.Random(0)
    span_ms = WINDOWS * window_seconds * 1000
    base = (int(time.time() * 1000) - span_ms - 60_000) // 1000 * 1000
    countries = ["FR", "DE", "US", "GB", "ES", "IT", "NL", "PL"]
    started = time.perf_counter()
    for i in range(records):
        value = json.dumps(
            {
                "id": i,
                "user": f"user-{rng.randrange(50_000)}",
                "amount": round(rng.lognormvariate(3, 1), 2) if rng.random() > 0.05 else None,
                "quantity": rng.randrange(1, 20),
                "country": rng.choice(countries) if rng.random() > 0.05 else None,
                "paid": rng.random() > 0.3,
                "score": round(rng.gauss(0, 1), 4),
                "created": base + i,
                "note": "x" * rng.randrange(0, 24),
                "channel": rng.choice(["web", "app", "store"]),
            }
        ).encode()
        while True:
            try:
                producer.produce(topic, value=value, timestamp=base + i * span_ms // records)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10_000 == 0:
            producer.poll(0)
    if producer.flush(120):
        raise SystemExit("the broker did not confirm the records")
    return time.perf_counter() - started


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# The monitor's process settings (runtime/worker/monitor.py FETCH_QUEUE_BACKOFF_MS and
# GC_GEN0_THRESHOLD), repeated here: importing the monitor would load Polars into the bare
# loop's process.
TUNED_CONSUMER = {"fetch.queue.backoff.ms": 10}
TUNED_GC_GEN0 = 50_000


def child_bare(
    env: dict[str, str], topic: str, records: int, decoder: str, tuned: bool
) -> dict[str, Any]:
    import gc

    import orjson
    from confluent_kafka import Consumer

    from datrix.streams.kafka import client_config
    from datrix.streams.settings import load_settings

    loads = orjson.loads if decoder == "orjson" else json.loads
    if tuned:
        gc.set_threshold(TUNED_GC_GEN0, *gc.get_threshold()[1:])
    consumer = Consumer(
        client_config(
            load_settings(env),
            **{
                "group.id": f"bench-bare-{uuid.uuid4()}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                **(TUNED_CONSUMER if tuned else {}),
            },
        )
    )
    consumer.subscribe([topic])
    seen = 0
    first = 0.0
    while seen < records:
        for msg in consumer.consume(5000, timeout=0.5):
            if msg.error() is not None:
                continue
            if not seen:
                first = time.perf_counter()
            loads(msg.value())  # type: ignore[arg-type]
            seen += 1
    seconds = time.perf_counter() - first
    consumer.close()
    return {"records": seen, "seconds": seconds}


def child_monitor(
    env: dict[str, str], topic: str, records: int, window_seconds: int
) -> dict[str, Any]:
    from datrix.runtime.worker.common import WorkerContext
    from datrix.runtime.worker.monitor import StreamMonitor, StreamSpec
    from datrix.streams.kafka import ensure_topics, topics_for
    from datrix.streams.registry import core_registry
    from datrix.streams.settings import load_settings

    prefix = f"bench{uuid.uuid4().hex[:8]}."
    settings = load_settings({**env, "DATRIX_TOPIC_PREFIX": prefix})
    topics = topics_for(settings)
    ensure_topics(settings, topics)
    registry = core_registry()
    registry.install()
    stop = threading.Event()
    ctx = WorkerContext(settings, topics, stop, registry=registry)
    spec = StreamSpec(
        stream_id=uuid.uuid4(),
        tenant="bench",
        name="bench",
        topic=topic,
        format="json",
        key_field=None,
        window_seconds=window_seconds,
        grace_seconds=1,
        start_from="earliest",
    )

    class NewStream(StreamMonitor):
        def _history(self, partition: int) -> list[Any]:
            return []  # a new stream: no recorded windows (no event store needed)

    # what a running worker has loaded already (Polars, numpy, datasketch...): not timed
    from datrix.jobs.streams.metrics import WindowAccumulator

    warm = WindowAccumulator(0, 1000)
    warm.add({"a": 1, "b": "x", "c": None}, 0, 0, 0)
    first = warm.finish({})
    again = WindowAccumulator(1000, 2000)
    again.add({"a": 1, "b": "x", "c": None}, 1, 1000, 1000)
    again.finish({}, first.fields)  # a window after another: the schema-change detector
    monitor = NewStream(ctx, spec, stop)
    thread = threading.Thread(target=monitor.run, daemon=True)
    thread.start()
    first = 0.0
    while True:
        part = monitor.parts.get(0)
        if part is not None and part.next_offset is not None:
            if not first:
                first = time.perf_counter()
            if part.next_offset >= records:
                break
        time.sleep(0.005)
    read = time.perf_counter() - first
    while monitor.parts[0].windows.open:  # the last window closes on the wall clock
        time.sleep(0.01)
    closed = time.perf_counter() - first
    stop.set()
    thread.join(timeout=60)
    return {"records": records, "seconds": read, "all_closed_s": closed}


# faust-streaming consumes through aiokafka; the fastest loop faust could run is aiokafka's
# own: getmany() batches, orjson.loads each value. Run with another interpreter that has
# aiokafka (not a Datrix dependency): --aiokafka-python /path/to/venv/bin/python.
AIOKAFKA_LOOP = """
import asyncio, json, os, resource, sys, time, uuid
import orjson
from aiokafka import AIOKafkaConsumer

async def main(topic, records):
    env = json.loads(os.environ["BENCH_MONITOR_ENV"])
    sasl = {}
    if env.get("DATRIX_KAFKA_SASL_USERNAME"):
        sasl = dict(
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism=env.get("DATRIX_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512").upper(),
            sasl_plain_username=env["DATRIX_KAFKA_SASL_USERNAME"],
            sasl_plain_password=env["DATRIX_KAFKA_SASL_PASSWORD"],
        )
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=env["DATRIX_KAFKA_BOOTSTRAP"],
        group_id=f"bench-aiokafka-{uuid.uuid4()}", auto_offset_reset="earliest",
        enable_auto_commit=False, **sasl,
    )
    await consumer.start()
    seen, first = 0, 0.0
    try:
        while seen < records:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for messages in batches.values():
                for msg in messages:
                    if not seen:
                        first = time.perf_counter()
                    orjson.loads(msg.value)
                    seen += 1
    finally:
        await consumer.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    seconds = time.perf_counter() - first
    with open(sys.argv[3], "w") as f:
        f.write(json.dumps({"records": seen, "seconds": seconds, "peak_rss_mib": rss}))

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


# A faust-streaming agent that only decodes: the least any faust monitor would do per
# record. Run with an interpreter that has faust-streaming: --faust-python.
FAUST_AGENT = """
import json, os, resource, sys, tempfile, time, uuid
import faust, orjson

env = json.loads(os.environ["BENCH_MONITOR_ENV"])
topic_name, records, result = sys.argv[1], int(sys.argv[2]), sys.argv[3]
credentials = None
if env.get("DATRIX_KAFKA_SASL_USERNAME"):
    credentials = faust.SASLCredentials(
        username=env["DATRIX_KAFKA_SASL_USERNAME"],
        password=env["DATRIX_KAFKA_SASL_PASSWORD"],
        mechanism=env.get("DATRIX_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512").upper(),
    )
app = faust.App(
    f"bench-faust-{uuid.uuid4().hex[:8]}",
    broker=f"kafka://{env['DATRIX_KAFKA_BOOTSTRAP']}",
    broker_credentials=credentials,
    value_serializer="raw",
    topic_allow_declare=False,
    topic_disable_leader=True,
    web_enabled=False,
    consumer_auto_offset_reset="earliest",
    store="memory://",
    datadir=tempfile.mkdtemp(prefix="bench-faust-"),
)
topic = app.topic(topic_name, value_serializer="raw")
state = {"seen": 0, "first": 0.0}

@app.agent(topic)
async def decode(stream):
    async for values in stream.take(5000, within=0.5):  # faust's batches
        if not state["seen"]:
            state["first"] = time.perf_counter()
        for value in values:
            orjson.loads(value)
        state["seen"] += len(values)
        if state["seen"] >= records:
            seconds = time.perf_counter() - state["first"]
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            out = {"records": state["seen"], "seconds": seconds, "peak_rss_mib": rss}
            with open(result, "w") as f:  # faust takes over stdout
                f.write(json.dumps(out))
            os._exit(0)

sys.argv = [sys.argv[0], "worker", "-l", "warn", "--without-web"]
app.main()
"""


def run_aiokafka(python: str, topic: str, records: int, script: str = "") -> dict[str, Any]:
    """Run the aiokafka loop (or ``script``) with ``python``; its result."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as folder:
        out = Path(folder) / "result.json"
        proc = subprocess.run(
            [python, "-c", script or AIOKAFKA_LOOP, topic, str(records), str(out)],
            capture_output=True,
            text=True,
            timeout=1800,
            env=dict(os.environ),
            cwd=folder,
        )
        if proc.returncode != 0 or not out.exists():
            raise SystemExit(f"the loop failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(out.read_text())
    return result


def run_child(mode: str, topic: str, args: argparse.Namespace) -> dict[str, Any]:
    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            mode,
            "--topic",
            topic,
            "--records",
            str(args.records),
            "--window-seconds",
            str(args.window_seconds),
        ],
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if proc.returncode != 0:
        raise SystemExit(f"child {mode} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--window-seconds", type=int, default=10)
    parser.add_argument("--child", choices=["bare", "bare-defaults", "bare-json", "monitor"])
    parser.add_argument("--topic")
    parser.add_argument(
        "--faust-python",
        help="an interpreter with faust-streaming: adds a faust agent that only decodes",
    )
    parser.add_argument(
        "--faust-records",
        type=int,
        help="the faust agent reads only the first N records (it is slow; default: all)",
    )
    parser.add_argument(
        "--aiokafka-python",
        help="an interpreter with aiokafka and orjson: adds faust's consumer loop (aiokafka)",
    )
    args = parser.parse_args()

    if args.child:
        env = json.loads(os.environ["BENCH_MONITOR_ENV"])
        if args.child == "monitor":
            out = child_monitor(env, args.topic, args.records, args.window_seconds)
        else:
            decoder = "json" if args.child == "bare-json" else "orjson"
            tuned = args.child != "bare-defaults"
            out = child_bare(env, args.topic, args.records, decoder, tuned)
        out["peak_rss_mib"] = peak_rss_mib()
        print(json.dumps(out))
        return

    env = services_env()
    os.environ["BENCH_MONITOR_ENV"] = json.dumps(env)
    topic = f"bench-monitor-{uuid.uuid4().hex[:8]}"
    filled = fill(env, topic, args.records, args.window_seconds)
    print(f"filled {topic}: {args.records:,} records in {filled:.1f} s", file=sys.stderr)
    results: dict[str, list[dict[str, Any]]] = {
        "bare": [],
        "bare-defaults": [],
        "bare-json": [],
        "monitor": [],
    }
    if args.aiokafka_python:
        results["aiokafka"] = []
    if args.faust_python:
        results["faust"] = []
    try:
        for _ in range(args.repeat):
            for mode in results:
                if mode == "aiokafka":
                    result = run_aiokafka(args.aiokafka_python, topic, args.records)
                elif mode == "faust":
                    first = args.faust_records or args.records
                    result = run_aiokafka(args.faust_python, topic, first, FAUST_AGENT)
                else:
                    result = run_child(mode, topic, args)
                result["load"] = os.getloadavg()[0]  # the 1-minute load average after it
                print(mode, result, file=sys.stderr)
                results[mode].append(result)
    finally:
        from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined,unused-ignore]

        from datrix.streams.kafka import client_config
        from datrix.streams.settings import load_settings

        AdminClient(client_config(load_settings(env))).delete_topics([topic])

    def rate(r: dict[str, Any]) -> float:
        return float(r["records"] / r["seconds"])

    bare = results["bare"]
    loads = [r["load"] for rs in results.values() for r in rs]
    print(
        f"\n{args.records:,} JSON records x 10 fields, 1 partition, {WINDOWS} windows of "
        f"{args.window_seconds} s; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores; {args.repeat} rounds; 1-minute load average after each "
        f"run {min(loads):.1f}-{max(loads):.1f}\n"
    )
    print(
        "| loop | records | records/s, best | records/s, worst | time per record x bare, "
        "best / worst round | peak RSS (MiB) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    names = {
        "bare": "bare confluent-kafka + orjson.loads (baseline)",
        "bare-defaults": "the same, librdkafka's and gc's defaults",
        "bare-json": "bare confluent-kafka + json.loads",
        "monitor": "monitor (decode + windows + metrics + commands)",
        "aiokafka": "bare aiokafka + orjson.loads (faust's consumer)",
        "faust": "faust-streaming agent + orjson.loads",
    }
    for mode, name in names.items():
        runs = results.get(mode)
        if not runs:
            continue
        rates = [rate(r) for r in runs]
        # x bare: against the best baseline run, and the worst of the rounds, each run
        # against the baseline run of its own round
        ratios = [rate(b) / rate(r) for b, r in zip(bare, runs, strict=False)]
        print(
            f"| {name} | {runs[0]['records']:,} | {max(rates):,.0f} | {min(rates):,.0f} | "
            f"{max(map(rate, bare)) / max(rates):.2f} / {max(ratios):.2f} | "
            f"{max(r['peak_rss_mib'] for r in runs):.0f} |"
        )


if __name__ == "__main__":
    main()
