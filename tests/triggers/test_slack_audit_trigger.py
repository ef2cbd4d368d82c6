"""SlackAuditLogsTrigger: secret-free kwargs, one event per run, cancellation without an event."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from importlib import import_module

import aiohttp
import pytest

from airflow_provider_slack_audit.client import AsyncAuditLogsClient, SlackAuditLogsApiError
from airflow_provider_slack_audit.ingest import outcome as outcome_module
from airflow_provider_slack_audit.ingest.outcome import failure_outcome
from airflow_provider_slack_audit.ingest.spec import IngestSpec, IngestSummary
from airflow_provider_slack_audit.ingest.windows import Window
from airflow_provider_slack_audit.triggers.slack_audit import SlackAuditLogsTrigger
from airflow_provider_slack_audit.version_compat import TriggerEvent, redact

TOKEN = "xoxp-trigger-test-token-9876"
SPEC = IngestSpec(
    window=Window(datetime(2026, 1, 4, tzinfo=timezone.utc), datetime(2026, 1, 5, tzinfo=timezone.utc)),
    interval=timedelta(hours=6),
    destination="file:///tmp/slack_audit_trigger_test",
    action=("user_login", "user_logout"),
    actor="W123",
)


@pytest.fixture(autouse=True)
def slack_audit_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {"conn_type": "slack_audit", "password": TOKEN, "extra": {"base_url": "http://127.0.0.1:9/"}}
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_AUDIT_DEFAULT", json.dumps(conn))


def make_trigger(spec: IngestSpec = SPEC) -> SlackAuditLogsTrigger:
    return SlackAuditLogsTrigger(slack_audit_conn_id="slack_audit_default", spec=spec.to_json())


async def collect(trigger: SlackAuditLogsTrigger) -> list[TriggerEvent]:
    return [event async for event in trigger.run()]


IngestWindow = Callable[[AsyncAuditLogsClient, IngestSpec], Awaitable[IngestSummary]]


def fake_ingest(
    outcome: IngestSummary | BaseException, calls: list[tuple[AsyncAuditLogsClient, IngestSpec]] | None = None
) -> IngestWindow:
    """An ingest_window stand-in that records its arguments and returns or raises ``outcome``."""

    async def ingest_window(client: AsyncAuditLogsClient, spec: IngestSpec) -> IngestSummary:
        if calls is not None:
            calls.append((client, spec))
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return ingest_window


def test_serialize_round_trips_through_json_to_an_equal_trigger() -> None:
    classpath, kwargs = make_trigger().serialize()
    module_name, _, class_name = classpath.rpartition(".")

    rebuilt = getattr(import_module(module_name), class_name)(**json.loads(json.dumps(kwargs)))

    assert type(rebuilt) is SlackAuditLogsTrigger
    assert rebuilt.serialize() == (classpath, kwargs)
    assert IngestSpec.from_json(rebuilt.spec) == SPEC


def test_serialized_kwargs_never_hold_the_token() -> None:
    _, kwargs = make_trigger().serialize()

    assert TOKEN not in json.dumps(kwargs)
    assert set(kwargs) == {"slack_audit_conn_id", "spec"}


async def test_run_yields_one_success_event_with_the_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    summary = IngestSummary(window=SPEC.window.to_json(), manifest="file:///m.json", intervals_landed=4)
    calls: list[tuple[AsyncAuditLogsClient, IngestSpec]] = []
    monkeypatch.setattr(outcome_module, "ingest_window", fake_ingest(summary, calls))

    events = await collect(make_trigger())

    assert [event.payload for event in events] == [{"status": "success", "summary": summary.to_json()}]
    ((client, spec),) = calls
    assert spec == SPEC
    assert (client.token, client.base_url) == (TOKEN, "http://127.0.0.1:9/")


async def test_run_reports_a_permanent_api_error_with_its_code_and_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    error = SlackAuditLogsApiError("HTTP 403 for logs", error="user_not_authorized", status_code=403)
    monkeypatch.setattr(outcome_module, "ingest_window", fake_ingest(error))

    (event,) = await collect(make_trigger())

    assert event.payload["status"] == "error"
    assert event.payload["kind"] == "permanent"
    assert event.payload["error"] == "user_not_authorized"
    assert "org owner" in event.payload["message"]


async def test_run_reports_a_dropped_connection_as_transient(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outcome_module, "ingest_window", fake_ingest(aiohttp.ServerDisconnectedError()))

    (event,) = await collect(make_trigger())

    assert (event.payload["kind"], event.payload["error"]) == ("transient", "ServerDisconnectedError")


async def test_run_reports_a_missing_connection_as_permanent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_SLACK_AUDIT_DEFAULT")

    (event,) = await collect(make_trigger())

    assert (event.payload["status"], event.payload["kind"]) == ("error", "permanent")
    assert "slack_audit_default" in event.payload["message"]


async def test_error_messages_never_carry_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    leaky = RuntimeError(f"a library echoed its request headers: Authorization: Bearer {TOKEN}")
    monkeypatch.setattr(outcome_module, "ingest_window", fake_ingest(leaky))

    (event,) = await collect(make_trigger())

    assert TOKEN not in json.dumps(event.payload)
    assert event.payload["error"] == "RuntimeError"


def test_a_failure_outcome_keeps_long_messages_small() -> None:
    payload = failure_outcome(ValueError("x" * 10_000), redact=redact)

    assert len(payload["message"]) == 2000
    assert payload["kind"] == "permanent"


async def test_cancellation_propagates_without_an_event(monkeypatch: pytest.MonkeyPatch) -> None:
    started = asyncio.Event()

    async def ingest_forever(client: AsyncAuditLogsClient, spec: IngestSpec) -> IngestSummary:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    monkeypatch.setattr(outcome_module, "ingest_window", ingest_forever)
    events: list[TriggerEvent] = []

    async def consume() -> None:
        async for event in make_trigger().run():
            events.append(event)

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), timeout=5)
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    assert events == []
