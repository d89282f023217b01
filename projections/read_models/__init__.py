"""The core read models, one module each; ``CORE_READ_MODELS`` is what the projector
registers unless told otherwise (see ``projections/read_model.py``)."""

from __future__ import annotations

from datrix.projections.read_model import ReadModel
from datrix.projections.read_models import commands, datasets, fixes, quality, streams

CORE_READ_MODELS: tuple[ReadModel, ...] = (
    datasets.READ_MODEL,
    quality.READ_MODEL,
    fixes.READ_MODEL,
    streams.READ_MODEL,
    commands.READ_MODEL,
)

__all__ = ["CORE_READ_MODELS"]
