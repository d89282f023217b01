"""Personal data (PII) in columns: e-mail addresses, phone numbers, payment cards, IBANs,
IP addresses and national ids (US social security numbers and others).

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
(a CSV reader turns card numbers into integers).

PII inside values ("call me at +44 20 7946 0958") is found value by value in every other
text column (not those typed as numbers or dates): ``find_pii_spans`` (below) returns
the spans of e-mail addresses, phone numbers (international, and national forms of the
regions in ``PHONE_REGIONS``, validated by libphonenumber), payment cards (issuer prefix,
length, Luhn), IBANs (country length, mod-97), IP addresses (v4 and v6) and national ids
(US SSN, UK NINO, Dutch BSN with its 11-test after the word BSN, French NIR with its
key). A column with at least one such value is reported, with the rows and the rows per
kind. Cheap per-kind prefilters (``PREFILTERS``, run by Polars' regex engine) let through
only the values, and kinds, that could hold a span. Person names and postal addresses are
not detected: no NER model installs offline from PyPI (docs/quality.md).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import phonenumbers
import polars as pl
import pyarrow as pa

from datrix.jobs.quality.issues import Finding
from datrix.jobs.quality.profiling import ColumnStats
from datrix.jobs.quality.rowset import RowSet
from datrix.jobs.quality.table import ScanTable
from datrix.jobs.report import ColumnProfile

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
    counts: dict[str, int]  # kind -> values (embedded: rows) of that kind in the whole column
    rows: Sequence[int]  # rows holding any of the kinds (a RowSet)
    sample_share: float  # share of the sample held by the kinds
    # True: found by the per-value span detector (``find_pii_spans``) inside the values of
    # a column the whole-value rule did not flag; kinds are then ``SPAN_KINDS``.
    embedded: bool = False


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
    skip: Collection[str] = (),
) -> list[PiiColumn]:
    """PII columns in schema order (see the module docstring). ``samples`` may carry the
    sampled values already drawn for other checks (``sample_frame``). Text columns the
    whole-value rule does not flag are searched value by value (``embedded_columns``),
    except those in ``skip`` (text columns that are numbers or dates)."""
    whole = whole_value_pii(source, stats, schema, rows, samples)
    flagged = {c.column for c in whole}
    embedded = embedded_columns(source, stats, flagged | set(skip))
    order = {s.name: i for i, s in enumerate(stats)}
    return sorted([*whole, *embedded], key=lambda c: order[c.column])


def embedded_candidates(stats: Sequence[ColumnStats], exclude: Collection[str]) -> list[str]:
    """Text columns with values that the per-value search looks into."""
    return [
        s.name
        for s in stats
        if s.logical_type == "string" and s.name not in exclude and s.distinct_count > 0
    ]


def embedded_column(
    name: str, kinds: np.ndarray[Any, Any] | Sequence[np.ndarray[Any, Any]]
) -> PiiColumn | None:
    """The finding of a column searched value by value, from its per-row kind bits (one
    array, or one per chunk): None when no value holds a span."""
    parts = [kinds] if isinstance(kinds, np.ndarray) else list(kinds)
    per_kind = dict.fromkeys(SPAN_KINDS, 0)
    for part in parts:
        for k, n in kind_bits(part).items():
            per_kind[k] += n
    found = {k: n for k, n in per_kind.items() if n}
    if not found:
        return None
    ordered = tuple(sorted(found, key=lambda k: (-found[k], SPAN_KINDS.index(k))))
    rows = RowSet.concat_masks([p != 0 for p in parts])
    return PiiColumn(name, ordered, found, rows, 0.0, embedded=True)


def embedded_columns(
    source: pl.LazyFrame | ScanTable, stats: Sequence[ColumnStats], exclude: Collection[str]
) -> list[PiiColumn]:
    """Per-value PII (``embedded_pii``) in every text column not in ``exclude``, over the
    whole column (a chunk at a time when the table is bounded)."""
    names = embedded_candidates(stats, exclude)
    if not names:
        return []
    table = ScanTable.of(source)
    kinds: dict[str, list[np.ndarray[Any, Any]]] = {name: [] for name in names}

    few = {s.name for s in stats if s.name in kinds and s.distinct_count * 2 <= table.rows}

    def search(chunk: pl.DataFrame, name: str) -> None:
        kinds[name].append(embedded_pii(chunk[name], few_distinct=name in few).kinds)

    with ThreadPoolExecutor(max_workers=2) as pool:
        for _, chunk in table.chunks(names):
            list(pool.map(search, [chunk] * len(names), names))
    found = [embedded_column(name, kinds.pop(name)) for name in names]
    return [c for c in found if c is not None]


def whole_value_pii(
    source: pl.LazyFrame | ScanTable,
    stats: Sequence[ColumnStats],
    schema: Mapping[str, pl.DataType],
    rows: int,
    samples: pl.DataFrame | None = None,
) -> list[PiiColumn]:
    """Columns that *hold* PII: a real share of the sample is one kind (module docstring)."""
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


# --- PII inside values: spans of free text ----------------------------------------------
#
# ``find_pii_spans`` finds personal data *inside* a value ("call me on +44 20 7946 0958").
# Each kind is a candidate regex (Python ``re``) followed by an exact validator, and a
# cheap prefilter per kind (``PREFILTERS``, also run by Polars over whole columns) decides which
# values are worth the regexes at all. Precision matters as much as recall: a kind without
# a check digit is accepted only in a shape that ordinary numbers do not have.

SPAN_KINDS = ("email", "phone", "card", "iban", "ip", "national_id")
SPAN_LABELS: dict[str, str] = {
    "email": "e-mail addresses",
    "phone": "phone numbers",
    "card": "payment card numbers (Luhn-valid)",
    "iban": "IBANs (mod-97 valid)",
    "ip": "IP addresses (v4/v6)",
    "national_id": "national ids (US SSN, UK NINO, Dutch BSN, French NIR)",
}
SPAN_TOKENS: dict[str, str] = {k: f"<{k.upper()}>" for k in SPAN_KINDS}
# Per kind, a necessary condition: a value can hold a span of the kind only when its
# prefilter matches. Written without look-around, so Polars' (Rust) regex engine runs them
# over whole columns, all kinds in one pass; Python's ``re`` runs the same patterns in
# ``find_pii_spans``. Most free text (dates, prices, order numbers) passes none.
PREFILTERS: dict[str, str] = {
    "email": r"@",
    "iban": r"[A-Z]{2} ?\d{2}(?: ?[A-Za-z0-9]){11}",  # the shortest IBAN (NO) has 15
    "card": r"\d(?:[ -]?\d){12,18}",
    "national_id": (
        r"\d{3}-\d{2}-\d{4}|[A-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]|(?i:bsn|burgerservice|sofinummer)"
        r"|[12] ?\d{2} ?\d{2} ?(?:\d{2}|2[ABab]) ?\d{3} ?\d{3} ?\d{2}"
    ),
    "ip": r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|[0-9A-Fa-f]*:[0-9A-Fa-f]*:",
    "phone": (  # a consumed left boundary stands in for the finders' look-behind; 7+ digits
        r"(?:^|[^\w+])(?:\+|00)[1-9](?:[ .()-]{0,2}\d){6,}"
        r"|(?:^|[^\w+./:-])\(?0\d(?:[ ./()-]{0,2}\d){5,}"
        r"|(?:^|[^\w+./:-])\(?[2-9]\d{2}\)?[ .-]?[2-9]\d{2}[ .-]\d{4}"
    ),
}
PREFILTER = "|".join(f"(?:{p})" for p in PREFILTERS.values())  # any kind
_PREFILTERS = {k: re.compile(p) for k, p in PREFILTERS.items()}


@dataclass(frozen=True, order=True)
class PiiSpan:
    """``text[start:end]`` is personal data of ``kind`` (one of ``SPAN_KINDS``)."""

    start: int
    end: int
    kind: str


_EMAIL_RE = re.compile(
    r"(?<![\w.%+'-])[A-Za-z0-9](?:[A-Za-z0-9._%+'-]{0,63})@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])"
)


def _emails(text: str) -> Iterator[PiiSpan]:
    for m in _EMAIL_RE.finditer(text):
        local = m.group().split("@", 1)[0]
        if ".." not in local and not local.endswith("."):
            yield PiiSpan(m.start(), m.end(), "email")


# IBAN lengths per country (ISO 13616 registry, the SEPA countries and a few more).
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BR": 29, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18,
    "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22,
    "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29,
    "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SE": 24, "SI": 19, "SK": 24,
    "SM": 27, "TN": 24, "TR": 26, "UA": 29, "VG": 24, "XK": 20,
}  # fmt: skip
_IBAN_START = re.compile(r"(?<![A-Za-z0-9])([A-Z]{2}) ?(\d{2})")


def mod97_ok(compact: str) -> bool:
    """ISO 13616: the first four characters moved to the end, letters as 10..35, the
    number is 1 modulo 97."""
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _ibans(text: str) -> Iterator[PiiSpan]:
    """From each ``CC dd`` start, alphanumerics (single spaces between groups allowed)
    up to the country's length; the next character must not continue the token."""
    for m in _IBAN_START.finditer(text):
        length = IBAN_LENGTHS.get(m.group(1))
        if length is None:
            continue
        chars = [*m.group(1), *m.group(2)]
        i = m.end()
        while len(chars) < length and i < len(text):
            c = text[i]
            if c.isascii() and c.isalnum():
                chars.append(c.upper())
            elif c != " " or i + 1 >= len(text) or not text[i + 1].isalnum():
                break
            i += 1
        if len(chars) != length or (i < len(text) and text[i].isalnum()):
            continue
        if mod97_ok("".join(chars)):
            yield PiiSpan(m.start(), i, "iban")


_CARD_RE = re.compile(r"(?<![\w.,-])\d{4}(?:[ -]?\d){9,15}(?![\w-]|[.,]\d)")
# A bare digit run right after one of these words is an identifier, not a card or phone
# number ("order 4111111111111111", "account 0581224636").
_ID_WORDS = re.compile(
    r"\b(?:order|ref|reference|id|invoice|inv|tracking|account|acct|ticket|sku|isbn|serial"
    r"|batch|code|item|customer|case|po|iban|bic|ean|upc)\W{0,3}$",
    re.IGNORECASE,
)
# Issuers whose numbers are accepted bare (no separators): the common ones.
_BARE_CARD_BRANDS = 4


def _after_id_word(text: str, start: int) -> bool:
    return _ID_WORDS.search(text, max(0, start - 24), start) is not None


# Issuer prefixes (IIN ranges) and lengths of the common brands.
_CARD_BRANDS: tuple[tuple[re.Pattern[str], tuple[int, ...]], ...] = (
    (re.compile(r"4"), (13, 16, 19)),  # Visa
    (re.compile(r"5[1-5]|2(?:2[2-9][1-9]|2[3-9]\d|[3-6]\d\d|7[01]\d|720)"), (16,)),  # MC
    (re.compile(r"3[47]"), (15,)),  # American Express
    (re.compile(r"6(?:011|4[4-9]|5)"), (16, 17, 18, 19)),  # Discover
    (re.compile(r"35(?:2[89]|[3-8]\d)"), (16, 17, 18, 19)),  # JCB
    (re.compile(r"3(?:0[0-5]|[689])"), (14, 15, 16, 17, 18, 19)),  # Diners Club
    (re.compile(r"62"), (16, 17, 18, 19)),  # UnionPay
)
_CARD_GROUPS = {(4, 4, 4, 4), (4, 6, 5), (4, 6, 4), (4, 4, 4, 4, 3), (4, 4, 4, 1), (4, 4, 4, 2)}


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = ord(c) - 48
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _cards(text: str) -> Iterator[PiiSpan]:
    """13-19 digits in the printed groups (4-4-4-4, 4-6-5, ...; one kind of separator)
    of a known issuer prefix and length, or bare of the four common issuers and not
    right after an identifier word ("order", "ref", ...), passing Luhn."""
    for m in _CARD_RE.finditer(text):
        raw = m.group()
        digits = raw.replace(" ", "").replace("-", "")
        if not 13 <= len(digits) <= 19:
            continue
        brands = _CARD_BRANDS
        if raw != digits:
            separators = {c for c in raw if not c.isdigit()}
            groups = tuple(len(g) for g in re.split(r"[ -]", raw))
            if len(separators) != 1 or groups not in _CARD_GROUPS:
                continue
        elif _after_id_word(text, m.start()):
            continue
        else:  # bare: Visa, Mastercard, Amex, Discover only
            brands = _CARD_BRANDS[:_BARE_CARD_BRANDS]
        brand = any(p.match(digits) and len(digits) in n for p, n in brands)
        if brand and luhn_ok(digits):
            yield PiiSpan(m.start(), m.end(), "card")


_IPV4_RE = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
_IPV6_RE = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")
_VERSION_WORDS = re.compile(
    r"\b(?:v|version|ver\.?|release|build|rev\.?|firmware|fw|software|driver|patch|update)\s*$",
    re.IGNORECASE,
)


def _ips(text: str) -> Iterator[PiiSpan]:
    """IPv4: four octets 0..255 without leading zeros, not a version number ("v1.2.3.4",
    "version 10.0.0.1" are not addresses). IPv6: what ``ipaddress`` accepts, with at
    eight groups, or a ``::`` with three groups or after a group of 3+ digits ("fe80::1"),
    never a time like 10:30:00."""
    for m in _IPV4_RE.finditer(text):
        octets = m.group().split(".")
        if any((len(o) > 1 and o[0] == "0") or int(o) > 255 for o in octets):
            continue
        if _VERSION_WORDS.search(text, 0, m.start()):
            continue
        yield PiiSpan(m.start(), m.end(), "ip")
    for m in _IPV6_RE.finditer(text):
        raw = m.group()
        groups = [g for g in raw.split(":") if g]
        if "::" not in raw and len(groups) != 8:
            continue
        if len(groups) < 2 or (len(groups) == 2 and len(groups[0]) < 3):
            continue  # "::1", "a::b": too little to tell from code or a ratio
        try:
            ipaddress.IPv6Address(raw)
        except ValueError:
            continue
        yield PiiSpan(m.start(), m.end(), "ip")


_SSN_RE = re.compile(r"(?<![\w-])(\d{3})-(\d{2})-(\d{4})(?![\w-])")
_NINO_RE = re.compile(
    r"(?<![A-Za-z0-9])([A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z])"
    r" ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![A-Za-z0-9])"
)
_NINO_NEVER = {"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"}
# The compact form (AB123456C) is also the shape of many product codes: only after these.
_NINO_WORDS = re.compile(r"\b(?:ni|nino|nin|national insurance)\b[\w .:#-]{0,12}$", re.I)
_BSN_RE = re.compile(
    r"\b(?:bsn|burgerservicenummer|sofinummer)\b\W{0,3}(?:nr\.?|nummer|number|is)?\W{0,3}"
    r"(\d{4}[. ]?\d{2}[. ]?\d{3}|\d{9})(?![\w])",
    re.IGNORECASE,
)
_NIR_RE = re.compile(
    r"(?<![\w])([12]) ?(\d{2}) ?(0[1-9]|1[0-2]|[2-9]\d) ?(\d{2}|2[AB]) ?(\d{3}) ?(\d{3})"
    r" ?(\d{2})(?![\w])"
)


def bsn_ok(digits: str) -> bool:
    """The Dutch 11-test: 9*d1 + 8*d2 + ... + 2*d8 - d9 is divisible by 11 (and not 0)."""
    if len(digits) != 9 or digits == "0" * 9:
        return False
    total = sum((9 - i) * int(d) for i, d in enumerate(digits[:8])) - int(digits[8])
    return total % 11 == 0


def nir_ok(number: str, key: str) -> bool:
    """French NIR: key = 97 - (13 digits mod 97); Corsica's 2A/2B count as 19/18."""
    body = number.replace("2A", "19").replace("2B", "18")
    return 97 - int(body) % 97 == int(key)


def _national_ids(text: str) -> Iterator[PiiSpan]:
    """US SSN (ddd-dd-dddd, never-issued areas 000/666/9xx, group 00, serial 0000
    refused), UK NINO (two prefix letters from the allowed sets, six digits, A-D; the
    compact form only after "NI"/"NINO"/"national insurance"), Dutch
    BSN (11-test; only after the word BSN: nine bare digits are too common), French NIR
    (sex, year, month, department, commune, order and the mod-97 key)."""
    for m in _SSN_RE.finditer(text):
        area, group, serial = m.groups()
        if area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000":
            yield PiiSpan(m.start(), m.end(), "national_id")
    for m in _NINO_RE.finditer(text):
        if m.group(1) in _NINO_NEVER:
            continue
        if " " in m.group() or _NINO_WORDS.search(text, max(0, m.start() - 40), m.start()):
            yield PiiSpan(m.start(), m.end(), "national_id")
    for m in _BSN_RE.finditer(text):
        if bsn_ok(re.sub(r"\D", "", m.group(1))):
            yield PiiSpan(m.start(1), m.end(1), "national_id")
    for m in _NIR_RE.finditer(text):
        parts = m.groups()
        if " " not in m.group() and _after_id_word(text, m.start()):
            continue
        if nir_ok("".join(parts[:6]), parts[6]):
            yield PiiSpan(m.start(), m.end(), "national_id")


# International: "+" or "00", a country code, then digits in groups. National: a trunk
# "0" and groups (Europe), or the North American (NPA) NXX-XXXX with separators.
_PHONE_INTL_RE = re.compile(
    r"(?<![\w+])(?:\+|00)[1-9]\d{0,2}(?:[ .-]?\(\d{1,4}\)|[ .-]?\d{1,5}){1,7}(?![\w]|[.-]\w)"
)
_PHONE_NATIONAL_RE = re.compile(
    r"(?<![\w+./:-])(?:\(0\d{1,4}\)|0\d{1,4})(?:[ ./-]?\d{2,8}){1,4}(?![\w]|[./:-]\w)"
    r"|(?<![\w+./:-])(?:\([2-9]\d{2}\) ?|[2-9]\d{2}[-. ])[2-9]\d{2}[-. ]\d{4}(?![\w]|[./:-]\w)"
)
_DATE_LIKE = re.compile(r"\d{1,4}([./-])\d{1,2}\1\d{1,4}")
# Regions tried for national forms (trunk prefix 0, or the North American plan), in order.
PHONE_REGIONS = ("US", "GB", "DE", "FR", "NL", "BE", "CH", "AT", "IE", "SE", "AU", "NZ")


def _phone_valid(candidate: str, regions: Sequence[str | None]) -> bool:
    digits = sum(c.isdigit() for c in candidate)
    if not 7 <= digits <= 15 or _DATE_LIKE.fullmatch(candidate):
        return False
    for region in regions:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return True
    return False


def _phones(text: str) -> Iterator[PiiSpan]:
    """Candidates validated by libphonenumber (``phonenumbers``): international numbers
    for their country code, national ones for the first of ``PHONE_REGIONS`` that accepts
    them. A date, a decimal number, a digit run of an unknown plan or a bare national
    number right after an identifier word is no phone."""
    for m in _PHONE_INTL_RE.finditer(text):
        raw = m.group()
        number = "+" + raw[2:] if raw.startswith("00") else raw
        if _phone_valid(number, [None]):
            yield PiiSpan(m.start(), m.end(), "phone")
    for m in _PHONE_NATIONAL_RE.finditer(text):
        raw = m.group()
        separators = [c for c in raw if not c.isdigit()]
        if separators and set(separators) == {"."} and len(separators) == 1:
            continue  # 0.12345678: a decimal number
        if not separators and _after_id_word(text, m.start()):
            continue  # account 0581224636: an identifier
        regions = ("US",) if raw[0] != "0" and not raw.startswith("(0") else PHONE_REGIONS[1:]
        if _phone_valid(raw, regions):
            yield PiiSpan(m.start(), m.end(), "phone")


# Order matters: a span of an earlier kind wins where two overlap (an IBAN's digits are
# no card, an e-mail's digits no phone).
_FINDERS: tuple[tuple[str, Callable[[str], Iterator[PiiSpan]]], ...] = (
    ("email", _emails),
    ("iban", _ibans),
    ("card", _cards),
    ("national_id", _national_ids),
    ("ip", _ips),
    ("phone", _phones),
)


def find_pii_spans(text: str) -> list[PiiSpan]:
    """The personal data inside ``text``: non-overlapping spans, by position. Kinds:
    ``email``, ``phone``, ``card``, ``iban``, ``ip``, ``national_id`` (``SPAN_KINDS``).
    Person names and postal addresses are not detected (no NER model; docs/quality.md)."""
    if not isinstance(text, str):
        raise TypeError(f"find_pii_spans needs a str, not {type(text).__name__}")
    return _find(text, [k for k, p in _PREFILTERS.items() if p.search(text)])


def _find(text: str, kinds: Collection[str]) -> list[PiiSpan]:
    """``find_pii_spans`` with the finders of ``kinds`` only (those whose prefilter
    matched)."""
    taken: list[PiiSpan] = []
    for kind, finder in _FINDERS:
        if kind not in kinds:
            continue
        for span in finder(text):
            if all(span.end <= t.start or span.start >= t.end for t in taken):
                taken.append(span)
    return sorted(taken)


def redact_spans(text: str, spans: Sequence[PiiSpan] | None = None) -> str:
    """``text`` with each span replaced by its token (``<EMAIL>``, ``<PHONE>``, ...)."""
    found = find_pii_spans(text) if spans is None else sorted(spans)
    out, at = [], 0
    for s in found:
        out += [text[at : s.start], SPAN_TOKENS[s.kind]]
        at = s.end
    return "".join([*out, text[at:]])


_DOT = "\u2022\u2022\u2022"


def mask_text(value: str) -> str:
    """A display form that shows no personal data: ``ada@example.com`` ->
    ``a•••@e•••.com``; other spans keep their first and last character; a value with
    no detected span (a whole-value PII column's odd value) keeps its first character."""
    spans = find_pii_spans(value)
    if not spans:
        return value[:1] + _DOT if value else value
    return mask_spans(value, spans)


def mask_spans(text: str, spans: Sequence[PiiSpan] | None = None) -> str:
    """``text`` with each detected span masked as ``mask_text`` does, the rest kept."""
    value = text
    spans = find_pii_spans(text) if spans is None else sorted(spans)
    out, at = [], 0
    for s in spans:
        part = value[s.start : s.end]
        if s.kind == "email":
            local, domain = part.split("@", 1)
            tld = domain.rsplit(".", 1)[1]
            masked = f"{local[:1]}{_DOT}@{domain[:1]}{_DOT}.{tld}"
        else:
            masked = f"{part[:1]}{_DOT}{part[-1:]}"
        out += [value[at : s.start], masked]
        at = s.end
    return "".join([*out, value[at:]])


@dataclass(frozen=True)
class EmbeddedPii:
    """Per-value detection on a batch of values: ``kinds[i]`` is a bit set of the span
    kinds in value ``i`` (bit ``SPAN_KINDS.index(kind)``), ``spans`` counts the spans
    found per kind."""

    kinds: np.ndarray[Any, Any]  # uint8 per value
    spans: dict[str, int]


def embedded_pii(values: pl.Series, few_distinct: bool = False) -> EmbeddedPii:
    """``find_pii_spans`` over a column. Polars' regex engine runs ``PREFILTER`` (any kind)
    over every value, then the per-kind ``PREFILTERS`` over the values that passed; the
    exact detectors run only on the values and kinds these let through, each distinct
    value once. ``few_distinct`` (a categorical column): all of this on the distinct
    values only, mapped back to the rows."""
    text = values.cast(pl.String)
    if few_distinct:
        return _embedded_by_value(text)
    kinds = np.zeros(len(text), dtype=np.uint8)
    spans = dict.fromkeys(SPAN_KINDS, 0)
    at = np.flatnonzero(text.str.contains(PREFILTER).fill_null(False).to_numpy())
    if not at.size:
        return EmbeddedPii(kinds, spans)
    passed = text.gather(at)
    per_kind = pl.DataFrame({"v": passed}).select(
        pl.col("v").str.contains(p).alias(k) for k, p in PREFILTERS.items()
    )
    bits = np.zeros(len(at), dtype=np.uint8)
    for b, kind in enumerate(PREFILTERS):
        bits |= per_kind[kind].to_numpy().astype(np.uint8) << b
    names = list(PREFILTERS)
    seen: dict[str, tuple[int, list[str]]] = {}
    for j, (i, value) in enumerate(zip(at, passed.to_list(), strict=True)):
        found = seen.get(value)
        if found is None:
            wanted = [names[b] for b in range(len(names)) if bits[j] & (1 << b)]
            hits = [s.kind for s in _find(value, wanted)]
            mask = 0
            for k in hits:
                mask |= 1 << SPAN_KINDS.index(k)
            found = seen[value] = (mask, hits)
        kinds[i] = found[0]
        for k in found[1]:
            spans[k] += 1
    return EmbeddedPii(kinds, spans)


def _embedded_by_value(text: pl.Series) -> EmbeddedPii:
    """``embedded_pii`` on the distinct values, mapped back to the rows."""
    distinct = text.drop_nulls().unique(maintain_order=True)
    found = embedded_pii(distinct)
    spans = dict.fromkeys(SPAN_KINDS, 0)
    hit = np.flatnonzero(found.kinds)
    if not hit.size:
        return EmbeddedPii(np.zeros(len(text), dtype=np.uint8), spans)
    values = distinct.gather(hit)
    bits = pl.Series(found.kinds[hit], dtype=pl.UInt8)
    kinds = text.replace_strict(values, bits, default=0, return_dtype=pl.UInt8)
    counts = dict(text.filter(text.is_in(values.implode())).value_counts().iter_rows())
    for value in values.to_list():
        for s in find_pii_spans(value):
            spans[s.kind] += int(counts[value])
    return EmbeddedPii(kinds.fill_null(0).to_numpy().astype(np.uint8), spans)


def kind_bits(kinds: np.ndarray[Any, Any]) -> dict[str, int]:
    """Rows per span kind of a bit-set array (``EmbeddedPii.kinds``)."""
    return {k: int(np.count_nonzero(kinds & (1 << b))) for b, k in enumerate(SPAN_KINDS)}


# The numeric summaries of an integer PII column (card numbers read as integers) are
# values of the column: a PII column's profile keeps none of them.
_VALUE_KEYS = ("min", "max", "p25", "p50", "p75")


def mask_value(value: Any) -> Any:
    """``mask_text`` of a value's text form; None stays None."""
    return None if value is None else mask_text(str(value))


def mask_profiles(
    profiles: Sequence[ColumnProfile], pii_columns: Collection[str]
) -> list[ColumnProfile]:
    """The profiles with the top values of each PII column masked (``mask_text``: e-mail
    ``a•••@e•••.com``) and its value-revealing numeric summaries dropped, so a report
    never carries the personal data it found."""
    out = []
    for p in profiles:
        if p.name not in pii_columns:
            out.append(p)
            continue
        extra = {k: v for k, v in p.extra.items() if k not in _VALUE_KEYS}
        if "top_values" in extra:
            extra["top_values"] = [
                {**t, "value": mask_value(t.get("value"))} for t in extra["top_values"]
            ]
        extra["pii_masked"] = True
        out.append(dataclasses.replace(p, extra=extra))
    return out


def mask_findings(findings: Sequence[Finding], pii_columns: Collection[str]) -> list[Finding]:
    """Findings with the PII in the descriptions of other findings on PII columns masked
    (a constant card column's "holds a single value (4111...)")."""
    return [
        dataclasses.replace(f, description=mask_spans(f.description))
        if f.column in pii_columns and f.type != "pii_detected"
        else f
        for f in findings
    ]
