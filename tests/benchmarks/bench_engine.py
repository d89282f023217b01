"""The Polars scan engine alone on one Parquet file: wall time per phase and peak RSS.

    .venv/bin/python tests/benchmarks/bench_engine.py FILE.parquet [--bounded] [--json OUT]

No ingest, event store or report storage: ``PolarsScanEngine.scan`` in this process, with
RSS polled every 20 ms. ``--bounded`` forces the bounded path (``DATRIX_SCAN_IN_MEMORY_MB=0``)
to compare it with the in-memory one on the same file; ``--json`` writes the issues (type,
column, affected count) so two runs can be diffed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parquet", type=Path)
    parser.add_argument("--bounded", action="store_true", help="force the bounded path")
    parser.add_argument("--json", type=Path, help="write the issues here")
    args = parser.parse_args()
    from datrix.jobs.engine import ScanTuning
    from datrix.jobs.quality.polars_engine import PolarsScanEngine
    from datrix.jobs.report import ScanOptions
    from datrix.streams.settings import load_settings

    # the DATRIX_SCAN_* settings, as a job process gets them
    tuning = ScanTuning.from_settings(load_settings())
    if args.bounded:
        tuning = dataclasses.replace(tuning, in_memory_mb=0)

    me = psutil.Process()
    peak = [me.memory_info().rss]

    def poll() -> None:
        while True:
            peak[0] = max(peak[0], me.memory_info().rss)
            time.sleep(0.02)

    threading.Thread(target=poll, daemon=True).start()
    start = time.perf_counter()
    last = [""]

    def progress(phase: str, done: int, total: int) -> None:
        if phase != last[0]:
            last[0] = phase
            mib = peak[0] / 2**20
            print(f"  {time.perf_counter() - start:7.1f} s  {phase:<10} peak {mib:,.0f} MiB")

    report = PolarsScanEngine(tuning).scan(args.parquet, ScanOptions(), progress)
    wall = time.perf_counter() - start
    print(f"total {wall:.1f} s, peak RSS {peak[0] / 2**20:,.0f} MiB, {len(report.issues)} issues")
    if args.json:
        issues = [(i.type, i.column, i.affected_count) for i in report.issues]
        args.json.write_text(json.dumps({"rows": report.rows, "issues": issues}, indent=1))


if __name__ == "__main__":
    main()
