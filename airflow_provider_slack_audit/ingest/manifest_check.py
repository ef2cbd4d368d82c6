"""Checks that a window manifest describes its window exactly once, before anything trusts it.

A manifest is the promise "loading these files loads this window". A damaged one (an interval
dropped, one listed twice, totals that do not add up) would load a part of the window, or some of it
twice, and report success. Both readers run this check: the landing's manifest reader and the
warehouse load, which runs it again before writing a row.

Pure and Airflow-free: it takes figures (integer seconds, counts, bytes), so any reader can call it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

from .errors import ManifestCheckError

__all__ = ["ManifestCheckError", "ManifestFigures", "check_manifest", "checked"]


class Bounds(Protocol):
    """Inclusive integer-second bounds and a printable key (``Window`` and ``Interval`` have them)."""

    @property
    def oldest(self) -> int: ...
    @property
    def latest(self) -> int: ...
    @property
    def key(self) -> str: ...


class ListedInterval(Protocol):
    """What a manifest lists per interval (``ManifestInterval`` has it)."""

    @property
    def oldest(self) -> int: ...
    @property
    def latest(self) -> int: ...
    @property
    def count(self) -> int: ...
    @property
    def bytes(self) -> int: ...
    @property
    def path(self) -> str: ...


class ManifestFigures(Protocol):
    """A whole manifest: its window, its intervals and its declared totals (``WindowManifest``)."""

    @property
    def window(self) -> Bounds: ...
    @property
    def intervals(self) -> Sequence[ListedInterval]: ...
    @property
    def events(self) -> int: ...
    @property
    def bytes(self) -> int: ...


def check_manifest(
    window: Bounds, intervals: Sequence[ListedInterval], *, events: int, total_bytes: int
) -> None:
    """Raise :class:`ManifestCheckError` unless ``intervals`` cover ``window`` exactly once and add up.

    Coverage is checked second by second on the inclusive integer bounds the API uses: no gap, no
    overlap, nothing outside the window, no data file listed twice. Then the declared ``events`` and
    ``total_bytes`` must equal the sums over the intervals.
    """
    problems: list[str] = []
    paths: set[str] = set()
    for item in intervals:
        if item.count < 0 or item.bytes < 0:
            problems.append(f"interval {_span(item)} lists a negative count or size")
        if item.path in paths:
            problems.append(f"data file {item.path} is listed twice")
        paths.add(item.path)
    next_second = window.oldest
    for item in sorted(intervals, key=lambda listed: (listed.oldest, listed.latest)):
        if item.oldest < window.oldest or item.latest > window.latest:
            problems.append(f"interval {_span(item)} lies outside the window")
        elif item.oldest > next_second:
            problems.append(f"no interval covers seconds {next_second}..{item.oldest - 1}")
        elif item.oldest < next_second:
            problems.append(f"interval {_span(item)} overlaps another (seconds covered twice)")
        next_second = max(next_second, item.latest + 1)
    if next_second <= window.latest:
        problems.append(f"no interval covers seconds {next_second}..{window.latest}")
    counted = sum(item.count for item in intervals)
    if counted != events:
        problems.append(f"it declares {events} events but its intervals hold {counted}")
    sized = sum(item.bytes for item in intervals)
    if sized != total_bytes:
        problems.append(f"it declares {total_bytes} bytes but its intervals hold {sized}")
    if problems:
        raise ManifestCheckError(
            f"the manifest of window {window.key} does not describe its window exactly once: "
            + "; ".join(problems)
            + "; rerun the ingest of the window to rewrite its manifest"
        )


_Manifest = TypeVar("_Manifest", bound=ManifestFigures)


def checked(manifest: _Manifest) -> _Manifest:
    """``manifest`` itself once :func:`check_manifest` accepts it (for readers: ``return checked(m)``)."""
    check_manifest(manifest.window, manifest.intervals, events=manifest.events, total_bytes=manifest.bytes)
    return manifest


def _span(item: ListedInterval) -> str:
    return f"{item.path} (seconds {item.oldest}..{item.latest})"
