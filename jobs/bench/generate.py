"""A seeded dirty dataset with exact ground truth, for accuracy tests and benchmarks.

``generate(rows, out_dir, seed)`` writes ``dirty.csv``, ``dirty.parquet`` (same content) and
``ground_truth.json``. Everything is vectorised with numpy and Polars (a million rows take
seconds) and every random draw comes from one ``numpy.random.Generator(PCG64(seed))``, so
the same ``(rows, seed)`` gives the same bytes.

How the ground truth stays exact:

* Problems are injected into *base* rows together with hidden marker columns (``_out_*``,
  ``_sentinel``, and for the date problems ``_placeholder_date``, ``_impossible_birth``,
  ``_future_purchase``); duplicate and near-duplicate copies are appended and the whole frame is
  then sorted by a key that puts every copy somewhere after its original. The markers
  travel with the rows, so every index in the ground truth is read off the final frame.
* Null counts, and the high-cardinality list, are measured on the final frame, so copies of
  rows with nulls are counted.
* Base rows are unique by construction (``record_id``); exact copies keep it, near copies get
  a fresh one plus a one-or-two character typo, so they repeat nothing.
* The numeric columns that get outliers are clipped to +-4 standard deviations (in log space
  for the lognormal one) before injection, and the outliers sit at 12 to 20 standard
  deviations (or 20 to 100 times the clean maximum), so any sensible detector threshold
  separates injected outliers from the natural tail and the list of rows is unambiguous.

``generate(..., free_text=True)`` (``datrix bench generate --free-text``) adds a last
column, ``comment``: support notes of which ~5 % carry personal data inside the sentence
(e-mail, phone, card, IBAN, IP, national id) and the rest PII look-alikes (order numbers,
dates, versions, prices); the truth ``free_text`` lists the rows per kind. Its draws come
from a generator of their own, so every other column and truth entry stays the same, and
without the option the output is byte for byte what it was.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

__all__ = ["generate"]

_FIRST_NAMES = [
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Christopher",
    "Lisa",
    "Daniel",
    "Nancy",
    "Matthew",
    "Betty",
    "Anthony",
    "Margaret",
    "Mark",
    "Sandra",
    "Donald",
    "Ashley",
    "Steven",
    "Kimberly",
    "Paul",
    "Emily",
    "Andrew",
    "Donna",
    "Joshua",
    "Michelle",
    "Kenneth",
    "Carol",
    "Kevin",
    "Amanda",
    "Brian",
    "Melissa",
    "George",
    "Deborah",
    "Timothy",
    "Stephanie",
    "Ronald",
    "Rebecca",
    "Jason",
    "Sharon",
    "Edward",
    "Laura",
    "Jeffrey",
    "Cynthia",
    "Ryan",
    "Kathleen",
]
_LAST_NAMES = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "Schmidt",
    "Muller",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Schulz",
    "Hoffmann",
    "Koch",
]
_EMAIL_DOMAINS = ["example.com", "example.org", "example.net", "mail.example.com"]
_CITIES = [
    "Berlin",
    "Paris",
    "Madrid",
    "Rome",
    "Vienna",
    "Lisbon",
    "Dublin",
    "Prague",
    "Warsaw",
    "Athens",
    "Oslo",
    "Helsinki",
    "Amsterdam",
    "Brussels",
    "Copenhagen",
]
_COUNTRIES = [
    "Germany",
    "France",
    "Spain",
    "Italy",
    "Austria",
    "Portugal",
    "Ireland",
    "Czechia",
    "Poland",
    "Greece",
]
_DEPARTMENTS = ["Sales", "Marketing", "Engineering", "Support", "Finance", "Legal", "Operations"]
_PRODUCT_CATEGORIES = [
    "books",
    "electronics",
    "garden",
    "toys",
    "grocery",
    "fashion",
    "sports",
    "beauty",
]
_ACCOUNT_STATUSES = ["active", "inactive", "pending", "suspended"]
_SALES_CHANNELS = ["web", "store", "phone", "partner", "marketplace"]
_REGION_CODES = ["N", "S", "E", "W", "C"]
_GENDERS = ["female", "male", "diverse", "undisclosed"]
_AGE_GROUPS = ["18-24", "25-34", "35-44", "45-54", "55-64", "65+"]
_NOTE_WORDS = [
    "quick",
    "brown",
    "fox",
    "lazy",
    "dog",
    "river",
    "stone",
    "cloud",
    "maple",
    "ocean",
    "silver",
    "amber",
    "falcon",
    "harbor",
    "meadow",
    "copper",
    "violet",
    "delivery",
    "late",
    "early",
    "damaged",
    "refund",
    "happy",
    "asked",
    "about",
    "invoice",
    "again",
    "call",
    "back",
    "prefers",
    "email",
    "weekend",
    "gift",
    "wrap",
    "loyal",
    "customer",
    "new",
    "address",
    "moved",
    "complaint",
]
_TAX_RATES = [0.0, 0.07, 0.19, 0.2]

_REFERENCE_DAY = np.datetime64("2024-01-01", "D")
_EXACT_SHARE = 0.01
_NEAR_SHARE = 0.01
_OUTLIER_SHARE = 0.005
_SENTINEL_SHARE = 0.01
_VARIANT_SHARE = 0.05
_CLIP_SD = 4.0

# The PII columns and their kinds; no other column holds anything that looks like these.
_PII_COLUMNS = {
    "email": "email",
    "phone_number": "phone",
    "credit_card_number": "credit_card",
    "iban": "iban",
    "ip_address": "ip_address",
}
_DATE_COLUMNS = ("birth_date", "signup_date", "last_purchase_date")
# Identifier-like digit strings a good type inference keeps as text (leading zeros, no math).
_STRING_OVERRIDES = ("zip_code", "credit_card_number")
_CASE_VARIANT_COLUMNS = ("city", "country", "department")
_CONSTANT_COLUMNS = ("source_system",)
_MISSINGNESS = {"satisfaction_score": "MCAR", "annual_income": "MAR", "credit_score": "MNAR"}
_OUTLIER_COLUMNS = ("height_cm", "weight_kg", "account_balance", "order_amount")
_SENTINEL_COLUMN = "days_since_last_login"
_SENTINEL_VALUE = -1
# Date problems (jobs/quality/dates.py), drawn from their own generator so that every
# other column is what it was before they were added: placeholder birth dates, birth
# dates after the file's latest date or more than 130 years before it, and purchase dates
# in the future (years after the latest purchase, which is in 2025).
_PLACEHOLDER_DATE = "1900-01-01"
_PLACEHOLDER_SHARE = 0.005
_FUTURE_BIRTH_SHARE = 0.001
_ANCIENT_BIRTH_SHARE = 0.001
_FUTURE_PURCHASE_SHARE = 0.002
_NATURAL_PLACEHOLDERS = ("1970-01-01",)  # placeholder days the clean births could hit


# --- the optional free-text column (``generate(..., free_text=True)``) ------------------
#
# ``comment``: short support notes; about ``_FREE_TEXT_PII_SHARE`` of them carry personal
# data inside the sentence (e-mail, phone in international and national forms, card,
# IBAN, IPv4/IPv6, a national id), the others are PII-free but full of what a careless
# detector takes for it: order and ticket numbers, dates, times, version strings, prices,
# percentages. Drawn from a generator of their own (seeded from ``seed``), per base row
# before the copies are made, so exact copies stay exact and every other column is what
# it is without the option. Ground truth: ``free_text`` (the rows per kind).
FREE_TEXT_COLUMN = "comment"
_FREE_TEXT_PII_SHARE = 0.05
FREE_TEXT_KINDS = ("email", "phone", "card", "iban", "ip", "national_id")

_CLEAN_TEMPLATES = (
    "Order {order} shipped on {date}, total {price} EUR.",
    "Customer upgraded to version {version} after ticket #{ticket}.",
    "Called back at {time}; issue {ticket} resolved in {minutes} minutes.",
    "Invoice INV-{year}-{order} paid {price}, discount {pct}%.",
    "Delivery window {date} {time}-{time2}, {items} items, parcel {parcel}.",
    "Asked about the {year}-{year2} plan; quoted {price} per month.",
    "Firmware {version} installed on {date2}, no further action.",
    "Prefers the store in {city}; loyalty level {level}, {points} points.",
    "Complaint about late delivery of order {order}, refunded {price}.",
    "Survey score {score}/10 on {date}; follow-up at {time}.",
)
_PII_TEMPLATES: dict[str, tuple[str, ...]] = {
    "email": (
        "Please reply to {email} instead of the old address.",
        "Customer asked to be contacted at {email} about order {order}.",
    ),
    "phone": (
        "Call me back on {phone} after {time}.",
        "New number {phone}, old one disconnected on {date}.",
    ),
    "card": (
        "Paid by card {card}, receipt {ticket}.",
        "Card ending in the number {card} was declined on {date}.",
    ),
    "iban": (
        "Refund {price} EUR to IBAN {iban} please.",
        "Direct debit from {iban} set up on {date}.",
    ),
    "ip": ("Login from {ip} blocked after {minutes} attempts.", "Order placed from IP {ip}."),
    "national_id": (
        "Identity checked: {national_id}.",
        "Form returned with {national_id} for the tax office.",
    ),
}
_US_AREA_CODES = ("201", "212", "303", "312", "415", "503", "617", "702", "713", "818")
_CITY_WORDS = ("Berlin", "Paris", "Leeds", "Utrecht", "Boston", "Lyon", "Munich")


def _luhn_digit(body: str) -> str:
    total = 0
    for i, c in enumerate(reversed(body)):
        d = int(c)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def _mod97_iban(country: str, bban: str) -> str:
    moved = bban + country + "00"
    check = 98 - int("".join(str(int(c, 36)) for c in moved)) % 97
    return f"{country}{check:02d}{bban}"


def _grouped(text: str, size: int = 4) -> str:
    return " ".join(text[i : i + size] for i in range(0, len(text), size))


def _pii_value(kind: str, rng: np.random.Generator, first: str, last: str) -> str:
    """One valid value of ``kind``, in one of its usual written forms."""

    def d(k: int) -> str:
        return "".join(str(x) for x in rng.integers(0, 10, size=(k,)).tolist())

    form = int(rng.integers(0, 4))
    if kind == "email":
        domain = ("example.com", "mail.example.org", "example.net", "example.co.uk")[form]
        return f"{first.lower()}.{last.lower()}{int(rng.integers(1, 100))}@{domain}"
    if kind == "phone":
        area = _US_AREA_CODES[int(rng.integers(0, len(_US_AREA_CODES)))]
        sub = f"{int(rng.integers(2, 10))}{d(2)}"
        return (
            f"+1-{area}-{sub}-{d(4)}" if form == 0 else
            f"+49 30 {int(rng.integers(2, 10))}{d(7)}" if form == 1 else
            f"06 {d(2)} {d(2)} {d(2)} {d(2)}" if form == 2 else
            f"({area}) {sub}-{d(4)}"
        )  # fmt: skip
    if kind == "card":
        body = ("4" + d(14)) if form % 2 == 0 else (f"5{int(rng.integers(1, 6))}" + d(13))
        number = body + _luhn_digit(body)
        return _grouped(number) if form < 2 else number
    if kind == "iban":
        iban = (
            _mod97_iban("DE", d(18))
            if form < 2
            else _mod97_iban("GB", "WEST" + d(14))
            if form == 2
            else _mod97_iban("FR", d(23))
        )
        return _grouped(iban) if form % 2 == 0 else iban
    if kind == "ip":
        if form == 3:
            return "2001:db8:" + ":".join(f"{int(x):x}" for x in rng.integers(1, 65536, 6))
        return ".".join(str(int(x)) for x in [rng.integers(11, 224), *rng.integers(0, 256, 2)]) + (
            f".{int(rng.integers(1, 255))}"
        )
    # national ids: a US SSN, a UK NINO, a Dutch BSN (11-test), a French NIR (key)
    if form == 0:
        ssn = int(rng.integers(1, 666)), int(rng.integers(1, 100)), int(rng.integers(1, 10000))
        return f"SSN {ssn[0]:03d}-{ssn[1]:02d}-{ssn[2]:04d}"
    if form == 1:
        prefix = ("AB", "CE", "JK", "PR", "WX")[int(rng.integers(0, 5))]
        return f"NI number {prefix} {d(2)} {d(2)} {d(2)} {'ABCD'[int(rng.integers(0, 4))]}"
    if form == 2:
        while True:
            digits = d(8)
            total = sum((9 - i) * int(c) for i, c in enumerate(digits))
            last_digit = total % 11
            if last_digit < 10 and digits != "0" * 8:
                return f"BSN {digits}{last_digit}"
    sex, month, department = rng.integers(1, 3), rng.integers(1, 13), rng.integers(1, 96)
    body = f"{int(sex)}{d(2)}{int(month):02d}{int(department):02d}{d(3)}{d(3)}"
    return f"NIR {body}{97 - int(body) % 97:02d}"


def _digits(rng: np.random.Generator, n: int, k: int) -> pl.Series:
    """``n`` strings of ``k`` random digits (leading zeros kept)."""
    return _text(rng.integers(0, 10**k, n), k)


def _number(rng: np.random.Generator, low: int, high: int, n: int, width: int = 0) -> pl.Series:
    return _text(rng.integers(low, high, n), width)


def _clean_fields(rng: np.random.Generator, n: int) -> pl.DataFrame:
    """The fields of the notes, vectorised: order and ticket numbers, dates, times,
    version strings, prices, percentages (the look-alikes a PII detector must leave)."""
    year = rng.integers(2015, 2026, n)
    month, day = _number(rng, 1, 13, n, 2), _number(rng, 1, 29, n, 2)
    parts = [_number(rng, 0, 20, n) for _ in range(4)]
    count = rng.integers(2, 5, n)
    version = parts[0] + "." + parts[1]
    version = pl.select(
        pl.when(pl.Series(count) >= 3).then(version + "." + parts[2]).otherwise(version)
    ).to_series()
    version = pl.select(
        pl.when(pl.Series(count) == 4).then(version + "." + parts[3]).otherwise(version)
    ).to_series()
    order_len = rng.integers(6, 10, n)
    order = pl.Series(rng.integers(10**5, 10**9, n) // 10 ** (9 - order_len)).cast(pl.String)
    return pl.DataFrame(
        {
            "order": order,
            "ticket": _number(rng, 10_000, 100_000, n),
            "date": _text(year) + "-" + month + "-" + day,
            "date2": day + "." + month + "." + _text(year),
            "price": _number(rng, 1, 3000, n) + "." + _digits(rng, n, 2),
            "version": version,
            "time": _number(rng, 8, 18, n, 2) + ":" + _number(rng, 0, 60, n, 2),
            "time2": _number(rng, 18, 22, n, 2) + ":" + _number(rng, 0, 60, n, 2),
            "minutes": _number(rng, 2, 90, n),
            "year": _text(year),
            "year2": _text(year + rng.integers(1, 5, n)),
            "pct": _number(rng, 5, 40, n),
            "items": _number(rng, 1, 12, n),
            "parcel": "JD" + _digits(rng, n, 10),
            "city": _pick(rng, _CITY_WORDS, n),
            "level": _number(rng, 1, 6, n),
            "points": _number(rng, 0, 20_000, n),
            "score": _number(rng, 0, 11, n),
        }
    )


_FIELD = re.compile(r"\{(\w+)\}")


def _fill(template: str, fields: pl.DataFrame) -> pl.Expr:
    """``template`` ("Order {order} ...") as a Polars expression over ``fields``."""
    names = _FIELD.findall(template)
    return pl.format(_FIELD.sub("{}", template), *(pl.col(f) for f in names))


def _comments(
    seed: int, first: pl.Series, last: pl.Series
) -> tuple[pl.Series, dict[str, np.ndarray[Any, Any]]]:
    """The ``comment`` column of the base rows and, per kind, which rows carry it."""
    rng = np.random.Generator(np.random.PCG64([seed, 0xC0FFEE]))
    n = len(first)
    fields = _clean_fields(rng, n)
    pick = pl.Series(rng.integers(0, len(_CLEAN_TEMPLATES), n))
    chosen: Any = pl.when(pick == 0).then(_fill(_CLEAN_TEMPLATES[0], fields))
    for t in range(1, len(_CLEAN_TEMPLATES)):
        chosen = chosen.when(pick == t).then(_fill(_CLEAN_TEMPLATES[t], fields))
    notes = fields.select(chosen.otherwise(None)).to_series().to_list()
    carries = np.flatnonzero(rng.random(n) < _FREE_TEXT_PII_SHARE)
    marks = {k: np.zeros(n, dtype=bool) for k in FREE_TEXT_KINDS}
    for i in carries:
        row = fields.row(int(i), named=True)
        count = 2 if rng.random() < 0.2 else 1  # some notes carry two kinds
        kinds = sorted(int(x) for x in rng.choice(len(FREE_TEXT_KINDS), size=count, replace=False))
        parts = []
        for k in kinds:
            kind = FREE_TEXT_KINDS[k]
            marks[kind][i] = True
            templates = _PII_TEMPLATES[kind]
            value = _pii_value(kind, rng, first[int(i)], last[int(i)])
            template = templates[int(rng.integers(0, len(templates)))]
            parts.append(template.format(**row, **{kind: value}))
        notes[i] = " ".join(parts)
    return pl.Series(FREE_TEXT_COLUMN, notes, dtype=pl.String), marks


def _pick(
    rng: np.random.Generator, values: Sequence[str], n: int, p: Sequence[float] | None = None
) -> pl.Series:
    """Draw ``n`` category values (optionally weighted)."""
    idx = rng.choice(len(values), size=n, p=p)
    return pl.Series(values, dtype=pl.String).gather(pl.Series(idx))


def _text(values: np.ndarray[Any, Any], width: int = 0) -> pl.Series:
    """Integers -> decimal strings, left-padded with zeros to ``width``."""
    out = pl.Series(values).cast(pl.String)
    return out.str.zfill(width) if width else out


def _clipped_normal(
    rng: np.random.Generator, mean: float, sd: float, n: int, decimals: int
) -> np.ndarray[Any, Any]:
    """A normal column without a natural tail beyond +-4 sd (see the module docstring)."""
    z = np.clip(rng.standard_normal(n), -_CLIP_SD, _CLIP_SD)
    return np.round(mean + sd * z, decimals)


def _credit_cards(rng: np.random.Generator, n: int) -> pl.Series:
    """16-digit Visa (4...) or Mastercard (51..55...) numbers with a valid Luhn check digit."""
    digits = rng.integers(0, 10, size=(n, 16))
    visa = rng.random(n) < 0.7
    digits[:, 0] = np.where(visa, 4, 5)
    digits[:, 1] = np.where(visa, digits[:, 1], rng.integers(1, 6, n))
    # With the check digit at position 15, Luhn doubles positions 14, 12, ..., 0.
    body = digits[:, :15].copy()
    body[:, 0::2] *= 2
    body[body > 9] -= 9
    digits[:, 15] = (10 - body.sum(axis=1) % 10) % 10
    number = digits @ (10 ** np.arange(15, -1, -1, dtype=np.int64))
    return _text(number)  # the leading 4 or 5 keeps every value 16 characters long


def _ibans(rng: np.random.Generator, n: int) -> pl.Series:
    """German IBANs: DE + two mod-97 check digits + 8-digit bank code + 10-digit account."""
    bank = rng.integers(10_000_000, 100_000_000, n)
    account = rng.integers(0, 10**10, n)
    bban = bank * 10**10 + account  # 18 digits, below 2**63
    # ISO 13616: (BBAN || "DE" as 1314 || "00") mod 97, then check = 98 - remainder.
    remainder = ((bban % 97) * (10**6 % 97) + 131_400) % 97
    return "DE" + _text(98 - remainder, 2) + _text(bban)


def _ip_addresses(rng: np.random.Generator, n: int) -> pl.Series:
    first = rng.integers(1, 224, n)
    first[first == 127] = 128  # no loopback addresses
    return (
        _text(first)
        + "."
        + _text(rng.integers(0, 256, n))
        + "."
        + _text(rng.integers(0, 256, n))
        + "."
        + _text(rng.integers(1, 255, n))
    )


def _case_variants(rng: np.random.Generator, values: pl.Series) -> pl.Series:
    """Rewrite a share of category values as "berlin", "BERLIN", " Berlin " or "Berlin  "."""
    n = len(values)
    kind = np.where(rng.random(n) < _VARIANT_SHARE, rng.integers(1, 5, n), 0)
    frame = pl.DataFrame({"v": values, "k": kind})
    v, k = pl.col("v"), pl.col("k")
    return frame.select(
        pl.when(k == 0)
        .then(v)
        .when(k == 1)
        .then(v.str.to_lowercase())
        .when(k == 2)
        .then(v.str.to_uppercase())
        .when(k == 3)
        .then(pl.lit(" ") + v + pl.lit(" "))
        .otherwise(v + pl.lit("  "))
    ).to_series()


def _base(rng: np.random.Generator, n: int) -> pl.DataFrame:
    """``n`` clean, unique rows (unique ``record_id``) with 50 columns."""
    first = _pick(rng, _FIRST_NAMES, n)
    last = _pick(rng, _LAST_NAMES, n)
    age = rng.integers(18, 91, n)
    birth = _REFERENCE_DAY - (
        np.floor(age * 365.25).astype(np.int64) + rng.integers(1, 365, n)
    ).astype("timedelta64[D]")
    signup = np.datetime64("2015-01-01", "D") + rng.integers(0, 3200, n).astype("timedelta64[D]")
    purchase = signup + rng.integers(0, 700, n).astype("timedelta64[D]")
    log_amount = np.clip(rng.standard_normal(n), -_CLIP_SD, _CLIP_SD)
    note_words = pl.Series(_NOTE_WORDS, dtype=pl.String)
    words = [note_words.gather(pl.Series(rng.integers(0, len(_NOTE_WORDS), n))) for _ in range(3)]
    columns: dict[str, Any] = {
        "record_id": np.arange(1_000_001, 1_000_001 + n, dtype=np.int64),
        "customer_id": rng.integers(100_000, 1_000_000, n),
        "first_name": first,
        "last_name": last,
        "email": (
            first.str.to_lowercase()
            + "."
            + last.str.to_lowercase()
            + _text(rng.integers(1, 1000, n))
            + "@"
            + _pick(rng, _EMAIL_DOMAINS, n)
        ),
        "phone_number": (
            "+1-"
            + _text(rng.integers(201, 990, n))
            + "-"
            + _text(rng.integers(200, 1000, n))
            + "-"
            + _text(rng.integers(0, 10_000, n), 4)
        ),
        "credit_card_number": _credit_cards(rng, n),
        "iban": _ibans(rng, n),
        "ip_address": _ip_addresses(rng, n),
        "birth_date": pl.Series(birth).cast(pl.String),
        "age": age,
        "age_group": pl.Series(_AGE_GROUPS, dtype=pl.String).gather(
            pl.Series(np.searchsorted([25, 35, 45, 55, 65], age, side="right"))
        ),
        "gender": _pick(rng, _GENDERS, n, [0.48, 0.47, 0.02, 0.03]),
        "annual_income": np.round(rng.lognormal(10.8, 0.55, n), 2),
        "credit_score": np.clip(np.round(rng.normal(650, 80, n)), 300, 850).astype(np.int64),
        "satisfaction_score": np.round(rng.normal(7.0, 1.2, n), 2),
        "height_cm": _clipped_normal(rng, 170.0, 10.0, n, 1),
        "weight_kg": _clipped_normal(rng, 75.0, 12.0, n, 1),
        "account_balance": _clipped_normal(rng, 2_500.0, 1_500.0, n, 2),
        "order_amount": np.round(np.exp(3.5 + 1.0 * log_amount), 2),
        "shipping_cost": np.round(rng.lognormal(1.5, 0.6, n), 2),
        "session_duration_sec": np.round(rng.exponential(300.0, n), 1),
        "days_since_last_login": rng.integers(0, 365, n),
        "city": _case_variants(rng, _pick(rng, _CITIES, n)),
        "country": _case_variants(rng, _pick(rng, _COUNTRIES, n)),
        "department": _case_variants(rng, _pick(rng, _DEPARTMENTS, n)),
        "product_category": _pick(rng, _PRODUCT_CATEGORIES, n),
        "account_status": _pick(rng, _ACCOUNT_STATUSES, n, [0.6, 0.25, 0.1, 0.05]),
        "sales_channel": _pick(rng, _SALES_CHANNELS, n),
        "region_code": _pick(rng, _REGION_CODES, n),
        "signup_date": pl.Series(signup).cast(pl.String),
        "last_purchase_date": pl.Series(purchase).cast(pl.String),
        "is_premium_member": rng.random(n) < 0.2,
        "newsletter_opt_in": rng.random(n) < 0.5,
        "has_mobile_app": rng.random(n) < 0.35,
        "zip_code": _text(rng.integers(0, 100_000, n), 5),
        "source_system": pl.repeat("crm", n, dtype=pl.String, eager=True),
        "customer_note": (
            words[0]
            + " "
            + words[1]
            + " "
            + words[2]
            + " ticket "
            + _text(rng.integers(0, 100_000, n), 5)
        ),
        "loyalty_points": rng.poisson(120, n),
        "order_count": rng.poisson(8, n),
        "return_count": rng.poisson(0.5, n),
        "discount_rate": np.round(rng.beta(2, 8, n), 4),
        "tenure_months": rng.integers(0, 240, n),
        "product_rating": np.round(np.clip(rng.normal(3.8, 0.9, n), 1.0, 5.0), 1),
        "page_views": rng.negative_binomial(2, 0.05, n),
        "latitude": np.round(rng.uniform(36.0, 60.0, n), 5),
        "longitude": np.round(rng.uniform(-9.0, 25.0, n), 5),
        "response_time_ms": np.round(rng.lognormal(5.0, 0.8, n), 1),
        "cart_items": rng.poisson(3, n),
        "tax_rate": np.asarray(_TAX_RATES)[rng.choice(len(_TAX_RATES), n, p=[0.1, 0.2, 0.6, 0.1])],
    }
    frame = pl.DataFrame(columns)
    return frame.with_columns(pl.col(pl.Int32, pl.UInt32, pl.UInt64).cast(pl.Int64))


def _inject(rng: np.random.Generator, df: pl.DataFrame) -> pl.DataFrame:
    """Outliers, a sentinel and nulls on the base rows, with hidden marker columns."""
    n = df.height
    n_out = round(n * _OUTLIER_SHARE)
    replacements: dict[str, pl.Series] = {}
    for col in _OUTLIER_COLUMNS:
        mask = np.zeros(n, dtype=bool)
        mask[rng.choice(n, n_out, replace=False)] = True
        values = df[col].to_numpy()
        if col == "order_amount":  # lognormal: 20 to 100 times the largest clean value
            extreme = np.round(float(values.max()) * rng.uniform(20, 100, n), 2)
        else:  # normal: 12 to 20 sd away, either side
            mean, sd = float(values.mean()), float(values.std())
            sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
            extreme = np.round(mean + sign * sd * rng.uniform(12, 20, n), 2)
        replacements[col] = pl.Series(col, np.where(mask, extreme, values))
        replacements[f"_out_{col}"] = pl.Series(f"_out_{col}", mask)
    sentinel = rng.random(n) < _SENTINEL_SHARE
    replacements[_SENTINEL_COLUMN] = pl.Series(
        _SENTINEL_COLUMN, np.where(sentinel, _SENTINEL_VALUE, df[_SENTINEL_COLUMN].to_numpy())
    )
    replacements["_sentinel"] = pl.Series("_sentinel", sentinel)
    df = df.with_columns(**replacements)

    u = rng.random((9, n))
    young = (df["age_group"] == "18-24").to_numpy()
    high_score = (df["credit_score"] > 760).to_numpy()
    null_masks = {
        "satisfaction_score": u[0] < 0.05,  # MCAR
        "annual_income": np.where(young, u[1] < 0.6, u[1] < 0.01),  # MAR on age_group
        "credit_score": high_score & (u[2] < 0.8),  # MNAR: high scores go missing
        "last_purchase_date": u[3] < 0.10,
        "phone_number": u[4] < 0.01,
        "city": u[5] < 0.02,
        "discount_rate": u[6] < 0.15,
        "product_rating": u[7] < 0.30,
        "has_mobile_app": u[8] < 0.03,
    }
    return df.with_columns(
        pl.when(pl.Series(mask)).then(None).otherwise(pl.col(col)).alias(col)
        for col, mask in null_masks.items()
    )


def _inject_dates(seed: int, df: pl.DataFrame) -> pl.DataFrame:
    """Date problems with hidden markers ``_placeholder_date``, ``_impossible_birth`` and
    ``_future_purchase`` (see ``_PLACEHOLDER_DATE``); clean births on a placeholder day
    move a day later, so the only placeholders are the planted ones."""
    rng = np.random.Generator(np.random.PCG64([seed, 0xDA7E]))
    n = df.height
    birth = df["birth_date"].to_numpy().astype("datetime64[D]")
    natural = np.isin(birth, np.array(_NATURAL_PLACEHOLDERS, dtype="datetime64[D]"))
    birth = np.where(natural, birth + np.timedelta64(1, "D"), birth)
    u = rng.random(n)
    placeholder = u < _PLACEHOLDER_SHARE
    future = (u >= _PLACEHOLDER_SHARE) & (u < _PLACEHOLDER_SHARE + _FUTURE_BIRTH_SHARE)
    ancient = (u >= _PLACEHOLDER_SHARE + _FUTURE_BIRTH_SHARE) & (
        u < _PLACEHOLDER_SHARE + _FUTURE_BIRTH_SHARE + _ANCIENT_BIRTH_SHARE
    )
    days = rng.integers(0, 14 * 365, n).astype("timedelta64[D]")
    birth = np.where(future, np.datetime64("2027-01-01", "D") + days, birth)
    birth = np.where(ancient, np.datetime64("1850-01-01", "D") + days * 3 // 14, birth)
    birth = np.where(placeholder, np.datetime64(_PLACEHOLDER_DATE, "D"), birth)
    purchase = df["last_purchase_date"]
    later = (rng.random(n) < _FUTURE_PURCHASE_SHARE) & purchase.is_not_null().to_numpy()
    when = np.datetime64("2031-01-01", "D") + rng.integers(0, 30 * 365, n).astype("timedelta64[D]")
    return df.with_columns(
        birth_date=pl.Series(birth).cast(pl.String),
        last_purchase_date=pl.when(pl.Series(later))
        .then(pl.Series(when).cast(pl.String))
        .otherwise(purchase),
        _placeholder_date=pl.Series(placeholder),
        _impossible_birth=pl.Series(future | ancient),
        _future_purchase=pl.Series(later),
    )


def _typo(rng: np.random.Generator, word: str) -> str:
    """One or two character edits (swap, double, substitute, drop) that change ``word``.

    Position 0 is left alone so a capitalised name stays capitalised.
    """
    out = word
    for _ in range(int(rng.integers(1, 3))):
        pos = int(rng.integers(1, len(out)))
        edit = int(rng.integers(0, 4))
        if edit == 0 and pos + 1 < len(out) and out[pos] != out[pos + 1]:
            out = out[:pos] + out[pos + 1] + out[pos] + out[pos + 2 :]
        elif edit == 1 or len(out) <= 3:
            out = out[:pos] + out[pos] + out[pos:]
        elif edit == 2:
            letters = "abcdefghijklmnopqrstuvwxyz".replace(out[pos], "")
            out = out[:pos] + letters[int(rng.integers(0, len(letters)))] + out[pos + 1 :]
        else:
            out = out[:pos] + out[pos + 1 :]
    return out if out != word else word[:1] + word[1:2] + word[1:]


def _near_copies(rng: np.random.Generator, rows: pl.DataFrame, first_id: int) -> pl.DataFrame:
    """Copies with a fresh record_id, a typo in a name and sometimes doubled whitespace."""
    n = rows.height
    first = rows["first_name"].to_list()
    last = rows["last_name"].to_list()
    note = rows["customer_note"].to_list()
    for i in range(n):
        if rng.random() < 0.5:
            first[i] = _typo(rng, first[i])
        else:
            last[i] = _typo(rng, last[i])
        if rng.random() < 0.3:
            note[i] = note[i].replace(" ", "  ", 1) if rng.random() < 0.5 else note[i] + " "
    return rows.with_columns(
        record_id=pl.Series(np.arange(first_id, first_id + n, dtype=np.int64)),
        first_name=pl.Series(first, dtype=pl.String),
        last_name=pl.Series(last, dtype=pl.String),
        customer_note=pl.Series(note, dtype=pl.String),
    )


def _column_types(data: pl.DataFrame) -> dict[str, str]:
    """What a good type inference should conclude for each column."""
    types: dict[str, str] = {}
    for col, dtype in data.schema.items():
        if col in _DATE_COLUMNS:
            types[col] = "date"
        elif col in _STRING_OVERRIDES or dtype == pl.String:
            types[col] = "string"
        elif dtype.is_integer():
            types[col] = "integer"
        elif dtype.is_float():
            types[col] = "float"
        elif dtype == pl.Boolean:
            types[col] = "boolean"
        else:  # pragma: no cover - every generated column is one of the above
            raise TypeError(f"unexpected dtype {dtype} for {col}")
    return types


def generate(rows: int, out_dir: Path, seed: int = 0, free_text: bool = False) -> dict[str, Any]:
    """Write ``dirty.csv``, ``dirty.parquet`` and ``ground_truth.json`` into ``out_dir``.

    Returns the ground truth (the same dict that is written as JSON). All row indices in it
    are 0-based positions in the written files. ``free_text`` adds the ``comment`` column
    (last) with PII inside ~5 % of its notes and its truth ``free_text``; without it the
    output is byte for byte what it always was.
    """
    if rows < 100:
        raise ValueError("generate at least 100 rows")
    rng = np.random.Generator(np.random.PCG64(seed))
    n_exact = max(1, round(rows * _EXACT_SHARE))
    n_near = max(1, round(rows * _NEAR_SHARE))
    n_base = rows - n_exact - n_near

    base = _inject_dates(seed, _inject(rng, _base(rng, n_base))).with_columns(
        _key=pl.Series(np.arange(n_base, dtype=np.float64)),
        _base=pl.Series(np.arange(n_base, dtype=np.int64)),
        _kind=pl.lit(0, dtype=pl.Int8),
    )
    if free_text:  # its own generator: the draws below stay what they were
        comments, marks = _comments(seed, base["first_name"], base["last_name"])
        base = base.with_columns(comments, *(pl.Series(f"_pii_{k}", m) for k, m in marks.items()))
    # Disjoint sources: a row is copied exactly, or near-copied, or neither. Each copy is
    # placed uniformly at random somewhere after its original.
    sources = rng.permutation(n_base)[: n_exact + n_near]
    exact_src, near_src = np.sort(sources[:n_exact]), np.sort(sources[n_exact:])

    def after(src: np.ndarray[Any, Any]) -> pl.Series:
        return pl.Series(src + rng.uniform(0.001, 1.0, len(src)) * (n_base - src))

    exact = base[pl.Series(exact_src)].with_columns(
        _key=after(exact_src), _kind=pl.lit(1, dtype=pl.Int8)
    )
    near = _near_copies(rng, base[pl.Series(near_src)], 1_000_001 + n_base).with_columns(
        _key=after(near_src), _kind=pl.lit(2, dtype=pl.Int8)
    )
    full = pl.concat([base, exact, near]).sort("_key", maintain_order=True).with_row_index("_row")

    kind = full["_kind"].to_numpy()
    final_row = full["_row"].to_numpy().astype(np.int64)
    position = np.empty(n_base, dtype=np.int64)  # base index -> final row of the original
    position[full["_base"].to_numpy()[kind == 0]] = final_row[kind == 0]

    def rows_where(mask: np.ndarray[Any, Any]) -> list[int]:
        return [int(i) for i in final_row[mask]]

    pairs = sorted(
        [int(position[src]), int(row)]
        for src, row in zip(full["_base"].to_numpy()[kind == 2], final_row[kind == 2], strict=True)
    )
    data = full.drop([c for c in full.columns if c.startswith("_")])

    out_dir.mkdir(parents=True, exist_ok=True)
    data.write_csv(out_dir / "dirty.csv")
    data.write_parquet(out_dir / "dirty.parquet", statistics=True)

    strings = [c for c, t in data.schema.items() if t == pl.String]
    distinct = data.select(pl.col(strings).drop_nulls().n_unique()).row(0)
    present = data.select(pl.col(strings).count()).row(0)
    high_cardinality = [
        c for c, d, p in zip(strings, distinct, present, strict=True) if d > 0.5 * p
    ]
    truth: dict[str, Any] = {
        "rows": data.height,
        "columns": data.width,
        "seed": seed,
        "column_types": _column_types(data),
        "exact_duplicates": {"count": n_exact, "rows": rows_where(kind == 1)},
        "near_duplicates": {"pairs": pairs},
        "nulls": dict(zip(data.columns, map(int, data.null_count().row(0)), strict=True)),
        "missingness": dict(_MISSINGNESS),
        "outliers": {c: rows_where(full[f"_out_{c}"].to_numpy()) for c in _OUTLIER_COLUMNS},
        "sentinel": {
            _SENTINEL_COLUMN: {
                "value": _SENTINEL_VALUE,
                "rows": rows_where(full["_sentinel"].to_numpy()),
            }
        },
        "placeholder_dates": {
            "birth_date": {
                "value": _PLACEHOLDER_DATE,
                "rows": rows_where(full["_placeholder_date"].to_numpy()),
            }
        },
        "impossible_dates": {
            "birth_date": rows_where(full["_impossible_birth"].to_numpy()),
            "last_purchase_date": rows_where(full["_future_purchase"].to_numpy()),
        },
        "case_variant_columns": list(_CASE_VARIANT_COLUMNS),
        "pii_columns": dict(_PII_COLUMNS),
        "constant_columns": list(_CONSTANT_COLUMNS),
        "high_cardinality_columns": high_cardinality,
    }
    if free_text:
        by_kind = {k: rows_where(full[f"_pii_{k}"].to_numpy()) for k in FREE_TEXT_KINDS}
        truth["free_text"] = {
            "column": FREE_TEXT_COLUMN,
            "rows": by_kind,  # rows whose note carries that kind of PII
            "pii_rows": sorted({r for found in by_kind.values() for r in found}),
        }
    (out_dir / "ground_truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    return truth
