"""What fails a load for good (AirflowFailException, before any row is written) and what is retried.

A damaged manifest, a table of another shape, a missing database provider: a retry would fail the
same way, so the task fails at once and says what to fix. Only connection, lock and timeout errors
propagate as they are, for Airflow to retry.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import MySQLdb
import psycopg
import pytest

from airflow_provider_slack_audit.transfers._errors import is_transient, missing_provider_hint
from airflow_provider_slack_audit.transfers.slack_audit_to_sql import SlackAuditLogsToSqlOperator
from airflow_provider_slack_audit.version_compat import AirflowFailException

from support.audit_entries import (
    SAMPLE_ENTRIES,
    edit_manifest,
    land_window,
    lines_in_date_order,
    sample_lines,
)
from support.warehouses import MariaDbServer, PostgresServer, Warehouse


def load(warehouse: Warehouse, source: Any, **kwargs: Any) -> dict[str, Any]:
    operator = SlackAuditLogsToSqlOperator(
        task_id="load", source=source, conn_id=warehouse.conn_id, table=warehouse.table, **kwargs
    )
    result: dict[str, Any] = operator.execute(context={})
    return result


# -- a damaged manifest ---------------------------------------------------------------------------


def _drop_second_interval(document: dict[str, Any]) -> None:
    del document["intervals"][1]
    document["events"] = sum(item["count"] for item in document["intervals"])
    document["bytes"] = sum(item["bytes"] for item in document["intervals"])


def _list_first_interval_twice(document: dict[str, Any]) -> None:
    document["intervals"].insert(1, dict(document["intervals"][0]))
    document["events"] = sum(item["count"] for item in document["intervals"])
    document["bytes"] = sum(item["bytes"] for item in document["intervals"])


def _declare_more_events(document: dict[str, Any]) -> None:
    document["events"] += 120


def _declare_other_bytes(document: dict[str, Any]) -> None:
    document["bytes"] -= 1


def _all_at_once(document: dict[str, Any]) -> None:
    # What the issue reported loading 80 of 200 rows and reporting 320.
    document["intervals"].insert(1, dict(document["intervals"][0]))
    del document["intervals"][3]
    document["events"] = 320


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (_drop_second_interval, r"no interval covers seconds"),
        (_list_first_interval_twice, r"is listed twice"),
        (_declare_more_events, r"declares \d+ events but its intervals hold \d+"),
        (_declare_other_bytes, r"declares \d+ bytes but its intervals hold \d+"),
        (_all_at_once, r"listed twice.*no interval covers.*declares 320 events"),
    ],
)
def test_a_damaged_manifest_fails_before_any_row_is_written(
    warehouse: Warehouse, landing_dir: Path, damage: Any, problem: str
) -> None:
    manifest = land_window(landing_dir, sample_lines())
    edit_manifest(manifest, damage)

    with pytest.raises(AirflowFailException, match=problem) as failure:
        load(warehouse, manifest)

    assert "rerun the ingest of the window" in str(failure.value)
    with pytest.raises(Exception, match=r"(?i)no such table|does not exist|doesn't exist"):
        warehouse.count()  # nothing was written, not even the table


def test_a_missing_manifest_fails_saying_to_land_first(warehouse: Warehouse, landing_dir: Path) -> None:
    missing = f"file://{landing_dir}/_manifests/nothing.manifest.json"

    with pytest.raises(AirflowFailException, match=r"no window manifest at .*land the window first"):
        load(warehouse, missing)


# -- the table ------------------------------------------------------------------------------------


def test_an_existing_table_missing_a_column_fails_naming_it(warehouse: Warehouse, landing_dir: Path) -> None:
    warehouse.hook().run(f"CREATE TABLE {warehouse.table} (id VARCHAR(64) PRIMARY KEY, action TEXT)")

    with pytest.raises(AirflowFailException, match=r"lacks the columns date_create, actor_type, .*raw"):
        load(warehouse, land_window(landing_dir, sample_lines()))


def test_an_existing_table_without_a_key_on_id_fails_saying_how_to_add_one(
    warehouse: Warehouse, landing_dir: Path
) -> None:
    manifest = land_window(landing_dir, sample_lines())
    load(warehouse, manifest)
    copy = f"{warehouse.table}_nokey"
    no_key = f"CREATE TABLE {copy} AS SELECT * FROM {warehouse.table}"  # noqa: S608 (copies have no key)
    warehouse.hook().run(no_key)
    try:
        with pytest.raises(AirflowFailException, match=r"no primary key .* ADD PRIMARY KEY \(id\)"):
            load(Warehouse(warehouse.kind, warehouse.conn_id, copy), manifest)
        assert Warehouse(warehouse.kind, warehouse.conn_id, copy).count() == len(SAMPLE_ENTRIES)
    finally:
        warehouse.drop(copy)


def test_create_table_off_and_no_table_fails_saying_so(warehouse: Warehouse, landing_dir: Path) -> None:
    with pytest.raises(AirflowFailException, match="does not exist; create it or pass create_table=True"):
        load(warehouse, land_window(landing_dir, sample_lines()), create_table=False)


# -- the connection -------------------------------------------------------------------------------


def test_a_connection_type_without_an_installed_provider_fails_naming_what_to_install(
    monkeypatch: pytest.MonkeyPatch, landing_dir: Path
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_ORACLE_DW", json.dumps({"conn_type": "oracle", "host": "dw"}))
    operator = SlackAuditLogsToSqlOperator(
        task_id="load", source=land_window(landing_dir, sample_lines("user")), conn_id="oracle_dw"
    )

    with pytest.raises(AirflowFailException, match="pip install apache-airflow-providers-oracle"):
        operator.execute(context={})


@pytest.mark.parametrize(
    ("conn_type", "extra"), [("sqlite", "sqlite"), ("postgres", "postgres"), ("mysql", "mysql")]
)
def test_a_first_class_database_without_its_provider_points_to_this_providers_extra(
    conn_type: str, extra: str
) -> None:
    assert missing_provider_hint(conn_type) == f"pip install 'airflow-provider-slack-audit[{extra}]'"


# -- transient or permanent, on real drivers' errors ----------------------------------------------


def test_sqlite_lock_is_transient_and_a_missing_table_is_not(tmp_path: Path) -> None:
    holder = sqlite3.connect(tmp_path / "db.sqlite")
    holder.execute("CREATE TABLE t (id TEXT)")
    holder.commit()
    holder.execute("BEGIN IMMEDIATE")
    waiter = sqlite3.connect(tmp_path / "db.sqlite", timeout=0.05)
    with pytest.raises(sqlite3.OperationalError) as locked:
        waiter.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError) as missing:
        waiter.execute("SELECT * FROM nope")
    holder.close()
    waiter.close()

    assert is_transient(locked.value)
    assert not is_transient(missing.value)


def test_postgres_connection_lock_and_timeout_errors_are_transient_others_not(
    postgres_server: PostgresServer,
) -> None:
    def connect(**kwargs: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(
            host=postgres_server.host,
            port=postgres_server.port,
            user=postgres_server.user,
            dbname=postgres_server.database,
            **kwargs,
        )

    errors: dict[str, BaseException] = {}
    with connect(autocommit=True) as setup:
        setup.execute("CREATE TABLE IF NOT EXISTS transient_probe (id TEXT PRIMARY KEY)")
    with connect() as holder, connect() as waiter:
        holder.execute("LOCK TABLE transient_probe IN ACCESS EXCLUSIVE MODE")
        waiter.execute("SET lock_timeout = '50ms'")
        for name, statement in [
            ("lock", "SELECT * FROM transient_probe"),
            ("timeout", "SET statement_timeout = '50ms'; SELECT pg_sleep(1)"),
            ("syntax", "SELEC 1"),
            ("data", "SELECT 'x'::int"),
        ]:
            try:
                waiter.execute(statement)
            except psycopg.Error as error:
                errors[name] = error
            waiter.rollback()
        holder.rollback()
    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect(host="127.0.0.1", port=1, connect_timeout=2)
    with connect(autocommit=True) as cleanup:
        cleanup.execute("DROP TABLE transient_probe")

    assert is_transient(errors["lock"]) and is_transient(errors["timeout"]) and is_transient(refused.value)
    assert not is_transient(errors["syntax"]) and not is_transient(errors["data"])


def test_mariadb_lock_wait_and_lost_connection_are_transient_others_not(
    mariadb_server: MariaDbServer,
) -> None:
    def connect() -> Any:
        return MySQLdb.connect(
            host=mariadb_server.host, port=mariadb_server.port, user=mariadb_server.user,
            database=mariadb_server.database,
        )  # fmt: skip

    holder, waiter = connect(), connect()
    try:
        holder.cursor().execute("CREATE TABLE IF NOT EXISTS transient_probe (id VARCHAR(8) PRIMARY KEY)")
        holder.cursor().execute("INSERT IGNORE INTO transient_probe VALUES ('a')")
        holder.commit()
        holder.cursor().execute("SELECT * FROM transient_probe WHERE id = 'a' FOR UPDATE")
        waiter.cursor().execute("SET innodb_lock_wait_timeout = 1")
        with pytest.raises(MySQLdb.OperationalError) as lock:
            waiter.cursor().execute("UPDATE transient_probe SET id = 'b' WHERE id = 'a'")
        with pytest.raises(MySQLdb.OperationalError) as unknown_column:
            waiter.cursor().execute("SELECT nope FROM transient_probe")
    finally:
        holder.rollback()
        waiter.rollback()  # its reads hold a metadata lock that would block the DROP
        holder.cursor().execute("DROP TABLE IF EXISTS transient_probe")
        holder.close()
        waiter.close()
    with pytest.raises(MySQLdb.OperationalError) as refused:
        MySQLdb.connect(host="127.0.0.1", port=1, user="root", connect_timeout=2)

    assert is_transient(lock.value) and is_transient(refused.value)
    assert not is_transient(unknown_column.value)  # MySQLdb files it under OperationalError too


def test_a_lost_connection_mid_load_is_left_to_airflows_retry(
    warehouse: Warehouse, landing_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_slack_audit.transfers import _dialects

    def lost(self: Any, connection: Any, rows: Any) -> Any:
        raise ConnectionResetError("server closed the connection unexpectedly")

    for cls in (_dialects.PostgresDialect, _dialects.SqliteDialect, _dialects.MySqlDialect):
        monkeypatch.setattr(cls, "write_batch", lost)

    with pytest.raises(ConnectionResetError):  # not AirflowFailException: Airflow retries it
        load(warehouse, land_window(landing_dir, sample_lines()))


@pytest.mark.parametrize("warehouse", ["postgres", "mariadb"], indirect=True)  # SQLite: no ALTER ... CHECK
def test_a_value_the_database_refuses_fails_without_retry_and_without_quoting_data(
    warehouse: Warehouse, landing_dir: Path
) -> None:
    load(warehouse, land_window(landing_dir, sample_lines("user")))
    warehouse.hook().run(f"ALTER TABLE {warehouse.table} ADD CONSTRAINT no_x_action CHECK (action <> 'x')")
    entry = {**SAMPLE_ENTRIES["channel"], "action": "x", "actor": {"user": {"email": "secret@example.com"}}}
    with pytest.raises(AirflowFailException, match="a retry would repeat") as failure:
        load(warehouse, land_window(landing_dir / "bad", lines_in_date_order([entry])))

    assert "secret@example.com" not in str(failure.value)
