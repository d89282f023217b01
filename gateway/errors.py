"""Errors the CLI turns into one readable line (exit 2 for bad input, 1 for failures)."""

from __future__ import annotations


class DatrixError(Exception):
    exit_code = 1


class UserInputError(DatrixError):
    exit_code = 2


class NotFound(DatrixError):
    exit_code = 2


class Unreachable(DatrixError):
    """A service the settings name did not answer within its deadline (the Kafka broker:
    DATRIX_KAFKA_TIMEOUT_S): exit 2, like a bad setting, since the fix is the address or
    starting the service, not a retry of the command."""

    exit_code = 2
