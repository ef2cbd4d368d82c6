"""The trigger: lands one window on the triggerer's event loop and reports once.

Its kwargs (stored in the metadata DB) and its event (the task's ``next_kwargs``) hold ids, bounds,
options and a small summary, never the token and never audit data. Progress lives in the landed
files' commit markers, so a trigger that is cancelled and re-created elsewhere resumes at the first
interval that is not committed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

from airflow_provider_slack_audit.client import AsyncAuditLogsClient
from airflow_provider_slack_audit.hooks.slack_audit import SlackAuditLogsHook
from airflow_provider_slack_audit.ingest.outcome import run_ingest
from airflow_provider_slack_audit.ingest.pipeline import IngestSpec
from airflow_provider_slack_audit.version_compat import BaseTrigger, TriggerEvent, redact


class SlackAuditLogsTrigger(BaseTrigger):
    """Run :func:`~airflow_provider_slack_audit.ingest.pipeline.ingest_window` for one window.

    Yields exactly one event, whose payload is the ingest's outcome (see
    :mod:`airflow_provider_slack_audit.ingest.outcome`): a summary, or an error's kind, code and
    secret-free message.

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

        async def client() -> AsyncAuditLogsClient:
            # Old windows (a backfill) yield the org's shared budget to today's runs.
            priority = IngestSpec.from_json(self.spec).priority(datetime.now(timezone.utc))
            return await hook.get_async_client(priority=priority)

        outcome = await run_ingest(client, self.spec, redact=redact)
        if outcome.get("kind") == "permanent" and self.task_instance is not None:
            await asyncio.sleep(max(0.0, started + self.permanent_error_hold_seconds - time.monotonic()))
        yield TriggerEvent(outcome)  # type: ignore[no-untyped-call]
