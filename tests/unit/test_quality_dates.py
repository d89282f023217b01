"""Dates are dates (jobs/quality/dates.py): typing text at scan time, placeholder dates,
future timestamps against the file's own latest time, impossible birth dates."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl

from datrix.jobs.quality.dates import (
    DAY_US,
    TemporalColumn,
    assess,
    is_birth,
    text_column,
    text_micros,
)
from datrix.jobs.quality.polars_engine import PolarsScanEngine
from datrix.jobs.report import ScanOptions, ScanReport


def micros(text: str) -> int:
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def counted(values: list[str]) -> pl.DataFrame:
    frame = pl.DataFrame({"value": values}).group_by("value").len(name="count")
    return frame.with_columns(pl.col("count").cast(pl.Int64)).sort("value")


def days(start: str, n: int, step: int = 1) -> list[str]:
    first = dt.date.fromisoformat(start)
    return [(first + dt.timedelta(days=i * step)).isoformat() for i in range(n)]


def test_text_is_parsed_to_utc_instants() -> None:
    values = pl.Series(
        [
            "1957-03-12",
            "2026-01-01T10:00:00+02:00",
            "2026-01-01T08:00:00Z",
            "2026-01-01 08:00",
            "12/03/1957",
            "not a date",
            None,
        ]
    )
    got, has_time, has_offset = text_micros(values)
    assert got.to_list() == [
        micros("1957-03-12T00:00:00"),
        micros("2026-01-01T08:00:00"),
        micros("2026-01-01T08:00:00"),
        micros("2026-01-01T08:00:00"),
        micros("1957-03-12T00:00:00"),  # day first where both read
        None,
        None,
    ]
    assert has_time and has_offset


def test_text_columns_are_typed_date_or_datetime_with_zone() -> None:
    assert text_column("d", counted(["2024-01-01", "2024-01-02"])).kind == "date"
    stamped = text_column("t", counted(["2024-01-01T10:00:00+02:00"]))
    assert (stamped.kind, stamped.timezone) == ("datetime", "UTC offsets")
    naive = text_column("t", counted(["2024-01-01T10:00:00"]))
    assert (naive.kind, naive.timezone) == ("datetime", None)


def test_placeholder_dates_spike_or_detached() -> None:
    births = days("1950-01-01", 3_000, 7)  # one birth a week, 1950..2007
    column = births + ["1900-01-01"] * 12 + ["9999-12-31"] + ["1970-01-01"]
    checks = assess([text_column("dob", counted(column))], len(column))
    placeholders = [f for f in checks.findings if f.type == "sentinel_values"]
    assert len(placeholders) == 1
    found = placeholders[0]
    assert sorted(found.keys.to_list()) == ["1900-01-01", "9999-12-31"]
    assert "1900-01-01 (12x), 9999-12-31 (1x)" in found.description
    # 1970-01-01 twice (one real birth that week): neither a spike nor detached
    assert checks.placeholder_cells == 13
    kind, extra = checks.profiles["dob"]
    assert (kind, extra["min"], extra["max"]) == ("date", "1900-01-01", "9999-12-31")
    assert extra["histogram"][0]["start"] == "1950-01-01"  # placeholders left out
    assert sum(b["count"] for b in extra["histogram"]) == len(births) + 1


def test_future_timestamps_are_an_isolated_tail_beyond_the_files_latest() -> None:
    stamps = [f"{d}T12:00:00+01:00" for d in days("2022-01-01", 900)]
    late = ["2031-05-01T09:00:00+01:00", "2047-01-01T00:00:00+01:00"]
    due = days("2024-01-01", 900)  # planned dates may lie ahead: never judged
    checks = assess(
        [text_column("created_at", counted(stamps + late)), text_column("due_date", counted(due))],
        len(stamps) + 2,
    )
    (future,) = checks.findings
    assert (future.type, future.column) == ("impossible_values", "created_at")
    assert sorted(future.keys.to_list()) == late
    assert "after 2024-06-18T11:00:00+00:00" in future.description
    # no tail, nothing in the future
    clean = assess([text_column("created_at", counted(stamps))], len(stamps))
    assert clean.findings == []


def test_birth_dates_after_the_files_latest_or_over_130_years_before() -> None:
    births = days("1940-01-01", 2_000, 11)
    odd = ["2025-03-01", "1880-05-05"]
    events = days("2020-01-01", 1_500)  # latest 2024-02-08
    columns = [
        text_column("date_of_birth", counted(births + odd)),
        text_column("order_date", counted(events)),
    ]
    (found,) = assess(columns, 3_502).findings
    assert found.column == "date_of_birth"
    assert sorted(found.keys.to_list()) == sorted(odd)
    assert "1 after 2024-02-08" in found.description
    assert "1 before 1894-02-08 (an age over 130)" in found.description
    assert is_birth("dob") and is_birth("BirthDate") and is_birth("date_of_birth")
    assert not is_birth("order_date")


def test_native_columns_keep_their_zone() -> None:
    values = pl.Series([dt.datetime(2026, 1, 1, 10, tzinfo=dt.UTC)]).dt.convert_time_zone(
        "Europe/Berlin"
    )
    frame = pl.DataFrame({"key": values, "micros": values.dt.epoch("us"), "count": [1]})
    checks = assess([TemporalColumn("seen", "datetime", "Europe/Berlin", False, frame)], 1)
    kind, extra = checks.profiles["seen"]
    assert kind == "datetime"
    assert extra["timezone"] == "Europe/Berlin"
    assert extra["min"] == "2026-01-01T10:00:00+00:00"
    assert int(frame["micros"][0]) % DAY_US == 10 * 3_600_000_000


def scan(tmp_path: Path, frame: pl.DataFrame) -> ScanReport:
    path = tmp_path / "data.parquet"
    frame.write_parquet(path)
    return PolarsScanEngine().scan(path, ScanOptions())


def test_engine_types_text_dates_and_keeps_the_format_check(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    births = [
        (dt.date(1950, 1, 1) + dt.timedelta(days=int(d))).isoformat()
        for d in rng.integers(0, 20_000, 400)
    ]
    births[:6] = ["1900-01-01"] * 6
    births[10:13] = ["03/04/1980", "12/11/1975", "01/02/1990"]  # another format
    frame = pl.DataFrame({"dob": births, "n": list(range(400))})
    report = scan(tmp_path, frame)
    profile = {p.name: p for p in report.column_profiles}["dob"]
    assert profile.type == "date"
    assert profile.extra["inferred_from"] == "string"
    issues = {(i.type, i.column): i for i in report.issues}
    assert report.affected_rows[issues[("sentinel_values", "dob")].id] == list(range(6))
    assert report.affected_rows[issues[("inconsistent_format", "dob")].id] == [10, 11, 12]


def test_engine_checks_native_dates(tmp_path: Path) -> None:
    base = dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
    stamps = [base + dt.timedelta(hours=7 * i) for i in range(600)]
    stamps[100] = dt.datetime(2039, 1, 1, tzinfo=dt.UTC)
    frame = pl.DataFrame(
        {
            "event_time": pl.Series(stamps).dt.convert_time_zone("America/New_York"),
            "day": [s.date() for s in stamps],
        }
    )
    report = scan(tmp_path, frame)
    profiles = {p.name: p for p in report.column_profiles}
    assert profiles["event_time"].type == "datetime"
    assert profiles["event_time"].extra["timezone"] == "America/New_York"
    assert profiles["day"].extra["max"] == "2039-01-01"
    issues = {(i.type, i.column): i for i in report.issues}
    for column in ("event_time", "day"):
        assert report.affected_rows[issues[("impossible_values", column)].id] == [100]
