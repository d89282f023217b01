"""The API's request and answer bodies (pydantic), shared by the routers."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, computed_field


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
