"""``ingest_window``: the one path from an Audit Logs window to landed, committed files.

Both operator modes run it (the trigger in the triggerer, ``deferrable=False`` in the worker), so a
window lands the same way whatever runs it:

1. cut the window into intervals on the fixed grid (``Window.intervals``), around the files already
   landed, once the run is checked against its destination (``check_destination_fits``: one
   destination, one truth), and skip the committed ones (data file and marker agree): a retry
   resumes with what is not committed;
2. wait once, until the newest uncommitted interval's ``end + settle_lag`` (events reach the API a
   little after they happen);
3. group the uncommitted intervals into contiguous runs and read each run with ONE paginated
   ``logs`` query (oldest = the run's first second, latest = its last; filters resent on every
   page): see :mod:`.stream`. Requests per window are ceil(N / limit), whatever the interval length.
   An expired cursor re-reads the run from its start, over the intervals not yet committed;
4. write the window's manifest, then observe it (drift, silence, the API snapshot: ``ingest.monitor``).

Entries outside the run are dropped and counted; repeated ids are dropped. Other failures propagate
with their kind (see :mod:`.errors`): every interval committed before stays committed.

Audit data never leaves the stream as Python objects: entries travel as the bytes the API sent
(``msgspec.Raw``), and only ``id`` and ``date_create`` are decoded. Blocking I/O runs in a worker
thread; decoding and routing a page run in slices between which the event loop runs other tasks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_slack_audit import __version__
from airflow_provider_slack_audit.client.errors import SlackAuditLogsApiError

from .evidence import public_base_url
from .landing import IntervalCommit, Landing
from .landing.lease import LeaseSettings, RunLeases
from .monitor import observe_window
from .registry import NameSampler
from .spec import IngestSpec, IngestSummary, check_destination_fits
from .stream import IngestClient, OutOfOrder, RunStream, WindowRead
from .windows import Interval

log = logging.getLogger(__name__)

# An expired cursor restarts the run; a server that keeps expiring them is broken, not slow.
MAX_CURSOR_RESTARTS = 3


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


async def ingest_window(
    client: IngestClient,
    spec: IngestSpec,
    *,
    logger: logging.Logger | None = None,
    now: Callable[[], datetime] = _utcnow,
    leases: LeaseSettings | None = None,
) -> IngestSummary:
    """Land every event of ``spec.window`` under ``spec.destination``; return what was done.

    Raises whatever stopped it, unchanged; :func:`~.errors.kind_of` tells whether another try can
    help (the docs' error table lists each error). Committed intervals stay committed; rerun to resume.

    Every interval is read under a lease (see ``landing.lease``): a run finding one leased by a live
    run waits, then skips what that run committed. ``leases`` sets the ttl and the waits.
    """
    logger = logger or log
    spec.validate(now=now())
    started = time.monotonic()
    started_at = now()
    # Off the loop: the first Landing of a scheme imports its path implementation (tens of ms).
    landing = await asyncio.to_thread(spec.landing)
    summary = IngestSummary(window=spec.window.to_json())
    # One destination, one truth: the run's layout and window must fit what is landed there.
    intervals = await asyncio.to_thread(check_destination_fits, spec, landing=landing)
    found = await asyncio.to_thread(_committed_intervals, landing, intervals, spec.query)
    rerun = spec.overwrite or spec.reconcile
    shared = WindowRead(
        client,
        landing,
        spec,
        summary,
        logger,
        NameSampler(),
        discovered_at=int(started_at.timestamp()),
        # On a rewrite, the committed intervals are the evidence a new read must keep.
        evidence=found if rerun and not spec.replace_destructively else {},
        committed={} if rerun else dict(found),
    )
    for interval, commit in shared.committed.items():
        logger.info("Interval %s already committed (%d events): skipped", interval.span, commit.count)
    summary.intervals_skipped = len(shared.committed)

    pending = [interval for interval in intervals if interval not in shared.committed]
    if pending:
        await _wait_until_settled(pending[-1], spec.settle_lag, now, logger)
    async with RunLeases(landing, leases or LeaseSettings(), logger) as held:
        while pending:
            # Usually one claim: the whole rest. Another run landing part of it makes this wait first.
            claimed, pending = await held.claim(pending)
            unread = await _skip_committed_meanwhile(shared, claimed, found)
            for run in reversed(_contiguous_runs(unread)):  # newest first, like the pages of each run
                _add_landed(shared, await _land_run(shared, run))
            await held.release(claimed)

        figures = _run_figures(shared, started_at)
        commits = list(shared.committed.values())
        async with held.holding(landing.manifest_lease_path(spec.window)):
            manifest = await asyncio.to_thread(
                landing.write_manifest, spec.window, shared.query, commits, figures
            )
    summary.manifest = str(manifest)
    summary.ledger = landing.ledger_head.to_json() if landing.ledger_head is not None else None
    summary.events = sum(commit.count for commit in commits)
    summary.bytes = sum(commit.bytes for commit in commits)
    await observe_window(client, landing, spec, summary, shared.names, logger, now)
    summary.seconds = time.monotonic() - started
    logger.info(
        "Window %s: %d intervals landed, %d skipped, %d events, %d queries, %d requests, %.1f s, "
        "waited %.1f s -> %s",
        spec.window.span,
        summary.intervals_landed,
        summary.intervals_skipped,
        summary.events,
        summary.queries,
        summary.requests,
        summary.seconds,
        summary.wait_seconds,
        summary.manifest,
    )
    return summary


async def _land_run(shared: WindowRead, run: list[Interval]) -> dict[Interval, IntervalCommit]:
    """Read one run of contiguous uncommitted intervals with one query; return what it committed.

    An expired cursor re-reads the run from its start, over the intervals not yet committed only
    (at most ``MAX_CURSOR_RESTARTS`` times). Entries out of newest-first order make it re-read the
    intervals of that attempt once more, remembering every id.
    """
    summary, logger = shared.summary, shared.logger
    landed: dict[Interval, IntervalCommit] = {}
    pending = list(run)
    remember_all_ids = False
    restarts = 0
    moved: set[str] = set()  # a rerun's moved ids, kept across re-reads of the run
    while pending:
        neighbours = {
            interval: commit
            for interval, commit in {**shared.committed, **landed}.items()
            if interval not in pending
        }
        stream = RunStream(shared, pending, remember_all_ids, neighbours, moved)
        summary.queries += 1
        try:
            await stream.read()
        except OutOfOrder as error:
            await stream.abort()
            landed.update(stream.commits)
            span = Interval(pending[0].start, pending[-1].end).span
            logger.warning("Run %s: %s, not newest first; re-reading it remembering every id", span, error)
            remember_all_ids = True
            continue
        except SlackAuditLogsApiError as error:
            await stream.abort()
            landed.update(stream.commits)
            if error.kind == "cursor" and restarts < MAX_CURSOR_RESTARTS:
                restarts += 1
                summary.cursor_restarts += 1
                pending = [interval for interval in pending if interval not in stream.commits]
                span = Interval(pending[0].start, pending[-1].end).span if pending else "(all committed)"
                logger.warning(
                    "Run %s: cursor rejected (%s); re-reading what is not committed from its start",
                    span,
                    error.error,
                )
                continue
            raise
        except asyncio.CancelledError:
            stream.abort_now()  # cancelled: no more awaiting; a local delete is quick
            raise
        except BaseException:
            await stream.abort()
            raise
        landed.update(stream.commits)
        shared.streams.append(stream.figures)
        summary.drained = summary.drained and stream.figures["drained"]
        break
    return landed


def _committed_intervals(
    landing: Landing, intervals: Sequence[Interval], query: Mapping[str, Any]
) -> dict[Interval, IntervalCommit]:
    return {
        interval: commit
        for interval in intervals
        if (commit := landing.committed(interval, query)) is not None
    }


async def _skip_committed_meanwhile(
    shared: WindowRead, claimed: list[Interval], found: Mapping[Interval, IntervalCommit]
) -> list[Interval]:
    """The claimed intervals left to read once those another run committed while this one waited
    for their lease are skipped (on a rewrite: those it rewrote since this run looked)."""
    spec, summary = shared.spec, shared.summary
    meanwhile = await asyncio.to_thread(_committed_intervals, shared.landing, claimed, shared.query)
    if spec.overwrite or spec.reconcile:
        meanwhile = {
            interval: commit for interval, commit in meanwhile.items() if found.get(interval) != commit
        }
    for interval, commit in meanwhile.items():
        shared.logger.info(
            "Interval %s committed by another run (%d events): skipped", interval.span, commit.count
        )
    shared.committed.update(meanwhile)
    summary.intervals_skipped += len(meanwhile)
    return [interval for interval in claimed if interval not in meanwhile]


def _add_landed(shared: WindowRead, landed: Mapping[Interval, IntervalCommit]) -> None:
    """Count what a run committed; a reconcile keeps an unchanged interval's commit: found, not landed."""
    summary = shared.summary
    fresh = [commit for interval, commit in landed.items() if commit is not shared.evidence.get(interval)]
    shared.committed.update(landed)
    summary.intervals_landed += len(fresh)
    summary.intervals_skipped += len(landed) - len(fresh)
    summary.events_landed += sum(commit.count for commit in fresh)


def _contiguous_runs(intervals: Sequence[Interval]) -> list[list[Interval]]:
    """Sorted intervals grouped into runs without a gap: each run is read with one query."""
    runs: list[list[Interval]] = []
    for interval in intervals:
        if runs and runs[-1][-1].latest + 1 == interval.oldest:
            runs[-1].append(interval)
        else:
            runs.append([interval])
    return runs


async def _wait_until_settled(
    newest: Interval, settle_lag: timedelta, now: Callable[[], datetime], logger: logging.Logger
) -> None:
    """Wait once, until the newest interval's ``end + settle_lag``: events reach the API late."""
    delay = (newest.end + settle_lag - now()).total_seconds()
    if delay > 0:
        logger.info("Interval %s settles in %.0f s (settle_lag %s): waiting", newest.span, delay, settle_lag)
        await asyncio.sleep(delay)


def _run_figures(shared: WindowRead, started_at: datetime) -> dict[str, Any]:
    """What the manifest records of the run writing it: completeness evidence for an auditor."""
    spec, summary = shared.spec, shared.summary
    figures: dict[str, Any] = {
        "provider_version": __version__,
        "base_url": public_base_url(getattr(shared.client, "base_url", None)),
        "started_at": started_at.isoformat(),
        "settle_lag_seconds": spec.settle_lag.total_seconds(),
        "limit": spec.limit,
        "intervals_landed": summary.intervals_landed,
        "intervals_skipped": summary.intervals_skipped,
        "queries": summary.queries,
        "pages": summary.pages,
        "requests": summary.requests,
        "rate_limited": summary.rate_limited,
        "wait_seconds": round(summary.wait_seconds, 3),
        "cursor_restarts": summary.cursor_restarts,
        "drained": summary.drained,
        "streams": shared.streams,
    }
    if spec.reconcile:
        figures["reconcile"] = {
            "intervals_reconciled": summary.intervals_reconciled,
            "late_events": summary.late_events,
            "vanished_kept": summary.vanished_kept,
        }
    if spec.reconcile or spec.overwrite:
        figures["moves"] = {
            "moved": summary.moved,
            "bodies_changed": summary.bodies_changed,
            "intervals": {key: dict(noted) for key, noted in sorted(shared.moves.items())},
        }
    return figures


__all__ = ["MAX_CURSOR_RESTARTS", "ingest_window"]
