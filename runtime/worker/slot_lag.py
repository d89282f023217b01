"""A Debezium stream's replication slot lag, for the monitor (``WindowMetrics.slot_lag_bytes``).

How the monitor learns the slot and where its database is: from Kafka Connect itself
(``DATRIX_CONNECT_URL``), the one place that knows both. The Debezium PostgreSQL connector
whose ``topic.prefix`` starts the stream's topic (``<prefix>.<schema>.<table>``; the
longest such prefix when several do) names the slot (``slot.name``) and the database it
reads (``database.hostname``/``port``/``dbname``/``user``/``password``, the
``database.sslmode``). Nothing is stored on the stream: a connector re-created with another
slot is followed, and streams registered before this existed get their lag too.

The lag is ``pg_current_wal_lsn() - confirmed_flush_lsn`` of that slot, in bytes: the WAL
the server keeps for the connector and has not had confirmed (``pg_replication_slots`` is
readable by any role; the connector's own role is used). It is sampled every ``EVERY_S``
while the stream is monitored (also while no record arrives: a paused or stuck connector
sends none), and a window reports the largest sample taken from its start to its close,
so a lag that built up while the connector was stopped is seen by the first window after.

Failures never stop the monitor: no Connect URL, no matching connector, an unreachable
database or a dropped slot each make the lag ``None`` (one warning line per cause, a new
line when the cause changes); the connector is looked up again every ``LOOKUP_EVERY_S``.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("datrix.worker.monitor")

EVERY_S = 1.0  # a sample at most this often
LOOKUP_EVERY_S = 10.0  # the connector looked up again (none found, or the database failed)
KEEP = 3600  # samples kept at most (an hour at EVERY_S)
CONNECT_TIMEOUT_S = 3
POSTGRES_CLASS = "io.debezium.connector.postgresql.PostgresConnector"
QUERY = (
    "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint "
    "FROM pg_replication_slots WHERE slot_name = %s"
)


@dataclass(frozen=True)
class SlotSource:
    """A Debezium connector's slot and the database it is on."""

    connector: str
    slot: str
    conninfo: dict[str, str]

    @property
    def where(self) -> str:
        c = self.conninfo
        return f"slot {self.slot} on {c.get('host')}:{c.get('port')}/{c.get('dbname')}"


def slot_source(topic: str, configs: dict[str, dict[str, str]]) -> SlotSource | None:
    """The Debezium PostgreSQL connector (of ``configs``: name -> config) that writes
    ``topic``, as a ``SlotSource``; None when none does."""
    best: tuple[int, SlotSource] | None = None
    for name, config in sorted(configs.items()):
        if config.get("connector.class") != POSTGRES_CLASS:
            continue
        prefix = config.get("topic.prefix") or ""
        slot = config.get("slot.name") or "debezium"  # Debezium's default slot name
        if not prefix or not topic.startswith(prefix + "."):
            continue
        conninfo = {
            "host": config.get("database.hostname", ""),
            "port": config.get("database.port", "5432"),
            "dbname": config.get("database.dbname", ""),
            "user": config.get("database.user", ""),
        }
        if "database.password" in config:
            conninfo["password"] = config["database.password"]
        if "database.sslmode" in config:
            conninfo["sslmode"] = config["database.sslmode"]
        found = SlotSource(name, slot, conninfo)
        if best is None or len(prefix) > best[0]:
            best = (len(prefix), found)
    return None if best is None else best[1]


def connect_configs(url: str) -> dict[str, dict[str, str]]:
    """Every connector's config on the Connect worker at ``url``."""
    from datrix.connectors.client import ConnectClient

    with ConnectClient(url, timeout=CONNECT_TIMEOUT_S) as client:
        return {name: client.config(name) for name in client.names()}


class SlotLag:
    """Samples of one stream's slot lag (one monitor thread: not thread-safe)."""

    def __init__(
        self,
        topic: str,
        connect_url: str | None,
        stream_name: str,
        clock: Callable[[], float] = time.time,
        configs: Callable[[str], dict[str, dict[str, str]]] = connect_configs,
    ) -> None:
        self.topic = topic
        self.connect_url = connect_url
        self.name = stream_name
        self.clock = clock
        self.configs = configs
        self.source: SlotSource | None = None
        self.db: Any = None
        self.samples: deque[tuple[int, int]] = deque(maxlen=KEEP)  # (ms, bytes)
        self.next_sample = 0.0
        self.next_lookup = 0.0
        self.problem: str | None = None  # the last cause warned about

    def close(self) -> None:
        if self.db is not None:
            try:
                self.db.close()
            finally:
                self.db = None

    def _warn(self, problem: str) -> None:
        if problem != self.problem:
            self.problem = problem
            log.warning("stream %s: no replication slot lag: %s", self.name, problem)

    def sample(self) -> int | None:
        """Take a sample when one is due (else nothing): the lag in bytes, or None."""
        now = self.clock()
        if now < self.next_sample:
            return None
        self.next_sample = now + EVERY_S
        lag = self._read(now)
        if lag is not None:
            self.samples.append((int(now * 1000), lag))
        return lag

    def _read(self, now: float) -> int | None:
        if self.connect_url is None:
            self._warn("DATRIX_CONNECT_URL is not set (the slot is found through Kafka Connect)")
            return None
        if self.source is None:
            if now < self.next_lookup:
                return None
            self.next_lookup = now + LOOKUP_EVERY_S
            try:
                self.source = slot_source(self.topic, self.configs(self.connect_url))
            except Exception as exc:  # ConnectError, httpx errors: Connect down
                self._warn(f"Kafka Connect at {self.connect_url}: {exc}")
                return None
            if self.source is None:
                self._warn(
                    f"no Debezium PostgreSQL connector on {self.connect_url} has a topic.prefix "
                    f"that starts topic {self.topic}"
                )
                return None
        source = self.source
        try:
            if self.db is None:
                import psycopg
                from psycopg.conninfo import make_conninfo

                conninfo = make_conninfo(
                    "",
                    **source.conninfo,
                    connect_timeout=str(CONNECT_TIMEOUT_S),
                    application_name="datrix-monitor",
                )
                self.db = psycopg.connect(conninfo, autocommit=True)
            row = self.db.execute(QUERY, (source.slot,)).fetchone()
        except Exception as exc:  # psycopg.Error, OSError: the database is away
            self.close()
            self.source = None  # look the connector up again (its config may have changed)
            self.next_lookup = now + LOOKUP_EVERY_S
            self._warn(f"{source.where} (connector {source.connector}): {_one_line(exc)}")
            return None
        if row is None or row[0] is None:
            self._warn(f"{source.where} (connector {source.connector}) does not exist")
            self.source = None
            self.next_lookup = now + LOOKUP_EVERY_S
            return None
        if self.problem is not None:
            log.info("stream %s: replication slot lag read from %s", self.name, source.where)
            self.problem = None
        return max(0, int(row[0]))

    def worst(self, start_ms: int, until_ms: int) -> int | None:
        """The largest sample taken from ``start_ms`` to ``until_ms``; None when none was."""
        found = [lag for at, lag in self.samples if start_ms <= at <= until_ms]
        return max(found) if found else None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
