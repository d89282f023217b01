"""Benchmark: dedupe + impute + normalise on the generator's 1,000,000 x 50 table, the
transform library with provenance (``polars_transforms.apply_all``) next to the same three
operations written directly in Polars with no provenance, in the same run on the same file.

    .venv/bin/python tests/benchmarks/bench_fix.py [--rows N] [--repeat K] [--no-near]

* The file: ``datrix bench generate --rows N --seed 0`` (made once under
  ``bench-data/rows-N/``; 1,000,000 rows x 50 columns by default).
* The fixes are those a scan of that file asks for: canonical spelling of every
  case-variant column, median (numbers) / mode (other types) imputation of every column
  with nulls, exact dedupe (the scan's rule: every row equal to an earlier one goes).
* Each measurement is a fresh child process (``--child``): read the Parquet file, fix,
  write the fixed table (``base.write_table``: zstd, statistics) and, for Datrix, the
  provenance Parquet. Wall time of the whole process, the fix time alone (read and writes
  excluded), and the child's exact peak RSS (``ru_maxrss`` from ``wait4``).
* The baseline's fixed table must be byte for byte the library's (same rows, same values,
  same writer), or the run stops: the comparison is of the same work.
* ``bounded``: the same fixes with ``polars_bounded.apply_all_bounded`` (a chunk of rows
  at a time from the file, as a version above the in-memory threshold is fixed); its
  fixed table must have the same content (rows and values; the writer's row groups
  differ) as the others.
* ``near`` (unless ``--no-near``): the library's run with near-duplicate dedupe added
  (``Dedupe("near")``: the scan's Fellegi-Sunter search, clusters, most complete row kept);
  plain Polars has no baseline for it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_ROWS = 1_000_000


# ---------------------------------------------------------------------------- child side


def _plan(truth: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(case-variant columns to normalise, columns with nulls to impute)."""
    normalise = list(truth["case_variant_columns"])
    impute = [c for c, n in truth["nulls"].items() if n > 0]
    return normalise, impute


def _specs(truth: dict[str, Any], near: bool) -> list[Any]:
    from datrix.jobs.transforms.specs import Dedupe, FixSpec, Impute, Normalise

    normalise, impute = _plan(truth)
    specs: list[FixSpec] = [Normalise(c) for c in normalise]
    specs += [Impute(c) for c in impute]
    specs.append(Dedupe("exact"))
    if near:
        specs.append(Dedupe("near"))
    return specs


def _child_bounded(data: Path, out: Path, truth: dict[str, Any]) -> dict[str, Any]:
    from datrix.jobs.transforms.polars_bounded import apply_all_bounded

    started = time.perf_counter()
    done = apply_all_bounded(
        _specs(truth, near=False), data, out / "fixed.parquet", out / "provenance.parquet"
    )
    return {
        "read": 0.0,
        "fix": time.perf_counter() - started,
        "write": 0.0,
        "rows": done.rows,
        "cells_changed": done.cells_changed,
        "rows_removed": done.rows_removed,
    }


def _child_datrix(data: Path, out: Path, truth: dict[str, Any], near: bool) -> dict[str, Any]:
    import polars as pl

    from datrix.jobs.transforms import polars_transforms as pt
    from datrix.jobs.transforms.base import ROW_ID, write_table

    started = time.perf_counter()
    table = pl.read_parquet(data)
    read = time.perf_counter() - started
    specs = _specs(truth, near)
    started = time.perf_counter()
    done = pt.apply_all(specs, table)
    fix = time.perf_counter() - started
    started = time.perf_counter()
    write_table(done.table.drop(ROW_ID), out / "fixed.parquet")
    write_table(done.changes, out / "provenance.parquet")
    write = time.perf_counter() - started
    changes = done.changes
    return {
        "read": read,
        "fix": fix,
        "write": write,
        "rows": done.table.height,
        "cells_changed": changes.filter(pl.col("column").is_not_null()).height,
        "rows_removed": changes.filter(pl.col("column").is_null()).height,
    }


def _child_polars(data: Path, out: Path, truth: dict[str, Any]) -> dict[str, Any]:
    """The same three fixes in plain Polars: no row ids, no change rows."""
    import polars as pl

    from datrix.jobs.transforms.base import write_table

    started = time.perf_counter()
    table = pl.read_parquet(data)
    read = time.perf_counter() - started
    normalise, impute = _plan(truth)
    started = time.perf_counter()
    # canonical spelling: per key (trimmed, spaces collapsed, lower-cased) the commonest
    # spelling, ties to the smaller value
    exprs = []
    for c in normalise:
        key = pl.col("v").str.strip_chars().str.replace_all(r"\s+", " ").str.to_lowercase()
        counts = (
            table.group_by(pl.col(c).alias("v"))
            .len()
            .drop_nulls()
            .with_columns(key.alias("k"))
            .sort(["k", "len", "v"], descending=[False, True, False])
        )
        best = counts.group_by("k", maintain_order=True).first()
        mapping = counts.join(best.select("k", canonical="v"), on="k")
        exprs.append(pl.col(c).replace(mapping["v"], mapping["canonical"]))
    table = table.with_columns(exprs)
    fills = []
    for c in impute:
        s = table[c]
        if s.dtype.is_numeric():
            known = s.fill_nan(None) if s.dtype.is_float() else s
            median = known.median()
            value = pl.lit(median).round(0) if s.dtype.is_integer() else pl.lit(median)
            col = pl.col(c).fill_nan(None) if s.dtype.is_float() else pl.col(c)
            fills.append(col.fill_null(value.cast(s.dtype)))
        else:
            fills.append(pl.col(c).fill_null(s.drop_nulls().mode().sort()[0]))
    table = table.with_columns(fills)
    table = table.unique(keep="first", maintain_order=True)
    fix = time.perf_counter() - started
    started = time.perf_counter()
    write_table(table, out / "fixed.parquet")
    write = time.perf_counter() - started
    return {"read": read, "fix": fix, "write": write, "rows": table.height}


def child(args: argparse.Namespace) -> None:
    truth = json.loads((args.data.parent / "ground_truth.json").read_text())
    out = Path(args.out)
    if args.child == "polars":
        result = _child_polars(args.data, out, truth)
    elif args.child == "bounded":
        result = _child_bounded(args.data, out, truth)
    else:
        result = _child_datrix(args.data, out, truth, near=args.child == "near")
    fixed = (out / "fixed.parquet").read_bytes()
    result["sha256"] = hashlib.sha256(fixed).hexdigest()
    result["content"] = content_digest(out / "fixed.parquet")
    print(json.dumps(result))


def content_digest(path: Path) -> str:
    """SHA-256 of the rows' hashes in order, read a batch at a time: equal for equal rows
    and values whatever the row groups."""
    import polars as pl
    import pyarrow.parquet as pq

    digest = hashlib.sha256()
    for batch in pq.ParquetFile(path).iter_batches(batch_size=65_536):
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        digest.update(frame.hash_rows(seed=0).to_numpy().tobytes())
    return digest.hexdigest()


# ---------------------------------------------------------------------------- parent side


def measure(cmd: list[str]) -> tuple[float, float, dict[str, Any]]:
    """Wall seconds, peak RSS (MiB, the kernel's ``ru_maxrss``) and the child's JSON."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{' '.join(cmd[-4:])} failed: {err.read()[-1500:]}")
        result = json.loads(out.read().strip().splitlines()[-1])
    return wall, usage.ru_maxrss / 1024, result


def dataset(rows: int) -> Path:
    folder = ROOT / "bench-data" / f"rows-{rows}"
    path = folder / "dirty.parquet"
    if not (path.exists() and (folder / "ground_truth.json").exists()):
        from datrix.jobs.bench.generate import generate

        print(f"generating {rows:,} rows under {folder} ...", file=sys.stderr)
        generate(rows, folder, seed=0)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--no-near", action="store_true")
    parser.add_argument("--child", choices=["datrix", "polars", "bounded", "near"])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    data = dataset(args.rows)
    import polars as pl

    width = pl.read_parquet_schema(data)
    print(f"{args.rows:,} rows x {len(width)} columns, {data}", file=sys.stderr)
    kinds = ["polars", "datrix", "bounded"] + ([] if args.no_near else ["near"])
    results: dict[str, list[tuple[float, float, dict[str, Any]]]] = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory(prefix="bench-fix-") as tmp:
        for attempt in range(args.repeat):
            for kind in kinds:
                out = Path(tmp) / f"{kind}-{attempt}"
                out.mkdir()
                cmd = [sys.executable, __file__, "--child", kind, "--data", str(data)]
                cmd += ["--out", str(out)]
                results[kind].append(measure(cmd))
                wall, rss, r = results[kind][-1]
                print(
                    f"{kind:7} wall {wall:6.1f} s  fix {r['fix']:6.1f} s  read {r['read']:5.1f} s"
                    f"  write {r['write']:5.1f} s  peak RSS {rss:7.0f} MiB  rows {r['rows']:,}",
                    file=sys.stderr,
                )
    same = {r["sha256"] for k in ("polars", "datrix") for _, _, r in results[k]}
    if len(same) != 1:
        raise SystemExit("the baseline's fixed table differs from the library's: not the same work")
    content = {r["content"] for k in ("polars", "datrix", "bounded") for _, _, r in results[k]}
    if len(content) != 1:
        raise SystemExit("the bounded run's fixed table differs from the in-memory one")
    print(
        "| run | process wall (s) | read (s) | fix (s) | write (s) | peak RSS (MiB) "
        "| rows out | cells changed | rows removed |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for kind in kinds:
        wall, _, r = min(results[kind], key=lambda t: t[2]["fix"])
        rss = max(x[1] for x in results[kind])
        print(
            f"| {kind} | {wall:.1f} | {r['read']:.1f} | {r['fix']:.1f} | {r['write']:.1f} "
            f"| {rss:,.0f} | {r['rows']:,} | {r.get('cells_changed', 0):,} "
            f"| {r.get('rows_removed', 0):,} |"
        )


if __name__ == "__main__":
    main()
