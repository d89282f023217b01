"""RFC 9457 problem details: every error the API answers is ``application/problem+json``
(``type``, ``title``, ``status``, ``detail``, ``instance``), validation errors, unknown
routes and wrong methods included; no stack trace ever leaves the server."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match

from datrix.gateway.errors import DatrixError, NotFound, Unreachable, UserInputError

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://api.datrix.ai/errors/"
log = logging.getLogger("datrix.api")

# status -> (type slug, title) for problems raised without their own
_DEFAULTS = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Missing or invalid API key"),
    403: ("forbidden", "Not allowed for this key's role"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    409: ("conflict", "Conflict"),
    413: ("too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("validation-error", "The request is not valid"),
    429: ("rate-limited", "Too many requests"),
    500: ("internal-error", "Internal server error"),
    503: ("unavailable", "Service unavailable"),
}


class Problem(BaseModel):
    """An RFC 9457 problem details object (extension members allowed)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="A URI naming the kind of problem")
    title: str = Field(description="A short summary of the kind of problem")
    status: int = Field(description="The HTTP status code")
    detail: str | None = Field(default=None, description="What went wrong, this time")
    instance: str | None = Field(default=None, description="The request path")
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="Validation errors: where (loc) and why (msg)"
    )


class ApiProblem(Exception):
    """Raised by a route: answered as a problem with this status."""

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        slug: str | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or "")
        default_slug, default_title = _DEFAULTS.get(status, ("error", "Error"))
        self.status = status
        self.detail = detail
        self.slug = slug or default_slug
        self.title = title or default_title
        self.headers = headers


def problem_response(
    request: Request,
    status: int,
    detail: str | None,
    *,
    slug: str | None = None,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
    extensions: dict[str, Any] | None = None,
) -> JSONResponse:
    default_slug, default_title = _DEFAULTS.get(status, ("error", "Error"))
    body = Problem(
        type=TYPE_BASE + (slug or default_slug),
        title=title or default_title,
        status=status,
        detail=detail,
        instance=request.url.path,
        errors=errors,
        **(extensions or {}),
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        media_type=MEDIA_TYPE,
        headers=headers,
    )


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Where and why, without echoing the input (it may be large, or a secret)."""
    return [
        {"loc": [str(part) for part in error.get("loc", ())], "msg": str(error.get("msg", ""))}
        for error in exc.errors()
    ]


def install(app: FastAPI, routes: Sequence[BaseRoute]) -> None:
    """Answer every error of ``app`` as a problem; a 405's ``Allow`` lists the methods of
    those of ``routes`` that match its path (the routes as declared: FastAPI wraps an
    included router into one opaque route of the app)."""

    @app.exception_handler(ApiProblem)
    async def _problem(request: Request, exc: ApiProblem) -> JSONResponse:
        return problem_response(
            request, exc.status, exc.detail, slug=exc.slug, title=exc.title, headers=exc.headers
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else None
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no resource at {request.url.path}"
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}"
            # every route of the path, not only the first that matched it (GET and DELETE
            # of one path are two routes)
            allowed: set[str] = set()
            for route in routes:
                if route.matches(request.scope)[0] != Match.NONE:
                    allowed |= getattr(route, "methods", None) or set()
            if allowed:
                headers["Allow"] = ", ".join(sorted(allowed))
        return problem_response(request, exc.status_code, detail, headers=headers or None)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        first = errors[0] if errors else None
        detail = (
            f"{'.'.join(first['loc'])}: {first['msg']}" if first else "the request is not valid"
        )
        return problem_response(request, 422, detail, errors=errors)

    # The errors of the use cases, by their status (Starlette picks the handler of the
    # nearest class in the exception's MRO). DatrixError last: a use case that cannot
    # answer in the state things are in (a scan not completed) is a conflict.
    for error, status in (
        (NotFound, 404),
        (UserInputError, 400),
        (Unreachable, 503),
        (DatrixError, 409),
    ):
        app.add_exception_handler(error, _answer_with(status))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return problem_response(
            request, 500, f"internal error ({type(exc).__name__}); the server log has details"
        )


def _answer_with(status: int) -> Any:
    """An exception handler answering ``status`` with the exception's message."""

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        return problem_response(request, status, str(exc))

    return handler
