"""The operator's silence and drift settings, run in the worker (deferrable=False) against the fake server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_slack_audit.ingest import read_manifest
from airflow_provider_slack_audit.operators.slack_audit import SlackAuditLogsOperator
from airflow_provider_slack_audit.testing import FakeAuditLogsServer
from airflow_provider_slack_audit.version_compat import AirflowFailException, Asset, OutletEventAccessors

DAY0 = datetime(2026, 1, 4, tzinfo=timezone.utc)
EMPTY_DAY = DAY0 + timedelta(days=2)  # after the server's last event


@pytest.fixture
def server(slack_audit_connection: Callable[..., None]) -> Iterator[FakeAuditLogsServer]:
    fake = FakeAuditLogsServer(events=400, seed=9, start=DAY0, end=DAY0 + timedelta(days=2))
    fake.start_in_thread()
    slack_audit_connection(fake.base_url)
    try:
        yield fake
    finally:
        fake.stop()


def run_day(tmp_path: Path, day: datetime, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    operator = SlackAuditLogsOperator(
        task_id="land",
        destination=f"file://{tmp_path}/landing",
        interval=timedelta(hours=6),
        settle_lag=timedelta(0),
        deferrable=False,
        **kwargs,
    )
    context: dict[str, Any] = {
        "data_interval_start": day,
        "data_interval_end": day + timedelta(days=1),
        "outlet_events": OutletEventAccessors(),
    }
    return operator.execute(context), context


def test_fail_on_silence_fails_an_empty_day_permanently_and_keeps_its_files_committed(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    run_day(tmp_path, DAY0, fail_on_silence=True)

    with pytest.raises(AirflowFailException, match=r"silent \(empty\).*landed and committed"):
        run_day(tmp_path, EMPTY_DAY, fail_on_silence=True)

    manifest = (
        tmp_path / "landing" / "_manifests" / "slack_audit_20260106T000000Z_20260107T000000Z.manifest.json"
    )
    assert len(read_manifest(f"file://{manifest}").intervals) == 4
    assert len(list((tmp_path / "landing" / "dt=2026-01-06").glob("*.commit.json"))) == 4
    # The committed day is not fetched again by the next try.
    before = len(server.logs_requests())
    with pytest.raises(AirflowFailException):
        run_day(tmp_path, EMPTY_DAY, fail_on_silence=True)
    assert len(server.logs_requests()) == before


def test_without_fail_on_silence_an_empty_day_succeeds_flagged_in_the_summary_and_asset_event(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    run_day(tmp_path, DAY0)

    summary, context = run_day(tmp_path, EMPTY_DAY)

    assert summary["silence"]["flagged"] and summary["silence"]["reason"] == "empty"
    extra = context["outlet_events"][Asset(f"file://{tmp_path}/landing")].extra
    assert extra["silence"] == summary["silence"]
    assert extra["drift"] == summary["drift"]


def test_the_operator_lands_the_daily_api_snapshot_by_default(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    summary, _ = run_day(tmp_path, DAY0)

    today = datetime.now(timezone.utc).date().isoformat()
    assert (tmp_path / "landing" / "_registry" / "actions" / f"{today}.json").exists()
    assert (tmp_path / "landing" / "_registry" / "schemas" / f"{today}.json").exists()
    assert summary["requests"] == len(server.logs_requests()) + 2


def test_a_bad_silence_setting_fails_the_task_before_any_request(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    with pytest.raises(AirflowFailException, match="silence_fraction must be a number between 0 and 1"):
        run_day(tmp_path, DAY0, silence_fraction=2)

    assert server.requests == []
