"""
The ingest core: a window becomes intervals on a fixed grid, read as one request stream, landed as
committed files.

``windows`` does the interval arithmetic, ``landing`` the landing contract (files, commit markers,
manifests), ``pipeline`` the one ingest path and ``outcome`` what a run reports. No operator code
lives here: the hook, trigger and operators build on these names.

Importing this package imports no Airflow: the landing names (which need Airflow's
``ObjectStoragePath``) are loaded on first use, so ``ingest.windows`` stays cheap to import.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from airflow_provider_slack_audit.ingest.windows import EARLIEST, Interval, Window, parse_datetime

if TYPE_CHECKING:
    from airflow_provider_slack_audit.ingest.landing import (
        Compression,
        IntervalCommit,
        IntervalWriter,
        Landing,
        ManifestInterval,
        WindowManifest,
        read_manifest,
    )

_LANDING_NAMES = frozenset(
    {
        "Compression",
        "IntervalCommit",
        "IntervalWriter",
        "Landing",
        "ManifestInterval",
        "WindowManifest",
        "read_manifest",
    }
)


def __getattr__(name: str) -> Any:
    if name in _LANDING_NAMES:
        return getattr(import_module("airflow_provider_slack_audit.ingest.landing"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
