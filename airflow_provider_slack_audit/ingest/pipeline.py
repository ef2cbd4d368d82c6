"""``ingest_window``: the one path from an Audit Logs window to landed, committed files.

Both operator modes run it (the trigger in the triggerer, ``deferrable=False`` in the worker), so a
window lands the same way whatever runs it. For each interval of the window, in order:

1. skip it when its data file and commit marker agree (a retry resumes where the last try stopped);
2. wait until ``end + settle_lag`` (events reach the API a little after they happen);
3. page through ``logs`` with oldest/latest/filters resent on every page, drop entries outside the
   interval, drop repeated ids, and stream each page's raw bytes to the interval's data file
   (writing page N in a worker thread while page N+1 is fetched);
4. commit: data file under its final name, then the marker.

An expired cursor restarts the interval from its first page (its partial file is discarded). Other
failures propagate with their kind (see ``client.errors``): nothing is committed for the interval
that failed, and every interval committed before it stays committed.

Audit data never leaves this module as Python objects: entries travel as the bytes the API sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_slack_audit.client.async_client import MAX_LIMIT, AsyncAuditLogsClient
from airflow_provider_slack_audit.client.errors import SlackAuditLogsApiError

from .landing import Compression, IntervalCommit, IntervalWriter, Landing
from .validation import check_destination, check_window, normalize_actions
from .windows import Interval, Window

log = logging.getLogger(__name__)

COMPRESSIONS: tuple[Compression, ...] = ("gzip", None)
# An expired cursor restarts the interval; a server that keeps expiring them is broken, not slow.
MAX_CURSOR_RESTARTS = 3
# A window of a million one-second intervals is a typo, and would hold a million markers in memory.
MAX_INTERVALS = 100_000
# Each interval is one file; a longer one is a typo (and near timedelta.max, an overflow later).
MAX_INTERVAL = timedelta(days=366)
# Events reach the API within minutes; a longer lag parks the task for no benefit.
MAX_SETTLE_LAG = timedelta(days=1)


@dataclass(frozen=True)
class IngestSpec:
    """Everything an ingest needs except the token: JSON-serializable, so triggers can carry it."""

    window: Window
    interval: timedelta = timedelta(hours=1)
    destination: str = ""
    destination_conn_id: str | None = None
    action: tuple[str, ...] | None = None
    actor: str | None = None
    entity: str | None = None
    compression: Compression = "gzip"
    settle_lag: timedelta = timedelta(minutes=5)
    limit: int = MAX_LIMIT
    overwrite: bool = False

    def validate(self, now: datetime | None = None) -> None:
        """Raise ValueError/TypeError naming the bad argument and the fix; no request is made first."""
        if not isinstance(self.window, Window):
            raise TypeError(f"window must be a Window, got {type(self.window).__name__}")
        check_window(self.window, now)
        if not isinstance(self.interval, timedelta):
            raise TypeError(f"interval must be a timedelta such as timedelta(hours=1), got {self.interval!r}")
        if self.interval < timedelta(seconds=1):
            raise ValueError(
                f"interval {self.interval} is shorter than one second, the API's resolution; "
                "pass e.g. timedelta(hours=1)"
            )
        if self.interval > MAX_INTERVAL:
            raise ValueError(
                f"interval {self.interval} is longer than {MAX_INTERVAL.days} days; each interval is one "
                "file, so pass e.g. timedelta(hours=1) or timedelta(days=1)"
            )
        count = -(-(self.window.end - self.window.start) // self.interval)
        if count > MAX_INTERVALS:
            raise ValueError(
                f"the window {self.window.start.isoformat()} to {self.window.end.isoformat()} makes {count} "
                f"intervals of {self.interval}; use a longer interval (at most {MAX_INTERVALS} per window)"
            )
        check_destination(self.destination)
        normalize_actions(self.action)
        for name in ("actor", "entity", "destination_conn_id"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise TypeError(f"{name} must be a non-empty string or None, got {value!r}")
        if self.compression not in COMPRESSIONS:
            raise ValueError(f"compression must be 'gzip' or None, got {self.compression!r}")
        if (
            not isinstance(self.settle_lag, timedelta)
            or not timedelta(0) <= self.settle_lag <= MAX_SETTLE_LAG
        ):
            raise ValueError(
                f"settle_lag must be a timedelta between 0 and {MAX_SETTLE_LAG}, got {self.settle_lag!r}; "
                "events reach the API within minutes, so the default of 5 minutes is usually right"
            )
        if (
            isinstance(self.limit, bool)
            or not isinstance(self.limit, int)
            or not 1 <= self.limit <= MAX_LIMIT
        ):
            raise ValueError(f"limit must be an int between 1 and {MAX_LIMIT}, got {self.limit!r}")
        if not isinstance(self.overwrite, bool):
            raise TypeError(f"overwrite must be True or False, got {self.overwrite!r}")

    @property
    def query(self) -> dict[str, Any]:
        """The filters, as recorded in markers and manifests (a marker of other filters is not ours)."""
        actions = normalize_actions(self.action)  # one spelling, so a reordered retry still skips
        return {
            "action": list(actions) if actions is not None else None,
            "actor": self.actor,
            "entity": self.entity,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "window": {"start": self.window.start.isoformat(), "end": self.window.end.isoformat()},
            "interval_seconds": self.interval.total_seconds(),
            "destination": self.destination,
            "destination_conn_id": self.destination_conn_id,
            **self.query,
            "compression": self.compression,
            "settle_lag_seconds": self.settle_lag.total_seconds(),
            "limit": self.limit,
            "overwrite": self.overwrite,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> IngestSpec:
        action = data.get("action")
        return cls(
            window=Window.from_json(data["window"]),
            interval=timedelta(seconds=data["interval_seconds"]),
            destination=data["destination"],
            destination_conn_id=data.get("destination_conn_id"),
            action=tuple(action) if action is not None else None,
            actor=data.get("actor"),
            entity=data.get("entity"),
            compression=data.get("compression"),
            settle_lag=timedelta(seconds=data.get("settle_lag_seconds", 300)),
            limit=data.get("limit", MAX_LIMIT),
            overwrite=data.get("overwrite", False),
        )


@dataclass
class IngestSummary:
    """What a run landed: small, secret-free, JSON-serializable (it becomes the task's XCom)."""

    window: dict[str, Any]
    manifest: str = ""
    intervals_landed: int = 0
    intervals_skipped: int = 0
    events: int = 0  # events in the window's files, landed now or before
    events_landed: int = 0  # events fetched by this run
    pages: int = 0
    requests: int = 0
    bytes: int = 0
    duplicates: int = 0
    out_of_range: int = 0
    cursor_restarts: int = 0
    seconds: float = 0.0
    wait_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in self.__dict__.items()}


@dataclass
class _IntervalStats:
    pages: int = 0
    duplicates: int = 0
    out_of_range: int = 0

    def as_marker_stats(self) -> dict[str, int]:
        return {"pages": self.pages, "duplicates": self.duplicates, "out_of_range": self.out_of_range}


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


async def ingest_window(
    client: AsyncAuditLogsClient,
    spec: IngestSpec,
    *,
    logger: logging.Logger | None = None,
    now: Callable[[], datetime] = _utcnow,
) -> IngestSummary:
    """Land every event of ``spec.window`` under ``spec.destination``; return what was done.

    Raises whatever stopped it, unchanged: :class:`SlackAuditLogsApiError` (with ``kind``), aiohttp
    and timeout errors (transient), ``OSError`` from storage (transient), ``ValueError``/``TypeError``
    for a bad spec (permanent). Committed intervals stay committed; rerun to resume.
    """
    logger = logger or log
    spec.validate(now=now())
    started = time.monotonic()
    requests_before, waits_before = client.request_count, client.wait_seconds
    landing = Landing(spec.destination, compression=spec.compression, conn_id=spec.destination_conn_id)
    query = spec.query
    summary = IngestSummary(window=spec.window.to_json())
    commits: list[IntervalCommit] = []

    for interval in spec.window.intervals(spec.interval):
        if not spec.overwrite:
            commit = await asyncio.to_thread(landing.committed, interval, query)
            if commit is not None:
                logger.info(
                    "Interval %s already committed (%d events): skipped", _span(interval), commit.count
                )
                summary.intervals_skipped += 1
                commits.append(commit)
                continue
        await _wait_until_settled(interval, spec.settle_lag, now, logger)
        commit, stats, restarts = await _land_interval(client, landing, interval, spec, query, logger)
        commits.append(commit)
        summary.intervals_landed += 1
        summary.events_landed += commit.count
        summary.pages += stats.pages
        summary.duplicates += stats.duplicates
        summary.out_of_range += stats.out_of_range
        summary.cursor_restarts += restarts

    manifest = await asyncio.to_thread(landing.write_manifest, spec.window, query, commits)
    summary.manifest = str(manifest)
    summary.events = sum(c.count for c in commits)
    summary.bytes = sum(c.bytes for c in commits)
    summary.requests = client.request_count - requests_before
    summary.wait_seconds = client.wait_seconds - waits_before
    summary.seconds = time.monotonic() - started
    logger.info(
        "Window %s: %d intervals landed, %d skipped, %d events, %d requests, %.1f s -> %s",
        _span(spec.window),
        summary.intervals_landed,
        summary.intervals_skipped,
        summary.events,
        summary.requests,
        summary.seconds,
        summary.manifest,
    )
    return summary


async def _wait_until_settled(
    interval: Interval, settle_lag: timedelta, now: Callable[[], datetime], logger: logging.Logger
) -> None:
    """Hold an interval until ``end + settle_lag``: the API shows events a little after they happen."""
    delay = (interval.end + settle_lag - now()).total_seconds()
    if delay > 0:
        logger.info(
            "Interval %s settles in %.0f s (settle_lag %s): waiting", _span(interval), delay, settle_lag
        )
        await asyncio.sleep(delay)


async def _land_interval(
    client: AsyncAuditLogsClient,
    landing: Landing,
    interval: Interval,
    spec: IngestSpec,
    query: Mapping[str, Any],
    logger: logging.Logger,
) -> tuple[IntervalCommit, _IntervalStats, int]:
    """Fetch one interval into its data file and commit it.

    Re-reads the interval from its first page after an expired cursor (at most
    ``MAX_CURSOR_RESTARTS`` times) and, once, after entries out of newest-first order.
    """
    remember_all_ids = False
    restarts = 0
    while True:
        started = time.monotonic()
        requests_before, waits_before = client.request_count, client.wait_seconds
        writer = await asyncio.to_thread(landing.open_interval, interval)
        try:
            stats = await _fetch_into(client, writer, interval, spec, remember_all_ids=remember_all_ids)
        except _OutOfOrder as error:
            await asyncio.to_thread(writer.abort)
            logger.warning(
                "Interval %s: %s, not newest first; re-reading it remembering every id",
                _span(interval),
                error,
            )
            remember_all_ids = True
            continue
        except SlackAuditLogsApiError as error:
            await asyncio.to_thread(writer.abort)
            if error.kind == "cursor" and restarts < MAX_CURSOR_RESTARTS:
                restarts += 1
                logger.warning(
                    "Interval %s: cursor rejected (%s); re-reading the interval from its start",
                    _span(interval),
                    error.error,
                )
                continue
            raise
        except asyncio.CancelledError:
            writer.abort()  # cancelled: no more awaiting; a local delete is quick
            raise
        except BaseException:
            await asyncio.to_thread(writer.abort)
            raise
        commit = await asyncio.to_thread(writer.commit, query=query, stats=stats.as_marker_stats())
        logger.info(
            "Landed interval %s: %d events, %d pages, %d requests, %d bytes, %.2f s, waited %.1f s, "
            "%d duplicates, %d out of range -> %s",
            _span(interval),
            commit.count,
            stats.pages,
            client.request_count - requests_before,
            commit.bytes,
            time.monotonic() - started,
            client.wait_seconds - waits_before,
            stats.duplicates,
            stats.out_of_range,
            commit.path,
        )
        return commit, stats, restarts


async def _fetch_into(
    client: AsyncAuditLogsClient,
    writer: IntervalWriter,
    interval: Interval,
    spec: IngestSpec,
    *,
    remember_all_ids: bool = False,
) -> _IntervalStats:
    """Page through one interval, streaming each page's new entries to ``writer``.

    Only one page is held at a time. The API may return an entry again when a page boundary cuts
    through a crowded second. Entries come newest first, so only ids of the oldest second seen so
    far can repeat, and only those are kept: memory stays flat whatever the interval's size (a set
    of all ids costs ~120 MB per million events). An entry newer than that second breaks the order
    this relies on: :class:`_OutOfOrder` makes the caller re-read the interval remembering every id.
    """
    stats = _IntervalStats()
    oldest, latest = interval.oldest, interval.latest
    boundary_second = latest + 1
    seen: set[str] = set()
    pending: asyncio.Future[None] | None = None
    try:
        async for response in client.pages(
            oldest=oldest,
            latest=latest,
            limit=spec.limit,
            action=spec.action,
            actor=spec.actor,
            entity=spec.entity,
        ):
            batch = []
            for entry in response.raw_page().entries:
                second = entry.date_create
                if not oldest <= second <= latest:
                    stats.out_of_range += 1
                    continue
                if second < boundary_second:
                    boundary_second = second
                    if not remember_all_ids:
                        seen = set()
                elif second > boundary_second and not remember_all_ids:
                    raise _OutOfOrder(f"an entry of {second} came after one of {boundary_second}")
                if entry.id in seen:
                    stats.duplicates += 1
                    continue
                seen.add(entry.id)
                batch.append(entry.raw)
            stats.pages += 1
            if pending is not None:
                await pending
            pending = asyncio.ensure_future(asyncio.to_thread(writer.write, batch))
        if pending is not None:
            await pending
    finally:
        # Never abort the file while a write thread still holds it.
        if pending is not None and not pending.done():
            await asyncio.wait([pending])
    return stats


class _OutOfOrder(Exception):
    """The API broke its newest-first order, so repeats can no longer be found by the last second."""


def _span(bounds: Interval | Window) -> str:
    return f"[{bounds.start.isoformat()}, {bounds.end.isoformat()})"


__all__ = ["IngestSpec", "IngestSummary", "ingest_window"]
