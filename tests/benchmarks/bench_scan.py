"""Benchmark: `datrix scan` of a 1,000,000-row x ~50-column file against a plain Polars
floor measured in the same run on the same file.

    .venv/bin/python tests/benchmarks/bench_scan.py [--rows N] [--data DIR]

Each measurement runs in a fresh child process so peak RSS (ru_maxrss of the child) is
its own. Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATRIX = str(Path(sys.executable).with_name("datrix"))

FLOOR = r"""
import sys, polars as pl
path = sys.argv[1]
csv = path.endswith('.csv')
lf = pl.scan_csv(path, infer_schema_length=10000) if csv else pl.scan_parquet(path)
df = lf.collect()
num = [c for c, t in df.schema.items() if t.is_numeric()]
stats = df.select(
    [pl.col(c).null_count().alias(f"{c}__n") for c in df.columns]
    + [pl.col(c).min().alias(f"{c}__min") for c in num]
    + [pl.col(c).max().alias(f"{c}__max") for c in num]
    + [pl.col(c).mean().alias(f"{c}__mean") for c in num]
    + [pl.col(c).std().alias(f"{c}__std") for c in num]
)
q = df.select([pl.col(c).quantile(p).alias(f"{c}_{p}") for c in num for p in (0.25, 0.5, 0.75)])
top = [df.group_by(c).len().top_k(10, by="len") for c in df.columns]
h = df.select(pl.struct(pl.all()).hash().alias("h"))["h"]
rep = df.filter(h.is_duplicated())
dups = rep.height - rep.unique().height
print(dups)
"""


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run cmd in a fresh process; return (wall s, its peak RSS in MiB, stdout)."""
    if not Path("/usr/bin/time").exists():
        raise SystemExit("needs GNU time: apt-get install time")
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        start = time.perf_counter()
        proc = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", tf.name, *cmd],
            capture_output=True,
            text=True,
            env=env,
        )
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"{cmd[0]} failed: {proc.stderr.strip()[:500]}")
        rss_kib = int(Path(tf.name).read_text().strip().splitlines()[-1])
        return wall, rss_kib / 1024, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--data", type=Path, default=ROOT / "bench-data")
    args = parser.parse_args()
    data = args.data / f"rows-{args.rows}"
    if not (data / "ground_truth.json").exists():
        print(f"generating {args.rows:,} rows into {data} ...", file=sys.stderr)
        wall, rss, _ = timed(
            [
                DATRIX,
                "bench",
                "generate",
                "--rows",
                str(args.rows),
                "--out",
                str(data),
                "--seed",
                "0",
            ]
        )
        print(f"generated in {wall:.1f} s", file=sys.stderr)
    truth = json.loads((data / "ground_truth.json").read_text())
    results = []
    for fmt in ("csv", "parquet"):
        path = str(data / f"dirty.{fmt}")
        floor_wall, floor_rss, floor_out = timed([sys.executable, "-c", FLOOR, path])
        with tempfile.TemporaryDirectory() as home:
            env = {**os.environ, "DATRIX_HOME": home}
            wall, rss, out = timed([DATRIX, "scan", path, "--format", "json"], env)
        doc = json.loads(out)
        dup = next(i["affected_count"] for i in doc["issues"] if i["type"] == "exact_duplicates")
        assert dup == truth["exact_duplicates"]["count"] == int(floor_out.strip()), "dup mismatch"
        results.append((fmt, floor_wall, floor_rss, wall, rss))
    size = (data / "dirty.csv").stat().st_size / 2**20
    print(
        f"\n{args.rows:,} rows x {truth['columns']} columns (CSV {size:.0f} MiB), "
        f"{os.cpu_count()} cores, Python {platform.python_version()}\n"
    )
    print(
        "| input | Polars floor (s) | floor peak RSS (MiB) | datrix scan (s) | "
        "scan peak RSS (MiB) | scan / floor |"
    )
    print("|---|---|---|---|---|---|")
    for fmt, fw, fr, w, r in results:
        print(f"| {fmt} | {fw:.1f} | {fr:.0f} | {w:.1f} | {r:.0f} | {w / fw:.1f}x |")


if __name__ == "__main__":
    main()
