"""How each SQL dialect creates the audit table and upserts a batch of rows into it.

Every dialect writes inside the caller's transaction and reports, per batch, how many rows it
inserted, updated (an existing row whose content changed) and left unchanged, so the operator can
say what a load did and a reload can be seen to be a no-op:

- PostgreSQL: COPY the batch into a temp staging table, then one ``INSERT ... SELECT ... ON CONFLICT
  (id) DO UPDATE ... WHERE <row differs>``. COPY is the fastest way in: 100,000 rows took 4.1 s,
  against 7.5 s for psycopg 3's pipelined ``executemany`` and 20 s for psycopg2's ``execute_values``
  of the same upsert (PostgreSQL 15 on the same 2-core host). The ``WHERE`` leaves identical rows
  untouched (no dead tuples, no WAL) when a window is reloaded.
- SQLite: ``executemany`` of ``INSERT ... ON CONFLICT (id) DO UPDATE ... WHERE <row differs>``.
- Any other DB-API database: ANSI SQL only. ``DELETE`` the batch's ids, then ``INSERT`` the batch;
  the table's types are generic (TEXT for JSON, TIMESTAMP in UTC without a zone). A replaced row
  counts as updated even when its content did not change: ANSI SQL has no portable way to tell.

Counting: before writing, each dialect counts the batch's ids already in the table (``existing``).
The upsert's row count is ``written`` = inserted + updated, so inserted = batch - existing,
updated = written - inserted and unchanged = existing - updated.

Statements are assembled from the fixed column names and a :class:`TableName`, which only accepts
plain identifiers; values are always bound or streamed, never formatted into SQL (hence the
``noqa: S608`` markers).
"""

from __future__ import annotations

import io
import logging
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, ClassVar, Final

from airflow_provider_slack_audit.transfers._schema import (
    COLUMN_NAMES,
    COLUMNS,
    INDEXED_COLUMNS,
    REQUIRED_COLUMNS,
    ColumnKind,
    Row,
)

log = logging.getLogger(__name__)

# Unquoted identifiers only: table/schema are templated user input, and quoting would make names
# case-sensitive on PostgreSQL but not elsewhere. 63 is PostgreSQL's identifier limit.
_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# How many ids one "id IN (...)" lists: below SQLite's historical 999-parameter limit.
_IDS_PER_QUERY: Final = 500
_COLUMN_LIST: Final = ", ".join(COLUMN_NAMES)
_VALUE_COLUMNS: Final = tuple(name for name in COLUMN_NAMES if name != "id")


@dataclass(frozen=True)
class TableName:
    """A validated, unquoted table name with an optional schema (an attached database on SQLite)."""

    table: str
    schema: str | None = None

    def __post_init__(self) -> None:
        for what, name in (("table", self.table), ("schema", self.schema)):
            if name is not None and not _IDENTIFIER.fullmatch(name):
                raise ValueError(
                    f"{what} {name!r} is not a plain SQL identifier: use 1-63 letters, digits and "
                    "underscores, starting with a letter or underscore (names are not quoted)."
                )

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}" if self.schema else self.table

    def __str__(self) -> str:
        return self.qualified


@dataclass
class BatchCounts:
    """What writing rows did to the table; every row is counted exactly once."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0

    @classmethod
    def from_counts(cls, rows: int, existing: int, written: int) -> BatchCounts:
        """Counts from the batch size, its ids already stored, and rows the upsert inserted or updated."""
        inserted = rows - existing
        updated = written - inserted
        return cls(inserted=inserted, updated=updated, unchanged=existing - updated)

    def __iadd__(self, other: BatchCounts) -> BatchCounts:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        return self

    @property
    def rows(self) -> int:
        return self.inserted + self.updated + self.unchanged


def rollback(conn: Any) -> None:
    """Roll back, logging (not raising) a failure so the error that caused the rollback propagates.

    A rollback fails when the connection is already broken; closing it then discards the transaction.
    """
    try:
        conn.rollback()
    except Exception:
        log.warning("Rollback failed; the transaction is discarded when the connection closes", exc_info=True)


def _chunks(values: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


class WarehouseDialect(ABC):
    """Creates the audit table and upserts batches into it; statements run on the caller's cursor."""

    #: The name logs and the operator's result use for this dialect.
    name: ClassVar[str]
    #: SQL type per column kind.
    column_types: ClassVar[dict[ColumnKind, str]]

    def __init__(self, table: TableName) -> None:
        self.table = table

    @abstractmethod
    def timestamp(self, epoch: int) -> Any:
        """The value bound for ``date_create`` (``epoch`` is Unix seconds, UTC)."""

    def create_table_statements(self) -> list[str]:
        """DDL that creates the table and its indexes, each a no-op when they already exist."""
        columns = ",\n  ".join(
            f"{name} {self.column_types[kind]}"
            + (" PRIMARY KEY" if kind is ColumnKind.KEY else "")
            + (" NOT NULL" if name in REQUIRED_COLUMNS and kind is not ColumnKind.KEY else "")
            for name, kind in COLUMNS.items()
        )
        statements = [f"CREATE TABLE IF NOT EXISTS {self.table} (\n  {columns}\n)"]
        statements += [self.create_index_statement(column) for column in INDEXED_COLUMNS]
        return statements

    def create_index_statement(self, column: str) -> str:
        # Index names live in the table's schema on PostgreSQL, so they are never schema-qualified.
        return f"CREATE INDEX IF NOT EXISTS {self.table.table}_{column}_idx ON {self.table} ({column})"

    def ensure_table(self, conn: Any) -> None:
        """Create the table if it is missing, in its own committed transaction; never drops anything."""
        cursor = conn.cursor()
        try:
            for statement in self.create_table_statements():
                cursor.execute(statement)
            conn.commit()
        except BaseException:
            rollback(conn)
            raise
        finally:
            cursor.close()

    def start_load_statements(self) -> list[str]:
        """Statements that open the load's transaction and its helpers (e.g. a staging table)."""
        return []

    @abstractmethod
    def write_batch(self, cursor: Any, rows: Sequence[Row]) -> BatchCounts:
        """Upsert ``rows`` (distinct ids) by id and count what happened."""

    def count_existing(self, cursor: Any, ids: Sequence[str], placeholder: str) -> int:
        """How many of ``ids`` the table holds already."""
        existing = 0
        for chunk in _chunks(ids, _IDS_PER_QUERY):
            marks = ", ".join([placeholder] * len(chunk))
            cursor.execute(f"SELECT COUNT(*) FROM {self.table} WHERE id IN ({marks})", list(chunk))  # noqa: S608
            existing += int(cursor.fetchone()[0])
        return existing


def _upsert_clause(differs: str) -> str:
    """``ON CONFLICT`` that updates a stored row only when some column differs.

    Skipping identical rows makes a reload a true no-op and lets the row count tell updated rows
    from unchanged ones. ``differs`` is the dialect's NULL-safe inequality (``IS DISTINCT FROM``).
    """
    assignments = ", ".join(f"{name} = excluded.{name}" for name in _VALUE_COLUMNS)
    stored = ", ".join(f"stored.{name}" for name in _VALUE_COLUMNS)
    incoming = ", ".join(f"excluded.{name}" for name in _VALUE_COLUMNS)
    return f"ON CONFLICT (id) DO UPDATE SET {assignments} WHERE ({stored}) {differs} ({incoming})"


class PostgresDialect(WarehouseDialect):
    """PostgreSQL: TIMESTAMPTZ and JSONB columns; COPY into a staging table, then one upsert."""

    name = "postgresql"
    column_types: ClassVar[dict[ColumnKind, str]] = {
        ColumnKind.KEY: "TEXT",
        ColumnKind.TIMESTAMP: "TIMESTAMPTZ",
        ColumnKind.TEXT: "TEXT",
        ColumnKind.JSON: "JSONB",
    }
    _staging: Final = "slack_audit_load_staging"

    def timestamp(self, epoch: int) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(epoch))

    def start_load_statements(self) -> list[str]:
        # A temp table is private to this session and dropped with the transaction, rolled back or not.
        return [f"CREATE TEMP TABLE {self._staging} (LIKE {self.table}) ON COMMIT DROP"]

    def write_batch(self, cursor: Any, rows: Sequence[Row]) -> BatchCounts:
        self._copy_into_staging(cursor, rows)
        cursor.execute(f"SELECT COUNT(*) FROM {self._staging} JOIN {self.table} USING (id)")  # noqa: S608
        existing = int(cursor.fetchone()[0])
        cursor.execute(
            f"INSERT INTO {self.table} AS stored ({_COLUMN_LIST}) "  # noqa: S608
            f"SELECT {_COLUMN_LIST} FROM {self._staging} {_upsert_clause('IS DISTINCT FROM')}"
        )
        written = cursor.rowcount
        cursor.execute(f"TRUNCATE {self._staging}")
        return BatchCounts.from_counts(len(rows), existing, written)

    def _copy_into_staging(self, cursor: Any, rows: Sequence[Row]) -> None:
        statement = f"COPY {self._staging} ({_COLUMN_LIST}) FROM STDIN"
        if hasattr(cursor, "copy"):  # psycopg 3 escapes rows in C: 25% faster than our text format
            with cursor.copy(statement) as copy:
                for row in rows:
                    copy.write_row(row)
        elif hasattr(cursor, "copy_expert"):  # psycopg2
            cursor.copy_expert(statement, io.BytesIO(_copy_text(rows)))
        else:
            raise TypeError(
                f"the PostgreSQL driver's cursor ({type(cursor).__module__}.{type(cursor).__name__}) "
                "supports neither psycopg 3's copy() nor psycopg2's copy_expert(); use a psycopg connection."
            )


def _copy_escaped(value: str) -> str:
    """A value in COPY's text format, which reserves backslash, tab, newline and carriage return.

    Four C-level ``replace`` scans are 4x faster than ``str.translate`` with a mapping, and faster
    than escaping a whole batch joined with sentinels (measured on 50,000 typical rows: 0.42 s).
    """
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _copy_text(rows: Sequence[Row]) -> bytes:
    """Rows in PostgreSQL's COPY text format: tab-separated, ``\\N`` for NULL; values are str or None."""
    lines = ["\t".join(["\\N" if value is None else _copy_escaped(value) for value in row]) for row in rows]
    lines.append("")
    return "\n".join(lines).encode()


class SqliteDialect(WarehouseDialect):
    """SQLite: TEXT everywhere (date_create as ISO-8601 UTC, which sorts in time order); upsert."""

    name = "sqlite"
    column_types: ClassVar[dict[ColumnKind, str]] = {
        ColumnKind.KEY: "TEXT",
        ColumnKind.TIMESTAMP: "TEXT",
        ColumnKind.TEXT: "TEXT",
        ColumnKind.JSON: "TEXT",
    }

    def timestamp(self, epoch: int) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))

    def create_index_statement(self, column: str) -> str:
        # SQLite puts the schema (attached database) on the index name, not on the table.
        index = f"{self.table.table}_{column}_idx"
        if self.table.schema:
            index = f"{self.table.schema}.{index}"
        return f"CREATE INDEX IF NOT EXISTS {index} ON {self.table.table} ({column})"

    def start_load_statements(self) -> list[str]:
        # sqlite3 opens a transaction lazily, before the first INSERT: the id counts read before it
        # would be outside it. IMMEDIATE takes the write lock up front, so a concurrent writer waits
        # (up to the busy timeout) instead of failing halfway with "database is locked".
        return ["BEGIN IMMEDIATE"]

    def write_batch(self, cursor: Any, rows: Sequence[Row]) -> BatchCounts:
        existing = self.count_existing(cursor, [row[0] for row in rows], "?")
        marks = ", ".join(["?"] * len(COLUMN_NAMES))
        cursor.executemany(
            f"INSERT INTO {self.table} AS stored ({_COLUMN_LIST}) VALUES ({marks}) "  # noqa: S608
            f"{_upsert_clause('IS NOT')}",
            rows,
        )
        # sqlite3 sums executemany's changes: inserted rows plus rows the DO UPDATE rewrote.
        return BatchCounts.from_counts(len(rows), existing, cursor.rowcount)


class AnsiDialect(WarehouseDialect):
    """Any other DB-API database: portable types and DELETE + INSERT (no portable upsert exists).

    Types are the common denominator (TEXT for JSON and strings, TIMESTAMP holding UTC); create the
    table yourself with better ones and pass ``create_table=False`` if your database wants them.
    """

    name = "ansi"
    column_types: ClassVar[dict[ColumnKind, str]] = {
        ColumnKind.KEY: "VARCHAR(64)",
        ColumnKind.TIMESTAMP: "TIMESTAMP",
        ColumnKind.TEXT: "TEXT",
        ColumnKind.JSON: "TEXT",
    }

    def __init__(self, table: TableName, placeholder: str) -> None:
        super().__init__(table)
        self.placeholder = placeholder

    def timestamp(self, epoch: int) -> datetime:
        # Naive UTC: drivers bind it to TIMESTAMP without shifting it to the session's time zone.
        return datetime.fromtimestamp(epoch, tz=timezone.utc).replace(tzinfo=None)

    def ensure_table(self, conn: Any) -> None:
        # IF NOT EXISTS is not ANSI (and not in every database), so probe for the table first.
        cursor = conn.cursor()
        try:
            cursor.execute(f"SELECT 1 FROM {self.table} WHERE 1 = 0")  # noqa: S608
            cursor.fetchall()
            conn.commit()
            return
        except Exception:
            conn.rollback()  # the probe failed: the table is missing (or unreadable, which DDL will say)
        finally:
            cursor.close()
        super().ensure_table(conn)

    def create_table_statements(self) -> list[str]:
        return [statement.replace(" IF NOT EXISTS", "", 1) for statement in super().create_table_statements()]

    def write_batch(self, cursor: Any, rows: Sequence[Row]) -> BatchCounts:
        replaced = 0
        for chunk in _chunks([row[0] for row in rows], _IDS_PER_QUERY):
            marks = ", ".join([self.placeholder] * len(chunk))
            cursor.execute(f"DELETE FROM {self.table} WHERE id IN ({marks})", list(chunk))  # noqa: S608
            replaced += cursor.rowcount
        marks = ", ".join([self.placeholder] * len(COLUMN_NAMES))
        cursor.executemany(f"INSERT INTO {self.table} ({_COLUMN_LIST}) VALUES ({marks})", rows)  # noqa: S608
        return BatchCounts(inserted=len(rows) - replaced, updated=replaced)


def dialect_for(dialect_name: str, table: TableName, placeholder: str) -> WarehouseDialect:
    """The writer for a hook's dialect name (SQLAlchemy's, e.g. ``postgresql``) or connection type."""
    if dialect_name in ("postgresql", "postgres"):
        return PostgresDialect(table)
    if dialect_name == "sqlite":
        return SqliteDialect(table)
    return AnsiDialect(table, placeholder)


__all__ = [
    "AnsiDialect",
    "BatchCounts",
    "PostgresDialect",
    "SqliteDialect",
    "TableName",
    "WarehouseDialect",
    "dialect_for",
    "rollback",
]
