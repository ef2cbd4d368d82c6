"""A triggerer reports a fast permanent error only once the scheduler has seen the deferral (issue 13).

Airflow fails a resumed try as "killed externally" when the executor's success of the deferring worker
is processed after the resume, and retries it; a permanent error must not run twice.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from airflow_provider_slack_audit.client import AsyncAuditLogsClient, SlackAuditLogsApiError
from airflow_provider_slack_audit.ingest import outcome as outcome_module
from airflow_provider_slack_audit.ingest.spec import IngestSpec, IngestSummary
from airflow_provider_slack_audit.ingest.windows import Window
from airflow_provider_slack_audit.triggers.slack_audit import SlackAuditLogsTrigger

HOLD = 0.5
SPEC = IngestSpec(
    window=Window(datetime(2026, 1, 4, tzinfo=timezone.utc), datetime(2026, 1, 5, tzinfo=timezone.utc)),
    interval=timedelta(hours=6),
    destination="file:///tmp/slack_audit_hold_test",
)


@pytest.fixture(autouse=True)
def slack_audit_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {"conn_type": "slack_audit", "password": "xoxp-hold", "extra": {"base_url": "http://127.0.0.1:9/"}}
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_AUDIT_DEFAULT", json.dumps(conn))
    monkeypatch.setattr(SlackAuditLogsTrigger, "permanent_error_hold_seconds", HOLD)


def outcome(result: IngestSummary | BaseException, monkeypatch: pytest.MonkeyPatch) -> None:
    async def ingest_window(client: AsyncAuditLogsClient, spec: IngestSpec) -> IngestSummary:
        if isinstance(result, BaseException):
            raise result
        return result

    monkeypatch.setattr(outcome_module, "ingest_window", ingest_window)


def trigger(*, in_triggerer: bool) -> SlackAuditLogsTrigger:
    made = SlackAuditLogsTrigger(slack_audit_conn_id="slack_audit_default", spec=SPEC.to_json())
    if in_triggerer:  # what the triggerer sets before running a trigger
        made.task_instance = SimpleNamespace(task_id="land_audit_logs")  # type: ignore[assignment]
    return made


async def seconds_to_event(made: SlackAuditLogsTrigger) -> tuple[float, dict[str, object]]:
    started = time.monotonic()
    (event,) = [event async for event in made.run()]
    return time.monotonic() - started, event.payload


async def test_a_fast_permanent_error_is_held_in_a_triggerer(monkeypatch: pytest.MonkeyPatch) -> None:
    outcome(SlackAuditLogsApiError("HTTP 401", error="invalid_authentication", status_code=401), monkeypatch)

    elapsed, payload = await seconds_to_event(trigger(in_triggerer=True))

    assert payload["kind"] == "permanent"
    assert elapsed >= HOLD


async def test_a_transient_error_or_a_success_is_not_held(monkeypatch: pytest.MonkeyPatch) -> None:
    outcome(SlackAuditLogsApiError("HTTP 503", error=None, status_code=503), monkeypatch)
    transient_elapsed, transient = await seconds_to_event(trigger(in_triggerer=True))
    outcome(IngestSummary(window=SPEC.window.to_json()), monkeypatch)
    success_elapsed, success = await seconds_to_event(trigger(in_triggerer=True))

    assert (transient["kind"], success["status"]) == ("transient", "success")
    assert transient_elapsed < HOLD
    assert success_elapsed < HOLD


async def test_outside_a_triggerer_a_permanent_error_is_reported_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outcome(SlackAuditLogsApiError("HTTP 401", error="invalid_authentication", status_code=401), monkeypatch)

    elapsed, payload = await seconds_to_event(trigger(in_triggerer=False))

    assert payload["kind"] == "permanent"
    assert elapsed < HOLD
