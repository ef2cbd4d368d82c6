"""On a real deployment (Airflow 3.3+), a landing task starts on the triggerer: no worker process runs
it until the window has landed, the day lands exactly, and a triggerer killed with SIGKILL mid-window
hands the trigger to another triggerer, which finishes the day exactly.

The deployment (support.airflow_deployment: api-server, scheduler with the LocalExecutor, DAG
processor, triggerer; SQLite metadata DB) is started once for the module, on loopback. Where the task
runs is read from the scheduler's log: every workload the scheduler sends to the executor is logged
with the task instance ("Trying to enqueue tasks"), so a task started on the triggerer shows exactly
one, for resuming in ``execute_complete`` after the landing, and none while it lands.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from airflow_provider_slack_audit.ingest.landing import read_manifest
from airflow_provider_slack_audit.ingest.windows import Window
from airflow_provider_slack_audit.testing import FakeAuditLogsServer
from airflow_provider_slack_audit.version_compat import start_from_trigger_supported

from support.airflow_deployment import RESPONSIVE, AirflowDeployment, airflow_deployment
from support.connections import connection_env

pytestmark = [
    pytest.mark.system,
    pytest.mark.slow,
    pytest.mark.skipif(
        not start_from_trigger_supported(), reason="Airflow starts tasks on the triggerer from 3.3"
    ),
]

DAG_ID = "land_on_the_triggerer"
FIRST_DAY = datetime(2026, 1, 4, tzinfo=timezone.utc)
DAYS = 2
EVENTS_PER_DAY = 20_000

DAG_FILE = """
from datetime import datetime, timedelta, timezone
import os
from airflow_provider_slack_audit.operators.slack_audit import SlackAuditLogsOperator
from airflow_provider_slack_audit.version_compat import DAG

with DAG("{dag_id}", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc), catchup=False,
         default_args={{"retries": 2, "retry_delay": timedelta(seconds=2)}}):
    SlackAuditLogsOperator(
        task_id="land",
        destination=os.environ["SLACK_AUDIT_BASE_PATH"],
        # Rendered by the triggerer, from the run's conf.
        oldest="{{{{ dag_run.conf['oldest'] }}}}",
        latest="{{{{ dag_run.conf['latest'] }}}}",
        interval=timedelta(hours=1),
        api_snapshot=False,
        deferrable=True,
    )
"""


@dataclass(frozen=True)
class Setup:
    deployment: AirflowDeployment
    server: FakeAuditLogsServer
    landing: Path


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory,
    serve_fake_api: Callable[..., AbstractContextManager[FakeAuditLogsServer]],
) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("start_on_triggerer")
    dag_file = root / "land_on_the_triggerer.py"
    dag_file.write_text(DAG_FILE.format(dag_id=DAG_ID))
    with serve_fake_api(
        events=EVENTS_PER_DAY * DAYS, seed=33, start=FIRST_DAY, end=FIRST_DAY + timedelta(days=DAYS)
    ) as server:
        landing = root / "landing"
        env = {**RESPONSIVE, **connection_env(server.base_url), "SLACK_AUDIT_BASE_PATH": landing.as_uri()}
        with airflow_deployment(root / "home", [dag_file], env, parallelism=4) as deployment:
            deployment.wait_for_dags([DAG_ID], timeout=180)
            deployment.unpause(DAG_ID)
            yield Setup(deployment, server, landing)


def day(index: int) -> Window:
    start = FIRST_DAY + timedelta(days=index)
    return Window(start, start + timedelta(days=1))


def trigger_day(setup: Setup, index: int) -> str:
    run_id = f"day_{index}"
    window = day(index)
    setup.deployment.trigger(
        DAG_ID, run_id, {"oldest": window.start.isoformat(), "latest": window.end.isoformat()}
    )
    return run_id


def worker_dispatches(setup: Setup, run_id: str) -> int:
    """How many workloads of the run's landing task the scheduler sent to the executor."""
    log = setup.deployment.log_text("scheduler")
    return len(re.findall(rf"Trying to enqueue tasks: \[<TaskInstance: {DAG_ID}\.land {run_id} ", log))


def state(setup: Setup, run_id: str) -> str | None:
    return setup.deployment.task_state(DAG_ID, run_id, "land")


def commit_markers(setup: Setup, window: Window) -> list[Path]:
    folder = setup.landing / f"dt={window.start:%Y-%m-%d}"
    return sorted(folder.glob("*.commit.json")) if folder.exists() else []


def assert_landed_exactly(setup: Setup, window: Window) -> None:
    manifest = read_manifest(setup.landing / "_manifests" / f"slack_audit_{window.key}.manifest.json")
    ids = [entry["id"] for entry in manifest.iter_entries()]
    assert len(ids) == len(set(ids)), "an event was landed twice"
    assert set(ids) == setup.server.expected_ids(window.oldest, window.latest)
    assert len(commit_markers(setup, window)) == 24


def wait_for_success(setup: Setup, run_id: str, timeout: float = 150) -> None:
    final = setup.deployment.wait_for_task(DAG_ID, run_id, "land", timeout=timeout)
    assert final == "success", setup.deployment.log_tail("scheduler")


def test_the_landing_task_lands_a_day_on_the_triggerer_without_a_worker_process(setup: Setup) -> None:
    run_id = trigger_day(setup, 0)
    states: list[str | None] = []

    def landed() -> bool:
        current = state(setup, run_id)
        if not states or states[-1] != current:
            states.append(current)
        return len(commit_markers(setup, day(0))) == 24

    setup.deployment.wait_for("the day to land", landed, timeout=120, poll=0.05)
    dispatched_while_landing = worker_dispatches(setup, run_id)
    wait_for_success(setup, run_id)

    assert dispatched_while_landing == 0, "a worker ran the task before it landed"
    assert next(s for s in states if s) == "deferred", states  # never queued nor running first
    assert worker_dispatches(setup, run_id) == 1  # only the resume: execute_complete, asset event, XCom
    assert_landed_exactly(setup, day(0))


def test_a_triggerer_killed_mid_window_hands_the_day_to_another_which_lands_it_exactly(setup: Setup) -> None:
    setup.server.faults.slow_seconds = 1.0  # pages slow enough to kill the triggerer mid-window
    setup.server.faults.set_rate("slow", 1.0)
    run_id = trigger_day(setup, 1)
    setup.deployment.wait_for(
        "a first interval to commit", lambda: commit_markers(setup, day(1)), timeout=120, poll=0.05
    )
    assert len(commit_markers(setup, day(1))) < 24, "the day landed before the triggerer could be killed"

    setup.deployment.kill("triggerer")
    setup.server.faults.set_rate("slow", 0.0)
    killed_at = time.monotonic()
    setup.deployment.restart("triggerer")
    wait_for_success(setup, run_id)

    assert time.monotonic() - killed_at < 120
    assert worker_dispatches(setup, run_id) == 1
    assert_landed_exactly(setup, day(1))
    # One trigger log per triggerer job that ran the trigger: the killed one and its successor, each
    # starting the task from the run's rendered arguments.
    trigger_logs = (setup.deployment.home / "logs").rglob(f"run_id={run_id}/**/*.trigger.*.log")
    started = [
        path for path in trigger_logs if "Started on the triggerer" in path.read_text(errors="replace")
    ]
    assert len(started) == 2, started
