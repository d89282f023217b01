"""``from datrix.async_client import AsyncDatrix``: the SDK's async client (the seeds'
import path), defined in ``datrix.sdk.async_client``."""

from datrix.sdk.async_client import AsyncDatrix

__all__ = ["AsyncDatrix"]
