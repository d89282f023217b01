"""The ports the logic talks to. Embedded adapters use SQLite and a local folder; the
production adapters (Kafka, Postgres, S3 via obstore) implement the same protocols."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable
from uuid import UUID

from datrix.streams.messages import Envelope

# progress(phase, done, total): called by engines during long work; total may be 0 if unknown
ProgressFn = Callable[[str, int, int], None]


def no_progress(phase: str, done: int, total: int) -> None:
    """Default progress callback: ignore."""


@runtime_checkable
class PerJobProgress(Protocol):
    """A progress callback that tells jobs apart: a runtime that runs several jobs under
    one callback (the embedded ``drain``) reports each job's progress to
    ``for_job(its scan id)`` instead of the callback itself."""

    def __call__(self, phase: str, done: int, total: int) -> None: ...

    def for_job(self, scan_id: str) -> ProgressFn: ...


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
    """Immutable, content-addressed objects (dataset versions, reports), tenant-prefixed:
    ``datrix-object://<tenant>/sha256/ab/<sha><suffix>`` names the same bytes in every
    store. Adapters: ``LocalObjectStore`` (a folder) and ``S3ObjectStore``."""

    @property
    def location(self) -> str:
        """Where the objects are (a folder, or ``s3://bucket/prefix``): what a job
        process is given to open the same store."""
        ...

    def put_file(self, tenant: str, source: Path, suffix: str) -> tuple[str, str]:
        """Store a file; return (uri, sha256). Storing the same bytes twice is a no-op."""
        ...

    def put_bytes(self, tenant: str, data: bytes, suffix: str) -> tuple[str, str]: ...

    def read_bytes(self, uri: str) -> bytes: ...

    def local_copy(self, uri: str, folder: Path) -> Path:
        """A local file with the object's bytes: the stored file itself in a local store,
        a download into ``folder`` (the caller's scratch folder) from a remote one.
        FileNotFoundError when the store does not hold the object."""
        ...

    def exists(self, uri: str) -> bool: ...

    def remove(self, uri: str) -> None:
        """Delete an object nothing refers to (the caller checks)."""
        ...


class AggregateLoader(Protocol):
    def load(self, aggregate_id: UUID) -> Sequence[Envelope]: ...
