"""The deferral-cost scenario: what Airflow adds around one day's ingest, measured on `airflow dags test`.

A deferrable task pays for each deferral (serialize the trigger, hand it to the triggerer, resume
the task with the event). The provider defers once per task run and lands the whole window in the
trigger; this scenario checks that and splits the DAG run's wall time into the ingest itself (the
pipeline's own timing) and Airflow's overhead (CLI start, DAG parsing, task start, deferral, resume).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from _server import TOKEN, fake_server

REPO = Path(__file__).resolve().parent.parent
DAG_FILE = REPO / "example_dags" / "slack_audit_daily.py"
DAG_ID = "slack_audit_daily"
# `dags test DAG 2026-01-05` runs the data interval [2026-01-04, 2026-01-05) (daily data-interval timetable).
LOGICAL_DATE = datetime(2026, 1, 5, tzinfo=timezone.utc)
DAY = (LOGICAL_DATE - timedelta(days=1), LOGICAL_DATE)
TIMEOUT = 1800.0

# `dags test` logs the first line each time it runs a deferred task's trigger in-process (one per
# deferral), and the second each time it runs the task: once per try, plus once per resume.
DEFERRAL_MARKER = "[DAG TEST] running trigger in line"
TASK_RUN_MARKER = "[DAG TEST] running task"
# The pipeline's closing log line: "Window [...): 24 intervals landed, ..., 12 requests, 3.4 s -> ...".
_WINDOW_LINE = re.compile(
    r"Window \[[^)]*\): (?P<landed>\d+) intervals landed, (?P<skipped>\d+) skipped, (?P<events>\d+) events, "
    r"(?P<requests>\d+) requests, (?P<seconds>[\d.]+) s"
)


def run_deferral(*, events: int, seed: int) -> dict[str, Any]:
    """Run the daily DAG for one day of ``events`` events; report deferrals, wall and ingest time.

    Returns ``{"status": "skipped", "reason": ...}`` when the DAG is not there, and
    ``{"status": "failed", ...}`` with the end of the log when the run does not succeed.
    """
    if not DAG_FILE.exists():
        return {"status": "skipped", "reason": f"{DAG_FILE.relative_to(REPO)} does not exist yet"}
    with tempfile.TemporaryDirectory(prefix="bench-dag-") as home:
        env = _airflow_env(Path(home))
        migrate = _airflow(["db", "migrate"], env, Path(home) / "migrate.log")
        if migrate.returncode != 0:
            return _failed("`airflow db migrate` failed", Path(home) / "migrate.log")
        with fake_server(events=events, seed=seed, start=DAY[0], end=DAY[1]) as base_url:
            env["AIRFLOW_CONN_SLACK_AUDIT_DEFAULT"] = json.dumps(
                {"conn_type": "slack_audit", "password": TOKEN, "extra": {"base_url": base_url}}
            )
            log_path = Path(home) / "dags-test.log"
            started = time.perf_counter()
            run = _airflow(["dags", "test", DAG_ID, LOGICAL_DATE.date().isoformat()], env, log_path)
            wall = time.perf_counter() - started
        log = log_path.read_text(errors="replace")
        window = _WINDOW_LINE.search(log)
        if run.returncode != 0 or window is None:
            return _failed(f"`airflow dags test` exited with code {run.returncode}", log_path)
        landed = _landed_events(env["SLACK_AUDIT_BASE_PATH"])
        deferrals = log.count(DEFERRAL_MARKER)
        return {
            "status": "ran",
            "dag_id": DAG_ID,
            "events": events,
            "deferrals": deferrals,
            "task_tries": log.count(TASK_RUN_MARKER) - deferrals,
            "wall_seconds": wall,
            "ingest_seconds": float(window["seconds"]),
            "airflow_overhead_seconds": wall - float(window["seconds"]),
            "requests": int(window["requests"]),
            "landed_events": landed,
            "complete": landed == events,
        }


def _airflow_env(home: Path) -> dict[str, str]:
    """A throwaway Airflow: its own home and SQLite DB, the repo's example DAGs, files under ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and "proxy" not in k.lower()}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAG_FILE.parent),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "SLACK_AUDIT_BASE_PATH": (home / "landing").as_uri(),
            # A failed try is reported, not waited out for minutes.
            "SLACK_AUDIT_RETRY_DELAY_SECONDS": "1",
        }
    )
    return env


def _airflow(arguments: list[str], env: dict[str, str], log_path: Path) -> subprocess.CompletedProcess[bytes]:
    with open(log_path, "wb") as log:
        return subprocess.run(
            [sys.executable, "-m", "airflow", *arguments],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=TIMEOUT,
            check=False,
        )


def _landed_events(base_url: str) -> int:
    from airflow_provider_slack_audit.ingest.landing import read_manifest

    manifests = sorted(Path(base_url.removeprefix("file://")).glob("_manifests/*.manifest.json"))
    return sum(read_manifest(path.as_uri()).events for path in manifests)


def _failed(reason: str, log_path: Path) -> dict[str, Any]:
    lines = log_path.read_text(errors="replace").splitlines()
    errors = [line for line in lines if "Error" in line or "error" in line][-5:]
    return {"status": "failed", "reason": reason, "log_tail": errors or lines[-10:]}
