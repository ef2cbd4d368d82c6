"""The per-database writers on their own: names, SQLAlchemy's statements, COPY's text format, psycopg2."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from airflow_provider_slack_audit.ingest.landing import read_manifest
from airflow_provider_slack_audit.transfers._dialects import (
    CommonSqlWriter,
    MySqlDialect,
    PostgresDialect,
    SqliteDialect,
    dialect_for,
)
from airflow_provider_slack_audit.transfers._errors import UnsupportedDatabaseError
from airflow_provider_slack_audit.transfers._postgres import _copy_text
from airflow_provider_slack_audit.transfers._schema import RowBuilder
from airflow_provider_slack_audit.transfers._table import (
    BatchCounts,
    TableName,
    WarehouseDialect,
    audit_table,
    engine_on,
)
from airflow_provider_slack_audit.transfers.slack_audit_to_sql import (
    SlackAuditLogsToSqlOperator,
    manifest_location,
)
from airflow_provider_slack_audit.version_compat import ObjectStoragePath

from support.audit_entries import SAMPLE_ENTRIES, land_window, sample_lines
from support.warehouses import PostgresServer, Warehouse


def sample_rows(dialect: WarehouseDialect) -> list[tuple[Any, ...]]:
    builder = RowBuilder(dialect.timestamp, escape_nul=dialect.escape_nul)
    return [builder.build(line) for line in sample_lines()]


def test_a_table_name_is_qualified_by_its_schema() -> None:
    assert TableName("slack_audit_logs").qualified == "slack_audit_logs"
    assert TableName("slack_audit_logs", "audit").qualified == "audit.slack_audit_logs"


@pytest.mark.parametrize("schema", ["audit.x", "a b", "x" * 64, 's"--'])
def test_a_schema_must_be_a_plain_identifier(schema: str) -> None:
    with pytest.raises(ValueError, match=r"schema .* is not a plain SQL identifier"):
        TableName("slack_audit_logs", schema)


@pytest.mark.parametrize(
    ("name", "dialect"),
    [
        ("postgresql", PostgresDialect),
        ("postgres", PostgresDialect),
        ("sqlite", SqliteDialect),
        ("mysql", MySqlDialect),
        ("mariadb", MySqlDialect),
    ],
)
def test_each_first_class_database_gets_its_own_writer(name: str, dialect: type[WarehouseDialect]) -> None:
    assert type(dialect_for(name, TableName("t"))) is dialect


@pytest.mark.parametrize(
    ("sa_dialect", "reserved"),
    [(postgresql.dialect(), '"order"'), (sqlite.dialect(), '"order"'), (mysql.dialect(), "`order`")],
)
def test_reserved_words_are_quoted_by_sqlalchemy(sa_dialect: Any, reserved: str) -> None:
    ddl = str(sa.schema.CreateTable(audit_table(TableName("order"))).compile(dialect=sa_dialect))

    assert f"CREATE TABLE {reserved} (" in ddl


def test_no_writer_deletes_rows() -> None:
    # Every upsert is one INSERT with a conflict clause: no DELETE + INSERT anywhere.
    statements = [
        str(PostgresDialect(TableName("t")).upsert.compile(dialect=postgresql.dialect())),
        str(SqliteDialect(TableName("t")).upsert.compile(dialect=sqlite.dialect())),
        str(MySqlDialect(TableName("t")).upsert.compile(dialect=mysql.dialect())),
    ]

    assert all("DELETE" not in statement for statement in statements)
    assert "ON CONFLICT (id) DO UPDATE" in statements[0] and "ON CONFLICT (id) DO UPDATE" in statements[1]
    assert "ON DUPLICATE KEY UPDATE" in statements[2]


def test_mysql_types_hold_any_character_and_key_short_columns() -> None:
    ddl = str(sa.schema.CreateTable(audit_table(TableName("t"))).compile(dialect=mysql.dialect()))

    assert "id VARCHAR(255) NOT NULL" in ddl
    assert "date_create DATETIME(6) NOT NULL" in ddl
    assert "raw JSON NOT NULL" in ddl
    assert "CHARSET=utf8mb4" in ddl and "COLLATE utf8mb4_bin" in ddl


def test_copy_text_escapes_what_copy_reserves_and_marks_null() -> None:
    rows = [("a\\b", "tab\there", "new\nline", "carriage\rreturn", None, "\\N", "")]

    assert _copy_text(rows) == b"a\\\\b\ttab\\there\tnew\\nline\tcarriage\\rreturn\t\\N\t\\\\N\t\n"


class _MsSqlLikeDialect:
    """A provider dialect with its own upsert, as MSSQL's provider ships (MERGE)."""

    def generate_replace_sql(self, table: str, values: Any, target_fields: Any, **kwargs: Any) -> str:
        return f"MERGE INTO {table} USING ... ON id ({len(target_fields)} columns, {kwargs['replace_index']})"


class _Hook:
    placeholder = "?"
    dialect_name = "mssql"

    def __init__(self, dialect: Any) -> None:
        self.dialect = dialect


def test_other_databases_upsert_through_their_providers_common_sql_dialect() -> None:
    writer = CommonSqlWriter(TableName("t"), _Hook(_MsSqlLikeDialect()))

    assert writer.statement == "MERGE INTO t USING ... ON id (26 columns, ['id'])"


def test_a_database_with_only_the_generic_replace_is_refused_before_writing() -> None:
    from airflow.providers.common.sql.dialects.dialect import Dialect

    class Hook(_Hook):
        dialect_name = "exotic"

    hook = Hook(None)
    hook.dialect = Dialect.__new__(Dialect)

    with pytest.raises(UnsupportedDatabaseError, match="no upsert is known for 'exotic' connections"):
        CommonSqlWriter(TableName("t"), hook)


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
    engine = engine_on(psycopg2_conn)
    assert engine is not None

    with engine.connect() as connection:
        dialect.ensure_table(connection)
        dialect.start_load(connection)
        counts = dialect.write_batch(connection, sample_rows(dialect))
        connection.commit()
        # Again: psycopg2's unique violation (its pgcode) turns the straight COPY into the upsert.
        dialect.start_load(connection)
        again = dialect.write_batch(connection, sample_rows(dialect))
        connection.commit()

    try:
        assert counts == BatchCounts(inserted=len(SAMPLE_ENTRIES))
        assert again == BatchCounts(unchanged=len(SAMPLE_ENTRIES))
        via_psycopg2 = Warehouse(warehouse.kind, warehouse.conn_id, dialect.name_of_table.qualified)
        assert via_psycopg2.dump() == warehouse.dump()
    finally:
        warehouse.hook().run(f"DROP TABLE {dialect.name_of_table}")


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
