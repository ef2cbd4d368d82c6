"""Planning a run's intervals: whether it fits what a destination already holds (pure, no I/O).

A destination has one layout, recorded by its ``descriptor``: the grid, the compression and the
normalized filters. Another grid or other filters would land the same events in a second set of
files, another compression a second copy of them: such a run is refused before any request. A run
plans its intervals around the landed data files (:func:`plan_intervals`), each inside one grid cell:
a file inside the window is one of its intervals, one the window's edge cuts refuses the run
(docs/concepts/layout.md, "Windows that overlap", gives the rule and its examples).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

from airflow_provider_slack_audit.ingest.errors import DestinationConflictError
from airflow_provider_slack_audit.ingest.windows import Interval, Window, cell_start, crosses_cells

from .layout import Compression

_MICROSECOND = timedelta(microseconds=1)
# Conflicts named in one error: enough to see the pattern, short enough to read.
_MAX_NAMED = 4


@dataclass(frozen=True)
class DestinationLayout:
    """What every file under one destination shares: the grid, the compression and the query."""

    grid: timedelta
    compression: Compression
    query: Mapping[str, Any]

    def describe(self) -> str:
        """E.g. ``a 1h grid, gzip, unfiltered``."""
        compression = self.compression or "uncompressed"
        return f"a {duration(self.grid)} grid, {compression}, {describe_query(self.query)}"

    def differences(self, other: DestinationLayout) -> list[str]:
        """What to pass so a run of layout ``other`` fits this one (empty when they agree)."""
        fixes = []
        if other.grid != self.grid:
            fixes.append(f"interval={timedelta_literal(self.grid)} (not {timedelta_literal(other.grid)})")
        if other.compression != self.compression:
            fixes.append(f"compression={self.compression!r} (not {other.compression!r})")
        if dict(other.query) != dict(self.query):
            fixes.append(
                f"the same filters ({describe_query(self.query)}, not {describe_query(other.query)})"
            )
        return fixes


def describe_query(query: Mapping[str, Any]) -> str:
    given = {name: value for name, value in query.items() if value is not None}
    if not given:
        return "unfiltered"
    parts = [f"{name}={_joined(value, ',')}" for name, value in given.items()]
    return "filtered by " + " ".join(parts)


def _joined(value: Any, separator: str) -> str:
    return separator.join(value) if isinstance(value, list) else str(value)


def filtered_label(query: Mapping[str, Any]) -> str:
    """A path-safe label of the filters, for the destination a filtered run could land in instead."""
    given = {name: value for name, value in query.items() if value is not None}
    label = "_".join(f"{name}={_joined(value, '+')}" for name, value in given.items())
    return re.sub(r"[^A-Za-z0-9_=+.-]", "-", label)[:80] or "filtered"


def duration(step: timedelta) -> str:
    """``1h``, ``30min``, ``1d``, ``90s``: how a grid reads in a message."""
    micros = step // _MICROSECOND
    for unit, size in (("d", 86_400_000_000), ("h", 3_600_000_000), ("min", 60_000_000), ("s", 1_000_000)):
        if micros % size == 0:
            return f"{micros // size}{unit}"
    return f"{step.total_seconds()}s"


def timedelta_literal(step: timedelta) -> str:
    """``timedelta(hours=1)``: what to pass as ``interval``."""
    micros = step // _MICROSECOND
    for unit, size in (("days", 86_400_000_000), ("hours", 3_600_000_000), ("minutes", 60_000_000)):
        if micros % size == 0:
            return f"timedelta({unit}={micros // size})"
    return f"timedelta(seconds={step.total_seconds():g})"


def partitions_touched(window: Window, grid: timedelta) -> list[str]:
    """The ``dt=`` partitions that can hold a data file overlapping ``window``: the UTC dates from the
    start of the first grid cell it touches to its last instant (a file lies inside one cell)."""
    first = cell_start(window.start, grid).date()
    last = (window.end - _MICROSECOND).date()
    return [f"dt={(first + timedelta(days=offset)).isoformat()}" for offset in range((last - first).days + 1)]


def plan_intervals(window: Window, grid: timedelta, landed: Mapping[Interval, str]) -> list[Interval]:
    """The intervals a run of ``window`` lands, around the ``landed`` data files (interval -> path).

    The window's cells (``Window.intervals``), except where landed files lie inside a cell's part:
    those become intervals of their own, and the rest of the part is landed as gap pieces. Raises
    :class:`DestinationConflictError` naming every landed file the window's edges cut (or that
    overlaps another landed file), with the edges that would work.
    """
    default = window.intervals(grid)
    if not landed:
        return default
    by_cell: dict[datetime, list[Interval]] = {}
    conflicts: list[str] = []
    for interval in landed:
        if not _overlaps(interval, window):
            continue
        if crosses_cells(interval, grid):
            conflicts.append(
                f"{landed[interval]}, landed for {interval.span}, crosses a boundary of the "
                f"{duration(grid)} grid (landed with another interval); land this window into a "
                f"destination of its own"
            )
            continue
        by_cell.setdefault(cell_start(interval.start, grid), []).append(interval)
    plan: list[Interval] = []
    for part in default:
        found = sorted(by_cell.get(cell_start(part.start, grid), ()))
        found = [interval for interval in found if _overlaps(interval, part)]
        if not found or found == [part]:
            plan.append(part)
            continue
        cut = [interval for interval in found if not part.start <= interval.start < interval.end <= part.end]
        if cut:
            conflicts.extend(_cut_by_window(interval, landed[interval], window) for interval in cut)
            continue
        conflicts.extend(
            f"{landed[earlier]} ({earlier.span}) and {landed[later]} ({later.span}) overlap each other, "
            f"so the events of their overlap are in both (landed before this destination had a "
            f"descriptor?); run `verify` on the destination, then delete one of them with its "
            f".commit.json marker"
            for earlier, later in pairwise(found)
            if later.start < earlier.end
        )
        plan.extend(_fill(part, found))
    if conflicts:
        named = conflicts[:_MAX_NAMED]
        more = f" (and {len(conflicts) - len(named)} more)" if len(conflicts) > len(named) else ""
        raise DestinationConflictError(
            f"window {window.span} cannot land here without putting events in two final files, so "
            f"nothing was requested: " + "; ".join(named) + more
        )
    return plan


def _fill(part: Interval, inside: Sequence[Interval]) -> list[Interval]:
    """``inside`` (sorted, disjoint, within ``part``) plus the gaps of ``part`` they leave."""
    filled: list[Interval] = []
    cursor = part.start
    for interval in inside:
        if cursor < interval.start:
            filled.extend(_piece(cursor, interval.start))
        filled.append(interval)
        cursor = max(cursor, interval.end)
    if cursor < part.end:
        filled.extend(_piece(cursor, part.end))
    return filled


def _piece(start: datetime, end: datetime) -> list[Interval]:
    piece = Interval(start, end)
    return [] if piece.is_empty else [piece]  # like Window.intervals: no whole second, nothing to read


def _cut_by_window(interval: Interval, path: str, window: Window) -> str:
    edges = []
    if interval.start < window.start < interval.end:
        edges.append(f"start the window at {interval.start.isoformat()} or {interval.end.isoformat()}")
    if interval.start < window.end < interval.end:
        edges.append(f"end it at {interval.start.isoformat()} or {interval.end.isoformat()}")
    return (
        f"{path}, landed for {interval.span}, reaches outside the window, whose edge cuts it: "
        + (" and ".join(edges) or "move the window's edges to that file's")
        + " (edges of the landed files), or land this window into a destination of its own"
    )


def _overlaps(a: Interval | Window, b: Interval | Window) -> bool:
    return a.oldest <= b.latest and b.oldest <= a.latest
