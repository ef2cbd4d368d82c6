"""How each database creates the audit table and upserts a batch of rows into it, through SQLAlchemy.

Nothing here formats values into SQL: the upserts are SQLAlchemy's constructs compiled for the
connection's database, on the table :mod:`._table` defines (with what every writer does):

- PostgreSQL: COPY, then an upsert that counts what it did (:mod:`._postgres`).
- SQLite: ``sqlite.insert().on_conflict_do_update`` with a ``WHERE <row differs>``, by ``executemany``.
- MySQL/MariaDB: ``mysql.insert().on_duplicate_key_update``.
- Any other database whose Airflow provider ships a common-sql dialect with an upsert (MSSQL's
  ``MERGE``, ...): that dialect's ``generate_replace_sql``, the SQL ``DbApiHook.insert_rows(
  replace=True)`` runs. A database without one is refused before anything is written.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime, timedelta
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.engine import Connection

from airflow_provider_slack_audit.transfers._errors import SchemaMismatchError, UnsupportedDatabaseError
from airflow_provider_slack_audit.transfers._postgres import PostgresDialect
from airflow_provider_slack_audit.transfers._schema import COLUMN_NAMES, VALUE_COLUMNS, Row
from airflow_provider_slack_audit.transfers._table import (
    EPOCH,
    BatchCounts,
    TableName,
    WarehouseDialect,
    differs,
    iso_utc,
)

_sqlite_timestamp = iso_utc("Z")


class _CountingUpsert(WarehouseDialect):
    """An upsert by ``executemany`` whose row count, with the batch's ids stored before, tells what it did.

    The row count is 1 per inserted row, ``per_update`` per updated row and 0 per row left as it was.
    """

    per_update: ClassVar[int]

    def __init__(self, table: TableName) -> None:
        super().__init__(table)
        self.upsert = self._upsert(self.table).execution_options(preserve_rowcount=True)

    @staticmethod
    @abstractmethod
    def _upsert(table: sa.Table) -> Any:
        """The INSERT that updates the row holding an id already."""

    def write_batch(self, connection: Connection, rows: Sequence[Row]) -> BatchCounts:
        existing = self.count_existing(connection, [row[0] for row in rows])
        written = connection.execute(self.upsert, [dict(zip(COLUMN_NAMES, row, strict=True)) for row in rows])
        inserted = len(rows) - existing
        updated = (written.rowcount - inserted) // self.per_update
        return BatchCounts(inserted=inserted, updated=updated, unchanged=existing - updated)


class SqliteDialect(_CountingUpsert):
    """SQLite: TEXT everywhere (timestamps as ISO-8601 UTC, which sorts in time order); upsert."""

    name = "sqlite"
    per_update = 1  # sqlite3 sums executemany's changes: inserted rows plus rows the DO UPDATE rewrote

    @staticmethod
    def _upsert(table: sa.Table) -> Any:
        insert = sqlite.insert(table)
        return insert.on_conflict_do_update(
            index_elements=[table.c.id],
            set_={name: insert.excluded[name] for name in VALUE_COLUMNS},
            where=differs(table, insert.excluded),
        )

    def timestamp(self, micros: int) -> str:
        return _sqlite_timestamp(micros)

    def creation_lock(self, connection: Connection) -> AbstractContextManager[None]:
        # The write lock, up front: a concurrent creator waits (busy timeout) and then finds the table.
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        return nullcontext()

    def start_load(self, connection: Connection) -> None:
        # sqlite3 opens a transaction lazily, before the first INSERT: the id counts read before it
        # would be outside it. IMMEDIATE takes the write lock up front, so a concurrent writer waits
        # (up to the busy timeout) instead of failing halfway with "database is locked".
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _naive_utc(micros: int) -> datetime:
    # Naive UTC: DATETIME has no zone and drivers bind it without shifting it.
    return EPOCH + timedelta(microseconds=micros)


@contextmanager
def _mysql_lock(connection: Connection, key: str) -> Iterator[None]:
    """A named server lock (GET_LOCK) around table creation: MySQL's DDL commits implicitly."""
    key = key[:64]
    if connection.execute(sa.select(sa.func.get_lock(key, 60))).scalar() != 1:
        raise TimeoutError(f"could not take the table-creation lock {key!r} within 60 s")
    try:
        yield
    finally:
        connection.execute(sa.select(sa.func.release_lock(key)))


class MySqlDialect(_CountingUpsert):
    """MySQL and MariaDB: JSON and DATETIME(6) (UTC) columns; INSERT ... ON DUPLICATE KEY UPDATE."""

    name = "mysql"
    per_update = 2  # MySQL counts an updated row twice

    @staticmethod
    def _upsert(table: sa.Table) -> Any:
        insert = mysql.insert(table)
        return insert.on_duplicate_key_update({name: insert.inserted[name] for name in VALUE_COLUMNS})

    timestamp = staticmethod(_naive_utc)

    def creation_lock(self, connection: Connection) -> AbstractContextManager[None]:
        return _mysql_lock(connection, f"slack_audit:{self.name_of_table}")


class CommonSqlWriter:
    """Another database: the upsert its Airflow provider's common-sql dialect generates (e.g. MERGE).

    The statement is ``hook.dialect.generate_replace_sql``, what ``DbApiHook.insert_rows(replace=True)``
    runs, but executed on the operator's cursor so the whole window stays one transaction. The table
    must exist (create it with your database's types); it is checked through the hook's inspector.
    """

    name = "common-sql"

    def __init__(self, table: TableName, hook: Any) -> None:
        self.name_of_table = table
        self.hook = hook
        dialect = hook.dialect
        if _generic_replace(dialect):
            raise UnsupportedDatabaseError(
                f"no upsert is known for {hook.dialect_name!r} connections: common-sql's generic dialect "
                "would REPLACE (delete and insert) rows; load into PostgreSQL, SQLite or MySQL/MariaDB, "
                "or install an Airflow provider whose common-sql dialect generates an upsert (e.g. MSSQL's "
                "MERGE)"
            )
        self.statement: str = dialect.generate_replace_sql(
            table.qualified, [hook.placeholder] * len(COLUMN_NAMES), list(COLUMN_NAMES), replace_index=["id"]
        )

    timestamp = staticmethod(_naive_utc)

    def check_table(self) -> None:
        columns = self.hook.dialect.get_column_names(self.name_of_table.qualified) or []
        missing = [name for name in COLUMN_NAMES if name not in {str(c).lower() for c in columns}]
        if missing:
            raise SchemaMismatchError(
                f"table {self.name_of_table} lacks the columns {', '.join(missing)}; create it with every "
                "column the docs' SQL warehouse page lists and a primary key on id"
            )

    def write_batch(self, cursor: Any, rows: Sequence[Row]) -> BatchCounts:
        cursor.executemany(self.statement, rows)
        # A MERGE's row count does not tell inserted from updated rows: every row counts as updated.
        return BatchCounts(updated=len(rows))


def _generic_replace(dialect: Any) -> bool:
    """Whether ``dialect`` only has common-sql's generic ``REPLACE INTO`` (no provider's upsert)."""
    generate = getattr(type(dialect), "generate_replace_sql", None)
    return generate is None or getattr(generate, "__module__", "").startswith("airflow.providers.common.sql.")


def dialect_for(dialect_name: str, table: TableName) -> WarehouseDialect:
    """The writer for a SQLAlchemy dialect name (``postgresql``, ``sqlite``, ``mysql``) or conn type."""
    if dialect_name in ("postgresql", "postgres"):
        return PostgresDialect(table)
    if dialect_name == "sqlite":
        return SqliteDialect(table)
    if dialect_name in ("mysql", "mariadb"):
        return MySqlDialect(table)
    raise UnsupportedDatabaseError(f"no SQLAlchemy writer for {dialect_name!r}")


__all__ = ["CommonSqlWriter", "MySqlDialect", "PostgresDialect", "SqliteDialect", "dialect_for"]
