"""A trigger cancelled mid-stream (triggerer restart, task moved) and re-created from its serialized
form resumes with one query over the uncommitted intervals and completes the window exactly."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
from importlib import import_module
from pathlib import Path

import pytest

from airflow_provider_slack_audit.ingest import Window
from airflow_provider_slack_audit.ingest.spec import IngestSpec
from airflow_provider_slack_audit.testing import FakeAuditLogsServer, FaultPlan
from airflow_provider_slack_audit.triggers.slack_audit import SlackAuditLogsTrigger
from airflow_provider_slack_audit.version_compat import TriggerEvent

from support.landing_invariants import assert_landing_sound, server_ids, temp_files

TOKEN = "xoxp-trigger-resume-token"
DAY = datetime(2026, 1, 4, tzinfo=timezone.utc)
WINDOW = Window(DAY, DAY + timedelta(hours=4))
STEP = timedelta(hours=1)
INTERVALS = WINDOW.intervals(STEP)


@pytest.fixture
async def server(slack_audit_connection: Callable[..., None]) -> AsyncIterator[FakeAuditLogsServer]:
    # Every answer takes 30 ms, so the test can cancel while an interval is being read.
    faults = FaultPlan(rates={"slow": 1.0}, slow_seconds=0.03)
    async with FakeAuditLogsServer(
        events=1000, seed=9, start=DAY, end=WINDOW.end, tokens=(TOKEN,), faults=faults
    ) as fake:
        slack_audit_connection(fake.base_url, password=TOKEN)
        yield fake


def rebuild(trigger: SlackAuditLogsTrigger) -> SlackAuditLogsTrigger:
    """What the triggerer does: import the classpath, pass the kwargs as stored (JSON)."""
    classpath, kwargs = trigger.serialize()
    module_name, _, class_name = classpath.rpartition(".")
    rebuilt = getattr(import_module(module_name), class_name)(**json.loads(json.dumps(kwargs)))
    assert isinstance(rebuilt, SlackAuditLogsTrigger)
    return rebuilt


async def wait_for_a_commit_marker(root: Path) -> None:
    # The landing is the observable: the stream commits the newest interval first.
    while not await asyncio.to_thread(lambda: list(root.rglob("*.commit.json"))):  # noqa: ASYNC110
        await asyncio.sleep(0.005)


async def test_a_cancelled_trigger_recreated_from_serialize_resumes_and_completes(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    spec = IngestSpec(
        window=WINDOW, interval=STEP, destination=f"file://{tmp_path}", settle_lag=timedelta(0), limit=40
    )
    trigger = SlackAuditLogsTrigger(slack_audit_conn_id="slack_audit_default", spec=spec.to_json())
    events: list[TriggerEvent] = []

    async def consume(run: AsyncIterator[TriggerEvent]) -> None:
        async for event in run:
            events.append(event)

    running = asyncio.create_task(consume(trigger.run()))
    await asyncio.wait_for(wait_for_a_commit_marker(tmp_path), timeout=30)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running

    assert events == []
    state = assert_landing_sound(tmp_path, WINDOW, STEP, server_ids(server))
    assert state.committed == state.landed
    done = len(state.committed)
    assert 0 < done < len(INTERVALS)
    assert state.committed == set(INTERVALS[-done:]), "the stream commits newest first"
    assert temp_files(tmp_path) == []
    uncommitted = INTERVALS[:-done]
    remaining = len(server.expected_ids(uncommitted[0].oldest, uncommitted[-1].latest))

    server.reset_log()
    (event,) = [event async for event in rebuild(trigger).run()]

    assert event.payload["status"] == "success", event.payload
    summary = event.payload["summary"]
    assert (summary["intervals_skipped"], summary["intervals_landed"]) == (done, len(uncommitted))
    requests = server.logs_requests()
    assert "cursor" not in requests[0].query, "the interrupted stream is re-read from its start"
    assert {(int(r.query["oldest"]), int(r.query["latest"])) for r in requests} == {
        (uncommitted[0].oldest, uncommitted[-1].latest)
    }, "one query over exactly the uncommitted intervals"
    assert len(requests) <= -(-remaining // 40) + 1
    state = assert_landing_sound(tmp_path, WINDOW, STEP, server_ids(server))
    assert state.committed == set(INTERVALS)
    assert summary["events"] == len(server.expected_ids(WINDOW.oldest, WINDOW.latest))
