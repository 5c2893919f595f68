"""Token-bucket rate limiting per key (a token's user or a client address), clock injected."""

from __future__ import annotations

import threading
from collections import OrderedDict

from engine.clock import Clock

__all__ = ["RateLimiter"]


class RateLimiter:
    """`burst` requests at once, refilled at `rate` per second; at most `max_keys` keys remembered."""

    def __init__(self, rate: float, burst: int, clock: Clock, max_keys: int = 10_000) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - at) * self.rate)

    def retry_after(self, key: str) -> float | None:
        """Seconds until key may go again, or None if it may go now (nothing is taken)."""
        with self._lock:
            tokens = self._level(key, self._clock.monotonic())
        return None if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def refund(self, key: str) -> None:
        """Give back the token a hit took (a login that succeeded costs nothing)."""
        now = self._clock.monotonic()
        with self._lock:
            if key in self._buckets:
                self._buckets[key] = (min(float(self.burst), self._level(key, now) + 1.0), now)

    def hit(self, key: str) -> float | None:
        """Take one token: None if allowed, else the seconds to wait (nothing is taken then)."""
        now = self._clock.monotonic()
        burst = float(self.burst)
        with self._lock:
            tokens, at = self._buckets.get(key, (burst, now))  # _level(), inlined: this runs per proxied request
            tokens = min(burst, tokens + (now - at) * self.rate)
            if tokens < 1.0:
                return (1.0 - tokens) / self.rate
            self._buckets[key] = (tokens - 1.0, now)
            self._buckets.move_to_end(key)
            while len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
            return None
