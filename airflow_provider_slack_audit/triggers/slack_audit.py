"""The trigger: lands one window on the triggerer's event loop and reports once.

Its kwargs (stored in the metadata DB) and its event (the task's ``next_kwargs``) hold ids, bounds,
options and a small summary, never the token and never audit data. Progress lives in the landed
files' commit markers, so a trigger that is cancelled and re-created elsewhere resumes at the first
interval that is not committed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from airflow_provider_slack_audit.client import (
    AsyncAuditLogsClient,
    SlackAuditLogsApiError,
    classify_exception,
)
from airflow_provider_slack_audit.client.errors import hint
from airflow_provider_slack_audit.hooks.slack_audit import SlackAuditLogsHook
from airflow_provider_slack_audit.ingest.pipeline import IngestSpec, ingest_window
from airflow_provider_slack_audit.version_compat import BaseTrigger, TriggerEvent, redact

# An event becomes the task's next_kwargs, stored in the metadata DB: a message is for a human.
_MAX_MESSAGE_CHARS = 2000

ClientFactory = Callable[[], Awaitable[AsyncAuditLogsClient]]


class SlackAuditLogsTrigger(BaseTrigger):
    """Run :func:`~airflow_provider_slack_audit.ingest.pipeline.ingest_window` for one window.

    Yields exactly one event: ``{"status": "success", "summary": {...}}`` or
    ``{"status": "error", "kind": "transient" | "permanent" | "cursor", "error": <code>,
    "message": <text>}``, where ``error`` is Slack's error code or the exception's class name.

    :param slack_audit_conn_id: the ``slack_audit`` connection; the token is read from it here, on
        the triggerer, with Airflow's async connection API.
    :param spec: ``IngestSpec.to_json()`` of the window to land.
    """

    #: Seconds after it started before a triggerer reports a *permanent* error. A trigger that fails
    #: within a second or two of the deferral can resume the task before the scheduler has processed
    #: the executor's "success" of the worker that deferred; Airflow then fails the resumed try as
    #: "killed externally" and retries it (apache/airflow#66374, #72716), so a permanent error would
    #: run twice. Ending the task from the trigger with TaskFailedEvent is no way out: since
    #: apache/airflow#69819 it honours the task's retries too. Only a real triggerer (which sets
    #: ``task_instance``) holds the event; ``airflow dags test`` and the worker path have no race.
    permanent_error_hold_seconds: float = 10.0

    def __init__(self, slack_audit_conn_id: str, spec: dict[str, Any]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Airflow's BaseTrigger is untyped
        self.slack_audit_conn_id = slack_audit_conn_id
        self.spec = spec

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"slack_audit_conn_id": self.slack_audit_conn_id, "spec": self.spec},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = SlackAuditLogsHook(slack_audit_conn_id=self.slack_audit_conn_id)
        # Cancellation (triggerer shutdown, task timeout) propagates out of here without an event;
        # the next trigger instance skips the intervals this one committed.
        started = time.monotonic()
        event = await ingest_event(hook.get_async_client, self.spec)
        if event.get("kind") == "permanent" and self.task_instance is not None:
            await asyncio.sleep(max(0.0, started + self.permanent_error_hold_seconds - time.monotonic()))
        yield TriggerEvent(event)  # type: ignore[no-untyped-call]


async def ingest_event(get_client: ClientFactory, spec: dict[str, Any]) -> dict[str, Any]:
    """Land the window ``spec`` describes and return the event payload describing the outcome.

    This is the one path both the trigger and the operator's non-deferrable mode run, so both map
    errors the same way. It returns an error payload instead of raising for every ``Exception``;
    ``asyncio.CancelledError`` (a ``BaseException``) still propagates.
    """
    try:
        ingest_spec = IngestSpec.from_json(spec)
        client = await get_client()
        summary = await ingest_window(client, ingest_spec)
    except Exception as exc:
        return error_payload(exc)
    return {"status": "success", "summary": summary.to_json()}


def error_payload(exc: BaseException) -> dict[str, Any]:
    """Describe a failure as a small, secret-free event payload.

    ``kind`` decides what the operator raises: only ``transient`` failures are worth another try.
    Anything unclassified (a bad spec, a missing connection, a bug) is ``permanent``: retrying it
    would fail the same way.
    """
    error = exc.error if isinstance(exc, SlackAuditLogsApiError) and exc.error else type(exc).__name__
    return {
        "status": "error",
        "kind": classify_exception(exc) or "permanent",
        "error": error,
        "message": _secret_free_message(exc),
    }


def _secret_free_message(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, SlackAuditLogsApiError) and exc.error and hint(exc.error) not in text:
        text = f"{text}: {hint(exc.error)}"
    # The token was registered with the secrets masker when the hook read it; redact() is the
    # defence in depth for a library that echoes a header or URL into an exception.
    redacted = str(redact(text))
    if len(redacted) > _MAX_MESSAGE_CHARS:
        redacted = redacted[: _MAX_MESSAGE_CHARS - 1] + "…"
    return redacted
