"""The slack_audit_warehouse example DAGs: land a day from the fake API, load it into SQLite.

``airflow dags test`` runs the land >> load DAG end to end on a throwaway AIRFLOW_HOME (see
conftest.py); the table must then hold exactly the ids the fake server says the window has. The
asset-scheduled DAG cannot be triggered by ``dags test`` (it has no asset events to give), so its
parts are checked on the parsed DAG.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_slack_audit.ingest.windows import Window
from airflow_provider_slack_audit.testing import FakeAuditLogsServer

from support.example_dags import example_dag

pytestmark = [pytest.mark.system, pytest.mark.slow]

DAG_FILE = Path(__file__).resolve().parents[2] / "example_dags" / "slack_audit_warehouse.py"
DAG_ID = "slack_audit_warehouse"
LOGICAL_DATE = datetime(2026, 1, 5, tzinfo=timezone.utc)
WINDOW = Window(datetime(2026, 1, 4, tzinfo=timezone.utc), LOGICAL_DATE)  # CronDataIntervalTimetable


@dataclass(frozen=True)
class LoadedDay:
    """The warehouse DAG's run for LOGICAL_DATE against a fake org, and where it wrote."""

    server: FakeAuditLogsServer
    warehouse: Path
    env: dict[str, str]
    logs: Path

    def table(self) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.warehouse) as db:
            return db.execute("SELECT * FROM slack_audit_logs ORDER BY id").fetchall()

    def ids(self) -> list[str]:
        with sqlite3.connect(self.warehouse) as db:
            return [row[0] for row in db.execute("SELECT id FROM slack_audit_logs")]


@pytest.fixture(scope="module")
def loaded_day(
    airflow_home: Any,
    serve_fake_api: Callable[..., AbstractContextManager[FakeAuditLogsServer]],
    connection_env: Callable[..., dict[str, str]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LoadedDay]:
    root = tmp_path_factory.mktemp("warehouse_day")
    # Events from the day before to the day after: the window must take its own day only.
    span = {"start": WINDOW.start - timedelta(days=1), "end": WINDOW.end + timedelta(days=1)}
    with serve_fake_api(events=6_000, seed=21, **span) as server:
        env = {
            **connection_env(server),
            "SLACK_AUDIT_BASE_PATH": (root / "landing").as_uri(),
            # The DAG's embedded default warehouse: <SLACK_AUDIT_DEMO_DIR>/warehouse.db.
            "SLACK_AUDIT_DEMO_DIR": str(root / "demo"),
        }
        run = airflow_home.dags_test(DAG_ID, LOGICAL_DATE, env=env, log=root / "first_run.log")
        run.assert_succeeded()
        yield LoadedDay(server, root / "demo" / "warehouse.db", env, root)


def test_the_warehouse_holds_exactly_the_windows_events(loaded_day: LoadedDay) -> None:
    expected = loaded_day.server.expected_ids(WINDOW.oldest, WINDOW.latest)
    ids = loaded_day.ids()

    assert len(ids) == len(expected) > 0
    assert set(ids) == expected


def test_a_second_run_of_the_day_leaves_the_warehouse_unchanged(
    loaded_day: LoadedDay, airflow_home: Any
) -> None:
    before = loaded_day.table()

    run = airflow_home.dags_test(DAG_ID, LOGICAL_DATE, env=loaded_day.env, log=loaded_day.logs / "rerun.log")

    run.assert_succeeded()
    assert loaded_day.table() == before


@pytest.fixture
def on_landing_dag(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """The asset-scheduled DAG, parsed from the example file."""
    monkeypatch.setenv("SLACK_AUDIT_BASE_PATH", "file:///data/slack_audit")
    # A named connection: parsing then leaves this process's environment alone.
    monkeypatch.setenv("SLACK_AUDIT_WAREHOUSE_CONN_ID", "warehouse")
    return example_dag("slack_audit_warehouse.py", "slack_audit_warehouse_on_landing")


def test_the_on_landing_dag_runs_when_a_window_lands_under_the_base_path(on_landing_dag: Any) -> None:
    timetable = on_landing_dag.timetable
    # An asset condition on Airflow 3, a dataset condition on 2.x.
    assets = getattr(timetable, "asset_condition", None) or timetable.dataset_condition
    assets = assets.objects

    assert [asset.uri for asset in assets] == ["file:///data/slack_audit"]


def test_the_on_landing_dag_loads_every_landed_window_oldest_first(on_landing_dag: Any) -> None:
    landed_windows = on_landing_dag.get_task("landed_windows").python_callable
    # Keyed as Airflow keys it on that line (an Asset, a Dataset, an AssetUniqueKey); the function
    # reads only the values, and Airflow 3.0's Asset is not hashable, so the URI stands in for it.
    landed = "file:///data/slack_audit"

    def event(day: int, extra: dict[str, Any]) -> SimpleNamespace:
        return SimpleNamespace(timestamp=datetime(2026, 1, day, tzinfo=timezone.utc), extra=extra)

    manifests = landed_windows(
        triggering_asset_events={
            landed: [
                event(6, {"manifest": "file:///data/slack_audit/_manifests/day5.json", "window": {}}),
                event(5, {"manifest": "file:///data/slack_audit/_manifests/day4.json", "window": {}}),
                event(7, {"note": "created by hand in the UI"}),
            ]
        }
    )

    assert [source["manifest"] for source in manifests] == [
        "file:///data/slack_audit/_manifests/day4.json",
        "file:///data/slack_audit/_manifests/day5.json",
    ]
    load = on_landing_dag.get_task("load_into_warehouse")
    assert load.partial_kwargs["conn_id"] == "warehouse"
