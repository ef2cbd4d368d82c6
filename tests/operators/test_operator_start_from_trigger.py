"""Starting on the triggerer (Airflow 3.3+) and dedicated triggerers (``trigger_queue``, 3.2+).

A task started on the triggerer builds its spec there, from the very arguments and run the worker
would use: the tests compare the two paths' specs and outcomes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from importlib import import_module
from typing import Any

import pytest

from airflow_provider_slack_audit.client import AsyncAuditLogsClient
from airflow_provider_slack_audit.ingest import outcome as outcome_module
from airflow_provider_slack_audit.ingest.spec import IngestSpec, IngestSummary
from airflow_provider_slack_audit.operators import slack_audit as operator_module
from airflow_provider_slack_audit.operators.slack_audit import SlackAuditLogsOperator
from airflow_provider_slack_audit.triggers.slack_audit import SlackAuditLogsTrigger
from airflow_provider_slack_audit.version_compat import (
    TRIGGERER_QUEUES,
    AirflowException,
    AirflowFailException,
    OutletEventAccessors,
    TaskDeferred,
    TriggerEvent,
    start_from_trigger_supported,
)

TOKEN = "xoxp-start-from-trigger-token-5151"
DESTINATION = "file:///tmp/slack_audit_start_test"
DAY_START = datetime(2026, 1, 4, tzinfo=timezone.utc)
DAY_END = datetime(2026, 1, 5, tzinfo=timezone.utc)
needs_start_from_trigger = pytest.mark.skipif(
    not start_from_trigger_supported(), reason="Airflow starts tasks on the triggerer from 3.3"
)
needs_triggerer_queues = pytest.mark.skipif(not TRIGGERER_QUEUES, reason="triggerer queues arrived in 3.2")


@pytest.fixture(autouse=True)
def _connection(slack_audit_connection: Callable[..., None]) -> None:
    slack_audit_connection(password=TOKEN)


def make_operator(**kwargs: Any) -> SlackAuditLogsOperator:
    arguments: dict[str, Any] = {"task_id": "land", "destination": DESTINATION, "deferrable": True, **kwargs}
    return SlackAuditLogsOperator(**arguments)


def run_context() -> dict[str, Any]:
    return {
        "data_interval_start": DAY_START,
        "data_interval_end": DAY_END,
        "outlet_events": OutletEventAccessors(),
    }


@dataclass
class _StartedTaskInstance:
    """What the 3.3 triggerer gives a trigger that starts a task: a task instance with its context."""

    context: dict[str, Any]
    task_id: str = "land"

    def get_template_context(self) -> dict[str, Any]:
        return self.context


def started_trigger(operator: SlackAuditLogsOperator, **rendered: Any) -> SlackAuditLogsTrigger:
    """The trigger the triggerer builds from the operator's StartTriggerArgs, its fields rendered."""
    args = operator.start_trigger_args
    assert args is not None
    module_name, _, class_name = args.trigger_cls.rpartition(".")
    kwargs = json.loads(json.dumps(args.trigger_kwargs))  # stored in the metadata DB as JSON
    trigger = getattr(import_module(module_name), class_name)(**kwargs)
    for name, value in rendered.items():  # what render_template_fields does on the triggerer
        setattr(trigger, name, value)
    trigger.task_instance = _StartedTaskInstance(run_context())  # type: ignore[assignment]
    assert isinstance(trigger, SlackAuditLogsTrigger)
    return trigger


def recording_ingest(
    calls: list[IngestSpec],
) -> Callable[[AsyncAuditLogsClient, IngestSpec], Awaitable[IngestSummary]]:
    async def ingest_window(client: AsyncAuditLogsClient, spec: IngestSpec) -> IngestSummary:
        assert client.token == TOKEN
        calls.append(spec)
        return IngestSummary(
            window=spec.window.to_json(), manifest=f"{DESTINATION}/_manifests/w.manifest.json"
        )

    return ingest_window


async def collect(trigger: SlackAuditLogsTrigger) -> list[TriggerEvent]:
    return [event async for event in trigger.run()]


# When the task starts on the triggerer ----------------------------------------------------------------


@needs_start_from_trigger
def test_a_deferrable_landing_starts_on_the_triggerer_and_resumes_in_execute_complete() -> None:
    operator = make_operator(execution_timeout=timedelta(hours=2))

    assert operator.start_from_trigger is True
    args = operator.start_trigger_args
    assert args is not None
    assert args.trigger_cls == "airflow_provider_slack_audit.triggers.slack_audit.SlackAuditLogsTrigger"
    assert args.next_method == "execute_complete"
    assert args.timeout == timedelta(hours=2)
    assert TOKEN not in json.dumps(args.trigger_kwargs)


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        ({"deferrable": False}, "deferrable=False"),
        ({"trigger_queue": "slack_audit"}, "trigger_queue is set"),
    ],
    ids=["not-deferrable", "trigger-queue"],
)
def test_arguments_that_need_a_worker_defer_from_it_and_refuse_start_from_trigger(
    monkeypatch: pytest.MonkeyPatch, arguments: dict[str, Any], reason: str
) -> None:
    monkeypatch.setenv("AIRFLOW__TRIGGERER__QUEUES_ENABLED", "True")
    if not TRIGGERER_QUEUES and "trigger_queue" in arguments:
        pytest.skip("triggerer queues arrived in 3.2")

    assert make_operator(**arguments).start_from_trigger is False
    with pytest.raises(ValueError, match=reason):
        make_operator(start_from_trigger=True, **arguments)


def test_start_from_trigger_false_defers_from_the_worker_as_before() -> None:
    operator = make_operator(start_from_trigger=False)

    assert operator.start_from_trigger is False
    with pytest.raises(TaskDeferred):
        operator.execute(run_context())


def test_lines_that_cannot_start_on_the_triggerer_defer_from_the_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(operator_module, "start_from_trigger_supported", lambda: False)

    assert make_operator().start_from_trigger is False
    with pytest.raises(ValueError, match=r"3\.3 or later"):
        make_operator(start_from_trigger=True)


# The same spec and outcome on both paths ----------------------------------------------------------------


@needs_start_from_trigger
def test_the_started_trigger_lands_the_spec_the_worker_would_have_deferred(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    arguments: dict[str, Any] = {
        "interval": timedelta(minutes=30),
        "action": ["user_login", "user_logout"],
        "actor": "W1",
        "settle_lag": timedelta(minutes=2),
        "compression": None,
        "retention": timedelta(days=30),
        "destination": "s3://aws_default@bucket/slack_audit",
    }
    with pytest.raises(TaskDeferred) as deferred:
        make_operator(start_from_trigger=False, **arguments).execute(run_context())
    assert isinstance(deferred.value.trigger, SlackAuditLogsTrigger) and deferred.value.trigger.spec
    worker_spec = IngestSpec.from_json(deferred.value.trigger.spec)
    calls: list[IngestSpec] = []
    monkeypatch.setattr(outcome_module, "ingest_window", recording_ingest(calls))

    events = asyncio.run(collect(started_trigger(make_operator(**arguments))))

    assert calls == [worker_spec]
    assert events[0].payload["status"] == "success"


@needs_start_from_trigger
def test_templated_arguments_are_used_as_the_triggerer_rendered_them(monkeypatch: pytest.MonkeyPatch) -> None:
    operator = make_operator(
        oldest="{{ params.oldest }}", latest="{{ params.latest }}", overwrite="{{ params.o }}"
    )
    assert operator.start_trigger_args is not None
    assert operator.start_trigger_args.trigger_kwargs["oldest"] == "{{ params.oldest }}"  # not rendered yet
    calls: list[IngestSpec] = []
    monkeypatch.setattr(outcome_module, "ingest_window", recording_ingest(calls))

    trigger = started_trigger(
        operator, oldest="2026-02-01T00:00:00Z", latest="2026-02-01T06:00:00Z", overwrite="True"
    )
    asyncio.run(collect(trigger))

    assert (calls[0].window.start, calls[0].window.end) == (
        datetime(2026, 2, 1, tzinfo=timezone.utc),
        datetime(2026, 2, 1, 6, tzinfo=timezone.utc),
    )
    assert calls[0].overwrite is True


@needs_start_from_trigger
def test_bad_arguments_fail_the_started_task_without_retry_and_without_a_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[IngestSpec] = []
    monkeypatch.setattr(outcome_module, "ingest_window", recording_ingest(calls))
    operator = make_operator(latest="{{ params.latest }}")

    events = asyncio.run(collect(started_trigger(operator, latest="2026-01-03T00:00:00Z")))

    assert calls == [] and len(events) == 1 and events[0].payload["kind"] == "permanent"
    with pytest.raises(AirflowFailException, match=r"oldest 2026-01-04.* is not before latest"):
        operator.execute_complete(run_context(), events[0].payload)


@needs_start_from_trigger
def test_a_transient_failure_on_the_started_trigger_retries_like_a_deferred_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def outage(client: AsyncAuditLogsClient, spec: IngestSpec) -> IngestSummary:
        raise ConnectionResetError("peer reset")

    monkeypatch.setattr(outcome_module, "ingest_window", outage)
    operator = make_operator()

    events = asyncio.run(collect(started_trigger(operator)))

    with pytest.raises(AirflowException) as raised:
        operator.execute_complete(run_context(), events[0].payload)
    assert not isinstance(raised.value, AirflowFailException)


@needs_start_from_trigger
def test_a_started_trigger_serializes_to_the_kwargs_it_was_built_from() -> None:
    operator = make_operator(oldest="{{ params.oldest }}")
    trigger = started_trigger(operator)

    classpath, kwargs = trigger.serialize()

    assert operator.start_trigger_args is not None
    assert classpath == operator.start_trigger_args.trigger_cls
    assert json.loads(json.dumps(kwargs)) == json.loads(
        json.dumps(operator.start_trigger_args.trigger_kwargs)
    )


@needs_start_from_trigger
def test_the_dag_serializes_with_start_from_trigger_for_the_scheduler() -> None:
    from airflow.serialization.serialized_objects import BaseSerialization, DagSerialization

    from airflow_provider_slack_audit.version_compat import DAG

    with DAG("start_on_triggerer", schedule=None, start_date=DAY_START) as dag:
        make_operator(oldest="{{ params.oldest }}", interval=timedelta(minutes=15))

    task = DagSerialization.from_dict(DagSerialization.to_dict(dag)).get_task("land")

    assert task.start_from_trigger is True
    kwargs = BaseSerialization.deserialize(
        task.start_trigger_args.trigger_kwargs
    )  # as the scheduler keeps them
    assert kwargs["oldest"] == "{{ params.oldest }}"
    assert kwargs["arguments"]["interval"] == {"microseconds": 900_000_000}


def test_a_trigger_needs_a_spec_or_start_arguments() -> None:
    with pytest.raises(ValueError, match="pass the spec"):
        SlackAuditLogsTrigger(slack_audit_conn_id="slack_audit_default")


# trigger_queue ------------------------------------------------------------------------------------------


@needs_triggerer_queues
def test_trigger_queue_files_the_trigger_under_that_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.execution_time.task_runner import _defer_task

    monkeypatch.setenv("AIRFLOW__TRIGGERER__QUEUES_ENABLED", "True")
    operator = make_operator(trigger_queue="slack_audit", queue="default")

    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(run_context())

    # What the Task SDK sends the supervisor when the task defers: the trigger's queue is the task's.
    message, _ = _defer_task(deferred.value, _TaskInstance(operator), _Log())
    assert message.queue == "slack_audit"


@needs_triggerer_queues
def test_without_trigger_queue_airflow_routes_the_trigger_to_the_tasks_queue(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.sdk.execution_time.task_runner import _defer_task

    monkeypatch.setenv("AIRFLOW__TRIGGERER__QUEUES_ENABLED", "True")
    operator = make_operator(queue="audit_workers", start_from_trigger=False)

    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(run_context())

    message, _ = _defer_task(deferred.value, _TaskInstance(operator), _Log())
    assert message.queue == "audit_workers"


@needs_triggerer_queues
def test_trigger_queue_without_queues_enabled_fails_before_deferring(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__TRIGGERER__QUEUES_ENABLED", "False")

    with pytest.raises(AirflowFailException, match="AIRFLOW__TRIGGERER__QUEUES_ENABLED=True"):
        make_operator(trigger_queue="slack_audit").execute(run_context())


def test_trigger_queue_is_refused_on_lines_without_triggerer_queues(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(operator_module, "TRIGGERER_QUEUES", False)

    with pytest.raises(ValueError, match=r"needs Airflow 3\.2"):
        make_operator(trigger_queue="slack_audit")
    assert make_operator().trigger_queue is None  # unset: nothing to refuse


def test_a_blank_trigger_queue_is_refused() -> None:
    with pytest.raises(ValueError, match="queue name"):
        make_operator(trigger_queue=" ")


@dataclass
class _TaskInstance:
    task: SlackAuditLogsOperator
    dag_id: str = "dag"
    task_id: str = "land"
    run_id: str = "run"


class _Log:
    def info(self, *args: Any, **kwargs: Any) -> None:
        pass


@needs_start_from_trigger
def test_a_subclass_with_template_fields_of_its_own_still_starts_on_the_triggerer() -> None:
    class Audited(SlackAuditLogsOperator):
        template_fields = (*SlackAuditLogsOperator.template_fields, "note")

        def __init__(self, *, note: str = "", **kwargs: Any) -> None:
            self.note = note
            super().__init__(**kwargs)

    operator = Audited(task_id="land", destination=DESTINATION, deferrable=True, note="{{ ds }}")

    assert operator.start_from_trigger is True
    assert operator.start_trigger_args is not None
    assert "note" not in operator.start_trigger_args.trigger_kwargs


@needs_start_from_trigger
def test_a_permanent_error_of_a_started_task_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # The hold guards the race of a deferring worker's "success" with the resumed try; a task started
    # on the triggerer had no worker, so its permanent error is not held.
    async def refused(client: AsyncAuditLogsClient, spec: IngestSpec) -> IngestSummary:
        raise ValueError("the destination's descriptor records another grid")

    monkeypatch.setattr(outcome_module, "ingest_window", refused)
    trigger = started_trigger(make_operator())
    trigger.permanent_error_hold_seconds = 60.0

    events = asyncio.run(asyncio.wait_for(collect(trigger), timeout=10))

    assert events[0].payload["kind"] == "permanent"
