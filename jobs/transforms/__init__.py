"""The transform library: fixes as pure functions, config in, table in, table and change
rows out, on Polars (``polars_transforms``) and on Spark (``spark_transforms``) with the same
results.

``specs`` holds the configs (engine-free), ``base`` the row identity, the change rows and
their merging, ``pii_tokens`` the engine-free hash / tokenise / detokenise of PII values,
``polars_bounded`` the Polars ``apply_all`` a chunk of rows at a time from a Parquet file
(versions above the in-memory threshold).
The engines are imported from their modules (``from datrix.jobs.transforms import
polars_transforms``), so importing this package loads neither.
"""

from datrix.jobs.transforms.base import (
    CHANGES_SCHEMA,
    ROW_ID,
    Applied,
    Secrets,
    merge_changes,
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

__all__ = [
    "CHANGES_SCHEMA",
    "ORDER",
    "ROW_ID",
    "Applied",
    "CoerceTypes",
    "Dedupe",
    "FixSpec",
    "Impute",
    "Normalise",
    "Outliers",
    "Pii",
    "Secrets",
    "Sentinels",
    "in_order",
    "merge_changes",
    "spec_for_issue",
    "with_row_ids",
    "write_table",
]
