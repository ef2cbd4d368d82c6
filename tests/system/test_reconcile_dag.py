"""The slack_audit_reconcile example DAG under ``airflow dags test``: after the daily DAG landed a day
without the events Slack showed late, the reconcile run N days later adds exactly those events,
leaves every other file untouched and records how late they were."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_slack_audit.ingest.windows import Window
from airflow_provider_slack_audit.testing import FakeAuditLogsServer, ManualClock

pytestmark = [pytest.mark.system, pytest.mark.slow]

DAY = Window(datetime(2026, 1, 4, tzinfo=timezone.utc), datetime(2026, 1, 5, tzinfo=timezone.utc))
LATE_DELAY = timedelta(hours=2)


def landed(root: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every data file and marker: inode, mtime and bytes (all equal: untouched)."""
    return {
        str(path.relative_to(root)): (path.stat().st_ino, path.stat().st_mtime_ns, path.read_bytes())
        for path in sorted(root.glob("dt=*/*"))
    }


def landed_ids(root: Path) -> list[str]:
    return [
        json.loads(line)["id"] for path in sorted(root.glob("dt=*/*.jsonl.gz")) for line in gzip.open(path)
    ]


def test_the_reconcile_dag_adds_exactly_the_late_events_and_records_their_lateness(
    airflow_home: Any,
    audit_server: Callable[..., FakeAuditLogsServer],
    connection_env: Callable[..., dict[str, str]],
    tmp_path: Path,
) -> None:
    # The daily run reads the day 10 minutes after it ended: events Slack shows 2 hours late are
    # not visible yet. The server's clock is the test's; the DAGs' own "now" is today's.
    clock = ManualClock(DAY.end + timedelta(minutes=10))
    server = audit_server(
        events=3000, seed=17, start=DAY.start, end=DAY.end, late_fraction=0.1, late_delay=7200, clock=clock
    )
    root = tmp_path / "landing"
    env = {**connection_env(server), "SLACK_AUDIT_BASE_PATH": root.as_uri()}
    airflow_home.dags_test(
        "slack_audit_daily", DAY.end, env=env, log=tmp_path / "daily.log"
    ).assert_succeeded()
    missed = server.pending_ids(DAY.oldest, DAY.latest)
    assert missed, "the day must end with events not visible yet"
    before = landed(root)
    clock.advance(LATE_DELAY.total_seconds())
    requests_before = len(server.logs_requests())

    # The run of 2026-01-08 reconciles the day 3 days before its own [01-07, 01-08): 01-04.
    run = airflow_home.dags_test(
        "slack_audit_reconcile", DAY.end + timedelta(days=3), env=env, log=tmp_path / "reconcile.log"
    )

    run.assert_succeeded()
    ids = landed_ids(root)
    assert len(ids) == len(set(ids)), "an event was landed twice"
    assert set(ids) == server.expected_ids(DAY.oldest, DAY.latest)
    assert missed <= set(ids)
    after = landed(root)
    changed = {name for name in after if after[name] != before.get(name)}
    late_hours = {name.split("/")[1].split(".")[0] for name in changed}
    # Only the hours that got late events changed (data file and marker), the rest are untouched.
    assert changed and all(name.endswith((".jsonl.gz", ".commit.json")) for name in changed)
    assert len(changed) == 2 * len(late_hours) < len(after)
    requests = len(server.logs_requests()) - requests_before
    assert requests <= -(-len(ids) // 9999) + 1, "one query at the API's minimum of requests"
    manifest = json.loads((root / "_manifests" / f"slack_audit_{DAY.key}.manifest.json").read_bytes())
    late = {item["path"]: item["stats"] for item in manifest["intervals"] if "late_events" in item["stats"]}
    assert sum(stats["late_events"] for stats in late.values()) == len(missed)
    assert {path.split("/")[1].split(".")[0] for path in late} == late_hours
    # Discovered today, created on 2026-01-04: late by months, and in order.
    assert all(
        DAY.end.timestamp() - 86_400 < datetime.now(timezone.utc).timestamp() - stats["late_max_seconds"]
        and stats["late_min_seconds"] <= stats["late_median_seconds"] <= stats["late_max_seconds"]
        for stats in late.values()
    )
    assert manifest["run"]["reconcile"]["late_events"] == len(missed)
    ratio = f"{len(missed)} late events of {len(ids)}"
    assert ratio in run.log.read_text(), "report_late_events logs the late-event ratio"
