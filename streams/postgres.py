"""PostgreSQL helpers shared by the event store (messaging layer) and the read models."""

from __future__ import annotations

from typing import Any

from datrix.streams.settings import SettingsError


class PrivilegedRoleError(SettingsError):
    """A run-time connection logs in as a role that row-level security does not bind: a
    configuration error (exit 2), never retried as an outage."""


def refuse_privileged(db: Any, setting: str) -> None:
    """Datrix never runs as a superuser or a BYPASSRLS role (docs/security.md, "Who can
    read"): such a role ignores every row-level-security policy and can become any role."""
    row = db.execute(
        "SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    if row is not None and (row[1] or row[2]):
        what = "a superuser" if row[1] else "a BYPASSRLS role"
        raise PrivilegedRoleError(
            f"{setting} logs in as {row[0]!r}, {what}: Datrix runs as datrix_writer (workers, "
            "migrations) and datrix_reader (queries), see deploy/postgres-init.sql"
        )


def ensure_schema(url: str, schema: str) -> None:
    """CREATE SCHEMA IF NOT EXISTS is not safe under concurrency in PostgreSQL (two
    sessions can both try, one fails on the catalog's unique index): serialise it.
    Refuses a superuser (``refuse_privileged``): everything that writes starts here."""
    import psycopg

    with psycopg.connect(url, autocommit=False) as db:
        refuse_privileged(db, "DATRIX_DATABASE_URL")
        db.execute("SELECT pg_advisory_xact_lock(hashtext('datrix-create-schema'))")
        db.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
