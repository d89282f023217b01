"""The API's routers, one module per resource group. A new resource group is a module
with a ``router`` and one line here."""

from __future__ import annotations

from fastapi import APIRouter

from datrix.gateway.api.routes import (
    audit,
    commands,
    dataset_commands,
    datasets,
    events,
    fixes,
    health,
    metrics,
    quality,
    scans,
    streams,
)

ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    datasets.router,
    dataset_commands.router,
    quality.router,
    fixes.router,
    commands.router,
    scans.router,
    audit.router,
    events.router,
    streams.router,
    metrics.router,
)
