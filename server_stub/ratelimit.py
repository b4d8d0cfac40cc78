"""Per-client rate limits: a token bucket per key (a device's bearer token, or a client address).

Each key may make ``burst`` requests at once and ``per_second`` on average; past that
:meth:`RateLimiter.check` returns the seconds to wait, which the HTTP layer sends as ``429`` with
``Retry-After``. At most ``max_keys`` buckets are kept (the least recently used go first), so a flood of
made-up tokens cannot grow memory without bound.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["RateLimiter"]


class RateLimiter:
    """Token buckets keyed by client.

    Args:
        per_second: refill rate r > 0 (requests per second).
        burst: bucket size b ≥ 1.
        max_keys: how many clients are tracked at once.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(self, *, per_second: float, burst: int, max_keys: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not per_second > 0 or burst < 1 or max_keys < 1:
            raise ValueError(f"rate limits must be positive. Found per_second={per_second}, burst={burst}, max_keys={max_keys}.")
        self.per_second, self.burst, self.max_keys, self.clock = float(per_second), int(burst), int(max_keys), clock
        self._buckets: OrderedDict[bytes | str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, key: bytes | str) -> float:
        """Take one token for ``key``: 0.0 if allowed, else the seconds until one is available."""
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.pop(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.per_second)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self.per_second
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        return wait
