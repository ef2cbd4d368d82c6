"""One request budget per org and process, shared by every client that uses the same org.

The Audit Logs API allows about 50 requests a minute for the WHOLE org. Several ingests in one
process (triggers of a backfill in one triggerer) that each paced themselves to 50/min would get
429s; so clients of the same base URL and token share one limiter, pace to its rate together, and
all pause when any of them receives a ``Retry-After``.

The limiter holds no asyncio primitives: a reservation is a few arithmetic steps under a thread
lock, then a plain ``asyncio.sleep``. So one limiter serves any number of event loops (the
triggerer's, or a fresh ``asyncio.run`` per task in sync mode).
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Callable


class RateLimiter:
    """Spaces requests ``60 / requests_per_minute`` seconds apart, with an initial burst allowance.

    A virtual-schedule limiter (GCRA): each acquire reserves the next free slot and sleeps until
    it; ``burst`` requests may go back to back after a quiet period.
    """

    def __init__(
        self, requests_per_minute: float, *, burst: int = 1, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not requests_per_minute > 0:
            raise ValueError(f"requests_per_minute must be > 0, got {requests_per_minute!r}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst!r}")
        self.requests_per_minute = float(requests_per_minute)
        self.burst = burst
        self._interval = 60.0 / self.requests_per_minute
        self._clock = clock
        self._lock = threading.Lock()
        self._next_free = clock()  # when the next request may start, on the virtual schedule
        self._paused_until = 0.0
        self.waited_seconds = 0.0  # total time callers spent waiting here (for the per-interval log)

    def reserve(self) -> float:
        """Reserve the next slot; return how many seconds the caller must wait before using it."""
        with self._lock:
            now = self._clock()
            earliest = now - (self.burst - 1) * self._interval
            slot = max(self._next_free, earliest, self._paused_until)
            self._next_free = slot + self._interval
            delay = max(0.0, slot - now)
            self.waited_seconds += delay
            return delay

    async def acquire(self) -> float:
        """Wait for a slot; return the seconds waited."""
        delay = self.reserve()
        if delay > 0:
            await asyncio.sleep(delay)
        return delay

    def pause(self, seconds: float) -> None:
        """Hold every caller for ``seconds`` from now (the server sent ``Retry-After``)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)


_registry: dict[tuple[str, str], RateLimiter] = {}
_registry_lock = threading.Lock()


def shared_rate_limiter(base_url: str, token: str, requests_per_minute: float) -> RateLimiter:
    """The process-wide limiter of one org, keyed by base URL and a hash of the token.

    The token itself is never a key (keys can end up in reprs and debug dumps). The first caller's
    rate wins; a later caller asking for a different rate gets the existing limiter, because two
    rates for one budget cannot both hold.
    """
    key = (base_url.rstrip("/"), hashlib.sha256(token.encode("utf-8")).hexdigest())
    with _registry_lock:
        limiter = _registry.get(key)
        if limiter is None:
            limiter = _registry[key] = RateLimiter(requests_per_minute)
        return limiter


__all__ = ["RateLimiter", "shared_rate_limiter"]
