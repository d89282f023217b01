"""Datrix: a data-quality platform built as an event-sourced streaming system.

The repository's top-level folders are installed as the subpackages of this one
(``datrix.aggregates``, ``datrix.streams``, ``datrix.runtime``, ``datrix.projections``,
``datrix.jobs``, ``datrix.gateway``, ``datrix.connectors``, ``datrix.schemas``,
``datrix.sdk``); in a checkout they are reached through the symlinks beside this file.

``from datrix import Datrix`` is the Python SDK's client (``datrix.sdk``; ``Dataset`` its
dataset, as in the seeds' ``from datrix import Datrix, Dataset``), imported on first use
only, so a worker that imports ``datrix.streams`` never loads the SDK (httpx)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datrix.sdk import Dataset, Datrix

__all__ = ["Dataset", "Datrix"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from datrix import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'datrix' has no attribute {name!r}")
