"""Partitioned asset events: the window's key on the landing's event, a partitioned run's window, and
the warehouse transfers' check of a partitioned event against the window its extra records."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from airflow_provider_slack_audit._partitions import (
    check_partition_key,
    partition_day_window,
    window_partition_key,
)
from airflow_provider_slack_audit.ingest.spec import IngestSpec, IngestSummary
from airflow_provider_slack_audit.ingest.windows import Window
from airflow_provider_slack_audit.operators import slack_audit as operator_module
from airflow_provider_slack_audit.operators.slack_audit import SlackAuditLogsOperator
from airflow_provider_slack_audit.transfers._window import (
    checked_event_extra,
    landed_manifests,
    manifest_location,
)
from airflow_provider_slack_audit.triggers.slack_audit import SlackAuditLogsTrigger
from airflow_provider_slack_audit.version_compat import (
    TASK_PARTITION_KEYS,
    AirflowFailException,
    Asset,
    OutletEventAccessors,
    TaskDeferred,
)

DESTINATION = "file:///tmp/slack_audit_partition_test"
DAY = Window(datetime(2026, 1, 4, tzinfo=timezone.utc), datetime(2026, 1, 5, tzinfo=timezone.utc))
HOUR = Window(datetime(2026, 1, 4, 6, tzinfo=timezone.utc), datetime(2026, 1, 4, 7, tzinfo=timezone.utc))
needs_task_partition_keys = pytest.mark.skipif(
    not TASK_PARTITION_KEYS, reason="a task attaches a partition key to its asset event from Airflow 3.3"
)


@dataclass
class _DagRun:
    partition_key: str | None = None
    run_id: str = "scheduled__partition"


def run_context(window: Window | None = DAY, partition_key: str | None = None) -> dict[str, Any]:
    return {
        "data_interval_start": window.start if window else None,
        "data_interval_end": window.end if window else None,
        "dag_run": _DagRun(partition_key),
        "outlet_events": OutletEventAccessors(),
    }


def landed(window: Window) -> dict[str, Any]:
    summary = IngestSummary(window=window.to_json(), manifest=f"{DESTINATION}/_manifests/w.manifest.json")
    return {"status": "success", "summary": summary.to_json()}


def make_operator(**kwargs: Any) -> SlackAuditLogsOperator:
    return SlackAuditLogsOperator(task_id="land", destination=DESTINATION, deferrable=True, **kwargs)


# The key's form ----------------------------------------------------------------------------------------


def test_a_utc_day_is_keyed_by_its_date() -> None:
    assert window_partition_key(DAY) == "2026-01-04"


def test_any_other_window_is_keyed_by_its_utc_start_instant() -> None:
    assert window_partition_key(HOUR) == "2026-01-04T06:00:00"
    two_days = Window(DAY.start, DAY.start + timedelta(days=2))
    assert window_partition_key(two_days) == "2026-01-04T00:00:00"


def test_a_local_day_is_keyed_by_its_utc_start_instant() -> None:
    paris = ZoneInfo("Europe/Paris")
    local_day = Window(datetime(2026, 1, 4, tzinfo=paris), datetime(2026, 1, 5, tzinfo=paris))

    assert window_partition_key(local_day) == "2026-01-03T23:00:00"


def test_a_day_key_names_its_utc_day_and_an_instant_key_names_no_window() -> None:
    assert partition_day_window("2026-01-04") == DAY
    with pytest.raises(ValueError, match="key_format='%Y-%m-%d'"):
        partition_day_window("2026-01-04T06:00:00")


# The landing's asset event ----------------------------------------------------------------------------


@needs_task_partition_keys
def test_a_partitioned_runs_event_carries_the_windows_key() -> None:
    context = run_context(partition_key="2026-01-04")

    make_operator().execute_complete(context, landed(DAY))

    event = context["outlet_events"][Asset(DESTINATION)]
    assert event.partition_keys == {"2026-01-04"}
    assert event.extra["partition_key"] == "2026-01-04"


def test_an_unpartitioned_runs_event_stays_unpartitioned_so_asset_scheduled_dags_still_run() -> None:
    context = run_context()

    make_operator().execute_complete(context, landed(DAY))

    event = context["outlet_events"][Asset(DESTINATION)]
    assert "partition_key" not in event.extra
    assert not getattr(event, "partition_keys", set())


@needs_task_partition_keys
def test_partitioned_true_keys_the_event_of_an_unpartitioned_run() -> None:
    context = run_context(HOUR)

    make_operator(partitioned=True).execute_complete(context, landed(HOUR))

    assert context["outlet_events"][Asset(DESTINATION)].partition_keys == {"2026-01-04T06:00:00"}


@needs_task_partition_keys
def test_partitioned_false_leaves_a_partitioned_runs_event_to_airflow() -> None:
    context = run_context(partition_key="2026-01-04")

    make_operator(partitioned=False).execute_complete(context, landed(DAY))

    event = context["outlet_events"][Asset(DESTINATION)]
    assert event.partition_keys == set() and "partition_key" not in event.extra


def test_partitioned_true_is_refused_where_a_task_cannot_key_its_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(operator_module, "TASK_PARTITION_KEYS", False)

    with pytest.raises(ValueError, match=r"Airflow 3\.3 .*CronPartitionTimetable"):
        make_operator(partitioned=True)


# A partitioned run's window -----------------------------------------------------------------------------


def test_a_partition_timetables_run_lands_the_day_its_key_names() -> None:
    # A CronPartitionTimetable run has a partition key and no data interval.
    with pytest.raises(TaskDeferred) as deferred:
        make_operator().execute(run_context(window=None, partition_key="2026-01-04"))

    trigger = deferred.value.trigger
    assert isinstance(trigger, SlackAuditLogsTrigger) and trigger.spec is not None
    assert IngestSpec.from_json(trigger.spec).window == DAY


def test_a_partitioned_run_whose_key_is_no_day_asks_for_a_day_key_or_oldest_and_latest() -> None:
    with pytest.raises(AirflowFailException, match=r"not a UTC day .*or pass oldest and latest"):
        make_operator().execute(run_context(window=None, partition_key="2026-01-04T06:00:00"))


# The warehouse transfers' side --------------------------------------------------------------------------


@dataclass
class _Event:
    """An asset event as a run's triggering_asset_events holds it."""

    extra: dict[str, Any]
    partition_key: str | None = None
    timestamp: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


def extra_of(window: Window, **more: Any) -> dict[str, Any]:
    return {"manifest": f"{DESTINATION}/_manifests/w.manifest.json", "window": window.to_json(), **more}


def test_a_partitioned_event_naming_its_window_loads_that_manifest() -> None:
    event = _Event(extra_of(DAY, partition_key="2026-01-04"), partition_key="2026-01-04")

    assert manifest_location(event) == f"{DESTINATION}/_manifests/w.manifest.json"
    assert landed_manifests({"asset": [event]}) == [event.extra]


def test_a_partitioned_event_naming_another_window_is_refused_before_any_row() -> None:
    event = _Event(extra_of(DAY), partition_key="2026-01-05")

    with pytest.raises(AirflowFailException, match="'2026-01-05' does not name the window"):
        manifest_location(event)
    with pytest.raises(AirflowFailException, match="does not name the window"):
        landed_manifests({"asset": [event]})


def test_without_the_events_key_the_key_in_the_extra_is_checked() -> None:
    # Airflow 3.2's triggering events do not show their key; the landing copies it into the extra.
    assert checked_event_extra(extra_of(HOUR, partition_key="2026-01-04T06:00:00"), None)["window"]
    with pytest.raises(AirflowFailException, match="does not name the window"):
        manifest_location(extra_of(HOUR, partition_key="2026-01-04"))


def test_an_event_whose_key_differs_from_its_extras_key_is_refused() -> None:
    event = _Event(extra_of(DAY, partition_key="2026-01-04"), partition_key="2026-01-04T00:00:00")

    with pytest.raises(AirflowFailException, match="differs from the one its extra records"):
        manifest_location(event)


def test_a_partitioned_event_without_a_window_was_not_the_landings() -> None:
    with pytest.raises(AirflowFailException, match="records no window"):
        checked_event_extra({"manifest": "file:///x/_manifests/w.manifest.json"}, "2026-01-04")


def test_check_partition_key_accepts_exactly_the_windows_key() -> None:
    check_partition_key("2026-01-04", DAY)
    with pytest.raises(ValueError, match="whose key is '2026-01-04T06:00:00'"):
        check_partition_key("2026-01-04", HOUR)
