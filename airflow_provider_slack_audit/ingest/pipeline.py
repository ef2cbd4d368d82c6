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
from .errors import EvidenceLossError, InvalidEntryError
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
    # reconcile=True or overwrite=True: landed ids the API now serves in another interval (they stay
    # where they landed first), and landed ids whose body Slack changed.
    moved: int = 0
    bodies_changed: int = 0
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
    # The dedup generations in force when the stream passed below the interval's start (the start
    # of the current one and of the older one): what a run resuming below it must remember.
    dedup: tuple[int, int] | None = None
    # A rerun: ids served here now but landed in another interval, ids landed here now served in
    # another interval (both stay where they landed first), landed ids whose body Slack changed.
    moved_in: int = 0
    moved_out: int = 0
    bodies_changed: int = 0

    def as_marker_stats(self) -> dict[str, int]:
        stats = {"pages": self.pages, "duplicates": self.duplicates, "out_of_range": self.out_of_range}
        for name in ("moved_in", "moved_out", "bodies_changed"):
            if getattr(self, name):
                stats[name] = getattr(self, name)
        if self.dedup is not None:
            stats.update(dedup_generation_start=self.dedup[0], dedup_older_start=self.dedup[1])
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


class _LandedId(msgspec.Struct, gc=False):
    id: str


_landed_id = msgspec.json.Decoder(_LandedId).decode


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

    moves: dict[str, dict[str, int]] = {}  # a rerun's moved ids and changed bodies, by interval
    retracted: list[bool] = []

    def retract_manifest() -> None:
        if not retracted:
            retracted.append(True)
            landing.withdraw_manifest(spec.window)

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
                    client,
                    landing,
                    run,
                    spec,
                    query,
                    summary,
                    logger,
                    evidence,
                    streams,
                    names,
                    started_at,
                    committed=commits,
                    moves=moves,
                    retract_manifest=retract_manifest,
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

        run_figures = _run_figures(client, spec, summary, streams, started_at, moves)
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
    *,
    committed: Mapping[Interval, IntervalCommit] | None = None,
    moves: dict[str, dict[str, int]] | None = None,
    retract_manifest: Callable[[], None] | None = None,
) -> dict[Interval, IntervalCommit]:
    """Read one run of contiguous uncommitted intervals with one query; return what it committed.

    An expired cursor re-reads the run from its start, over the intervals not yet committed only
    (at most ``MAX_CURSOR_RESTARTS`` times). Entries out of newest-first order make it re-read the
    intervals of that attempt once more, remembering every id. ``committed``: the window's
    intervals committed so far, from which a stream starting next to them rebuilds its dedup memory.
    """
    landed: dict[Interval, IntervalCommit] = {}
    pending = list(run)
    remember_all_ids = False
    restarts = 0
    moved: set[str] = set()  # a rerun's moved ids, kept across re-reads of the run
    moves = moves if moves is not None else {}
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
            neighbours={
                interval: commit
                for interval, commit in {**(committed or {}), **landed}.items()
                if interval not in pending
            },
            moved=moved,
            moves=moves,
            retract_manifest=retract_manifest,
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
    moves: Mapping[str, Mapping[str, int]] | None = None,
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
        **(
            {
                "moves": {
                    "moved": summary.moved,
                    "bodies_changed": summary.bodies_changed,
                    "intervals": {key: dict(noted) for key, noted in sorted((moves or {}).items())},
                }
            }
            if spec.reconcile or spec.overwrite
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
    # The window's committed intervals outside this stream: its dedup memory is rebuilt from the one
    # right after it (a resumed run, a re-read after an expired cursor).
    neighbours: Mapping[Interval, IntervalCommit] = field(default_factory=dict)
    # A rerun: ids served in an interval other than the one holding them (shared by the streams of
    # one run of intervals), the per-interval moves for the manifest, and the manifest's withdrawal.
    moved: set[str] = field(default_factory=set)
    moves: dict[str, dict[str, int]] = field(default_factory=dict)
    retract_manifest: Callable[[], None] | None = None
    _must_hold: dict[int, set[str]] = field(default_factory=dict)
    _landed: dict[int, dict[str, int]] = field(default_factory=dict)
    _homes: dict[str, Interval] = field(default_factory=dict)
    _deferred: list[int] = field(default_factory=list)
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
        generation_start = older_start = boundary_second
        if self.evidence:
            await run_blocking(self._load_landed)
        if not self.remember_all_ids and self.neighbours:
            # A run resuming next to committed intervals remembers what a clean run would have.
            resumed = await run_blocking(self._resumed_memory)
            if resumed is not None:
                seen, older, generation_start, older_start = resumed
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
                        _RouteState(seen, older, generation_start, older_start, boundary_second, current),
                        oldest,
                        latest,
                        starts,
                    )
                    if routed is not None:
                        state, routed_batches, routed_keys, routed_passed, dedup = routed
                        seen, older, generation_start = state.seen, state.older, state.generation_start
                        older_start = state.older_start
                        boundary_second, current = state.boundary_second, state.current
                        for index in routed_keys:
                            stats.setdefault(index, _IntervalStats()).pages += 1
                        for index, generations in dedup.items():
                            stats.setdefault(index, _IntervalStats()).dedup = generations
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
                            if not self.remember_all_ids:
                                while second < starts[current]:
                                    # Complete; the generations in force at its start are kept
                                    # with it, for a run resuming below it.
                                    interval_stats = stats.setdefault(current, _IntervalStats())
                                    interval_stats.dedup = (generation_start, older_start)
                                    passed.append(current)
                                    current -= 1
                                if second < generation_start - DEDUP_HORIZON_SECONDS:
                                    older, seen = seen, set()
                                    older_start, generation_start = generation_start, second
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
            if not self.remember_all_ids:
                for index in rest:
                    stats.setdefault(index, _IntervalStats()).dedup = (generation_start, older_start)
            await self._submit(
                {}, [index for index in rest if self.intervals[index] not in self.commits], final=True
            )
            await self._drain()
        finally:
            # Never abort a file while a write thread still holds it.
            if self._io is not None and not self._io.done():
                await asyncio.wait([self._io])

    def _resumed_memory(self) -> tuple[set[str], set[str], int, int] | None:
        """In the stream's thread: the dedup memory a clean run had where this stream starts, when
        the interval right after it is committed and says which generations were in force there.

        A generation holds the ids of an unbroken span of ``date_create`` (entries come newest
        first), so the two are the ids the committed files hold in ``[start, generation_start]``
        and ``(generation_start, older_start]``: rebuilt exactly, so a resumed run drops (and
        forgets) the same repeats as a clean one, and ends with the same files.
        """
        start = self.intervals[-1].latest + 1
        after = next((c for i, c in self.neighbours.items() if i.oldest == start), None)
        if after is None or "dedup_generation_start" not in after.stats:
            return None
        generation_start = after.stats["dedup_generation_start"]
        older_start = after.stats["dedup_older_start"]
        seen: set[str] = set()
        older: set[str] = set()
        for interval, commit in self.neighbours.items():
            if interval.oldest <= older_start and interval.latest >= start:
                for key in self.landing.committed_keys(commit):
                    if start <= key.date_create <= generation_start:
                        seen.add(key.id)
                    elif generation_start < key.date_create <= older_start:
                        older.add(key.id)
        return seen, older, generation_start, older_start

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
        final: bool = False,
    ) -> None:
        """Write a page's batches and commit the completed intervals, in the stream's thread, once
        the previous page's are done. ``single_line``: the page's body scan found no line break.
        ``final``: the stream has ended (a landed interval waiting to tell moves from losses decides)."""
        await self._drain()
        if batches or complete or final:
            self._io = asyncio.ensure_future(
                run_blocking(self._apply, batches, complete, keys or {}, single_line, final)
            )

    async def _drain(self) -> None:
        if self._io is not None:
            io, self._io = self._io, None
            await io

    def _load_landed(self) -> None:
        """In the stream's thread, before a rerun reads: what the landed files hold. Where each id
        landed (every committed interval of the window: an id served at another second is MOVED,
        not late), and for this stream's intervals a hash of each landed line (a changed body)."""
        mine = {interval: index for index, interval in enumerate(self.intervals)}
        for interval, old in self.evidence.items():
            index = mine.get(interval)
            if index is None:
                for entry_id in self.landing.committed_ids(old):
                    self._homes.setdefault(entry_id, interval)
                continue
            landed = self._landed[index] = {}
            for line in self.landing.committed_lines(old):
                entry_id = _landed_id(line).id
                landed[entry_id] = hash(line)
                self._homes.setdefault(entry_id, interval)
            self._must_hold[index] = set(landed)
            if self.reconcile:
                self._stats.setdefault(index, _IntervalStats()).lateness = []

    def _sift(self, index: int, batch: list[Any], batch_keys: Sequence[Any]) -> tuple[list[Any], list[Any]]:
        """In a rerun, what of a batch for interval ``index`` is written: not an id landed in another
        interval (moved: it stays where it landed first), and in a reconcile not an id landed here
        either (its landed line stays as it is); a changed body is counted either way."""
        interval = self.intervals[index]
        landed = self._landed.get(index, {})
        must_hold = self._must_hold.get(index, set())
        stats = self._stats.setdefault(index, _IntervalStats())
        kept: list[Any] = []
        kept_keys: list[Any] = []
        for raw, key in zip(batch, batch_keys, strict=True):
            entry_id = key.id
            line_hash = landed.get(entry_id)
            if line_hash is not None:
                must_hold.discard(entry_id)
                if hash(bytes(raw)) != line_hash:
                    stats.bodies_changed += 1
                if self.reconcile:
                    continue
            elif self._homes.get(entry_id, interval) != interval:
                stats.moved_in += 1
                self.moved.add(entry_id)
                continue
            elif stats.lateness is not None:
                stats.lateness.append(self.discovered_at - key.date_create)
            kept.append(raw)
            kept_keys.append(key)
        return kept, kept_keys

    def _writer(self, index: int) -> IntervalWriter:
        writer = self._writers.get(index)
        if writer is None:
            writer = self._writers[index] = self.landing.open_interval(self.intervals[index])
            if self.reconcile and index in self._landed:
                # A reconcile adds to what landed: the old file's lines first, as they are.
                old = self.evidence[self.intervals[index]]
                lines, keys = self.landing.committed_entries(old, self._landed[index].keys())
                writer.write(lines)
                self._evidence.setdefault(index, IdEvidence()).add(keys)
        return writer

    def _apply(
        self,
        batches: dict[int, list[Any]],
        complete: list[int],
        keys: dict[int, list[Any]],
        single_line: bool,
        final: bool = False,
    ) -> None:
        """In a worker thread: append each interval's batch, then commit the completed intervals."""
        for index in sorted(batches, reverse=True):
            batch, batch_keys = batches[index], keys.get(index, ())
            if self._homes:
                batch, batch_keys = self._sift(index, batch, batch_keys)
                if not batch:
                    continue
            self._writer(index).write(batch, single_line=single_line)
            self._evidence.setdefault(index, IdEvidence()).add(batch_keys)
        for index in complete:
            if index in self._landed:
                self._complete_landed(index, final)
            else:
                self._commit(index)
        if final:
            deferred, self._deferred = sorted(self._deferred, reverse=True), []
            for index in deferred:
                self._complete_landed(index, final=True)

    def _complete_landed(self, index: int, final: bool) -> None:
        """In a worker thread, for a committed interval re-read by a rerun: commit it anew, or (a
        reconcile without late events) leave it as it was. Its landed ids the read did not serve
        here are MOVED when the read served them in another interval, else vanished; an id that
        may yet be served in an older interval of the stream makes it wait for the stream's end."""
        lost = self._must_hold[index]
        if not final and not lost <= self.moved:
            self._deferred.append(index)
            return
        interval, old = self.intervals[index], self.evidence[self.intervals[index]]
        del self._must_hold[index]
        stats = self._stats.setdefault(index, _IntervalStats())
        moved_out = lost & self.moved
        vanished = lost - self.moved
        stats.moved_out = len(moved_out)
        self._record_moves(interval, stats)
        if moved_out:
            self.logger.info(
                "Interval %s: %d of its landed ids are now served at a second of another interval; "
                "they stay in this file, where they were landed first",
                _span(interval),
                len(moved_out),
            )
        if not self.reconcile:
            if vanished:
                writer = self._writers.pop(index, None)
                if writer is not None:
                    writer.abort()
                raise EvidenceLossError(interval, lost=len(vanished), held=old.count)
            if moved_out:
                lines, keys = self.landing.committed_entries(old, moved_out)
                self._writer(index).write(lines)
                self._evidence.setdefault(index, IdEvidence()).add(keys)
            self._commit(index)
            return
        if vanished:
            self.logger.warning(
                "Interval %s: %d of its %d landed ids are no longer returned by the API; the landed "
                "file keeps them",
                _span(interval),
                len(vanished),
                old.count,
            )
        late = len(stats.lateness or ())
        if self.summary is not None:
            self.summary.vanished_kept += len(vanished)
        if not late:
            writer = self._writers.pop(index, None)
            if writer is not None:
                writer.abort()
            self._evidence.pop(index, None)
            self.commits[interval] = old  # untouched: the same file, marker and bytes
            self.logger.info("Interval %s: no late events, left as landed", _span(interval))
            return
        stats.vanished_kept = len(vanished)
        if self.summary is not None:
            self.summary.intervals_reconciled += 1
            self.summary.late_events += late
        self.logger.info("Interval %s: %d late events found; rewriting it with them", _span(interval), late)
        self._commit(index)

    def _record_moves(self, interval: Interval, stats: _IntervalStats) -> None:
        noted = {
            name: value
            for name, value in (
                ("moved_in", stats.moved_in),
                ("moved_out", stats.moved_out),
                ("bodies_changed", stats.bodies_changed),
            )
            if value
        }
        if noted:
            self.moves[interval.key] = noted
        if self.summary is not None:
            self.summary.moved += stats.moved_in
            self.summary.bodies_changed += stats.bodies_changed
        if stats.bodies_changed:
            self.logger.warning(
                "Interval %s: Slack changed the body of %d landed ids; %s",
                _span(interval),
                stats.bodies_changed,
                "the landed lines stay as they are (reconcile keeps the first version)"
                if self.reconcile
                else "the file is rewritten with the API's current version (overwrite)",
            )

    def _commit(self, index: int) -> None:
        """In a worker thread: commit interval ``index`` (its writer holds every line of it)."""
        interval = self.intervals[index]
        writer = self._writer(index)
        if index in self._landed and self.retract_manifest is not None:
            # The window's manifest lists the file this replaces: withdrawn before the file
            # changes, written anew at the run's end, so no manifest ever disagrees with a marker.
            self.retract_manifest()
        if index not in self._landed:
            self._record_moves(interval, self._stats.setdefault(index, _IntervalStats()))
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
    """Where the stream is: the remembered ids (two generations, and where each began), the oldest
    second read, the current interval."""

    seen: set[str]
    older: set[str]
    generation_start: int
    older_start: int
    boundary_second: int
    current: int


# Where the stream is after a page, its batches and their keys by interval, the intervals it passed
# below, and the dedup generations in force at each of their starts.
_Routed = tuple[
    _RouteState, dict[int, list[Any]], dict[int, list[Any]], list[int], dict[int, tuple[int, int]]
]


def _route_usual_page(
    entries: list[Any], state: _RouteState, oldest: int, latest: int, starts: list[int]
) -> _Routed | None:
    """In the stream's thread: a usual page's batches (raw entries and their RawEntry by interval),
    the intervals it passed below (with the dedup generations in force as it did: see
    ``_IntervalStats.dedup``) and where the stream is after it; ``None`` (and nothing changed)
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
    batches: dict[int, list[Any]] = {}
    batch_keys: dict[int, list[Any]] = {}
    passed: list[int] = []
    cuts: list[int] = []
    current = _cut(entries, seconds, starts, state.current, batches, batch_keys, passed, cuts)
    memory = (state.seen, state.older, state.generation_start, state.older_start)
    # Remembered up to each interval start the page passed below, so the generations in force
    # there are known (a resumed run starts from them: see _RunStream._resumed_memory).
    dedup: dict[int, tuple[int, int]] = {}
    position = 0
    for index, cut in zip(passed, cuts, strict=True):
        memory = _remember_span(ids, seconds, *memory, position, cut)
        dedup[index] = (memory[2], memory[3])
        position = cut
    seen, older, generation_start, older_start = _remember_span(ids, seconds, *memory, position, len(ids))
    yield_to_loop()
    state = _RouteState(seen, older, generation_start, older_start, seconds[-1], current)
    return state, batches, batch_keys, passed, dedup


def _remember(
    ids: list[str], seconds: list[int], seen: set[str], older: set[str], generation_start: int
) -> tuple[set[str], set[str], int]:
    """Add a page's ids (newest first, none seen before) to the two generations of remembered ids,
    starting a new generation where the entry-by-entry loop would: at each entry more than
    DEDUP_HORIZON_SECONDS older than the current generation's start."""
    seen, older, generation_start, _ = _remember_span(
        ids, seconds, seen, older, generation_start, generation_start, 0, len(ids)
    )
    return seen, older, generation_start


def _remember_span(
    ids: list[str],
    seconds: list[int],
    seen: set[str],
    older: set[str],
    generation_start: int,
    older_start: int,
    position: int,
    count: int,
) -> tuple[set[str], set[str], int, int]:
    """:func:`_remember` over the page's entries ``[position, count)``, also keeping where the older
    generation began (``older_start``)."""
    while True:
        # The first entry older than generation_start - horizon (seconds descend: bisect on -second).
        cut = bisect_right(
            seconds, DEDUP_HORIZON_SECONDS - generation_start, position, count, key=operator.neg
        )
        seen.update(islice(ids, position, cut))
        if cut == count:
            return seen, older, generation_start, older_start
        _release(older)
        older, seen, older_start, generation_start = seen, set(), generation_start, seconds[cut]
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
    cuts: list[int],
) -> int:
    """Cut a page (in range, newest first) at the starts of the intervals it crosses; return the
    interval the stream is in after it. Each interval the page passed below is added to ``passed``,
    and the position of the page's first entry below its start to ``cuts``."""
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
        cuts.append(end)
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
