"""Benchmark: PII inside free text: precision and recall per entity type on generated
notes with ground truth, and the speed of the per-value search on 1,000,000 short texts.

    PYTHONPATH=. .venv/bin/python tests/benchmarks/bench_pii.py [--rows N] [--speed-rows N]

* Accuracy: ``datrix bench generate --rows N --free-text`` (the same ``generate``; default
  100,000 rows, seed 0): its ``comment`` column holds PII inside ~5 % of the notes. Per
  kind, the rows where ``find_pii_spans`` finds that kind are compared with the rows the
  generator put it in: precision, recall. Then the Polars engine scans the file and its
  ``pii_detected`` issue on ``comment`` is compared with the truth's PII rows, and no
  other column may gain a finding.
* Speed: ``--speed-rows`` (default 1,000,000) notes from the same note generator, searched
  by ``pii.embedded_pii`` (Polars' prefilter regex over every value, the exact detectors
  on the values it lets through): wall time, rows per second, the share the prefilter
  passed. Single process, on whatever cores the machine has.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import polars as pl

from datrix.jobs.bench.generate import FREE_TEXT_KINDS, _comments, generate
from datrix.jobs.quality import pii
from datrix.jobs.quality.polars_engine import PolarsScanEngine
from datrix.jobs.report import ScanOptions


def accuracy(rows: int, seed: int) -> dict[str, tuple[int, float, float]]:
    """kind -> (truth rows, precision, recall); also checks the scan's finding."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        truth = generate(rows, out, seed, free_text=True)
        info = truth["free_text"]
        notes = pl.read_parquet(out / "dirty.parquet", columns=["comment"])["comment"]
        found = [{s.kind for s in pii.find_pii_spans(v)} for v in notes.to_list()]
        result = {}
        for kind in FREE_TEXT_KINDS:
            expected = set(info["rows"][kind])
            got = {i for i, k in enumerate(found) if kind in k}
            hits = len(expected & got)
            result[kind] = (len(expected), hits / max(1, len(got)), hits / max(1, len(expected)))
        started = time.perf_counter()
        report = PolarsScanEngine().scan(out / "dirty.parquet", ScanOptions())
        took = time.perf_counter() - started
        flagged = {i.column: i for i in report.issues if i.type == "pii_detected"}
        expected_columns = {*truth["pii_columns"], "comment"}
        issue = flagged.get("comment")
        same = issue is not None and list(report.affected_rows[issue.id]) == info["pii_rows"]
        print(
            f"scan of {rows:,} rows: {took:.1f} s; PII columns as expected: "
            f"{set(flagged) == expected_columns}; comment rows equal the truth: {same}"
        )
    return result


def speed(rows: int, seed: int) -> tuple[float, float]:
    """(seconds, share passed by the prefilter) of ``embedded_pii`` on ``rows`` notes."""
    names = pl.Series(["Ada"] * rows)
    notes, _ = _comments(seed, names, pl.Series(["Lovelace"] * rows))
    passed = notes.str.contains(pii.PREFILTER).mean()
    started = time.perf_counter()
    result = pii.embedded_pii(notes)
    took = time.perf_counter() - started
    assert result.kinds.any()
    return took, float(passed or 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--speed-rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print("| kind | truth rows | precision | recall |\n| --- | --- | --- | --- |")
    for kind, (n, precision, recall) in accuracy(args.rows, args.seed).items():
        print(f"| {kind} | {n:,} | {precision:.4f} | {recall:.4f} |")
    took, passed = speed(args.speed_rows, args.seed)
    print(
        f"per-value search of {args.speed_rows:,} notes: {took:.1f} s "
        f"({args.speed_rows / took:,.0f} rows/s; prefilter passed {100 * passed:.1f} %)"
    )


if __name__ == "__main__":
    main()
