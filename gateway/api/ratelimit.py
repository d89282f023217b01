"""Per-key request rates."""

from __future__ import annotations

import threading
import time


class RateLimiter:
    """Requests per second per API key, a token bucket each (bursts of twice the rate);
    in this process (each ``--workers`` process has its own). ``rate`` 0: no limit."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.burst = max(2 * rate, 1.0)
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, who: str) -> float:
        """0 when ``who`` may go on (one token taken), else the seconds until it may."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(who, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[who] = (tokens - 1, now)
                return 0.0
            self._buckets[who] = (tokens, now)
            return (1 - tokens) / self.rate
