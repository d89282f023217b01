"""Per-key request rates in Redis: one bucket per API key for every ``--workers`` process
and every API host (``DATRIX_REDIS_URL``).

The same token bucket as ``ratelimit.RateLimiter`` (``rate`` requests a second, bursts of
twice that), kept in a Redis hash and updated by one Lua script, so a take is atomic
across processes (a script runs alone on the server) and costs one round trip. The clock
is Redis's own (``TIME``), so hosts whose clocks differ share one bucket correctly. The
key is ``datrix:{topic prefix}:{schema}:_api:ratelimit:<key id>`` (``RedisKeys`` of
``streams/progress.py``: deployments sharing a Redis keep apart; ``_api`` cannot be a
tenant, tenants start with a letter or digit) and expires once the bucket would be full
again, so idle keys cost Redis nothing.

Redis is an accelerator, never a source of truth: when it cannot be reached the limiter
logs one warning and limits in this process (``RateLimiter``: each process then allows
the rate on its own) until Redis answers again, which it logs once too. While it is down,
Redis is tried again at most every ``RETRY_S`` seconds, so requests do not each wait for a
connection timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from datrix.gateway.api.ratelimit import RateLimiter
from datrix.streams.progress import RedisKeys
from datrix.streams.settings import Settings

log = logging.getLogger("datrix.api")
RETRY_S = 5.0

# KEYS[1]: the bucket; ARGV: rate (tokens per second), burst. Returns the seconds to wait
# as a string (a Lua number would come back truncated to an integer): "0" when a token
# was taken.
TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'ts',
  string.format('%.6f', now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return string.format('%.6f', wait)
"""


class RedisRateLimiter:
    """``RateLimiter``'s interface (``rate``, ``take(who)``), shared through Redis."""

    def __init__(self, settings: Settings, rate: float) -> None:
        assert settings.redis_url
        self.rate = rate
        self.burst = max(2 * rate, 1.0)
        self.url = settings.redis_url
        self.namespace = RedisKeys.of(settings).namespace
        self.local = RateLimiter(rate)  # while Redis is down
        self._client: Any = None
        self._script: Any = None
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._retry_at = 0.0

    def key(self, who: str) -> str:
        return f"{self.namespace}:_api:ratelimit:{who}"

    def _take_script(self) -> Any:
        if self._script is None:
            import redis

            self._client = redis.Redis.from_url(
                self.url, socket_connect_timeout=0.5, socket_timeout=0.5
            )
            self._script = self._client.register_script(TAKE)
        return self._script

    def take(self, who: str) -> float:
        """0 when ``who`` may go on (one token taken), else the seconds until it may."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            skip = self._down_since is not None and time.monotonic() < self._retry_at
        if not skip:
            try:
                wait = float(
                    self._take_script()(keys=[self.key(who)], args=[self.rate, self.burst])
                )
            except Exception as exc:
                self._failed(exc)
            else:
                self._answered()
                return wait
        return self.local.take(who)

    def _failed(self, exc: Exception) -> None:
        with self._lock:
            now = time.monotonic()
            self._retry_at = now + RETRY_S
            if self._down_since is None:
                self._down_since = now
                first = (str(exc).splitlines() or [""])[0]
                log.warning(
                    "Redis unavailable for rate limits (%s: %s); limiting in this process "
                    "until it answers again",
                    type(exc).__name__,
                    first[:200],
                )

    def _answered(self) -> None:
        with self._lock:
            if self._down_since is not None:
                self._down_since = None
                log.warning("Redis answers again: rate limits are shared through it")


def open_rate_limiter(settings: Settings) -> RateLimiter | RedisRateLimiter:
    """Redis's when ``DATRIX_REDIS_URL`` is set, else this process's own."""
    if settings.redis_url and settings.api_rate_limit > 0:
        return RedisRateLimiter(settings, settings.api_rate_limit)
    return RateLimiter(settings.api_rate_limit)
