"""What the sync and async clients share above the protocol (``_core``): the lazy
issue query's refinements. Only iterating differs (``__iter__`` / ``__aiter__``)."""

from __future__ import annotations

from typing import Generic, Self, TypeVar

from datrix.sdk._core import IssueQuery

C = TypeVar("C")


class IssueRefinements(Generic[C]):
    """A lazy query of issues: refine it (``order_by``, ``where``, ``limit``), then
    iterate it (pages are fetched as needed). ``C``: the client that fetches them."""

    def __init__(self, client: C, query: IssueQuery) -> None:
        self._client = client
        self.query = query

    def _with(self, query: IssueQuery) -> Self:
        return type(self)(self._client, query)

    def order_by(self, order: str) -> Self:
        """``'impact'`` or ``'-impact'``: the highest impact first (the API's order)."""
        return self._with(self.query.order_by(order))

    def where(
        self,
        *,
        dimension: str | None = None,
        severity: str | None = None,
        column: str | None = None,
    ) -> Self:
        """Only issues of this dimension, severity and/or column."""
        chosen = {"dimension": dimension, "severity": severity, "column": column}
        return self._with(self.query.where(**{k: v for k, v in chosen.items() if v is not None}))

    def limit(self, n: int) -> Self:
        """At most ``n`` issues."""
        return self._with(self.query.limited(n))

    def page_size(self, n: int) -> Self:
        """Fetch ``n`` (1-100) per request."""
        return self._with(self.query.sized(n))
