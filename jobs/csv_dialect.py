"""Sniff a CSV file's dialect from a bounded sample, the way DuckDB's CSV sniffer does.

Candidates: delimiter among ``,`` ``;`` tab ``|``, quote ``"`` or ``'``. Each candidate
parses the sample; the one whose records agree best on one field count (more than one
field) wins, ties going to more fields, then to the order above. Then, with that dialect:
a header when some column's values below the first row have a type (number, date,
boolean) that its first-row value does not fit, or when every column is text; and a
decimal comma when the delimiter is ``;`` and the sample's numbers are written ``1,5``.
Anything the user passes (``--delimiter``, ``--quote``, ``--decimal``, ``--header/--no-header``)
is taken as given.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

DELIMITERS = (",", ";", "\t", "|")
QUOTES = ('"', "'")
SAMPLE_ROWS = 500  # records of the sample the sniffer looks at

_INT = re.compile(r"^[-+]?\d+$")
_DOT_DECIMAL = re.compile(r"^[-+]?(\d+\.\d*|\.\d+)([eE][-+]?\d+)?$")
_COMMA_DECIMAL = re.compile(r"^[-+]?(\d+,\d*|,\d+)([eE][-+]?\d+)?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?")
_BOOL = {"true", "false"}
_NAMES = {"\t": "tab", ",": "','", ";": "';'", "|": "'|'"}


@dataclass(frozen=True)
class CsvOptions:
    """What the user forced; None: sniff it."""

    delimiter: str | None = None
    quote: str | None = None
    decimal: str | None = None
    header: bool | None = None


@dataclass(frozen=True)
class Dialect:
    delimiter: str
    quote: str
    decimal: str
    header: bool

    def describe(self) -> str:
        """One line for the report: ``delimiter ';', decimal ',', header yes``."""
        return (
            f"delimiter {_NAMES.get(self.delimiter, repr(self.delimiter))}, "
            f"quote {self.quote!r}, decimal {self.decimal!r}, "
            f"header {'yes' if self.header else 'no'}"
        )

    def as_dict(self) -> dict[str, str | bool]:
        return {
            "delimiter": self.delimiter,
            "quote": self.quote,
            "decimal": self.decimal,
            "header": self.header,
        }


def describe_read_options(fmt: str, options: dict[str, Any] | None) -> str:
    """How a version was read, for its report (from the options ingest recorded):
    ``read as CSV: delimiter ';', quote '"', decimal ',', header yes``."""
    options = options or {}
    if fmt in ("csv", "tsv") and "delimiter" in options:
        return (
            "read as CSV: "
            + Dialect(
                options["delimiter"], options["quote"], options["decimal"], options["header"]
            ).describe()
        )
    if fmt == "excel" and "sheet" in options:
        return f"read as Excel: sheet {options['sheet']!r}"
    return f"read as {fmt}"


_DELIMITER_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}


def options_from_cli(
    delimiter: str | None, quote: str | None, decimal: str | None, header: bool | None
) -> CsvOptions:
    """The user's ``--delimiter`` (one character, or tab / \\t), ``--quote``, ``--decimal``
    and ``--header/--no-header`` (None: sniff); ValueError names what is wrong."""
    if delimiter is not None:
        delimiter = _DELIMITER_NAMES.get(delimiter.lower(), delimiter)
        if len(delimiter) != 1 or delimiter in "\r\n\"'":
            raise ValueError(
                f"--delimiter must be one character (or 'tab'), not a quote or line break; "
                f"got {delimiter!r}"
            )
    if quote is not None and (len(quote) != 1 or quote in "\r\n"):
        raise ValueError(f"--quote must be one character; got {quote!r}")
    if quote is not None and quote == delimiter:
        raise ValueError("--quote and --delimiter must differ")
    if decimal is not None and decimal == delimiter:
        raise ValueError("--decimal and --delimiter must differ")
    return CsvOptions(delimiter, quote, decimal, header)


def parse_rows(
    sample: str, delimiter: str, quote: str, limit: int = SAMPLE_ROWS
) -> list[list[str]]:
    """The sample's first ``limit`` records with this dialect (a record cut by the end of
    the sample is the caller's to drop)."""
    reader = csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter, quotechar=quote)
    rows: list[list[str]] = []
    try:
        for row in reader:
            if row:  # blank lines carry no evidence
                rows.append(row)
            if len(rows) >= limit:
                break
    except csv.Error:
        pass  # a malformed quote: what parsed so far is the evidence
    return rows


def _consistency(rows: list[list[str]]) -> tuple[float, int]:
    if not rows:
        return 0.0, 0
    counts = Counter(len(r) for r in rows)
    fields, agreeing = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
    return agreeing / len(rows), fields


def _pick_quote(sample: str, delimiter: str) -> str:
    """``'`` only when the sample quotes fields with it and never with ``"``."""
    if '"' in sample:
        return '"'
    d = re.escape(delimiter)
    if re.search(rf"(^|{d})'[^'\n]*'({d}|\r?$)", sample, flags=re.MULTILINE):
        return "'"
    return '"'


def _kind(value: str, decimal: str) -> str | None:
    v = value.strip()
    if not v:
        return None  # a missing value fits every type
    if _INT.match(v):
        return "int"
    if (decimal == "," and _COMMA_DECIMAL.match(v)) or (decimal == "." and _DOT_DECIMAL.match(v)):
        return "float"
    if _DATE.match(v):
        return "date"
    if v.lower() in _BOOL:
        return "bool"
    return "text"


def _fits(value: str, kind: str, decimal: str) -> bool:
    found = _kind(value, decimal)
    return found is None or found == kind or (kind == "float" and found == "int")


def _column_kinds(rows: list[list[str]], width: int, decimal: str) -> list[str]:
    kinds: list[str] = []
    for i in range(width):
        seen = {_kind(r[i], decimal) for r in rows if i < len(r)} - {None}
        if not seen:
            kinds.append("empty")
        elif seen <= {"int"}:
            kinds.append("int")
        elif seen <= {"int", "float"}:
            kinds.append("float")
        elif len(seen) == 1:
            kinds.append(seen.pop())  # type: ignore[arg-type]
        else:
            kinds.append("text")
    return kinds


def _decimal_comma(rows: list[list[str]]) -> bool:
    comma = dot = 0
    for row in rows:
        for value in row:
            v = value.strip()
            if _COMMA_DECIMAL.match(v):
                comma += 1
            elif _DOT_DECIMAL.match(v):
                dot += 1
    return comma > 0 and dot == 0


def _has_header(rows: list[list[str]], decimal: str) -> bool:
    if len(rows) < 2:
        return True
    first, rest = rows[0], rows[1:]
    kinds = _column_kinds(rest, len(first), decimal)
    typed = [(v, k) for v, k in zip(first, kinds, strict=False) if k not in ("text", "empty")]
    if not typed:
        return True  # every column is text: a header is the common case (DuckDB too)
    return any(not _fits(v, k, decimal) for v, k in typed)


def sniff(sample: str, options: CsvOptions, default_delimiter: str = ",") -> Dialect:
    """The dialect of ``sample`` (whole records of the file's start), with the user's
    choices applied first."""
    if options.delimiter is not None:
        delimiter = options.delimiter
    else:
        best: tuple[tuple[float, bool, int, int], str] | None = None
        order = (default_delimiter, *(d for d in DELIMITERS if d != default_delimiter))
        for rank, candidate in enumerate(order):
            if candidate not in sample:
                continue
            quote = options.quote or _pick_quote(sample, candidate)
            share, fields = _consistency(parse_rows(sample, candidate, quote))
            score = (share if fields > 1 else 0.0, fields > 1, fields, -rank)
            if best is None or score > best[0]:
                best = (score, candidate)
        delimiter = best[1] if best is not None and best[0][1] else default_delimiter
    quote = options.quote or _pick_quote(sample, delimiter)
    rows = parse_rows(sample, delimiter, quote)
    if options.decimal is not None:
        decimal = options.decimal
    else:
        decimal = "," if delimiter == ";" and _decimal_comma(rows[1:] or rows) else "."
    header = options.header if options.header is not None else _has_header(rows, decimal)
    return Dialect(delimiter, quote, decimal, header)
