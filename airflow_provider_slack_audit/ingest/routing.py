"""One page of a run stream: its body scans and its routing, pure functions run in the stream's thread.

A page comes newest first. The usual page (in range, newest first, no id seen before) is cut at the
interval starts it crosses with C-speed list and set operations (:func:`route_usual_page`), to
exactly what the stream's entry-by-entry loop does; any other page takes that loop. Ids are
remembered in two generations of :data:`DEDUP_HORIZON_SECONDS` of ``date_create`` each, so memory is
bounded by the events of two horizons whatever the run's size. The body scans
(:func:`entry_fixes`) find what must change before entries can be landed as strict UTF-8, one JSON
per line. Each C call covers a bounded slice, so the event loop's thread gets the GIL between them
(``docs/performance.md`` has the figures).
"""

from __future__ import annotations

import codecs
import operator
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, NamedTuple

import msgspec

from airflow_provider_slack_audit.client.blocking import yield_to_loop

from .registry import NameSampler

__all__ = [
    "DEDUP_HORIZON_SECONDS",
    "SCAN_BLOCK",
    "IntervalStats",
    "RouteState",
    "Routed",
    "entry_fixes",
    "remember_span",
    "route_usual_page",
    "scan_body",
]

DEDUP_HORIZON_SECONDS = 3600
"""An id is remembered for at least this many seconds of ``date_create`` (and at most twice as
long): a repeat of it within the horizon is dropped as a duplicate, across seconds and files."""
# Bytes of a page body scanned per C call (line breaks, UTF-8): short holds of the GIL.
SCAN_BLOCK = 1 << 18
_get_id = operator.attrgetter("id")
_get_date_create = operator.attrgetter("date_create")
_get_raw = operator.attrgetter("raw")


@dataclass
class IntervalStats:
    """What the stream found in one interval, recorded in its commit marker."""

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


class RouteState(NamedTuple):
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
Routed = tuple[RouteState, dict[int, list[Any]], dict[int, list[Any]], list[int], dict[int, tuple[int, int]]]


def route_usual_page(
    entries: list[Any], state: RouteState, oldest: int, latest: int, starts: list[int]
) -> Routed | None:
    """In the stream's thread: a usual page's batches (raw entries and their RawEntry by interval),
    the intervals it passed below (with the dedup generations in force as it did: see
    ``IntervalStats.dedup``) and where the stream is after it; ``None`` (and nothing changed)
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
    if (
        len(page_ids) != len(ids)
        or not page_ids.isdisjoint(state.seen)
        or not page_ids.isdisjoint(state.older)
    ):
        return None
    batches: dict[int, list[Any]] = {}
    batch_keys: dict[int, list[Any]] = {}
    passed: list[int] = []
    cuts: list[int] = []
    current = _cut(entries, seconds, starts, state.current, batches, batch_keys, passed, cuts)
    memory = (state.seen, state.older, state.generation_start, state.older_start)
    # Remembered up to each interval start the page passed below, so the generations in force
    # there are known (a resumed run starts from them: see ``stream._RunStream._resumed_memory``).
    dedup: dict[int, tuple[int, int]] = {}
    position = 0
    for index, cut in zip(passed, cuts, strict=True):
        memory = remember_span(ids, seconds, *memory, position, cut)
        dedup[index] = (memory[2], memory[3])
        position = cut
    seen, older, generation_start, older_start = remember_span(ids, seconds, *memory, position, len(ids))
    yield_to_loop()
    state = RouteState(seen, older, generation_start, older_start, seconds[-1], current)
    return state, batches, batch_keys, passed, dedup


def remember_span(
    ids: list[str],
    seconds: list[int],
    seen: set[str],
    older: set[str],
    generation_start: int,
    older_start: int,
    position: int,
    count: int,
) -> tuple[set[str], set[str], int, int]:
    """Add the page's ids ``[position, count)`` (newest first, none seen before) to the two
    generations of remembered ids, starting a new generation where the entry-by-entry loop would:
    at each entry more than DEDUP_HORIZON_SECONDS older than the current generation's start."""
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


_RELEASE_SLICE = 10_000  # ids freed between two hand-overs of the GIL


def _release(ids: set[str]) -> None:
    """Empty a generation of ids the stream no longer needs, here (in the stream's thread) and a
    slice at a time: freed in one go, a large set holds the GIL, and the event loop's thread (holding
    the last reference) would free it."""
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


def scan_body(content: bytes) -> tuple[bool, bool]:
    """Whether ``content`` holds a line break, and whether it is not UTF-8, block by block.

    Each C call covers one block, not a whole body (one ``decode`` of a full page holds the GIL, and so
    the event loop's thread, for as long as it takes); the incremental decoder carries a character cut
    by a block boundary into the next block.
    """
    view = memoryview(content)
    decoder = codecs.getincrementaldecoder("utf-8")()
    multiline = bad_utf8 = False
    for start in range(0, len(view), SCAN_BLOCK):
        block = view[start : start + SCAN_BLOCK]
        if not multiline:
            multiline = content.find(b"\n", start, start + SCAN_BLOCK) >= 0 or (
                content.find(b"\r", start, start + SCAN_BLOCK) >= 0
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


def entry_fixes(
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
    multiline, bad_utf8 = scan_body(content)
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
