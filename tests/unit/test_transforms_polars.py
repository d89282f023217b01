"""The transform library on Polars: every fix type's results on small hand-built tables,
exactly one change row per changed cell (and none for an unchanged one), deterministic
Parquet bytes, the merging of several fixes' changes, clear errors for bad configs, and
the near-duplicate dedupe on the benchmark generator's data against its ground truth."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from datrix.jobs.bench.generate import generate
from datrix.jobs.quality.pii import mask_text
from datrix.jobs.transforms import pii_tokens
from datrix.jobs.transforms import polars_transforms as pt
from datrix.jobs.transforms.base import (
    CHANGES_SCHEMA,
    ROW_ID,
    Applied,
    Secrets,
    text,
    with_row_ids,
    write_table,
)
from datrix.jobs.transforms.specs import (
    ORDER,
    CoerceTypes,
    Dedupe,
    FixSpec,
    Impute,
    Normalise,
    Outliers,
    Pii,
    Sentinels,
    in_order,
    spec_for_issue,
)

SECRETS = Secrets(salt=b"tenant-salt", token_key=bytes(range(64)))


def people() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "name": ["Ann", "Bob", "Cy", "Dee", "Ed", "Flo", "Gus", "Hal"],
            "city": [" Berlin", "berlin", "Berlin", "Berlin", "Paris", "paris ", None, "Paris"],
            "age": [30, None, 41, 35, -1, 29, None, 33],
            "income": [50.0, 52.0, float("nan"), 48.0, 51.0, 9000.0, None, 49.0],
            "team": ["a", "a", "b", "b", "a", "b", "b", "a"],
            "amount": ["10", " 12 ", "x", "14.5", None, "1e2", "7", "n/a"],
            "day": ["2024-03-01", "01/03/2024", "1.3.2024", "soon", None, "2024-13-40", "", "x"],
            "note": [
                "call me at ann@example.com",
                "no pii here",
                None,
                "mail bob.smith@mail.org or not",
                "plain",
                "",
                "x",
                "y",
            ],
        }
    )


def cell_texts(table: pl.DataFrame) -> dict[tuple[int, str], str | None]:
    """(ROW_ID, column) -> text form, every cell."""
    cols = [c for c in table.columns if c != ROW_ID]
    texts = table.select(ROW_ID, *[text(pl.col(c), table.schema[c]).alias(c) for c in cols])
    out: dict[tuple[int, str], str | None] = {}
    for row in texts.iter_rows(named=True):
        for c in cols:
            out[(row[ROW_ID], c)] = row[c]
    return out


def check_exact_changes(before: pl.DataFrame, done: Applied) -> None:
    """Each changed cell has exactly one change row with its old and new text; no
    unchanged cell has one; each removed row one removal row (its JSON the row before);
    each dropped column one drop row."""
    before = with_row_ids(before)
    changes = done.changes
    assert changes.schema == CHANGES_SCHEMA
    old, new = cell_texts(before), cell_texts(done.table)
    kept_rows = set(done.table[ROW_ID].to_list())
    removed = set(before[ROW_ID].to_list()) - kept_rows
    dropped = set(before.columns) - set(done.table.columns)
    expected = {
        key: (value, new[key]) for key, value in old.items() if key in new and value != new[key]
    }
    cells = changes.filter(pl.col("row_id").is_not_null() & pl.col("column").is_not_null())
    found = {
        (r, c): (o, n)
        for r, c, o, n in cells.select("row_id", "column", "old_value", "new_value").iter_rows()
    }
    assert cells.height == len(found), "a cell has more than one change row"
    # a PII fix keeps the old value only masked
    pii = {
        (r, c)
        for r, c, rule in cells.select("row_id", "column", "rule").iter_rows()
        if "pii." in rule
    }
    for key in pii & set(expected):
        was = expected[key][0]
        expected[key] = (None if was is None else mask_text(was), expected[key][1])
    assert found == expected
    removals = changes.filter(pl.col("row_id").is_not_null() & pl.col("column").is_null())
    assert sorted(removals["row_id"].to_list()) == sorted(removed)
    for row_id, payload in removals.select("row_id", "old_value").iter_rows():
        # the row's input values, but for columns dropped before the row was removed
        record = json.loads(payload)
        assert set(done.table.columns) - {ROW_ID} <= set(record)
        assert record == {c: old[(row_id, c)] for c in record}
    drops = changes.filter(pl.col("row_id").is_null())
    assert set(drops["column"].to_list()) == dropped
    assert changes["confidence"].is_between(0.0, 1.0).all()


ALL_SPECS: list[FixSpec] = [
    Dedupe("exact"),
    Dedupe("near"),
    Impute("age"),
    Impute("income", "mode"),
    Impute("city"),
    Impute("age", "group", by="team"),
    Impute("income", "knn"),
    Impute("income", "iterative"),
    Normalise("city"),
    Normalise("city", "trim"),
    Normalise("city", "casefold"),
    Outliers("income", (5,)),
    Outliers("income", (5,), "null"),
    Sentinels("age", (4,)),
    Pii("note", "redact"),
    Pii("note", "redact_spans"),
    Pii("note", "hash"),
    Pii("note", "tokenise"),
    Pii("note", "drop_column"),
    CoerceTypes("amount", "number"),
    CoerceTypes("day", "date"),
]


@pytest.mark.parametrize("spec", ALL_SPECS, ids=lambda s: f"{s.rule}-{getattr(s, 'column', '')}")
def test_each_changed_cell_has_exactly_one_change_row(spec: FixSpec) -> None:
    table = people()
    done = pt.apply(spec, table, SECRETS)
    check_exact_changes(table, done)
    assert set(done.changes["rule"].drop_nulls().str.split("+").explode().to_list()) <= {
        spec.rule,
        "impute.mode",  # median on a text column
    }


def test_apply_all_merges_changes_one_row_per_cell() -> None:
    # Rows 3 and 4 are exact copies of rows 0 and 1 once the note is dropped; row 2's age
    # is first a sentinel (nulled), then imputed with the mode: one row, both rules.
    table = pl.DataFrame(
        {
            "city": ["Berlin", "Paris", " berlin", "Berlin", "Paris", "Rome", "Oslo"],
            "age": [30, 40, -1, 30, 40, 40, None],
            "note": ["a", "b", "c", "d", "e", "f", "g"],
        }
    )
    specs = [
        Dedupe("exact"),
        Impute("age", "mode"),
        Sentinels("age", (2,)),
        Normalise("city"),
        Pii("note", "drop_column"),
    ]
    done = pt.apply_all(specs, table)
    check_exact_changes(table, done)
    rows = {(r, c): (o, n, rule, conf) for r, c, o, n, rule, conf in done.changes.iter_rows()}
    assert rows[(2, "age")][:3] == ("-1", "40", "sentinels.null+impute.mode")
    assert rows[(2, "age")][3] == pytest.approx(3 / 5)  # 40 is 3 of the 5 known ages
    assert rows[(2, "city")] == (" berlin", "Berlin", "normalise.canonical", 1.0)
    assert rows[(6, "age")][:3] == (None, "40", "impute.mode")
    assert rows[(None, "note")][2] == "pii.drop_column"
    assert rows[(3, None)][2] == rows[(4, None)][2] == "dedupe.exact"
    assert done.table[ROW_ID].to_list() == [0, 1, 2, 5, 6]
    assert "note" not in done.table.columns
    # the drop row first, then by row (a removal before its row's cells)
    assert done.changes["row_id"].to_list() == [None, 2, 2, 3, 4, 6]


def test_apply_all_skips_fixes_of_a_dropped_column() -> None:
    table = pl.DataFrame({"phone": ["+46 70 123 45 67", None], "n": [1, None]})
    done = pt.apply_all([Impute("phone"), Pii("phone", "drop_column"), Impute("n")], table)
    assert done.table.columns == [ROW_ID, "n"]
    assert done.changes.select("row_id", "column", "rule").rows() == [
        (None, "phone", "pii.drop_column"), (1, "n", "impute.median")
    ]  # fmt: skip
    with pytest.raises(ValueError, match="unknown column 'phone'"):  # on its own: an error
        pt.apply(Impute("phone"), done.table)


def test_apply_all_keeps_the_input_values_of_a_removed_row() -> None:
    # Row 1 is " Berlin" (trimmed to "Berlin", then a copy of row 0): its removal row's
    # JSON holds its input value, and it has no cell change row.
    table = pl.DataFrame({"city": ["Berlin", " Berlin"], "n": [1, 1]})
    done = pt.apply_all([Dedupe("exact"), Normalise("city", "trim")], table)
    assert done.changes.height == 1
    row = done.changes.row(0, named=True)
    assert row["row_id"] == 1 and row["column"] is None and row["rule"] == "dedupe.exact"
    assert json.loads(row["old_value"]) == {"city": " Berlin", "n": "1"}


def test_order_is_the_contract_order() -> None:
    assert ORDER == (
        "coerce", "sentinels", "outliers", "normalise", "pii", "impute",
        "dedupe.exact", "dedupe.near",
    )  # fmt: skip
    specs = [Dedupe("near"), Dedupe("exact"), Impute("a"), Pii("a"), Normalise("a"),
             Outliers("a", None), Sentinels("a", ()), CoerceTypes("a", "date")]  # fmt: skip
    assert [s.rule.split(".")[0] if not isinstance(s, Dedupe) else s.rule
            for s in in_order(specs)] == list(ORDER)  # fmt: skip


@pytest.mark.parametrize("spec", ALL_SPECS, ids=lambda s: f"{s.rule}-{getattr(s, 'column', '')}")
def test_same_input_same_bytes(spec: FixSpec, tmp_path: Path) -> None:
    outputs = []
    for attempt in range(2):
        done = pt.apply(spec, people(), SECRETS)
        write_table(done.table, tmp_path / f"t{attempt}.parquet")
        write_table(done.changes, tmp_path / f"c{attempt}.parquet")
        outputs.append(
            ((tmp_path / f"t{attempt}.parquet").read_bytes(),
             (tmp_path / f"c{attempt}.parquet").read_bytes())
        )  # fmt: skip
    assert outputs[0] == outputs[1]


def test_apply_all_same_bytes(tmp_path: Path) -> None:
    digests = []
    for attempt in range(2):
        done = pt.apply_all(ALL_SPECS[:-3], people(), SECRETS)
        write_table(done.table.drop(ROW_ID), tmp_path / f"v{attempt}.parquet")
        write_table(done.changes, tmp_path / f"p{attempt}.parquet")
        digests.append(
            (tmp_path / f"v{attempt}.parquet").read_bytes()
            + (tmp_path / f"p{attempt}.parquet").read_bytes()
        )
    assert digests[0] == digests[1]


# ---------------------------------------------------------------------------- impute


def test_impute_median_mode_and_group() -> None:
    table = pl.DataFrame(
        {
            "x": [1.0, None, 3.0, 10.0, float("nan"), 2.0],
            "k": [1, 2, None, 2, 4, None],
            "c": ["r", None, "g", "g", "r", "r"],
            "grp": ["a", "a", "a", "b", "b", "z"],
        }
    )
    x = pt.apply(Impute("x"), table)
    assert x.table["x"].to_list() == [1.0, 2.5, 3.0, 10.0, 2.5, 2.0]  # median of 1, 3, 10, 2
    assert x.changes["row_id"].to_list() == [1, 4]
    assert x.changes["old_value"].to_list() == [None, "NaN"]
    # confidence: the share of known values within a quarter sd (4.03 / 4) of 2.5: 3 and 2
    assert x.changes["confidence"].to_list() == pytest.approx([0.5, 0.5])
    k = pt.apply(Impute("k"), table)
    assert k.table["k"].to_list() == [1, 2, 2, 2, 4, 2] and k.table["k"].dtype == pl.Int64
    c = pt.apply(Impute("c"), table)  # median of text: the mode
    assert c.table["c"].to_list() == ["r", "r", "g", "g", "r", "r"]
    assert c.changes.row(0, named=True)["rule"] == "impute.mode"
    assert c.changes["confidence"].to_list() == pytest.approx([3 / 5])
    g = pt.apply(Impute("x", "group", by="grp"), table)
    # group a: median of 1, 3 -> 2; group b: median of 10; z has no nulls
    assert g.table["x"].to_list() == [1.0, 2.0, 3.0, 10.0, 10.0, 2.0]
    assert g.changes["rule"].unique().to_list() == ["impute.group"]
    # a group with no known value falls back to the whole column
    lone = pl.DataFrame({"x": [1.0, 3.0, None], "grp": ["a", "a", "b"]})
    assert pt.apply(Impute("x", "group", by="grp"), lone).table["x"].to_list() == [1.0, 3.0, 2.0]


def test_impute_knn_and_iterative_use_the_other_columns() -> None:
    n = 200
    a = [float(i % 50) for i in range(n)]
    table = pl.DataFrame({"a": a, "b": [2.0 * v + 1.0 if i % 7 else None for i, v in enumerate(a)]})
    for method in ("knn", "iterative"):
        done = pt.apply(Impute("b", method), table)  # type: ignore[arg-type]
        filled = done.table.filter(pl.col(ROW_ID) % 7 == 0)
        expected = [2.0 * v + 1.0 for v in filled["a"].to_list()]
        assert filled["b"].to_list() == pytest.approx(expected, abs=1.5), method
        assert done.changes.height == len(range(0, n, 7))
        conf = done.changes["confidence"].unique().to_list()
        assert len(conf) == 1 and 0.9 <= conf[0] <= 1.0, method  # a near-exact relation


def test_fit_on_one_frame_apply_to_another() -> None:
    train = pl.DataFrame({"x": [1.0, 3.0, None], "c": ["Red", "red", "Red"]})
    other = pl.DataFrame({"x": [None, 7.0], "c": ["red", "blue"]})
    assert pt.fit(Impute("x"), train).apply(other).table["x"].to_list() == [2.0, 7.0]
    spelled = pt.fit(Normalise("c"), train).apply(other)
    assert spelled.table["c"].to_list() == ["Red", "blue"]
    assert spelled.changes.select("row_id", "old_value", "new_value").rows() == [(0, "red", "Red")]


# ---------------------------------------------------------------------------- normalise


def test_normalise_modes() -> None:
    table = pl.DataFrame({"c": [" New  York", "new york", "New York", "New York", "Oslo ", None]})
    assert pt.apply(Normalise("c", "trim"), table).table["c"].to_list() == [
        "New  York", "new york", "New York", "New York", "Oslo", None
    ]  # fmt: skip
    assert pt.apply(Normalise("c", "casefold"), table).table["c"].to_list() == [
        " new  york", "new york", "new york", "new york", "oslo ", None
    ]  # fmt: skip
    canonical = pt.apply(Normalise("c"), table)
    # the scan's key collapses inner spaces: all four are one category; "Oslo " has no
    # other spelling and stays as it is
    assert canonical.table["c"].to_list() == ["New York"] * 4 + ["Oslo ", None]
    assert canonical.changes["row_id"].to_list() == [0, 1]


def test_canonical_is_the_scans_rule() -> None:
    from datrix.jobs.quality.formats import case_variant_findings

    values = ["Berlin"] * 5 + ["berlin"] * 2 + [" BERLIN"] + ["Paris"] * 3 + ["paris"]
    table = pl.DataFrame({"city": values})
    [finding] = case_variant_findings(table.lazy(), ["city"])
    done = pt.apply(Normalise("city"), table)
    assert sorted(done.changes["row_id"].to_list()) == list(finding.rows)


# ---------------------------------------------------------------------------- outliers, sentinels


def test_outliers_winsorise_null_and_recompute() -> None:
    table = pl.DataFrame({"v": [10.0, 12.0, 11.0, 500.0, 9.0, None]})
    assert pt.apply(Outliers("v", (3,)), table).table["v"].to_list() == [
        10.0, 12.0, 11.0, 12.0, 9.0, None
    ]  # fmt: skip
    assert pt.apply(Outliers("v", (3,), "null"), table).table["v"].to_list()[3] is None
    # rows=None: found again with the scan's two-vote detector
    values = [float(v) for v in range(100, 300)] + [100_000.0]
    found = pt.apply(Outliers("v", None, "null"), pl.DataFrame({"v": values}))
    assert found.changes["row_id"].to_list() == [200]


def test_sentinels_null_the_listed_cells() -> None:
    done = pt.apply(Sentinels("v", (0, 2)), pl.DataFrame({"v": [-999, 5, -999, None]}))
    assert done.table["v"].to_list() == [None, 5, None, None]
    assert done.changes["old_value"].to_list() == ["-999", "-999"]


# ---------------------------------------------------------------------------- PII


def test_pii_actions() -> None:
    table = pl.DataFrame({"note": ["write to ann@example.com today", "nothing", None]})
    spans = pt.apply(Pii("note"), table)
    assert spans.table["note"].to_list() == ["write to <EMAIL> today", "nothing", None]
    assert spans.changes["row_id"].to_list() == [0]
    redact = pt.apply(Pii("note", "redact"), table)
    assert redact.table["note"].to_list() == ["<REDACTED>", "<REDACTED>", None]
    hashed = pt.apply(Pii("note", "hash"), table, SECRETS).table["note"].to_list()
    assert hashed[0].startswith("h_") and len(hashed[0]) == 2 + 64 and hashed[2] is None
    again = pt.apply(Pii("note", "hash"), table, SECRETS).table["note"].to_list()
    other = pt.apply(Pii("note", "hash"), table, Secrets(salt=b"other")).table["note"].to_list()
    assert hashed == again and hashed[0] != other[0]
    tokens = pt.apply(Pii("note", "tokenise"), table, SECRETS).table["note"].to_list()
    assert tokens[0].startswith("tok_")
    assert pii_tokens.detokenise(tokens[0], SECRETS.token_key or b"") == table["note"][0]
    with pytest.raises(ValueError, match="not made with this key"):
        pii_tokens.detokenise(tokens[0], bytes(32))
    dropped = pt.apply(Pii("note", "drop_column"), table)
    assert dropped.table.columns == [ROW_ID]
    assert dropped.changes.rows() == [(None, "note", None, None, "pii.drop_column", 1.0)]


def test_pii_provenance_never_holds_the_personal_data() -> None:
    email = "ann.lee@example.com"
    table = pl.DataFrame({"note": [f" mail {email}", f" mail {email}", "x"], "k": [1, 1, 2]})
    for action in ("redact", "redact_spans", "hash", "tokenise"):
        done = pt.apply_all([Normalise("note", "trim"), Pii("note", action)], table, SECRETS)  # type: ignore[arg-type]
        assert email not in str(done.changes.rows()), action
    # row 1 becomes a copy of row 0 and is removed: its JSON has the masked input value
    done = pt.apply_all([Normalise("note", "trim"), Pii("note"), Dedupe("exact")], table)
    removal = done.changes.filter(pl.col("column").is_null()).row(0, named=True)
    assert removal["row_id"] == 1 and email not in removal["old_value"]
    assert json.loads(removal["old_value"])["note"] == mask_text(f" mail {email}")


def test_pii_secrets_are_required() -> None:
    table = pl.DataFrame({"note": ["x"]})
    with pytest.raises(ValueError, match="DATRIX_PII_SALT"):
        pt.apply(Pii("note", "hash"), table)
    with pytest.raises(ValueError, match="DATRIX_TOKEN_KEY"):
        pt.apply(Pii("note", "tokenise"), table, Secrets(salt=b"s"))
    with pytest.raises(ValueError, match="32, 48 or 64 bytes"):
        pt.apply(Pii("note", "tokenise"), table, Secrets(token_key=b"short"))
    assert "tenant" not in repr(SECRETS)


# ---------------------------------------------------------------------------- coerce


def test_coerce_numbers_and_dates() -> None:
    table = people()
    numbers = pt.apply(CoerceTypes("amount", "number"), table)
    assert numbers.table["amount"].to_list() == [10.0, 12.0, None, 14.5, None, 100.0, 7.0, None]
    failed = numbers.changes.filter(pl.col("new_value").is_null())
    assert failed.select("row_id", "old_value").rows() == [(2, "x"), (7, "n/a")]
    whole = pt.apply(CoerceTypes("n", "number"), pl.DataFrame({"n": ["1", " 2", "3"]}))
    assert whole.table["n"].dtype == pl.Int64 and whole.changes["row_id"].to_list() == [1]
    dates = pt.apply(CoerceTypes("day", "date"), table).table["day"]
    assert dates.dtype == pl.Date
    assert [str(d) if d else None for d in dates.to_list()] == [
        "2024-03-01", "2024-03-01", "2024-03-01", None, None, None, None, None
    ]  # fmt: skip


# ---------------------------------------------------------------------------- dedupe


def test_exact_dedupe_keeps_the_first() -> None:
    table = pl.DataFrame({"a": [1, 2, 1, 1, None, None], "b": ["x", "y", "x", "x", None, None]})
    done = pt.apply(Dedupe("exact"), table)
    assert done.table[ROW_ID].to_list() == [0, 1, 4]
    assert done.changes["row_id"].to_list() == [2, 3, 5]
    assert done.changes["confidence"].to_list() == [1.0, 1.0, 1.0]
    listed = pt.apply(Dedupe("exact", rows=(1,)), table)
    assert listed.table[ROW_ID].to_list() == [0, 2, 3, 4, 5]


def customers(n: int = 300) -> pl.DataFrame:
    first = ["Anna", "Boris", "Chen", "Dana", "Emil", "Fatima", "Goran", "Hana", "Ivan", "Jana"]
    last = ["Novak", "Schmidt", "Li", "Kowalski", "Meyer", "Haddad", "Petrov", "Sato"]
    rows = [
        {
            "first": first[i % len(first)],
            "last": last[(i * 7) % len(last)],
            "email": f"user{i}@example.com",
            "city": ["Oslo", "Rome", "Lima", "Kyiv", "Pune"][i % 5],
            "zip": f"{10000 + i * 37}",
            "phone": f"+4670{1000000 + i * 7919}",
        }
        for i in range(n)
    ]
    return pl.DataFrame(rows)


def test_near_dedupe_most_complete_and_merge() -> None:
    base = customers()
    # row 300: a near copy of row 5 (typo, no phone); row 301: of row 9 (typo) with more
    # filled in than its original (row 9 lost its city)
    copy5 = base.row(5, named=True) | {"first": base["first"][5] + "a", "phone": None}
    copy9 = base.row(9, named=True) | {"last": base["last"][9] + "x"}
    no_city = pl.when(pl.int_range(pl.len()) == 9).then(None).otherwise(pl.col("city"))
    table = pl.concat(
        [base.with_columns(no_city.alias("city")), pl.DataFrame([copy5, copy9], schema=base.schema)]
    )
    done = pt.apply(Dedupe("near"), table)
    check_exact_changes(table, done)
    # most complete kept: row 5 (the copy lacks a phone) and row 301 (row 9 lacks a city)
    assert sorted(done.changes["row_id"].to_list()) == [9, 300]
    assert ((done.changes["confidence"] > 0.5) & (done.changes["confidence"] <= 1.0)).all()
    merged = pt.apply(Dedupe("near", "merge"), table)
    check_exact_changes(table, merged)
    # nothing to merge: each kept row had every field its copy had
    assert merged.changes.filter(pl.col("column").is_not_null()).height == 0
    # a copy that knows the city row 9 lost: merged into row 9, kept as the earlier row
    copy9b = base.row(9, named=True) | {"last": base["last"][9] + "x", "phone": None}
    lost = table.head(300).vstack(pl.DataFrame([copy9b], schema=base.schema))
    filled = pt.apply(Dedupe("near", "merge"), lost)
    check_exact_changes(lost, filled)
    cells = filled.changes.filter(pl.col("column").is_not_null())
    assert cells.select("row_id", "column", "old_value", "new_value").rows() == [
        (9, "city", None, base["city"][9])
    ]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[pl.DataFrame, dict[str, Any]]:
    out = tmp_path_factory.mktemp("generated")
    truth = generate(4000, out, seed=11)
    return pl.read_parquet(out / "dirty.parquet"), truth


def test_near_dedupe_removes_exactly_the_planted_copies(
    generated: tuple[pl.DataFrame, dict[str, Any]],
) -> None:
    frame, truth = generated
    planted = {int(b) for _, b in truth["near_duplicates"]["pairs"]}
    done = pt.apply(Dedupe("near"), frame)
    removed = set(done.changes.filter(pl.col("column").is_null())["row_id"].to_list())
    assert removed == planted
    assert done.table.height == frame.height - len(planted)


def test_dedupe_on_generated_data_after_exact(
    generated: tuple[pl.DataFrame, dict[str, Any]],
) -> None:
    frame, truth = generated
    done = pt.apply_all([Dedupe("near"), Dedupe("exact")], frame)
    removed = done.changes.filter(pl.col("column").is_null())
    by_rule: Callable[[str], set[int]] = lambda r: set(  # noqa: E731
        removed.filter(pl.col("rule") == r)["row_id"].to_list()
    )
    assert by_rule("dedupe.exact") == set(truth["exact_duplicates"]["rows"])
    assert by_rule("dedupe.near") == {int(b) for _, b in truth["near_duplicates"]["pairs"]}


# ---------------------------------------------------------------------------- configs


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: pt.apply(Impute("nope"), people()), "unknown column 'nope'"),
        (lambda: pt.apply(Normalise("age"), people()), "not text"),
        (lambda: pt.apply(Impute("city", "knn"), people()), "not numeric"),
        (lambda: pt.apply(Outliers("city", (1,)), people()), "not numeric"),
        (lambda: pt.apply(Impute("age", "group", by="nope"), people()), "unknown column 'nope'"),
        (lambda: Impute("age", "group"), "needs by="),
        (lambda: Impute("age", "mean"), "Impute method must be one of"),  # type: ignore[arg-type]
        (lambda: Dedupe("fuzzy"), "Dedupe mode must be one of"),  # type: ignore[arg-type]
        (lambda: Sentinels("a", (-1,)), "non-negative"),
        (lambda: Pii("", "hash"), "needs a column name"),
        (lambda: spec_for_issue("null_values", "a", [], {"impute": "magic"}), "one of"),
        (lambda: spec_for_issue("null_values", "a", [], {"colour": "red"}), "unknown fix option"),
        (
            lambda: pt.apply(Impute("age"), people().with_columns(pl.lit("1").alias(ROW_ID))),
            "Int64",
        ),
    ],
)
def test_bad_config_is_a_clear_value_error(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_spec_for_issue_defaults_and_options() -> None:
    assert spec_for_issue("exact_duplicates", None, [1], {}) == Dedupe("exact")
    assert spec_for_issue("near_duplicates", None, [1], {"dedupe_keep": "merge"}) == Dedupe(
        "near", "merge"
    )
    assert spec_for_issue("null_values", "a", [1], {}) == Impute("a")
    assert spec_for_issue("null_values", "a", [], {"impute": "group", "impute_by": "b"}) == Impute(
        "a", "group", "b"
    )
    assert spec_for_issue("outliers", "a", [3, 4], {}) == Outliers("a", (3, 4))
    assert spec_for_issue("sentinel_values", "a", [3], {}) == Sentinels("a", (3,))
    assert spec_for_issue("impossible_values", "a", [3], {}) == Sentinels("a", (3,))
    assert spec_for_issue("inconsistent_format", "a", [3], {}) == Normalise("a")
    assert spec_for_issue("type_mismatch", "a", [3], {}, "2 values are not dates") == CoerceTypes(
        "a", "date"
    )
    assert spec_for_issue("type_mismatch", "a", [3], {}, "not numbers") == CoerceTypes(
        "a", "number"
    )
    assert spec_for_issue("pii_detected", "a", [3], {"pii": "hash"}) == Pii("a", "hash")
    assert spec_for_issue("pii_detected", "a", [3], {}) == Pii("a", "redact_spans")
    assert spec_for_issue("label_issues", "y", [3], {}) is None
    assert spec_for_issue("drift", "a", [], {}) is None


def test_cell_changes_see_signed_zeros_and_nan() -> None:
    from datrix.jobs.transforms.base import cell_changes

    before = with_row_ids(pl.DataFrame({"v": [0.0, float("nan"), 1.0, None, 2.0]}))
    after = before.with_columns(pl.Series("v", [-0.0, float("nan"), 1.0, 5.0, float("nan")]))
    found = cell_changes(before, after, "v", "r")
    assert found.select("row_id", "old_value", "new_value").rows() == [
        (0, "0.0", "-0.0"), (3, None, "5.0"), (4, "2.0", "NaN")
    ]  # fmt: skip
