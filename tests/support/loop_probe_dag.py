"""A DAG whose one task defers to a trigger that measures the triggerer's event-loop lateness.

``support.airflow_deployment`` links this file into a deployment's DAGs folder as
``slack_audit_loop_probe.py`` (that folder is on the components' ``PYTHONPATH``, so the triggerer
imports the trigger as ``slack_audit_loop_probe.LoopProbeTrigger``). The trigger sleeps 1 ms at a
time, as ``benchmarks/_loop_stall.py``'s in-process probe does, and once a second appends a line
``<unix second>\\t<largest lateness ms>\\t<wake-ups>`` to ``lateness.tsv`` in the directory named by
``SLACK_AUDIT_LOOP_PROBE_DIR``, until a file ``stop`` appears there. Its lateness is what every other
trigger on that triggerer sees while the landing windows share the loop.

A file ``warm`` holding a destination URL makes the probe pay, once, what a triggerer process's
first landing trigger pays before its first request (the landing path's imports, off the loop as
the trigger does them, and Airflow's filesystem registry for that URL), then write ``warmed``: so a
benchmark can measure those one-time costs apart from what each window costs.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_slack_audit.version_compat import DAG, BaseOperator, BaseTrigger, TriggerEvent

PERIOD = 0.001
CLASSPATH = "slack_audit_loop_probe.LoopProbeTrigger"
PROBE_DIR = os.environ.get("SLACK_AUDIT_LOOP_PROBE_DIR", "/tmp/slack-audit-loop-probe")


class LoopProbeTrigger(BaseTrigger):
    def __init__(self, directory: str) -> None:
        super().__init__()
        self.directory = directory

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return CLASSPATH, {"directory": self.directory}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        loop = asyncio.get_running_loop()
        report = os.path.join(self.directory, "lateness.tsv")
        stop = os.path.join(self.directory, "stop")
        worst, wakeups = 0.0, 0
        next_report = loop.time() + 1
        warming: asyncio.Task[None] | None = None
        # A line a second and one stat: microseconds of blocking I/O, below what is measured.
        while not os.path.exists(stop):  # noqa: ASYNC240
            while loop.time() < next_report:
                due = loop.time() + PERIOD
                await asyncio.sleep(PERIOD)
                worst, wakeups = max(worst, loop.time() - due), wakeups + 1
            with open(report, "a", encoding="ascii") as output:  # noqa: ASYNC230
                output.write(f"{time.time():.3f}\t{worst * 1000:.3f}\t{wakeups}\n")
            worst, wakeups, next_report = 0.0, 0, next_report + 1
            warm = os.path.join(self.directory, "warm")
            if warming is None and os.path.exists(warm):  # noqa: ASYNC240
                with open(warm, encoding="utf-8") as request:  # noqa: ASYNC230
                    warming = asyncio.create_task(self._warm(request.read().strip()))
        yield TriggerEvent({"stopped": True})

    async def _warm(self, url: str) -> None:
        from airflow_provider_slack_audit.triggers.slack_audit import import_landing_path
        from airflow_provider_slack_audit.version_compat import ObjectStoragePath

        await import_landing_path()
        await asyncio.to_thread(lambda: ObjectStoragePath(url).fs)
        with open(os.path.join(self.directory, "warmed"), "w", encoding="ascii") as done:  # noqa: ASYNC230
            done.write(f"{time.time():.3f}\n")


class LoopProbeOperator(BaseOperator):
    def execute(self, context: Any) -> None:
        os.makedirs(PROBE_DIR, exist_ok=True)
        self.defer(trigger=LoopProbeTrigger(PROBE_DIR), method_name="execute_complete")

    def execute_complete(self, context: Any, event: Any = None) -> None:
        return None


with DAG(
    dag_id="slack_audit_loop_probe",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    tags=["benchmark"],
):
    LoopProbeOperator(task_id="probe", execution_timeout=timedelta(hours=6))
