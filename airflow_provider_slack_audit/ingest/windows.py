"""Half-open time windows and their split into API-sized intervals.

A window ``[start, end)`` is what a DAG run asks for (usually its data interval); the pipeline cuts
it into intervals on a fixed grid (multiples of the interval length from the Unix epoch) and lands
each one as a file, so a failed run resumes with what is not committed, and every run maps an
instant to the same file key. The Audit Logs API takes integer Unix seconds with *inclusive*
bounds, so an interval ``[start, end)`` is queried as ``oldest = ceil(start)`` and
``latest = ceil(end) - 1``: adjacent intervals never share a second, and every second of the window
belongs to exactly one interval.

All arithmetic runs on integer microseconds: a float timestamp cannot represent every microsecond
of this century exactly, and an off-by-one ``ceil`` would land an event twice or never.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["EARLIEST", "Interval", "Window", "cell_start", "crosses_cells", "parse_datetime"]

EARLIEST = datetime(2018, 3, 1, tzinfo=timezone.utc)
"""The Audit Logs API holds no data before this instant."""

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
_MICROS_PER_SECOND = 1_000_000
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
_FRACTION = re.compile(r"(?<=\d\d:\d\d:\d\d)\.(\d+)")


def parse_datetime(value: datetime | str, name: str) -> datetime:
    """
    Return ``value`` as an aware UTC datetime; ``name`` is the parameter it came from, for errors.

    Accepts aware datetimes and ISO-8601 strings: ``"2026-01-04T00:00:00Z"``, ``"...+02:00"``, and a
    bare date ``"2026-01-04"``, which means that day's midnight UTC (a date names a whole UTC day in
    this provider, like Airflow's logical dates). A naive datetime is refused rather than guessed: a
    wrong guess shifts the window by hours, silently.
    """
    if isinstance(value, datetime):
        return _plain_utc(_require_aware(value, name))
    if isinstance(value, str):
        return _parse_iso(value, name)
    raise TypeError(
        f"{name} must be a datetime or an ISO-8601 string such as '2026-01-04T00:00:00Z', "
        f"got {type(value).__name__} {value!r}"
    )


def _parse_iso(text: str, name: str) -> datetime:
    stripped = text.strip()
    if _DATE_ONLY.fullmatch(stripped):
        return datetime.combine(date.fromisoformat(stripped), time(), tzinfo=timezone.utc)
    # Python 3.10's fromisoformat does not know the "Z" suffix.
    if stripped[-1:] in ("Z", "z"):
        stripped = stripped[:-1] + "+00:00"
    # ... nor fractions of other than 3 or 6 digits: write them as microseconds.
    stripped = _FRACTION.sub(lambda match: "." + match.group(1)[:6].ljust(6, "0"), stripped, count=1)
    try:
        parsed = datetime.fromisoformat(stripped)
    except ValueError:
        raise ValueError(
            f"{name} {text!r} is not an ISO-8601 datetime; use e.g. '2026-01-04T00:00:00Z' or '2026-01-04'"
        ) from None
    return _plain_utc(_require_aware(parsed, name))


def _require_aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{name} {value.isoformat()} has no timezone; pass an aware datetime, "
            f"e.g. {name}.replace(tzinfo=timezone.utc), or a string with an offset such as "
            f"'{value.isoformat()}Z'"
        )
    return value


def _plain_utc(value: datetime) -> datetime:
    """``value`` as a stdlib UTC datetime, also when it is a subclass such as pendulum's DateTime.

    Airflow's context holds pendulum DateTimes, whose differences are pendulum Intervals that do not
    divide by a stdlib timedelta: windows keep plain datetimes so their arithmetic is the stdlib's.
    """
    utc = value.astimezone(timezone.utc)
    return datetime(
        utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond, tzinfo=timezone.utc
    )


def _to_micros(value: datetime) -> int:
    """Unix time of an aware datetime in whole microseconds, exactly (timedelta floor division)."""
    return (value - _EPOCH) // _MICROSECOND


def _from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _ceil_seconds(micros: int) -> int:
    return -(-micros // _MICROS_PER_SECOND)


def _cell_floor(micros: int, step_micros: int) -> int:
    """The start of the grid cell holding ``micros``: cells are multiples of the step from the epoch."""
    return micros - micros % step_micros


def cell_start(instant: datetime, grid: timedelta) -> datetime:
    """The start of the cell of ``grid`` holding ``instant`` (the grid :meth:`Window.intervals` cuts on)."""
    return _from_micros(_cell_floor(_to_micros(instant), grid // _MICROSECOND))


def crosses_cells(bounds: _Bounds, grid: timedelta) -> bool:
    """True when ``[start, end)`` does not lie inside one cell of ``grid`` (every landed data file does)."""
    return cell_start(bounds.end - _MICROSECOND, grid) != cell_start(bounds.start, grid)


def _format_instant(value: datetime) -> str:
    """
    Compact, filename-safe UTC instant, e.g. ``20260104T000000Z``.

    Microseconds appear only when non-zero, after ``_`` rather than ISO's ``.``: ``.`` sorts before
    ``Z`` and would put ``00:00:00.5`` ahead of ``00:00:00``; ``_`` sorts after it, so keys sort by time.
    """
    whole = (
        f"{value.year:04d}{value.month:02d}{value.day:02d}"
        f"T{value.hour:02d}{value.minute:02d}{value.second:02d}"
    )
    fraction = f"_{value.microsecond:06d}" if value.microsecond else ""
    return f"{whole}{fraction}Z"


@dataclass(frozen=True)
class _Bounds:
    """What intervals and windows share: validated UTC bounds, API bounds, key and JSON form of
    ``[start, end)``."""

    start: datetime
    end: datetime
    #: The bounds' names in error messages.
    _names: ClassVar[tuple[str, str]] = ("start", "end")

    def __post_init__(self) -> None:
        start, end = _validated_bounds(self.start, self.end, *self._names)
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_json`; ``oldest``/``latest`` are derived, so they are not read."""
        start_name, end_name = cls._names
        return cls(parse_datetime(data["start"], start_name), parse_datetime(data["end"], end_name))

    @property
    def oldest(self) -> int:
        """First whole Unix second inside the bounds: ``ceil(start)`` (the API's inclusive ``oldest``)."""
        return _ceil_seconds(_to_micros(self.start))

    @property
    def latest(self) -> int:
        """Last whole Unix second inside the bounds: ``ceil(end) - 1``, since ``end`` is exclusive."""
        return _ceil_seconds(_to_micros(self.end)) - 1

    @property
    def is_empty(self) -> bool:
        """True when no whole second falls inside the bounds, so there is nothing to ask the API for."""
        return self.oldest > self.latest

    @property
    def key(self) -> str:
        """Deterministic, sortable, filename-safe name, e.g. ``20260104T000000Z_20260104T010000Z``."""
        return f"{_format_instant(self.start)}_{_format_instant(self.end)}"

    @property
    def span(self) -> str:
        """``[start, end)`` in ISO 8601, as messages and logs name a range."""
        return f"[{self.start.isoformat()}, {self.end.isoformat()})"

    def to_json(self) -> dict[str, Any]:
        """ISO bounds (exact to the microsecond) plus the API bounds, for markers and manifests."""
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "oldest": self.oldest,
            "latest": self.latest,
        }


def _validated_bounds(
    start: datetime, end: datetime, start_name: str, end_name: str
) -> tuple[datetime, datetime]:
    start = parse_datetime(start, start_name)
    end = parse_datetime(end, end_name)
    if start == end:
        raise ValueError(
            f"{start_name} {start.isoformat()} is not before {end_name} {end.isoformat()}: they are "
            f"equal, an empty window since {end_name} is exclusive; pass a {end_name} after {start_name}"
        )
    if start > end:
        raise ValueError(
            f"{start_name} {start.isoformat()} is not before {end_name} {end.isoformat()}; "
            f"swap them or fix the wrong one"
        )
    return start, end


@dataclass(frozen=True, order=True)
class Interval(_Bounds):
    """
    One half-open slice ``[start, end)`` of a window, landed as one file.

    Ordering compares ``(start, end)``, so sorted intervals are in time order.
    """


@dataclass(frozen=True)
class Window(_Bounds):
    """
    The half-open time range ``[start, end)`` one ingest covers, validated and normalized to UTC.

    Errors name the operator's parameters (``oldest``/``latest``) because that is where users set them.
    """

    _names = ("oldest", "latest")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.start < EARLIEST:
            raise ValueError(
                f"oldest {self.start.isoformat()} is before {EARLIEST.isoformat()}, the earliest audit data "
                f"the Audit Logs API holds; start the window at {EARLIEST.date().isoformat()} or later"
            )

    def intervals(self, step: timedelta) -> list[Interval]:
        """
        The window cut on the fixed grid of ``step``: boundaries are multiples of ``step`` counted
        from the Unix epoch (UTC), whatever the window's start, time zone or re-run.

        So every window maps a given instant to the same interval key. A window that does not start
        or end on the grid keeps its edges: the first and last intervals are their grid cells clipped
        to the window (e.g. ``[00:30, 01:00)`` of an hourly grid), named by their clipped bounds, so a
        piece never takes the key of a whole cell. Intervals that hold no whole second (possible only
        for sub-second pieces) are dropped: the API has nothing to return for them, and the kept
        intervals still cover every second of the window exactly once.
        """
        if not isinstance(step, timedelta):
            raise TypeError(
                f"interval length must be a timedelta such as timedelta(hours=1), got {type(step).__name__}"
            )
        step_micros = step // _MICROSECOND
        if step_micros <= 0:
            raise ValueError(f"interval length {step!r} is not positive; pass e.g. timedelta(hours=1)")
        start, end = _to_micros(self.start), _to_micros(self.end)
        intervals = []
        cell = _cell_floor(start, step_micros)
        while cell < end:
            lower, upper = max(cell, start), min(cell + step_micros, end)
            # Same test as Interval.is_empty, on integers, before building the object.
            if _ceil_seconds(lower) < _ceil_seconds(upper):
                intervals.append(Interval(_from_micros(lower), _from_micros(upper)))
            cell += step_micros
        return intervals
