"""``trigger_queue`` on a real deployment (Airflow 3.2+): the landing trigger waits for a triggerer
started with that queue, while the deployment's other triggerer (started without ``--queues``) leaves
it alone; once a dedicated triggerer starts, it lands the day exactly."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest

from airflow_provider_slack_audit.ingest.landing import read_manifest
from airflow_provider_slack_audit.ingest.windows import Window
from airflow_provider_slack_audit.testing import FakeAuditLogsServer
from airflow_provider_slack_audit.version_compat import TRIGGERER_QUEUES

from support.airflow_deployment import RESPONSIVE, AirflowDeployment, airflow_deployment
from support.connections import connection_env

pytestmark = [
    pytest.mark.system,
    pytest.mark.slow,
    pytest.mark.skipif(not TRIGGERER_QUEUES, reason="triggerer queues arrived in Airflow 3.2"),
]

DAG_ID = "land_on_a_dedicated_triggerer"
QUEUE = "slack_audit"
DAY = Window(datetime(2026, 1, 4, tzinfo=timezone.utc), datetime(2026, 1, 5, tzinfo=timezone.utc))

DAG_FILE = f"""
from datetime import datetime, timedelta, timezone
import os
from airflow_provider_slack_audit.operators.slack_audit import SlackAuditLogsOperator
from airflow_provider_slack_audit.version_compat import DAG

with DAG("{DAG_ID}", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc), catchup=False):
    SlackAuditLogsOperator(
        task_id="land",
        destination=os.environ["SLACK_AUDIT_BASE_PATH"],
        oldest="{DAY.start.isoformat()}",
        latest="{DAY.end.isoformat()}",
        api_snapshot=False,
        deferrable=True,
        trigger_queue="{QUEUE}",
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
    root = tmp_path_factory.mktemp("trigger_queue")
    dag_file = root / "land_on_a_dedicated_triggerer.py"
    dag_file.write_text(DAG_FILE)
    with serve_fake_api(events=10_000, seed=55, start=DAY.start, end=DAY.end) as server:
        landing = root / "landing"
        env = {
            **RESPONSIVE,
            **connection_env(server.base_url),
            "SLACK_AUDIT_BASE_PATH": landing.as_uri(),
            "AIRFLOW__TRIGGERER__QUEUES_ENABLED": "True",
        }
        with airflow_deployment(root / "home", [dag_file], env, parallelism=4) as deployment:
            deployment.wait_for_dags([DAG_ID], timeout=180)
            deployment.unpause(DAG_ID)
            yield Setup(deployment, server, landing)


def test_the_landing_trigger_runs_only_on_a_triggerer_started_with_its_queue(setup: Setup) -> None:
    deployment = setup.deployment
    deployment.trigger(DAG_ID, "day", {})
    deployment.wait_for(
        "the task to defer", lambda: deployment.task_state(DAG_ID, "day", "land") == "deferred", 150
    )
    assert [queue for (queue,) in deployment.query("SELECT queue FROM trigger")] == [QUEUE]

    time.sleep(8)  # the deployment's triggerer (no --queues) had every chance to pick it up
    assert deployment.task_state(DAG_ID, "day", "land") == "deferred"
    assert setup.server.logs_requests() == [], "a triggerer outside the queue ran the landing"

    deployment.start_component("triggerer", "--queues", QUEUE, name="triggerer-queue")
    final = deployment.wait_for_task(DAG_ID, "day", "land", timeout=150)

    assert final == "success"
    manifest = read_manifest(setup.landing / "_manifests" / f"slack_audit_{DAY.key}.manifest.json")
    ids = [entry["id"] for entry in manifest.iter_entries()]
    assert len(ids) == len(set(ids)) and set(ids) == setup.server.expected_ids(DAY.oldest, DAY.latest)
