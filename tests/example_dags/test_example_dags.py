"""Every example DAG parses on the Airflow line under test, with the tasks and params it documents."""

from __future__ import annotations

import pytest

from airflow_provider_slack_audit.version_compat import PARTITIONED_RUNS, coerce_to_core_timetable

from support.example_dags import example_dag, parse_example_dags


def test_every_example_dag_parses_without_import_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    # A named connection: parsing the warehouse DAG then leaves this process's environment alone.
    monkeypatch.setenv("SLACK_AUDIT_WAREHOUSE_CONN_ID", "warehouse")
    bag = parse_example_dags()
    assert bag.import_errors == {}
    assert {
        "slack_audit_daily",
        "slack_audit_backfill",
        "slack_audit_reconcile",
        "slack_audit_warehouse",
        "slack_audit_warehouse_on_landing",
    } <= set(bag.dags)


def test_the_reconcile_dag_reconciles_the_day_n_days_back_and_reports_the_late_ratio() -> None:
    dag = example_dag("slack_audit_reconcile.py", "slack_audit_reconcile")
    reconcile = dag.get_task("reconcile_late_events")
    assert reconcile.reconcile is True and reconcile.deferrable is True
    assert dag.params["days_back"] == 3
    assert [task.task_id for task in reconcile.downstream_list] == ["report_late_events"]


def test_the_daily_dag_offers_reconcile_as_a_rerun_mode() -> None:
    dag = example_dag("slack_audit_daily.py", "slack_audit_daily")
    assert dag.params.get_param("mode").schema["enum"] == ["resume", "reconcile", "overwrite"]
    assert dag.get_task("land_audit_logs").reconcile == "{{ params.mode == 'reconcile' }}"


@pytest.mark.skipif(not PARTITIONED_RUNS, reason="partition timetables arrived in Airflow 3.2")
def test_the_partitioned_dags_land_a_utc_day_per_partition_and_load_per_partition(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLACK_AUDIT_WAREHOUSE_CONN_ID", "warehouse")
    bag = parse_example_dags("slack_audit_partitioned.py")
    assert bag.import_errors == {}
    landing, warehouse = bag.dags["slack_audit_partitioned"], bag.dags["slack_audit_partitioned_warehouse"]

    timetable = coerce_to_core_timetable(landing.timetable)
    assert timetable.partitioned and timetable.serialize()["key_format"] == "%Y-%m-%d"  # the day key
    assert coerce_to_core_timetable(warehouse.timetable).partitioned
    assert {task.task_id for task in warehouse.tasks} == {"partition_windows", "load_into_warehouse"}


@pytest.mark.skipif(PARTITIONED_RUNS, reason="lines with partition timetables define the partitioned DAGs")
def test_the_partitioned_example_defines_no_dag_before_partition_timetables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLACK_AUDIT_WAREHOUSE_CONN_ID", "warehouse")
    bag = parse_example_dags("slack_audit_partitioned.py")
    assert bag.import_errors == {} and bag.dags == {}
