"""The API's rate limiter choice and its Redis fallback (a real client against a port
that refuses connections; the shared bucket itself is tested against the real Redis in
tests/integration/test_api_kafka.py)."""

from __future__ import annotations

import logging
import socket
import time

import pytest

from datrix.gateway.api.ratelimit import RateLimiter
from datrix.gateway.api.redis_ratelimit import RedisRateLimiter, open_rate_limiter
from datrix.streams.settings import Settings


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_redis_is_used_when_configured() -> None:
    assert type(open_rate_limiter(Settings())) is RateLimiter
    assert type(open_rate_limiter(Settings(redis_url="redis://127.0.0.1:1/0"))) is (
        RedisRateLimiter
    )
    unlimited = open_rate_limiter(Settings(redis_url="redis://127.0.0.1:1/0", api_rate_limit=0))
    assert type(unlimited) is RateLimiter and unlimited.take("k") == 0


def test_buckets_are_namespaced_by_deployment() -> None:
    settings = Settings(redis_url="redis://x:1/0", topic_prefix="acme.", database_schema="s1")
    limiter = RedisRateLimiter(settings, 5)
    assert limiter.key("0123456789ab") == "datrix:acme.:s1:_api:ratelimit:0123456789ab"
    other = RedisRateLimiter(settings.replace(database_schema="s2"), 5)
    assert other.key("0123456789ab") != limiter.key("0123456789ab")


def test_redis_down_limits_in_process_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(redis_url=f"redis://127.0.0.1:{_closed_port()}/0")
    limiter = RedisRateLimiter(settings, 1)  # bursts of 2
    with caplog.at_level(logging.WARNING, logger="datrix.api"):
        started = time.monotonic()
        waits = [limiter.take("k") for _ in range(3)] + [limiter.take("other") for _ in range(20)]
        took = time.monotonic() - started
    assert waits[:2] == [0.0, 0.0] and 0 < waits[2] <= 1.0  # this process's bucket
    assert waits[3:5] == [0.0, 0.0]  # another key has its own
    warnings = [r for r in caplog.records if "Redis unavailable for rate limits" in r.message]
    assert len(warnings) == 1
    assert took < 2.0  # retried at most every RETRY_S: no connection attempt per request
