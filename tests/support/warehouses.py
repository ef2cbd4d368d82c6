"""The databases the warehouse load tests run against, as the tests see them."""

from __future__ import annotations

import json
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_slack_audit.transfers import LoadSummary
from airflow_provider_slack_audit.version_compat import BaseHook


def assert_is_load_summary(result: Mapping[str, Any]) -> None:
    """``result`` has exactly :class:`LoadSummary`'s keys, each value of its declared type."""
    declared = typing.get_type_hints(LoadSummary)
    assert set(result) == set(declared)
    for key, hint in declared.items():
        assert isinstance(result[key], typing.get_origin(hint) or hint), (key, result[key])
    assert result["rows"] == result["inserted"] + result["updated"] + result["unchanged"]


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    database: str

    def connection_json(self) -> str:
        """An ``AIRFLOW_CONN_<ID>`` value for this server."""
        return json.dumps(
            {
                "conn_type": "postgres",
                "host": self.host,
                "port": self.port,
                "login": self.user,
                "schema": self.database,
            }
        )


@dataclass(frozen=True)
class MariaDbServer:
    host: str
    port: int
    user: str
    database: str

    def connection_json(self) -> str:
        """An ``AIRFLOW_CONN_<ID>`` value for this server (conn type mysql: the MySQL provider)."""
        return json.dumps(
            {
                "conn_type": "mysql",
                "host": self.host,
                "port": self.port,
                "login": self.user,
                "schema": self.database,
            }
        )


@dataclass
class Warehouse:
    """A database under test, reached through an Airflow connection, with a table of its own."""

    kind: str  # "sqlite", "postgres" or "mariadb"
    conn_id: str
    table: str

    def hook(self) -> Any:
        return BaseHook.get_connection(self.conn_id).get_hook()

    def quoted(self, name: str | None = None) -> str:
        """A table name quoted for this database (``order`` and friends)."""
        name = name or self.table
        return f"`{name}`" if self.kind == "mariadb" else f'"{name}"'

    def drop(self, name: str | None = None) -> None:
        if self.kind != "sqlite":
            self.hook().run(f"DROP TABLE IF EXISTS {self.quoted(name)}")

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows of ``sql``, in which ``{table}`` stands for this warehouse's table."""
        return [tuple(row) for row in self.hook().get_records(sql.format(table=self.table))]

    def dump(self) -> list[tuple[Any, ...]]:
        """Every row of the table, every column, ordered by id: the table's full content."""
        return self.query("SELECT * FROM {table} ORDER BY id")

    def rows_by_id(self) -> dict[str, dict[str, Any]]:
        """Rows as ``{id: {column: value}}``, with values as the database returns them."""
        hook = self.hook()
        conn = hook.get_conn()
        try:
            cursor = conn.cursor()
            cursor.execute(f"SELECT * FROM {self.table}")  # noqa: S608
            names = [column[0] for column in cursor.description]
            return {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}
        finally:
            conn.close()

    def count(self) -> int:
        return int(self.query("SELECT COUNT(*) FROM {table}")[0][0])
