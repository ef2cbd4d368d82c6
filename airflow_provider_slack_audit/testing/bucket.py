"""The org-wide rate limit of the fake server."""

from __future__ import annotations

import math
from collections.abc import Callable


class TokenBucket:
    """The org-wide rate limit: ``per_minute`` requests refill continuously, up to ``burst`` saved."""

    def __init__(self, per_minute: float, burst: int, clock: Callable[[], float]) -> None:
        if per_minute <= 0 or burst < 1:
            raise ValueError(f"the rate limit needs per_minute > 0 and burst >= 1, got {per_minute}, {burst}")
        self._per_second = per_minute / 60.0
        self._burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()

    def retry_after(self) -> int | None:
        """Take a token: ``None`` when granted, else the whole seconds (at least 1) a 429 asks to wait."""
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._per_second)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return None
        return max(1, math.ceil((1.0 - self._tokens) / self._per_second))


__all__ = ["TokenBucket"]
