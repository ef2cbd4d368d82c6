"""A cancelled trigger, re-created from its serialized form, resumes at the first uncommitted interval.

Runs the real pipeline against FakeAuditLogsServer on loopback, as the triggerer would.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timedelta, timezone
from importlib import import_module
from pathlib import Path

import pytest

from airflow_provider_slack_audit.ingest.landing import read_manifest
from airflow_provider_slack_audit.ingest.spec import IngestSpec
from airflow_provider_slack_audit.ingest.windows import Window
from airflow_provider_slack_audit.testing import FakeAuditLogsServer
from airflow_provider_slack_audit.triggers.slack_audit import SlackAuditLogsTrigger
from airflow_provider_slack_audit.version_compat import TriggerEvent

WINDOW = Window(datetime(2026, 1, 4, tzinfo=timezone.utc), datetime(2026, 1, 4, 4, tzinfo=timezone.utc))


def rebuild(trigger: SlackAuditLogsTrigger) -> SlackAuditLogsTrigger:
    """What the triggerer does: import the class path and call it with the stored kwargs."""
    classpath, kwargs = trigger.serialize()
    module_name, _, class_name = classpath.rpartition(".")
    rebuilt: SlackAuditLogsTrigger = getattr(import_module(module_name), class_name)(
        **json.loads(json.dumps(kwargs))
    )
    return rebuilt


def commit_markers(destination: Path) -> list[Path]:
    return sorted(destination.rglob("*.commit.json"))


async def wait_for_first_commit(destination: Path, timeout: float = 30) -> None:
    for _ in range(int(timeout / 0.02)):
        if await asyncio.to_thread(commit_markers, destination):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"no interval was committed under {destination} within {timeout} s")


async def test_a_recreated_trigger_skips_the_intervals_committed_before_cancellation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with FakeAuditLogsServer(events=2000, seed=3, start=WINDOW.start, end=WINDOW.end) as server:
        monkeypatch.setenv(
            "AIRFLOW_CONN_SLACK_AUDIT_DEFAULT",
            json.dumps(
                {"conn_type": "slack_audit", "password": "xoxp-test", "extra": {"base_url": server.base_url}}
            ),
        )
        spec = IngestSpec(
            window=WINDOW, interval=timedelta(hours=1), destination=tmp_path.as_uri(), limit=100
        )
        first = SlackAuditLogsTrigger(slack_audit_conn_id="slack_audit_default", spec=spec.to_json())
        server.faults.slow_seconds = 0.05
        server.faults.set_rate("slow", 1.0)

        run = asyncio.ensure_future(first.run().__anext__())
        await wait_for_first_commit(tmp_path)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        committed = await asyncio.to_thread(commit_markers, tmp_path)
        server.faults.clear()
        server.reset_log()

        events: list[TriggerEvent] = [event async for event in rebuild(first).run()]

        (event,) = events
        assert event.payload["status"] == "success"
        summary = event.payload["summary"]
        assert summary["intervals_skipped"] == len(committed)
        assert summary["intervals_landed"] == 4 - len(committed) > 0
        committed_oldest = {json.loads(marker.read_text())["interval"]["oldest"] for marker in committed}
        assert not {int(request.query["oldest"]) for request in server.logs_requests()} & committed_oldest
        landed = {entry["id"] for entry in read_manifest(summary["manifest"]).iter_entries()}
        assert landed == server.expected_ids(WINDOW.oldest, WINDOW.latest)


async def test_the_token_appears_in_no_log_line_kwarg_or_event_even_at_debug(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    token = "xoxp-debug-secret-31337"
    caplog.set_level(logging.DEBUG)
    # An earlier test may have run Airflow's logging config, which disables existing loggers: this
    # test must see every line the provider logs.
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if name.startswith("airflow_provider_slack_audit") and isinstance(logger, logging.Logger):
            monkeypatch.setattr(logger, "disabled", False)
            monkeypatch.setattr(logger, "level", logging.NOTSET)
    package_logger = logging.getLogger("airflow_provider_slack_audit")
    monkeypatch.setattr(package_logger, "level", logging.DEBUG)
    # Capture here, whatever became of the root logger's handlers.
    monkeypatch.setattr(package_logger, "handlers", [*package_logger.handlers, caplog.handler])
    async with FakeAuditLogsServer(
        events=300, seed=5, start=WINDOW.start, end=WINDOW.end, tokens=(token,)
    ) as server:
        monkeypatch.setenv(
            "AIRFLOW_CONN_SLACK_AUDIT_DEFAULT",
            json.dumps(
                {"conn_type": "slack_audit", "password": token, "extra": {"base_url": server.base_url}}
            ),
        )
        spec = IngestSpec(window=WINDOW, interval=timedelta(hours=1), destination=tmp_path.as_uri(), limit=50)
        trigger = SlackAuditLogsTrigger(slack_audit_conn_id="slack_audit_default", spec=spec.to_json())

        (event,) = [event async for event in trigger.run()]

    assert event.payload["status"] == "success"
    assert any("Landed interval" in record.getMessage() for record in caplog.records)
    assert any("Authorization" in record.getMessage() for record in caplog.records), "no DEBUG request line"
    assert token not in caplog.text
    assert token not in json.dumps(trigger.serialize()[1])
    assert token not in json.dumps(event.payload)
