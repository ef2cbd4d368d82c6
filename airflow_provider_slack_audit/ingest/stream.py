"""The run stream: one paginated ``logs`` query over contiguous uncommitted intervals, cut into one data
file per interval.

Pages come newest first, so the stream is cut into interval files as it crosses grid boundaries, and
an interval commits as soon as the stream is below its start (or ends). The page routing and body
scans it relies on are in ``ingest.routing``; the pipeline restarts a stream over what is not
committed when its cursor expires.

A rerun (``overwrite`` or ``reconcile``) re-reads committed intervals: each new file must keep every
id the old one held (an id now served at a second of another interval is MOVED and stays where it
landed first), or nothing is replaced (:class:`~.errors.EvidenceLossError`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from bisect import bisect_right
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from airflow_provider_slack_audit.client.blocking import one_thread, run_blocking
from airflow_provider_slack_audit.client.errors import InvalidEntryApiError
from airflow_provider_slack_audit.client.response import AuditLogsResponse, EntryKey, RawEntry

from .errors import EvidenceLossError, InvalidEntryError
from .evidence import IdEvidence
from .landing import IntervalCommit, IntervalWriter, Landing
from .registry import NameSampler
from .routing import DEDUP_HORIZON_SECONDS, IntervalStats, RouteState, entry_fixes, route_usual_page
from .spec import IngestSpec, IngestSummary
from .windows import Interval

__all__ = ["IngestClient", "OutOfOrder", "RunStream", "WindowRead"]

# Entries routed by the entry-by-entry loop between two yields to the event loop.
_ROUTE_SLICE = 1000

_landed_key = msgspec.json.Decoder(EntryKey).decode


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


@dataclass
class WindowRead:
    """What every stream of one window's read shares: where and what it lands, what it reports, and
    what a rerun must keep."""

    client: IngestClient
    landing: Landing
    spec: IngestSpec
    summary: IngestSummary
    logger: logging.Logger
    names: NameSampler  # drift: samples action and key names in the stream's thread
    discovered_at: int  # Unix seconds: when this run read the window (lateness = this - date_create)
    # Committed intervals being rewritten: each new file must hold every id the old one held.
    evidence: Mapping[Interval, IntervalCommit]
    # The window's committed intervals so far: a stream starting next to them rebuilds its dedup
    # memory from them (a resumed run, a re-read after an expired cursor).
    committed: dict[Interval, IntervalCommit]
    moves: dict[str, dict[str, int]] = field(default_factory=dict)  # a rerun's moves, by interval key
    streams: list[dict[str, Any]] = field(default_factory=list)  # what each completed query read
    query: dict[str, Any] = field(init=False)  # the spec's filters, as markers record them
    _retracted: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.query = self.spec.query

    def retract_manifest(self) -> None:
        """Withdraw the window's manifest before the first file it lists changes: it is written anew
        at the run's end, so no manifest ever disagrees with a marker."""
        if not self._retracted:
            self._retracted = True
            self.landing.withdraw_manifest(self.spec.window)


class OutOfOrder(Exception):
    """The API broke its newest-first order, so repeats can no longer be found by the last second."""


@dataclass
class RunStream:
    """One query over ``intervals`` (sorted, contiguous), cut into one data file per interval.

    The async side decodes and routes pages; every storage call (open, write, commit) runs in the
    stream's thread, one batch at a time in page order, while the next page is fetched.
    """

    shared: WindowRead
    intervals: Sequence[Interval]
    remember_all_ids: bool
    # The window's committed intervals outside this stream: its dedup memory is rebuilt from the one
    # right after it.
    neighbours: Mapping[Interval, IntervalCommit]
    # A rerun: ids served in an interval other than the one holding them (shared by the streams of
    # one run of intervals).
    moved: set[str]
    commits: dict[Interval, IntervalCommit] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    _must_hold: dict[int, set[str]] = field(default_factory=dict)
    _landed: dict[int, dict[str, int]] = field(default_factory=dict)
    _homes: dict[str, Interval] = field(default_factory=dict)
    _deferred: list[int] = field(default_factory=list)
    _writers: dict[int, IntervalWriter] = field(default_factory=dict)
    _stats: dict[int, IntervalStats] = field(default_factory=dict)
    _evidence: dict[int, IdEvidence] = field(default_factory=dict)
    _io: asyncio.Future[None] | None = None
    _started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.reconcile = self.shared.spec.reconcile
        self.oldest, self.latest = self.intervals[0].oldest, self.intervals[-1].latest
        self.starts = [interval.oldest for interval in self.intervals]
        # The dedup memory is two generations of ids (see .routing); an entry newer than the oldest
        # second seen breaks the newest-first order it relies on: OutOfOrder re-reads remembering all.
        boundary = self.latest + 1
        self.position = RouteState(set(), set(), boundary, boundary, boundary, len(self.intervals) - 1)

    async def read(self) -> None:
        # The stream's blocking work (the client's page decode, the entry checks, the writes) runs
        # in one thread of its own, in order: see client.blocking for what that saves in memory.
        with one_thread("slack-audit-stream"):
            await self._read()

    async def _read(self) -> None:
        await self._recall()
        spec, figures = self.shared.spec, self.figures
        figures.update(
            oldest=self.oldest, latest=self.latest, pages=0, requests=0, rate_limited=0, drained=False
        )
        next_cursor = ""
        try:
            async for response in self.shared.client.pages(
                oldest=self.oldest,
                latest=self.latest,
                limit=spec.limit,
                action=spec.action,
                actor=spec.actor,
                entity=spec.entity,
            ):
                self._count(response)
                try:
                    entries, next_cursor = response.raw_page()
                except InvalidEntryApiError as error:
                    raise self._invalid_entry(error) from None
                # C-speed scans of the body in a thread; per-entry work only when they find something.
                fixes = await run_blocking(entry_fixes, response.content, entries, self.shared.names)
                if not (fixes is None and await self._route_usual_page(entries)):
                    await self._route_each(entries, fixes)
            # The client stops on an empty or absent next_cursor; recorded, not assumed.
            figures["drained"] = not next_cursor
            await self._finish()
        finally:
            # Never abort a file while a write thread still holds it.
            if self._io is not None and not self._io.done():
                await asyncio.wait([self._io])

    async def _recall(self) -> None:
        """Before the first page: what a rerun must keep, and the dedup memory of a resumed run."""
        if self.shared.evidence:
            await run_blocking(self._load_landed)
        if not self.remember_all_ids and self.neighbours:
            # A run resuming next to committed intervals remembers what a clean run would have.
            resumed = await run_blocking(self._resumed_memory)
            if resumed is not None:
                self.position = self.position._replace(
                    seen=resumed[0], older=resumed[1], generation_start=resumed[2], older_start=resumed[3]
                )

    def _count(self, response: AuditLogsResponse) -> None:
        """Add a page's requests, waits and 429s to the window's summary and the stream's figures."""
        summary, figures = self.shared.summary, self.figures
        rate_limited = getattr(response, "rate_limited", 0)
        summary.pages += 1
        summary.requests += response.requests
        summary.wait_seconds += response.wait_seconds
        summary.rate_limited += rate_limited
        figures["pages"] += 1
        figures["requests"] += response.requests
        figures["rate_limited"] += rate_limited

    async def _route_usual_page(self, entries: list[RawEntry]) -> bool:
        """Route a usual page (in range, newest first, no id seen before) in the stream's thread,
        with C-speed list and set operations, to exactly what :meth:`_route_each` does; ``False``
        (nothing routed) for any other page. The event loop never waits on it, and a generation of
        ids it drops is freed in that thread too."""
        if self.remember_all_ids or not entries:
            return False
        routed = await run_blocking(
            route_usual_page, entries, self.position, self.oldest, self.latest, self.starts
        )
        if routed is None:
            return False
        self.position, batches, keys, passed, dedup = routed
        for index in keys:
            self._stats_of(index).pages += 1
        for index, generations in dedup.items():
            self._stats_of(index).dedup = generations
        await self._submit(batches, passed, keys, single_line=True)
        return True

    async def _route_each(self, entries: list[RawEntry], fixes: dict[int, bytes | str] | None) -> None:
        """Route a page entry by entry: drop what is out of range or seen, re-encode what ``fixes``
        says, cut it at interval starts; a slice at a time, between which the event loop runs."""
        seen, older, generation_start, older_start, boundary_second, current = self.position
        oldest, latest, starts, remember_all = self.oldest, self.latest, self.starts, self.remember_all_ids
        summary, stats = self.shared.summary, self._stats_of
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
                    stats(current).out_of_range += 1
                    summary.out_of_range += 1
                    continue
                if second < boundary_second:
                    boundary_second = second
                    if not remember_all:
                        while second < starts[current]:
                            # Complete; the generations in force at its start are kept with it, for
                            # a run resuming below it.
                            stats(current).dedup = (generation_start, older_start)
                            passed.append(current)
                            current -= 1
                        if second < generation_start - DEDUP_HORIZON_SECONDS:
                            older, seen = seen, set()
                            older_start, generation_start = generation_start, second
                elif second > boundary_second and not remember_all:
                    raise OutOfOrder(f"an entry of {second} came after one of {boundary_second}")
                index = bisect_right(starts, second) - 1 if remember_all else current
                if entry.id in seen or entry.id in older:
                    stats(index).duplicates += 1
                    summary.duplicates += 1
                    continue
                seen.add(entry.id)
                raw: Any = entry.raw
                if fixes is not None and position in fixes:
                    raw = fixes[position]
                    if isinstance(raw, str):
                        where = f"entry {position} of page {summary.pages} of interval "
                        raise InvalidEntryError(f"{where}{self.intervals[index].key} (id {entry.id})", raw)
                batch = batches.get(index)
                if batch is None:
                    batch = batches[index] = []
                    batch_keys[index] = []
                    stats(index).pages += 1
                batch.append(raw)
                batch_keys[index].append(entry)
        self.position = RouteState(seen, older, generation_start, older_start, boundary_second, current)
        await self._submit(batches, passed, batch_keys, single_line=fixes is None)

    async def _finish(self) -> None:
        """Pagination ended: every interval not committed yet is complete."""
        current = self.position.current
        rest = range(len(self.intervals)) if self.remember_all_ids else range(current, -1, -1)
        if not self.remember_all_ids:
            for index in rest:
                self._stats_of(index).dedup = (self.position.generation_start, self.position.older_start)
        complete = [index for index in rest if self.intervals[index] not in self.commits]
        await self._submit({}, complete, final=True)
        await self._drain()

    def _stats_of(self, index: int) -> IntervalStats:
        return self._stats.setdefault(index, IntervalStats())

    def _resumed_memory(self) -> tuple[set[str], set[str], int, int] | None:
        """In the stream's thread: the dedup memory a clean run had where this stream starts, when
        the interval right after it is committed and says which generations were in force there.

        A generation holds the ids of an unbroken span of ``date_create`` (entries come newest
        first), so the two are the ids the committed files hold in ``[start, generation_start]``
        and ``(generation_start, older_start]``: rebuilt exactly, so a resumed run drops (and
        forgets) the same repeats as a clean one, and ends with the same files.
        """
        start = self.latest + 1
        after = next((c for i, c in self.neighbours.items() if i.oldest == start), None)
        if after is None or "dedup_generation_start" not in after.stats:
            return None
        generation_start = after.stats["dedup_generation_start"]
        older_start = after.stats["dedup_older_start"]
        seen: set[str] = set()
        older: set[str] = set()
        for interval, commit in self.neighbours.items():
            if interval.oldest <= older_start and interval.latest >= start:
                for key in self.shared.landing.committed_keys(commit):
                    if start <= key.date_create <= generation_start:
                        seen.add(key.id)
                    elif generation_start < key.date_create <= older_start:
                        older.add(key.id)
        return seen, older, generation_start, older_start

    def _invalid_entry(self, error: InvalidEntryApiError) -> InvalidEntryError:
        """The permanent error for an entry the page decode refused, naming its interval."""
        where = "the run's intervals"
        if error.date_create is not None:
            index = bisect_right(self.starts, error.date_create) - 1
            if 0 <= index < len(self.intervals):
                where = f"interval {self.intervals[index].key}"
        return InvalidEntryError(
            f"entry {error.position} of page {self.shared.summary.pages} of {where} (id {error.entry_id})",
            "holds an escaped lone surrogate, which is not Unicode",
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
        landing = self.shared.landing
        mine = {interval: index for index, interval in enumerate(self.intervals)}
        for interval, old in self.shared.evidence.items():
            index = mine.get(interval)
            if index is None:
                for entry_id in landing.committed_ids(old):
                    self._homes.setdefault(entry_id, interval)
                continue
            landed = self._landed[index] = {}
            for line in landing.committed_lines(old):
                entry_id = _landed_key(line).id
                landed[entry_id] = hash(line)
                self._homes.setdefault(entry_id, interval)
            self._must_hold[index] = set(landed)
            if self.reconcile:
                self._stats_of(index).lateness = []

    def _sift(self, index: int, batch: list[Any], batch_keys: Sequence[Any]) -> tuple[list[Any], list[Any]]:
        """In a rerun, what of a batch for interval ``index`` is written: not an id landed in another
        interval (moved: it stays where it landed first), and in a reconcile not an id landed here
        either (its landed line stays as it is); a changed body is counted either way."""
        interval = self.intervals[index]
        landed = self._landed.get(index, {})
        must_hold = self._must_hold.get(index, set())
        stats = self._stats_of(index)
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
                stats.lateness.append(self.shared.discovered_at - key.date_create)
            kept.append(raw)
            kept_keys.append(key)
        return kept, kept_keys

    def _writer(self, index: int) -> IntervalWriter:
        writer = self._writers.get(index)
        if writer is None:
            landing = self.shared.landing
            writer = self._writers[index] = landing.open_interval(self.intervals[index])
            if self.reconcile and index in self._landed:
                # A reconcile adds to what landed: the old file's lines first, as they are.
                old = self.shared.evidence[self.intervals[index]]
                lines, keys = landing.committed_entries(old, self._landed[index].keys())
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
        """In the stream's thread: append each interval's batch, then commit the completed intervals."""
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
        """In the stream's thread, for a committed interval re-read by a rerun: commit it anew, or (a
        reconcile without late events) leave it as it was. Its landed ids the read did not serve
        here are MOVED when the read served them in another interval, else vanished; an id that
        may yet be served in an older interval of the stream makes it wait for the stream's end."""
        lost = self._must_hold[index]
        if not final and not lost <= self.moved:
            self._deferred.append(index)
            return
        logger, summary = self.shared.logger, self.shared.summary
        interval, old = self.intervals[index], self.shared.evidence[self.intervals[index]]
        del self._must_hold[index]
        stats = self._stats_of(index)
        moved_out = lost & self.moved
        vanished = lost - self.moved
        stats.moved_out = len(moved_out)
        self._record_moves(interval, stats)
        if moved_out:
            logger.info(
                "Interval %s: %d of its landed ids are now served at a second of another interval; "
                "they stay in this file, where they were landed first",
                interval.span,
                len(moved_out),
            )
        if not self.reconcile:
            if vanished:
                self._discard(index)
                raise EvidenceLossError(interval, lost=len(vanished), held=old.count)
            if moved_out:
                lines, keys = self.shared.landing.committed_entries(old, moved_out)
                self._writer(index).write(lines)
                self._evidence.setdefault(index, IdEvidence()).add(keys)
            self._commit(index)
            return
        if vanished:
            logger.warning(
                "Interval %s: %d of its %d landed ids are no longer returned by the API; the landed "
                "file keeps them",
                interval.span,
                len(vanished),
                old.count,
            )
        late = len(stats.lateness or ())
        summary.vanished_kept += len(vanished)
        if not late:
            self._discard(index)
            self._evidence.pop(index, None)
            self.commits[interval] = old  # untouched: the same file, marker and bytes
            logger.info("Interval %s: no late events, left as landed", interval.span)
            return
        stats.vanished_kept = len(vanished)
        summary.intervals_reconciled += 1
        summary.late_events += late
        logger.info("Interval %s: %d late events found; rewriting it with them", interval.span, late)
        self._commit(index)

    def _discard(self, index: int) -> None:
        writer = self._writers.pop(index, None)
        if writer is not None:
            writer.abort()

    def _record_moves(self, interval: Interval, stats: IntervalStats) -> None:
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
            self.shared.moves[interval.key] = noted
        self.shared.summary.moved += stats.moved_in
        self.shared.summary.bodies_changed += stats.bodies_changed
        if stats.bodies_changed:
            self.shared.logger.warning(
                "Interval %s: Slack changed the body of %d landed ids; %s",
                interval.span,
                stats.bodies_changed,
                "the landed lines stay as they are (reconcile keeps the first version)"
                if self.reconcile
                else "the file is rewritten with the API's current version (overwrite)",
            )

    def _commit(self, index: int) -> None:
        """In the stream's thread: commit interval ``index`` (its writer holds every line of it)."""
        interval = self.intervals[index]
        writer = self._writer(index)
        if index in self._landed:
            # The window's manifest lists the file this replaces: withdrawn before the file changes.
            self.shared.retract_manifest()
        else:
            self._record_moves(interval, self._stats_of(index))
        stats = self._stats.get(index, IntervalStats())
        commit = writer.commit(
            query=self.shared.query,
            stats=stats.as_marker_stats(),
            evidence=self._evidence.pop(index, IdEvidence()).to_json(),
        )
        del self._writers[index]
        self.commits[interval] = commit
        self.shared.logger.info(
            "Landed interval %s: %d events, %d pages, %d bytes, %.2f s into its run, "
            "%d duplicates, %d out of range -> %s",
            interval.span,
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
