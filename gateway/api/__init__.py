"""The HTTP API (``datrix serve``): ``create_app`` builds it."""

from datrix.gateway.api.app import create_app

__all__ = ["create_app"]
