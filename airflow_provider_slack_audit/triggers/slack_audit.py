"""The trigger: lands one window on the triggerer's event loop and reports once.

Its kwargs (stored in the metadata DB) and its event (the task's ``next_kwargs``) hold ids, bounds,
options and a small summary, never the token and never audit data. Progress lives in the landed
files' commit markers, so a trigger that is cancelled and re-created elsewhere resumes at the first
interval that is not committed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from airflow_provider_slack_audit.hooks.slack_audit import SlackAuditLogsHook
from airflow_provider_slack_audit.ingest.outcome import run_ingest
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
        outcome = await run_ingest(hook.get_async_client, self.spec, redact=redact)
        yield TriggerEvent(outcome)  # type: ignore[no-untyped-call]
