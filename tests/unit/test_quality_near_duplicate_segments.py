"""Near duplicates in bounded memory (``find_near_duplicates_in``): a bounded ScanTable of
generated data with planted near copies, searched whole and in hash segments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from datrix.jobs.bench.generate import generate
from datrix.jobs.quality import near_duplicates as nd
from datrix.jobs.quality.detection import duplicate_rows
from datrix.jobs.quality.profiling import ColumnStats, profile_columns
from datrix.jobs.quality.rowset import RowSet
from datrix.jobs.quality.table import ScanTable

ROWS = 20_000


class Generated:
    """The generated table on disk, its profile, exact copies and planted pairs."""

    def __init__(self, out: Path) -> None:
        truth: dict[str, Any] = generate(ROWS, out, seed=23)
        self.path = out / "dirty.parquet"
        self.frame = pl.read_parquet(self.path)
        self.schema: dict[str, pl.DataType] = dict(self.frame.schema)
        self.rows, self.stats = profile_columns(self.frame.lazy(), self.schema)
        self.redundant = duplicate_rows(self.frame.lazy(), list(self.schema))
        self.pairs = {(int(a), int(b)) for a, b in truth["near_duplicates"]["pairs"]}

    def table(self) -> ScanTable:
        table = ScanTable.open(self.path, in_memory_mb=0, chunk_rows=5000)
        assert table.bounded
        return table

    def agreeing(self, column: str) -> set[tuple[int, int]]:
        """The planted pairs whose rows agree on ``column`` as compared (normalised)."""
        values = self.frame.select(nd.normalise(pl.col(column))).to_series().to_list()
        return {(a, b) for a, b in self.pairs if values[a] is not None and values[a] == values[b]}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    return Generated(tmp_path_factory.mktemp("segments"))


def test_one_segment_is_the_whole_table_search(data: Generated) -> None:
    whole = nd.find_near_duplicates(
        data.frame.lazy(), data.schema, data.stats, data.rows, data.redundant
    )
    found = nd.find_near_duplicates_in(
        data.table(),
        data.schema,
        data.stats,
        RowSet.from_indices(data.redundant, data.rows),
        segment_rows=data.rows,
    )
    assert found.pairs and found.pairs == whole.pairs
    assert (found.rows, found.redundant, found.candidates) == (
        whole.rows,
        whole.redundant,
        whole.candidates,
    )
    assert found.segments == 1 and found.partition_column is None


def test_segments_find_the_pairs_agreeing_on_the_partition_column(data: Generated) -> None:
    found = nd.find_near_duplicates_in(
        data.table(), data.schema, data.stats, data.redundant, segment_rows=data.rows // 2
    )
    # Two segments run every branch four did; each costs about a second, whatever its
    # rows (the u probabilities are estimated on U_SAMPLE random pairs per segment).
    assert found.segments == 2 and found.partition_column is not None
    pairs = set(found.pairs)
    assert found.pairs == sorted(pairs)
    assert all(0 <= a < b < data.rows for a, b in pairs)
    precision = len(pairs & data.pairs) / max(1, len(pairs))
    agreeing = data.agreeing(found.partition_column)
    assert len(agreeing) >= 0.5 * len(data.pairs)  # the rule picked a column copies keep
    recall = len(pairs & agreeing) / len(agreeing)
    assert precision >= 0.95 and recall >= 0.9, (precision, recall)
    assert found.rows == sorted({r for pair in pairs for r in pair})
    assert found.redundant == len({b for _, b in pairs})


def test_excluded_rows_are_never_in_a_pair(data: Generated) -> None:
    """The exact copies, and the originals of a third of the planted pairs, as a RowSet."""
    originals = sorted(a for a, _ in data.pairs)[::3]
    exclude = RowSet.from_indices([*data.redundant, *originals], data.rows)
    found = nd.find_near_duplicates_in(
        data.table(), data.schema, data.stats, exclude, segment_rows=data.rows // 2
    )
    assert found.segments == 2 and found.pairs
    in_pairs = np.unique(np.array(found.pairs, dtype=np.int64))
    assert not set(in_pairs.tolist()) & set(exclude.tolist())
    assert not {(a, b) for a, b in data.pairs if a in set(originals)} & set(found.pairs)


def test_partition_column_rule() -> None:
    """The most selective compared column with few nulls whose top value fits a segment."""

    def stats(name: str, nulls: int, distinct: int, top: int) -> ColumnStats:
        return ColumnStats(name, "string", nulls, distinct, top_values=[("x", top)])

    columns = [
        stats("city", 0, 50, 400),  # common values
        stats("email", 0, 9_900, 2),  # selective
        stats("phone", 3_000, 7_000, 1),  # more selective, but 30 % null
        stats("status", 0, 3, 6_000),  # its top value would overfill a segment
    ]
    used = [c.name for c in columns]
    assert nd.partition_column(columns, 10_000, used, 2_500) == "email"
    assert nd.partition_column(columns, 10_000, ["phone", "city"], 2_500) == "city"
    assert nd.partition_column(columns, 10_000, ["status"], 2_500) is None


def test_segment_of_a_value_ignores_case_and_spaces() -> None:
    frame = pl.DataFrame({"v": ["Ann Lee", " ann lee", "ANNLEE", None, None], "i": range(5)})
    segment = frame.select(nd.segment_expr("v", pl.String(), "i", 7)).to_series().to_list()
    assert len(set(segment[:3])) == 1
    assert segment[3:] == [3, 4]  # null: by row number
    even = pl.DataFrame({"v": [f"value {k}" for k in range(400)], "i": range(400)})
    spread = even.select(nd.segment_expr("v", pl.String(), "i", 4)).to_series()
    assert spread.n_unique() == 4  # every segment used, even and odd


def test_plan_search_is_the_plan_find_near_duplicates_in_follows(data: Generated) -> None:
    """Both engines plan with ``plan_search``: whole in memory or up to ``segment_rows``
    unique rows, else ceil(unique / segment_rows) segments on ``partition_column``."""
    unique = data.rows - len(set(data.redundant))
    in_memory = nd.plan_search(data.stats, data.rows, unique, False, 5_000)
    assert (in_memory.segments, in_memory.partition) == (1, None)
    assert nd.plan_search(data.stats, data.rows, unique, True, unique).segments == 1
    plan = nd.plan_search(data.stats, data.rows, unique, True, 5_000)
    assert plan.segments == -(-unique // 5_000)
    assert plan.partition == nd.partition_column(data.stats, data.rows, plan.used, 5_000)
    assert plan.used == nd.select_columns(data.stats, data.rows, unique)[0]
    found = nd.find_near_duplicates_in(
        data.table(), data.schema, data.stats, data.redundant, segment_rows=5_000
    )
    assert (found.segments, found.partition_column) == (plan.segments, plan.partition)
    assert nd.plan_search(data.stats, data.rows, 1, True, 5_000) == nd.SearchPlan([], [], ())


def test_segment_numbers_hash_the_type_polars_reads() -> None:
    """Spark hands timestamps over in microseconds, with a zone: cast to the type the
    Polars engine reads, the rows land in the segments ``segment_expr`` gives there."""
    stamps = pl.Series("t", [1_600_000_000_000_000_000 + k * 10**9 for k in range(50)])
    polars = pl.DataFrame({"t": stamps.cast(pl.Datetime("ns")), "i": np.arange(50)})
    polars = polars.with_columns(pl.when(pl.col("i") % 7 == 0).then(None).otherwise("t").alias("t"))
    spark = polars.with_columns(
        pl.col("t").dt.cast_time_unit("us").dt.replace_time_zone("UTC"), pl.col("i").cast(pl.Int64)
    )
    expected = polars.select(nd.segment_expr("t", pl.Datetime("ns"), "i", 5)).to_series()
    got = nd.segment_numbers(spark, "t", pl.Datetime("ns"), "i", 5)
    assert got.tolist() == expected.to_list()
    plain = spark.select(nd.segment_expr("t", spark.schema["t"], "i", 5)).to_series()
    assert plain.to_list() != expected.to_list()  # without the cast they would differ
    by_row = nd.segment_numbers(polars, None, None, "i", 5)
    assert by_row.tolist() == [k % 5 for k in range(50)]


def test_the_in_memory_rule_from_parquet_metadata(tmp_path: Path) -> None:
    """``fits_in_memory(parquet_size(path))`` is the decision ``ScanTable.open`` makes."""
    from datrix.jobs.quality.table import fits_in_memory, parquet_size

    path = tmp_path / "t.parquet"
    pl.DataFrame({"a": np.arange(1000), "b": ["x"] * 1000}).write_parquet(path)
    rows, decoded = parquet_size(path)
    assert rows == 1000 and decoded > 0
    for mb, max_rows in [(None, None), (0.0, None), (1.0, 999), (1.0, 1000)]:
        bounded = ScanTable.open(path, mb, None, max_rows).bounded
        assert bounded == (not fits_in_memory(rows, decoded, mb, max_rows))
    assert not fits_in_memory(rows, decoded, 0.0)
    assert fits_in_memory(rows, decoded, 1.0, 1000) and not fits_in_memory(rows, decoded, 1.0, 999)
