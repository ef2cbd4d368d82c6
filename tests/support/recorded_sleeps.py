"""A stand-in for the retry waits that takes no time and records each wait."""

from __future__ import annotations

from collections.abc import Callable


class RecordedSleeps:
    """Records each wait and runs ``on_sleep`` with it.

    ``on_sleep`` lets a test move a fake clock by the wait (a server rate limit on a
    :class:`ManualClock` then sees the time pass), or leave it still (the storm never ends).
    """

    def __init__(self) -> None:
        self.durations: list[float] = []
        self.on_sleep: Callable[[float], None] | None = None

    async def __call__(self, seconds: float) -> None:
        self.durations.append(seconds)
        if self.on_sleep is not None:
            self.on_sleep(seconds)
