"""The API's request and answer bodies (pydantic), shared by the routers."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    computed_field,
    model_validator,
)


class Score(BaseModel):
    overall: float | None
    completeness: float | None
    consistency: float | None
    accuracy: float | None
    distribution: float | None
    label_quality: float | None = Field(description="None: no label column was named")


class Dataset(BaseModel):
    id: str
    name: str
    status: str
    latest_version: int
    row_count: int | None
    column_count: int | None
    size_bytes: int | None
    created_at: str
    updated_at: str


class DatasetDetail(Dataset):
    latest_scan_id: str | None = Field(description="The newest completed scan, if any")
    score: Score | None = Field(description="The newest completed scan's scores, if any")


class DatasetPage(BaseModel):
    items: list[Dataset]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")


class Version(BaseModel):
    version: int
    format: str
    row_count: int
    column_count: int
    size_bytes: int
    object_sha256: str
    source_sha256: str
    created_at: str
    cause: str = Field(default="upload", description="upload, fix, rollback or pipeline")
    fix_id: str | None = Field(default=None, description="The fix a fix or rollback is of")


class Versions(BaseModel):
    dataset_id: str
    items: list[Version]


class ColumnProfile(BaseModel):
    name: str
    type: str
    null_count: int
    null_pct: float
    distinct_count: int
    missingness: str | None
    stored_as: str | None = None


class Columns(BaseModel):
    dataset_id: str
    scan_id: str
    items: list[ColumnProfile]


class QualityScore(BaseModel):
    dataset_id: str
    scan_id: str
    dataset_version: int
    scanned_at: str | None
    score: Score
    weights: dict[str, float]
    overall_dimensions: list[str]


class Issue(BaseModel):
    id: str
    type: str
    column: str | None
    dimension: str
    severity: str
    description: str
    affected_count: int
    affected_pct: float
    impact_score: float
    fix_available: bool
    missingness: str | None


class IssuePage(BaseModel):
    dataset_id: str
    scan_id: str
    items: list[Issue]
    next_cursor: str | None


class HistoryEntry(BaseModel):
    scan_id: str
    dataset_version: int
    status: str
    score: Score
    created_at: str
    completed_at: str | None
    error: str | None


class History(BaseModel):
    dataset_id: str
    items: list[HistoryEntry]
    next_cursor: str | None


class CommandOutcome(BaseModel):
    id: str
    status: Literal["queued", "accepted", "rejected"] = Field(
        description="queued: submitted here and not processed yet"
    )
    reason: str | None


class Accepted(BaseModel):
    """A command handed in (202): poll ``status_url`` (also the Location header)."""

    command_id: str | None = Field(description="None: nothing to do (the same data again)")
    status: Literal["queued", "unchanged"] = "queued"
    status_url: str
    dataset_id: str | None = None
    scan_id: str | None = None

    @computed_field(description="A scan's progress as server-sent events (None: no scan)")
    def events_url(self) -> str | None:
        return events_url(self.scan_id) if self.scan_id else None


class ScanBody(BaseModel):
    """What to scan the dataset's latest version with."""

    model_config = {"extra": "forbid"}

    engine: Literal["auto", "polars", "spark"] = "auto"
    weights: dict[str, float] | None = Field(
        default=None,
        description="Weights of the overall score by dimension (completeness, consistency, "
        "accuracy, distribution, label_quality); left out: the defaults",
    )


class ScanStatus(BaseModel):
    scan_id: str
    dataset_id: str
    status: Literal["queued", "running", "completed", "failed"]
    dataset_version: int | None = None
    error: str | None = None
    score: Score | None = None
    issue_count: dict[str, int] | None = None
    created_at: str | None = None
    completed_at: str | None = None

    @computed_field(description="The scan's progress as server-sent events")
    def events_url(self) -> str:
        return events_url(self.scan_id)


def events_url(scan_id: str) -> str:
    """Where a scan's job streams its progress (``routes/events.py``): a job's id is its
    scan's id."""
    return f"/v1/jobs/{scan_id}/events"


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)


# -- fixes (routes/fixes.py) -------------------------------------------------------------------
class FixBody(BaseModel):
    """Which issues of which scan to fix, and how. Names in camelCase (``scanId``) or
    snake_case (``scan_id``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    scan_id: str | None = Field(
        default=None,
        alias="scanId",
        max_length=100,
        description="The scan whose issues to fix (its id or a unique prefix); default: "
        "the dataset's newest completed scan",
    )
    issue_ids: list[Annotated[str, StringConstraints(min_length=1, max_length=100)]] | None = Field(
        default=None,
        alias="issueIds",
        min_length=1,
        max_length=1000,
        description="The issues to fix (ids such as I001); left out: every fixable issue",
    )
    all: bool = Field(default=False, description="Every fixable issue (the default)")
    options: dict[str, Annotated[str, StringConstraints(max_length=200)]] | None = Field(
        default=None,
        max_length=50,
        description='How to fix, e.g. {"pii": "hash", "impute": "knn"} (docs/quality.md)',
    )

    @model_validator(mode="after")
    def _one_choice(self) -> FixBody:
        if self.all and self.issue_ids is not None:
            raise ValueError("issueIds and all: give one (all: every fixable issue)")
        return self


class FixAccepted(BaseModel):
    """A fix handed in (202): poll ``status_url`` (also the Location header)."""

    command_id: str
    status: Literal["queued"] = "queued"
    status_url: str
    dataset_id: str
    fix_id: str
    scan_id: str = Field(description="The scan whose issues are fixed")
    mode: Literal["preview", "apply"]
    links: dict[str, str] = Field(description="Related resources: status, dataset, scan")


class FixStatus(BaseModel):
    """A fix: ``queued``/``running`` until its job (and, for an apply, the new version's
    re-scan) ended; then ``previewed`` (preview: ``fixes``, ``preview``), ``completed``
    (apply: the new ``version``, ``score_before``/``score_after``, ``issues_gone``),
    ``rolled_back`` or ``failed`` (with ``error``)."""

    fix_id: str
    dataset_id: str
    scan_id: str | None = None
    mode: str
    status: str
    base_version: int | None = None
    version: int | None = Field(default=None, description="The new version (apply)")
    fixes: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Per fix: issue_id, type, column, rule, cells_changed, rows_removed",
    )
    cells_changed: int | None = None
    rows_removed: int | None = None
    rows_affected: int | None = None
    preview: dict[str, Any] | None = Field(
        default=None, description="A preview's sample of rows before and after"
    )
    score_before: dict[str, float | None] | None = None
    score_after: dict[str, float | None] | None = None
    issues_gone: list[Any] | None = None
    rescan_id: str | None = None
    error: str | None = None
    links: dict[str, str] = Field(default_factory=dict)


class RollbackAccepted(BaseModel):
    """A rollback done (202: the restored version is recorded; its re-scan runs): poll
    ``status_url``, the re-scan."""

    dataset_id: str
    fix_id: str
    version: int = Field(description="The new version: the content of restored_version")
    restored_version: int
    rescan_id: str | None
    status: Literal["queued"] = "queued"
    status_url: str
    links: dict[str, str]


class ProvenanceRow(BaseModel):
    row_id: int | None = Field(
        description="The row's 0-based position in the version the fix started from "
        "(None: a dropped column)"
    )
    column: str | None = Field(description="None: the row was removed (old_value: the row)")
    old_value: str | None
    new_value: str | None
    fix_id: str
    rule: str
    confidence: float = Field(description="0-1: 1.0 for deterministic rules")


class ProvenancePage(BaseModel):
    dataset_id: str
    version: int
    total: int = Field(description="How many rows match the filters in all")
    items: list[ProvenanceRow]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")
