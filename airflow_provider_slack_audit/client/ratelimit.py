"""One request budget per org and process, shared by every client that uses the same org.

The Audit Logs API allows about 50 requests a minute for the WHOLE org. Several ingests in one
process (triggers of a backfill in one triggerer) that each paced themselves to 50/min would get
429s; so clients of the same base URL and token share one limiter, pace to its rate together, and
all pause when any of them receives a ``Retry-After`` (for at most :data:`MAX_SHARED_PAUSE`).

Across processes nothing is shared, so the limiter adapts instead (AIMD, as TCP does): each 429
cuts its rate in half, and the rate climbs back by the same small step per slot of the configured
rate in every process (by time, not by requests, so the slower one catches up), never above
:data:`CEILING_SHARE` of the configured rate. That ceiling leaves a little of the budget free, and
slots are spaced with a random spread around the interval (``jitter``): a strictly periodic process
would always find the token it needs and starve a slower one, which then sees every 429. With both,
every process sees its share of the 429s. Processes that each start at the org's rate converge on
shares that add up to about the org's budget, with no coordination.

The climb is counted in slots, not seconds, so the number of requests between two 429s is the same
at any budget (docs/performance.md, Rate budget; ``tests/client/test_cross_process_pacing.py``).

``live`` requests (today's window) go before ``backfill`` ones: a backfill request only takes a
slot that is free right now, never one reserved ahead, so a live request waits at most one slot.

The limiter holds no asyncio primitives: a reservation is a few arithmetic steps under a thread
lock, then a plain sleep. So one limiter serves any number of event loops (the triggerer's, or a
fresh ``asyncio.run`` per task in sync mode).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Literal

Priority = Literal["live", "backfill"]
PRIORITIES: tuple[Priority, ...] = ("live", "backfill")

#: The longest a ``Retry-After`` pauses every client of the org in this process. A longer one
#: (``86400``, ``inf``) fails only the request that received it; the others keep their budgets.
MAX_SHARED_PAUSE = 60.0
#: A window that ended longer ago than this is a backfill (see :func:`infer_priority`).
BACKFILL_AFTER = timedelta(days=2)

# AIMD: a 429 halves the rate (at most once per cool-down); while requests succeed the rate climbs
# by INCREASE_SHARE_PER_SLOT of the configured rate for each slot of the configured rate (60 / rate
# seconds) that passes, up to CEILING_SHARE of it; it never drops below MIN_RATE_SHARE of it. From
# half the ceiling back to it takes about 320 slots: 6 minutes at 50/min, 80 s at 240/min.
DECREASE_FACTOR = 0.5
INCREASE_SHARE_PER_SLOT = 0.0015
CEILING_SHARE = 0.95
MIN_RATE_SHARE = 0.05
DECREASE_COOLDOWN = 1.0
# A limiter idle for more slots than this climbs no further for them: only time spent succeeding
# counts. The mean gap between two requests at the floor still counts whole.
MAX_INCREASE_SLOTS = 1 / MIN_RATE_SHARE
#: The random spread of the gap between slots, as a share of the interval.
DEFAULT_JITTER = 0.3


class WaitExceedsBudget(Exception):
    """The next free slot is further away than the caller may wait."""

    def __init__(self, wait: float, max_wait: float) -> None:
        super().__init__(f"the next request slot is {wait:.1f} s away but only {max_wait:.1f} s are left")
        self.wait = wait
        self.max_wait = max_wait


def infer_priority(window_end: datetime, now: datetime) -> Priority:
    """``backfill`` for a window that ended more than :data:`BACKFILL_AFTER` before ``now``."""
    return "backfill" if now - window_end > BACKFILL_AFTER else "live"


class RateLimiter:
    """Spaces requests ``60 / rate`` seconds apart, with an initial burst allowance.

    A virtual-schedule limiter (GCRA): a live acquire reserves the next free slot and sleeps until
    it; ``burst`` requests may go back to back after a quiet period. ``rate`` starts at
    ``requests_per_minute`` and adapts: :meth:`rate_limited` lowers it, :meth:`succeeded` raises it.
    ``clock`` and ``sleep`` go together (a test passes a fake pair).
    """

    def __init__(
        self,
        requests_per_minute: float,
        *,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: float = DEFAULT_JITTER,
        rng: random.Random | None = None,
    ) -> None:
        if not (requests_per_minute > 0 and math.isfinite(requests_per_minute)):
            raise ValueError(f"requests_per_minute must be > 0, got {requests_per_minute!r}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst!r}")
        if not 0 <= jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {jitter!r}")
        self.jitter = jitter
        self._rng = rng or random.Random()
        self.requests_per_minute = float(requests_per_minute)
        self.burst = burst
        self._ceiling = self.requests_per_minute * CEILING_SHARE
        self._rate = self._ceiling
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_free = clock()  # when the next request may start, on the virtual schedule
        self._paused_until = 0.0
        self._last_decrease = -math.inf
        self._last_increase = clock()

    @property
    def rate(self) -> float:
        """The current pace in requests per minute (at most ``CEILING_SHARE`` of the configured rate)."""
        return self._rate

    @property
    def _interval(self) -> float:
        return 60.0 / self._rate

    def _spacing(self) -> float:
        """The gap to the next slot: the interval, spread by ``jitter`` (the mean stays the interval)."""
        if not self.jitter:
            return self._interval
        return self._interval * self._rng.uniform(1 - self.jitter, 1 + self.jitter)

    def _next_slot(self) -> tuple[float, float]:
        """The next free slot and the seconds until it (under the lock)."""
        now = self._clock()
        slot = max(self._next_free, now - (self.burst - 1) * self._interval, self._paused_until)
        return slot, max(0.0, slot - now)

    def reserve(self, max_wait: float = math.inf) -> float:
        """Reserve the next slot; return how many seconds the caller must wait before using it.

        Raises :class:`WaitExceedsBudget` (reserving nothing) when that is more than ``max_wait``.
        """
        with self._lock:
            slot, delay = self._next_slot()
            if delay > max_wait:
                raise WaitExceedsBudget(delay, max_wait)
            self._next_free = slot + self._spacing()
            return delay

    def _try_take_now(self, max_wait: float, waited: float) -> float | None:
        """Take the slot if it is free now (a backfill never reserves ahead); else the wait until it."""
        with self._lock:
            slot, delay = self._next_slot()
            if delay > max_wait - waited:
                raise WaitExceedsBudget(waited + delay, max_wait)
            if delay <= 0.0:
                self._next_free = slot + self._spacing()
                return None
            return delay

    async def acquire(self, priority: Priority = "live", *, max_wait: float = math.inf) -> float:
        """Wait for a slot; return the seconds waited. Live slots are reserved; backfill ones taken."""
        if priority == "live":
            delay = self.reserve(max_wait)
            if delay > 0:
                await self._sleep(delay)
            return delay
        if priority != "backfill":
            raise ValueError(f"priority must be one of {PRIORITIES}, got {priority!r}")
        waited = 0.0
        while True:
            pending = self._try_take_now(max_wait, waited)
            if pending is None:
                break
            started = self._clock()
            await self._sleep(pending)
            waited += max(pending, self._clock() - started)
        return waited

    def pause(self, seconds: float) -> float:
        """Hold every caller for ``seconds`` from now, at most ``MAX_SHARED_PAUSE``; return the pause."""
        applied = min(max(0.0, seconds), MAX_SHARED_PAUSE)
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + applied)
        return applied

    def rate_limited(self) -> None:
        """A 429: halve the rate, once per cool-down (429s of requests already in flight count once)."""
        with self._lock:
            now = self._clock()
            if now - self._last_decrease < max(DECREASE_COOLDOWN, 2 * self._interval):
                return
            self._last_decrease = self._last_increase = now  # the climb starts from here
            self._rate = max(self.requests_per_minute * MIN_RATE_SHARE, self._rate * DECREASE_FACTOR)

    def succeeded(self) -> None:
        """A request went through: climb back towards the ceiling, by the slots since the last one."""
        with self._lock:
            now = self._clock()
            slots = max(0.0, now - self._last_increase) * self.requests_per_minute / 60.0
            self._last_increase = now
            step = self.requests_per_minute * INCREASE_SHARE_PER_SLOT * min(slots, MAX_INCREASE_SLOTS)
            self._rate = min(self._ceiling, self._rate + step)


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


__all__ = [
    "BACKFILL_AFTER",
    "CEILING_SHARE",
    "MAX_SHARED_PAUSE",
    "PRIORITIES",
    "Priority",
    "RateLimiter",
    "WaitExceedsBudget",
    "infer_priority",
    "shared_rate_limiter",
]
