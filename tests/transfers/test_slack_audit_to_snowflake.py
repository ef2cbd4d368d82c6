"""SlackAuditLogsToSnowflakeOperator against fakesnow's server, through the Snowflake provider's hook.

A day of the fake org (12,000 events, anomaly events, late events) is landed with the ingest's own
Landing; every load goes through the operator's whole path (manifest check, verified read, PUT,
COPY INTO a staging table, MERGE by id) on the emulator. See support.emulators for how the hook
reaches the emulator.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_slack_audit.version_compat import AirflowFailException

from support.audit_entries import bulk_lines, land_window
from support.emulators import SnowflakeEmulator
from support.landed_days import LandedDay, landed_day
from support.warehouses import assert_is_load_summary

pytest.importorskip("airflow.providers.snowflake")

from airflow_provider_slack_audit.transfers.slack_audit_to_snowflake import (
    SlackAuditLogsToSnowflakeOperator,
)

pytestmark = pytest.mark.slow


def load(conn_id: str, table: str, source: Any, **kwargs: Any) -> dict[str, Any]:
    operator = SlackAuditLogsToSnowflakeOperator(
        task_id="load", source=source, snowflake_conn_id=conn_id, table=table, **kwargs
    )
    result: dict[str, Any] = operator.execute(context={})
    return result


def query(emulator: SnowflakeEmulator, sql: str, table: str = "") -> list[tuple[Any, ...]]:
    """The rows of ``sql``, in which ``{table}`` stands for ``table``."""
    connection = emulator.connect()
    try:
        cursor = connection.cursor()
        cursor.execute(sql.format(table=table))
        return [tuple(row) for row in cursor.fetchall()]
    finally:
        connection.close()


def ids(emulator: SnowflakeEmulator, table: str) -> list[str]:
    return [row[0] for row in query(emulator, "SELECT id FROM {table}", table)]


def dump(emulator: SnowflakeEmulator, table: str) -> dict[str, tuple[Any, ...]]:
    """Every row, every column (VARIANTs as their JSON text), by id."""
    rows = query(emulator, "SELECT id, TO_JSON(OBJECT_CONSTRUCT_KEEP_NULL(*)) FROM {table}", table)
    return {row[0]: row[1:] for row in rows}


@pytest.fixture
def table() -> str:
    return f"audit_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> LandedDay:
    return landed_day(tmp_path_factory.mktemp("snowflake_day"))


@pytest.fixture
def fresh_day(tmp_path: Path) -> LandedDay:
    """A day of its own, for a test that re-lands it (a reconcile)."""
    return landed_day(tmp_path / "landing", events=3_000, seed=7)


def test_a_landed_day_loads_with_exactly_its_ids(
    snowflake_conn: str, snowflake_emulator: SnowflakeEmulator, day: LandedDay, table: str
) -> None:
    result = load(snowflake_conn, table, {"manifest": day.manifest})

    loaded = ids(snowflake_emulator, table)
    assert len(loaded) == len(set(loaded)) == len(day.ids()) > 10_000
    assert set(loaded) == day.ids()
    assert (result["rows"], result["inserted"], result["updated"], result["unchanged"]) == (
        len(day.ids()),
        len(day.ids()),
        0,
        0,
    )
    assert result["table"] == table and result["manifest"] == day.manifest
    assert_is_load_summary(result)


def test_anomaly_events_get_their_columns(
    snowflake_conn: str, snowflake_emulator: SnowflakeEmulator, day: LandedDay, table: str
) -> None:
    load(snowflake_conn, table, day.manifest)

    rows = query(
        snowflake_emulator,
        "SELECT id, TO_JSON(anomaly_reasons), anomaly_previous_ip_address, anomaly_previous_ua, "
        "anomaly_action_timestamp, date_create FROM {table} WHERE action = 'anomaly'",
        table,
    )
    assert {row[0] for row in rows} == day.anomaly_ids()
    for _, reasons, previous_ip, previous_ua, acted, created in rows:
        assert json.loads(reasons) in (["tor"], ["asn", "ip_address"])
        assert (previous_ip, previous_ua) == ("198.51.100.9", "curl/8.0")
        # ms and µs both become the event's own second
        assert acted.astimezone(timezone.utc) == created.astimezone(timezone.utc)


def test_raw_is_a_variant_holding_the_landed_entry(
    snowflake_conn: str, snowflake_emulator: SnowflakeEmulator, day: LandedDay, table: str
) -> None:
    load(snowflake_conn, table, day.manifest)

    (row,) = query(
        snowflake_emulator,
        "SELECT id, raw:id::VARCHAR, raw:action::VARCHAR, action, TO_JSON(raw) FROM {table} "
        "WHERE action = 'anomaly' ORDER BY id LIMIT 1",
        table,
    )
    assert row[1] == row[0] and row[2] == row[3] == "anomaly"
    assert json.loads(row[4])["details"]["previous_ua"] == "curl/8.0"


def test_a_rerun_of_the_load_changes_nothing(
    snowflake_conn: str, snowflake_emulator: SnowflakeEmulator, day: LandedDay, table: str
) -> None:
    load(snowflake_conn, table, day.manifest)
    before = dump(snowflake_emulator, table)

    result = load(snowflake_conn, table, day.manifest)

    assert (result["inserted"], result["updated"], result["unchanged"]) == (0, 0, len(day.ids()))
    assert dump(snowflake_emulator, table) == before


def test_a_reconciled_window_reloaded_adds_exactly_the_late_rows_and_changes_nothing_else(
    snowflake_conn: str, snowflake_emulator: SnowflakeEmulator, fresh_day: LandedDay, table: str
) -> None:
    load(snowflake_conn, table, fresh_day.manifest)
    before = dump(snowflake_emulator, table)

    late = fresh_day.reconcile()
    result = load(snowflake_conn, table, fresh_day.manifest)

    assert late, "the day must have events the first landing missed"
    after = dump(snowflake_emulator, table)
    assert set(after) - set(before) == late
    assert {key: after[key] for key in before} == before
    assert (result["inserted"], result["updated"]) == (len(late), 0)


def test_two_concurrent_loads_of_overlapping_windows_end_with_every_id_once(
    snowflake_conn: str, snowflake_emulator: SnowflakeEmulator, day: LandedDay, table: str
) -> None:
    outcomes: list[str] = []

    def run() -> None:
        try:
            load(snowflake_conn, table, day.manifest)
            outcomes.append("ok")
        except Exception as error:  # collected: the assertion names it
            outcomes.append(f"{type(error).__name__}: {error}")

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)

    assert outcomes == ["ok", "ok"]
    loaded = ids(snowflake_emulator, table)
    assert len(loaded) == len(set(loaded)) == len(day.ids())


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every statement the Snowflake connector sends, in order (the real execute runs)."""
    from snowflake.connector.cursor import SnowflakeCursor

    sent: list[str] = []
    execute = SnowflakeCursor.execute

    def recording(self: Any, command: str, *args: Any, **kwargs: Any) -> Any:
        sent.append(command)
        return execute(self, command, *args, **kwargs)

    monkeypatch.setattr(SnowflakeCursor, "execute", recording)
    return sent


def test_statements_per_window_do_not_grow_with_events_or_files(
    snowflake_conn: str, statements: list[str], tmp_path: Path
) -> None:
    small = land_window(tmp_path / "small", bulk_lines(10, seed=1))  # 4 files, 10 events
    large = land_window(tmp_path / "large", bulk_lines(5_000, seed=2), step=timedelta(hours=1))  # 24 files
    load(snowflake_conn, f"audit_{uuid.uuid4().hex[:12]}", small)
    for_small = len(statements)
    statements.clear()

    load(snowflake_conn, f"audit_{uuid.uuid4().hex[:12]}", large)

    assert len(statements) == for_small
    assert sum(text.startswith("COPY INTO") for text in statements) == 1
    assert sum(text.startswith("MERGE INTO") for text in statements) == 1


def test_a_staging_load_short_of_the_windows_rows_fails_without_merging(
    monkeypatch: pytest.MonkeyPatch, snowflake_conn: str, statements: list[str], day: LandedDay, table: str
) -> None:
    from airflow_provider_slack_audit.transfers import slack_audit_to_snowflake

    column_sum = slack_audit_to_snowflake._column_sum
    monkeypatch.setattr(slack_audit_to_snowflake, "_column_sum", lambda *args: column_sum(*args) - 1)

    with pytest.raises(
        AirflowFailException, match=r"Snowflake loaded (\d+) of the window's (\d+) rows"
    ) as failed:
        load(snowflake_conn, table, day.manifest)

    loaded, staged = map(int, re.findall(r"loaded (\d+) of the window's (\d+)", str(failed.value))[0])
    assert loaded == staged - 1 > 0

    assert not any(text.startswith("MERGE INTO") for text in statements)
    assert statements[-2:] == [f"DROP TABLE IF EXISTS {statements[-1].split()[-1]}", statements[-1]]
    assert statements[-1].startswith("DROP STAGE IF EXISTS slack_audit_load_")


def test_an_older_table_without_the_anomaly_columns_gets_them(
    snowflake_conn: str, snowflake_emulator: SnowflakeEmulator, day: LandedDay, table: str
) -> None:
    load(snowflake_conn, table, day.manifest)
    for column in ("anomaly_reasons", "anomaly_previous_ip_address", "anomaly_action_timestamp"):
        query(snowflake_emulator, f"ALTER TABLE {{table}} DROP COLUMN {column}", table)

    load(snowflake_conn, table, day.manifest)

    rows = query(snowflake_emulator, "SELECT COUNT(*) FROM {table} WHERE anomaly_reasons IS NOT NULL", table)
    assert rows == [(len(day.anomaly_ids()),)]


def test_a_missing_table_with_create_table_off_fails_without_retries(
    snowflake_conn: str, day: LandedDay, table: str
) -> None:
    with pytest.raises(AirflowFailException, match=table.upper() + "|" + table):
        load(snowflake_conn, table, day.manifest, create_table=False)


def test_a_table_of_another_shape_is_refused_naming_the_missing_columns(
    snowflake_conn: str, snowflake_emulator: SnowflakeEmulator, day: LandedDay, table: str
) -> None:
    query(snowflake_emulator, "CREATE TABLE {table} (id VARCHAR, date_create TIMESTAMP_TZ)", table)

    with pytest.raises(AirflowFailException, match="lacks the columns action, actor_type"):
        load(snowflake_conn, table, day.manifest)


def test_an_unreachable_snowflake_is_a_transient_error_left_to_airflows_retries(
    monkeypatch: pytest.MonkeyPatch, snowflake_emulator: SnowflakeEmulator, day: LandedDay, table: str
) -> None:
    from support.emulators import free_loopback_port

    connection = snowflake_emulator.connection(port=free_loopback_port(), login_timeout=2)
    monkeypatch.setenv("AIRFLOW_CONN_SNOWFLAKE_DOWN", json.dumps(connection))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(snowflake_emulator.ca_bundle))

    with pytest.raises(Exception, match=r"\S") as raised:
        load("snowflake_down", table, day.manifest)

    assert not isinstance(raised.value, AirflowFailException)
    assert type(raised.value).__module__.startswith("snowflake")


def test_an_invalid_table_name_fails_before_anything_is_read(snowflake_conn: str) -> None:
    with pytest.raises(AirflowFailException, match="not a plain identifier"):
        load(snowflake_conn, "audit; DROP TABLE x", "file:///nowhere/_manifests/x.manifest.json")


def test_the_operator_reports_the_window_it_loaded(snowflake_conn: str, day: LandedDay, table: str) -> None:
    result = load(snowflake_conn, table, day.manifest)

    assert datetime.fromisoformat(result["window"]["start"]) == datetime(2026, 1, 4, tzinfo=timezone.utc)
