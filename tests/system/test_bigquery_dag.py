"""The slack_audit_bigquery example DAG under ``airflow dags test``, against local-bigquery's server.

A day is landed (the fake server's events, anomaly events), then the asset-scheduled DAG runs as a
manual run naming the window's manifest (``dags test`` has no asset events to give it); the table
must hold exactly the window's ids, and a second run must change nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from support.emulators import BigQueryEmulator, bigquery_emulator, python_313_or_skip
from support.example_dags import example_dag
from support.landed_days import LandedDay, landed_day

pytestmark = [pytest.mark.system, pytest.mark.slow, pytest.mark.bigquery]

DAG_ID = "slack_audit_bigquery"
LOGICAL_DATE = datetime(2026, 1, 5, tzinfo=timezone.utc)
DATASET, TABLE = "security", "slack_audit_logs_system"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BigQueryEmulator]:
    pytest.importorskip("airflow.providers.google.cloud.hooks.bigquery")
    python_313_or_skip()  # skips without one, even in CI (see support.emulators)
    with bigquery_emulator(tmp_path_factory.mktemp("local_bigquery_system")) as running:
        running.client().create_dataset(DATASET, exists_ok=True)
        yield running


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> LandedDay:
    return landed_day(tmp_path_factory.mktemp("bigquery_dag") / "landing", events=10_500, seed=31)


def run_dag(airflow_home: Any, emulator: BigQueryEmulator, day: LandedDay, log: Path) -> None:
    env = {
        **emulator.env("bigquery_system"),
        "SLACK_AUDIT_BASE_PATH": day.destination.as_uri(),
        "SLACK_AUDIT_GCP_CONN_ID": "bigquery_system",
        "SLACK_AUDIT_BIGQUERY_DATASET": DATASET,
        "SLACK_AUDIT_BIGQUERY_TABLE": TABLE,
    }
    run = airflow_home.dags_test(DAG_ID, LOGICAL_DATE, env=env, log=log, conf={"manifest": day.manifest})
    run.assert_succeeded()


def table_rows(emulator: BigQueryEmulator) -> list[tuple[Any, ...]]:
    sql = f"SELECT id, action, TO_JSON_STRING(raw) FROM {DATASET}.{TABLE} ORDER BY id"  # noqa: S608
    return [tuple(row.values()) for row in emulator.client().query_and_wait(sql)]


def test_the_dag_loads_exactly_the_windows_ids_and_a_rerun_changes_nothing(
    airflow_home: Any, emulator: BigQueryEmulator, day: LandedDay, tmp_path: Path
) -> None:
    run_dag(airflow_home, emulator, day, tmp_path / "first.log")
    first = table_rows(emulator)

    run_dag(airflow_home, emulator, day, tmp_path / "rerun.log")

    ids = [row[0] for row in first]
    assert len(ids) == len(set(ids)) == len(day.ids()) > 10_000
    assert set(ids) == day.ids()
    assert day.anomaly_ids() <= {row[0] for row in first if row[1] == "anomaly"}
    assert table_rows(emulator) == first


def test_the_dag_runs_when_a_window_lands_under_the_base_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_AUDIT_BASE_PATH", "file:///data/slack_audit")
    dag = example_dag("slack_audit_bigquery.py", DAG_ID)
    timetable = dag.timetable
    assets = getattr(timetable, "asset_condition", None) or timetable.dataset_condition

    assert [asset.uri for asset in assets.objects] == ["file:///data/slack_audit"]
