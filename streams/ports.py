"""The ports the logic talks to. Embedded adapters use SQLite and a local folder; the
production adapters (Kafka, Postgres, S3 via fsspec) implement the same protocols."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol
from uuid import UUID

from streams.messages import Envelope


class CommandLog(Protocol):
    """Where commands wait for the processor, in order (a Kafka topic in production)."""

    def append(self, envelope: Envelope) -> bool:
        """Append once: False when a command with this id is already in the log."""
        ...

    def read(self, after: int, limit: int) -> Sequence[tuple[int, Envelope]]:
        """Commands at positions > after, oldest first, as (position, envelope)."""
        ...

    def get_position(self, consumer: str) -> int:
        """The last position a named consumer finished (0 when none)."""
        ...

    def set_position(self, consumer: str, position: int) -> None: ...


class EventLog(Protocol):
    """The ordered log of recorded events (the event store's notifications, or Kafka)."""

    def read(self, after: int, limit: int) -> Sequence[tuple[int, Envelope]]: ...

    def head(self) -> int:
        """The position of the newest event (0 when empty)."""
        ...


class ObjectStore(Protocol):
    """Immutable, content-addressed objects (dataset versions, reports)."""

    def put_file(self, tenant: str, source: Path, suffix: str) -> tuple[str, str]:
        """Store a file; return (uri, sha256). Storing the same bytes twice is a no-op."""
        ...

    def put_bytes(self, tenant: str, data: bytes, suffix: str) -> tuple[str, str]: ...

    def local_path(self, uri: str) -> Path:
        """A local file with the object's bytes (downloaded first for remote stores)."""
        ...

    def read_bytes(self, uri: str) -> bytes: ...


class AggregateLoader(Protocol):
    def load(self, aggregate_id: UUID) -> Sequence[Envelope]: ...
