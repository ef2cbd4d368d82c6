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
from typing import Any

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


def _spec(oldest: int, latest: int, dest: Path, interval_hours: float) -> Any:
    """The gzip'd landing of ``[oldest, latest]`` under ``dest`` that both figures measure."""
    from datetime import datetime, timezone

    from airflow_provider_slack_audit.ingest import Window
    from airflow_provider_slack_audit.ingest.spec import IngestSpec

    window = Window(
        datetime.fromtimestamp(oldest, timezone.utc), datetime.fromtimestamp(latest + 1, timezone.utc)
    )
    return IngestSpec(
        window=window,
        interval=timedelta(hours=interval_hours),
        destination=dest.as_uri(),
        settle_lag=timedelta(0),
        compression="gzip",
    )


def measure(base_url: str, oldest: int, latest: int, dest: Path, *, interval_hours: float = 1) -> LoopStall:
    """The stall figure of one ingest of ``[oldest, latest]`` from the server at ``base_url``."""
    from airflow_provider_slack_audit.client import AsyncAuditLogsClient

    spec = _spec(oldest, latest, dest, interval_hours)

    async def run() -> LoopStall:
        client = AsyncAuditLogsClient("xoxp-test", base_url=base_url)  # the fake server's token
        return await measure_async(client, spec)

    return asyncio.run(run())


@dataclass(frozen=True)
class FirstTrigger:
    """A triggerer's first landing trigger, cold: loading its class, then its one run.

    ``import_ms``/``import_cpu_ms``: wall and CPU time of importing the trigger's class on the loop
    (Airflow's ``create_triggers`` does it there); ``max_ms``/``p99_ms``: the probe's lateness from
    the import to the trigger's event, the import included.
    """

    import_ms: float
    import_cpu_ms: float
    max_ms: float
    p99_ms: float
    wakeups: int
    status: str
    seconds: float


TRIGGER_CLASSPATH = "airflow_provider_slack_audit.triggers.slack_audit.SlackAuditLogsTrigger"


def measure_first_trigger(
    base_url: str, oldest: int, latest: int, dest: Path, *, interval_hours: float = 1
) -> FirstTrigger:
    """The stall figures of a trigger's first landing in a fresh interpreter loaded as a triggerer is.

    The in-process figure (:func:`measure`) warms up first: it leaves out what only the first trigger
    of a triggerer pays (importing the trigger's module and the landing path, first uses of the
    filesystem layer and the thread pool), which a backfill's first windows all pay at once.
    """
    import json
    import os
    import subprocess
    import sys

    spec = _spec(oldest, latest, dest, interval_hours)
    connection = {"conn_type": "slack_audit", "password": "xoxp-test", "extra": {"base_url": base_url}}
    done = subprocess.run(
        [sys.executable, __file__, json.dumps(spec.to_json())],
        env={**os.environ, "AIRFLOW_CONN_SLACK_AUDIT_DEFAULT": json.dumps(connection)},
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the first-trigger probe failed:\n{done.stderr[-3000:]}")
    return FirstTrigger(**json.loads(done.stdout.strip().splitlines()[-1]))


async def _first_trigger(spec: dict[str, object]) -> FirstTrigger:
    """In this (fresh) interpreter: probe the loop while the trigger class loads and runs once."""
    import importlib

    lateness: list[float] = []
    stop = asyncio.Event()
    probe = asyncio.create_task(_probe(lateness, stop))
    await asyncio.sleep(0.2)  # the probe and the loop are warm before the trigger arrives
    lateness.clear()
    started, cpu = time.monotonic(), time.thread_time()
    # As Airflow's create_triggers does: import the class on the loop, then run the trigger.
    module_name, _, class_name = TRIGGER_CLASSPATH.rpartition(".")
    trigger_class = getattr(importlib.import_module(module_name), class_name)
    import_ms, import_cpu_ms = (time.monotonic() - started) * 1000, (time.thread_time() - cpu) * 1000
    await asyncio.sleep(0)
    trigger = trigger_class(slack_audit_conn_id="slack_audit_default", spec=spec)
    events = [event.payload async for event in trigger.run()]
    stop.set()
    await probe
    ordered = sorted(lateness)
    return FirstTrigger(
        import_ms=import_ms,
        import_cpu_ms=import_cpu_ms,
        max_ms=ordered[-1] * 1000 if ordered else 0.0,
        p99_ms=ordered[int(len(ordered) * 0.99)] * 1000 if ordered else 0.0,
        wakeups=len(ordered),
        status=str(events[0].get("status")) if events else "no event",
        seconds=time.monotonic() - started,
    )


if __name__ == "__main__":  # the fresh interpreter of measure_first_trigger
    import json
    import logging
    import sys
    from dataclasses import asdict

    logging.disable(logging.INFO)  # one INFO line per interval is not what is measured
    try:  # what a triggerer's process has loaded before its first trigger arrives (Airflow 3)
        import airflow.jobs.triggerer_job_runner
    except ImportError:
        import airflow.triggers.base  # noqa: F401
    print(json.dumps(asdict(asyncio.run(_first_trigger(json.loads(sys.argv[1]))))))
