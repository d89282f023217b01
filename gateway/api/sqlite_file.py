"""A private SQLite file of the API's own (keys, idempotent answers) under DATRIX_HOME."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from datrix.streams.private_state import open_home, open_private


class PrivateSqliteFile:
    """``path`` is created 0600 (in a 0700 home) before SQLite opens it; WAL mode (kept in
    the file) and ``schema`` are set once, here, not on every connection."""

    def __init__(self, path: Path, schema: str) -> None:
        self.path = path
        open_home(path.parent)  # umask 077, the home 0700
        if not path.exists():
            os.close(open_private(path))
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(schema)
        finally:
            db.close()

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            yield db
        finally:
            db.close()
