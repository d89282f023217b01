"""The SDK's exceptions: every error the API answers is an RFC 9457 problem, raised as the
``DatrixError`` subclass of its status, carrying the problem's members.

    try:
        client.datasets.get("nope")
    except NotFound as exc:
        print(exc.status, exc.title, exc.detail)   # 404 Not found no dataset named ...
"""

from __future__ import annotations

from typing import Any


class DatrixError(Exception):
    """An error of the Datrix API or of this client. ``problem`` is the RFC 9457 body the
    server answered (empty when the error was raised here), ``status`` its HTTP status
    (None when there was no answer)."""

    status: int | None = None

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        problem: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.problem: dict[str, Any] = dict(problem or {})
        if status is not None:
            self.status = status
        self.detail: str = detail
        self.title: str | None = _text(self.problem.get("title"))
        self.type: str | None = _text(self.problem.get("type"))
        self.instance: str | None = _text(self.problem.get("instance"))
        errors = self.problem.get("errors")
        self.errors: list[dict[str, Any]] = errors if isinstance(errors, list) else []
        self.headers: dict[str, str] = dict(headers or {})

    def __str__(self) -> str:
        if self.status is None:
            return self.detail
        title = f" {self.title}" if self.title else ""
        return f"{self.status}{title}: {self.detail}"


class BadRequest(DatrixError):
    """400: the server cannot use the request (a bad cursor, an unknown weight...)."""

    status = 400


class AuthenticationError(DatrixError):
    """401: no API key, or one the server does not know (or revoked)."""

    status = 401


class PermissionDenied(DatrixError):
    """403: the key's role lacks the permission."""

    status = 403


class NotFound(DatrixError):
    """404: no such resource, or another tenant's (the API never says which)."""

    status = 404


class Conflict(DatrixError):
    """409: the resource is not in a state that allows this (a scan not completed yet)."""

    status = 409


class PayloadTooLarge(DatrixError):
    """413: the upload is larger than the server's limit (DATRIX_API_MAX_UPLOAD_MB)."""

    status = 413


class ValidationFailed(DatrixError):
    """422: the request (or the uploaded file) is not valid; ``errors`` says where."""

    status = 422


class RateLimited(DatrixError):
    """429: the key made too many requests; ``retry_after`` is the server's wait (s).
    Raised once the client's own retries are used up."""

    status = 429

    @property
    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers.get("retry-after"))


class ServerError(DatrixError):
    """500 (or another 5xx): the server failed; its log has the details."""

    status = 500


class ServiceUnavailable(DatrixError):
    """503: a service behind the API is unavailable (raised once retries are used up)."""

    status = 503


class ConnectionFailed(DatrixError):
    """No answer: the server could not be reached (or the connection broke)."""


class CommandRejected(DatrixError):
    """A command was processed and refused; ``reason`` says why."""

    def __init__(self, command_id: str, reason: str | None) -> None:
        super().__init__(f"command {command_id} was rejected: {reason or 'no reason given'}")
        self.command_id = command_id
        self.reason = reason


class ScanFailed(DatrixError):
    """The scan ended as failed; ``error`` is the server's reason."""

    def __init__(self, scan_id: str, error: str | None) -> None:
        super().__init__(f"scan {scan_id} failed: {error or 'no reason given'}")
        self.scan_id = scan_id
        self.error = error


class FixFailed(DatrixError):
    """The fix (its job, or the new version's re-scan) ended as failed; ``error`` says why."""

    def __init__(self, fix_id: str, error: str | None) -> None:
        super().__init__(f"fix {fix_id} failed: {error or 'no reason given'}")
        self.fix_id = fix_id
        self.error = error


class ScanNotCompleted(DatrixError):
    """The scan's results were asked for before it completed (``wait()`` first)."""


class ScanSuperseded(DatrixError):
    """The API lists the issues of a dataset's newest completed scan only, and a newer
    scan than the one asked about has completed since."""


class WaitTimeout(DatrixError, TimeoutError):
    """``wait(timeout=...)`` ran out before the command or scan finished."""


_BY_STATUS: dict[int, type[DatrixError]] = {
    cls.status: cls
    for cls in (
        BadRequest,
        AuthenticationError,
        PermissionDenied,
        NotFound,
        Conflict,
        PayloadTooLarge,
        ValidationFailed,
        RateLimited,
        ServerError,
        ServiceUnavailable,
    )
    if cls.status is not None
}


def error_for(status: int, problem: dict[str, Any], headers: dict[str, str]) -> DatrixError:
    """The exception of an error answer: the class of its status (another 4xx: the base
    class; another 5xx: ``ServerError``), with the problem's ``detail`` as its message."""
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else DatrixError)
    detail = _text(problem.get("detail")) or _text(problem.get("title")) or f"HTTP {status}"
    return cls(detail, status=status, problem=problem, headers=headers)


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (delta-seconds, or an HTTP date from now); None if
    absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        from datetime import UTC, datetime
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
