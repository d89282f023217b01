"""PostgreSQL helpers shared by the event store (messaging layer) and the read models."""

from __future__ import annotations


def ensure_schema(url: str, schema: str) -> None:
    """CREATE SCHEMA IF NOT EXISTS is not safe under concurrency in PostgreSQL (two
    sessions can both try, one fails on the catalog's unique index): serialise it."""
    import psycopg

    with psycopg.connect(url, autocommit=False) as db:
        db.execute("SELECT pg_advisory_xact_lock(hashtext('datrix-create-schema'))")
        db.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
