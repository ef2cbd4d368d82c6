"""SlackAuditLogsOperator: window resolution, validation before any request, deferral, outcomes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pendulum
import pytest

from airflow_provider_slack_audit.client import AsyncAuditLogsClient, SlackAuditLogsApiError
from airflow_provider_slack_audit.ingest import outcome as outcome_module
from airflow_provider_slack_audit.ingest.registry import Drift
from airflow_provider_slack_audit.ingest.spec import IngestSpec, IngestSummary
from airflow_provider_slack_audit.operators.slack_audit import SlackAuditLogsOperator
from airflow_provider_slack_audit.triggers.slack_audit import SlackAuditLogsTrigger
from airflow_provider_slack_audit.version_compat import (
    AirflowException,
    AirflowFailException,
    Asset,
    ObjectStoragePath,
    OutletEventAccessors,
    TaskDeferred,
)

TOKEN = "xoxp-operator-test-token-4242"
DAY_START = datetime(2026, 1, 4, tzinfo=timezone.utc)
DAY_END = datetime(2026, 1, 5, tzinfo=timezone.utc)
DESTINATION = "file:///tmp/slack_audit_operator_test"


@pytest.fixture(autouse=True)
def _connection(slack_audit_connection: Callable[..., None]) -> None:
    slack_audit_connection(password=TOKEN)


def make_operator(**kwargs: Any) -> SlackAuditLogsOperator:
    # deferrable=True unless a test says otherwise: the deployment default is tested on its own below.
    arguments: dict[str, Any] = {"task_id": "land", "destination": DESTINATION, "deferrable": True, **kwargs}
    return SlackAuditLogsOperator(**arguments)


def run_context(start: datetime | None = DAY_START, end: datetime | None = DAY_END) -> dict[str, Any]:
    return {"data_interval_start": start, "data_interval_end": end, "outlet_events": OutletEventAccessors()}


def deferred_spec(operator: SlackAuditLogsOperator, context: dict[str, Any]) -> IngestSpec:
    with pytest.raises(TaskDeferred) as excinfo:
        operator.execute(context)
    trigger = excinfo.value.trigger
    assert isinstance(trigger, SlackAuditLogsTrigger)
    return IngestSpec.from_json(trigger.spec)


def summary_of(spec_window_start: datetime = DAY_START) -> IngestSummary:
    return IngestSummary(
        window={"start": spec_window_start.isoformat(), "end": DAY_END.isoformat()},
        manifest=f"{DESTINATION}/_manifests/slack_audit_x.manifest.json",
        intervals_landed=24,
        events=120,
    )


def fake_ingest(
    outcome: IngestSummary | BaseException, calls: list[IngestSpec]
) -> Callable[[AsyncAuditLogsClient, IngestSpec], Awaitable[IngestSummary]]:
    async def ingest_window(client: AsyncAuditLogsClient, spec: IngestSpec) -> IngestSummary:
        assert client.token == TOKEN
        calls.append(spec)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return ingest_window


# Deferral -------------------------------------------------------------------------------------------


def test_execute_defers_once_to_the_trigger_with_the_task_timeout() -> None:
    operator = make_operator(execution_timeout=timedelta(minutes=40), slack_audit_conn_id="audit_conn")

    with pytest.raises(TaskDeferred) as excinfo:
        operator.execute(run_context())

    deferred = excinfo.value
    assert isinstance(deferred.trigger, SlackAuditLogsTrigger)
    assert deferred.trigger.slack_audit_conn_id == "audit_conn"
    assert deferred.method_name == "execute_complete"
    assert deferred.timeout == timedelta(minutes=40)


def test_window_defaults_to_the_data_interval_and_carries_every_option() -> None:
    operator = make_operator(
        interval=timedelta(minutes=30),
        action=["user_login", "user_logout"],
        actor="W1",
        entity="C2",
        settle_lag=timedelta(minutes=1),
        compression=None,
        destination_conn_id="fs_conn",
    )

    spec = deferred_spec(operator, run_context())

    assert spec == IngestSpec(
        window=spec.window,
        interval=timedelta(minutes=30),
        destination=DESTINATION,
        destination_conn_id="fs_conn",
        action=("user_login", "user_logout"),
        actor="W1",
        entity="C2",
        compression=None,
        settle_lag=timedelta(minutes=1),
        api_snapshot=True,  # the operator lands the daily API snapshot; the bare spec does not
    )
    assert (spec.window.start, spec.window.end) == (DAY_START, DAY_END)


def test_explicit_oldest_and_latest_strings_override_the_data_interval() -> None:
    operator = make_operator(oldest="2026-02-01T06:00:00Z", latest="2026-02-01T12:00:00+00:00")

    spec = deferred_spec(operator, run_context())

    assert spec.window.start == datetime(2026, 2, 1, 6, tzinfo=timezone.utc)
    assert spec.window.end == datetime(2026, 2, 1, 12, tzinfo=timezone.utc)


def test_a_comma_separated_action_string_is_split() -> None:
    spec = deferred_spec(make_operator(action="user_login, user_logout"), run_context())

    assert spec.action == ("user_login", "user_logout")


@pytest.mark.parametrize(("rendered", "expected"), [("True", True), ("false", False), (True, True)])
def test_overwrite_accepts_rendered_template_strings(rendered: bool | str, expected: bool) -> None:
    spec = deferred_spec(make_operator(overwrite=rendered), run_context())

    assert spec.overwrite is expected


def test_an_object_storage_path_destination_brings_its_connection_id() -> None:
    path = ObjectStoragePath("file:///tmp/slack_audit_operator_test", conn_id="fs_conn")

    spec = deferred_spec(make_operator(destination=path), run_context())

    assert (spec.destination, spec.destination_conn_id) == (str(path), "fs_conn")


def test_templated_fields_are_the_window_the_destination_and_the_rerun_modes() -> None:
    assert set(SlackAuditLogsOperator.template_fields) == {
        "oldest",
        "latest",
        "destination",
        "overwrite",
        "reconcile",
    }


@pytest.mark.parametrize(("rendered", "expected"), [("True", True), ("False", False), (True, True)])
def test_a_rendered_reconcile_reaches_the_spec(rendered: object, expected: bool) -> None:
    spec = make_operator(reconcile=rendered).build_spec(run_context())
    assert spec.reconcile is expected


# Validation before any request ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"oldest": "2026-01-05T00:00:00Z", "latest": "2026-01-04T00:00:00Z"}, "is not before latest"),
        ({"oldest": "2017-12-31T00:00:00Z"}, "before 2018-03-01"),
        ({"oldest": datetime(2026, 1, 4)}, "has no timezone"),
        ({"interval": timedelta(0)}, "interval"),
        ({"compression": "zstd"}, "compression must be 'gzip' or None"),
        ({"action": [f"action_{n}" for n in range(31)]}, "30"),
        ({"overwrite": "maybe"}, "overwrite must be True or False"),
        ({"destination": ""}, "destination"),
    ],
)
def test_bad_arguments_fail_the_task_before_any_request(arguments: dict[str, Any], message: str) -> None:
    operator = make_operator(**arguments)

    with pytest.raises(AirflowFailException, match=message):
        operator.execute(run_context())


def test_an_empty_data_interval_names_the_timetables_that_fix_it() -> None:
    operator = make_operator()

    with pytest.raises(AirflowFailException) as excinfo:
        operator.execute(run_context(start=DAY_START, end=DAY_START))

    message = str(excinfo.value)
    assert "empty" in message
    assert "CronDataIntervalTimetable" in message
    assert "DeltaDataIntervalTimetable" in message
    assert "oldest/latest" in message


def test_a_run_without_data_interval_asks_for_oldest_and_latest() -> None:
    with pytest.raises(AirflowFailException, match="pass oldest and latest"):
        make_operator().execute(run_context(start=None, end=None))


# execute_complete -----------------------------------------------------------------------------------


def test_success_returns_the_summary_and_annotates_the_asset_event() -> None:
    operator = make_operator()
    context = run_context()
    summary = summary_of().to_json()

    result = operator.execute_complete(context, {"status": "success", "summary": summary})

    assert result == summary
    assert context["outlet_events"][Asset(DESTINATION)].extra == {
        "manifest": summary["manifest"],
        "window": summary["window"],
    }


def test_the_asset_event_carries_the_ledger_head_as_an_anchor_kept_outside_the_destination() -> None:
    operator = make_operator()
    context = run_context()
    summary = summary_of()
    summary.ledger = {"seq": 7, "sha256": "ab" * 32}

    operator.execute_complete(context, {"status": "success", "summary": summary.to_json()})

    assert context["outlet_events"][Asset(DESTINATION)].extra["ledger"] == {"seq": 7, "sha256": "ab" * 32}


def test_the_xcom_and_the_asset_event_stay_under_8_kib_whatever_the_drift() -> None:
    operator = make_operator()
    context = run_context()
    summary = summary_of()
    # A window that saw 10,000 new details keys (a field keyed by ids, say).
    summary.drift = Drift([], [f"details.U{i:08d}" for i in range(10_000)]).to_json()

    result = operator.execute_complete(context, {"status": "success", "summary": summary.to_json()})

    extra = context["outlet_events"][Asset(DESTINATION)].extra
    assert len(json.dumps(result)) < 8 * 1024 and len(json.dumps(extra)) < 8 * 1024
    assert extra["drift"]["counts"]["new_keys"] == 10_000


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("transient", "rate_limited"),
        # the interval's cursor kept expiring after every re-read: an outage, worth a later try
        ("cursor", "invalid_cursor"),
    ],
)
def test_a_transient_or_cursor_error_raises_a_retryable_exception(kind: str, error: str) -> None:
    event = {"status": "error", "kind": kind, "error": error, "message": "429 for logs"}

    with pytest.raises(AirflowException, match=error) as excinfo:
        make_operator().execute_complete(run_context(), event)

    assert not isinstance(excinfo.value, AirflowFailException)
    assert "max_retry_wait" in str(excinfo.value)


@pytest.mark.parametrize("kind", ["permanent", None])
def test_any_other_error_fails_without_retrying(kind: str | None) -> None:
    event = {"status": "error", "kind": kind, "error": "invalid_authentication", "message": "token rejected"}

    with pytest.raises(AirflowFailException, match=r"invalid_authentication.*token rejected"):
        make_operator().execute_complete(run_context(), event)


# Outlets --------------------------------------------------------------------------------------------


def test_the_destination_is_the_default_outlet_without_its_connection_id() -> None:
    operator = make_operator(destination="s3://aws_conn@bucket/slack_audit")

    assert operator.outlets == [Asset("s3://bucket/slack_audit")]


def test_a_templated_destination_has_no_default_outlet() -> None:
    assert make_operator(destination="file:///tmp/{{ ds }}").outlets == []


def test_explicit_outlets_win() -> None:
    chosen = Asset("s3://bucket/elsewhere")

    assert make_operator(outlets=[chosen]).outlets == [chosen]


# deferrable=False -----------------------------------------------------------------------------------


def test_sync_mode_runs_the_same_ingest_in_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[IngestSpec] = []
    summary = summary_of()
    monkeypatch.setattr(outcome_module, "ingest_window", fake_ingest(summary, calls))

    result = make_operator(deferrable=False).execute(run_context())

    assert result == summary.to_json()
    ((spec),) = calls
    assert (spec.window.start, spec.window.end, spec.destination) == (DAY_START, DAY_END, DESTINATION)


def test_sync_mode_maps_errors_like_the_deferred_path(monkeypatch: pytest.MonkeyPatch) -> None:
    error = SlackAuditLogsApiError("HTTP 401", error="invalid_authentication", status_code=401)
    monkeypatch.setattr(outcome_module, "ingest_window", fake_ingest(error, []))

    with pytest.raises(AirflowFailException, match="invalid_authentication"):
        make_operator(deferrable=False).execute(run_context())


def test_sync_mode_retries_transient_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    error = SlackAuditLogsApiError("HTTP 503", error=None, status_code=503)
    monkeypatch.setattr(outcome_module, "ingest_window", fake_ingest(error, []))

    with pytest.raises(AirflowException) as excinfo:
        make_operator(deferrable=False).execute(run_context())

    assert not isinstance(excinfo.value, AirflowFailException)


# Default mode ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("setting", "expected"), [("False", False), ("true", True)])
def test_the_operator_defers_as_the_environment_setting_says_when_built(
    monkeypatch: pytest.MonkeyPatch, setting: str, expected: bool
) -> None:
    # Set after the operator module was imported: the default is read when the operator is built.
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", setting)

    assert SlackAuditLogsOperator(task_id="land", destination=DESTINATION).deferrable is expected


def test_an_explicit_deferrable_argument_beats_the_deployment_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "false")

    assert make_operator(deferrable=True).deferrable is True


@pytest.mark.slow  # a fresh interpreter importing Airflow per case
@pytest.mark.parametrize(("setting", "expected"), [("True", "True"), ("False", "False")])
def test_the_operator_defers_as_airflow_cfg_says(tmp_path: Path, setting: str, expected: str) -> None:
    (tmp_path / "airflow.cfg").write_text(f"[operators]\ndefault_deferrable = {setting}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
    env["AIRFLOW_HOME"] = str(tmp_path)
    code = (
        "from airflow_provider_slack_audit.operators.slack_audit import SlackAuditLogsOperator\n"
        "print(SlackAuditLogsOperator(task_id='t', destination='file:///tmp/x').deferrable)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True
    )

    assert result.stdout.strip().splitlines()[-1] == expected


def test_pendulum_data_intervals_become_a_plain_utc_window() -> None:
    context = run_context(
        start=pendulum.datetime(2026, 1, 4, 1, tz="Europe/Paris"), end=pendulum.datetime(2026, 1, 5, tz="UTC")
    )

    spec = make_operator().build_spec(context)

    assert type(spec.window.start) is datetime
    assert spec.window.start == datetime(2026, 1, 4, 0, tzinfo=timezone.utc)
    assert len(spec.window.intervals(timedelta(hours=1))) == 24


def test_a_destructive_replace_must_be_asked_for_by_name_and_only_with_overwrite() -> None:
    spec = make_operator(overwrite=True, replace_destructively=True).build_spec(run_context())
    assert (spec.overwrite, spec.replace_destructively) == (True, True)
    assert make_operator(overwrite=True).build_spec(run_context()).replace_destructively is False

    with pytest.raises(AirflowFailException, match="only applies to a rewrite"):
        make_operator(replace_destructively=True).build_spec(run_context())
