"""The near-duplicate step on Spark (``spark_near_duplicates``) against the Polars engine's
(``find_near_duplicates_in``) on one Parquet file: time and peak memory per process.

    python tests/benchmarks/bench_spark_near_duplicates.py polars FILE
    python tests/benchmarks/bench_spark_near_duplicates.py spark FILE [MASTER] [DRIVER_MEMORY]

``BENCH_IN_MEMORY_MB`` and ``BENCH_SEGMENT_ROWS`` set the tuning both plan the search with
(``DATRIX_SCAN_IN_MEMORY_MB``, ``DATRIX_NEAR_DUP_SEGMENT_ROWS``; defaults 512 and 500,000).

Both first profile the file and find its exact copies with Polars in a child process (the
step's inputs, as each engine's earlier phases compute them; equal by the parity tests),
then time the near-duplicate step alone. ``spark`` reports the peak RSS of the driver's
Python, of its JVM (the executors too under ``local[N]``) and of the largest Python worker
(the segment searches), sampled every 0.2 s; ``polars`` its own process's peak.
"""

from __future__ import annotations

import json
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from datrix.jobs.engine import ScanTuning


def inputs(path: Path, out: Path) -> None:
    """Profile and exact copies, pickled to ``out`` (run in a child process)."""
    from datrix.jobs.quality.detection import duplicate_rows
    from datrix.jobs.quality.profiling import profile_columns
    from datrix.jobs.quality.table import ScanTable

    t = ScanTuning()
    table = ScanTable.open(path, t.in_memory_mb, t.chunk_rows, t.in_memory_rows)
    schema = dict(table.lazy.collect_schema())
    rows, stats = profile_columns(table, schema)
    redundant = duplicate_rows(table, list(schema))
    out.write_bytes(pickle.dumps((rows, stats, redundant)))


def _hwm(pid: int) -> int:
    """Peak resident set of process ``pid`` in bytes (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        children = []
        try:  # every thread's children: the JVM starts the Python workers from others
            for task in Path(f"/proc/{parent}/task").iterdir():
                children += (task / "children").read_text().split()
        except OSError:
            continue
        found += [int(c) for c in children]
        todo += [int(c) for c in children]
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def main() -> None:
    engine, path = sys.argv[1], Path(sys.argv[2])
    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp) / "inputs.pickle"
        subprocess.run(
            [sys.executable, __file__, "inputs", str(path), str(saved)], check=True, timeout=3600
        )
        rows, stats, redundant = pickle.loads(saved.read_bytes())
    figures: dict[str, Any] = {"engine": engine, "rows": rows, "columns": len(stats)}
    # BENCH_IN_MEMORY_MB / BENCH_SEGMENT_ROWS: the tuning both engines plan the search with
    tuning = ScanTuning(
        in_memory_mb=float(os.environ.get("BENCH_IN_MEMORY_MB", "512")),
        segment_rows=int(os.environ.get("BENCH_SEGMENT_ROWS", "500000")),
    )
    if engine == "polars":
        from datrix.jobs.quality.near_duplicates import find_near_duplicates_in
        from datrix.jobs.quality.table import ScanTable

        t = tuning
        start = time.perf_counter()
        table = ScanTable.open(path, t.in_memory_mb, t.chunk_rows, t.in_memory_rows)
        schema = dict(table.lazy.collect_schema())
        near = find_near_duplicates_in(table, schema, stats, redundant, 0, t.segment_rows)
        figures["seconds"] = round(time.perf_counter() - start, 1)
        figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    else:
        from datrix.jobs.quality import spark_engine

        master = sys.argv[3] if len(sys.argv) > 3 else "local[2]"
        memory = sys.argv[4] if len(sys.argv) > 4 else "512m"
        spark = spark_engine.spark_session(master, memory)
        peaks: dict[int, int] = {}
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                for pid in _descendants(os.getpid()):
                    peaks[pid] = max(peaks.get(pid, 0), _hwm(pid))
                stop.wait(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        raw = spark.read.parquet(str(path))
        names = list(raw.columns)
        cols = [f"c{i}" for i in range(len(names))]
        df = spark_engine._with_row_index(spark, raw).toDF(*cols, spark_engine.IDX)
        position = dict(zip(names, cols, strict=True))
        start = time.perf_counter()
        near = spark_engine._near_duplicates(df, position, stats, rows, redundant, 0, path, tuning)
        figures["seconds"] = round(time.perf_counter() - start, 1)
        stop.set()
        sampler.join()
        java = [p for p in peaks if "java" in _cmdline(p).split(" ")[0]]
        figures["driver_python_peak_mb"] = (
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        )
        figures["jvm_peak_mb"] = max((peaks[p] for p in java), default=0) >> 20
        workers = [v for p, v in peaks.items() if p not in java]
        figures["largest_python_worker_peak_mb"] = max(workers, default=0) >> 20
        figures["master"], figures["driver_memory"] = master, memory
    figures.update(
        pairs=len(near.pairs),
        segments=near.segments,
        partition=near.partition_column,
        candidates=near.candidates,
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    if sys.argv[1] == "inputs":
        inputs(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        main()
