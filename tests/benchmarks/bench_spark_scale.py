"""Benchmark (issue 11 item 4): `datrix scan FILE --engine spark` on the local Spark
standalone cluster with a 512 MB driver, beside `datrix scan FILE --engine polars` on the
same file: wall time and peak RSS of every process, and whether the two find the same.

    .venv/bin/python tests/benchmarks/bench_spark_scale.py [--rows N ...] [--data DIR]
        [--driver-memory 512m] [--executor-memory SIZE] [--master spark://...]

* The file: R x 50 from ``datrix.jobs.bench.generate`` (seed 0), under
  ``bench-data/spark-scale/rows-R.parquet``, reused when there. Above 1,000,000 rows it is
  written in 1M-row chunks with seeds 1, 2, ... (as bench_scan.py's ``--big-csv``: rows do
  not repeat across chunks) into one Parquet file, a row group per chunk.
* The cluster: ``deploy/local/up spark`` (idempotent: the running one is reused), unless
  ``--master`` names one; its web UI (``DATRIX_SPARK_WEBUI_PORT``, 18088 by default) says
  which application was ours and how many cores it had.
* Peak RSS per process, by polling psutil every 50 ms: the `datrix` CLI and every process
  under it (the job process, the driver JVM, Python workers beside it), and the executors
  the cluster's workers launch for this application (children of the worker JVMs: the
  executor JVM, and its Python workers summed per executor), told from other applications'
  by their ``--driver-url`` port, which the driver JVM listens on.
* Prints a markdown table (one row a process) and the findings check: exact and
  near-duplicate counts, PII and format columns equal between the engines (exit 1 if not).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[2]
DATRIX = str(Path(sys.executable).with_name("datrix"))
CHUNK = 1_000_000
POLL_S = 0.05


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---- data ------------------------------------------------------------------------------
def ensure_data(rows: int, data_root: Path) -> tuple[Path, dict[str, Any]]:
    """``rows`` x 50 as one Parquet file (and its ground truth), built once."""
    import pyarrow.parquet as pq

    from datrix.jobs.bench.generate import generate

    out = data_root / "spark-scale"
    target, meta_path = out / f"rows-{rows}.parquet", out / f"rows-{rows}.json"
    if target.exists() and meta_path.exists():
        return target, json.loads(meta_path.read_text())
    out.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {"rows": 0, "exact_duplicates": 0, "chunks": 0}
    partial = target.with_suffix(".parquet.partial")
    if rows <= CHUNK:
        with tempfile.TemporaryDirectory(dir=out) as tmp:
            truth = generate(rows, Path(tmp), seed=0)
            shutil.move(str(Path(tmp) / "dirty.parquet"), partial)
        meta.update(rows=truth["rows"], exact_duplicates=truth["exact_duplicates"]["count"])
        meta["chunks"] = 1
    else:
        if rows % CHUNK:
            raise SystemExit(f"--rows {rows}: above {CHUNK:,} rows, a whole number of millions")
        writer: pq.ParquetWriter | None = None
        try:
            for seed in range(1, rows // CHUNK + 1):
                with tempfile.TemporaryDirectory(dir=out) as tmp:
                    truth = generate(CHUNK, Path(tmp), seed=seed)
                    table = pq.read_table(Path(tmp) / "dirty.parquet")
                if writer is None:
                    writer = pq.ParquetWriter(partial, table.schema)
                writer.write_table(table.cast(writer.schema), row_group_size=CHUNK)
                meta["rows"] += truth["rows"]
                meta["exact_duplicates"] += truth["exact_duplicates"]["count"]
                meta["chunks"] += 1
                log(f"  chunk {seed}/{rows // CHUNK} (seed {seed}) written")
        finally:
            if writer is not None:
                writer.close()
    partial.replace(target)
    meta["bytes"] = target.stat().st_size
    meta_path.write_text(json.dumps(meta) + "\n")
    return target, meta


# ---- the cluster -----------------------------------------------------------------------
def cluster_master() -> str:
    """``deploy/local/up spark``'s DATRIX_SPARK_MASTER (starting the cluster if needed)."""
    proc = subprocess.run(
        [str(ROOT / "deploy" / "local" / "up"), "spark"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=600,
    )
    if proc.returncode != 0:
        raise SystemExit(f"deploy/local/up spark failed:\n{proc.stderr[-2000:]}")
    for line in proc.stdout.splitlines():
        if line.startswith("export DATRIX_SPARK_MASTER="):
            return line.split("=", 1)[1].strip().strip("'\"")
    raise SystemExit("deploy/local/up spark exported no DATRIX_SPARK_MASTER")


def master_state() -> dict[str, Any]:
    port = os.environ.get("DATRIX_SPARK_WEBUI_PORT", "18088")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/", timeout=10) as r:
        doc: dict[str, Any] = json.load(r)
    return doc


# ---- measuring -------------------------------------------------------------------------
@dataclass
class Measured:
    wall: float
    stdout: str
    peaks: dict[str, float] = field(default_factory=dict)  # process label -> peak MiB
    driver_ports: set[int] = field(default_factory=set)
    apps: set[str] = field(default_factory=set)  # the application ids of its executors


def _cmdline(p: psutil.Process) -> list[str]:
    with contextlib.suppress(psutil.Error):
        return list(p.cmdline())
    return []


def _label_in_tree(p: psutil.Process, root: int) -> str:
    cmd = " ".join(_cmdline(p))
    if p.pid == root:
        return "datrix CLI (Python)"
    if "java" in Path(_cmdline(p)[0] if _cmdline(p) else "").name:
        return "driver JVM"
    if "pyspark.daemon" in cmd or "pyspark/worker" in cmd:
        return "driver-side Python workers"
    return "job process (Python)" if "python" in cmd or "datrix" in cmd else f"other ({p.name()})"


def _executor_groups(driver_ports: set[int], apps: set[str]) -> dict[str, list[psutil.Process]]:
    """The executors of the application whose driver listens on ``driver_ports``: for each,
    its JVM and its Python workers, found as children of the cluster's worker JVMs (their
    application's id added to ``apps``)."""
    groups: dict[str, list[psutil.Process]] = {}
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info.get("cmdline") or []
        if "org.apache.spark.executor.CoarseGrainedExecutorBackend" not in cmd:
            continue
        try:
            url = cmd[cmd.index("--driver-url") + 1]
            eid = cmd[cmd.index("--executor-id") + 1]
        except (ValueError, IndexError):
            continue
        port = url.rsplit(":", 1)[-1]
        if not port.isdigit() or int(port) not in driver_ports:
            continue
        if "--app-id" in cmd[:-1]:
            apps.add(cmd[cmd.index("--app-id") + 1])
        with contextlib.suppress(psutil.Error):
            groups[eid] = [proc, *proc.children(recursive=True)]
    return groups


def measure(cmd: list[str], env: dict[str, str]) -> Measured:
    """Run ``cmd``; wall time, and the peak RSS of each process of its tree and of its
    application's executors on the cluster."""
    peaks: dict[str, float] = {}
    ports: set[int] = set()
    apps: set[str] = set()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, text=True)
        root = psutil.Process(proc.pid)
        stop = threading.Event()

        def keep(label: str, mib: float) -> None:
            peaks[label] = max(peaks.get(label, 0.0), mib)

        def sample() -> None:
            while not stop.is_set():
                sums: dict[str, float] = {}
                with contextlib.suppress(psutil.Error):
                    for p in [root, *root.children(recursive=True)]:
                        with contextlib.suppress(psutil.Error):
                            label = _label_in_tree(p, root.pid)
                            sums[label] = sums.get(label, 0.0) + p.memory_info().rss / 2**20
                            if label == "driver JVM":
                                # psutil >= 6 names it net_connections (pyproject: >= 5.9)
                                listed = getattr(p, "net_connections", None) or p.connections
                                for c in listed("tcp"):
                                    if c.status == psutil.CONN_LISTEN and c.laddr:
                                        ports.add(c.laddr.port)
                if ports:
                    for eid, members in _executor_groups(ports, apps).items():
                        jvm, workers = members[0], members[1:]
                        with contextlib.suppress(psutil.Error):
                            sums[f"executor {eid} JVM"] = jvm.memory_info().rss / 2**20
                        py = 0.0
                        for w in workers:
                            with contextlib.suppress(psutil.Error):
                                py += w.memory_info().rss / 2**20
                        if workers:
                            sums[f"executor {eid} Python workers"] = py
                for label, mib in sums.items():
                    keep(label, mib)
                stop.wait(POLL_S)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = proc.wait()
        wall = time.perf_counter() - start
        stop.set()
        sampler.join()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if code != 0:
        raise SystemExit(f"{' '.join(cmd[1:4])} failed ({code}): {stderr.strip()[-1500:]}")
    # short-lived helpers (spark-submit's shell, a resource tracker) round to nothing
    return Measured(wall, stdout, {k: v for k, v in peaks.items() if v >= 1}, ports, apps)


# ---- findings --------------------------------------------------------------------------
def summary(doc: dict[str, Any]) -> dict[str, Any]:
    """What the acceptance compares: exact and near-duplicate counts, PII and format
    columns (and the type-mismatch columns beside them)."""
    issues = doc["issues"]

    def count(kind: str) -> int:
        return sum(i["affected_count"] for i in issues if i["type"] == kind)

    def columns(*words: str) -> list[str]:
        return sorted(
            {i["column"] for i in issues if i["column"] and any(w in i["type"] for w in words)}
        )

    return {
        "rows": doc["rows"],
        "exact_duplicates": count("exact_duplicates"),
        "near_duplicates": count("near_duplicates"),
        "pii_columns": columns("pii"),
        "format_columns": columns("format"),
        "type_columns": columns("type_mismatch"),
    }


def scan(path: Path, engine: str, env: dict[str, str], home: Path) -> Measured:
    run_env = {**env, "DATRIX_HOME": str(home / engine)}
    return measure([DATRIX, "scan", str(path), "--engine", engine, "--format", "json"], run_env)


def table(rows: list[tuple[str, int, float, str, float]]) -> str:
    lines = [
        "| engine | rows | wall (s) | process | peak RSS (MiB) |",
        "|---|---:|---:|---|---:|",
    ]
    for engine, n, wall, label, mib in rows:
        lines.append(f"| {engine} | {n:,} | {wall:.1f} | {label} | {mib:,.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, action="append", help="rows (repeatable)")
    parser.add_argument("--data", type=Path, default=ROOT / "bench-data")
    parser.add_argument("--driver-memory", default="512m")
    parser.add_argument("--executor-memory", default=None)
    parser.add_argument("--master", default=None, help="default: deploy/local/up spark's")
    args = parser.parse_args()
    sizes = args.rows or [1_000_000]
    if any(n < 100 for n in sizes):
        raise SystemExit("--rows: at least 100")
    master = args.master or cluster_master()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATRIX_")}
    spark_env = {**env, "DATRIX_SPARK_MASTER": master}
    spark_env["DATRIX_SPARK_DRIVER_MEMORY"] = args.driver_memory
    if args.executor_memory:
        spark_env["DATRIX_SPARK_EXECUTOR_MEMORY"] = args.executor_memory
    rows_out: list[tuple[str, int, float, str, float]] = []
    notes: list[str] = []
    same = True
    for n in sizes:
        path, meta = ensure_data(n, args.data)
        log(f"{n:,} rows: {path} ({meta['bytes'] / 2**20:.0f} MiB)")
        with tempfile.TemporaryDirectory(prefix="bench-spark-") as tmp:
            spark = scan(path, "spark", spark_env, Path(tmp))
            log(f"  spark: {spark.wall:.1f} s")
            polars = scan(path, "polars", env, Path(tmp))
            log(f"  polars: {polars.wall:.1f} s")
        apps = [a for a in master_state()["completedapps"] if a["id"] in spark.apps]
        app = ", ".join(f"{a['id']} {a['state']} {a['cores']} cores" for a in apps) or "none seen"
        if not any(label.startswith("executor ") for label in spark.peaks):
            same = False
            notes.append(f"{n:,} rows: no executor of the application was seen on the cluster")
        for engine, m in (("spark", spark), ("polars", polars)):
            for label, mib in sorted(m.peaks.items()):
                rows_out.append((engine, n, m.wall, label, mib))
        s, p = summary(json.loads(spark.stdout)), summary(json.loads(polars.stdout))
        equal = s == p
        same &= equal
        notes.append(
            f"{n:,} rows (master {master}; the application: {app}): findings "
            + ("EQUAL" if equal else "DIFFERENT")
            + f": spark {json.dumps(s)}"
            + ("" if equal else f" / polars {json.dumps(p)}")
        )
    print(table(rows_out))
    print()
    for note in notes:
        print(f"- {note}")
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
