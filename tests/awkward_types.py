"""A corpus of awkward column types (issue 14, item 13): every one must scan to a complete
report on both engines, as Parquet and as JSON through the CLI."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl

ROWS = 30


def awkward_frame(rows: int = ROWS) -> pl.DataFrame:
    """One column of each awkward type, as Polars reads them (``rows`` divisible by 6)."""
    utc = dt.UTC
    return pl.DataFrame(
        {
            "account_id": pl.Series(
                [12_345_678_901_234_567_890 + 7 * i for i in range(rows)], dtype=pl.Int128
            ),
            "amount": pl.Series([Decimal(f"{i}.25") for i in range(rows)], dtype=pl.Decimal(10, 2)),
            "wait": pl.Series([dt.timedelta(seconds=5 * i) for i in range(rows)]),
            "opens_at": pl.Series([dt.time(i % 24, 30) for i in range(rows)]),
            "blob": pl.Series([bytes([i, 255 - i]) for i in range(rows)]),
            "seen_at": pl.Series(
                [dt.datetime(2026, 1, 1, i % 24, tzinfo=utc) for i in range(rows)]
            ).dt.convert_time_zone("Europe/Berlin"),
            "level": pl.Series(
                ["low", "mid", "high"] * (rows // 3), dtype=pl.Enum(["low", "mid", "high"])
            ),
            "tag": pl.Series(["x", "y"] * (rows // 2), dtype=pl.Categorical),
            "pair": pl.Series([[i, i + 1] for i in range(rows)]),
            "fixed": pl.Series([[i, -i] for i in range(rows)], dtype=pl.Array(pl.Int64, 2)),
            "point": pl.Series([{"x": i, "label": f"p{i}"} for i in range(rows)]),
            "ratio": pl.Series(
                [float("nan"), float("inf"), float("-inf")] + [i / 7 for i in range(rows - 3)]
            ),
            "nothing": pl.Series([None] * rows, dtype=pl.Null),
            "big_unsigned": pl.Series([2**64 - 1 - i for i in range(rows)], dtype=pl.UInt64),
            "small_unsigned": pl.Series(list(range(rows)), dtype=pl.UInt64),
        }
    )


def mixed_json_records(rows: int = ROWS) -> list[dict[str, Any]]:
    """JSON records whose fields mix types: integer/string, number/list, object/string,
    objects of different shapes, and a field that is always null."""
    out = []
    for i in range(rows):
        out.append(
            {
                "id": i,
                "code": i if i % 3 else f"C{i}",
                "score": [i, i] if i % 5 == 0 else i * 1.5,
                "meta": {"k": i} if i % 2 else "none",
                "shape": {"a": i} if i % 2 else {"b": [i]},
                "empty": None,
            }
        )
    return out


def write_mixed_json(path: Path, lines: bool) -> Path:
    records = mixed_json_records()
    if lines:
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    else:
        path.write_text(json.dumps(records), encoding="utf-8")
    return path
