"""Stored types every scan engine can read: the one place where a reader's exotic types are
turned into portable ones, and where that is said.

A file's reader may infer types that one engine cannot scan: Polars reads a column of
20-digit integers (account ids) as a 128-bit integer, which pyarrow and Spark cannot read
back from Parquet; Spark cannot read a Parquet TIME column at all; durations and all-null
columns are read differently by the two engines; a JSON field holding an integer in one
record and a string in another stops Polars' reader. So after ingest, before the version
is stored, ``normalise_types`` rewrites the columns that need it (a streamed rewrite, only
when one does) and records, in the Parquet file's key-value metadata
(``datrix.stored_types``), why each was changed. The engines read that note back
(``stored_notes``) and the column profile shows it (``extra["stored_as"]``):

==========================  ================================================================
read as                     stored as
==========================  ================================================================
128-bit integer             ``decimal(38,0)`` when every value fits 38 digits, else text
unsigned 64-bit integer     ``int64`` when every value is below 2**63, else ``decimal(20,0)``
decimal above 38 digits     text
duration                    ``int64`` in the duration's unit (us, ns or ms)
time of day                 text (``HH:MM:SS[.ffffff]``)
no type (all null)          text (all null)
mixed JSON field            text: strings as they are, other values as JSON
==========================  ================================================================

Everything else (dates, timestamps with or without a time zone, decimals up to 38 digits,
binary, enums and categoricals, lists, arrays and structs, NaN and infinities) is read by
both engines as stored. Nested types are not rewritten inside (a list of 128-bit integers
stays as read).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

METADATA_KEY = "datrix.stored_types"
DECIMAL_DIGITS = 38  # the widest decimal Parquet readers share (Spark, pyarrow decimal128)
INT64_MAX = (1 << 63) - 1


def _int128_types() -> tuple[Any, ...]:
    return tuple(t for t in (getattr(pl, "Int128", None), getattr(pl, "UInt128", None)) if t)


def _plan(lazy: pl.LazyFrame, schema: Mapping[str, pl.DataType]) -> dict[str, tuple[pl.Expr, str]]:
    """column -> (expression giving the stored column, the note saying why)."""
    wide = _int128_types()
    checks: list[pl.Expr] = []
    for name, dtype in schema.items():
        if isinstance(dtype, wide):
            checks.append(pl.col(name).abs().max().alias(name))
        elif dtype == pl.UInt64:
            checks.append(pl.col(name).max().alias(name))
    limits = lazy.select(checks).collect().row(0, named=True) if checks else {}
    plan: dict[str, tuple[pl.Expr, str]] = {}
    for name, dtype in schema.items():
        col = pl.col(name)
        if isinstance(dtype, wide):
            biggest = limits.get(name)
            if biggest is None or biggest < 10**DECIMAL_DIGITS:
                plan[name] = (
                    col.cast(pl.Decimal(DECIMAL_DIGITS, 0)),
                    f"decimal({DECIMAL_DIGITS},0): 128-bit integers",
                )
            else:
                plan[name] = (
                    col.cast(pl.String),
                    f"string: 128-bit integers of more than {DECIMAL_DIGITS} digits",
                )
        elif dtype == pl.UInt64:
            biggest = limits.get(name)
            if biggest is None or biggest <= INT64_MAX:
                plan[name] = (col.cast(pl.Int64), "")  # lossless; nothing worth saying
            else:
                plan[name] = (
                    col.cast(pl.Decimal(20, 0)),
                    "decimal(20,0): unsigned 64-bit integers above 2^63",
                )
        elif isinstance(dtype, pl.Decimal) and (dtype.precision or 0) > DECIMAL_DIGITS:
            plan[name] = (
                col.cast(pl.String),
                f"string: decimals of more than {DECIMAL_DIGITS} digits",
            )
        elif isinstance(dtype, pl.Duration):
            unit = dtype.time_unit or "us"
            plan[name] = (col.cast(pl.Int64), f"int64: durations in {unit}")
        elif dtype == pl.Time:
            plan[name] = (col.cast(pl.String), "string: times of day (HH:MM:SS)")
        elif dtype == pl.Null:
            plan[name] = (col.cast(pl.String), "string: no values (every value is null)")
    return plan


def stored_notes(path: Path) -> dict[str, str]:
    """column -> why its stored type differs from the type its reader inferred (empty
    for a file ``normalise_types`` did not rewrite)."""
    try:
        meta = pq.read_metadata(path).metadata or {}
    except Exception:
        return {}
    raw = meta.get(METADATA_KEY.encode())
    if not raw:
        return {}
    found = json.loads(raw)
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def normalise_types(path: Path, workdir: Path) -> Path:
    """``path`` itself when every column is stored in a portable type; otherwise a
    rewritten copy in ``workdir`` (streamed) with the notes in its metadata."""
    lazy = pl.scan_parquet(path, glob=False)
    schema = lazy.collect_schema()
    plan = _plan(lazy, schema)
    if not plan:
        return path
    notes = {**stored_notes(path), **{name: note for name, (_, note) in plan.items() if note}}
    out = workdir / "data.typed.parquet"
    if out == path:  # pragma: no cover - ingest never names its output so
        raise ValueError(f"{path}: cannot rewrite a file onto itself")
    exprs = [plan[name][0].alias(name) if name in plan else pl.col(name) for name in schema]
    metadata = {METADATA_KEY: json.dumps(notes, sort_keys=True)} if notes else None
    lazy.select(exprs).sink_parquet(out, metadata=metadata)
    return out


def json_records_frame(records: list[dict[str, Any]]) -> tuple[pl.DataFrame, dict[str, str]]:
    """A frame of JSON ``records`` (objects), whatever mix of types a field holds.

    Polars reads a field whose values have one type (integers with floats count as one);
    a field mixing others (an integer here, a string there, a list elsewhere) is stored as
    text: strings as they are, every other value as its JSON. Returns the frame and the
    notes for ``write_with_notes``."""
    try:
        return pl.DataFrame(records, infer_schema_length=None), {}
    except (pl.exceptions.PolarsError, TypeError, ValueError):
        pass
    kinds: dict[str, set[str]] = {}
    for record in records:
        for key, value in record.items():
            kinds.setdefault(key, set()).add(_json_kind(value))
    seen = {k: found - {"null"} for k, found in kinds.items()}
    mixed = {
        k: found
        for k, found in seen.items()
        if len({"number" if f in ("integer", "float") else f for f in found}) > 1
    }
    try:
        return _texted(records, mixed), _notes(mixed)
    except (pl.exceptions.PolarsError, TypeError, ValueError):
        # nested values of different shapes (objects with other keys, lists of other
        # types): those fields as JSON text too
        nested = {k: found for k, found in seen.items() if found & {"list", "object"}}
        mixed = {**nested, **mixed}
        return _texted(records, mixed), _notes(mixed)


def _texted(records: list[dict[str, Any]], fields: Mapping[str, set[str]]) -> pl.DataFrame:
    rows = [{k: (_as_text(v) if k in fields else v) for k, v in r.items()} for r in records]
    overrides: dict[str, Any] = {k: pl.String for k in fields}
    return pl.DataFrame(rows, infer_schema_length=None, schema_overrides=overrides)


def _notes(fields: Mapping[str, set[str]]) -> dict[str, str]:
    return {
        k: f"string: mixed JSON types ({', '.join(sorted(found))}) as JSON text"
        if len(found) > 1
        else "string: nested JSON values of different shapes as JSON text"
        for k, found in fields.items()
    }


def ndjson_frame(path: Path) -> tuple[pl.DataFrame, dict[str, str]]:
    """A JSON Lines file as a frame (``pl.read_ndjson``), falling back to
    ``json_records_frame`` when a field mixes types."""
    try:
        return pl.read_ndjson(path), {}
    except pl.exceptions.PolarsError:
        pass
    records: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError(f"line {number} is not a JSON object")
            records.append(record)
    return json_records_frame(records)


def write_with_notes(frame: pl.DataFrame, out: Path, notes: Mapping[str, str]) -> None:
    metadata = {METADATA_KEY: json.dumps(dict(notes), sort_keys=True)} if notes else None
    frame.write_parquet(out, metadata=metadata)


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object"


def _as_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)
