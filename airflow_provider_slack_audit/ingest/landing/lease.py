"""Leases: at most one live writer per interval under a destination, across processes and hosts.

Two runs of one window can overlap (a manual re-run racing the scheduled run, two DAGs on one base
path, a trigger that briefly runs twice). Each interval a run is about to read gets a **lease**, a
small hidden file beside its data file, created atomically so only one run can hold it; the run
keeps all of them alive by rewriting one **owner record** (see ``lease_store`` for the files and how
liveness is judged without comparing clocks). :class:`RunLeases` is a run's side: claim, wait,
renew, release.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

from airflow_provider_slack_audit.ingest.windows import Interval
from airflow_provider_slack_audit.version_compat import ObjectStoragePath

from ..errors import LeaseWaitTimeout
from ._fs import DEFAULT_TTL_SECONDS, create_exclusively, owner_of_temp
from .layout import LEASE_SUFFIX, relative_lease_path
from .lease_store import LEASES_DIR, LeaseOwner, LeaseStore, Sighting

log = logging.getLogger(__name__)

# Long enough for any run that is alive (it renews), short enough that a stuck wait ends the try
# with a transient error Airflow retries, instead of holding a worker slot all day.
DEFAULT_MAX_WAIT_SECONDS = 3600.0


@dataclass(frozen=True)
class LeaseSettings:
    """How long leases live and how a run waits for one; every figure is seconds.

    ``ttl`` is how long a waiting run watches another run's owner record stay unchanged before it
    takes that run's leases over. ``monotonic`` is the waiting run's own clock for that watch (never
    compared with another host's); ``sleep`` is how it waits between polls (tests pass a pair that
    takes no time). ``clock`` (wall-clock time) only stamps the records, for people reading them.
    Renewals use ``renew_every`` (default ``ttl / 3``) on the event loop's own clock; a waiting
    run sees one at most ``max_poll`` after it lands, so their sum must stay below the ttl.
    """

    ttl: float = DEFAULT_TTL_SECONDS
    renew_every: float | None = None
    max_wait: float = DEFAULT_MAX_WAIT_SECONDS
    first_poll: float = 0.05
    max_poll: float = 5.0
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    monotonic: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        for name in ("ttl", "max_wait", "first_poll", "max_poll"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"lease {name} must be a positive number of seconds, got {value!r}")
        if self.renew_every is not None and not 0 < self.renew_every < self.ttl:
            raise ValueError(
                f"lease renew_every {self.renew_every!r} must be positive and below the ttl {self.ttl}, "
                "or a lease expires between renewals"
            )
        if self.renew_interval + self.max_poll >= self.ttl:
            # A waiter sees a renewal up to max_poll after it lands: between two it sees, a live run
            # must never look silent for a whole ttl.
            raise ValueError(
                f"lease renewals every {self.renew_interval:g} s seen up to max_poll {self.max_poll:g} s "
                f"late could leave a live run looking silent for the whole ttl {self.ttl:g} s, and "
                "taken over; renew more often, poll more often or raise the ttl"
            )

    @property
    def renew_interval(self) -> float:
        return self.renew_every if self.renew_every is not None else self.ttl / 3


class LeaseSite(Protocol):
    """What a run's leases need: the destination they guard and the run that holds them."""

    destination: ObjectStoragePath
    owner: LeaseOwner


@dataclass
class RunLeases:
    """The leases one run holds on one destination: claimed, kept alive while held, released at the end.

    Use as ``async with``: entering writes the owner record and starts renewing it; leaving (also on
    an error or cancellation) releases every lease still held and deletes the record. ``site`` is
    the destination and the owning run (a :class:`~.destination.Landing` has both).
    """

    site: LeaseSite
    settings: LeaseSettings = field(default_factory=LeaseSettings)
    logger: logging.Logger = log
    store: LeaseStore = field(init=False)
    _held: dict[str, ObjectStoragePath] = field(default_factory=dict, init=False)
    _heartbeat: asyncio.Task[None] | None = field(default=None, init=False)
    # A renewal thread still running when the run ends must not write the record back after it is gone.
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _ended: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.store = LeaseStore(
            self.site.destination,
            self.site.owner,
            ttl=self.settings.ttl,
            clock=self.settings.clock,
            monotonic=self.settings.monotonic,
        )

    async def __aenter__(self) -> RunLeases:
        await asyncio.to_thread(self.store.renew)
        self._heartbeat = asyncio.ensure_future(self._renew_forever())
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        if exc_type is None or not issubclass(exc_type, asyncio.CancelledError):
            await asyncio.to_thread(self.release_now)
        elif self.store.local:
            self.release_now()  # cancelled: no more awaiting; a few local deletes
        else:  # cancelled, and the deletes are network calls: in a thread, not waited for
            asyncio.get_running_loop().run_in_executor(None, self.release_now)

    async def _renew_forever(self) -> None:
        # Timed waits on an event that is never set: the loop's own timer, whatever sleep tests stub.
        never = asyncio.Event()
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(never.wait(), self.settings.renew_interval)
            try:
                await asyncio.to_thread(self._renew)
            except Exception:  # the next renewal tries again; a lapsed record makes leases stale
                self.logger.warning("Could not renew the leases of %s", self.store.owner.token, exc_info=True)

    def _renew(self) -> None:
        with self._lock:
            if not self._ended:
                self.store.renew()

    def release_now(self) -> None:
        """Release every lease held, then delete the owner record (blocking)."""
        with self._lock:
            self._ended = True
            held, self._held = list(self._held.values()), {}
            for path in held:
                try:
                    self.store.release(path)
                except Exception:
                    self.logger.warning("Could not release the lease %s", path, exc_info=True)
            try:
                self.store.retire()
            except Exception:
                self.logger.warning(
                    "Could not delete the owner record of %s", self.store.owner.token, exc_info=True
                )

    async def claim(self, intervals: Sequence[Interval]) -> tuple[list[Interval], list[Interval]]:
        """Lease the longest prefix of ``intervals`` no live run holds; return it and the rest.

        When the first interval is leased by a live run, wait (polling with backoff, no request) until
        that lease is released or goes stale, then try again. Every run claims in ascending order and
        holds nothing while it waits, so two runs never wait for each other, and a run that started
        second finds the first interval taken and claims nothing rather than a scattered half.
        """
        waited = 0.0
        while True:
            claimed, holder = await asyncio.to_thread(self._claim_prefix, intervals)
            if claimed or not intervals:
                return claimed, list(intervals[len(claimed) :])
            waited = await self._wait_for(self._lease_path(intervals[0]), holder, waited)

    async def release(self, intervals: Sequence[Interval]) -> None:
        await asyncio.to_thread(self._release, [self._lease_path(interval) for interval in intervals])

    @asynccontextmanager
    async def holding(self, lease: ObjectStoragePath) -> AsyncIterator[None]:
        """Hold one lease (e.g. a window manifest's) for the ``async with`` block, waiting for it first."""
        waited = 0.0
        while (holder := await asyncio.to_thread(self._acquire, lease)) is not None:
            waited = await self._wait_for(lease, holder, waited)
        try:
            yield
        finally:
            await asyncio.to_thread(self._release, [lease])

    def _lease_path(self, interval: Interval) -> ObjectStoragePath:
        return self.site.destination / relative_lease_path(interval)

    def _acquire(self, lease: ObjectStoragePath) -> str | None:
        holder = self.store.try_acquire(lease)
        if holder is None:
            self._held[str(lease)] = lease
        return holder

    def _claim_prefix(self, intervals: Sequence[Interval]) -> tuple[list[Interval], str | None]:
        claimed: list[Interval] = []
        for interval in intervals:
            holder = self._acquire(self._lease_path(interval))
            if holder is not None:
                return claimed, holder
            claimed.append(interval)
        return claimed, None

    def _release(self, leases: Sequence[ObjectStoragePath]) -> None:
        for lease in leases:
            self._held.pop(str(lease), None)
            self.store.release(lease)

    async def _wait_for(self, lease: ObjectStoragePath, holder: str | None, waited: float) -> float:
        """Sleep until ``lease`` is free or stale (or ``max_wait`` is spent); return the total waited.

        Each poll reads the holder's owner record: a renewal seen keeps it live, a ttl without one
        (on this run's monotonic clock) makes it stale, and the next claim takes it over.
        """
        settings = self.settings
        self.logger.info(
            "%s is leased by run %s: waiting (up to %.0f s) for it to finish, or to show no renewal "
            "for %.0f s",
            lease.name,
            holder,
            settings.max_wait - waited,
            settings.ttl,
        )
        delay = settings.first_poll
        while True:
            if waited >= settings.max_wait:
                raise LeaseWaitTimeout(self._still_leased(lease, holder or "?", waited))
            pause = min(delay, settings.max_poll, settings.max_wait - waited)
            await settings.sleep(pause)
            waited += pause
            delay *= 2
            current = await asyncio.to_thread(self.store.holder, lease)
            if current in (None, self.store.owner.token):
                return waited
            holder = current

    def _still_leased(self, lease: ObjectStoragePath, holder: str, waited: float) -> str:
        """The wait error's message: what this run saw of the holder, not what its clock claims."""
        settings = self.settings
        head = (
            f"{lease} was still leased by run {holder} after waiting {waited:.0f} s "
            f"(max_wait {settings.max_wait:.0f} s); "
        )
        seen = self.store.sighting(lease, holder)
        now = self.store.monotonic()
        watched = now - seen.first_seen if seen is not None else 0.0
        if seen is not None and seen.renewals:
            return head + (
                f"this run saw its owner record renewed {seen.renewals} times in the {watched:.0f} s it "
                f"watched, last {seen.silent_for(now):.0f} s ago: that run is alive and landing the same "
                "interval. Retry later, or let the other run finish"
            )
        if holder == "?":
            seen_now = f"the lease file unreadable and unchanged for the {watched:.0f} s it watched"
            rule = f"such a lease is taken over once unchanged for {settings.ttl:.0f} s"
        else:
            seen_now = f"no renewal of its owner record in the {watched:.0f} s it watched"
            rule = f"a run is taken over once none is seen for {settings.ttl:.0f} s"
        return head + (
            f"this run saw {seen_now}; {rule} (the lease ttl). Retry later, or set max_wait above the ttl"
        )


__all__ = [
    "DEFAULT_MAX_WAIT_SECONDS",
    "DEFAULT_TTL_SECONDS",
    "LEASES_DIR",
    "LEASE_SUFFIX",
    "LeaseOwner",
    "LeaseSettings",
    "LeaseSite",
    "LeaseStore",
    "LeaseWaitTimeout",
    "RunLeases",
    "Sighting",
    "create_exclusively",
    "owner_of_temp",
]
