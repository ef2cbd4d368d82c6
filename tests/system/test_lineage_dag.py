"""OpenLineage events of the daily DAG under `airflow dags test`: the deferred task reports its datasets."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_slack_audit.testing import FakeAuditLogsServer

pytestmark = [pytest.mark.system, pytest.mark.slow]

LOGICAL_DATE = datetime(2026, 1, 5, tzinfo=timezone.utc)


def test_the_deferred_landing_reports_the_audit_log_and_the_destination(
    airflow_home: Any,
    audit_server: Callable[..., FakeAuditLogsServer],
    connection_env: Callable[..., dict[str, str]],
    tmp_path: Path,
) -> None:
    server = audit_server(
        events=2000, seed=31, start=datetime(2026, 1, 4, tzinfo=timezone.utc), end=LOGICAL_DATE
    )
    landing, events_file = tmp_path / "landing", tmp_path / "openlineage.jsonl"
    transport = {"type": "file", "log_file_path": str(events_file), "append": True}
    env = {
        **connection_env(server),
        "SLACK_AUDIT_BASE_PATH": landing.as_uri(),
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "system_test",
    }

    airflow_home.dags_test(
        "slack_audit_daily", LOGICAL_DATE, env=env, log=tmp_path / "run.log"
    ).assert_succeeded()

    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    (complete,) = [
        event
        for event in events
        if event["eventType"] == "COMPLETE" and event["job"]["name"].endswith(".land_audit_logs")
    ]
    base = server.base_url.rstrip("/").split("://", 1)[1]
    assert [(d["namespace"], d["name"]) for d in complete["inputs"]] == [(f"slack-audit://{base}", "logs")]
    ((output),) = complete["outputs"]
    assert (output["namespace"], output["name"]) == ("file", str(landing))
    assert output["outputFacets"]["outputStatistics"]["rowCount"] == 2000
    facet = complete["run"]["facets"]["slackAuditLanding"]
    assert facet["window"]["start"] == "2026-01-04T00:00:00+00:00"
    assert facet["figures"]["events"] == 2000
    assert facet["figures"]["intervals_landed"] == 24
