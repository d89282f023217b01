"""The embedded command log: an append-only SQLite table (a Kafka topic in production)."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from datrix.streams.messages import Envelope, decode_envelope, encode_envelope

_SCHEMA = """
CREATE TABLE IF NOT EXISTS commands (
    position   INTEGER PRIMARY KEY AUTOINCREMENT,
    command_id TEXT NOT NULL UNIQUE,
    subject    TEXT NOT NULL,
    type       TEXT NOT NULL,
    envelope   BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS consumer_positions (
    consumer TEXT PRIMARY KEY,
    position INTEGER NOT NULL
);
"""


class SQLiteCommandLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()  # one connection per thread of this process
        with self._connect() as db:
            db.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """One connection per thread of a process, opened on first use (autocommit: each
        statement is its own durable transaction). Per thread: the HTTP API submits from
        its request threads while its intake thread processes (sqlite3 connections stay
        in the thread that made them)."""
        local = self._local
        if getattr(local, "db", None) is None or local.pid != os.getpid():
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            local.db, local.pid = db, os.getpid()
        yield local.db

    def append(self, envelope: Envelope) -> bool:
        with self._connect() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO commands (command_id, subject, type, envelope) "
                "VALUES (?, ?, ?, ?)",
                (str(envelope.id), envelope.subject, envelope.type, encode_envelope(envelope)),
            )
            return cur.rowcount == 1

    def read(self, after: int, limit: int) -> list[tuple[int, Envelope]]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT position, envelope FROM commands WHERE position > ? "
                "ORDER BY position LIMIT ?",
                (after, limit),
            ).fetchall()
        return [(int(pos), decode_envelope(blob)) for pos, blob in rows]

    def exists(self, command_id: str) -> bool:
        with self._connect() as db:
            row = db.execute(
                "SELECT 1 FROM commands WHERE command_id = ?", (command_id,)
            ).fetchone()
        return row is not None

    def head(self) -> int:
        with self._connect() as db:
            row = db.execute("SELECT COALESCE(MAX(position), 0) FROM commands").fetchone()
        return int(row[0])

    def get_position(self, consumer: str) -> int:
        with self._connect() as db:
            row = db.execute(
                "SELECT position FROM consumer_positions WHERE consumer = ?", (consumer,)
            ).fetchone()
        return int(row[0]) if row else 0

    def set_position(self, consumer: str, position: int) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO consumer_positions (consumer, position) VALUES (?, ?) "
                "ON CONFLICT (consumer) DO UPDATE SET position = excluded.position "
                "WHERE excluded.position > consumer_positions.position",
                (consumer, position),
            )
