"""The tuned plain-Polars floor for bench_scan.py (runs in the project's venv).

    python polars_floor.py FILE      -> one JSON line on stdout

What it computes, and how (each the fastest form we measured on 2 cores; the obvious
versions are about 2x slower, see shared/notes/peer-tools.md):

* one eager read (CSV with the same schema inference as ``datrix scan``'s ingest:
  ``infer_schema_length=10000``, no date parsing);
* per column: null count; per numeric column min, max, mean, std and the quartiles with ONE
  ``quantile([0.25, 0.5, 0.75])`` call -- all in a single ``select``;
* per column the 10 most frequent values: ``group_by(col).len().top_k(10)``; these and the
  ``select`` above run together through ``pl.collect_all`` (one query plan, parallel);
* the exact duplicate count: ``hash_rows()``, then an exact comparison (``unique()``) among
  only the rows whose hash repeats.

It reports ``seconds`` (read + all of the above, excluding interpreter start and imports)
and ``duplicates`` (checked against the generator's ground truth by the harness).
"""

import json
import sys
import time

import polars as pl

QUANTILES = [0.25, 0.5, 0.75]


def main(path: str) -> None:
    start = time.perf_counter()
    if path.endswith(".csv"):
        df = pl.read_csv(path, infer_schema_length=10_000)
    else:
        df = pl.read_parquet(path)
    read_s = time.perf_counter() - start
    num = [c for c, t in df.schema.items() if t.is_numeric()]
    lf = df.lazy()
    stats = lf.select(
        [pl.col(c).null_count().alias(f"{c}:nulls") for c in df.columns]
        + [pl.col(c).min().alias(f"{c}:min") for c in num]
        + [pl.col(c).max().alias(f"{c}:max") for c in num]
        + [pl.col(c).mean().alias(f"{c}:mean") for c in num]
        + [pl.col(c).std().alias(f"{c}:std") for c in num]
        + [pl.col(c).quantile(QUANTILES).alias(f"{c}:q") for c in num]
    )
    tops = [lf.group_by(c).len().top_k(10, by="len") for c in df.columns]
    pl.collect_all([stats, *tops])
    hashes = df.hash_rows()
    repeated = df.filter(hashes.is_duplicated())
    duplicates = repeated.height - repeated.unique().height
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "seconds": round(seconds, 3),
                "read_seconds": round(read_s, 3),
                "rows": df.height,
                "columns": df.width,
                "duplicates": duplicates,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
