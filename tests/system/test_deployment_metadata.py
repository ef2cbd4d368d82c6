"""The deployment harness's parts that need no Airflow running: one query text for SQLite and
PostgreSQL, timestamps read alike from both, and a component's log over its restarts."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from support.airflow_deployment import AirflowDeployment, SqliteMetadata, _epoch


def test_a_sqlite_metadata_db_takes_psycopg2_placeholders_and_percent_signs(tmp_path: Path) -> None:
    metadata = SqliteMetadata(tmp_path / "airflow.db")
    metadata.query("CREATE TABLE asset (uri TEXT, kind TEXT)")
    metadata.query("INSERT INTO asset VALUES (%s, %s), (%s, %s)", ("file:///a", "x", "s3://b", "x"))

    rows = metadata.query("SELECT uri FROM asset WHERE uri LIKE 'file:%%' AND kind = %s", ("x",))

    assert rows == [("file:///a",)]


def test_timestamps_read_the_same_from_sqlite_text_and_postgresql_datetimes() -> None:
    moment = datetime(2026, 1, 4, 6, 30, tzinfo=timezone.utc)

    assert _epoch("2026-01-04 06:30:00.000000") == moment.timestamp()
    assert _epoch("2026-01-04 06:30:00+00:00") == moment.timestamp()
    assert _epoch(moment) == moment.timestamp()
    assert _epoch(None) is None


def test_a_components_log_reads_over_its_launches_in_order(tmp_path: Path) -> None:
    deployment = AirflowDeployment(tmp_path / "home", [])
    for launch in (2, 10, 9):
        deployment.log_path("triggerer", launch).write_text(f"launch {launch}\n")
    deployment.log_path("triggerer-queue", 11).write_text("another triggerer\n")

    assert deployment.log_text("triggerer") == "launch 2\nlaunch 9\nlaunch 10\n"
    assert deployment.log_tail("triggerer", lines=1) == "launch 10"
    assert deployment.log_tail("scheduler") == "(no log)"
