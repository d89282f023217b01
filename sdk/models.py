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


# -- fixes -------------------------------------------------------------------------------------
def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class FixCount:
    """What one fix changes (or changed): the issue it fixes, the rule, the counts."""

    issue_id: str | None
    type: str | None
    column: str | None
    rule: str | None
    cells_changed: int
    rows_removed: int

    @classmethod
    def from_api(cls, doc: dict[str, Any]) -> FixCount:
        return cls(
            issue_id=doc.get("issue_id"),
            type=doc.get("type"),
            column=doc.get("column"),
            rule=doc.get("rule"),
            cells_changed=_int(doc.get("cells_changed")) or 0,
            rows_removed=_int(doc.get("rows_removed")) or 0,
        )


def _fix_counts(doc: dict[str, Any]) -> list[FixCount]:
    return [FixCount.from_api(f) for f in doc.get("fixes") or [] if isinstance(f, dict)]


@dataclass(frozen=True)
class FixPreview:
    """What ``scan.fix_all(dry_run=True)`` would change, nothing written: per fix
    (``fixes``), in all (``rows_affected``, ``cells_changed``, ``rows_removed``), and
    ``sample``, rows before and after."""

    fix_id: str
    dataset_id: str
    scan_id: str | None
    base_version: int | None
    fixes: list[FixCount]
    rows_affected: int
    cells_changed: int
    rows_removed: int
    sample: Any = None

    @classmethod
    def from_api(cls, doc: dict[str, Any]) -> FixPreview:
        preview = doc.get("preview")
        return cls(
            fix_id=doc["fix_id"],
            dataset_id=doc["dataset_id"],
            scan_id=doc.get("scan_id"),
            base_version=_int(doc.get("base_version")),
            fixes=_fix_counts(doc),
            rows_affected=_int(doc.get("rows_affected")) or 0,
            cells_changed=_int(doc.get("cells_changed")) or 0,
            rows_removed=_int(doc.get("rows_removed")) or 0,
            sample=preview.get("sample") if isinstance(preview, dict) else None,
        )


@dataclass(frozen=True)
class FixResult:
    """An applied fix (``scan.fix_all(confirm=True)``): the new ``version``, re-scanned
    (``rescan_id``); ``score_before`` and ``score_after`` per dimension, and the issues of
    the fixed scan the re-scan no longer reports (``issues_gone``)."""

    fix_id: str
    dataset_id: str
    scan_id: str | None
    version: int
    base_version: int | None
    fixes: list[FixCount]
    rows_affected: int
    cells_changed: int
    rows_removed: int
    score_before: QualityScore
    score_after: QualityScore
    issues_gone: list[Any]
    rescan_id: str | None

    @classmethod
    def from_api(cls, doc: dict[str, Any]) -> FixResult:
        return cls(
            fix_id=doc["fix_id"],
            dataset_id=doc["dataset_id"],
            scan_id=doc.get("scan_id"),
            version=int(doc["version"]),
            base_version=_int(doc.get("base_version")),
            fixes=_fix_counts(doc),
            rows_affected=_int(doc.get("rows_affected")) or 0,
            cells_changed=_int(doc.get("cells_changed")) or 0,
            rows_removed=_int(doc.get("rows_removed")) or 0,
            score_before=QualityScore.from_api(
                doc.get("score_before") or {}, scan_id=doc.get("scan_id")
            ),
            score_after=QualityScore.from_api(
                doc.get("score_after") or {}, scan_id=doc.get("rescan_id")
            ),
            issues_gone=list(doc.get("issues_gone") or []),
            rescan_id=doc.get("rescan_id"),
        )


@dataclass(frozen=True)
class Rollback:
    """A rolled-back fix: ``version`` (new) holds exactly ``restored_version``'s content;
    ``rescan_id`` is its automatic re-scan."""

    dataset_id: str
    fix_id: str
    version: int
    restored_version: int
    rescan_id: str | None

    @classmethod
    def from_api(cls, doc: dict[str, Any]) -> Rollback:
        return cls(
            dataset_id=doc["dataset_id"],
            fix_id=doc["fix_id"],
            version=int(doc["version"]),
            restored_version=int(doc["restored_version"]),
            rescan_id=doc.get("rescan_id"),
        )


@dataclass(frozen=True)
class VersionInfo:
    """One version of a dataset: ``checksum`` (SHA-256 of its content) and ``cause``
    (upload, fix, rollback, pipeline; ``fix_id`` for a fix or rollback)."""

    version: int
    checksum: str
    created_at: str
    cause: str
    fix_id: str | None = None
    row_count: int | None = None
    column_count: int | None = None
    size_bytes: int | None = None

    @classmethod
    def from_api(cls, doc: dict[str, Any]) -> VersionInfo:
        return cls(
            version=int(doc["version"]),
            checksum=str(doc.get("checksum") or doc.get("object_sha256") or ""),
            created_at=doc["created_at"],
            cause=str(doc.get("cause") or "upload"),
            fix_id=doc.get("fix_id"),
            row_count=_int(doc.get("row_count")),
            column_count=_int(doc.get("column_count")),
            size_bytes=_int(doc.get("size_bytes")),
        )


@dataclass(frozen=True)
class ProvenanceEntry:
    """One changed cell of a fixed version: its row (0-based in the version the fix
    started from), column (None: the row was removed), old and new value (text), the
    fix, the rule and its confidence (0-1)."""

    row_id: int | None
    column: str | None
    old_value: str | None
    new_value: str | None
    fix_id: str
    rule: str
    confidence: float

    @classmethod
    def from_api(cls, doc: dict[str, Any]) -> ProvenanceEntry:
        return cls(
            row_id=_int(doc.get("row_id")),
            column=doc.get("column"),
            old_value=doc.get("old_value"),
            new_value=doc.get("new_value"),
            fix_id=doc["fix_id"],
            rule=doc["rule"],
            confidence=float(doc["confidence"]),
        )
