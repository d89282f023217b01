"""Errors the CLI turns into one readable line (exit 2 for bad input, 1 for failures)."""

from __future__ import annotations


class DatrixError(Exception):
    exit_code = 1


class UserInputError(DatrixError):
    exit_code = 2


class NotFound(DatrixError):
    exit_code = 2
