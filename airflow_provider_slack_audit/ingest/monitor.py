"""After a window commits, :func:`observe_window`: drift (see :mod:`.registry`), the daily API
snapshot, silence and volume; what each records and logs: docs/guides/drift-and-silence.md.

Nothing here changes what was landed: the findings go in the summary (``drift``, ``silence``), hence
in the task's XCom and asset event. A failed snapshot is a WARNING, never a failed task (the data is
landed; tomorrow's window tries again).
"""

from __future__ import annotations

import asyncio
import logging
import statistics
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from airflow_provider_slack_audit.client.response import AuditLogsResponse
from airflow_provider_slack_audit.version_compat import ObjectStoragePath

from .landing import Landing
from .registry import (
    Drift,
    NameSampler,
    listed_actions,
    read_document,
    record_listed_actions,
    record_window_names,
    registry_path,
    write_bytes,
    write_document,
)
from .spec import IngestSpec, IngestSummary
from .windows import Window

VOLUME_FILE = "volume.json"
MIN_HISTORY = 3
SNAPSHOT_ENDPOINTS = ("actions", "schemas")


@runtime_checkable
class SnapshotClient(Protocol):
    """A client that can also read the ``actions`` and ``schemas`` endpoints."""

    async def actions(self) -> AuditLogsResponse: ...

    async def schemas(self) -> AuditLogsResponse: ...


async def observe_window(
    client: object,
    landing: Landing,
    spec: IngestSpec,
    summary: IngestSummary,
    sampler: NameSampler,
    logger: logging.Logger,
    now: Callable[[], datetime],
) -> None:
    """Record the window's names and volume, land today's snapshot; put the findings in ``summary``."""
    destination = landing.destination
    window_key = spec.window.key
    drift, examples = await asyncio.to_thread(record_window_names, destination, window_key, sampler)
    if spec.api_snapshot and isinstance(client, SnapshotClient):
        drift.new_listed_actions = await _snapshot(
            client, destination, now().date().isoformat(), summary, logger
        )
    if drift.any:
        logger.warning(
            "Drift in window %s under %s: %s (first seen here; the registry is %s)",
            window_key,
            spec.destination,
            drift.describe(examples),
            registry_path(destination),
        )
    summary.drift = drift.to_json()
    silence = await asyncio.to_thread(
        record_volume, destination, spec.window, summary.events, spec.silence_fraction, spec.silence_lookback
    )
    if silence["flagged"]:
        logger.warning("Silence in window %s under %s: %s", window_key, spec.destination, silence["message"])
    summary.silence = silence


async def _snapshot(
    client: SnapshotClient,
    destination: ObjectStoragePath,
    day: str,
    summary: IngestSummary,
    logger: logging.Logger,
) -> list[str]:
    """Land today's ``actions`` and ``schemas`` bodies unless landed already; return newly listed actions."""
    paths = {name: registry_path(destination, f"{name}/{day}.json") for name in SNAPSHOT_ENDPOINTS}
    missing = [name for name, path in paths.items() if not await asyncio.to_thread(path.exists)]
    new_listed: list[str] = []
    for name in missing:
        try:
            response = await (client.actions() if name == "actions" else client.schemas())
            summary.requests += response.requests
            summary.wait_seconds += response.wait_seconds
            response.validate()
            await asyncio.to_thread(write_bytes, paths[name], response.content)
            if name == "actions":
                names = listed_actions(response.body)
                new_listed = await asyncio.to_thread(record_listed_actions, destination, day, names)
        except Exception as error:  # the data is landed: a snapshot never fails the window
            logger.warning(
                "Could not land today's %s snapshot (%s: %s); the next window tries again",
                name,
                type(error).__name__,
                error,
            )
            continue
        logger.info("Landed the %s endpoint's snapshot of %s -> %s", name, day, paths[name])
    return new_listed


def record_volume(
    destination: ObjectStoragePath, window: Window, events: int, fraction: float, lookback: int
) -> dict[str, Any]:
    """Record the window's event count in the volume registry and judge it against earlier windows.

    Blocking: call in a worker thread. Merge on write, like the schema registry.
    """
    path = registry_path(destination, VOLUME_FILE)
    document = read_document(path)
    windows = dict(document.get("windows") or {})
    verdict = judge_silence(window, events, windows.values(), fraction, lookback)
    windows[window.key] = {"start": window.start.isoformat(), "end": window.end.isoformat(), "events": events}
    document["windows"], document["version"] = windows, 1
    write_document(path, document)
    return verdict


def judge_silence(
    window: Window, events: int, history: Any, fraction: float, lookback: int
) -> dict[str, Any]:
    """Whether ``events`` is silence: 0, or under ``fraction`` of the trailing median rate's share."""
    spans = [_volume_record(record) for record in history]
    earlier = sorted(
        (span for span in spans if span is not None and span[1] <= window.start), key=lambda span: span[0]
    )[-lookback:]
    rates = [count / (end - start).total_seconds() for start, end, count in earlier if end > start]
    seconds = (window.end - window.start).total_seconds()
    expected = statistics.median(rates) * seconds if rates else None
    reason, message = None, ""
    if events == 0:
        reason = "empty"
        message = "0 events" + (f" where the trailing median expects {expected:.0f}" if expected else "")
    elif expected is not None and len(rates) >= min(MIN_HISTORY, lookback) and events < fraction * expected:
        reason = "low_volume"
        message = (
            f"{events} events, under {fraction:g} of the {expected:.0f} the median of the last "
            f"{len(rates)} windows expects (a revoked scope, a narrower filter, an outage?)"
        )
    return {
        "flagged": reason is not None,
        "reason": reason,
        "events": events,
        "expected": round(expected, 1) if expected is not None else None,
        "fraction": fraction,
        "lookback": lookback,
        "history": len(rates),
        "message": message,
    }


def _volume_record(record: object) -> tuple[datetime, datetime, int] | None:
    """A volume record's (start, end, events); None for a record this version cannot read."""
    if not isinstance(record, Mapping) or not isinstance(record.get("events"), int):
        return None
    try:
        start, end = datetime.fromisoformat(record["start"]), datetime.fromisoformat(record["end"])
    except (KeyError, TypeError, ValueError):
        return None
    return (start, end, record["events"]) if start.tzinfo and end.tzinfo else None


__all__ = [
    "MIN_HISTORY",
    "Drift",
    "SnapshotClient",
    "judge_silence",
    "observe_window",
    "record_volume",
]
