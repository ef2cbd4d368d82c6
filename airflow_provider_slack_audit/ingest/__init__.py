"""
The ingest core: a window becomes intervals on a fixed grid, read as one request stream, landed as
committed files.

``windows`` does the interval arithmetic, ``landing`` the landing contract (files, commit markers,
manifests), ``pipeline`` the one ingest path and ``outcome`` what a run reports. No operator code
lives here: the hook, trigger and operators build on these names.
"""

from __future__ import annotations

from airflow_provider_slack_audit.ingest.landing import (
    Compression,
    IntervalCommit,
    IntervalWriter,
    Landing,
    ManifestInterval,
    WindowManifest,
    read_manifest,
)
from airflow_provider_slack_audit.ingest.windows import EARLIEST, Interval, Window, parse_datetime

__all__ = [
    "EARLIEST",
    "Compression",
    "Interval",
    "IntervalCommit",
    "IntervalWriter",
    "Landing",
    "ManifestInterval",
    "Window",
    "WindowManifest",
    "parse_datetime",
    "read_manifest",
]
