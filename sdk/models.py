"""What the API answers, as plain frozen dataclasses (the same for the sync and the async
client). Each is read from the API's JSON with ``from_api``; a member the server adds
later is ignored, one it leaves out is None."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DIMENSIONS = ("completeness", "consistency", "accuracy", "distribution", "label_quality")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _score_text(value: float | None) -> str:
    return "None" if value is None else f"{value:g}"


@dataclass(frozen=True, repr=False)
class QualityScore:
    """A scan's scores, 0-100: overall and per dimension (``label_quality`` None when no
    label column was named). ``repr``: ``QualityScore(overall=74, completeness=89, ...)``."""

    overall: float | None
    completeness: float | None
    consistency: float | None
    accuracy: float | None
    distribution: float | None
    label_quality: float | None = None
    scan_id: str | None = None
    dataset_id: str | None = None
    dataset_version: int | None = None
    scanned_at: str | None = None
    weights: dict[str, float] = field(default_factory=dict)
    overall_dimensions: list[str] = field(default_factory=list)

    @classmethod
    def from_api(cls, score: dict[str, Any], **about: Any) -> QualityScore:
        return cls(
            overall=_number(score.get("overall")),
            completeness=_number(score.get("completeness")),
            consistency=_number(score.get("consistency")),
            accuracy=_number(score.get("accuracy")),
            distribution=_number(score.get("distribution")),
            label_quality=_number(score.get("label_quality")),
            **about,
        )

    @classmethod
    def from_quality(cls, doc: dict[str, Any]) -> QualityScore:
        """From ``GET /v1/quality/{id}/score``."""
        return cls.from_api(
            doc["score"],
            scan_id=doc.get("scan_id"),
            dataset_id=doc.get("dataset_id"),
            dataset_version=doc.get("dataset_version"),
            scanned_at=doc.get("scanned_at"),
            weights=dict(doc.get("weights") or {}),
            overall_dimensions=list(doc.get("overall_dimensions") or []),
        )

    def __repr__(self) -> str:
        shown = ("overall", *DIMENSIONS)
        return (
            "QualityScore("
            + ", ".join(f"{name}={_score_text(getattr(self, name))}" for name in shown)
            + ")"
        )


@dataclass(frozen=True)
class Issue:
    """One issue of a scan. ``impact_pct`` is the API's ``impact_score``: the estimated
    impact on the data's quality, 0-100 (docs/quality.md), the number issues are ordered
    by; ``affected_pct`` is the share of rows affected (0-100)."""

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
    missingness: str | None = None
    scan_id: str | None = None

    @property
    def impact_pct(self) -> float:
        return self.impact_score

    @classmethod
    def from_api(cls, doc: dict[str, Any], scan_id: str | None = None) -> Issue:
        return cls(
            id=doc["id"],
            type=doc["type"],
            column=doc.get("column"),
            dimension=doc["dimension"],
            severity=doc["severity"],
            description=doc["description"],
            affected_count=int(doc["affected_count"]),
            affected_pct=float(doc["affected_pct"]),
            impact_score=float(doc["impact_score"]),
            fix_available=bool(doc["fix_available"]),
            missingness=doc.get("missingness"),
            scan_id=scan_id,
        )


@dataclass(frozen=True)
class CommandStatus:
    """What became of a command: ``queued`` (not processed yet), ``accepted``, or
    ``rejected`` with the ``reason``."""

    id: str
    status: str
    reason: str | None = None

    @property
    def done(self) -> bool:
        return self.status != "queued"

    @classmethod
    def from_api(cls, doc: dict[str, Any]) -> CommandStatus:
        return cls(id=doc["id"], status=doc["status"], reason=doc.get("reason"))


@dataclass(frozen=True)
class ScanStatus:
    """A scan's status: ``queued``, ``running``, ``completed`` (with ``score`` and
    ``issue_count``) or ``failed`` (with ``error``)."""

    scan_id: str
    dataset_id: str
    status: str
    dataset_version: int | None = None
    error: str | None = None
    score: QualityScore | None = None
    issue_count: dict[str, int] | None = None
    created_at: str | None = None
    completed_at: str | None = None

    @property
    def done(self) -> bool:
        return self.status in ("completed", "failed")

    @classmethod
    def from_api(cls, doc: dict[str, Any]) -> ScanStatus:
        score = doc.get("score")
        return cls(
            scan_id=doc["scan_id"],
            dataset_id=doc["dataset_id"],
            status=doc["status"],
            dataset_version=doc.get("dataset_version"),
            error=doc.get("error"),
            score=QualityScore.from_api(
                score,
                scan_id=doc["scan_id"],
                dataset_id=doc["dataset_id"],
                dataset_version=doc.get("dataset_version"),
                scanned_at=doc.get("completed_at"),
            )
            if isinstance(score, dict)
            else None,
            issue_count=doc.get("issue_count"),
            created_at=doc.get("created_at"),
            completed_at=doc.get("completed_at"),
        )


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset as the API lists it (``latest_scan_id`` and ``score``: from ``get``
    only; a listed dataset has them None)."""

    id: str
    name: str
    status: str
    latest_version: int
    row_count: int | None
    column_count: int | None
    size_bytes: int | None
    created_at: str
    updated_at: str
    latest_scan_id: str | None = None
    score: QualityScore | None = None

    @classmethod
    def from_api(cls, doc: dict[str, Any]) -> DatasetInfo:
        score = doc.get("score")
        return cls(
            id=doc["id"],
            name=doc["name"],
            status=doc["status"],
            latest_version=int(doc["latest_version"]),
            row_count=doc.get("row_count"),
            column_count=doc.get("column_count"),
            size_bytes=doc.get("size_bytes"),
            created_at=doc["created_at"],
            updated_at=doc["updated_at"],
            latest_scan_id=doc.get("latest_scan_id"),
            score=QualityScore.from_api(
                score, scan_id=doc.get("latest_scan_id"), dataset_id=doc["id"]
            )
            if isinstance(score, dict)
            else None,
        )


class DatasetFields:
    """The members of ``DatasetInfo`` as read-only attributes of a client's dataset
    object (``ds.id``, ``ds.name``...); ``info`` is what the API answered last."""

    info: DatasetInfo

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def status(self) -> str:
        return self.info.status

    @property
    def latest_version(self) -> int:
        return self.info.latest_version

    @property
    def row_count(self) -> int | None:
        return self.info.row_count

    @property
    def column_count(self) -> int | None:
        return self.info.column_count

    @property
    def size_bytes(self) -> int | None:
        return self.info.size_bytes

    @property
    def created_at(self) -> str:
        return self.info.created_at

    @property
    def updated_at(self) -> str:
        return self.info.updated_at

    @property
    def latest_scan_id(self) -> str | None:
        return self.info.latest_scan_id

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(id={self.id!r}, name={self.name!r}, "
            f"latest_version={self.latest_version}, status={self.status!r})"
        )
