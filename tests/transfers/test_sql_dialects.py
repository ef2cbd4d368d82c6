"""The per-dialect writers on their own: names, COPY's text format, psycopg2, the ANSI fallback."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from audit_entries import SAMPLE_ENTRIES, land_window, sample_lines
from warehouses import PostgresServer, Warehouse

from airflow_provider_slack_audit.ingest.landing import read_manifest
from airflow_provider_slack_audit.transfers._dialects import (
    AnsiDialect,
    BatchCounts,
    PostgresDialect,
    SqliteDialect,
    TableName,
    WarehouseDialect,
    _copy_text,
    dialect_for,
)
from airflow_provider_slack_audit.transfers._schema import COLUMN_NAMES, RowBuilder
from airflow_provider_slack_audit.transfers.slack_audit_to_sql import (
    SlackAuditLogsToSqlOperator,
    manifest_location,
)
from airflow_provider_slack_audit.version_compat import ObjectStoragePath


def sample_rows(dialect: WarehouseDialect) -> list[tuple[Any, ...]]:
    builder = RowBuilder(dialect.timestamp)
    return [builder.build(line) for line in sample_lines()]


def load_rows(conn: Any, dialect: WarehouseDialect, rows: list[tuple[Any, ...]]) -> BatchCounts:
    """What the operator does with one batch: ensure the table, then one transaction."""
    dialect.ensure_table(conn)
    cursor = conn.cursor()
    for statement in dialect.start_load_statements():
        cursor.execute(statement)
    counts = dialect.write_batch(cursor, rows)
    conn.commit()
    return counts


def test_a_table_name_is_qualified_by_its_schema() -> None:
    assert TableName("slack_audit_logs").qualified == "slack_audit_logs"
    assert TableName("slack_audit_logs", "audit").qualified == "audit.slack_audit_logs"


@pytest.mark.parametrize("schema", ["audit.x", "a b", "x" * 64])
def test_a_schema_must_be_a_plain_identifier(schema: str) -> None:
    with pytest.raises(ValueError, match=r"schema .* is not a plain SQL identifier"):
        TableName("slack_audit_logs", schema)


@pytest.mark.parametrize(
    ("name", "dialect"),
    [("postgresql", PostgresDialect), ("postgres", PostgresDialect), ("sqlite", SqliteDialect)],
)
def test_postgres_and_sqlite_get_their_own_dialect(name: str, dialect: type[WarehouseDialect]) -> None:
    assert type(dialect_for(name, TableName("t"), "%s")) is dialect


@pytest.mark.parametrize("name", ["mysql", "mssql", "default"])
def test_other_databases_get_ansi_sql_with_the_hooks_placeholder(name: str) -> None:
    dialect = dialect_for(name, TableName("t"), "%s")

    assert isinstance(dialect, AnsiDialect)
    assert dialect.placeholder == "%s"


def test_copy_text_escapes_what_copy_reserves_and_marks_null() -> None:
    rows = [("a\\b", "tab\there", "new\nline", "carriage\rreturn", None, "\\N", "")]

    assert _copy_text(rows) == b"a\\\\b\ttab\\there\tnew\\nline\tcarriage\\rreturn\t\\N\t\\\\N\t\n"


@pytest.fixture
def psycopg2_conn(postgres_server: PostgresServer) -> Iterator[Any]:
    conn = psycopg2.connect(
        host=postgres_server.host,
        port=postgres_server.port,
        user=postgres_server.user,
        dbname=postgres_server.database,
    )
    yield conn
    conn.close()


@pytest.mark.parametrize("warehouse", ["postgres"], indirect=True)
def test_psycopg2_copies_the_same_rows_as_psycopg3(
    warehouse: Warehouse, psycopg2_conn: Any, landing_dir: Path
) -> None:
    # The operator's hook hands out psycopg 3 connections; psycopg2 takes the COPY text path.
    manifest = land_window(landing_dir, sample_lines())
    SlackAuditLogsToSqlOperator(
        task_id="load", source=manifest, conn_id=warehouse.conn_id, table=warehouse.table
    ).execute(context={})
    dialect = PostgresDialect(TableName(f"{warehouse.table}_psycopg2"))

    counts = load_rows(psycopg2_conn, dialect, sample_rows(dialect))

    try:
        assert counts == BatchCounts(inserted=len(SAMPLE_ENTRIES))
        via_psycopg2 = Warehouse(warehouse.kind, warehouse.conn_id, dialect.table.qualified)
        assert via_psycopg2.dump() == warehouse.dump()
    finally:
        warehouse.hook().run(f"DROP TABLE {dialect.table}")


def test_ansi_sql_replaces_rows_with_delete_and_insert(tmp_path: Path) -> None:
    # sqlite3 stands in for "some other DB-API database": only ANSI statements are sent to it.
    conn = sqlite3.connect(tmp_path / "ansi.db")
    dialect = AnsiDialect(TableName("audit"), placeholder="?")
    rows = sample_rows(dialect)

    first = load_rows(conn, dialect, rows)
    content = conn.execute("SELECT * FROM audit ORDER BY id").fetchall()
    second = load_rows(conn, dialect, rows)

    assert first == BatchCounts(inserted=len(rows))
    assert second == BatchCounts(updated=len(rows))  # ANSI cannot tell an identical row from a changed one
    assert conn.execute("SELECT * FROM audit ORDER BY id").fetchall() == content
    assert content[0][COLUMN_NAMES.index("date_create")] == "2026-01-04 00:01:00"  # UTC, no zone
    conn.close()


def test_ansi_timestamps_are_naive_utc() -> None:
    dialect = AnsiDialect(TableName("audit"), placeholder="?")

    assert dialect.timestamp(1767484860) == datetime(2026, 1, 4, 0, 1)


def test_manifest_location_takes_the_landing_operators_output() -> None:
    summary = {"manifest": "file:///data/_manifests/w.manifest.json", "window": {}, "events": 3}

    assert manifest_location(summary) == "file:///data/_manifests/w.manifest.json"


def test_manifest_location_takes_a_path_or_an_object_storage_path(landing_dir: Path) -> None:
    manifest = land_window(landing_dir, sample_lines("user"))

    assert manifest_location(f"  {manifest}\n") == manifest
    path = ObjectStoragePath(manifest)
    assert manifest_location(path) is path
    assert read_manifest(manifest_location({"manifest": manifest})).events == 1


def test_manifest_location_names_what_is_missing() -> None:
    with pytest.raises(ValueError, match=r"source has no 'manifest' key \(keys: \['events', 'window'\]\)"):
        manifest_location({"window": {}, "events": 0})
    with pytest.raises(TypeError, match="source must be the landing operator's output"):
        manifest_location(42)
