"""Turn a user's file into an immutable Parquet dataset version, or refuse it clearly.

Supported: CSV, TSV, JSON (array of objects), JSON Lines, Parquet, Excel. Every refusal is
an ``InputError`` whose message is one line a person can act on; nothing is written to
any store before the file has been fully validated and converted.
"""

from __future__ import annotations

import codecs
import hashlib
import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from datrix.jobs.csv_dialect import CsvOptions, Dialect, parse_rows, sniff
from datrix.jobs.quality.types import (
    json_records_frame,
    ndjson_frame,
    normalise_types,
    write_with_notes,
)
from datrix.streams.content import sha256_file
from datrix.streams.settings import Settings

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


SAMPLE_BYTES = 1 << 20  # the start of a CSV the dialect is sniffed from


@dataclass(frozen=True)
class Limits:
    """Bounds on malformed text input, checked before any parser sees the file (a 50 MB
    CSV that is one line of commas took 22 GB in the parser as 25M columns)."""

    max_line_mb: float = 16.0  # DATRIX_MAX_LINE_MB: a line, or a quoted record across lines
    max_columns: int = 20_000  # DATRIX_MAX_COLUMNS: fields in the header

    @property
    def max_line_bytes(self) -> int:
        return int(self.max_line_mb * 2**20)


def limits_from(settings: Settings) -> Limits:
    """The limits in DATRIX_MAX_LINE_MB and DATRIX_MAX_COLUMNS (checked by the settings)."""
    return Limits(max_line_mb=settings.max_line_mb, max_columns=settings.max_columns)


def _mb(limits: Limits) -> str:
    return f"{limits.max_line_mb:g} MB"


@dataclass(frozen=True)
class IngestedFile:
    parquet_path: Path
    format: str
    rows: int
    columns: int
    schema: dict[str, str]
    source_sha256: str
    size_bytes: int
    read_options: dict[str, Any] = field(default_factory=dict)  # how it was read (dialect)


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


RECT_BLOCK_SIZE = 1 << 20  # bytes parsed at a time; a longer record is retried once


def _check_rectangular(
    path: Path, dialect: Dialect, width: int, limits: Limits | None = None
) -> None:
    """Every record must have as many fields as the header (Polars pads short rows).

    Memory stays bounded whatever the file's size: pyarrow parses the file in 1 MiB blocks
    (a few in flight) and converts only the first column, since the parser alone checks
    the field counts (1M x 50 CSV: ~120 MiB peak and 0.7 s, against ~600 MiB and 6 s with
    16 MiB blocks and every column converted). A record longer than a block is retried
    with blocks of the line limit; one longer still (a quoted field across lines) is
    refused."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    limits = limits or Limits()
    names = [f"f{i}" for i in range(width)]
    sizes = (RECT_BLOCK_SIZE, max(RECT_BLOCK_SIZE, limits.max_line_bytes + 1))
    for block_size in sizes:
        try:
            reader = pcsv.open_csv(
                path,
                read_options=pcsv.ReadOptions(
                    block_size=block_size, column_names=names, skip_rows=int(dialect.header)
                ),
                parse_options=pcsv.ParseOptions(
                    delimiter=dialect.delimiter,
                    quote_char=dialect.quote,
                    newlines_in_values=True,
                ),
                convert_options=pcsv.ConvertOptions(
                    column_types={names[0]: pa.string()}, include_columns=names[:1]
                ),
            )
            for _ in reader:
                pass
            return
        except pa.ArrowInvalid as exc:
            message = str(exc).replace("CSV parse error: ", "").splitlines()[0]
            if "straddl" in message:
                if block_size != sizes[-1]:
                    continue
                raise InputError(
                    f"{path.name}: a record (a quoted field across lines) is longer than "
                    f"{_mb(limits)}; set DATRIX_MAX_LINE_MB higher to read it"
                ) from None
            if "Expected" in message and "columns" in message:
                raise InputError(f"{path.name}: ragged rows: {message[:200]}") from None
            raise InputError(f"{path.name}: not a readable CSV: {message[:200]}") from None


def _check_lines(path: Path, name: str, limits: Limits, quote: str = '"') -> bool:
    """Refuse a line longer than the limit, reading blocks no larger than the limit and
    looking only at their first and last line breaks (a line inside one block is shorter
    than the block): bounded memory, about disk speed, and refused as soon as the limit is
    passed (a 50 MB line: after 16 MB).

    Returns whether a quoted record may be longer than the limit: in the same pass, the
    bytes since the last line break outside quotes (quote parity at each block's last line
    break, counted with numpy; a block whose last break is inside quotes counts whole, so
    this can only overestimate). The caller then lets the exact check refuse it before
    the parser runs. 500 MB of CSV with quotes on every line: ~0.9 s on the loaded 2-core
    dev machine."""
    import numpy as np

    limit = limits.max_line_bytes
    block_size = max(1, min(1 << 22, limit))
    q = quote.encode()
    run = 0  # bytes since the last line break
    record = 0  # bytes since the last line break outside quotes (an upper bound)
    odd = 0  # parity of the quotes before this block
    offset = 0  # of the block in the file
    line_start = 0  # offset of the line being read
    suspect = False
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(block_size), b""):
            first = block.find(b"\n")
            if first == -1:
                run += len(block)
                if run > limit:
                    break
                record += len(block)
                quotes = block.count(q) if q in block else 0
            else:
                if run + first > limit:
                    break
                last = block.rfind(b"\n")
                run = len(block) - last - 1
                line_start = offset + last + 1
                if q in block:
                    is_quote = np.frombuffer(block, np.uint8) == q[0]
                    before = int(np.count_nonzero(is_quote[:last]))
                    quotes = before + int(np.count_nonzero(is_quote[last:]))
                else:
                    before = quotes = 0
                if (odd + before) % 2 == 0:
                    record = run
                else:
                    record += len(block)
            odd = (odd + quotes) % 2
            offset += len(block)
            suspect = suspect or record > limit
        else:
            return suspect
    raise InputError(
        f"{name}: line {_line_number(path, line_start):,} is longer than {_mb(limits)} "
        "(DATRIX_MAX_LINE_MB); not a table? set DATRIX_MAX_LINE_MB higher to read it"
    )


def _line_number(path: Path, offset: int) -> int:
    """The 1-based number of the line starting at byte ``offset``."""
    breaks = 0
    with path.open("rb") as fh:
        while offset > 0:
            block = fh.read(min(offset, 1 << 22))
            if not block:
                break
            breaks += block.count(b"\n")
            offset -= len(block)
    return breaks + 1


def _sample(path: Path, name: str, limits: Limits) -> str:
    """The start of the file as text, cut after its last whole line: at least the first
    line (at most the line limit, already checked) and about ``SAMPLE_BYTES`` after it."""
    with path.open("rb") as fh:
        data = fh.read(SAMPLE_BYTES)
        while b"\n" not in data and len(data) <= limits.max_line_bytes:
            more = fh.read(SAMPLE_BYTES)
            if not more:
                break
            data += more
        at_end = not fh.read(1)
    if b"\n" not in data[: limits.max_line_bytes + 1] and len(data) > limits.max_line_bytes:
        raise InputError(
            f"{name}: line 1 is longer than {_mb(limits)} (DATRIX_MAX_LINE_MB); "
            "not a table? set DATRIX_MAX_LINE_MB higher to read it"
        )
    if b"\x00" in data[:8192]:
        raise InputError(f"{name}: binary content (NUL bytes); not a text table")
    if not at_end and b"\n" in data:
        data = data[: data.rfind(b"\n") + 1]
    data = data.removeprefix(b"\xef\xbb\xbf")  # Excel's "CSV UTF-8" starts with a BOM
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        _check_text(path, "utf-8")  # names the first bad byte
        return data.decode("utf-8", errors="replace")


def _check_width(sample: str, name: str, options: CsvOptions, limits: Limits) -> None:
    """A header of more than DATRIX_MAX_COLUMNS fields is refused before anything parses
    it (counting separators: exact when the line has no quotes)."""
    first = sample.split("\n", 1)[0]
    candidates = (options.delimiter,) if options.delimiter else (",", ";", "\t", "|")
    widest = max(first.count(d) for d in candidates) + 1
    if widest > limits.max_columns and '"' not in first and "'" not in first:
        _too_wide(name, widest, limits)


def _too_wide(name: str, width: int, limits: Limits) -> None:
    raise InputError(
        f"{name}: the first line has {width:,} fields, more than {limits.max_columns:,} "
        "columns (DATRIX_MAX_COLUMNS); set DATRIX_MAX_COLUMNS higher to read it"
    )


def _duplicates(names: list[str]) -> list[str]:
    return [n for n, count in Counter(names).items() if count > 1]


def _refuse_duplicates(file_name: str, names: list[str]) -> None:
    dup = _duplicates(names)
    if dup:
        shown = ", ".join(repr(n) for n in dup[:10]) + (", ..." if len(dup) > 10 else "")
        raise InputError(
            f"{file_name}: duplicate column names: {shown}; give every column its own name"
        )


def _prepare_csv(
    path: Path, name: str, options: CsvOptions, default_delimiter: str, limits: Limits
) -> tuple[Dialect, int]:
    """Bounded checks, then the dialect and the header. Returns (dialect, column count)."""
    _check_blank(path, name)
    sample = _sample(path, name, limits)
    _check_width(sample, name, options, limits)
    dialect = sniff(sample, options, default_delimiter)
    if dialect.decimal == dialect.delimiter:
        raise InputError(
            f"{name}: fields are separated by {dialect.delimiter!r}, so it cannot also be the "
            "decimal mark; pass --delimiter"
        )
    first = parse_rows(sample, dialect.delimiter, dialect.quote, limit=1)
    header = first[0] if first else []
    if len(header) > limits.max_columns:
        _too_wide(name, len(header), limits)
    if dialect.header:
        if not any(h.strip() for h in header):
            raise InputError(f"{name}: the first line (the header) is empty")
        _refuse_duplicates(name, header)
    width = max(1, len(header))
    if _check_lines(path, name, limits, dialect.quote):
        # Perhaps a quoted record longer than the limit: the exact (bounded) check runs
        # before the parser, which would hold the whole record.
        _check_rectangular(path, dialect, width, limits)
    return dialect, width


def _scan_csv(path: Path, dialect: Dialect, infer_rows: int | None) -> pl.LazyFrame:
    return pl.scan_csv(
        path,
        separator=dialect.delimiter,
        quote_char=dialect.quote,
        has_header=dialect.header,
        decimal_comma=dialect.decimal == ",",
        infer_schema_length=infer_rows,
        glob=False,  # a file name with [ or * is a name, not a pattern
    )


def _read_csv(path: Path, dialect: Dialect, out: Path) -> None:
    try:
        _scan_csv(path, dialect, INFER_ROWS).sink_parquet(out)
    except pl.exceptions.ComputeError:
        # A value late in the file did not fit the type inferred from the first rows:
        # infer from every row instead (slower, exact).
        try:
            _scan_csv(path, dialect, None).sink_parquet(out)
        except pl.exceptions.PolarsError as exc:
            raise InputError(
                f"{path.name}: not a readable CSV: {str(exc).splitlines()[0]}"
            ) from None
    except pl.exceptions.PolarsError as exc:
        raise InputError(f"{path.name}: not a readable CSV: {str(exc).splitlines()[0]}") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """JSON objects whose keys repeat are refused (json keeps the last one silently)."""
    found = dict(pairs)
    if len(found) != len(pairs):
        dup = _duplicates([k for k, _ in pairs])
        raise InputError(
            f"duplicate column names: {', '.join(repr(k) for k in dup[:10])} in one object; "
            "give every column its own name"
        )
    return found


def _jsonl_duplicates(path: Path) -> None:
    """Repeated keys in the objects of the first megabyte of a JSON Lines file are refused
    (Polars keeps one silently); checking every line would parse the file twice."""
    with path.open("rb") as fh:
        head = fh.read(SAMPLE_BYTES)
    lines = head.splitlines()
    if len(head) == SAMPLE_BYTES:
        lines = lines[:-1]  # perhaps cut
    for number, line in enumerate(lines, start=1):
        try:
            json.loads(line, object_pairs_hook=_unique_keys)
        except InputError as exc:
            raise InputError(f"{path.name}: line {number}: {exc}") from None
        except ValueError:
            return  # not JSON: the reader says what is wrong


def _read_other(path: Path, fmt: str, out: Path) -> None:
    notes: dict[str, str] = {}  # why a column is stored in another type (types.py)
    try:
        if fmt == "parquet":
            # Streamed row group by row group: memory bounded by the largest row group,
            # not the file (pl.read_parquet held the whole decoded table).
            pl.scan_parquet(path, glob=False).sink_parquet(out)
            return
        if fmt == "jsonl":
            _jsonl_duplicates(path)
            frame, notes = ndjson_frame(path)
        elif fmt == "json":
            try:
                data = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_unique_keys)
            except InputError as exc:
                raise InputError(f"{path.name}: {exc}") from None
            if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
                raise InputError(f"{path.name}: JSON must be an array of objects (one per row)")
            frame, notes = json_records_frame(data)
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


def _read_excel(path: Path, sheet: str | None, out: Path) -> str:
    """The sheet named ``sheet`` (default the first) to Parquet; returns the sheet's name.
    Duplicate header cells are refused (the reader would rename them ``a_1``)."""
    try:
        import fastexcel
    except ModuleNotFoundError:  # pragma: no cover - a declared dependency
        raise InputError(f"{path.name}: reading Excel needs the 'fastexcel' package") from None
    try:
        reader = fastexcel.read_excel(path)
    except Exception as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise InputError(f"{path.name}: not a readable Excel workbook ({first[:160]})") from None
    names = list(reader.sheet_names)
    if not names:
        raise InputError(f"{path.name}: the workbook has no sheets")
    if sheet is None:
        sheet = names[0]
    elif sheet not in names:
        listed = ", ".join(repr(n) for n in names)
        raise InputError(f"{path.name}: no sheet named {sheet!r}; its sheets are {listed}")
    try:
        head = reader.load_sheet(sheet, header_row=None, n_rows=1).to_polars()
        if head.height:
            cells = [v for v in head.row(0) if v is not None and str(v).strip()]
            _refuse_duplicates(path.name, [str(v) for v in cells])
        frame = pl.read_excel(path, sheet_name=sheet)
    except InputError:
        raise
    except Exception as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise InputError(f"{path.name}: sheet {sheet!r} is not readable: {first[:160]}") from None
    frame.write_parquet(out)
    return sheet


def _check_blank(path: Path, name: str) -> None:
    with path.open("rb") as fh:
        blank = not fh.read(1 << 16).strip()
    if blank and path.stat().st_size <= 1 << 16:
        raise InputError(f"{name}: the file holds only whitespace")


def _convert_checked_csv(
    path: Path, dialect: Dialect, width: int, out: Path, limits: Limits
) -> str:
    """Convert a UTF-8 CSV to Parquet while a thread checks it (valid UTF-8, SHA-256, not
    blank, no ragged rows): the checks read the file at disk speed in GIL-free code, so
    they cost almost nothing beside the conversion. When both fail, the check's error is
    raised: it names the problem more clearly than the parser. Returns the SHA-256."""

    def checks() -> str:
        sha = _check_text(path, "utf-8")
        _check_rectangular(path, dialect, width, limits)
        return sha

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="csv-checks") as pool:
        checked = pool.submit(checks)
        try:
            _read_csv(path, dialect, out)
        except InputError:
            checked.result()  # raises the check's error when there is one
            raise
        return checked.result()


def _parquet_duplicates(path: Path) -> None:
    """Refuse a Parquet file whose schema repeats a column name (an unreadable one is left
    to the reader, which says what is wrong with it)."""
    try:
        names = pq.read_schema(path).names
    except Exception:
        return
    _refuse_duplicates(path.name, names)


def _parquet_as_is(path: Path) -> bool:
    """A Parquet file can be stored as given when it is readable and its row groups are at
    most ``MAX_ROW_GROUP_ROWS`` rows (a bounded scan decodes a row group at a time);
    otherwise it is rewritten (streamed) with Polars' row groups."""
    try:
        meta = pq.ParquetFile(path).metadata
        pl.scan_parquet(path, glob=False).collect_schema()
    except Exception:
        return False  # the rewrite reports what is wrong with it
    groups = (meta.row_group(i).num_rows for i in range(meta.num_row_groups))
    return all(rows <= MAX_ROW_GROUP_ROWS for rows in groups)


def _check_encoding(encoding: str) -> None:
    try:
        codecs.lookup(encoding)
    except (LookupError, ValueError):  # ValueError: a NUL in the name (from the API)
        raise InputError(
            f"--encoding {encoding!r} is not a known text encoding (e.g. utf-8, latin-1, cp1252)"
        ) from None


def ingest(
    path: Path,
    workdir: Path,
    encoding: str = "utf-8",
    csv_options: CsvOptions | None = None,
    sheet: str | None = None,
    limits: Limits | None = None,
) -> IngestedFile:
    """Validate ``path`` and convert it to Parquet in ``workdir``.

    CSV: ``csv_options`` forces parts of the dialect (the rest is sniffed); Excel:
    ``sheet`` names the sheet (default the first). ``limits``: default ``Limits()``
    (callers pass ``limits_from(settings)``)."""
    _check_encoding(encoding)
    limits = limits or Limits()
    options = csv_options or CsvOptions()
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a file")
    size = path.stat().st_size
    if size == 0:
        raise InputError(f"{path.name}: the file is empty")
    fmt = detect_format(path)
    if options != CsvOptions() and fmt not in ("csv", "tsv"):
        raise InputError(
            f"{path.name}: --delimiter, --quote, --decimal and --header apply to CSV "
            f"files; this one is read as {fmt}"
        )
    if sheet is not None and fmt != "excel":
        raise InputError(f"{path.name}: --sheet applies to Excel files; this one is read as {fmt}")
    out = workdir / "data.parquet"
    source = path
    source_sha: str | None = None
    read_options: dict[str, Any] = {}
    utf8 = encoding.lower().replace("_", "-") in ("utf-8", "utf8")
    default_delimiter = "\t" if fmt == "tsv" else ","
    if fmt in ("csv", "tsv") and utf8:
        dialect, width = _prepare_csv(path, path.name, options, default_delimiter, limits)
        read_options = dialect.as_dict()
        source_sha = _convert_checked_csv(path, dialect, width, out, limits)
    else:
        if fmt in ("csv", "tsv", "json", "jsonl"):
            source_sha = _check_text(path, "utf-8" if utf8 else encoding)
            if not utf8:
                source = _transcode(path, encoding, workdir)
            _check_blank(source, path.name)
        if fmt == "parquet":
            _parquet_duplicates(path)
        if fmt in ("csv", "tsv"):
            dialect, width = _prepare_csv(source, path.name, options, default_delimiter, limits)
            read_options = dialect.as_dict()
            _check_rectangular(source, dialect, width, limits)
            _read_csv(source, dialect, out)
        elif fmt == "parquet" and _parquet_as_is(path):
            out = path  # stored byte for byte: no decode and re-encode
        elif fmt == "excel":
            read_options = {"sheet": _read_excel(path, sheet, out)}
        else:
            _read_other(source, fmt, out)
    out = normalise_types(out, workdir)  # types every engine reads (jobs/quality/types.py)
    lazy = pl.scan_parquet(out, glob=False)
    schema = lazy.collect_schema()
    if len(schema) == 0:
        raise InputError(f"{path.name}: no columns found; not a table")
    rows = int(lazy.select(pl.len()).collect().item())
    if rows == 0:
        raise InputError(f"{path.name}: the file has no rows (only a header)")
    return IngestedFile(
        parquet_path=out,
        format=fmt,
        rows=rows,
        columns=len(schema),
        schema={name: str(dtype) for name, dtype in schema.items()},
        source_sha256=source_sha or sha256_file(path),
        size_bytes=size,
        read_options=read_options,
    )
