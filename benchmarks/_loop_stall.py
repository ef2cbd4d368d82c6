"""The event loop's largest stall while ``ingest_window`` lands a window (issue 10, item 5).

In the triggerer many triggers share one event loop, so no step of the landing path may hold it
for long. A probe task sleeps 1 ms at a time and records how late each wake-up is; the largest
lateness while the ingest runs is the stall figure (the loop could run nothing else that long).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

PROBE_PERIOD = 0.001


@dataclass(frozen=True)
class LoopStall:
    max_ms: float
    p99_ms: float
    wakeups: int
    events: int
    seconds: float


async def _probe(lateness: list[float], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        due = loop.time() + PROBE_PERIOD
        await asyncio.sleep(PROBE_PERIOD)
        lateness.append(loop.time() - due)


async def measure_async(client: object, spec: object) -> LoopStall:
    """Land ``spec`` with ``client`` while probing the loop; the figures of that run."""
    from airflow_provider_slack_audit.ingest import landing  # noqa: F401  (as loaded in a triggerer)
    from airflow_provider_slack_audit.ingest.pipeline import ingest_window

    lateness: list[float] = []
    stop = asyncio.Event()
    probe = asyncio.create_task(_probe(lateness, stop))
    await asyncio.sleep(0.05)  # the probe is running before the ingest starts
    lateness.clear()
    started = time.monotonic()
    try:
        summary = await ingest_window(client, spec)  # type: ignore[arg-type]
    finally:
        stop.set()
        await probe
    ordered = sorted(lateness)
    return LoopStall(
        max_ms=ordered[-1] * 1000 if ordered else 0.0,
        p99_ms=ordered[int(len(ordered) * 0.99)] * 1000 if ordered else 0.0,
        wakeups=len(ordered),
        events=summary.events,
        seconds=time.monotonic() - started,
    )


def measure(base_url: str, oldest: int, latest: int, dest: Path, *, interval_hours: float = 1) -> LoopStall:
    """The stall figure of one ingest of ``[oldest, latest]`` from the server at ``base_url``."""
    from datetime import datetime, timezone

    from airflow_provider_slack_audit.client import AsyncAuditLogsClient
    from airflow_provider_slack_audit.ingest import Window
    from airflow_provider_slack_audit.ingest.spec import IngestSpec

    window = Window(
        datetime.fromtimestamp(oldest, timezone.utc), datetime.fromtimestamp(latest + 1, timezone.utc)
    )
    spec = IngestSpec(
        window=window,
        interval=timedelta(hours=interval_hours),
        destination=dest.as_uri(),
        settle_lag=timedelta(0),
        compression="gzip",
    )

    async def run() -> LoopStall:
        client = AsyncAuditLogsClient("xoxp-test", base_url=base_url)  # the fake server's token
        return await measure_async(client, spec)

    return asyncio.run(run())
