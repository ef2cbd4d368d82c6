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
   page). Pages come newest first, so the stream is cut into interval files as it crosses grid
   boundaries, and an interval commits as soon as the stream is below its start (or ends). Requests
   per window are ceil(N / limit), whatever the interval length;
4. write the window's manifest.

Entries outside the run are dropped and counted; repeated ids are dropped. An expired cursor
re-reads the run from its start, but only over the intervals not yet committed. Other failures
propagate with their kind (see ``client.errors``): every interval committed before stays committed.

Audit data never leaves this module as Python objects: entries travel as the bytes the API sent
(``msgspec.Raw``), and only ``id`` and ``date_create`` are decoded. Blocking I/O runs in a worker
thread; decoding and routing a page run in slices between which the event loop runs other tasks.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import operator
import time
from bisect import bisect_right
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from itertools import islice
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol

import msgspec

from airflow_provider_slack_audit.client.async_client import MAX_LIMIT
from airflow_provider_slack_audit.client.blocking import one_thread, run_blocking, yield_to_loop
from airflow_provider_slack_audit.client.errors import InvalidEntryApiError, SlackAuditLogsApiError
from airflow_provider_slack_audit.client.ratelimit import Priority, infer_priority
from airflow_provider_slack_audit.client.response import AuditLogsResponse

from .destination_check import DestinationConflictError, DestinationLayout
from .evidence import IdEvidence, public_base_url
from .health import validate_settings as validate_health_settings
from .registry import NameSampler
from .retention import validate_retention
from .validation import check_destination, check_window, normalize_actions
from .windows import Interval, Window

if TYPE_CHECKING:
    from .landing import IntervalCommit, IntervalWriter, Landing
    from .landing.lease import LeaseSettings

Compression = Literal["gzip"] | None

log = logging.getLogger(__name__)

COMPRESSIONS: tuple[Compression, ...] = ("gzip", None)
# An expired cursor restarts the run; a server that keeps expiring them is broken, not slow.
MAX_CURSOR_RESTARTS = 3
# A window of a million one-second intervals is a typo, and would hold a million markers in memory.
MAX_INTERVALS = 100_000
# Each interval is one file; a longer one is a typo (and near timedelta.max, an overflow later).
MAX_INTERVAL = timedelta(days=366)
# Events reach the API within minutes; a longer lag parks the task for no benefit.
MAX_SETTLE_LAG = timedelta(days=1)


class IngestClient(Protocol):
    """What the pipeline needs of a client: one paginated ``logs`` query.

    Each response carries its own figures (``requests``, ``wait_seconds``) and its page
    (``raw_page()``); :class:`~airflow_provider_slack_audit.client.AsyncAuditLogsClient` is one.
    """

    def pages(
        self,
        *,
        oldest: int | None = ...,
        latest: int | None = ...,
        limit: int | None = ...,
        action: str | Iterable[str] | None = ...,
        actor: str | None = ...,
        entity: str | None = ...,
    ) -> AsyncIterator[AuditLogsResponse]: ...


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
    # A rewrite replaces an interval only when the new read holds every id the old file held;
    # this replaces it even when ids would vanish (evidence destroyed on purpose).
    replace_destructively: bool = False
    # Re-read committed intervals and rewrite only those whose id set grew (late events), keeping
    # every id the old file held; unchanged intervals are not touched.
    reconcile: bool = False
    # Silence and volume, drift's daily API snapshot (see ingest.health).
    silence_fraction: float = 0.5
    silence_lookback: int = 7
    fail_on_silence: bool = False
    api_snapshot: bool = False
    # Write-once retention: evidence files written under S3 Object Lock until now + retention.
    retention: timedelta | None = None

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
        if not isinstance(self.replace_destructively, bool):
            raise TypeError(
                f"replace_destructively must be True or False, got {self.replace_destructively!r}"
            )
        if self.replace_destructively and not self.overwrite:
            raise ValueError(
                "replace_destructively=True only applies to a rewrite: pass overwrite=True with it "
                "(committed intervals are otherwise skipped, never replaced)"
            )
        if not isinstance(self.reconcile, bool):
            raise TypeError(f"reconcile must be True or False, got {self.reconcile!r}")
        if self.reconcile and self.overwrite:
            raise ValueError(
                "reconcile=True and overwrite=True are two rerun modes: reconcile adds late events and "
                "keeps every landed id, overwrite rewrites every interval; pass one of them"
            )
        validate_health_settings(
            self.silence_fraction, self.silence_lookback, self.fail_on_silence, self.api_snapshot
        )
        validate_retention(self.retention, self.destination)

    def priority(self, now: datetime) -> Priority:
        """``backfill`` for a window that ended long ago, else ``live``: the shared limiter serves
        live requests first, so a long backfill never delays today's landing by more than a slot."""
        return infer_priority(self.window.end, now)

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
            "replace_destructively": self.replace_destructively,
            "reconcile": self.reconcile,
            "silence_fraction": self.silence_fraction,
            "silence_lookback": self.silence_lookback,
            "fail_on_silence": self.fail_on_silence,
            "api_snapshot": self.api_snapshot,
            "retention_seconds": self.retention.total_seconds() if self.retention is not None else None,
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
            replace_destructively=data.get("replace_destructively", False),
            reconcile=data.get("reconcile", False),
            silence_fraction=data.get("silence_fraction", 0.5),
            silence_lookback=data.get("silence_lookback", 7),
            fail_on_silence=data.get("fail_on_silence", False),
            api_snapshot=data.get("api_snapshot", False),
            retention=(
                timedelta(seconds=data["retention_seconds"])
                if data.get("retention_seconds") is not None
                else None
            ),
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
    rate_limited: int = 0  # 429 answers among the requests
    drained: bool = True  # every query this run read ended on an empty (or absent) next_cursor
    bytes: int = 0
    duplicates: int = 0
    out_of_range: int = 0
    cursor_restarts: int = 0
    queries: int = 0  # paginated logs queries: one per contiguous run of uncommitted intervals
    seconds: float = 0.0
    wait_seconds: float = 0.0
    drift: dict[str, Any] | None = None  # {new_actions, new_keys, new_listed_actions, baseline}
    silence: dict[str, Any] | None = None  # {flagged, reason, events, expected, ...}
    # reconcile=True: intervals rewritten with late events, the late events, and ids the API no
    # longer returns that the landed files keep.
    intervals_reconciled: int = 0
    late_events: int = 0
    vanished_kept: int = 0
    # The destination's ledger head after this window's manifest: {seq, sha256}, an external anchor.
    ledger: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in self.__dict__.items()}


@dataclass
class _IntervalStats:
    pages: int = 0
    duplicates: int = 0
    out_of_range: int = 0
    # A reconcile that found late events: how many, and how late (discovery time - date_create).
    lateness: list[int] | None = None
    vanished_kept: int = 0

    def as_marker_stats(self) -> dict[str, int]:
        stats = {"pages": self.pages, "duplicates": self.duplicates, "out_of_range": self.out_of_range}
        if self.lateness:
            ordered = sorted(self.lateness)
            stats.update(
                late_events=len(ordered),
                late_min_seconds=ordered[0],
                late_median_seconds=ordered[len(ordered) // 2],
                late_max_seconds=ordered[-1],
                vanished_kept=self.vanished_kept,
            )
        return stats


DEDUP_HORIZON_SECONDS = 3600
"""An id is remembered for at least this many seconds of ``date_create`` (and at most twice as
long): a repeat of it within the horizon is dropped as a duplicate, across seconds and files."""
# Entries routed between two yields to the event loop: ~1-2 ms of work on a slow machine.
_ROUTE_SLICE = 1000
# Bytes of a page body scanned per C call (line breaks, UTF-8): short holds of the GIL.
_SCAN_BLOCK = 1 << 18
_get_id = operator.attrgetter("id")
_get_date_create = operator.attrgetter("date_create")
_get_raw = operator.attrgetter("raw")


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

    Raises whatever stopped it, unchanged: :class:`SlackAuditLogsApiError` (with ``kind``), aiohttp
    and timeout errors (transient), ``OSError`` from storage (transient), ``ValueError``/``TypeError``
    for a bad spec (permanent). Committed intervals stay committed; rerun to resume.

    Every interval is read under a lease (see ``landing.lease``): a run finding one leased by a live
    run waits, then skips what that run committed. ``leases`` sets the ttl and the waits.
    """
    # The landing needs Airflow's ObjectStoragePath: imported here, so importing the pipeline (and
    # the outcome module built on it) imports no Airflow.
    from .health import check_window
    from .landing import Landing
    from .landing.lease import LeaseSettings, RunLeases

    logger = logger or log
    spec.validate(now=now())
    started = time.monotonic()
    started_at = now()
    streams: list[dict[str, Any]] = []  # what each completed query of this run read
    landing = Landing(
        spec.destination,
        compression=spec.compression,
        conn_id=spec.destination_conn_id,
        retention=spec.retention,
    )
    query = spec.query
    summary = IngestSummary(window=spec.window.to_json())
    # One destination, one truth: the run's layout and window must fit what is landed there.
    intervals = await asyncio.to_thread(check_destination_fits, spec, landing=landing)
    commits: dict[Interval, IntervalCommit] = {}
    names = NameSampler()
    found = await asyncio.to_thread(_committed_intervals, landing, intervals, query)
    # On a rewrite, the committed intervals are the evidence a new read must keep.
    evidence = {} if spec.replace_destructively else found
    if not (spec.overwrite or spec.reconcile):
        commits, evidence = found, {}
        for interval, commit in commits.items():
            logger.info("Interval %s already committed (%d events): skipped", _span(interval), commit.count)
        summary.intervals_skipped = len(commits)

    pending = [interval for interval in intervals if interval not in commits]
    if pending:
        await _wait_until_settled(pending[-1], spec.settle_lag, now, logger)
    async with RunLeases(landing, leases or LeaseSettings(), logger) as held:
        while pending:
            # Usually one claim: the whole rest. Another run landing part of it makes this wait first.
            claimed, pending = await held.claim(pending)
            meanwhile = await asyncio.to_thread(_committed_intervals, landing, claimed, query)
            meanwhile = {  # on a rewrite, only what another run rewrote since this one looked
                interval: commit
                for interval, commit in meanwhile.items()
                if not (spec.overwrite or spec.reconcile) or found.get(interval) != commit
            }
            for interval, commit in meanwhile.items():
                logger.info(
                    "Interval %s committed by another run (%d events): skipped", _span(interval), commit.count
                )
            commits.update(meanwhile)
            summary.intervals_skipped += len(meanwhile)
            runs = _contiguous_runs([interval for interval in claimed if interval not in meanwhile])
            for run in reversed(runs):  # newest first, like the pages of each run
                landed = await _land_run(
                    client, landing, run, spec, query, summary, logger, evidence, streams, names, started_at
                )
                # A reconcile keeps an unchanged interval's commit as it was: found, not landed.
                fresh = {
                    interval: commit
                    for interval, commit in landed.items()
                    if commit is not evidence.get(interval)
                }
                commits.update(landed)
                summary.intervals_landed += len(fresh)
                summary.intervals_skipped += len(landed) - len(fresh)
                summary.events_landed += sum(commit.count for commit in fresh.values())
            await held.release(claimed)

        run_figures = _run_figures(client, spec, summary, streams, started_at)
        async with held.holding(landing.manifest_lease_path(spec.window)):
            manifest = await asyncio.to_thread(
                landing.write_manifest, spec.window, query, list(commits.values()), run_figures
            )
    summary.manifest = str(manifest)
    summary.ledger = landing.ledger_head.to_json() if landing.ledger_head is not None else None
    summary.events = sum(c.count for c in commits.values())
    summary.bytes = sum(c.bytes for c in commits.values())
    await check_window(client, landing, spec, summary, names, logger, now)
    summary.seconds = time.monotonic() - started
    logger.info(
        "Window %s: %d intervals landed, %d skipped, %d events, %d queries, %d requests, %.1f s, "
        "waited %.1f s -> %s",
        _span(spec.window),
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


def check_destination_fits(
    spec: IngestSpec, *, record: bool = True, landing: Landing | None = None
) -> list[Interval]:
    """The intervals ``spec`` lands, once its layout and window are checked against the destination.

    Blocking storage I/O (the descriptor, a listing of the partitions the window touches), made
    before any request; the operator calls it before deferring too (``record=False``). Raises
    :class:`DestinationConflictError` when the run would put events in a second final file. With
    ``record``, a destination without a descriptor gets one (see ``landing.descriptor``).
    """
    from .landing import Landing
    from .landing.descriptor import prepare_destination
    from .retention import check_object_lock

    if landing is None:
        landing = Landing(
            spec.destination,
            compression=spec.compression,
            conn_id=spec.destination_conn_id,
            retention=spec.retention,
        )
    if landing.retention is not None:
        check_object_lock(landing.destination)
    layout = DestinationLayout(grid=spec.interval, compression=spec.compression, query=spec.query)
    return prepare_destination(landing.destination, spec.window, layout, record=record)


def _committed_intervals(
    landing: Landing, intervals: Sequence[Interval], query: Mapping[str, Any]
) -> dict[Interval, IntervalCommit]:
    found = {}
    for interval in intervals:
        commit = landing.committed(interval, query)
        if commit is not None:
            found[interval] = commit
    return found


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
        logger.info(
            "Interval %s settles in %.0f s (settle_lag %s): waiting", _span(newest), delay, settle_lag
        )
        await asyncio.sleep(delay)


async def _land_run(
    client: IngestClient,
    landing: Landing,
    run: list[Interval],
    spec: IngestSpec,
    query: Mapping[str, Any],
    summary: IngestSummary,
    logger: logging.Logger,
    evidence: Mapping[Interval, IntervalCommit],
    streams: list[dict[str, Any]],
    names: NameSampler | None = None,
    started_at: datetime | None = None,
) -> dict[Interval, IntervalCommit]:
    """Read one run of contiguous uncommitted intervals with one query; return what it committed.

    An expired cursor re-reads the run from its start, over the intervals not yet committed only
    (at most ``MAX_CURSOR_RESTARTS`` times). Entries out of newest-first order make it re-read the
    intervals of that attempt once more, remembering every id.
    """
    landed: dict[Interval, IntervalCommit] = {}
    pending = list(run)
    remember_all_ids = False
    restarts = 0
    while pending:
        stream = _RunStream(
            landing,
            pending,
            query,
            remember_all_ids=remember_all_ids,
            logger=logger,
            evidence=evidence,
            names=names,
            reconcile=spec.reconcile,
            discovered_at=int((started_at or _utcnow()).timestamp()),
            summary=summary,
        )
        summary.queries += 1
        try:
            await stream.read(client, spec, summary)
        except _OutOfOrder as error:
            await stream.abort()
            landed.update(stream.commits)
            logger.warning(
                "Run %s: %s, not newest first; re-reading it remembering every id", _span_of(pending), error
            )
            remember_all_ids = True
            continue
        except SlackAuditLogsApiError as error:
            await stream.abort()
            landed.update(stream.commits)
            if error.kind == "cursor" and restarts < MAX_CURSOR_RESTARTS:
                restarts += 1
                summary.cursor_restarts += 1
                pending = [interval for interval in pending if interval not in stream.commits]
                logger.warning(
                    "Run %s: cursor rejected (%s); re-reading what is not committed from its start",
                    _span_of(pending) if pending else "(all committed)",
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
        streams.append(stream.figures)
        summary.drained = summary.drained and stream.figures["drained"]
        return landed
    return landed


def _run_figures(
    client: IngestClient,
    spec: IngestSpec,
    summary: IngestSummary,
    streams: list[dict[str, Any]],
    started_at: datetime,
) -> dict[str, Any]:
    """What the manifest records of the run writing it: completeness evidence for an auditor."""
    from airflow_provider_slack_audit import __version__

    return {
        "provider_version": __version__,
        "base_url": public_base_url(getattr(client, "base_url", None)),
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
        "streams": streams,
        **(
            {
                "reconcile": {
                    "intervals_reconciled": summary.intervals_reconciled,
                    "late_events": summary.late_events,
                    "vanished_kept": summary.vanished_kept,
                }
            }
            if spec.reconcile
            else {}
        ),
    }


@dataclass
class _RunStream:
    """One query over ``intervals`` (sorted, contiguous), cut into one data file per interval.

    The async side decodes and routes pages; every storage call (open, write, commit) runs in a
    worker thread, one batch at a time in page order, while the next page is fetched.
    """

    landing: Landing
    intervals: Sequence[Interval]
    query: Mapping[str, Any]
    remember_all_ids: bool
    logger: logging.Logger
    # Committed intervals being rewritten: each new file must hold every id the old one held.
    evidence: Mapping[Interval, IntervalCommit] = field(default_factory=dict)
    commits: dict[Interval, IntervalCommit] = field(default_factory=dict)
    names: NameSampler | None = None  # drift: samples action and key names in the decode thread
    # reconcile: rewrite an evidence interval only when its id set grew, keeping every old id.
    reconcile: bool = False
    discovered_at: int = 0  # Unix seconds: when this run read the window (lateness = this - date_create)
    summary: IngestSummary | None = None
    _must_hold: dict[int, set[str]] = field(default_factory=dict)
    _old_ids: dict[int, set[str]] = field(default_factory=dict)
    _writers: dict[int, IntervalWriter] = field(default_factory=dict)
    _stats: dict[int, _IntervalStats] = field(default_factory=dict)
    _evidence: dict[int, IdEvidence] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    _io: asyncio.Future[None] | None = None
    _started: float = field(default_factory=time.monotonic)

    async def read(self, client: IngestClient, spec: IngestSpec, summary: IngestSummary) -> None:
        # The stream's blocking work (the client's page decode, the entry checks, the writes) runs
        # in one thread of its own, in order: see client.blocking for what that saves in memory.
        with one_thread("slack-audit-stream"):
            await self._read(client, spec, summary)

    async def _read(self, client: IngestClient, spec: IngestSpec, summary: IngestSummary) -> None:
        oldest, latest = self.intervals[0].oldest, self.intervals[-1].latest
        starts = [interval.oldest for interval in self.intervals]
        current = len(self.intervals) - 1  # the interval the stream is in (normal mode)
        boundary_second = latest + 1
        # Entries come newest first. Ids are remembered in two generations of DEDUP_HORIZON_SECONDS
        # of date_create each: a repeat within the horizon is dropped (a page boundary cutting
        # through a crowded second, or the same event at another second), and memory is bounded by
        # the events of two horizons, whatever the run's or the interval's size (a set of every id
        # costs ~120 MB per million events). An entry newer than the oldest second seen so far
        # breaks the order this relies on: _OutOfOrder re-reads remembering every id.
        seen: set[str] = set()
        older: set[str] = set()  # the previous generation (empty when remembering every id)
        generation_start = boundary_second
        stats = self._stats
        figures = self.figures
        figures.update(oldest=oldest, latest=latest, pages=0, requests=0, rate_limited=0, drained=False)
        next_cursor = ""
        try:
            async for response in client.pages(
                oldest=oldest,
                latest=latest,
                limit=spec.limit,
                action=spec.action,
                actor=spec.actor,
                entity=spec.entity,
            ):
                summary.pages += 1
                summary.requests += response.requests
                summary.wait_seconds += response.wait_seconds
                rate_limited = getattr(response, "rate_limited", 0)
                summary.rate_limited += rate_limited
                figures["pages"] += 1
                figures["requests"] += response.requests
                figures["rate_limited"] += rate_limited
                try:
                    entries, next_cursor = response.raw_page()
                except InvalidEntryApiError as error:
                    raise self._invalid_entry(error, summary.pages) from None
                # C-speed scans of the body in a thread; per-entry work only when they find something.
                fixes = await run_blocking(_entry_fixes, response.content, entries, self.names)
                if fixes is None and not self.remember_all_ids and entries:
                    # The usual page (in range, newest first, no id seen before) is routed in the
                    # stream's thread, with C-speed list and set operations, to exactly what the
                    # entry-by-entry loop below does: a few ms a page that the event loop never
                    # waits on (and a generation of ids it drops is freed there too).
                    routed = await run_blocking(
                        _route_usual_page,
                        entries,
                        _RouteState(seen, older, generation_start, boundary_second, current),
                        oldest,
                        latest,
                        starts,
                    )
                    if routed is not None:
                        state, routed_batches, routed_keys, routed_passed = routed
                        seen, older, generation_start = state.seen, state.older, state.generation_start
                        boundary_second, current = state.boundary_second, state.current
                        for index in routed_keys:
                            stats.setdefault(index, _IntervalStats()).pages += 1
                        await self._submit(routed_batches, routed_passed, routed_keys, single_line=True)
                        continue
                batches: dict[int, list[Any]] = {}
                batch_keys: dict[int, list[Any]] = {}  # the RawEntry of each batched entry
                passed: list[int] = []
                for offset in range(0, len(entries), _ROUTE_SLICE):
                    if offset:
                        await asyncio.sleep(0)  # let other triggers run between slices
                    for position in range(offset, min(offset + _ROUTE_SLICE, len(entries))):
                        entry = entries[position]
                        second = entry.date_create
                        if not oldest <= second <= latest:
                            stats.setdefault(current, _IntervalStats()).out_of_range += 1
                            summary.out_of_range += 1
                            continue
                        if second < boundary_second:
                            boundary_second = second
                            if (
                                second < generation_start - DEDUP_HORIZON_SECONDS
                                and not self.remember_all_ids
                            ):
                                older, seen, generation_start = seen, set(), second
                        elif second > boundary_second and not self.remember_all_ids:
                            raise _OutOfOrder(f"an entry of {second} came after one of {boundary_second}")
                        if self.remember_all_ids:
                            index = bisect_right(starts, second) - 1
                        else:
                            while second < starts[current]:
                                passed.append(current)  # the stream is below its start: complete
                                current -= 1
                            index = current
                        if entry.id in seen or entry.id in older:
                            stats.setdefault(index, _IntervalStats()).duplicates += 1
                            summary.duplicates += 1
                            continue
                        seen.add(entry.id)
                        raw: Any = entry.raw
                        if fixes is not None and position in fixes:
                            raw = fixes[position]
                            if isinstance(raw, str):
                                raise InvalidEntryError(
                                    f"entry {position} of page {summary.pages} of interval "
                                    f"{self.intervals[index].key} (id {entry.id}) {raw}; it cannot be landed "
                                    "as strict UTF-8 JSON, and the API returns the same bytes on a retry: "
                                    "report it to Slack, or land the window without that interval"
                                )
                        batch = batches.get(index)
                        if batch is None:
                            batch = batches[index] = []
                            keys = batch_keys[index] = []
                            stats.setdefault(index, _IntervalStats()).pages += 1
                        else:
                            keys = batch_keys[index]
                        batch.append(raw)
                        keys.append(entry)
                await self._submit(batches, passed, batch_keys, single_line=fixes is None)
            # The client stops on an empty or absent next_cursor; recorded, not assumed.
            figures["drained"] = not next_cursor
            # Pagination ended: every interval not committed yet is complete.
            rest = range(len(self.intervals)) if self.remember_all_ids else range(current, -1, -1)
            await self._submit({}, [index for index in rest if self.intervals[index] not in self.commits])
            await self._drain()
        finally:
            # Never abort a file while a write thread still holds it.
            if self._io is not None and not self._io.done():
                await asyncio.wait([self._io])

    def _invalid_entry(self, error: InvalidEntryApiError, page: int) -> InvalidEntryError:
        """The permanent error for an entry that cannot be landed, naming its interval."""
        where = "the run's intervals"
        if error.date_create is not None:
            index = bisect_right([interval.oldest for interval in self.intervals], error.date_create) - 1
            if 0 <= index < len(self.intervals):
                where = f"interval {self.intervals[index].key}"
        return InvalidEntryError(
            f"entry {error.position} of page {page} of {where} (id {error.entry_id}) holds an escaped "
            "lone surrogate, which is not Unicode: it cannot be landed as strict UTF-8 JSON, and the "
            "API returns the same bytes on a retry: report it to Slack, or land the window without "
            "that interval"
        )

    async def _submit(
        self,
        batches: dict[int, list[Any]],
        complete: list[int],
        keys: dict[int, list[Any]] | None = None,
        *,
        single_line: bool = False,
    ) -> None:
        """Write a page's batches and commit the completed intervals, in the stream's thread, once
        the previous page's are done. ``single_line``: the page's body scan found no line break."""
        await self._drain()
        if batches or complete:
            self._io = asyncio.ensure_future(
                run_blocking(self._apply, batches, complete, keys or {}, single_line)
            )

    async def _drain(self) -> None:
        if self._io is not None:
            io, self._io = self._io, None
            await io

    def _writer(self, index: int) -> IntervalWriter:
        writer = self._writers.get(index)
        if writer is None:
            interval = self.intervals[index]
            old = self.evidence.get(interval)
            if old is not None:
                self._must_hold[index] = self.landing.committed_ids(old)
                if self.reconcile:
                    self._old_ids[index] = set(self._must_hold[index])
                    self._stats.setdefault(index, _IntervalStats()).lateness = []
            writer = self._writers[index] = self.landing.open_interval(interval)
        return writer

    def _apply(
        self,
        batches: dict[int, list[Any]],
        complete: list[int],
        keys: dict[int, list[Any]],
        single_line: bool,
    ) -> None:
        """In a worker thread: append each interval's batch, then commit the completed intervals."""
        for index in sorted(batches, reverse=True):
            self._writer(index).write(batches[index], single_line=single_line)
            batch_keys = keys.get(index, ())
            self._evidence.setdefault(index, IdEvidence()).add(batch_keys)
            must_hold = self._must_hold.get(index)
            if must_hold:
                must_hold.difference_update(entry.id for entry in batch_keys)
            old_ids = self._old_ids.get(index)
            if old_ids is not None:
                lateness = self._stats[index].lateness
                assert lateness is not None
                lateness.extend(
                    self.discovered_at - entry.date_create for entry in batch_keys if entry.id not in old_ids
                )
        for index in complete:
            interval = self.intervals[index]
            writer = self._writer(index)
            lost = self._must_hold.pop(index, set())
            if index in self._old_ids:
                if not self._reconcile(index, writer, lost):
                    continue
            elif lost:
                writer.abort()
                del self._writers[index]
                raise EvidenceLossError(interval, lost=len(lost), held=self.evidence[interval].count)
            stats = self._stats.get(index, _IntervalStats())
            commit = writer.commit(
                query=self.query,
                stats=stats.as_marker_stats(),
                evidence=self._evidence.pop(index, IdEvidence()).to_json(),
            )
            del self._writers[index]
            self.commits[interval] = commit
            self.logger.info(
                "Landed interval %s: %d events, %d pages, %d bytes, %.2f s into its run, "
                "%d duplicates, %d out of range -> %s",
                _span(interval),
                commit.count,
                stats.pages,
                commit.bytes,
                time.monotonic() - self._started,
                stats.duplicates,
                stats.out_of_range,
                commit.path,
            )

    def _reconcile(self, index: int, writer: IntervalWriter, vanished: set[str]) -> bool:
        """In a worker thread, for a committed interval re-read by a reconcile: True when it is to be
        committed anew (late events found; the old entries the API no longer returns are appended, so
        every landed id stays), False when it stays as it was (its new file is discarded)."""
        interval, old = self.intervals[index], self.evidence[self.intervals[index]]
        self._old_ids.pop(index)
        stats = self._stats.setdefault(index, _IntervalStats())
        late = len(stats.lateness or ())
        if vanished:
            self.logger.warning(
                "Interval %s: %d of its %d landed ids are no longer returned by the API; the landed "
                "file keeps them",
                _span(interval),
                len(vanished),
                old.count,
            )
        if self.summary is not None:
            self.summary.vanished_kept += len(vanished)
        if not late:
            writer.abort()
            del self._writers[index]
            self._evidence.pop(index, None)
            self.commits[interval] = old  # untouched: the same file, marker and bytes
            self.logger.info("Interval %s: no late events, left as landed", _span(interval))
            return False
        if vanished:
            lines, keys = self.landing.committed_entries(old, vanished)
            writer.write(lines)
            self._evidence.setdefault(index, IdEvidence()).add(keys)
            stats.vanished_kept = len(vanished)
        if self.summary is not None:
            self.summary.intervals_reconciled += 1
            self.summary.late_events += late
        self.logger.info("Interval %s: %d late events found; rewriting it with them", _span(interval), late)
        return True

    async def abort(self) -> None:
        if self._io is not None and not self._io.done():
            await asyncio.wait([self._io])
        await asyncio.to_thread(self.abort_now)

    def abort_now(self) -> None:
        """Discard every interval file of this stream that is not committed."""
        writers, self._writers = list(self._writers.values()), {}
        for writer in writers:
            writer.abort()


class _RouteState(NamedTuple):
    """Where the stream is: the remembered ids, the oldest second read, the current interval."""

    seen: set[str]
    older: set[str]
    generation_start: int
    boundary_second: int
    current: int


def _route_usual_page(
    entries: list[Any], state: _RouteState, oldest: int, latest: int, starts: list[int]
) -> tuple[_RouteState, dict[int, list[Any]], dict[int, list[Any]], list[int]] | None:
    """In the stream's thread: a usual page's batches (raw entries and their RawEntry by interval),
    the intervals it passed below and where the stream is after it; ``None`` (and nothing changed)
    when the page is not usual: out of range, out of order, or holding an id already seen."""
    seconds = list(map(_get_date_create, entries))
    if not (
        oldest <= seconds[-1]
        and seconds[0] <= min(latest, state.boundary_second)
        and all(map(operator.ge, seconds, islice(seconds, 1, None)))
    ):
        return None
    yield_to_loop()
    ids = list(map(_get_id, entries))
    page_ids = set(ids)
    yield_to_loop()
    if len(page_ids) != len(ids) or not page_ids.isdisjoint(state.seen):
        return None
    if not page_ids.isdisjoint(state.older):
        return None
    seen, older, generation_start = _remember(ids, seconds, state.seen, state.older, state.generation_start)
    yield_to_loop()
    batches: dict[int, list[Any]] = {}
    batch_keys: dict[int, list[Any]] = {}
    passed: list[int] = []
    current = _cut(entries, seconds, starts, state.current, batches, batch_keys, passed)
    return _RouteState(seen, older, generation_start, seconds[-1], current), batches, batch_keys, passed


def _remember(
    ids: list[str], seconds: list[int], seen: set[str], older: set[str], generation_start: int
) -> tuple[set[str], set[str], int]:
    """Add a page's ids (newest first, none seen before) to the two generations of remembered ids,
    starting a new generation where the entry-by-entry loop would: at each entry more than
    DEDUP_HORIZON_SECONDS older than the current generation's start."""
    position, count = 0, len(ids)
    while True:
        # The first entry older than generation_start - horizon (seconds descend: bisect on -second).
        cut = bisect_right(
            seconds, DEDUP_HORIZON_SECONDS - generation_start, position, count, key=operator.neg
        )
        seen.update(islice(ids, position, cut))
        if cut == count:
            return seen, older, generation_start
        _release(older)
        older, seen, generation_start = seen, set(), seconds[cut]
        position = cut


_RELEASE_SLICE = 10_000


def _release(ids: set[str]) -> None:
    """Empty a generation of ids the stream no longer needs, here (in the stream's thread) and a
    slice at a time: freeing a set of 300k ids in one go holds the GIL for ~40 ms, and the event
    loop's thread (holding the last reference) would do it."""
    held = list(ids)
    ids.clear()  # the list still holds every id: nothing is freed yet
    while held:
        del held[-_RELEASE_SLICE:]
        yield_to_loop()


def _cut(
    entries: list[Any],
    seconds: list[int],
    starts: list[int],
    current: int,
    batches: dict[int, list[Any]],
    batch_keys: dict[int, list[Any]],
    passed: list[int],
) -> int:
    """Cut a page (in range, newest first) at the starts of the intervals it crosses; return the
    interval the stream is in after it. Each interval the page passed below is added to ``passed``."""
    position, count = 0, len(entries)
    while True:
        start = starts[current]
        end = (
            count
            if seconds[-1] >= start
            else bisect_right(seconds, -start, position, count, key=operator.neg)
        )
        if end > position:
            keys = batch_keys[current] = entries[position:end]
            batches[current] = list(map(_get_raw, keys))
        if end == count:
            return current
        passed.append(current)  # the stream is below its start: complete
        current -= 1
        position = end


def _scan_body(content: bytes) -> tuple[bool, bool]:
    """Whether ``content`` holds a line break, and whether it is not UTF-8, block by block.

    Each C call covers one block (~0.1 ms), not a ~10 MB body (a whole-body ``decode`` held the GIL,
    and so the event loop thread, for several ms per page); the incremental decoder carries a
    character cut by a block boundary into the next block.
    """
    view = memoryview(content)
    decoder = codecs.getincrementaldecoder("utf-8")()
    multiline = bad_utf8 = False
    for start in range(0, len(view), _SCAN_BLOCK):
        block = view[start : start + _SCAN_BLOCK]
        if not multiline:
            multiline = content.find(b"\n", start, start + _SCAN_BLOCK) >= 0 or (
                content.find(b"\r", start, start + _SCAN_BLOCK) >= 0
            )
        if not bad_utf8:
            try:
                decoder.decode(block)
            except UnicodeDecodeError:
                bad_utf8 = True
        if multiline and bad_utf8:
            break
        yield_to_loop()
    if not bad_utf8:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            bad_utf8 = True
    return multiline, bad_utf8


def _entry_fixes(
    content: bytes, entries: Sequence[Any], names: NameSampler | None = None
) -> dict[int, bytes | str] | None:
    """What must change before a page's entries can be landed as strict UTF-8, one JSON per line.

    ``None`` (the fast path: two C-speed scans of the body) when nothing does. Otherwise a map from
    entry position to its single-line re-encoding (``msgspec.json.format``: whitespace only, every
    value byte-exact), or to the reason (a ``str``) why it cannot be landed (invalid UTF-8). Escapes
    of lone surrogates never get here: the page decode refuses them. ``names`` samples the page.
    """
    if names is not None:
        names.observe(entries)
    multiline, bad_utf8 = _scan_body(content)
    if not (multiline or bad_utf8):
        return None
    fixes: dict[int, bytes | str] = {}
    for position, entry in enumerate(entries):
        raw = bytes(entry.raw)
        if bad_utf8:
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as error:
                fixes[position] = f"is not valid UTF-8 (byte {error.start} of the entry)"
                continue
        if multiline and (b"\n" in raw or b"\r" in raw):
            fixes[position] = msgspec.json.format(raw, indent=0)
    return fixes


class InvalidEntryError(ValueError):
    """An entry that cannot be landed as strict UTF-8 JSON (permanent: a retry gets the same bytes)."""


class EvidenceLossError(Exception):
    """A rewrite whose new read lacks ids the committed file holds: nothing was replaced (permanent)."""

    def __init__(self, interval: Interval, *, lost: int, held: int) -> None:
        self.interval = interval
        self.lost = lost
        super().__init__(
            f"interval {interval.key} was not rewritten: the new read lacks {lost} of the {held} event ids "
            f"its committed file holds (API retention, an incident or a narrower token scope?). The landed "
            f"file and its marker are unchanged. To replace it anyway, destroying those events, rerun "
            f"with overwrite=True and replace_destructively=True"
        )


class _OutOfOrder(Exception):
    """The API broke its newest-first order, so repeats can no longer be found by the last second."""


def _span(bounds: Interval | Window) -> str:
    return f"[{bounds.start.isoformat()}, {bounds.end.isoformat()})"


def _span_of(intervals: Sequence[Interval]) -> str:
    return f"[{intervals[0].start.isoformat()}, {intervals[-1].end.isoformat()})"


__all__ = [
    "DEDUP_HORIZON_SECONDS",
    "DestinationConflictError",
    "EvidenceLossError",
    "IngestClient",
    "IngestSpec",
    "IngestSummary",
    "InvalidEntryError",
    "check_destination_fits",
    "ingest_window",
]
