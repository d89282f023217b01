"""The fix job on Spark (``jobs/fixes.py``, ``job.engine == "spark"``) gives what it gives
on Polars: the same new version (rows, values, types), the same provenance rows and the
same preview, on the dirty table and scan report of ``tests/unit/test_fix_job.py``. Only
the bytes differ (two Parquet writers), and each engine's are deterministic.

Integration-marked: it runs on the tier's Spark cluster (the ``spark_on_cluster`` session)."""

from __future__ import annotations

import json
import uuid

import pytest

from datrix.jobs import fixes
from tests.unit.test_fix_job import Scanned, completed, fix_job, read, scanned

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("spark_on_cluster")]

__all__ = ["scanned"]  # the module-scoped fixture: a real scan of the dirty table


def test_spark_fixes_give_the_polars_version_provenance_and_preview(scanned: Scanned) -> None:
    fix_id = uuid.UUID(int=11)
    polars_apply = completed(fixes.run_fix_job(fix_job(scanned, fix_id=fix_id), scanned.store))
    spark_job = fix_job(scanned, fix_id=fix_id, engine="spark")
    spark_apply = completed(fixes.run_fix_job(spark_job, scanned.store))

    assert read(scanned.store, spark_apply.object_uri).equals(
        read(scanned.store, polars_apply.object_uri)
    )
    assert read(scanned.store, spark_apply.provenance_uri).equals(
        read(scanned.store, polars_apply.provenance_uri)
    )
    for field in ("rows", "columns", "schema_json", "cells_changed", "rows_removed"):
        assert getattr(spark_apply, field) == getattr(polars_apply, field), field
    assert json.loads(spark_apply.per_fix_json) == json.loads(polars_apply.per_fix_json)

    # Spark's part files become the same bytes on every run
    again = completed(fixes.run_fix_job(spark_job, scanned.store))
    assert (again.object_sha256, again.provenance_sha256) == (
        spark_apply.object_sha256,
        spark_apply.provenance_sha256,
    )

    def preview(engine: str) -> dict[str, object]:
        job = fix_job(scanned, "preview", fix_id=fix_id, engine=engine)
        result = completed(fixes.run_fix_job(job, scanned.store))
        document = json.loads(scanned.store.read_bytes(result.preview_uri or ""))
        assert isinstance(document, dict)
        return {k: v for k, v in document.items() if k not in ("engine", "dataset_id")}

    polars_preview, spark_preview = preview("polars"), preview("spark")
    assert spark_preview == polars_preview
    sample = spark_preview["sample"]
    assert isinstance(sample, list) and 0 < len(sample) <= fixes.SAMPLE_ROWS
    assert "email" in str(spark_preview["masked_columns"])
