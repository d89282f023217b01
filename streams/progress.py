"""Redis: live job progress (pub/sub), a scan-summary cache, per-tenant counters.

Redis is an accelerator, never a source of truth: when it is missing or down, every call
here logs one warning and degrades (no live progress, no cache), and nothing is lost —
the read models in Postgres still answer.

Every key and channel is namespaced by its deployment (``RedisKeys.of(settings)``:
``datrix:{DATRIX_TOPIC_PREFIX}:{DATRIX_DATABASE_SCHEMA}:{tenant}:...``), like the topics
(``topics_for``) and the Postgres schema, so deployments sharing one Redis never read or
bump each other's progress, cached summaries or counters. The clients take the whole
``Settings``, not a URL, so no caller can build one without its deployment's namespace.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from datrix.streams.messages import Envelope
from datrix.streams.ports import ProgressFn, no_progress
from datrix.streams.settings import Settings

log = logging.getLogger("datrix.redis")
SUMMARY_TTL_S = 3600


@dataclass(frozen=True)
class RedisKeys:
    """The names one deployment uses in Redis, all under ``namespace``."""

    namespace: str

    @classmethod
    def of(cls, settings: Settings) -> RedisKeys:
        """``datrix:{topic prefix}:{schema}``: the ``:`` cannot occur in a Kafka topic
        name, so two deployments with different topics or schemas never share a name."""
        return cls(f"datrix:{settings.topic_prefix}:{settings.database_schema}")

    def progress_channel(self, tenant: str, scan_id: str) -> str:
        return f"{self.namespace}:{tenant}:progress:{scan_id}"

    def summary(self, tenant: str, scan_id: str) -> str:
        return f"{self.namespace}:{tenant}:scan-summary:{scan_id}"

    def counters(self, tenant: str) -> str:
        return f"{self.namespace}:{tenant}:counters"


class _Redis:
    """A lazily connected client that turns outages into a warning and a no-op."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.redis_url
        self.keys = RedisKeys.of(settings)
        self._client: Any = None
        self._warned_at = 0.0

    def client(self) -> Any:
        if not self.url:
            return None
        if self._client is None:
            import redis

            self._client = redis.Redis.from_url(
                self.url, socket_connect_timeout=1, socket_timeout=2
            )
        return self._client

    def call(self, what: str, fn: Callable[[Any], Any]) -> Any:
        client = self.client()
        if client is None:
            return None
        try:
            return fn(client)
        except Exception as exc:
            now = time.monotonic()
            if now - self._warned_at > 30:
                log.warning("Redis unavailable (%s: %s); continuing without it", what, exc)
                self._warned_at = now
            return None


class ProgressPublisher(_Redis):
    def for_scan(self, tenant: str, scan_id: str) -> ProgressFn:
        if not self.url:
            return no_progress
        channel = self.keys.progress_channel(tenant, scan_id)
        last = [0.0]

        def publish(phase: str, done: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] < 0.1 and done != total:
                return  # at most ~10 updates a second
            last[0] = now
            body = json.dumps({"phase": phase, "done": done, "total": total})
            self.call("publish progress", lambda r: r.publish(channel, body))

        return publish


class ProgressSubscriber(_Redis):
    def listen(self, tenant: str, scan_id: str) -> Iterator[tuple[str, int, int]] | None:
        """Yield progress updates (non-blocking poll); None when Redis is unavailable."""
        pubsub = self.call("subscribe", lambda r: r.pubsub(ignore_subscribe_messages=True))
        if pubsub is None:
            return None
        ok = self.call(
            "subscribe", lambda r: pubsub.subscribe(self.keys.progress_channel(tenant, scan_id))
        )
        if ok is None and not pubsub.subscribed:
            return None

        def updates() -> Iterator[tuple[str, int, int]]:
            while True:
                try:
                    msg = pubsub.get_message(timeout=0.05)
                except Exception:
                    return
                if msg is None:
                    yield ("", -1, -1)
                    continue
                data = json.loads(msg["data"])
                yield (data["phase"], int(data["done"]), int(data["total"]))

        return updates()


class SummaryCache(_Redis):
    """Scan summaries cached for the query side; the projector invalidates on events."""

    def get(self, tenant: str, scan_id: str) -> dict[str, Any] | None:
        raw = self.call("cache get", lambda r: r.get(self.keys.summary(tenant, scan_id)))
        return json.loads(raw) if raw else None

    def put(self, tenant: str, scan_id: str, summary: dict[str, Any]) -> None:
        body = json.dumps(summary, default=str)
        self.call(
            "cache put", lambda r: r.set(self.keys.summary(tenant, scan_id), body, ex=SUMMARY_TTL_S)
        )

    def invalidate(self, envelopes: Iterable[Envelope]) -> None:
        batch = list(envelopes)
        keys = {
            self.keys.summary(e.tenant, e.subject)
            for e in batch
            if e.type.startswith("datrix.scan.")
        }
        counts: dict[str, int] = {}
        for e in batch:
            counts[e.tenant] = counts.get(e.tenant, 0) + 1

        def apply(r: Any) -> None:
            pipe = r.pipeline(transaction=False)
            if keys:
                pipe.delete(*keys)
            for tenant, n in counts.items():
                pipe.hincrby(self.keys.counters(tenant), "events_projected", n)
            pipe.execute()

        if batch:
            self.call("cache invalidate", apply)


class TenantCounters(_Redis):
    def incr(self, tenant: str, counter: str, by: int = 1) -> None:
        self.call("counter", lambda r: r.hincrby(self.keys.counters(tenant), counter, by))

    def read(self, tenant: str) -> dict[str, int]:
        raw = self.call("counters", lambda r: r.hgetall(self.keys.counters(tenant))) or {}
        return {k.decode(): int(v) for k, v in raw.items()}
