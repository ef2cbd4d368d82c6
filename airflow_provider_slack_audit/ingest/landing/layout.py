"""Where things live under a destination: keys, partitions and paths (no I/O).

    <dest>/dt=2026-01-04/slack_audit_<interval.key>.jsonl.gz      data, one API entry per line
    <dest>/dt=2026-01-04/slack_audit_<interval.key>.commit.json   commit marker, written after the data
    <dest>/_manifests/slack_audit_<window.key>.manifest.json       the intervals of one window

``dt`` is the UTC date of the interval start. Temporary files are hidden siblings ending in
``.tmp-<owner>``, so nothing but complete data files ends in ``.jsonl``/``.jsonl.gz``.
"""

from __future__ import annotations

from typing import Literal

from airflow_provider_slack_audit.ingest.windows import Interval, Window

Compression = Literal["gzip"] | None

PREFIX = "slack_audit_"
MANIFESTS_DIR = "_manifests"
TEMP_MARK = ".tmp-"


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


__all__ = [
    "MANIFESTS_DIR",
    "PREFIX",
    "TEMP_MARK",
    "Compression",
    "parse_compression",
    "partition",
    "relative_data_path",
    "relative_manifest_path",
    "relative_marker_path",
]
