"""The deployment harness (``support.airflow_deployment``) on a real Airflow: a backfill survives a
kill -9 of the triggerer while its windows are deferred, and lands every id exactly once.

This is the harness the backfill benchmark runs on, and what a system test of a deployment (e.g.
starting tasks on the triggerer) builds on: PostgreSQL, scheduler, DAG processor, triggerer, API
server and LocalExecutor, each its own process on 127.0.0.1.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from airflow_provider_slack_audit.testing import FakeAuditLogsServer
from airflow_provider_slack_audit.version_compat import AIRFLOW_V_3_0_PLUS

from support.airflow_deployment import RESPONSIVE, PostgresMetadata, airflow_deployment
from support.postgres import postgres_bindir, postgres_cluster

pytestmark = [
    pytest.mark.slow,
    pytest.mark.system,
    pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="the harness runs Airflow 3's components"),
]

REPO = Path(__file__).resolve().parents[2]
DAG_FILE = REPO / "example_dags" / "slack_audit_backfill.py"
DAG_ID = "slack_audit_backfill"
DAYS = 2
EVENTS = 60_000  # ~3-4 pages a day: at 20 requests a minute, each window stays deferred for seconds


def test_a_backfill_survives_a_triggerer_kill_and_lands_every_id_once(
    tmp_path: Path, audit_server: Callable[..., FakeAuditLogsServer]
) -> None:
    if postgres_bindir() is None:
        # Skip on a laptop, fail in CI: CI must never pass by testing less.
        missing = pytest.fail if os.environ.get("CI") else pytest.skip
        missing("needs the Debian postgresql binaries (apt-get install postgresql)")
    today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    first = today - timedelta(days=DAYS)
    landing = tmp_path / "landing"
    server = audit_server(events=EVENTS, seed=7, start=first, end=today, requests_per_minute=20,
                          rate_limit_burst=1)  # fmt: skip
    connection = {"conn_type": "slack_audit", "password": "xoxp-test",
                  "extra": {"base_url": server.base_url, "requests_per_minute": 20}}  # fmt: skip
    env = {
        **RESPONSIVE,  # the killed triggerer's triggers move to the new one after 6 s, not 30
        "AIRFLOW_CONN_SLACK_AUDIT_DEFAULT": json.dumps(connection),
        "SLACK_AUDIT_BASE_PATH": landing.as_uri(),
        "SLACK_AUDIT_BACKFILL_START": first.date().isoformat(),
        "SLACK_AUDIT_RETRY_DELAY_SECONDS": "2",
    }
    with (
        postgres_cluster() as cluster,
        airflow_deployment(
            tmp_path / "home", [DAG_FILE], env, metadata=PostgresMetadata(cluster, "airflow")
        ) as deployment,
    ):
        deployment.set_pool("slack_audit_api", 4)
        deployment.wait_for_dags([DAG_ID])
        deployment.unpause(DAG_ID)
        deployment.wait_for(
            "a window of the backfill to defer",
            lambda: server.logs_requests() and deployment.task_states(DAG_ID).get("deferred"),
            timeout=300,
        )
        old_triggerer = deployment.pid("triggerer")
        deployment.kill("triggerer")
        landed_before_restart = len(server.logs_requests())
        deployment.restart("triggerer")
        assert deployment.pid("triggerer") != old_triggerer
        runs = deployment.wait_for_runs(DAG_ID, DAYS, timeout=600)

    assert [run.state for run in runs] == ["success"] * DAYS
    assert len(server.logs_requests()) > landed_before_restart  # the new triggerer did the rest
    landed = [
        json.loads(line)["id"]
        for path in sorted(landing.rglob("*.jsonl.gz"))
        for line in gzip.decompress(path.read_bytes()).splitlines()
    ]
    expected = server.expected_ids(int(first.timestamp()), int(today.timestamp()) - 1)
    assert len(landed) == len(set(landed)) == len(expected)
    assert set(landed) == expected
