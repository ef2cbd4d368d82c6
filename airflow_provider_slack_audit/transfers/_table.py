"""The audit table: its validated name, its definition per database, and what every writer does with it.

The table is a SQLAlchemy ``Table``, so the DDL and the quoting of names (reserved words such as
``order`` included) are SQLAlchemy's, compiled for the connection's database. The operator's DB-API
connection (from the Airflow hook) is wrapped in a one-connection SQLAlchemy engine, so the load runs
on exactly the connection Airflow configured, in one transaction.

Each database's writer (:mod:`._dialects`, :mod:`._postgres`) subclasses :class:`WarehouseDialect`
and only says how it binds timestamps, serializes table creation and writes a batch.
"""

from __future__ import annotations

import logging
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Final

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.pool import StaticPool

from airflow_provider_slack_audit.transfers._errors import InvalidTableNameError, SchemaMismatchError
from airflow_provider_slack_audit.transfers._schema import (
    ADDED_COLUMNS,
    COLUMN_NAMES,
    COLUMNS,
    INDEXED_COLUMNS,
    JSON_KINDS,
    REQUIRED_COLUMNS,
    VALUE_COLUMNS,
    ColumnKind,
    Row,
)

# Plain identifiers only: table/schema are templated user input. SQLAlchemy quotes what needs it
# (reserved words, capitals); anything else (quotes, semicolons, spaces) is refused up front.
_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# How many ids one "id IN (...)" lists: below SQLite's historical 999-parameter limit.
_IDS_PER_QUERY: Final = 500
EPOCH: Final = datetime(1970, 1, 1)
_MICROS: Final = 1_000_000

log = logging.getLogger(__name__)


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


class WarehouseDialect(ABC):
    """Creates the audit table, checks its shape and upserts batches into it."""

    #: The name logs and the operator's result use for this database.
    name: ClassVar[str]
    #: Whether U+0000 must be escaped (PostgreSQL text and JSONB cannot hold it).
    escape_nul: ClassVar[bool] = False
    #: Whether batches may be written from a worker thread while the next one is built (the
    #: driver's connections must allow it: sqlite3's refuse other threads by default).
    writes_in_background: ClassVar[bool] = False

    def __init__(self, table: TableName) -> None:
        self.name_of_table = table
        self.table = audit_table(table)

    @abstractmethod
    def timestamp(self, micros: int) -> Any:
        """The value bound for a timestamp column (``micros`` is Unix microseconds, UTC)."""

    def ensure_table(self, connection: Connection) -> None:
        """Create the table and its indexes when missing, add columns newer releases added; commit.

        Concurrent first loads race to create the table: each dialect serializes creation with a
        lock (:meth:`creation_lock`), so the losers find the table and create nothing.
        """
        with self.creation_lock(connection):
            self.table.metadata.create_all(connection, checkfirst=True)
            inspector = sa.inspect(connection)
            present = {column["name"] for column in inspector.get_columns(self.table.name, self.table.schema)}
            for name in ADDED_COLUMNS:
                if name not in present:
                    self._add_column(connection, self.table.c[name])
        connection.commit()

    def creation_lock(self, connection: Connection) -> AbstractContextManager[None]:
        """A context manager serializing table creation across sessions; none by default."""
        return nullcontext()

    def _add_column(self, connection: Connection, column: sa.Column[Any]) -> None:
        # SQLAlchemy Core has no ALTER TABLE construct (Alembic does); the parts are compiled by it.
        preparer = connection.dialect.identifier_preparer
        statement = (
            f"ALTER TABLE {preparer.format_table(self.table)} ADD COLUMN {preparer.format_column(column)} "
            f"{column.type.compile(dialect=connection.dialect)}"
        )
        log.info("Adding column %s to %s (added in a newer release)", column.name, self.name_of_table)
        connection.exec_driver_sql(statement)

    def check_table(self, connection: Connection) -> None:
        """Raise :class:`SchemaMismatchError` unless the table has every column and a key on ``id``."""
        inspector = sa.inspect(connection)
        table, schema = self.table.name, self.table.schema
        if not inspector.has_table(table, schema=schema):
            raise SchemaMismatchError(
                f"table {self.name_of_table} does not exist; create it or pass create_table=True"
            )
        present = {column["name"].lower() for column in inspector.get_columns(table, schema=schema)}
        missing = [name for name in COLUMN_NAMES if name not in present]
        if missing:
            raise SchemaMismatchError(
                f"table {self.name_of_table} lacks the columns {', '.join(missing)}; add them (the docs' "
                "SQL warehouse page lists their types), or load into a new table"
            )
        keys: list[Sequence[Any]] = [
            inspector.get_pk_constraint(table, schema=schema).get("constrained_columns") or []
        ]
        keys += [unique["column_names"] for unique in inspector.get_unique_constraints(table, schema=schema)]
        indexes = inspector.get_indexes(table, schema=schema)
        keys += [index["column_names"] for index in indexes if index["unique"]]
        if not any([str(name).lower() for name in key] == ["id"] for key in keys):
            raise SchemaMismatchError(
                f"table {self.name_of_table} has no primary key (or unique constraint) on id alone, "
                f"which the upsert needs; add one: ALTER TABLE {self.name_of_table} ADD PRIMARY KEY (id)"
            )

    def start_load(self, connection: Connection) -> None:  # noqa: B027 (optional hook, empty by default)
        """Open the load's transaction and its helpers (e.g. a staging table)."""

    @abstractmethod
    def write_batch(self, connection: Connection, rows: Sequence[Row]) -> BatchCounts:
        """Upsert ``rows`` (distinct ids) by id and count what happened."""

    def count_existing(self, connection: Connection, ids: Sequence[str]) -> int:
        """How many of ``ids`` the table holds already."""
        existing = 0
        for start in range(0, len(ids), _IDS_PER_QUERY):
            chunk = ids[start : start + _IDS_PER_QUERY]
            query = sa.select(sa.func.count()).select_from(self.table).where(self.table.c.id.in_(chunk))
            existing += int(connection.execute(query).scalar_one())
        return existing


def differs(table: sa.Table, incoming: Any) -> sa.ColumnElement[bool]:
    """NULL-safe "some value column differs": skips identical rows, so a reload writes nothing.

    ``raw`` is compared as text: PostgreSQL's JSON has no equality (a table from an older release
    holds JSONB there, whose text is canonical, so equal values give equal texts too).
    """
    return sa.or_(
        *(
            sa.cast(table.c[name], sa.Text).is_distinct_from(sa.cast(incoming[name], sa.Text))
            if COLUMNS[name] is ColumnKind.RAW
            else table.c[name].is_distinct_from(incoming[name])
            for name in VALUE_COLUMNS
        )
    )


def iso_utc(suffix: str) -> Callable[[int], str]:
    """A converter of Unix microseconds into ISO-8601 UTC text ending in ``suffix`` ("Z", "+00:00")."""
    # Landed entries come in time order, so most share their minute with the one before: format
    # each minute once (strftime is most of the cost), and keep the cache small.
    minutes: dict[int, str] = {}

    def iso(micros: int) -> str:
        seconds, fraction = divmod(micros, _MICROS)
        minute, second = divmod(seconds, 60)
        prefix = minutes.get(minute)
        if prefix is None:
            if len(minutes) >= 4096:
                minutes.clear()
            prefix = minutes[minute] = time.strftime("%Y-%m-%dT%H:%M:", time.gmtime(seconds - second))
        return f"{prefix}{second:02d}.{fraction:06d}{suffix}" if fraction else f"{prefix}{second:02d}{suffix}"

    return iso
