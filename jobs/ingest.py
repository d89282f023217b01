"""Turn a user's file into an immutable Parquet dataset version, or refuse it clearly.

Supported: CSV, TSV, JSON (array of objects), JSON Lines, Parquet, Excel. Every refusal is
an ``InputError`` whose message is one line a person can act on; nothing is written to
any store before the file has been fully validated and converted.
"""

from __future__ import annotations

import codecs
import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from jobs.quality.types import json_records_frame, ndjson_frame, normalise_types, write_with_notes
from streams.object_store import sha256_file

FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".xlsx": "excel",
    ".xls": "excel",
}
INFER_ROWS = 10_000
MAX_ROW_GROUP_ROWS = 1 << 20  # larger row groups in a Parquet input are rewritten


class InputError(ValueError):
    """A file Datrix cannot take, with a one-line reason."""


@dataclass(frozen=True)
class IngestedFile:
    parquet_path: Path
    format: str
    rows: int
    columns: int
    schema: dict[str, str]
    source_sha256: str
    size_bytes: int


def detect_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt:
        return fmt
    with path.open("rb") as fh:
        head = fh.read(4)
    if head == b"PAR1":
        return "parquet"
    if head[:2] == b"PK":
        return "excel"
    return "csv"


def _check_text(path: Path, encoding: str) -> str:
    """Refuse binary files and bytes that do not decode, naming the first bad offset.
    Returns the file's SHA-256, computed in the same pass (no second read of the file)."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    digest = hashlib.sha256()
    offset = 0
    with path.open("rb") as fh:
        first = True
        for block in iter(lambda: fh.read(1 << 22), b""):
            if first and b"\x00" in block[:8192]:
                raise InputError(f"{path.name}: binary content (NUL bytes); not a text table")
            first = False
            digest.update(block)
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"{path.name}: byte 0x{block[exc.start]:02x} at offset {offset + exc.start} "
                    f"is not valid {encoding}; re-save the file as UTF-8 or pass --encoding"
                ) from None
            offset += len(block)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise InputError(f"{path.name}: file ends inside a multi-byte character") from None
    return digest.hexdigest()


def _transcode(path: Path, encoding: str, workdir: Path) -> Path:
    out = workdir / (path.stem + ".utf8" + path.suffix)
    with (
        path.open("r", encoding=encoding, newline="") as src,
        out.open("w", encoding="utf-8", newline="") as dst,
    ):
        for block in iter(lambda: src.read(1 << 20), ""):
            dst.write(block)
    return out


RECT_BLOCK_SIZES = (1 << 20, 1 << 26)  # bytes parsed at a time; the larger for long rows


def _check_rectangular(path: Path, separator: str) -> None:
    """Every record must have as many fields as the header (Polars pads short rows).

    Memory stays bounded whatever the file's size: pyarrow parses the file in 1 MiB blocks
    (a few in flight) and converts only the first column, since the parser alone checks
    the field counts (1M x 50 CSV: ~120 MiB peak and 0.7 s, against ~600 MiB and 6 s with
    16 MiB blocks and every column converted). A record longer than a block is retried
    with 64 MiB blocks."""
    import csv

    import pyarrow as pa
    import pyarrow.csv as pcsv

    with path.open("r", encoding="utf-8", newline="") as fh:
        header = next(csv.reader(fh, delimiter=separator), [])
    if not any(name.strip() for name in header):
        raise InputError(f"{path.name}: the first line (the header) is empty")
    names = [f"f{i}" for i in range(len(header))]
    for block_size in RECT_BLOCK_SIZES:
        try:
            reader = pcsv.open_csv(
                path,
                read_options=pcsv.ReadOptions(
                    block_size=block_size, column_names=names, skip_rows=1
                ),
                parse_options=pcsv.ParseOptions(delimiter=separator, newlines_in_values=True),
                convert_options=pcsv.ConvertOptions(
                    column_types={names[0]: pa.string()}, include_columns=names[:1]
                ),
            )
            for _ in reader:
                pass
            return
        except pa.ArrowInvalid as exc:
            message = str(exc).replace("CSV parse error: ", "").splitlines()[0]
            if "straddl" in message and block_size != RECT_BLOCK_SIZES[-1]:
                continue
            if "Expected" in message and "columns" in message:
                raise InputError(f"{path.name}: ragged rows: {message[:200]}") from None
            raise InputError(f"{path.name}: not a readable CSV: {message[:200]}") from None


def _read_csv(path: Path, separator: str, out: Path) -> None:
    try:
        pl.scan_csv(path, separator=separator, infer_schema_length=INFER_ROWS).sink_parquet(out)
    except pl.exceptions.ComputeError:
        # A value late in the file did not fit the type inferred from the first rows:
        # infer from every row instead (slower, exact).
        try:
            pl.scan_csv(path, separator=separator, infer_schema_length=None).sink_parquet(out)
        except pl.exceptions.PolarsError as exc:
            raise InputError(
                f"{path.name}: not a readable CSV: {str(exc).splitlines()[0]}"
            ) from None
    except pl.exceptions.PolarsError as exc:
        raise InputError(f"{path.name}: not a readable CSV: {str(exc).splitlines()[0]}") from None


def _read_other(path: Path, fmt: str, out: Path) -> None:
    notes: dict[str, str] = {}  # why a column is stored in another type (types.py)
    try:
        if fmt == "parquet":
            # Streamed row group by row group: memory bounded by the largest row group,
            # not the file (pl.read_parquet held the whole decoded table).
            pl.scan_parquet(path).sink_parquet(out)
            return
        if fmt == "jsonl":
            frame, notes = ndjson_frame(path)
        elif fmt == "json":
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
                raise InputError(f"{path.name}: JSON must be an array of objects (one per row)")
            frame, notes = json_records_frame(data)
        elif fmt == "excel":
            frame = pl.read_excel(path)
        else:  # pragma: no cover - guarded by FORMATS
            raise InputError(f"{path.name}: unsupported format {fmt}")
    except InputError:
        raise
    except json.JSONDecodeError as exc:
        raise InputError(f"{path.name}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path.name}: not valid UTF-8 ({exc.reason})") from None
    except ModuleNotFoundError as exc:
        raise InputError(f"{path.name}: reading {fmt} needs the '{exc.name}' package") from None
    except Exception as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise InputError(f"{path.name}: not a readable {fmt} file: {first[:200]}") from None
    write_with_notes(frame, out, notes)


def _check_blank(path: Path, name: str) -> None:
    with path.open("rb") as fh:
        blank = not fh.read(1 << 16).strip()
    if blank and path.stat().st_size <= 1 << 16:
        raise InputError(f"{name}: the file holds only whitespace")


def _convert_checked_csv(path: Path, separator: str, out: Path) -> str:
    """Convert a UTF-8 CSV to Parquet while a thread checks it (valid UTF-8, SHA-256, not
    blank, no ragged rows): the checks read the file at disk speed in GIL-free code, so
    they cost almost nothing beside the conversion. When both fail, the check's error is
    raised: it names the problem more clearly than the parser. Returns the SHA-256."""

    def checks() -> str:
        sha = _check_text(path, "utf-8")
        _check_blank(path, path.name)
        _check_rectangular(path, separator)
        return sha

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="csv-checks") as pool:
        checked = pool.submit(checks)
        try:
            _read_csv(path, separator, out)
        except InputError:
            checked.result()  # raises the check's error when there is one
            raise
        return checked.result()


def _parquet_as_is(path: Path) -> bool:
    """A Parquet file can be stored as given when it is readable and its row groups are at
    most ``MAX_ROW_GROUP_ROWS`` rows (a bounded scan decodes a row group at a time);
    otherwise it is rewritten (streamed) with Polars' row groups."""
    try:
        meta = pq.ParquetFile(path).metadata
        pl.scan_parquet(path).collect_schema()
    except Exception:
        return False  # the rewrite reports what is wrong with it
    groups = (meta.row_group(i).num_rows for i in range(meta.num_row_groups))
    return all(rows <= MAX_ROW_GROUP_ROWS for rows in groups)


def ingest(path: Path, workdir: Path, encoding: str = "utf-8") -> IngestedFile:
    """Validate ``path`` and convert it to Parquet in ``workdir``."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a file")
    size = path.stat().st_size
    if size == 0:
        raise InputError(f"{path.name}: the file is empty")
    fmt = detect_format(path)
    out = workdir / "data.parquet"
    source = path
    source_sha: str | None = None
    utf8 = encoding.lower().replace("_", "-") in ("utf-8", "utf8")
    separator = "\t" if fmt == "tsv" else ","
    if fmt in ("csv", "tsv") and utf8:
        source_sha = _convert_checked_csv(path, separator, out)
    else:
        if fmt in ("csv", "tsv", "json", "jsonl"):
            source_sha = _check_text(path, "utf-8" if utf8 else encoding)
            if not utf8:
                source = _transcode(path, encoding, workdir)
            _check_blank(source, path.name)
        if fmt in ("csv", "tsv"):
            _check_rectangular(source, separator)
            _read_csv(source, separator, out)
        elif fmt == "parquet" and _parquet_as_is(path):
            out = path  # stored byte for byte: no decode and re-encode
        else:
            _read_other(source, fmt, out)
    out = normalise_types(out, workdir)  # types every engine reads (jobs/quality/types.py)
    lazy = pl.scan_parquet(out)
    schema = lazy.collect_schema()
    if len(schema) == 0:
        raise InputError(f"{path.name}: no columns found; not a table")
    rows = int(lazy.select(pl.len()).collect().item())
    return IngestedFile(
        parquet_path=out,
        format=fmt,
        rows=rows,
        columns=len(schema),
        schema={name: str(dtype) for name, dtype in schema.items()},
        source_sha256=source_sha or sha256_file(path),
        size_bytes=size,
    )
