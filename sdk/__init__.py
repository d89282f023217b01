"""The Python SDK of the Datrix API (a client over HTTP only: it imports nothing of the
server). ``from datrix import Datrix`` (sync) and ``from datrix.async_client import
AsyncDatrix`` (async) are its entry points; docs/sdk.md describes it."""

from datrix.sdk.client import Dataset, Datrix, Scan
from datrix.sdk.errors import (
    AuthenticationError,
    BadRequest,
    CommandRejected,
    Conflict,
    ConnectionFailed,
    DatrixError,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    ScanFailed,
    ScanNotCompleted,
    ScanSuperseded,
    ServerError,
    ServiceUnavailable,
    ValidationFailed,
    WaitTimeout,
)
from datrix.sdk.models import CommandStatus, DatasetInfo, Issue, QualityScore, ScanStatus

__all__ = [
    "AuthenticationError",
    "BadRequest",
    "CommandRejected",
    "CommandStatus",
    "Conflict",
    "ConnectionFailed",
    "Dataset",
    "DatasetInfo",
    "Datrix",
    "DatrixError",
    "Issue",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "QualityScore",
    "RateLimited",
    "Scan",
    "ScanFailed",
    "ScanNotCompleted",
    "ScanStatus",
    "ScanSuperseded",
    "ServerError",
    "ServiceUnavailable",
    "ValidationFailed",
    "WaitTimeout",
]
