"""A seeded dirty dataset with exact ground truth, for accuracy tests and benchmarks.

Everything is vectorised (numpy + Polars), so a million rows take seconds, and everything
is derived from ``numpy.random.Generator(PCG64(seed))``: the same (rows, seed) gives the
same bytes. Injected problems are tracked with hidden marker columns that travel with the
rows through duplication and shuffling, so the ground truth indices refer to the final file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

FIRST = ["james", "mary", "robert", "patricia", "john", "jennifer", "michael", "linda",
         "david", "elizabeth", "william", "barbara", "richard", "susan", "joseph", "jessica",
         "thomas", "sarah", "charles", "karen", "christopher", "lisa", "daniel", "nancy",
         "matthew", "betty", "anthony", "margaret", "mark", "sandra", "donald", "ashley"]
LAST = ["smith", "johnson", "williams", "brown", "jones", "garcia", "miller", "davis",
        "rodriguez", "martinez", "hernandez", "lopez", "gonzalez", "wilson", "anderson",
        "thomas", "taylor", "moore", "jackson", "martin", "lee", "perez", "thompson", "white",
        "harris", "sanchez", "clark", "ramirez", "lewis", "robinson", "walker", "young"]
CITIES = ["Berlin", "Paris", "Madrid", "Rome", "Vienna", "Lisbon", "Dublin", "Prague",
          "Warsaw", "Athens", "Oslo", "Helsinki"]
COUNTRIES = ["Germany", "France", "Spain", "Italy", "Austria", "Portugal", "Ireland",
             "Czechia"]
DEPARTMENTS = ["Sales", "Marketing", "Engineering", "Support", "Finance", "Legal"]
PRODUCTS = ["books", "electronics", "garden", "toys", "grocery", "fashion", "sports"]
STATUSES = ["active", "inactive", "pending"]
CHANNELS = ["web", "store", "phone", "partner"]
WORDS = ["quick", "brown", "fox", "lazy", "dog", "river", "stone", "cloud", "maple",
         "ocean", "silver", "amber", "falcon", "harbor", "meadow", "copper", "violet"]
AGE_GROUPS = ["18-24", "25-34", "35-44", "45-54", "55-64", "65+"]


def _digits_to_str(d: np.ndarray) -> pl.Series:
    """Rows of single digits -> strings (vectorised through bytes)."""
    raw = (d.astype(np.uint8) + ord("0")).tobytes()
    width = d.shape[1]
    return pl.Series([raw[i * width:(i + 1) * width].decode() for i in range(d.shape[0])])


def _luhn_cards(rng: np.random.Generator, n: int) -> pl.Series:
    body = rng.integers(0, 10, size=(n, 15))
    body[:, 0] = 4  # a Visa-like prefix
    # Luhn: from the right of the full 16 digits, double every second digit; here the
    # check digit is position 15, so the body positions 14, 12, ... (0-based) are doubled.
    doubled = body.copy()
    idx = np.arange(14, -1, -2)
    doubled[:, idx] = body[:, idx] * 2
    doubled[doubled > 9] -= 9
    check = (10 - doubled.sum(axis=1) % 10) % 10
    return _digits_to_str(np.hstack([body, check[:, None]]))


def _ibans(rng: np.random.Generator, n: int) -> pl.Series:
    bban = rng.integers(0, 10, size=(n, 18))
    # mod-97 of BBAN + "DE" as digits (D=13, E=14) + "00", digit by digit
    tail = np.array([1, 3, 1, 4, 0, 0])
    r = np.zeros(n, dtype=np.int64)
    for k in range(18):
        r = (r * 10 + bban[:, k]) % 97
    for dgt in tail:
        r = (r * 10 + dgt) % 97
    check = 98 - r
    digits = np.hstack([(check // 10)[:, None], (check % 10)[:, None], bban])
    return ("DE" + _digits_to_str(digits)).alias("iban")


def _pick(rng: np.random.Generator, values: list[str], n: int, p: list[float] | None = None
          ) -> pl.Series:
    return pl.Series(np.asarray(values, dtype=object)[rng.choice(len(values), n, p=p)],
                     dtype=pl.String)


def _variants(rng: np.random.Generator, s: pl.Series, share: float) -> tuple[pl.Series, np.ndarray]:
    """Rewrite a share of category values as case/whitespace variants."""
    n = len(s)
    mask = rng.random(n) < share
    kind = rng.integers(0, 4, n)
    frame = pl.DataFrame({"v": s, "m": mask, "k": kind})
    out = frame.select(
        pl.when(~pl.col("m")).then(pl.col("v"))
        .when(pl.col("k") == 0).then(pl.col("v").str.to_lowercase())
        .when(pl.col("k") == 1).then(pl.col("v").str.to_uppercase())
        .when(pl.col("k") == 2).then(pl.lit(" ") + pl.col("v") + pl.lit(" "))
        .otherwise(pl.col("v") + pl.lit("  "))
    ).to_series()
    return out, mask


def _base(rng: np.random.Generator, n: int) -> pl.DataFrame:
    first = _pick(rng, FIRST, n)
    last = _pick(rng, LAST, n)
    age = rng.integers(18, 91, n)
    age_group = pl.Series(np.asarray(AGE_GROUPS, dtype=object)[
        np.searchsorted([25, 35, 45, 55, 65], age, side="right")], dtype=pl.String)
    income = np.round(rng.lognormal(10.5, 0.5, n), 2)
    credit = np.clip(np.round(rng.normal(650, 80, n)), 300, 850).astype(np.int64)
    height = np.round(rng.normal(170, 10, n), 1)
    weight = np.round(rng.normal(75, 12, n), 1)
    amount = np.round(rng.lognormal(3.5, 1.0, n), 2)
    days = rng.integers(0, 365, n)
    start = np.datetime64("2015-01-01")
    signup = start + rng.integers(0, 3000, n).astype("timedelta64[D]")
    purchase = signup + rng.integers(0, 900, n).astype("timedelta64[D]")
    city, city_var = _variants(rng, _pick(rng, CITIES, n), 0.04)
    country, _ = _variants(rng, _pick(rng, COUNTRIES, n), 0.03)
    dept, _ = _variants(rng, _pick(rng, DEPARTMENTS, n), 0.03)
    words = np.asarray(WORDS, dtype=object)
    comment = (pl.Series(words[rng.integers(0, len(WORDS), n)], dtype=pl.String) + " "
               + pl.Series(words[rng.integers(0, len(WORDS), n)], dtype=pl.String) + " note "
               + pl.Series(rng.integers(0, 10**9, n)).cast(pl.String))
    cols: dict[str, Any] = {
        "record_id": np.arange(1_000_000, 1_000_000 + n, dtype=np.int64),
        "first_name": first.str.to_titlecase(),
        "last_name": last.str.to_titlecase(),
        "email": first + "." + last + pl.Series(rng.integers(1, 999, n)).cast(pl.String)
        + "@example.com",
        "phone": "+1-555-" + pl.Series(rng.integers(100, 1000, n)).cast(pl.String) + "-"
        + pl.Series(rng.integers(1000, 10000, n)).cast(pl.String),
        "credit_card": _luhn_cards(rng, n),
        "iban": _ibans(rng, n),
        "ip_address": pl.Series(rng.integers(1, 224, n)).cast(pl.String) + "."
        + pl.Series(rng.integers(0, 256, n)).cast(pl.String) + "."
        + pl.Series(rng.integers(0, 256, n)).cast(pl.String) + "."
        + pl.Series(rng.integers(1, 255, n)).cast(pl.String),
        "age": age.astype(np.int64),
        "age_group": age_group,
        "income": income,
        "credit_score": credit,
        "satisfaction": np.round(rng.normal(7, 1.5, n), 2),
        "height_cm": height,
        "weight_kg": weight,
        "transaction_amount": amount,
        "session_duration_s": np.round(rng.exponential(300, n), 1),
        "days_since_login": days.astype(np.int64),
        "city": city,
        "country": country,
        "department": dept,
        "product_category": _pick(rng, PRODUCTS, n),
        "status": _pick(rng, STATUSES, n, [0.6, 0.3, 0.1]),
        "channel": _pick(rng, CHANNELS, n),
        "signup_date": pl.Series(signup).dt.strftime("%Y-%m-%d"),
        "last_purchase_date": pl.Series(purchase).dt.strftime("%Y-%m-%d"),
        "is_premium": rng.random(n) < 0.2,
        "newsletter_opt_in": rng.random(n) < 0.5,
        "zip_code": pl.Series(rng.integers(0, 100_000, n)).cast(pl.String).str.zfill(5),
        "source_system": pl.Series(["crm"] * n, dtype=pl.String),
        "comment": comment,
        "loyalty_points": rng.poisson(120, n).astype(np.int64),
        "orders_count": rng.poisson(8, n).astype(np.int64),
        "returns_count": rng.poisson(0.5, n).astype(np.int64),
        "discount_rate": np.round(rng.beta(2, 8, n), 4),
        "tenure_months": rng.integers(0, 240, n).astype(np.int64),
        "region_code": _pick(rng, ["N", "S", "E", "W", "C"], n),
    }
    for k in range(1, 14):  # filler metrics to reach ~50 columns
        cols[f"metric_{k:02d}"] = np.round(rng.normal(100 + k, 15, n), 3)
    frame = pl.DataFrame(cols)
    return frame.with_columns(pl.Series("_city_variant", city_var))


def _inject(rng: np.random.Generator, df: pl.DataFrame) -> pl.DataFrame:
    n = df.height
    u = rng.random((8, n))
    out_rows = rng.random((5, n)) < 0.005
    p99 = float(df["transaction_amount"].quantile(0.99) or 0.0)
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    df = df.with_columns(
        _out_height=pl.Series(out_rows[0]),
        _out_weight=pl.Series(out_rows[1]),
        _out_amount=pl.Series(out_rows[2]),
        _out_metric=pl.Series(out_rows[3]),
        _sentinel=pl.Series(out_rows[4]),
    )
    height_out = np.round(170 + sign * 10 * (9 + 3 * rng.random(n)), 1)
    weight_out = np.round(75 + 12 * (9 + 3 * rng.random(n)), 1)
    metric_out = np.round(101 + sign * 15 * (9 + 3 * rng.random(n)), 3)
    df = df.with_columns(
        height_cm=pl.when(pl.col("_out_height")).then(pl.Series(height_out))
        .otherwise(pl.col("height_cm")),
        weight_kg=pl.when(pl.col("_out_weight")).then(pl.Series(weight_out))
        .otherwise(pl.col("weight_kg")),
        transaction_amount=pl.when(pl.col("_out_amount"))
        .then(pl.lit(round(p99 * 50, 2)) + pl.Series(np.round(rng.random(n) * p99, 2)))
        .otherwise(pl.col("transaction_amount")),
        metric_01=pl.when(pl.col("_out_metric")).then(pl.Series(metric_out))
        .otherwise(pl.col("metric_01")),
        days_since_login=pl.when(pl.col("_sentinel")).then(999)
        .otherwise(pl.col("days_since_login")),
    )
    young = (df["age_group"] == "18-24").to_numpy()
    high_credit = (df["credit_score"] > 760).to_numpy()
    null_masks = {
        "satisfaction": u[0] < 0.05,  # MCAR
        "income": np.where(young, u[1] < 0.6, u[1] < 0.01),  # MAR on age_group
        "credit_score": high_credit & (u[2] < 0.8),  # MNAR: high values go missing
        "last_purchase_date": u[3] < 0.10,
        "phone": u[4] < 0.01,
        "metric_03": u[5] < 0.30,
        "city": u[6] < 0.02,
        "discount_rate": u[7] < 0.15,
    }
    return df.with_columns(
        pl.when(pl.Series(mask)).then(None).otherwise(pl.col(col)).alias(col)
        for col, mask in null_masks.items()
    )


def _typo(rng: np.random.Generator, names: pl.Series) -> pl.Series:
    """Swap two adjacent letters (or double one) in each name: a near-duplicate edit."""
    out = []
    for name, r in zip(names.to_list(), rng.random(len(names)), strict=True):
        pos = int(r * (len(name) - 1))
        if len(name) > 2 and name[pos] != name[pos + 1]:
            out.append(name[:pos] + name[pos + 1] + name[pos] + name[pos + 2:])
        else:
            out.append(name[:pos] + name[pos] + name[pos:])
    return pl.Series(out, dtype=pl.String)


def generate(rows: int, out_dir: Path, seed: int = 0) -> dict[str, Any]:
    """Write dirty.csv, dirty.parquet and ground_truth.json into ``out_dir``."""
    if rows < 10:
        raise ValueError("generate at least 10 rows")
    rng = np.random.Generator(np.random.PCG64(seed))
    n_exact = max(1, round(rows * 0.01))
    n_near = max(1, round(rows * 0.01))
    n_base = rows - n_exact - n_near
    base = _inject(rng, _base(rng, n_base))
    base = base.with_columns(_key=pl.Series(np.arange(n_base, dtype=np.float64)),
                             _src=pl.lit(-1, dtype=pl.Int64), _kind=pl.lit(0, dtype=pl.Int8))

    exact_src = rng.choice(n_base, n_exact, replace=True)
    exact = base[exact_src].with_columns(
        _key=pl.Series(exact_src + rng.uniform(0.01, 1.0, n_exact) * (n_base - exact_src)),
        _src=pl.Series(exact_src.astype(np.int64)), _kind=pl.lit(1, dtype=pl.Int8))
    near_src = rng.choice(n_base, n_near, replace=False)
    near = base[near_src]
    near = near.with_columns(
        record_id=pl.Series(np.arange(5_000_000, 5_000_000 + n_near, dtype=np.int64)),
        last_name=_typo(rng, near["last_name"]),
        _key=pl.Series(near_src + rng.uniform(0.01, 1.0, n_near) * (n_base - near_src)),
        _src=pl.Series(near_src.astype(np.int64)), _kind=pl.lit(2, dtype=pl.Int8))

    full = pl.concat([base, exact, near]).sort("_key", maintain_order=True)
    full = full.with_row_index("_row")
    # map base index (the _key of base rows) to its final row
    base_pos = full.filter(pl.col("_kind") == 0).select(
        pl.col("_key").cast(pl.Int64).alias("_base"), pl.col("_row"))
    pos = np.empty(n_base, dtype=np.int64)
    pos[base_pos["_base"].to_numpy()] = base_pos["_row"].to_numpy()

    def rows_where(expr: pl.Expr) -> list[int]:
        return [int(i) for i in full.filter(expr)["_row"].to_list()]

    near_rows = full.filter(pl.col("_kind") == 2).select("_src", "_row")
    pairs = sorted([int(pos[s]), int(r)] for s, r in near_rows.iter_rows())
    hidden = [c for c in full.columns if c.startswith("_")]
    data = full.drop(hidden)

    out_dir.mkdir(parents=True, exist_ok=True)
    data.write_csv(out_dir / "dirty.csv")
    data.write_parquet(out_dir / "dirty.parquet", statistics=True)

    types = {}
    for col, dtype in data.schema.items():
        if dtype.is_integer():
            types[col] = "integer"
        elif dtype.is_float():
            types[col] = "float"
        elif dtype == pl.Boolean:
            types[col] = "boolean"
        elif col.endswith("_date"):
            types[col] = "date"
        else:
            types[col] = "string"
    truth: dict[str, Any] = {
        "rows": data.height,
        "columns": data.width,
        "seed": seed,
        "column_types": types,
        "exact_duplicates": {"count": n_exact, "rows": rows_where(pl.col("_kind") == 1)},
        "near_duplicates": {"pairs": pairs},
        "nulls": {c: int(v) for c, v in zip(data.columns, data.null_count().row(0), strict=True)},
        "missingness": {"satisfaction": "MCAR", "income": "MAR", "credit_score": "MNAR"},
        "outliers": {
            "height_cm": rows_where(pl.col("_out_height")),
            "weight_kg": rows_where(pl.col("_out_weight")),
            "transaction_amount": rows_where(pl.col("_out_amount")),
            "metric_01": rows_where(pl.col("_out_metric")),
        },
        "sentinel": {"days_since_login": {"value": 999, "rows": rows_where(pl.col("_sentinel"))}},
        "case_variant_columns": ["city", "country", "department"],
        "pii_columns": {"email": "email", "phone": "phone", "credit_card": "credit_card",
                        "iban": "iban", "ip_address": "ip_address"},
        "constant_columns": ["source_system"],
        "high_cardinality_columns": ["comment", "record_id", "email"],
    }
    (out_dir / "ground_truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    return truth
