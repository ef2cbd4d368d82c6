"""A clock tests move by hand."""

from __future__ import annotations

from datetime import datetime

from .events import to_unix_seconds


class ManualClock:
    """A clock tests move by hand: pass it as ``clock=`` and call :meth:`advance`."""

    def __init__(self, now: datetime | float) -> None:
        self.now = float(to_unix_seconds(now)) if isinstance(now, datetime) else float(now)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        self.now += seconds


__all__ = ["ManualClock"]
