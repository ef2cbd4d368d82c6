"""The partitioned example DAGs on a real deployment (Airflow 3.2+): a partition backfill of one day
lands it, the landing's asset event carries the day's partition key, and the partition-scheduled
warehouse DAG runs for that key and loads exactly that day's events.

``airflow dags test`` cannot show this: a partition backfill and an asset-triggered run need the
scheduler, so the deployment of :mod:`support.airflow_deployment` runs the example file on loopback.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from airflow_provider_slack_audit.ingest.windows import Window
from airflow_provider_slack_audit.testing import FakeAuditLogsServer
from airflow_provider_slack_audit.version_compat import PARTITIONED_RUNS

from support.airflow_deployment import RESPONSIVE, AirflowDeployment, airflow_deployment
from support.connections import connection_env

pytestmark = [
    pytest.mark.system,
    pytest.mark.slow,
    pytest.mark.skipif(not PARTITIONED_RUNS, reason="partition timetables arrived in Airflow 3.2"),
]

EXAMPLE = Path(__file__).resolve().parents[2] / "example_dags" / "slack_audit_partitioned.py"
LANDING_DAG, WAREHOUSE_DAG = "slack_audit_partitioned", "slack_audit_partitioned_warehouse"
DAY = Window(datetime(2026, 1, 4, tzinfo=timezone.utc), datetime(2026, 1, 5, tzinfo=timezone.utc))
KEY = "2026-01-04"


@dataclass(frozen=True)
class Setup:
    deployment: AirflowDeployment
    server: FakeAuditLogsServer
    warehouse: Path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("partitioned")
    # Events on the day and on the seconds either side of it, which must not load.
    server = FakeAuditLogsServer(
        events=6_000, seed=44, start=DAY.start - timedelta(hours=2), end=DAY.end + timedelta(hours=2)
    )
    server.start_in_thread()
    warehouse = root / "warehouse.db"
    env = {
        **RESPONSIVE,
        **connection_env(server.base_url),
        "SLACK_AUDIT_BASE_PATH": (root / "landing").as_uri(),
        "AIRFLOW_CONN_SLACK_AUDIT_WAREHOUSE": f'{{"conn_type": "sqlite", "host": "{warehouse}"}}',
    }
    try:
        # This example only: the others would schedule runs.
        with airflow_deployment(root / "home", [EXAMPLE], env, parallelism=4) as deployment:
            deployment.wait_for_dags([LANDING_DAG, WAREHOUSE_DAG], timeout=180)
            for dag_id in (LANDING_DAG, WAREHOUSE_DAG):
                deployment.unpause(dag_id)
            yield Setup(deployment, server, warehouse)
    finally:
        server.stop()


def run_states(deployment: AirflowDeployment, dag_id: str, partition_key: str) -> list[str]:
    """The states of ``dag_id``'s runs for ``partition_key``."""
    rows = deployment.query(
        "SELECT state FROM dag_run WHERE dag_id = %s AND partition_key = %s", dag_id, partition_key
    )
    return [str(state) for (state,) in rows]


def finished(deployment: AirflowDeployment, dag_id: str, partition_key: str) -> list[str]:
    return [
        state for state in run_states(deployment, dag_id, partition_key) if state in ("success", "failed")
    ]


def test_a_partition_backfill_lands_the_day_and_the_warehouse_loads_exactly_that_partition(
    setup: Setup,
) -> None:
    # The scheduler also makes the DAG's latest scheduled run (yesterday's partition, empty on the
    # fake server); everything below is about the backfilled partition's key.
    deployment = setup.deployment
    deployment.backfill(LANDING_DAG, "2026-01-04", "2026-01-04")

    deployment.wait_for("the backfill's run", lambda: finished(deployment, LANDING_DAG, KEY), timeout=150)
    deployment.wait_for("the partition's load", lambda: finished(deployment, WAREHOUSE_DAG, KEY), timeout=150)

    assert run_states(deployment, LANDING_DAG, KEY) == ["success"]
    extras = deployment.query(
        "SELECT e.extra FROM asset_event e JOIN asset a ON e.asset_id = a.id"
        " WHERE a.uri LIKE 'file:%%' AND e.partition_key = %s",
        KEY,
    )
    assert len(extras) == 1 and json.loads(extras[0][0])["partition_key"] == KEY
    assert json.loads(extras[0][0])["window"]["start"] == DAY.start.isoformat()
    assert run_states(deployment, WAREHOUSE_DAG, KEY) == ["success"]
    with closing(sqlite3.connect(setup.warehouse)) as db:
        loaded = [row[0] for row in db.execute("SELECT id FROM slack_audit_logs")]
    assert len(loaded) == len(set(loaded))
    assert set(loaded) == setup.server.expected_ids(DAY.oldest, DAY.latest)
    assert setup.server.expected_ids(DAY.oldest - 3600, DAY.oldest - 1), (
        "no event before the day to leave out"
    )
