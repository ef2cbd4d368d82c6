"""Two instances of one trigger (Airflow documents that two triggerers may briefly both run it):
both end in a success event, and the window lands once. Runs the real pipeline against
FakeAuditLogsServer on loopback, as the triggerer would."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

from airflow_provider_slack_audit.ingest.spec import IngestSpec
from airflow_provider_slack_audit.ingest.windows import Window
from airflow_provider_slack_audit.testing import FakeAuditLogsServer
from airflow_provider_slack_audit.triggers.slack_audit import SlackAuditLogsTrigger
from airflow_provider_slack_audit.version_compat import TriggerEvent

from support.landing_invariants import assert_landing_sound, server_ids, temp_files

WINDOW = Window(datetime(2026, 1, 4, tzinfo=timezone.utc), datetime(2026, 1, 4, 4, tzinfo=timezone.utc))
STEP = timedelta(hours=1)


async def events_of(trigger: SlackAuditLogsTrigger) -> list[TriggerEvent]:
    return [event async for event in trigger.run()]


async def test_two_instances_of_one_trigger_both_end_in_a_success_event(
    tmp_path: Path, slack_audit_connection: Callable[..., None], instant_retries: None
) -> None:
    async with FakeAuditLogsServer(events=1500, seed=21, start=WINDOW.start, end=WINDOW.end) as server:
        slack_audit_connection(server.base_url, password="xoxp-test")
        spec = IngestSpec(window=WINDOW, interval=STEP, destination=tmp_path.as_uri(), limit=100)
        server.faults.slow_seconds = 0.01
        server.faults.set_rate("slow", 1.0)

        def trigger() -> SlackAuditLogsTrigger:
            return SlackAuditLogsTrigger(slack_audit_conn_id="slack_audit_default", spec=spec.to_json())

        first, second = await asyncio.gather(events_of(trigger()), events_of(trigger()))

        assert [event.payload["status"] for event in first + second] == ["success", "success"]
        summaries = [events[0].payload["summary"] for events in (first, second)]
        assert sum(summary["intervals_landed"] for summary in summaries) == len(WINDOW.intervals(STEP))
        state = assert_landing_sound(tmp_path, WINDOW, STEP, server_ids(server))
        assert state.committed == set(WINDOW.intervals(STEP))
        assert temp_files(tmp_path) == []
