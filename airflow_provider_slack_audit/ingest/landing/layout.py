"""Where things live under a destination: keys, partitions and paths (no I/O).

    <dest>/dt=2026-01-04/slack_audit_<interval.key>.jsonl.gz      data, one API entry per line
    <dest>/dt=2026-01-04/slack_audit_<interval.key>.commit.json   commit marker, written after the data
    <dest>/_manifests/slack_audit_<window.key>.manifest.json       the intervals of one window
    <dest>/dt=2026-01-04/.slack_audit_<interval.key>.lease         the interval's lease (see ``lease``)

``dt`` is the UTC date of the interval start. Temporary files are hidden siblings ending in
``.tmp-<owner>``, so nothing but complete data files ends in ``.jsonl``/``.jsonl.gz``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Literal

from airflow_provider_slack_audit.ingest.windows import Interval, Window

Compression = Literal["gzip"] | None
COMPRESSIONS: tuple[Compression, ...] = ("gzip", None)
GZIP_WBITS = 31  # zlib's gzip wrapper: header with mtime 0 and no file name, so output is deterministic

PREFIX = "slack_audit_"
MANIFESTS_DIR = "_manifests"
TEMP_MARK = ".tmp-"
LEASE_SUFFIX = ".lease"

_INSTANT = r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(?:_(\d{6}))?Z"
_DATA_NAME = re.compile(rf"{PREFIX}{_INSTANT}_{_INSTANT}\.jsonl(\.gz)?")


def parse_compression(value: object) -> Compression:
    if value == "gzip":
        return "gzip"
    if value is None:
        return None
    raise ValueError(f"compression {value!r} is not supported; use 'gzip' or None")


def partition(interval: Interval) -> str:
    return f"dt={interval.start.date().isoformat()}"


def relative_data_path(interval: Interval, compression: Compression) -> str:
    """The data file's path relative to the destination (as markers and manifests record it)."""
    suffix = ".jsonl.gz" if compression == "gzip" else ".jsonl"
    return f"{partition(interval)}/{PREFIX}{interval.key}{suffix}"


def relative_marker_path(interval: Interval) -> str:
    return f"{partition(interval)}/{PREFIX}{interval.key}.commit.json"


def relative_manifest_path(window: Window) -> str:
    return f"{MANIFESTS_DIR}/{PREFIX}{window.key}.manifest.json"


def relative_lease_path(interval: Interval) -> str:
    """The interval's lease: a hidden sibling of its data file."""
    return f"{partition(interval)}/.{PREFIX}{interval.key}{LEASE_SUFFIX}"


def lease_name_of(name: str) -> str:
    """The name of the lease guarding the file ``name`` (a window manifest's, while it is written)."""
    return f".{name}{LEASE_SUFFIX}"


def data_file_interval(name: str) -> tuple[Interval, Compression] | None:
    """The interval and compression a data file's name encodes (:func:`relative_data_path`'s inverse),
    or None when the name is not a data file's (temporary files, markers, others)."""
    match = _DATA_NAME.fullmatch(name)
    if match is None:
        return None
    groups = match.groups()
    try:
        interval = Interval(_instant(groups[0:7]), _instant(groups[7:14]))
    except ValueError:
        return None
    return interval, "gzip" if groups[14] else None


def _instant(parts: Sequence[str | None]) -> datetime:
    year, month, day, hour, minute, second = (int(part or 0) for part in parts[:6])
    return datetime(year, month, day, hour, minute, second, int(parts[6] or 0), tzinfo=timezone.utc)
