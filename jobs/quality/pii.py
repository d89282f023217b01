"""Personal data (PII) in columns: e-mail addresses, phone numbers, payment cards, IBANs,
IPv4 addresses and US social security numbers.

A value counts as a kind only when the *whole* value (trimmed) has that shape and, where the
kind has one, passes its check: the Luhn checksum for cards, ISO 13616 mod-97 for IBANs,
octets <= 255 for IPv4, the SSA's never-issued areas/groups/serials for SSNs. The shapes are
Polars regexes (which have no look-around or back-references: what would need them is a
separate check); the checks are vectorised too (numpy digit arithmetic for Luhn, a byte
matrix for mod-97) and run only on the values that have the shape. The same code runs on
the sample and on the whole column.

A column is flagged when at least ``MIN_SHARE`` of an evenly spaced sample of up to
``SAMPLE_SIZE`` of its non-null values is one kind; its counts and rows are then taken on
the whole column. Integer columns with 13+ digit values are checked for card numbers only
(a CSV reader turns card numbers into integers). PII embedded in free text ("call me at
...") is not looked for: a column is reported when it *holds* personal data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from datrix.jobs.quality.profiling import ColumnStats
from datrix.jobs.quality.rowset import RowSet
from datrix.jobs.quality.table import ScanTable

MIN_SHARE = 0.30
SAMPLE_SIZE = 50_000
MIN_SAMPLE = 5  # fewer non-null values than this: not judged

KIND_LABELS: dict[str, str] = {
    "email": "e-mail addresses",
    "phone": "phone numbers",
    "credit_card": "payment card numbers (Luhn-valid)",
    "iban": "IBANs (mod-97 valid)",
    "ip_address": "IPv4 addresses",
    "ssn": "US social security numbers",
}

_EMAIL = r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$"
# International (+CC ...) or North-American (NPA-NXX-XXXX) shapes. A bare run of digits,
# a date or an IP address is deliberately not a phone number.
_PHONE = (
    r"^(\+\d{1,3}[ .-]?(\(\d{1,4}\)[ .-]?)?\d{1,4}([ .-]?\d{2,4}){1,4}"
    r"|\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4})$"
)
_CARD = r"^\d{4}[ -]?\d{4}[ -]?\d{4}[ -]?\d{1,7}$"
_IBAN = r"^[A-Z]{2}\d{2}[A-Z0-9]{11,30}$"
_OCTET = r"(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = rf"^{_OCTET}(\.{_OCTET}){{3}}$"
_SSN = r"^\d{3}-\d{2}-\d{4}$"


def luhn_valid(digits: pl.Series) -> np.ndarray[Any, Any]:
    """Luhn checksum of digit strings of up to 19 digits: from the right, every second
    digit is doubled (minus 9 when above 9) and the total must be divisible by 10.
    Integer arithmetic on the number itself (19 digits fit in a UInt64), digit by digit
    with numpy so only a few arrays of the column's length exist at a time."""
    parsed = digits.cast(pl.UInt64, strict=False)
    valid = parsed.is_not_null().to_numpy()
    number = parsed.fill_null(0).to_numpy().copy()
    total = np.zeros(number.shape, dtype=np.uint64)
    ten = np.uint64(10)
    for i in range(19):
        d = number % ten
        if i % 2 == 1:
            d = d * np.uint64(2)
            d -= np.where(d > 9, np.uint64(9), np.uint64(0))
        total += d
        number //= ten
    return np.asarray(valid & (total % ten == 0), dtype=bool)


def fixed_width_bytes(values: pl.Series, width: int) -> np.ndarray[Any, Any]:
    """ASCII strings of at most ``width`` characters as an (n x width) uint8 matrix,
    right-padded with spaces (from the Arrow buffer when it is contiguous)."""
    padded = values.str.pad_end(width, " ")
    arrow = padded.to_arrow()
    if arrow.type != pa.large_string():
        arrow = arrow.cast(pa.large_string())
    n = len(arrow)
    offsets = np.frombuffer(arrow.buffers()[1], dtype=np.int64)[arrow.offset : arrow.offset + n + 1]
    if n and bool(np.all(np.diff(offsets) == width)):
        data = np.frombuffer(arrow.buffers()[2], dtype=np.uint8)
        return data[offsets[0] : offsets[0] + n * width].reshape(n, width)
    joined = "".join(padded.to_list()).encode("ascii", errors="replace")
    return np.frombuffer(joined, dtype=np.uint8).reshape(n, width)


_CHAR_VALUE = np.zeros(256, dtype=np.int32)
_CHAR_VALUE[48:58] = np.arange(10)  # "0".."9"
_CHAR_VALUE[65:91] = np.arange(10, 36)  # "A".."Z"
_CHAR_SCALE = np.ones(256, dtype=np.int32)  # padding: remainder unchanged
_CHAR_SCALE[48:58] = 10
_CHAR_SCALE[65:91] = 100  # a letter stands for two digits


def iban_valid(ibans: pl.Series) -> np.ndarray[Any, Any]:
    """ISO 13616 check of compact upper-case IBANs (<= 34 characters): move the first
    four characters to the end, read letters as 10..35, and the number must be 1 modulo
    97. Computed character position by character position over a byte matrix."""
    moved = ibans.str.slice(4) + ibans.str.slice(0, 4)
    longest = moved.str.len_bytes().max()
    width = int(longest) if isinstance(longest, int) else 0  # <= 34; 22 for German IBANs
    chars = np.ascontiguousarray(fixed_width_bytes(moved, width).T)
    remainder = np.zeros(len(ibans), dtype=np.int32)
    for position in chars:
        remainder = (remainder * _CHAR_SCALE[position] + _CHAR_VALUE[position]) % 97
    return np.asarray(remainder == 1, dtype=bool)


def _ssn_valid(ssn: pl.Series) -> np.ndarray[Any, Any]:
    """Areas 000, 666 and 900-999, group 00 and serial 0000 are never issued."""
    area, group, serial = ssn.str.slice(0, 3), ssn.str.slice(4, 2), ssn.str.slice(7, 4)
    valid = (
        ~area.is_in(["000", "666"])
        & (area.str.slice(0, 1) != "9")
        & (group != "00")
        & (serial != "0000")
    )
    return valid.to_numpy()


def _digit_count_ok(low: int, high: int) -> Callable[[pl.Series], np.ndarray[Any, Any]]:
    def check(values: pl.Series) -> np.ndarray[Any, Any]:
        return values.str.count_matches(r"\d").is_between(low, high).to_numpy()

    return check


def _card_valid(values: pl.Series) -> np.ndarray[Any, Any]:
    digits = values.str.replace_all(r"[ -]", "")
    length_ok = digits.str.len_chars().is_between(13, 19).to_numpy()
    return np.asarray(length_ok & luhn_valid(digits), dtype=bool)


@dataclass(frozen=True)
class Kind:
    """A PII kind: a whole-value shape (regex) and an optional check of matching values."""

    shape: str
    check: Callable[[pl.Series], np.ndarray[Any, Any]] | None = None
    compact: bool = False  # drop spaces and upper-case before matching (IBAN)


KINDS: dict[str, Kind] = {
    "email": Kind(_EMAIL),
    "phone": Kind(_PHONE, _digit_count_ok(7, 15)),
    "credit_card": Kind(_CARD, _card_valid),
    "iban": Kind(_IBAN, iban_valid, compact=True),
    "ip_address": Kind(_IPV4),
    "ssn": Kind(_SSN, _ssn_valid),
}
# Integer columns can only hold card numbers (a CSV reader turns them into integers).
INTEGER_KINDS = ("credit_card",)
_MIN_CARD = 10**12  # 13 digits


def _shape_text(kind: str, text: pl.Expr) -> pl.Expr:
    """The trimmed text as the kind's shape regex sees it."""
    if KINDS[kind].compact:
        return text.str.replace_all(" ", "", literal=True).str.to_uppercase()
    return text


def kind_mask(kind: str, values: pl.Series) -> np.ndarray[Any, Any]:
    """Boolean mask: the (trimmed) value is a valid ``kind`` value. Nulls are False. The
    check runs only on the values that have the shape."""
    spec = KINDS[kind]
    series = values.cast(pl.String).str.strip_chars()
    if spec.compact:
        series = series.str.replace_all(" ", "", literal=True).str.to_uppercase()
    mask = series.str.contains(spec.shape).fill_null(False).to_numpy().copy()
    if spec.check is not None and mask.all():
        mask = spec.check(series)
    elif spec.check is not None and mask.any():
        idx = np.flatnonzero(mask)
        mask[idx] = spec.check(series.gather(idx))
    return mask


def shape_counts(values: pl.Series, kinds: Sequence[str]) -> dict[str, int]:
    """How many values have each kind's shape (an upper bound of the valid ones), all
    regexes in one ``select`` so Polars runs them side by side."""
    text = pl.col("v").str.strip_chars()
    exprs = [_shape_text(k, text).str.contains(KINDS[k].shape).sum().alias(k) for k in kinds]
    row = pl.DataFrame({"v": values.cast(pl.String)}).select(exprs).row(0, named=True)
    return {k: int(row[k] or 0) for k in kinds}


@dataclass(frozen=True)
class PiiColumn:
    column: str
    kinds: tuple[str, ...]  # most frequent first
    counts: dict[str, int]  # kind -> values of that kind in the whole column
    rows: Sequence[int]  # rows holding any of the kinds (a RowSet)
    sample_share: float  # share of the sample held by the kinds


def pii_candidates(
    stats: Sequence[ColumnStats], schema: Mapping[str, pl.DataType]
) -> dict[str, tuple[str, ...]]:
    """Columns worth looking at and the kinds to look for in each."""
    out: dict[str, tuple[str, ...]] = {}
    for s in stats:
        if s.logical_type == "string":
            out[s.name] = tuple(KINDS)
        elif (
            s.logical_type == "integer"
            and s.numeric is not None
            and s.numeric.max is not None
            and s.numeric.max >= _MIN_CARD
        ):
            out[s.name] = INTEGER_KINDS
    return out


def _as_text(name: str) -> pl.Expr:
    return pl.col(name).cast(pl.String)


def sample_frame(
    source: pl.LazyFrame | ScanTable, present: Mapping[str, int], size: int
) -> pl.DataFrame:
    """Up to ``size`` evenly spaced non-null values per column, as one row of lists.

    Evenly spaced (every k-th value) rather than random: deterministic, cheap, and it sees
    the whole file rather than its head. A bounded table is read a chunk at a time, each
    column's count of non-null values carried over so the picks are the same."""
    table = ScanTable.of(source)
    steps = {name: max(1, -(-count // size)) for name, count in present.items()}
    if not table.bounded:
        exprs = [
            _as_text(name).drop_nulls().gather_every(steps[name]).implode().alias(name)
            for name in present
        ]
        return table.lazy.select(exprs).collect()
    seen = dict.fromkeys(present, 0)
    picked: dict[str, list[pl.Series]] = {name: [] for name in present}
    for _, chunk in table.chunks(list(present)):
        for name, step in steps.items():
            values = chunk[name].cast(pl.String).drop_nulls()
            picked[name].append(values.gather_every(step, offset=(-seen[name]) % step))
            seen[name] += values.len()
    return pl.DataFrame([pl.concat(parts).implode().alias(n) for n, parts in picked.items()])


def detect_pii(
    source: pl.LazyFrame | ScanTable,
    stats: Sequence[ColumnStats],
    schema: Mapping[str, pl.DataType],
    rows: int,
    samples: pl.DataFrame | None = None,
) -> list[PiiColumn]:
    """PII columns in schema order (see the module docstring). ``samples`` may carry the
    sampled values already drawn for other checks (``sample_frame``)."""
    candidates = pii_candidates(stats, schema)
    present = {s.name: rows - s.null_count for s in stats if s.name in candidates}
    present = {k: v for k, v in present.items() if v >= MIN_SAMPLE}
    if not present:
        return []
    if samples is None or not set(present) <= set(samples.columns):
        samples = sample_frame(source, present, SAMPLE_SIZE)
    flagged: dict[str, list[str]] = {}
    shares: dict[str, float] = {}
    for name in present:
        values = samples[name].explode().drop_nulls()
        n = values.len()
        if n < MIN_SAMPLE:
            continue
        # Shapes first, all kinds in one select; the checks only where a shape is common.
        shaped = shape_counts(values, candidates[name])
        likely = [k for k in candidates[name] if shaped[k] >= MIN_SHARE * n]
        counts = {k: int(kind_mask(k, values).sum()) for k in likely}
        hits = sorted((k for k in counts if counts[k] >= MIN_SHARE * n), key=lambda k: -counts[k])
        if hits:
            flagged[name] = hits
            shares[name] = min(1.0, sum(counts[k] for k in hits) / n)
    if not flagged:
        return []
    table = ScanTable.of(source)
    found: dict[str, dict[str, int]] = {name: dict.fromkeys(k, 0) for name, k in flagged.items()}
    masks: dict[str, list[np.ndarray[Any, Any]]] = {name: [] for name in flagged}

    def check(chunk: pl.DataFrame, name: str) -> None:
        kinds = {k: kind_mask(k, chunk[name]) for k in flagged[name]}
        for k, mask in kinds.items():
            found[name][k] += int(mask.sum())
        masks[name].append(np.logical_or.reduce(list(kinds.values())))

    # Polars and numpy release the GIL: two columns at a time use both cores.
    with ThreadPoolExecutor(max_workers=2) as pool:
        for _, chunk in table.chunks(list(flagged)):
            list(pool.map(check, [chunk] * len(flagged), flagged))
    return [
        PiiColumn(
            column=name,
            kinds=tuple(kinds),
            counts=found[name],
            rows=RowSet.concat_masks(masks.pop(name)),
            sample_share=shares[name],
        )
        for name, kinds in flagged.items()
    ]
