"""Personal data (PII) in columns: e-mail addresses, phone numbers, payment cards, IBANs,
IPv4 addresses and US social security numbers.

A value counts as a kind only when the *whole* value (trimmed) has that shape and, where the
kind has one, passes its check: the Luhn checksum for cards, ISO 13616 mod-97 for IBANs,
octets <= 255 for IPv4, the SSA's never-issued areas/groups/serials for SSNs. Everything is a
Polars expression (regexes, slices, integer arithmetic), so the same code runs on the sample
and on the whole column. Polars' regex engine has no look-around or back-references; the
checks that would need them are separate expressions.

A column is flagged when at least ``MIN_SHARE`` of a sample of up to ``SAMPLE_SIZE`` of its
non-null values carries one kind; its count and rows are then taken on the whole column.
PII embedded in free text ("call me at ...") is not looked for: a column is reported only
when it *holds* personal data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import polars as pl

from jobs.quality.profiling import ColumnStats

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


def _digits(text: pl.Expr, max_len: int) -> list[pl.Expr]:
    """The first ``max_len`` characters of ``text`` as digits (missing ones as 0)."""
    return [text.str.slice(i, 1).cast(pl.Int64, strict=False).fill_null(0) for i in range(max_len)]


def luhn_valid(digits: pl.Expr) -> pl.Expr:
    """Luhn checksum of a digit string (up to 19 digits): from the right, every second
    digit is doubled (minus 9 when above 9) and the total must be divisible by 10."""
    reversed_digits = _digits(digits.str.reverse(), 19)
    total = pl.lit(0, dtype=pl.Int64)
    for i, d in enumerate(reversed_digits):
        if i % 2 == 1:
            doubled = d * 2
            total = total + pl.when(doubled > 9).then(doubled - 9).otherwise(doubled)
        else:
            total = total + d
    return total % 10 == 0


_LETTER_VALUES = {chr(ord("A") + i): str(10 + i) for i in range(26)}


def iban_valid(iban: pl.Expr) -> pl.Expr:
    """ISO 13616 check: move the first four characters to the end, replace letters by
    10..35 and the number must be 1 modulo 97. Computed 7 digits at a time, so the
    running value stays far below 2**63."""
    moved = iban.str.slice(4) + iban.str.slice(0, 4)
    number = moved.str.replace_many(list(_LETTER_VALUES), list(_LETTER_VALUES.values()))
    remainder = pl.lit(0, dtype=pl.Int64)
    step = 7
    for offset in range(0, 34 * 2, step):  # an IBAN has at most 34 characters
        part = number.str.slice(offset, step)
        width = part.str.len_chars().cast(pl.Int64)
        value = part.cast(pl.Int64, strict=False).fill_null(0)
        remainder = (remainder * pl.lit(10, dtype=pl.Int64).pow(width) + value) % 97
    return remainder == 1


def ssn_valid(ssn: pl.Expr) -> pl.Expr:
    """Areas 000, 666 and 900-999, group 00 and serial 0000 are never issued."""
    area, group, serial = ssn.str.slice(0, 3), ssn.str.slice(4, 2), ssn.str.slice(7, 4)
    return (
        ~area.is_in(["000", "666"])
        & (area.str.slice(0, 1) != "9")
        & (group != "00")
        & (serial != "0000")
    )


def _email(v: pl.Expr) -> pl.Expr:
    return v.str.contains(_EMAIL)


def _phone(v: pl.Expr) -> pl.Expr:
    return v.str.contains(_PHONE) & v.str.count_matches(r"\d").is_between(7, 15)


def _card(v: pl.Expr) -> pl.Expr:
    digits = v.str.replace_all(r"[ -]", "")
    return v.str.contains(_CARD) & digits.str.len_chars().is_between(13, 19) & luhn_valid(digits)


def _iban(v: pl.Expr) -> pl.Expr:
    compact = v.str.replace_all(" ", "", literal=True).str.to_uppercase()
    return compact.str.contains(_IBAN) & iban_valid(compact)


def _ipv4(v: pl.Expr) -> pl.Expr:
    return v.str.contains(_IPV4)


def _ssn(v: pl.Expr) -> pl.Expr:
    return v.str.contains(_SSN) & ssn_valid(v)


KIND_CHECKS: dict[str, Callable[[pl.Expr], pl.Expr]] = {
    "email": _email,
    "phone": _phone,
    "credit_card": _card,
    "iban": _iban,
    "ip_address": _ipv4,
    "ssn": _ssn,
}
# Integer columns can only hold card numbers (a CSV reader turns them into integers).
INTEGER_KINDS = ("credit_card",)
_MIN_CARD = 10**12  # 13 digits


def kind_expr(kind: str, value: pl.Expr) -> pl.Expr:
    """True where ``value`` (a String expression) is a valid value of ``kind``; null
    stays null."""
    return KIND_CHECKS[kind](value.str.strip_chars())


@dataclass(frozen=True)
class PiiColumn:
    column: str
    kinds: tuple[str, ...]  # most frequent first
    counts: dict[str, int]  # kind -> values of that kind in the whole column
    rows: list[int]  # rows holding any of the kinds
    sample_share: float  # share of the sample held by the kinds


def pii_candidates(
    stats: Sequence[ColumnStats], schema: Mapping[str, pl.DataType]
) -> dict[str, tuple[str, ...]]:
    """Columns worth looking at and the kinds to look for in each."""
    out: dict[str, tuple[str, ...]] = {}
    for s in stats:
        if s.logical_type == "string":
            out[s.name] = tuple(KIND_CHECKS)
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


def sample_frame(source: pl.LazyFrame, present: Mapping[str, int], size: int) -> pl.DataFrame:
    """Up to ``size`` evenly spaced non-null values per column, as one row of lists.

    Evenly spaced (every k-th value) rather than random: deterministic, cheap, and it sees
    the whole file rather than its head."""
    exprs = [
        _as_text(name).drop_nulls().gather_every(max(1, -(-count // size))).implode().alias(name)
        for name, count in present.items()
    ]
    return source.select(exprs).collect()


def detect_pii(
    source: pl.LazyFrame,
    stats: Sequence[ColumnStats],
    schema: Mapping[str, pl.DataType],
    rows: int,
    samples: pl.DataFrame | None = None,
) -> list[PiiColumn]:
    """PII columns in schema order (see the module docstring)."""
    candidates = pii_candidates(stats, schema)
    present = {s.name: rows - s.null_count for s in stats if s.name in candidates}
    present = {k: v for k, v in present.items() if v >= MIN_SAMPLE}
    if not present:
        return []
    if samples is None or not set(present) <= set(samples.columns):
        samples = sample_frame(source, present, SAMPLE_SIZE)
    # Decide on the samples: one select per column over its exploded sample.
    flagged: dict[str, list[str]] = {}
    shares: dict[str, float] = {}
    for name in present:
        values = samples[name].explode()
        if values.len() < MIN_SAMPLE:
            continue
        kinds = candidates[name]
        frame = pl.DataFrame({"v": values})
        counts = frame.select(
            [kind_expr(k, pl.col("v")).sum().alias(k) for k in kinds]
        ).row(0, named=True)
        hits = sorted(
            (k for k in kinds if counts[k] >= MIN_SHARE * values.len()),
            key=lambda k: (-counts[k], k),
        )
        if hits:
            flagged[name] = hits
            shares[name] = min(1.0, sum(counts[k] for k in hits) / values.len())
    if not flagged:
        return []
    # Count on the whole columns, one pass for all flagged columns.
    exprs: list[pl.Expr] = []
    for name, kinds in flagged.items():
        masks = [kind_expr(k, _as_text(name)).fill_null(False) for k in kinds]
        for k, mask in zip(kinds, masks, strict=True):
            exprs.append(mask.sum().alias(f"{name}\x00{k}"))
        exprs.append(pl.any_horizontal(masks).arg_true().implode().alias(f"{name}\x00rows"))
    result = source.select(exprs).collect().row(0, named=True)
    out: list[PiiColumn] = []
    for name, kinds in flagged.items():
        counts = {k: int(result[f"{name}\x00{k}"]) for k in kinds}
        out.append(
            PiiColumn(
                column=name,
                kinds=tuple(kinds),
                counts=counts,
                rows=[int(i) for i in result[f"{name}\x00rows"]],
                sample_share=shares[name],
            )
        )
    return out
