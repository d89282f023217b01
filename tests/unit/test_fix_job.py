"""The fix job (``jobs/fixes.py``) on a local object store, a real small Parquet version and
the report of a real scan of it: apply writes a new version and its provenance (one row per
changed cell, none for an unchanged one), the same input and fix give the same bytes, a
preview writes no version and masks PII in its sample, and a fix that cannot run fails
with a message that says why (missing secrets name the variable to set)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from datrix.aggregates.fix import CompleteFix, FailFix, FixJobRequested
from datrix.aggregates.scan import CompleteScan, JobRequested
from datrix.jobs import fixes
from datrix.jobs.quality.pii import mask_value
from datrix.jobs.runner import load_report, run_scan_job
from datrix.jobs.transforms.base import ROW_ID, Secrets, text
from datrix.jobs.transforms.pii_tokens import redact_spans
from datrix.streams.object_store import LocalObjectStore
from datrix.streams.settings import Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]
TENANT = "acme"
SALT = "s" * 40
KEY = "k" * 40
CITIES = ["Paris", "Berlin", "Madrid", "Rome"]


def dirty_table(n: int = 300) -> pl.DataFrame:
    """Nulls in age, one income outlier, upper-case city variants, e-mails in every row,
    and the first five rows repeated at the end (exact duplicates)."""
    frame = pl.DataFrame(
        {
            "id": list(range(n)),
            "age": [None if i % 23 == 0 else 20 + (i * 7) % 50 for i in range(n)],
            "income": [9_999_999.0 if i == 17 else 30000.0 + (i * 131) % 20000 for i in range(n)],
            "city": [CITIES[i % 4].upper() if i % 11 == 0 else CITIES[i % 4] for i in range(n)],
            "email": [f"user{i}@example.com" for i in range(n)],
        }
    )
    return pl.concat([frame, frame.head(5)])


@dataclass(frozen=True)
class Scanned:
    store: LocalObjectStore
    table: pl.DataFrame
    object_uri: str
    object_sha: str
    scan: CompleteScan

    def issue(self, issue_type: str) -> str:
        return next(i.id for i in self.scan.issues if i.type == issue_type)


def _at() -> dict[str, Any]:
    return {
        "originator_id": uuid.uuid4(),
        "originator_version": 2,
        "timestamp": datetime(2026, 1, 1, tzinfo=UTC),
    }


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> Scanned:
    folder = tmp_path_factory.mktemp("fix-job")
    store = LocalObjectStore(folder / "objects")
    table = dirty_table()
    path = folder / "v1.parquet"
    table.write_parquet(path)
    uri, sha = store.put_file(TENANT, path, ".parquet")
    result = run_scan_job(
        JobRequested(
            **_at(),
            job_id=uuid.uuid4(),
            kind="scan",
            engine="polars",
            tenant=TENANT,
            dataset_id=uuid.uuid4(),
            version=1,
            object_uri=uri,
            object_sha256=sha,
            label_column=None,
            seed=0,
            attempt=1,
        ),
        store,
    )
    assert isinstance(result, CompleteScan), result
    types = {i.type for i in result.issues}
    assert {"exact_duplicates", "null_values", "inconsistent_format", "pii_detected"} <= types
    assert "outliers" in types
    return Scanned(store, table, uri, sha, result)


def fix_job(
    s: Scanned,
    mode: str = "apply",
    issue_ids: tuple[str, ...] = (),
    options: dict[str, str] | None = None,
    *,
    fix_id: uuid.UUID | None = None,
    engine: str = "polars",
    tenant: str = TENANT,
    object_uri: str | None = None,
) -> FixJobRequested:
    at = _at()
    at["originator_id"] = fix_id or uuid.uuid4()
    return FixJobRequested(
        **at,
        job_id=uuid.uuid4(),
        kind="fix",
        engine=engine,
        tenant=tenant,
        dataset_id=uuid.uuid4(),
        version=1,
        object_uri=object_uri or s.object_uri,
        object_sha256=s.object_sha,
        scan_id=s.scan.scan_id,
        report_uri=s.scan.report_uri,
        issue_ids=issue_ids,
        options=options,
        mode=mode,
        attempt=1,
    )


def completed(result: CompleteFix | FailFix) -> CompleteFix:
    assert isinstance(result, CompleteFix), result
    return result


def failed(result: CompleteFix | FailFix) -> FailFix:
    assert isinstance(result, FailFix), result
    return result


def read(store: LocalObjectStore, uri: str) -> pl.DataFrame:
    return pl.read_parquet(store.local_path(uri))


def as_text(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(text(pl.col(c), frame.schema[c]).alias(c) for c in frame.columns)


@pytest.fixture(scope="module")
def applied(scanned: Scanned) -> tuple[CompleteFix, list[tuple[str, int, int]]]:
    phases: list[tuple[str, int, int]] = []
    job = fix_job(scanned, fix_id=uuid.UUID(int=7))
    result = completed(
        fixes.run_fix_job(job, scanned.store, lambda *p: phases.append(p), Settings())
    )
    return result, phases


def test_apply_writes_a_new_version_with_one_provenance_row_per_changed_cell(
    scanned: Scanned, applied: tuple[CompleteFix, list[tuple[str, int, int]]]
) -> None:
    result, phases = applied
    assert [p[0] for p in phases] == ["reading", "fixing", "writing", "writing"]
    assert phases[-1] == ("writing", 3, 3)
    new = read(scanned.store, result.object_uri)
    path = scanned.store.local_path(result.object_uri)
    # the objects are content-addressed under the tenant; the result names them truly
    assert hashlib.sha256(path.read_bytes()).hexdigest() == result.object_sha256
    assert f"/{TENANT}/" in str(path) and result.size_bytes == path.stat().st_size
    assert (result.rows, result.columns) == (new.height, new.width) == (300, 5)
    assert json.loads(result.schema_json) == {k: str(v) for k, v in new.schema.items()}
    assert ROW_ID not in new.columns and result.preview_uri is None

    # the fixes did what the issues ask for
    assert new["age"].null_count() == 0
    assert set(new["city"].to_list()) == set(CITIES)
    assert new["income"].max() < 9_999_999.0  # type: ignore[operator]
    assert not any("@example.com" in v for v in new["email"].to_list())
    assert not new.is_duplicated().any()

    prov = read(scanned.store, result.provenance_uri)
    assert tuple(prov.columns) == fixes.PROVENANCE_COLUMNS
    assert set(prov["fix_id"].to_list()) == {str(uuid.UUID(int=7))}
    assert prov.select("row_id", "column").equals(
        prov.select("row_id", "column").sort(["row_id", "column"], nulls_last=False)
    )
    assert prov["confidence"].is_between(0.0, 1.0).all()
    removed = prov.filter(pl.col("column").is_null())
    assert sorted(removed["row_id"].to_list()) == [300, 301, 302, 303, 304]
    assert set(removed["rule"].to_list()) == {"dedupe.exact"}
    assert result.rows_removed == 5
    # the provenance keeps no address the PII fix removed (removed rows' JSON included)
    assert not prov["old_value"].str.contains("@example.com", literal=True).any()

    # every changed cell has exactly one provenance row, and no unchanged cell has one
    before = as_text(scanned.table)
    kept = [r for r in range(scanned.table.height) if r not in set(removed["row_id"])]
    after = as_text(new)
    expected: dict[tuple[int, str], tuple[str | None, str | None]] = {}
    for position, row_id in enumerate(kept):
        for column in new.columns:
            old, fixed = before[column][row_id], after[column][position]
            if old != fixed:
                # a PII fix keeps the value it removed only masked, as the report shows it
                shown = mask_value(old) if column == "email" and old is not None else old
                expected[(row_id, column)] = (shown, fixed)
    cells = prov.filter(pl.col("column").is_not_null())
    found = {(r, c): (o, n) for r, c, o, n in cells.select(
        "row_id", "column", "old_value", "new_value").iter_rows()}  # fmt: skip
    assert cells.height == len(found) == result.cells_changed
    assert found == expected

    per_fix = json.loads(result.per_fix_json)
    by_type = {f["type"]: f for f in per_fix}
    assert by_type["exact_duplicates"]["rows_removed"] == 5
    # the null of a removed duplicate row is not filled: the row is gone
    assert by_type["null_values"]["cells_changed"] == scanned.table.head(300)["age"].null_count()
    # a column of addresses (the whole-value rule) is redacted whole
    assert by_type["pii_detected"]["rule"] == "pii.redact"
    assert set(new["email"].to_list()) == {"<REDACTED>"}
    assert sum(f["cells_changed"] for f in per_fix) >= result.cells_changed
    assert {f["issue_id"] for f in per_fix} == {
        i.id for i in scanned.scan.issues if i.fix_available
    }


def test_the_same_input_and_fix_give_the_same_bytes(
    scanned: Scanned, applied: tuple[CompleteFix, list[tuple[str, int, int]]]
) -> None:
    first, _ = applied
    again = completed(fixes.run_fix_job(fix_job(scanned, fix_id=uuid.UUID(int=7)), scanned.store))
    assert (again.object_uri, again.object_sha256) == (first.object_uri, first.object_sha256)
    assert again.provenance_sha256 == first.provenance_sha256
    # another fix with the same issues writes the same version (the fix id is provenance's)
    other = completed(fixes.run_fix_job(fix_job(scanned), scanned.store))
    assert other.object_sha256 == first.object_sha256
    assert other.provenance_sha256 != first.provenance_sha256


def test_preview_counts_and_samples_without_writing_a_version(
    scanned: Scanned, applied: tuple[CompleteFix, list[tuple[str, int, int]]]
) -> None:
    apply_result, _ = applied
    stored = set(scanned.store.root.rglob("*"))
    result = completed(fixes.run_fix_job(fix_job(scanned, "preview"), scanned.store))
    assert (result.mode, result.object_uri, result.provenance_uri) == ("preview", "", "")
    assert result.preview_uri is not None
    new_objects = set(scanned.store.root.rglob("*")) - stored
    assert [p.name for p in new_objects if p.is_file()] == [
        scanned.store.local_path(result.preview_uri).name
    ]
    body = scanned.store.read_bytes(result.preview_uri)
    preview = json.loads(body)
    assert (result.cells_changed, result.rows_removed) == (
        apply_result.cells_changed,
        apply_result.rows_removed,
    )
    assert preview["cells_changed"] == apply_result.cells_changed
    assert preview["rows_removed"] == 5 and preview["rows_after"] == 300
    apply_counts = {
        f["issue_id"]: f["cells_changed"] for f in json.loads(apply_result.per_fix_json)
    }
    assert {f["issue_id"]: f["cells_changed"] for f in preview["fixes"]} == apply_counts
    assert all(f["rows_affected"] >= 1 for f in preview["fixes"])
    # every row has an e-mail redacted: every row is touched
    assert preview["rows_affected"] == scanned.table.height
    sample = preview["sample"]
    assert 0 < len(sample) <= fixes.SAMPLE_ROWS
    assert [s["row"] for s in sample] == sorted(s["row"] for s in sample)
    first = sample[0]
    assert first["changed"] and set(first["changed"]) <= set(first["before"])
    # PII is masked before, the redacted value shown after; no address reaches the object
    assert b"@example.com" not in body and "email" in preview["masked_columns"]
    assert first["before"]["email"].startswith("u•••@e•••")
    assert first["after"]["email"] == "<REDACTED>"


def test_a_preview_of_a_removed_row_has_no_after(scanned: Scanned) -> None:
    dupes = scanned.issue("exact_duplicates")
    result = completed(fixes.run_fix_job(fix_job(scanned, "preview", (dupes,)), scanned.store))
    preview = json.loads(scanned.store.read_bytes(result.preview_uri or ""))
    assert [s["row"] for s in preview["sample"]] == [300, 301, 302, 303, 304]
    assert all(s["removed"] and s["after"] is None for s in preview["sample"])
    assert preview["fixes"] == [
        {
            "issue_id": dupes,
            "issue_ids": [dupes],
            "type": "exact_duplicates",
            "column": None,
            "rule": "dedupe.exact",
            "cells_changed": 0,
            "rows_removed": 5,
            "rows_affected": 5,
            "column_dropped": False,
        }
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"issue_ids": ("I999",)}, "issue I999 is not an issue of this scan"),
        ({"options": {"pii": "shred"}}, "fix options: fix option 'pii' must be one of"),
        ({"options": {"colour": "red"}}, "unknown fix option 'colour'"),
        ({"engine": "duckdb"}, "engine 'duckdb' cannot run fixes"),
        ({"mode": "dry-run"}, "a fix job is a preview or an apply, not 'dry-run'"),
    ],
)
def test_a_fix_that_cannot_run_fails_saying_why(
    scanned: Scanned, change: Mapping[str, Any], message: str
) -> None:
    result = failed(fixes.run_fix_job(fix_job(scanned, **change), scanned.store))
    assert message in result.message, result.message
    assert result.fix_id and result.job_id


def test_a_report_of_another_version_or_a_missing_object_fails(
    scanned: Scanned, tmp_path: Path
) -> None:
    other = tmp_path / "other.parquet"
    scanned.table.head(10).write_parquet(other)
    uri, _ = scanned.store.put_file(TENANT, other, ".parquet")
    result = failed(fixes.run_fix_job(fix_job(scanned, object_uri=uri), scanned.store))
    assert "the scan counted 305 rows but version 1 has 10" in result.message
    gone = uri.replace(uri.rsplit("/", 1)[-1][:8], "00000000")
    result = failed(fixes.run_fix_job(fix_job(scanned, object_uri=gone), scanned.store))
    assert "not in the store" in result.message


def test_an_issue_without_an_automatic_fix_is_refused_by_name(scanned: Scanned) -> None:
    report = load_report(scanned.scan.report_uri, scanned.store)
    from dataclasses import replace

    label = replace(report.issues[0], id="I900", type="label_noise", column="city")
    with pytest.raises(fixes.FixJobError, match=r"issue I900 \(label_noise\) has no automatic"):
        fixes.plan_fixes(replace(report, issues=[*report.issues, label]), ("I900",), {})
    # without issue ids, only the fixable ones
    planned = fixes.plan_fixes(replace(report, issues=[*report.issues, label]), (), {})
    assert "I900" not in {i for p in planned for i in p.issue_ids}
    with pytest.raises(fixes.FixJobError, match="no issue with an automatic fix"):
        fixes.plan_fixes(replace(report, issues=[label]), (), {})


@pytest.mark.parametrize(
    ("action", "variable"), [("hash", "DATRIX_PII_SALT"), ("tokenise", "DATRIX_TOKEN_KEY")]
)
def test_hash_or_tokenise_without_the_secret_fails_naming_the_variable(
    scanned: Scanned, action: str, variable: str
) -> None:
    pii = scanned.issue("pii_detected")
    job = fix_job(scanned, issue_ids=(pii,), options={"pii": action})
    result = failed(fixes.run_fix_job(job, scanned.store, settings=Settings()))
    assert f"set {variable}" in result.message and "'email'" in result.message
    # the other secret does not stand in for it
    other = Settings(pii_salt=SALT) if action == "tokenise" else Settings(token_key=KEY)
    failed(fixes.run_fix_job(job, scanned.store, settings=other))


def test_hashes_and_tokens_are_per_tenant_and_deterministic(scanned: Scanned) -> None:
    pii = scanned.issue("pii_detected")
    settings = Settings(pii_salt=SALT, token_key=KEY)

    def emails(action: str, tenant: str) -> list[str]:
        job = fix_job(scanned, issue_ids=(pii,), options={"pii": action}, tenant=tenant)
        result = completed(fixes.run_fix_job(job, scanned.store, settings=settings))
        assert SALT not in result.per_fix_json and KEY not in result.per_fix_json
        return read(scanned.store, result.object_uri)["email"].to_list()

    hashed = emails("hash", TENANT)
    assert all(v.startswith("h_") for v in hashed) and len(set(hashed)) == 300
    assert emails("hash", TENANT) == hashed
    assert set(emails("hash", "other-tenant")).isdisjoint(hashed)
    tokens = emails("tokenise", TENANT)
    assert all(v.startswith("tok_") for v in tokens)
    from datrix.jobs.transforms.pii_tokens import detokenise

    key = fixes.tenant_secrets(settings, TENANT).token_key
    assert key is not None and len(key) == 64
    assert detokenise(tokens[3], key) == "user3@example.com"


def test_tenant_secrets_derive_per_tenant_and_stay_out_of_reprs() -> None:
    settings = Settings(pii_salt=SALT, token_key=KEY)
    a, b = fixes.tenant_secrets(settings, "a"), fixes.tenant_secrets(settings, "b")
    assert a.salt and b.salt and a.salt != b.salt and a.token_key != b.token_key
    assert fixes.tenant_secrets(settings, "a") == a
    assert fixes.tenant_secrets(Settings(), "a") == Secrets(None, None)
    assert SALT not in repr(settings) and KEY not in repr(settings)
    assert SALT not in repr(a) and "salt=" not in repr(a)
    loaded = load_settings({"DATRIX_PII_SALT": SALT, "DATRIX_TOKEN_KEY": f" {KEY} "})
    assert (loaded.pii_salt, loaded.token_key) == (SALT, KEY)
    assert load_settings({"DATRIX_PII_SALT": ""}).pii_salt is None
    for variable in ("DATRIX_PII_SALT", "DATRIX_TOKEN_KEY"):
        with pytest.raises(SettingsError, match=f"{variable} must be at least 32 characters"):
            load_settings({variable: "short"})


def outputs(result: CompleteFix) -> tuple[Any, ...]:
    """What a fix job's result says of its outputs (all but the job id)."""
    return (
        result.mode,
        result.object_uri,
        result.object_sha256,
        result.provenance_uri,
        result.provenance_sha256,
        result.preview_uri,
        result.rows,
        result.columns,
        result.size_bytes,
        result.schema_json,
        result.cells_changed,
        result.rows_removed,
        result.per_fix_json,
    )


@pytest.fixture
def bounded_calls(monkeypatch: pytest.MonkeyPatch) -> list[int | None]:
    """The chunk sizes of the real ``apply_all_bounded``'s runs (which path a job took)."""
    from datrix.jobs.transforms import polars_bounded

    calls: list[int | None] = []
    real = polars_bounded.apply_all_bounded

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[5] if len(args) > 5 else kwargs.get("chunk_rows"))
        return real(*args, **kwargs)

    monkeypatch.setattr(polars_bounded, "apply_all_bounded", spy)
    return calls


@pytest.mark.parametrize("mode", ["apply", "preview"])
def test_a_version_above_the_in_memory_threshold_is_fixed_bounded_to_the_same_bytes(
    scanned: Scanned, bounded_calls: list[int | None], mode: str
) -> None:
    job = fix_job(scanned, mode, fix_id=uuid.UUID(int=7))
    in_memory = completed(fixes.run_fix_job(job, scanned.store, settings=Settings()))
    assert bounded_calls == []
    # 305 rows over a 100-row threshold: fixed 64 rows at a time (5 chunks)
    small = Settings(scan_in_memory_rows=100, scan_chunk_rows=64)
    bounded = completed(fixes.run_fix_job(job, scanned.store, settings=small))
    assert bounded_calls == [64]
    assert outputs(bounded) == outputs(in_memory)
    if mode == "apply":
        for uri, sha in (
            (bounded.object_uri, in_memory.object_sha256),
            (bounded.provenance_uri, in_memory.provenance_sha256),
        ):
            path = scanned.store.local_path(uri)
            assert hashlib.sha256(path.read_bytes()).hexdigest() == sha
        assert bounded.rows_removed == 5 and bounded.cells_changed > 300
    else:  # the same preview object: counts and the before/after sample
        preview = json.loads(scanned.store.read_bytes(bounded.preview_uri or ""))
        assert preview["rows_removed"] == 5 and len(preview["sample"]) == fixes.SAMPLE_ROWS
    # over the size threshold (DATRIX_SCAN_IN_MEMORY_MB) as well, with the scan's chunks
    tiny = Settings(scan_in_memory_mb=0.001)
    assert outputs(completed(fixes.run_fix_job(job, scanned.store, settings=tiny))) == outputs(
        in_memory
    )
    assert bounded_calls == [64, None]


def test_a_version_over_the_memory_budget_is_fixed_bounded_or_refused_naming_spark(
    scanned: Scanned, monkeypatch: pytest.MonkeyPatch, bounded_calls: list[int | None]
) -> None:
    job = fix_job(scanned, fix_id=uuid.UUID(int=7))
    in_memory = completed(fixes.run_fix_job(job, scanned.store, settings=Settings()))
    monkeypatch.setattr(fixes, "CHANGE_BYTES", 1 << 20)  # each change "needs" a MiB
    budget = Settings(job_memory_mb=64)
    # within the in-memory threshold, but over the budget in memory: bounded, same bytes
    assert outputs(completed(fixes.run_fix_job(job, scanned.store, settings=budget))) == (
        outputs(in_memory)
    )
    assert len(bounded_calls) == 1
    # a fix that needs the whole table (KNN imputation) is refused before it is read
    knn = fix_job(scanned, options={"impute": "knn"})
    result = failed(fixes.run_fix_job(knn, scanned.store, settings=budget))
    assert "over the job memory budget (DATRIX_JOB_MEMORY_MB=64)" in result.message
    assert "cells to change" in result.message and "cannot be fixed a chunk at a time" in (
        result.message
    )
    assert "impute.knn fits a model over every numeric column" in result.message
    assert "Spark engine" in result.message
    assert len(bounded_calls) == 1
    # no budget (0): in memory, no refusal
    completed(fixes.run_fix_job(knn, scanned.store, settings=Settings(job_memory_mb=0)))
    # above the in-memory threshold but within the budget: in memory, not refused
    above = Settings(scan_in_memory_rows=100, job_memory_mb=0)
    completed(fixes.run_fix_job(knn, scanned.store, settings=above))
    assert len(bounded_calls) == 1


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Scanned:
    """``datrix bench generate``'s table with its free-text comments (3,000 rows), scanned."""
    from datrix.jobs.bench.generate import generate

    folder = tmp_path_factory.mktemp("generated")
    generate(3000, folder, seed=5, free_text=True)
    store = LocalObjectStore(folder / "objects")
    uri, sha = store.put_file(TENANT, folder / "dirty.parquet", ".parquet")
    return Scanned(
        store, pl.read_parquet(folder / "dirty.parquet"), uri, sha, scan_of(store, uri, sha)
    )


def scan_of(store: LocalObjectStore, uri: str, sha: str) -> CompleteScan:
    request = JobRequested(
        **_at(),
        job_id=uuid.uuid4(),
        kind="scan",
        engine="polars",
        tenant=TENANT,
        dataset_id=uuid.uuid4(),
        version=1,
        object_uri=uri,
        object_sha256=sha,
        label_column=None,
        seed=0,
        attempt=1,
    )
    result = run_scan_job(request, store)
    assert isinstance(result, CompleteScan), result
    return result


def test_the_default_pii_fix_leaves_no_flagged_value_and_no_new_defect(generated: Scanned) -> None:
    """The generator's PII columns (e-mail, phone, card, IBAN, IP: the whole-value rule)
    are redacted whole, every value: span redaction left 1,200 of its 3,000 phone numbers
    (libphonenumber does not validate the generator's +1-722-...). Its comment column (PII
    inside ~5 % of the notes) keeps its text with the spans replaced. The re-scan reports
    no PII and no constant column for the redacted columns."""
    report = load_report(generated.scan.report_uri, generated.store)
    pii = {i.column: i for i in report.issues if i.type == "pii_detected"}
    whole = {"email", "phone_number", "credit_card_number", "iban", "ip_address"}
    assert whole | {"comment"} <= set(pii)
    job = fix_job(generated, issue_ids=tuple(i.id for i in pii.values()))
    result = completed(fixes.run_fix_job(job, generated.store))
    rules = {f["column"]: f["rule"] for f in json.loads(result.per_fix_json)}
    assert {c: rules[c] for c in whole} == dict.fromkeys(whole, "pii.redact")
    assert rules["comment"] == "pii.redact_spans"
    new = read(generated.store, result.object_uri)
    for column in whole:  # every value of the column, not only those the spans found
        values = new[column].drop_nulls()
        assert set(values.to_list()) == {"<REDACTED>"}, column
        assert new[column].null_count() == generated.table[column].null_count()
    before, after = generated.table["comment"], new["comment"]
    changed = [(b, a) for b, a in zip(before.to_list(), after.to_list(), strict=True) if b != a]
    assert 0 < len(changed) < 0.1 * len(before)  # only the notes with PII inside
    assert all(a == redact_spans(b) for b, a in changed)  # the text around kept
    assert sum(a.count("<EMAIL>") + a.count("<PHONE>") for _, a in changed) > 0

    rescan = scan_of(generated.store, result.object_uri, result.object_sha256)
    found = {(i.type, i.column) for i in rescan.issues}
    assert not {("pii_detected", c) for c in [*whole, "comment"]} & found
    assert not {("constant_column", c) for c in whole} & found
    # the generator's own constant columns are still reported
    assert {c for t, c in found if t == "constant_column"} == set(
        json.loads((generated.store.root.parent / "ground_truth.json").read_text())[
            "constant_columns"
        ]
    )


def test_the_default_pii_fix_follows_the_rule_that_found_it() -> None:
    from datrix.jobs.transforms.specs import Pii, spec_for_issue

    whole = "column 'phone' holds personal data: phone numbers [phone]: 9 (90.00% of rows); x"
    spans = (
        "column 'note' has personal data inside its values in 2 rows (5.00% of rows): "
        "e-mail addresses [email]: 2; redact the spans (<EMAIL>, <PHONE>, ...)"
    )
    assert spec_for_issue("pii_detected", "phone", [1], {}, whole) == Pii("phone", "redact")
    assert spec_for_issue("pii_detected", "note", [1], {}, spans) == Pii("note", "redact_spans")
    # another column's description, or none: spans (the contract's default)
    assert spec_for_issue("pii_detected", "note", [1], {}, whole).action == "redact_spans"  # type: ignore[union-attr]
    assert spec_for_issue("pii_detected", "phone", [1], {}) == Pii("phone", "redact_spans")
    # the user's option wins
    assert spec_for_issue("pii_detected", "phone", [1], {"pii": "redact_spans"}, whole) == Pii(
        "phone", "redact_spans"
    )


CRASH_SCRIPT = """
import pickle, sys
from pathlib import Path
from datrix.jobs import fixes
from datrix.streams.object_store import LocalObjectStore
job = pickle.loads(sys.stdin.buffer.read())
result = fixes.run_fix_job(job, LocalObjectStore(Path(sys.argv[1])))
print("returned", type(result).__name__)
"""


def test_the_crash_point_kills_after_the_objects_are_stored(scanned: Scanned) -> None:
    import pickle

    # a fix whose objects are not in the store yet (outliers nulled, not winsorised)
    job = fix_job(scanned, options={"outliers": "null"})
    stored = {p for p in scanned.store.root.rglob("*") if p.is_file()}
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATRIX_TEST_JOB_FAULT": "kill@fix-objects-written",
    }
    done = subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT, str(scanned.store.root)],
        input=pickle.dumps(job),
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    assert b"returned" not in done.stdout
    # killed after both objects were stored, whole (written aside, renamed into place)
    new = sorted(p.name for p in scanned.store.root.rglob("*") if p.is_file() and p not in stored)
    assert len(new) == 2 and not any(n.startswith(".incoming") for n in new), new
    assert sum(n.endswith(fixes.PROVENANCE_SUFFIX) for n in new) == 1
    # the job run again (after the crash) gives the same objects
    again = completed(fixes.run_fix_job(job, scanned.store))
    names = {Path(again.object_uri).name, Path(again.provenance_uri).name}
    assert names == set(new)


def test_the_per_fix_rule_is_the_rule_its_change_rows_record() -> None:
    """An impute of a text column records ``impute.mode`` (the median has no meaning
    there): the per-fix summary says so too, not the spec's default name."""
    from datrix.jobs.transforms.specs import Dedupe, Impute

    mine = pl.DataFrame(
        {
            "row_id": [1, 2],
            "column": ["city", "city"],
            "rule": ["impute.mode", "normalise.canonical+impute.mode"],
        }
    )
    assert fixes._rule_applied(Impute("city"), mine) == "impute.mode"
    assert fixes._rule_applied(Impute("city"), mine.clear()) == "impute.median"
    assert fixes._rule_applied(Dedupe("exact"), mine) == "dedupe.exact"
