"""SlackAuditLogsOperator: which window a run lands, for every way a run can be made (issue 13)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_slack_audit.operators.slack_audit import SlackAuditLogsOperator
from airflow_provider_slack_audit.version_compat import (
    DAG,
    AirflowFailException,
    CronDataIntervalTimetable,
    DeltaDataIntervalTimetable,
)

UTC = timezone.utc
TRIGGERED_AT = datetime(2026, 12, 1, 7, 13, tzinfo=UTC)
DAILY = CronDataIntervalTimetable("0 0 * * *", timezone="UTC")


def operator(**kwargs: Any) -> SlackAuditLogsOperator:
    return SlackAuditLogsOperator(task_id="land", destination="file:///tmp/slack_audit_window", **kwargs)


def manual_run_context(
    schedule: Any = DAILY,
    *,
    logical_date: datetime | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> dict[str, Any]:
    """The context of a manual run as Airflow 3 makes it; without a logical date it has no data interval."""
    dag = DAG(dag_id="window_test", schedule=schedule, start_date=datetime(2026, 1, 1, tzinfo=UTC))
    dag_run = SimpleNamespace(run_id="manual__2026-12-01T07:13:00+00:00", run_after=TRIGGERED_AT)
    return {
        "dag": dag,
        "dag_run": dag_run,
        "logical_date": logical_date,
        "data_interval_start": start,
        "data_interval_end": end,
    }


def window_of(op: SlackAuditLogsOperator, context: dict[str, Any]) -> tuple[datetime, datetime]:
    window = op.build_spec(context).window
    return window.start, window.end


def test_a_manual_run_without_logical_date_lands_the_latest_completed_day() -> None:
    assert window_of(operator(), manual_run_context()) == (
        datetime(2026, 11, 30, tzinfo=UTC),
        datetime(2026, 12, 1, tzinfo=UTC),
    )


def test_a_manual_run_without_logical_date_follows_any_data_interval_timetable() -> None:
    context = manual_run_context(DeltaDataIntervalTimetable(timedelta(hours=6)))

    assert window_of(operator(), context) == (TRIGGERED_AT - timedelta(hours=6), TRIGGERED_AT)


def test_params_rendered_into_oldest_and_latest_win_on_a_run_without_data_interval() -> None:
    op = operator(oldest="2026-01-04T00:00:00Z", latest="2026-01-05T00:00:00+00:00")

    assert window_of(op, manual_run_context()) == (
        datetime(2026, 1, 4, tzinfo=UTC),
        datetime(2026, 1, 5, tzinfo=UTC),
    )


@pytest.mark.parametrize("blank", ["", "  "])
def test_bounds_that_rendered_blank_count_as_not_given(blank: str) -> None:
    context = manual_run_context(start=datetime(2026, 1, 4, tzinfo=UTC), end=datetime(2026, 1, 5, tzinfo=UTC))

    assert window_of(operator(oldest=blank, latest=blank), context) == (
        datetime(2026, 1, 4, tzinfo=UTC),
        datetime(2026, 1, 5, tzinfo=UTC),
    )


def test_a_run_with_no_window_at_all_says_exactly_what_to_pass() -> None:
    with pytest.raises(AirflowFailException) as excinfo:
        operator().build_spec(manual_run_context(schedule=None))

    message = str(excinfo.value)
    assert "manual__2026-12-01T07:13:00+00:00" in message
    assert "pass oldest and latest" in message
    assert "oldest='2026-01-04T00:00:00Z'" in message
    assert """--conf '{"oldest": "2026-01-04T00:00:00Z", "latest": "2026-01-05T00:00:00Z"}'""" in message
    assert "CronDataIntervalTimetable" in message


def test_a_logical_date_outside_the_landed_interval_is_called_out(capsys: pytest.CaptureFixture[str]) -> None:
    # `airflow dags trigger --logical-date 2026-06-10` on Airflow 3: the interval of the trigger time.
    context = manual_run_context(
        logical_date=datetime(2026, 6, 10, tzinfo=UTC),
        start=datetime(2026, 11, 30, tzinfo=UTC),
        end=datetime(2026, 12, 1, tzinfo=UTC),
    )

    window = window_of(operator(), context)

    assert window == (datetime(2026, 11, 30, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    logged = capsys.readouterr().out  # the task logger is structlog's, printing to stdout
    assert "lies outside its data interval" in logged
    assert "pass oldest and latest" in logged


def test_a_scheduled_runs_logical_date_inside_its_interval_is_not_called_out(
    capsys: pytest.CaptureFixture[str],
) -> None:
    context = manual_run_context(
        logical_date=datetime(2026, 1, 4, tzinfo=UTC),
        start=datetime(2026, 1, 4, tzinfo=UTC),
        end=datetime(2026, 1, 5, tzinfo=UTC),
    )

    window_of(operator(), context)

    assert "lies outside" not in capsys.readouterr().out


def test_dags_test_without_a_date_is_not_called_out(capsys: pytest.CaptureFixture[str]) -> None:
    # `airflow dags test DAG_ID`: the logical date is now, the data interval the day that just ended.
    context = manual_run_context(
        logical_date=TRIGGERED_AT,
        start=datetime(2026, 11, 30, tzinfo=UTC),
        end=datetime(2026, 12, 1, tzinfo=UTC),
    )

    window_of(operator(), context)

    assert "lies outside" not in capsys.readouterr().out
