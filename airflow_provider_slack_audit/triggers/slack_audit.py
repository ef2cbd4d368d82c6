"""The trigger: lands one window on the triggerer's event loop and reports once.

Its kwargs (stored in the metadata DB) and its event (the task's ``next_kwargs``) hold ids, bounds,
options and a small summary, never the token and never audit data. Progress lives in the landed
files' commit markers, so a trigger that is cancelled and re-created elsewhere resumes at the first
interval that is not committed.

The triggerer imports this module on its event loop (Airflow loads a trigger's class inside its
async ``create_triggers``), where every other trigger waits for the import to finish. So the module
imports only what the class and :meth:`~SlackAuditLogsTrigger.serialize` need; the landing path (the
hook, the client and aiohttp, the pipeline and the landing) is imported by :meth:`run`, in a worker
thread, the first time a trigger runs in the process.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_slack_audit import version_compat
from airflow_provider_slack_audit.version_compat import BaseTrigger, TriggerEvent

if TYPE_CHECKING:
    from airflow_provider_slack_audit.client import AsyncAuditLogsClient


#: What :meth:`SlackAuditLogsTrigger.run` needs beyond this module, imported off the event loop.
LANDING_MODULES = (
    "airflow_provider_slack_audit._task_spec",
    "airflow_provider_slack_audit.hooks.slack_audit",
    "airflow_provider_slack_audit.ingest.outcome",
    "airflow_provider_slack_audit.ingest.spec",
)


_landing_path_imported = False


async def import_landing_path() -> None:
    """Import :data:`LANDING_MODULES` in a worker thread, so the loop runs other triggers meanwhile.

    Up to seconds on a busy machine the first time in a process (aiohttp, the pipeline); nothing
    after. Until one import has finished every trigger goes through the thread: a module in
    ``sys.modules`` may still be initialising there, and importing it on the loop would wait for it.
    """
    global _landing_path_imported
    if not _landing_path_imported:
        await asyncio.to_thread(_import_landing_path)
        _landing_path_imported = True


def _import_landing_path() -> None:
    for name in LANDING_MODULES:
        importlib.import_module(name)
    # redact resolves through common-compat on first use: the same reason to do it off the loop.
    getattr(version_compat, "redact")  # noqa: B009


class SlackAuditLogsTrigger(BaseTrigger):
    """Run :func:`~airflow_provider_slack_audit.ingest.pipeline.ingest_window` for one window.

    Yields exactly one event, whose payload is the ingest's outcome (see
    :mod:`airflow_provider_slack_audit.ingest.outcome`): a summary, or an error's kind, code and
    secret-free message.

    :param slack_audit_conn_id: the ``slack_audit`` connection; the token is read from it here, on
        the triggerer, with Airflow's async connection API.
    :param spec: ``IngestSpec.to_json()`` of the window to land, built by the operator on a worker.
    :param arguments: instead of ``spec``, for a task started on the triggerer (Airflow 3.3+): the
        operator's untemplated arguments as JSON; the templated ones (``oldest``, ``latest``,
        ``destination``, ``overwrite``, ``reconcile``) are attributes the triggerer renders, and
        the spec is built here from them and the run (see :meth:`start_kwargs`).
    """

    #: Seconds after it started before a triggerer reports a *permanent* error. A trigger that fails
    #: within a second or two of the deferral can resume the task before the scheduler has processed
    #: the executor's "success" of the worker that deferred; Airflow then fails the resumed try as
    #: "killed externally" and retries it (apache/airflow#66374, #72716), so a permanent error would
    #: run twice. Ending the task from the trigger with TaskFailedEvent is no way out: since
    #: apache/airflow#69819 it honours the task's retries too. Only a real triggerer (which sets
    #: ``task_instance``) holds the event; ``airflow dags test``, the worker path and a task started
    #: on the triggerer have no race.
    permanent_error_hold_seconds: float = 10.0

    #: The operator's templated arguments a trigger started on the triggerer renders there.
    start_templated_fields: tuple[str, ...] = ("oldest", "latest", "destination", "overwrite", "reconcile")

    def __init__(
        self,
        slack_audit_conn_id: str,
        spec: dict[str, Any] | None = None,
        *,
        arguments: dict[str, Any] | None = None,
        oldest: Any = None,
        latest: Any = None,
        destination: Any = None,
        overwrite: Any = False,
        reconcile: Any = False,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Airflow's BaseTrigger is untyped
        if (spec is None) == (arguments is None):
            raise ValueError("pass the spec of the window to land, or (to start a task) its arguments")
        self.slack_audit_conn_id = slack_audit_conn_id
        self.spec = spec
        self.arguments = arguments
        self.oldest, self.latest, self.destination = oldest, latest, destination
        self.overwrite, self.reconcile = overwrite, reconcile

    @classmethod
    def start_kwargs(
        cls, *, slack_audit_conn_id: str, templated: dict[str, Any], arguments: dict[str, Any]
    ) -> dict[str, Any]:
        """The kwargs of the trigger that starts a task on the triggerer (``StartTriggerArgs``).

        The templated fields keep the operator's names, so the triggerer renders them with the
        run's context before :meth:`run` builds the spec.
        """
        return {"slack_audit_conn_id": slack_audit_conn_id, "arguments": arguments, **templated}

    def serialize(self) -> tuple[str, dict[str, Any]]:
        classpath = f"{type(self).__module__}.{type(self).__qualname__}"
        if self.spec is not None:
            return classpath, {"slack_audit_conn_id": self.slack_audit_conn_id, "spec": self.spec}
        templated = {field: getattr(self, field) for field in self.start_templated_fields}
        return classpath, self.start_kwargs(
            slack_audit_conn_id=self.slack_audit_conn_id, templated=templated, arguments=self.arguments or {}
        )

    def _started_spec(self) -> dict[str, Any]:
        """The spec of a task started here, built as the operator builds it on a worker."""
        from airflow_provider_slack_audit._task_spec import start_spec  # imported by run(), off the loop

        if self.task_instance is None or not hasattr(self.task_instance, "get_template_context"):
            raise ValueError("a trigger given arguments must run for a task started on the triggerer")
        context = self.task_instance.get_template_context()
        templated = {field: getattr(self, field) for field in self.start_templated_fields}
        return start_spec(templated, self.arguments or {}, context, self.log).to_json()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        await import_landing_path()
        # Already imported, off the loop: each of these is a look-up in sys.modules.
        from airflow_provider_slack_audit.hooks.slack_audit import SlackAuditLogsHook
        from airflow_provider_slack_audit.ingest.outcome import failure_outcome, run_ingest
        from airflow_provider_slack_audit.ingest.spec import IngestSpec
        from airflow_provider_slack_audit.version_compat import redact

        hook = SlackAuditLogsHook(slack_audit_conn_id=self.slack_audit_conn_id)
        # Cancellation (triggerer shutdown, task timeout) propagates out of here without an event;
        # the next trigger instance skips the intervals this one committed.
        started = time.monotonic()
        spec = self.spec
        if spec is None:
            try:
                spec = self._started_spec()
            except (ValueError, TypeError) as exc:  # arguments no retry can fix, as on a worker
                yield TriggerEvent(failure_outcome(exc, redact=redact))  # type: ignore[no-untyped-call]
                return
            self.log.info("Started on the triggerer: landing %s", spec["window"])

        async def client() -> AsyncAuditLogsClient:
            # Old windows (a backfill) yield the org's shared budget to today's runs.
            priority = IngestSpec.from_json(spec).priority(datetime.now(timezone.utc))
            return await hook.get_async_client(priority=priority)

        outcome = await run_ingest(client, spec, redact=redact)
        # A task started here had no worker whose "success" the resumed try could race.
        if outcome.get("kind") == "permanent" and self.task_instance is not None and self.spec is not None:
            await asyncio.sleep(max(0.0, started + self.permanent_error_hold_seconds - time.monotonic()))
        yield TriggerEvent(outcome)  # type: ignore[no-untyped-call]
