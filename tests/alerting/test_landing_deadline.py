"""landing_deadline: be told when a day has not landed in time, on every Airflow line (issue 13)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_slack_audit import alerting
from airflow_provider_slack_audit.alerting import landing_deadline, log_missed_landing
from airflow_provider_slack_audit.version_compat import (
    AIRFLOW_V_3_1_PLUS,
    AsyncCallback,
    DeadlineAlert,
    DeadlineReference,
)

from support.example_dags import example_dag, serialize_dag

DAY = timedelta(days=1)
deadline_alerts = pytest.mark.skipif(not AIRFLOW_V_3_1_PLUS, reason="DeadlineAlert arrived in Airflow 3.1")


@deadline_alerts
def test_on_airflow_3_1_plus_the_deadline_is_grace_after_the_data_interval_ends() -> None:
    arguments = landing_deadline(period=DAY, grace=timedelta(hours=6))

    alert = arguments["deadline"]
    assert isinstance(alert, DeadlineAlert)
    assert alert.reference == DeadlineReference.DAGRUN_LOGICAL_DATE
    assert alert.interval == timedelta(hours=30)
    assert isinstance(alert.callback, AsyncCallback)
    assert alert.callback.path == "airflow_provider_slack_audit.alerting.log_missed_landing"
    assert set(arguments) == {"deadline"}


def daily_example_dag() -> Any:
    return example_dag("slack_audit_daily.py", "slack_audit_daily")


@deadline_alerts
def test_the_daily_example_dag_alerts_when_asked_to_and_serializes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_AUDIT_LANDING_GRACE_HOURS", "6")

    dag = daily_example_dag()

    (alert,) = dag.deadline
    assert alert.interval == DAY + timedelta(hours=6)
    assert serialize_dag(dag)["deadline"]


@deadline_alerts
def test_the_daily_example_dag_has_no_deadline_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow 3.3's `airflow dags test` fails at the end of a run of a DAG with a deadline alert."""
    monkeypatch.delenv("SLACK_AUDIT_LANDING_GRACE_HOURS", raising=False)

    assert not daily_example_dag().deadline


async def test_the_default_callback_names_the_dag_and_run_of_a_missed_deadline(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # The context Airflow passes a deadline callback: the run as the REST API shows it, and the deadline.
    context = {
        "dag_run": {"dag_id": "slack_audit_daily", "dag_run_id": "scheduled__2026-01-04T00:00:00+00:00"},
        "deadline": {"id": "d1", "deadline_time": "2026-01-05T06:00:00+00:00"},
    }

    with caplog.at_level(logging.ERROR):
        await log_missed_landing(context=context, description="landed later than 6:00:00")

    logged = caplog.text + capsys.readouterr().out
    assert "slack_audit_daily" in logged
    assert "scheduled__2026-01-04T00:00:00+00:00" in logged
    assert "2026-01-05T06:00:00+00:00" in logged


def test_without_deadline_alerts_the_callback_runs_on_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow 2.11 and 3.0: the task's execution_timeout fails the run, on_failure_callback alerts."""
    monkeypatch.setattr(alerting, "DeadlineAlert", None)
    calls: list[dict[str, Any]] = []

    async def page_someone(**kwargs: Any) -> None:
        calls.append(kwargs)

    arguments = landing_deadline(
        period=DAY, grace=timedelta(hours=6), callback=page_someone, kwargs={"team": "sec"}
    )

    assert set(arguments) == {"on_failure_callback"}
    arguments["on_failure_callback"]({"dag_run": "run"})
    assert calls == [
        {
            "context": {"dag_run": "run"},
            "description": "landed later than 6:00:00 after its data interval ended",
            "team": "sec",
        }
    ]


def test_without_deadline_alerts_a_dotted_path_callback_is_imported_when_the_run_fails(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(alerting, "DeadlineAlert", None)
    arguments = landing_deadline(
        period=DAY,
        grace=timedelta(hours=6),
        callback="airflow_provider_slack_audit.alerting.log_missed_landing",
    )

    with caplog.at_level(logging.WARNING):
        arguments["on_failure_callback"]({"dag_run": {"dag_id": "audit", "run_id": "r1"}})

    assert any("audit" in record.getMessage() and "r1" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize(
    ("period", "grace"), [(timedelta(0), timedelta(hours=1)), (DAY, timedelta(hours=-1))]
)
def test_a_period_or_grace_that_cannot_be_a_deadline_is_refused(period: timedelta, grace: timedelta) -> None:
    with pytest.raises(ValueError, match="period must be positive"):
        landing_deadline(period=period, grace=grace)
