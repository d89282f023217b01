"""Benchmark: a full `datrix scan` next to the tuned plain-Polars floor, whylogs and
ydata-profiling, in the same run on the same file.

    .venv/bin/python tests/benchmarks/bench_scan.py [--rows N | --quick] [--skip-peers]
        [--repeat K] [--big-csv GB] [--no-docs]

* The file: ``datrix bench generate --rows N --seed 0`` (1,000,000 x 50 by default; made
  once under ``bench-data/``), scanned as CSV and as Parquet.
* Every measurement is a fresh process: wall time of the whole process, and peak RSS of the
  process tree (psutil polling every 20 ms, summed over the tree, and the kernel's exact
  ``ru_maxrss`` of the child from ``wait4``; the larger of the two).
* The floor (``peers/polars_floor.py``) is the tuned Polars script of
  shared/notes/peer-tools.md; its exact duplicate count must equal the generator's ground
  truth and Datrix's, or the run stops.
* whylogs (1.6.x fails on NumPy 2) and ydata-profiling each run from their own venv under
  ``~/.cache/datrix/peers/`` (created on first use, idempotent); for them the timed figure
  is the profiling call alone (``why.log(df).view()``, ``ProfileReport(df,
  minimal=True).to_json()``), not their pandas read or imports.
* ``--wide COLSxROWS`` (e.g. ``2000x10000``) builds a wide Parquet file under
  ``bench-data/`` (mixed integer, float, text and category columns, every 7th with 20 %
  nulls; reused) and times the tuned floor and `datrix scan` on it, for the "wide" block.
* ``--big-csv GB`` builds a ~GB CSV under ``bench-data/`` (1M-row chunks with fresh seeds,
  streamed to disk) and scans it with `datrix scan`, recording peak RSS during ingest
  (CSV -> Parquet) and after it (the scan job).

Prints a rich table and, for the 1,000,000-row run, rewrites the generated part of the
"## Scan of 1,000,000 rows x 50 columns" section of docs/benchmarks.md (nothing else).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[2]
PEERS = Path(__file__).resolve().parent / "peers"
DATRIX = str(Path(sys.executable).with_name("datrix"))
DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## Scan of 1,000,000 rows x 50 columns"
PEER_HOME = Path.home() / ".cache" / "datrix" / "peers"
DOC_ROWS = 1_000_000

# Pinned so that every run measures the same versions. whylogs 1.6.4 uses np.unicode_,
# removed in NumPy 2; pyarrow < 19 and pandas < 2.3 still support NumPy 1.26.
PEER_REQUIREMENTS: dict[str, list[str]] = {
    "whylogs": ["whylogs==1.6.4", "numpy<2", "pandas>=2,<2.3", "pyarrow>=15,<19"],
    "ydata": ["ydata-profiling==4.18.4", "pyarrow>=15"],
}
PEER_SCRIPTS = {"whylogs": "whylogs_profile.py", "ydata": "ydata_profile.py"}
PEER_ENV = {"WHYLOGS_NO_ANALYTICS": "True", "YDATA_PROFILING_NO_ANALYTICS": "True"}

console = Console(stderr=True)


@dataclass
class Run:
    wall: float  # the whole fresh process, seconds
    rss_mib: float  # peak RSS of the process tree
    stdout: str
    phase_rss_mib: dict[str, float] = field(default_factory=dict)
    killed: str = ""  # set when the run passed the RSS limit and was stopped


@dataclass
class Row:
    tool: str
    fmt: str
    wall: float
    timed: float  # the figure compared with the floor (see TIMED_NOTE)
    rss_mib: float
    note: str = ""


def measure(
    cmd: list[str],
    env: dict[str, str] | None = None,
    phase_of: Any = None,
    rss_limit_mib: float | None = None,
) -> Run:
    """Run ``cmd`` in a fresh process; wall time and peak RSS of its process tree.

    ``phase_of()``, when given, names the phase the run is in at each sample, and the
    peak RSS is also kept per phase. A tree whose RSS passes ``rss_limit_mib`` is killed
    (the machine is shared) and the run comes back with ``killed`` saying when and where."""
    peaks: dict[str, float] = {}
    killed: list[str] = []
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, text=True)
        parent = psutil.Process(proc.pid)
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                total = 0
                with contextlib.suppress(psutil.Error):
                    for p in [parent, *parent.children(recursive=True)]:
                        with contextlib.suppress(psutil.Error):
                            total += p.memory_info().rss
                phase = phase_of() if phase_of else "all"
                peaks[phase] = max(peaks.get(phase, 0.0), total / 2**20)
                if rss_limit_mib and total / 2**20 > rss_limit_mib and not killed:
                    killed.append(
                        f"killed at {total / 2**30:.1f} GiB RSS after "
                        f"{time.perf_counter() - start:.0f} s, in {phase}"
                    )
                    with contextlib.suppress(psutil.Error):
                        for p in [*parent.children(recursive=True), parent]:
                            with contextlib.suppress(psutil.Error):
                                p.kill()
                stop.wait(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        stop.set()
        sampler.join()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if killed:
        return Run(wall, max(peaks.values()), "", peaks, killed[0])
    if proc.returncode != 0:
        tail = stderr.strip()[-800:]
        raise SystemExit(f"{Path(cmd[0]).name} {' '.join(cmd[1:3])} failed: {tail}")
    rss = max([usage.ru_maxrss / 1024, *peaks.values()])  # ru_maxrss is in KiB on Linux
    return Run(wall, rss, stdout, peaks)


def ensure_peer_venv(name: str) -> Path:
    """``~/.cache/datrix/peers/NAME`` with PEER_REQUIREMENTS[NAME]; reused when it exists
    with the same requirements and imports them (idempotent)."""
    home = PEER_HOME / name
    python = home / "bin" / "python"
    stamp = home / "datrix-requirements.txt"
    wanted = "\n".join(PEER_REQUIREMENTS[name]) + "\n"
    module = {"whylogs": "whylogs", "ydata": "ydata_profiling"}[name]
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        probe = subprocess.run(
            [str(python), "-c", f"import {module}"],
            capture_output=True,
            env={**os.environ, **PEER_ENV},
        )
        if probe.returncode == 0:
            return python
    console.print(f"[bold]setting up {home} ({', '.join(PEER_REQUIREMENTS[name])}) ...")
    shutil.rmtree(home, ignore_errors=True)
    home.parent.mkdir(parents=True, exist_ok=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(home)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "psutil", *PEER_REQUIREMENTS[name]],
        check=True,
    )
    stamp.write_text(wanted)
    return python


def peer_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, **PEER_ENV}


def warm(path: Path) -> None:
    """Read the file once so that no tool pays for a cold page cache and the next doesn't."""
    with path.open("rb") as fh:
        while fh.read(1 << 24):
            pass


def ensure_data(rows: int, data_root: Path) -> Path:
    data = data_root / f"rows-{rows}"
    if not (data / "ground_truth.json").exists():
        console.print(f"generating {rows:,} rows into {data} ...")
        run = measure(
            [DATRIX, "bench", "generate", "--rows", str(rows), "--out", str(data), "--seed", "0"]
        )
        console.print(f"generated in {run.wall:.1f} s")
    return data


def scan_duplicates(stdout: str) -> int:
    doc = json.loads(stdout)
    return int(
        next((i["affected_count"] for i in doc["issues"] if i["type"] == "exact_duplicates"), 0)
    )


def datrix_scan(path: Path, with_phases: bool = False, rss_limit_mib: float | None = None) -> Run:
    with tempfile.TemporaryDirectory(prefix="datrix-bench-") as home:
        env = {**os.environ, "DATRIX_HOME": home}
        tmp = Path(home) / "tmp"

        def phase() -> str:
            # scan_file ingests into DATRIX_HOME/tmp/<workdir> and removes it afterwards.
            try:
                return "ingest" if any(tmp.iterdir()) else "scan"
            except FileNotFoundError:
                return "scan"

        return measure(
            [DATRIX, "scan", str(path), "--format", "json"],
            env,
            phase if with_phases else None,
            rss_limit_mib,
        )


def bench_file(path: Path, truth_dups: int, peers: dict[str, Path], repeat: int) -> list[Row]:
    fmt = path.suffix.lstrip(".")
    rows: list[Row] = []
    warm(path)
    floors = [measure([sys.executable, str(PEERS / "polars_floor.py"), str(path)])]
    floor_dups = json.loads(floors[0].stdout)["duplicates"]
    scans = [datrix_scan(path)]
    for _ in range(repeat - 1):
        floors.append(measure([sys.executable, str(PEERS / "polars_floor.py"), str(path)]))
        scans.append(datrix_scan(path))
    dups = scan_duplicates(scans[0].stdout)
    if not dups == truth_dups == floor_dups:
        raise SystemExit(
            f"{path.name}: exact duplicates differ: datrix {dups}, floor {floor_dups}, "
            f"ground truth {truth_dups}"
        )
    floor = min(floors, key=lambda r: r.wall)
    scan = min(scans, key=lambda r: r.wall)
    rows.append(
        Row("Polars floor (tuned)", fmt, floor.wall, floor.wall, max(r.rss_mib for r in floors))
    )
    rows.append(
        Row("datrix scan", fmt, scan.wall, scan.wall, max(r.rss_mib for r in scans), "full")
    )
    console.print(
        f"{path.name}: floor {floor.wall:.1f} s / {floor.rss_mib:.0f} MiB, "
        f"datrix {scan.wall:.1f} s / {scan.rss_mib:.0f} MiB"
    )
    for name, python in peers.items():
        run = measure([str(python), str(PEERS / PEER_SCRIPTS[name]), str(path)], peer_env())
        info = json.loads(run.stdout.strip().splitlines()[-1])
        label = {"whylogs": "whylogs", "ydata": "ydata-profiling minimal"}[name]
        label += f" {info['version']}"
        note = "no dup count"
        if name == "ydata":
            note += f", JSON {info['json_bytes'] / 2**20:.0f} MiB"
        rows.append(Row(label, fmt, run.wall, float(info["seconds"]), run.rss_mib, note))
        console.print(f"{path.name}: {label} {info['seconds']:.1f} s / {run.rss_mib:.0f} MiB")
    return rows


TIMED_NOTE = (
    "`time s` is what is compared with the floor: the whole fresh process for the floor "
    "and for `datrix scan` (start-up, read, ingest, every detector, event store, report); "
    "the profiling call alone for whylogs (`why.log(df).view()`) and ydata-profiling "
    "(`ProfileReport(df, minimal=True).to_json()`), whose pandas read, imports and "
    "start-up are in `process s` only, which favours them."
)


def show(rows: list[Row]) -> None:
    floors = {r.fmt: r for r in rows if r.tool.startswith("Polars floor")}
    table = Table(title="scan benchmark (ratios against the floor of the same run)")
    for col in ("tool", "input", "time s", "process s", "peak RSS MiB", "x floor", "note"):
        table.add_column(col, justify="left" if col in ("tool", "input", "note") else "right")
    for r in rows:
        table.add_row(
            r.tool,
            r.fmt,
            f"{r.timed:.1f}",
            f"{r.wall:.1f}",
            f"{r.rss_mib:,.0f}",
            f"{r.timed / floors[r.fmt].timed:.1f}x",
            r.note,
        )
    Console(width=None if sys.stdout.isatty() else 150).print(table)


def markdown(rows: list[Row], header: str) -> str:
    floors = {r.fmt: r for r in rows if r.tool.startswith("Polars floor")}
    lines = [
        header,
        "",
        "| date | tool | file | time s | process s | peak RSS MiB | time / floor | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    today = dt.date.today().isoformat()
    for r in rows:
        ratio = r.timed / floors[r.fmt].timed
        lines.append(
            f"| {today} | {r.tool} | dirty.{r.fmt} | {r.timed:.1f} | {r.wall:.1f} | "
            f"{r.rss_mib:,.0f} | {ratio:.1f}x | {r.note} |"
        )
    return "\n".join(lines)


def update_docs(block: str, name: str, keep_other_files: bool = False) -> None:
    """Replace the ``name`` block (between its markers) in the scan section of
    docs/benchmarks.md; add it at the end of the section when missing. Nothing outside
    that section is touched. ``keep_other_files`` keeps the old block's table rows for
    files the new block has no row for."""
    begin, end = f"<!-- bench_scan:{name}:begin -->", f"<!-- bench_scan:{name}:end -->"
    text = DOCS.read_text()
    lines = text.split("\n")
    try:
        head = lines.index(SECTION)
    except ValueError:
        raise SystemExit(f"{DOCS}: no line {SECTION!r}; not updated") from None
    stop = next((i for i in range(head + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    section = lines[head:stop]
    body = block.rstrip("\n").split("\n")
    if begin in section and end in section:
        a, b = section.index(begin), section.index(end)
        if keep_other_files:
            body = merge_rows(section[a + 1 : b], body)
        section[a : b + 1] = [begin, *body, end]
    else:
        while section and not section[-1].strip():
            section.pop()
        section += ["", begin, *body, end, ""]
    lines[head:stop] = section
    tmp = DOCS.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines))
    tmp.replace(DOCS)
    console.print(f"updated the {name!r} block of {DOCS.relative_to(ROOT)}")


def build_big_csv(gib: float, data_root: Path) -> tuple[Path, dict[str, Any]]:
    """A ~``gib`` GiB CSV of 1M-row chunks generated with seeds 1, 2, ... (so rows do not
    repeat across chunks), streamed chunk by chunk to disk; reused when already built."""
    from datrix.jobs.bench.generate import generate

    target = data_root / f"big-{gib:g}gib.csv"
    meta_path = target.with_suffix(".json")
    if target.exists() and meta_path.exists():
        return target, json.loads(meta_path.read_text())
    free = shutil.disk_usage(data_root if data_root.exists() else ROOT).free
    if free < gib * 2**30 * 1.6 + 2**30:  # the CSV, the scan's Parquet copy, headroom
        raise SystemExit(f"--big-csv {gib:g}: only {free / 2**30:.1f} GiB free on disk")
    data_root.mkdir(parents=True, exist_ok=True)
    chunk_bytes = (data_root / f"rows-{DOC_ROWS}" / "dirty.csv").stat().st_size
    chunks = max(1, round(gib * 2**30 / chunk_bytes))
    meta: dict[str, Any] = {"rows": 0, "exact_duplicates": 0, "chunks": chunks}
    partial = target.with_suffix(".csv.partial")
    with partial.open("wb") as dst:
        for seed in range(1, chunks + 1):
            with tempfile.TemporaryDirectory(dir=data_root) as tmp:
                truth = generate(DOC_ROWS, Path(tmp), seed=seed)
                with (Path(tmp) / "dirty.csv").open("rb") as src:
                    header = src.readline()
                    if seed == 1:
                        dst.write(header)
                    shutil.copyfileobj(src, dst, 1 << 24)
            meta["rows"] += truth["rows"]
            meta["exact_duplicates"] += truth["exact_duplicates"]["count"]
            console.print(f"  chunk {seed}/{chunks} (seed {seed}) written")
    partial.replace(target)
    meta["bytes"] = target.stat().st_size
    meta_path.write_text(json.dumps(meta) + "\n")
    return target, meta


def bench_big_csv(gib: float, data_root: Path, rss_limit_gib: float) -> str:
    path, meta = build_big_csv(gib, data_root)
    warm(path)
    run = datrix_scan(path, with_phases=True, rss_limit_mib=rss_limit_gib * 1024)
    size = meta["bytes"] / 2**30
    ingest = run.phase_rss_mib.get("ingest", 0.0)
    scan = run.phase_rss_mib.get("scan", 0.0)
    if run.killed:
        outcome = f"**stopped**: {run.killed} (limit `--rss-limit {rss_limit_gib:g}`)"
    else:
        dups = scan_duplicates(run.stdout)
        same = dups == meta["exact_duplicates"]
        outcome = (
            f"exact duplicates {dups:,} ({'equal to' if same else 'NOT equal to'} the "
            f"generator's {meta['exact_duplicates']:,})"
        )
    table = Table(title=f"datrix scan of a {size:.2f} GiB CSV ({meta['rows']:,} rows)")
    for col in ("wall s", "peak RSS MiB", "ingest peak MiB", "scan-job peak MiB", "outcome"):
        table.add_column(col, justify="left" if col == "outcome" else "right")
    row = [f"{run.wall:.1f}", f"{run.rss_mib:,.0f}", f"{ingest:,.0f}", f"{scan:,.0f}", outcome]
    table.add_row(*row)
    Console(width=None if sys.stdout.isatty() else 150).print(table)
    return "\n".join(
        [
            BIG_CSV_INTRO,
            "",
            BIG_CSV_HEADER,
            "|---|---|---|---|---|---|---|",
            f"| {dt.date.today().isoformat()} | {path.name} ({size:.2f} GiB, "
            f"{meta['rows'] / 1e6:g}M rows) | " + " | ".join(row) + " |",
        ]
    )


def build_wide(columns: int, rows: int, data_root: Path) -> Path:
    """A ``columns`` x ``rows`` Parquet file of mixed columns (seeded; reused when built)."""
    import numpy as np
    import polars as pl

    target = data_root / f"wide-{columns}x{rows}.parquet"
    if target.exists():
        return target
    data_root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    series = []
    for j in range(columns):
        name = f"c{j}"
        kind = j % 5
        if kind == 0:
            s = pl.Series(name, rng.integers(0, 1000, rows))
        elif kind == 1:
            s = pl.Series(name, rng.normal(50, 10, rows))
        elif kind == 2:
            s = pl.Series(name, rng.integers(0, 10**6, rows)).cast(pl.String)
            s = pl.select(pl.lit("t") + s).to_series().alias(name)
        elif kind == 3:
            s = pl.Series(name, np.array(["red", "Red", "blue", "green"])[rng.integers(0, 4, rows)])
        else:
            s = pl.Series(name, rng.integers(0, 100, rows))
        if j % 7 == 0:
            gaps = pl.Series(rng.random(rows) < 0.2)
            s = pl.select(pl.when(gaps).then(None).otherwise(s)).to_series().alias(name)
        series.append(s)
    partial = target.with_suffix(".partial")
    pl.DataFrame(series).write_parquet(partial)
    partial.replace(target)
    return target


def bench_wide(shape: str, data_root: Path) -> str:
    """The floor and `datrix scan` on a wide file; the "wide" block of docs/benchmarks.md."""
    try:
        columns, rows = (int(x) for x in shape.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--wide: expected COLSxROWS such as 2000x10000, got {shape!r}") from None
    path = build_wide(columns, rows, data_root)
    warm(path)
    floor = measure([sys.executable, str(PEERS / "polars_floor.py"), str(path)])
    scan = datrix_scan(path)
    doc = json.loads(scan.stdout)
    if doc["columns"] != columns or doc["rows"] != rows:
        raise SystemExit(f"{path.name}: datrix scanned {doc['rows']} x {doc['columns']}")
    ratio = scan.wall / floor.wall
    table = Table(title=f"wide table: {columns:,} columns x {rows:,} rows (Parquet)")
    for col in ("tool", "wall s", "peak RSS MiB", "x floor"):
        table.add_column(col, justify="left" if col == "tool" else "right")
    table.add_row("Polars floor (tuned)", f"{floor.wall:.1f}", f"{floor.rss_mib:,.0f}", "1.0x")
    table.add_row("datrix scan", f"{scan.wall:.1f}", f"{scan.rss_mib:,.0f}", f"{ratio:.2f}x")
    Console(width=None if sys.stdout.isatty() else 150).print(table)
    today = dt.date.today().isoformat()
    return "\n".join(
        [
            WIDE_INTRO,
            "",
            f"Latest run: `.venv/bin/python tests/benchmarks/bench_scan.py "
            f"{' '.join(sys.argv[1:])}` ({os.cpu_count()} cores, load average "
            f"{os.getloadavg()[0]:.1f} at the end).",
            "",
            "| date | tool | file | wall s | peak RSS MiB | time / floor |",
            "|---|---|---|---|---|---|",
            f"| {today} | Polars floor (tuned) | {path.name} | {floor.wall:.1f} | "
            f"{floor.rss_mib:,.0f} | 1.0x |",
            f"| {today} | datrix scan | {path.name} | {scan.wall:.1f} | "
            f"{scan.rss_mib:,.0f} | {ratio:.2f}x |",
        ]
    )


WIDE_INTRO = (
    "Wide tables: `bench_scan.py --wide COLSxROWS` builds a Parquet file of that shape under "
    "`bench-data/` (mixed columns, every 7th with 20 % nulls) and runs the tuned floor and "
    "`datrix scan` on it (whole fresh processes). Every pass of the scan is linear in the "
    'columns (docs/quality.md, "Wide tables"); the floor\'s one `collect_all` of a '
    "group-by per column is not (Polars' streaming engine plans them together), which is "
    "why it is the slower one here."
)


BIG_CSV_INTRO = (
    "Bounded memory: `bench_scan.py --big-csv GB [--rss-limit GiB]` builds a CSV of about GB "
    "GiB under `bench-data/` from 1M-row chunks of `datrix bench generate` (seeds 1, 2, ...; "
    "streamed to disk, reused) and runs `datrix scan` on it; a run whose process tree passes "
    "the RSS limit (default half the machine's memory) is stopped. The ingest peak is the "
    "RSS while `datrix scan` validates the CSV and converts it to Parquet; the rest is the "
    "scan job. One row per file (the latest run of each). Aim: under 2 GB peak RSS up to a "
    "10 GB CSV."
)
BIG_CSV_HEADER = (
    "| date | file | wall s | peak RSS MiB | ingest (CSV -> Parquet) peak MiB | "
    "scan job peak MiB | outcome |"
)


def merge_rows(old: list[str], new: list[str]) -> list[str]:
    """The new block's table, plus the old block's rows for other files (by size)."""

    def file_of(line: str) -> str:
        return line.split("|")[2].strip().split(" ")[0]

    def is_row(line: str) -> bool:
        return line.startswith("| 2") and line.count("|") > 3

    fresh = {file_of(x) for x in new if is_row(x)}
    kept = [x for x in old if is_row(x) and file_of(x) not in fresh]
    rows = sorted(
        kept + [x for x in new if is_row(x)],
        key=lambda x: float(file_of(x).removeprefix("big-").removesuffix("gib.csv") or 0),
    )
    return [x for x in new if not is_row(x)] + rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=DOC_ROWS)
    parser.add_argument("--quick", action="store_true", help="100,000 rows, skips nothing")
    parser.add_argument("--skip-peers", action="store_true", help="no whylogs, no ydata")
    parser.add_argument("--repeat", type=int, default=1, help="floor and datrix runs (best)")
    parser.add_argument("--formats", default="csv,parquet")
    parser.add_argument("--big-csv", type=float, metavar="GB", help="also scan a ~GB GiB CSV")
    parser.add_argument("--big-csv-only", action="store_true", help="only the --big-csv run")
    parser.add_argument(
        "--rss-limit",
        type=float,
        default=round(psutil.virtual_memory().total / 2**30 / 2),
        metavar="GiB",
        help="--big-csv: stop the scan past this RSS (default: half the machine's memory)",
    )
    parser.add_argument("--wide", metavar="COLSxROWS", help="also scan a wide table")
    parser.add_argument("--wide-only", action="store_true", help="only the --wide run")
    parser.add_argument("--no-docs", action="store_true", help="leave docs/benchmarks.md")
    parser.add_argument("--data", type=Path, default=ROOT / "bench-data")
    args = parser.parse_args()
    rows_wanted = 100_000 if args.quick else args.rows
    write_docs = not args.no_docs and rows_wanted == DOC_ROWS
    blocks: dict[str, str] = {}

    if not (args.big_csv_only or args.wide_only):
        data = ensure_data(rows_wanted, args.data)
        truth = json.loads((data / "ground_truth.json").read_text())
        peers = {} if args.skip_peers else {n: ensure_peer_venv(n) for n in PEER_REQUIREMENTS}
        results: list[Row] = []
        for fmt in args.formats.split(","):
            path = data / f"dirty.{fmt}"
            results += bench_file(path, truth["exact_duplicates"]["count"], peers, args.repeat)
        csv_mib = (data / "dirty.csv").stat().st_size / 2**20
        pq_mib = (data / "dirty.parquet").stat().st_size / 2**20
        load = os.getloadavg()[0]
        header = (
            f"Latest run: {truth['rows']:,} rows x {truth['columns']} columns "
            f"(`bench-data/rows-{truth['rows']}/`: CSV {csv_mib:.0f} MiB, Parquet "
            f"{pq_mib:.0f} MiB), {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"load average {load:.1f} at the end; command `.venv/bin/python "
            f"tests/benchmarks/bench_scan.py{''.join(' ' + a for a in sys.argv[1:])}`. "
            f"{TIMED_NOTE}"
        )
        show(results)
        blocks["results"] = markdown(results, header)
        print(blocks["results"])
    if args.big_csv:
        ensure_data(DOC_ROWS, args.data)
        blocks["big-csv"] = bench_big_csv(args.big_csv, args.data, args.rss_limit)
        print(blocks["big-csv"])
    if args.wide:
        blocks["wide"] = bench_wide(args.wide, args.data)
        print(blocks["wide"])
        write_docs = write_docs or (args.wide_only and not args.no_docs)
    if write_docs:
        for name, block in blocks.items():
            update_docs(block, name, keep_other_files=name == "big-csv")
    elif blocks:
        console.print(f"docs/benchmarks.md left as is (only {DOC_ROWS:,}-row runs go there)")


if __name__ == "__main__":
    main()
