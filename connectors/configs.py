"""Kafka Connect connector configurations (issue 13 item 1): what ``datrix connectors
add-file`` and ``add-postgres`` send to Connect's REST API (connectors/client.py).

Pure: checks the arguments and builds the ``{name, config}`` a ``POST /connectors`` takes;
every bad argument is a ``ConfigError`` naming it (the CLI: one line, exit 2).

- ``file_source``: Kafka's FileStreamSource reading a JSON-lines or CSV file, one record
  per line, the line verbatim as the record value (StringConverter: a JSON line lands as
  the JSON text, not wrapped in Connect's schema/payload envelope); no key.
- ``postgres_source``: Debezium's PostgreSQL connector on one table: logical decoding with
  ``pgoutput``, its own replication slot and publication, a heartbeat (so the slot's
  position advances while the table is quiet and the server can recycle WAL; the server
  bounds what a forgotten slot keeps with ``max_slot_wal_keep_size``), a snapshot mode,
  and JSON records with Connect's schema envelope around Debezium's
  ``before``/``after``/``op``/``source`` (the stream monitor's ``debezium`` format).

Topics: connectors create their target topics (``topic.creation.default.*``: the
partitions given, the broker's default replication). The deployment's own topics
(``DATRIX_TOPIC_PREFIX``, ``datrix.`` by default) are refused here, as the broker refuses
them to the Connect principal (deploy/local/up, docs/security.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import parse_qsl, unquote, urlsplit

FILE_SOURCE_CLASS: Final = "org.apache.kafka.connect.file.FileStreamSourceConnector"
POSTGRES_CLASS: Final = "io.debezium.connector.postgresql.PostgresConnector"
STRING_CONVERTER: Final = "org.apache.kafka.connect.storage.StringConverter"
JSON_CONVERTER: Final = "org.apache.kafka.connect.json.JsonConverter"

FILE_FORMATS: Final = ("jsonl", "csv")
_SUFFIX_FORMAT: Final = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv"}
# Debezium 3.x PostgreSQL snapshot modes (never is gone: no_data).
SNAPSHOT_MODES: Final = ("initial", "no_data", "initial_only", "always", "when_needed")
DEFAULT_HEARTBEAT_MS: Final = 10_000

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")
_SLOT = re.compile(r"^[a-z0-9_]{1,63}$")
_DSN_OPTIONS: Final = {"sslmode": "database.sslmode"}


class ConfigError(ValueError):
    """An argument a connector cannot be made from (the CLI: one line, exit 2)."""


@dataclass(frozen=True)
class Connector:
    """What ``POST /connectors`` takes."""

    name: str
    config: dict[str, str]

    def body(self) -> dict[str, object]:
        return {"name": self.name, "config": dict(self.config)}


def check_name(name: str) -> str:
    """A connector name: 1-128 characters of A-Z a-z 0-9 . _ -, starting with a letter or
    digit (it is part of REST paths and of the default slot and publication names)."""
    if not _NAME.match(name):
        raise ConfigError(
            f"a connector name is 1-128 characters of A-Z a-z 0-9 . _ - starting with a "
            f"letter or digit, got {name!r}"
        )
    return name


def check_topic(topic: str, option: str, reserved_prefix: str) -> str:
    """A topic name Kafka takes (A-Z a-z 0-9 . _ -, not . or ..) outside the deployment's
    own topics."""
    if not _TOPIC.match(topic) or topic in (".", ".."):
        raise ConfigError(
            f"{option} must be a Kafka topic name (1-200 characters of A-Z a-z 0-9 . _ -), "
            f"got {topic!r}"
        )
    if reserved_prefix and topic.startswith(reserved_prefix):
        raise ConfigError(
            f"{option} {topic!r} starts with {reserved_prefix!r}, the deployment's own topics "
            "(DATRIX_TOPIC_PREFIX): Kafka Connect may not write there"
        )
    return topic


def _partitions(partitions: int) -> str:
    if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
        raise ConfigError(f"--partitions must be a whole number >= 1, got {partitions!r}")
    return str(partitions)


def file_format(path: Path, given: str | None) -> str:
    """``jsonl`` or ``csv``: the one given, else from the file's suffix."""
    if given is not None:
        if given not in FILE_FORMATS:
            raise ConfigError(f"--format must be one of {', '.join(FILE_FORMATS)}, got {given!r}")
        return given
    found = _SUFFIX_FORMAT.get(path.suffix.lower())
    if found is None:
        raise ConfigError(
            f"cannot tell the format of {path.name!r} from its suffix "
            "(.jsonl, .ndjson, .json or .csv): give --format jsonl or --format csv"
        )
    return found


def file_source(
    path: Path,
    topic: str,
    *,
    name: str | None = None,
    fmt: str | None = None,
    partitions: int = 1,
    reserved_prefix: str = "datrix.",
) -> Connector:
    """A FileStreamSource of one JSON-lines or CSV file: every line a record on ``topic``
    (a CSV file's header line too: Connect's file source knows no header).

    The worker opens the file itself, so ``path`` must be where the worker can read it:
    the local stack's worker runs on this machine (an absolute path is sent)."""
    path = Path(path).expanduser().absolute()
    if not path.is_file():
        raise ConfigError(f"{path} is not a file (the Connect worker reads it from this path)")
    fmt = file_format(path, fmt)
    check_topic(topic, "--topic", reserved_prefix)
    name = check_name(name if name is not None else f"file-{topic}")
    if "\n" in str(path) or "\r" in str(path):
        raise ConfigError(f"the file's path has a line break: {str(path)!r}")
    return Connector(
        name,
        {
            "connector.class": FILE_SOURCE_CLASS,
            "tasks.max": "1",
            "file": str(path),
            "topic": topic,
            # one line, one record: the text as it is (no schema envelope around it)
            "key.converter": STRING_CONVERTER,
            "value.converter": STRING_CONVERTER,
            "topic.creation.default.partitions": _partitions(partitions),
            "topic.creation.default.replication.factor": "-1",
            # what the CLI recorded about the file (Connect keeps unknown keys)
            "datrix.format": fmt,
        },
    )


@dataclass(frozen=True)
class Dsn:
    """Where Debezium connects: host and port as the Connect worker reaches them."""

    host: str
    port: int
    database: str
    user: str
    password: str | None
    options: tuple[tuple[str, str], ...] = ()

    def safe(self) -> str:
        """The DSN without its password, for messages."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"


def parse_dsn(dsn: str) -> Dsn:
    """``postgresql://user[:password]@host[:port]/database[?sslmode=...]``."""
    usage = "--dsn must be postgresql://user[:password]@host[:port]/database"
    try:
        parts = urlsplit(dsn.strip())
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"{usage}: {exc}") from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError(f"{usage}, got a {parts.scheme or 'schemeless'} URL")
    database = unquote(parts.path.lstrip("/"))
    if not parts.hostname or not parts.username or not database or "/" in database:
        raise ConfigError(f"{usage} (host, user and database are needed)")
    options: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in _DSN_OPTIONS:
            raise ConfigError(f"--dsn: unknown option {key!r} (known: {', '.join(_DSN_OPTIONS)})")
        options.append((_DSN_OPTIONS[key], value))
    return Dsn(
        host=parts.hostname,
        port=port or 5432,
        database=database,
        user=unquote(parts.username),
        password=None if parts.password is None else unquote(parts.password),
        options=tuple(options),
    )


def split_table(table: str) -> tuple[str, str]:
    """``schema.table`` or ``table`` (schema ``public``): plain identifiers only."""
    schema, _, name = table.rpartition(".")
    schema = schema or "public"
    for part in (schema, name):
        if not _IDENT.match(part):
            raise ConfigError(
                f"TABLE must be [schema.]table of plain identifiers (A-Z a-z 0-9 _ $, not "
                f"starting with a digit), got {table!r}"
            )
    return schema, name


def _slot_name(text: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", text.lower())[:63]


def postgres_source(
    table: str,
    topic_prefix: str,
    dsn: str,
    *,
    name: str | None = None,
    slot: str | None = None,
    publication: str | None = None,
    create_publication: bool = True,
    snapshot: str = "initial",
    heartbeat_ms: int = DEFAULT_HEARTBEAT_MS,
    heartbeat_query: str | None = None,
    partitions: int = 1,
    schemas: bool = True,
    reserved_prefix: str = "datrix.",
) -> Connector:
    """Debezium's PostgreSQL connector streaming one table's inserts, updates and deletes
    to ``<topic_prefix>.<schema>.<table>`` (heartbeats to
    ``__debezium-heartbeat.<topic_prefix>``).

    ``create_publication``: Debezium creates the publication for this table
    (``publication.autocreate.mode=filtered``; the DSN's role must own the table);
    otherwise the publication must exist (the table's owner made it: ``CREATE PUBLICATION
    p FOR TABLE t``) and Debezium only reads it. The slot is kept when the connector is
    deleted (``slot.drop.on.stop=false``): drop it with ``pg_drop_replication_slot``."""
    schema, tab = split_table(table)
    check_topic(topic_prefix, "--topic-prefix", reserved_prefix)
    check_topic(f"{topic_prefix}.{schema}.{tab}", "the table's topic", reserved_prefix)
    name = check_name(name if name is not None else f"pg-{topic_prefix}")
    where = parse_dsn(dsn)
    slot = slot if slot is not None else _slot_name(f"datrix_{name}")
    if not _SLOT.match(slot):
        raise ConfigError(f"--slot must be 1-63 characters of a-z 0-9 _, got {slot!r}")
    publication = publication if publication is not None else _slot_name(f"datrix_{name}")
    if not _IDENT.match(publication):
        raise ConfigError(f"--publication must be a plain identifier, got {publication!r}")
    if snapshot not in SNAPSHOT_MODES:
        raise ConfigError(
            f"--snapshot must be one of {', '.join(SNAPSHOT_MODES)}, got {snapshot!r}"
        )
    if isinstance(heartbeat_ms, bool) or not isinstance(heartbeat_ms, int) or heartbeat_ms < 1:
        raise ConfigError(f"the heartbeat interval must be >= 1 ms, got {heartbeat_ms!r}")
    json = "true" if schemas else "false"
    config = {
        "connector.class": POSTGRES_CLASS,
        "tasks.max": "1",
        "database.hostname": where.host,
        "database.port": str(where.port),
        "database.dbname": where.database,
        "database.user": where.user,
        "topic.prefix": topic_prefix,
        "table.include.list": f"{re.escape(schema)}\\.{re.escape(tab)}",
        "plugin.name": "pgoutput",
        "slot.name": slot,
        "slot.drop.on.stop": "false",
        "publication.name": publication,
        "publication.autocreate.mode": "filtered" if create_publication else "disabled",
        "snapshot.mode": snapshot,
        "heartbeat.interval.ms": str(heartbeat_ms),
        "tombstones.on.delete": "true",
        # numbers as JSON numbers (precise: base64 bytes), so the monitor can summarise them
        "decimal.handling.mode": "double",
        "key.converter": JSON_CONVERTER,
        "value.converter": JSON_CONVERTER,
        "key.converter.schemas.enable": json,
        "value.converter.schemas.enable": json,
        "topic.creation.default.partitions": _partitions(partitions),
        "topic.creation.default.replication.factor": "-1",
    }
    if where.password is not None:
        config["database.password"] = where.password
    config.update(dict(where.options))
    if heartbeat_query is not None:
        if not heartbeat_query.strip():
            raise ConfigError("--heartbeat-query is empty")
        config["heartbeat.action.query"] = heartbeat_query
    return Connector(name, config)


def redacted(config: Mapping[str, str]) -> dict[str, str]:
    """A connector's config for display: passwords and secrets masked."""
    return {
        k: ("********" if re.search(r"password|secret|credential", k, re.I) else v)
        for k, v in config.items()
    }
