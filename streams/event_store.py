"""The event store on the ``eventsourcing`` library's process recorder.

Why a *process* recorder: it writes the new events and the tracking record of the command
that caused them in one transaction, and refuses a tracking position it has already
stored (IntegrityError), storing none of that command's events. A plain application
recorder silently drops the tracking record, so redelivery would apply a command twice.
The same recorder's unique (originator_id, originator_version) gives optimistic
concurrency, and its notification ids are the global event order the relay and projectors
read (the outbox).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from uuid import UUID

from eventsourcing.persistence import IntegrityError, ProcessRecorder, StoredEvent, Tracking

from datrix.streams.messages import Envelope, decode_envelope, encode_envelope
from datrix.streams.postgres import ensure_schema

__all__ = ["EventStore", "IntegrityError", "sqlite_event_store"]


class EventStore:
    def __init__(self, recorder: ProcessRecorder) -> None:
        self.recorder = recorder

    def load(self, aggregate_id: UUID) -> list[Envelope]:
        return [decode_envelope(s.state) for s in self.recorder.select_events(aggregate_id)]

    def load_many(self, aggregate_ids: Sequence[UUID]) -> dict[UUID, list[Envelope]]:
        """Histories of many aggregates: one query on Postgres, one per id elsewhere."""
        wanted = list(dict.fromkeys(aggregate_ids))
        found: dict[UUID, list[Envelope]] = {i: [] for i in wanted}
        if not wanted:
            return found
        datastore = getattr(self.recorder, "datastore", None)
        if type(self.recorder).__name__ == "PostgresProcessRecorder" and datastore is not None:
            from psycopg.sql import SQL, Identifier

            statement = SQL(
                "SELECT originator_id, state FROM {schema}.{table} "
                "WHERE originator_id = ANY(%s) ORDER BY originator_id, originator_version"
            ).format(
                schema=Identifier(datastore.schema),
                table=Identifier(self.recorder.events_table_name),  # type: ignore[attr-defined]
            )
            with datastore.transaction(commit=False) as curs:
                curs.execute(statement, (wanted,))
                for row in curs.fetchall():
                    found[row["originator_id"]].append(decode_envelope(row["state"]))
            return found
        for aggregate_id in wanted:
            found[aggregate_id] = self.load(aggregate_id)
        return found

    def record(self, envelopes: Sequence[Envelope], tracking: Tracking) -> None:
        """Store events and the tracking record atomically; IntegrityError if either the
        tracking position was already recorded or an aggregate version is taken."""
        stored = [
            StoredEvent(
                originator_id=UUID(env.subject),
                originator_version=env.sequence or 0,
                topic=env.type,
                state=encode_envelope(env),
            )
            for env in envelopes
        ]
        self.recorder.insert_events(stored, tracking=tracking)

    def position(self, application_name: str) -> int:
        return self.recorder.max_tracking_id(application_name) or 0

    def has_tracking(self, application_name: str, notification_id: int) -> bool:
        return self.recorder.has_tracking_id(application_name, notification_id)

    # EventLog port: the event store's notification log is the outbox.
    def read(self, after: int, limit: int) -> list[tuple[int, Envelope]]:
        notes = self.recorder.select_notifications(start=after + 1, limit=limit)
        return [(n.id, decode_envelope(n.state)) for n in notes]

    def head(self) -> int:
        return self.recorder.max_notification_id() or 0


def sqlite_event_store(path: Path) -> EventStore:
    from eventsourcing.sqlite import SQLiteDatastore, SQLiteProcessRecorder

    datastore = SQLiteDatastore(str(path), lock_timeout=30, single_row_tracking=True)
    recorder = SQLiteProcessRecorder(datastore, events_table_name="stored_events")
    try:
        recorder.create_table()
    except IntegrityError:
        # A concurrent twin created the tables and recorded the library's tracking
        # migration between our check and our insert (the embedded runtime serialises
        # set-up under a file lock; this covers other callers): look again.
        recorder = SQLiteProcessRecorder(datastore, events_table_name="stored_events")
        recorder.create_table()
    return EventStore(recorder)


def postgres_event_store(url: str, schema: str = "public") -> EventStore:
    """The production system of record: eventsourcing's Postgres process recorder."""
    from urllib.parse import unquote, urlparse

    import psycopg
    from eventsourcing.postgres import PostgresDatastore, PostgresProcessRecorder

    ensure_schema(url, schema)

    parts = urlparse(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"DATRIX_DATABASE_URL must be a postgresql:// URL, got {url!r}")
    datastore = PostgresDatastore(
        dbname=(parts.path or "/datrix").lstrip("/"),
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=unquote(parts.username or "datrix"),
        password=unquote(parts.password or ""),
        pool_size=4,
        max_overflow=4,
        schema=schema,
        single_row_tracking=True,
    )
    recorder = PostgresProcessRecorder(datastore, events_table_name="stored_events")
    with psycopg.connect(url, autocommit=False) as db:
        # serialise DDL: two workers starting at once on a new schema would race
        db.execute("SELECT pg_advisory_xact_lock(hashtext('datrix-event-store-ddl'))")
        recorder.create_table()
    return EventStore(recorder)
