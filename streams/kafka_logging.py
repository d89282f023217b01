"""librdkafka's own log lines through Python logging, one warning per broker outage.

Left alone, librdkafka writes every failed connection attempt to stderr
(``%3|...|FAIL|rdkafka#producer-1| ... Connection refused``), several a second per
client, for as long as the broker is away. ``kafka_logging_config()`` is merged into
every client's configuration by ``streams.kafka.client_config`` (the one place a client
is configured) and gives the client:

- ``logger``: an object whose ``log`` receives each librdkafka line and passes it to the
  ``datrix.kafka`` logger (connection failures at DEBUG: the outage warning below says
  it once);
- ``error_cb``: ``_ALL_BROKERS_DOWN`` marks the outage; other client errors are logged;
- ``stats_cb`` (every ``STATS_INTERVAL_MS``): after an outage, the first report with a
  broker in state ``UP`` marks its end.

The process keeps one ``BrokerHealth``: the first client that loses every broker logs
one warning ("Kafka broker ... unreachable ..."), the first one that reaches a broker
again logs one "reachable again" (also a warning, so whoever sees the first sees the
second); clients joining an outage already reported log nothing more.

confluent-kafka hands these callbacks over only while the client is polled (``poll``,
``flush``, ``consume``): a client nobody polls keeps its lines queued, never on stderr.
``wait_for_broker`` waits for a broker and polls meanwhile, and raises
``BrokerUnreachable`` (one readable line) when its deadline passes.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

log = logging.getLogger("datrix.kafka")

STATS_INTERVAL_MS = 1000
# librdkafka facilities of connection failures (their text is in the outage warning)
_CONNECTION_FACILITIES = frozenset({"FAIL", "CONNECT", "BROKERFAIL"})
_CONNECTION_ERRORS = frozenset({"_TRANSPORT", "_RESOLVE", "_ALL_BROKERS_DOWN"})
# Broker answers that mean "not yet, ask again" (a broker that has just started, a
# leader or coordinator moving): librdkafka retries them by itself and says so
# ("...: Coordinator load in progress: retrying"). Logged at INFO, not as warnings:
# they are not an outage, and a broker restart would otherwise add a warning of its own
# after the "reachable again" one.
_TRANSIENT_ANSWERS = (
    "Coordinator load in progress",
    "Not coordinator",
    "Leader not available",
    "Not leader for partition",
    "Not leader or follower",
)


class BrokerUnreachable(RuntimeError):
    """No Kafka broker answered within the deadline (``DATRIX_KAFKA_TIMEOUT_S``)."""


class BrokerHealth:
    """Whether this process currently sees a broker outage; logs its start and end once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._down: set[int] = set()  # ids of the clients that lost every broker
        self.outages = 0

    @property
    def down(self) -> bool:
        with self._lock:
            return bool(self._down)

    def lost(self, client: int, where: str, reason: str) -> None:
        with self._lock:
            first = not self._down
            self._down.add(client)
            if first:
                self.outages += 1
        if first:
            log.warning(
                "Kafka broker %s unreachable (%s); retrying", where or "(bootstrap)", reason
            )
        else:
            log.debug("Kafka client %s also lost %s (%s)", client, where, reason)

    def reached(self, client: int | None, where: str) -> None:
        """``client`` reached a broker (None: some client of this process did, e.g. a
        metadata request was answered)."""
        with self._lock:
            if not self._down or (client is not None and client not in self._down):
                return
            self._down.clear()  # one client through is the outage's end
        log.warning("Kafka broker %s reachable again", where or "(bootstrap)")


HEALTH = BrokerHealth()


class _ClientWatch:
    """The callbacks of one client (librdkafka's errors name no client, so each client
    gets its own)."""

    def __init__(self, health: BrokerHealth, where: str) -> None:
        self.health = health
        self.where = where
        self.last_failure = "no connection"
        self.lost = False

    # -- logger: confluent-kafka calls ``logger.log(level, "%s [%s] %s", fac, name, text)``
    def log(self, level: int, msg: str, *args: Any) -> None:
        facility = str(args[0]) if args else ""
        text = str(args[-1]) if args else msg
        if facility in _CONNECTION_FACILITIES:
            self.last_failure = _short(text)
            if not self.where:  # "[thrd:...]: 127.0.0.1:9092/bootstrap: Connect to ..."
                self.where = _broker(text)
            log.debug(msg, *args)
        elif level >= logging.WARNING and _transient(text):
            log.info(msg, *args)
        else:
            log.log(level, msg, *args)

    def error(self, err: Any) -> None:
        name = err.name()
        if name == "_ALL_BROKERS_DOWN":
            self.lost = True
            self.health.lost(id(self), self.where, self.last_failure)
        elif name in _CONNECTION_ERRORS:
            self.last_failure = _short(err.str())
            log.debug("Kafka client error: %s", err.str())
        elif err.fatal():
            log.error("Kafka client failed: %s", err.str())
        else:
            log.warning("Kafka client error: %s", err.str())

    def stats(self, report: str) -> None:
        if not self.lost:
            return  # the common case: nothing to parse
        try:
            brokers = json.loads(report).get("brokers", {})
        except ValueError:
            return
        if any(b.get("state") == "UP" for b in brokers.values()):
            self.lost = False
            self.health.reached(id(self), self.where)


def _transient(text: str) -> bool:
    """A line about an answer librdkafka retries by itself (``_TRANSIENT_ANSWERS``)."""
    return text.rstrip().endswith("retrying") and any(a in text for a in _TRANSIENT_ANSWERS)


def _broker(text: str) -> str:
    """The broker a librdkafka line is about: ``127.0.0.1:9092`` of
    ``[thrd:...]: 127.0.0.1:9092/bootstrap: ...``."""
    parts = text.split(": ")
    name = parts[1] if len(parts) > 2 and parts[0].startswith("[thrd:") else parts[0]
    return name.split("/", 1)[0].strip()


def _short(text: str) -> str:
    """``host:port/id: Connect to ipv4#...: Connection refused (after 0ms in state
    CONNECT)`` -> ``Connection refused``; the text itself when it has no such shape."""
    tail = text.rsplit(": ", 1)[-1]
    return tail.split(" (after ", 1)[0].strip() or text


def kafka_logging_config(
    bootstrap: str | None = None, health: BrokerHealth | None = None
) -> dict[str, Any]:
    """The logging part of a client's configuration; merge it into every client's dict.
    ``bootstrap``: named in the outage warning; ``health``: default the process's."""
    watch = _ClientWatch(health or HEALTH, bootstrap or "")
    return {
        "logger": watch,
        "error_cb": watch.error,
        "stats_cb": watch.stats,
        "statistics.interval.ms": STATS_INTERVAL_MS,
    }


def wait_for_broker(
    client: Any, bootstrap: str, timeout: float, health: BrokerHealth | None = None
) -> None:
    """Return once a broker of ``client`` (a Producer or AdminClient) answers a metadata
    request; poll the client meanwhile, so its outage warning is logged; past ``timeout``
    seconds raise ``BrokerUnreachable``."""
    from confluent_kafka import KafkaException

    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        try:
            client.list_topics(timeout=max(0.05, min(1.0, left)))
            client.poll(0)
            (health or HEALTH).reached(None, bootstrap)
            return
        except KafkaException:
            client.poll(0)
        if time.monotonic() >= deadline:
            raise BrokerUnreachable(
                f"no Kafka broker answered at {bootstrap} within {timeout:g} s "
                "(DATRIX_KAFKA_TIMEOUT_S); is it running, and is DATRIX_KAFKA_BOOTSTRAP right?"
            )
