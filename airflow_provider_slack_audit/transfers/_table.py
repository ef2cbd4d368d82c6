"""The audit table: its validated name, its SQLAlchemy definition per database, and what a write did.

The table is a SQLAlchemy ``Table``, so the DDL and the quoting of names (reserved words such as
``order`` included) are SQLAlchemy's, compiled for the connection's database. The operator's DB-API
connection (from the Airflow hook) is wrapped in a one-connection SQLAlchemy engine, so the load runs
on exactly the connection Airflow configured, in one transaction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.pool import StaticPool

from airflow_provider_slack_audit.transfers._errors import InvalidTableNameError
from airflow_provider_slack_audit.transfers._schema import (
    COLUMNS,
    INDEXED_COLUMNS,
    JSON_KINDS,
    REQUIRED_COLUMNS,
    ColumnKind,
)

# Plain identifiers only: table/schema are templated user input. SQLAlchemy quotes what needs it
# (reserved words, capitals); anything else (quotes, semicolons, spaces) is refused up front.
_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


@dataclass(frozen=True)
class TableName:
    """A validated table name with an optional schema (an attached database on SQLite)."""

    table: str
    schema: str | None = None

    def __post_init__(self) -> None:
        for what, name in (("table", self.table), ("schema", self.schema)):
            if name is not None and not _IDENTIFIER.fullmatch(name):
                raise InvalidTableNameError(
                    f"{what} {name!r} is not a plain SQL identifier: use 1-63 letters, digits and "
                    "underscores, starting with a letter or underscore (reserved words such as 'order' "
                    "are quoted for you)."
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


if TYPE_CHECKING:
    _TextDecorator = sa.types.TypeDecorator[str]
else:  # SQLAlchemy 1.4 (Airflow 2) has no generic TypeDecorator
    _TextDecorator = sa.types.TypeDecorator


class _JsonText(_TextDecorator):
    """JSON held as text by the loader: JSONB on PostgreSQL, JSON on MySQL/MariaDB, TEXT elsewhere.

    ``exact``: PostgreSQL's JSON instead, which keeps the text as it came (checked to be JSON) where
    JSONB normalizes it (key order, whitespace, repeated keys); for ``raw``, the entry as landed.
    It also costs the server less CPU than JSONB (see the performance docs, "Warehouse load").
    Values are bound as the JSON text they already are (SQLAlchemy's JSON types would encode the
    text a second time).
    """

    impl = sa.Text
    cache_ok = True

    def __init__(self, exact: bool = False) -> None:
        super().__init__()
        self.exact = exact

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.JSON() if self.exact else postgresql.JSONB())
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.JSON())
        return dialect.type_descriptor(sa.Text())

    def bind_processor(self, dialect: Dialect) -> None:
        return None

    def result_processor(self, dialect: Dialect, coltype: object) -> None:
        return None


def _column_type(name: str, kind: ColumnKind) -> sa.types.TypeEngine[Any]:
    """The column's type per database (SQLAlchemy variants)."""
    if kind in JSON_KINDS:
        return _JsonText(exact=kind is ColumnKind.RAW)
    if kind is ColumnKind.TIMESTAMP:
        # SQLite keeps ISO-8601 UTC text, which sorts in time order; MySQL a UTC DATETIME(6).
        return (
            sa.Text()
            .with_variant(postgresql.TIMESTAMP(timezone=True), "postgresql")
            .with_variant(mysql.DATETIME(fsp=6), "mysql")
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
        )
    if kind is ColumnKind.KEY or name in INDEXED_COLUMNS:
        # MySQL can neither key nor index a TEXT column; ids and actions are short.
        return sa.Text().with_variant(mysql.VARCHAR(255), "mysql").with_variant(mysql.VARCHAR(255), "mariadb")
    return sa.Text()


def audit_table(name: TableName, metadata: sa.MetaData | None = None) -> sa.Table:
    """The audit table as SQLAlchemy sees it: columns, primary key and the two indexes."""
    metadata = metadata if metadata is not None else sa.MetaData()
    columns = [
        sa.Column(
            column,
            _column_type(column, kind),
            primary_key=kind is ColumnKind.KEY,
            nullable=column not in REQUIRED_COLUMNS,
        )
        for column, kind in COLUMNS.items()
    ]
    # MySQL/MariaDB: every character (emoji included) and ids compared byte for byte, whatever the
    # server's defaults (MariaDB's is latin1).
    table = sa.Table(
        name.table,
        metadata,
        *columns,
        schema=name.schema,
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
    )
    for column in INDEXED_COLUMNS:
        sa.Index(f"{name.table}_{column}_idx", table.c[column])
    return table


#: The SQLAlchemy URL for the DB-API module a hook's connection comes from.
_DRIVER_URLS: Final = {
    "psycopg": "postgresql+psycopg://",
    "psycopg2": "postgresql+psycopg2://",
    "sqlite3": "sqlite+pysqlite://",
    "MySQLdb": "mysql+mysqldb://",
    "pymysql": "mysql+pymysql://",
    "mysql": "mysql+mysqlconnector://",
}


def engine_on(conn: Any) -> sa.Engine | None:
    """A SQLAlchemy engine whose one connection is ``conn`` (the hook's), or None for other drivers."""
    url = _DRIVER_URLS.get(type(conn).__module__.split(".")[0])
    if url is None:
        return None
    # future=True: SQLAlchemy 2.0 behaviour on 1.4 too (Airflow 2), a no-op on 2.x.
    return sa.create_engine(
        url, creator=lambda: conn, poolclass=StaticPool, pool_reset_on_return=None, future=True
    )
