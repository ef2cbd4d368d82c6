"""How each database creates the audit table and upserts a batch of rows into it, through SQLAlchemy.

The table is a SQLAlchemy ``Table``, so the DDL, the quoting of names (reserved words such as
``order`` included) and the upserts are SQLAlchemy's constructs compiled for the connection's
database; nothing here formats values into SQL. The operator's DB-API connection (from the Airflow
hook) is wrapped in a one-connection SQLAlchemy engine, so the load runs on exactly the connection
Airflow configured, in one transaction:

- PostgreSQL: COPY the batch into a temp staging table, then one ``INSERT ... SELECT ... ON CONFLICT
  (id) DO UPDATE ... WHERE <row differs> RETURNING`` (``postgresql.insert().on_conflict_do_update``)
  whose returned rows count what it did. COPY is the fastest way in (twice as fast as a pipelined
  ``executemany``); the ``WHERE`` leaves identical rows untouched (no dead tuples) on a reload. Until
  a batch meets an id the table already holds, each batch is first COPYed straight into the table
  inside a savepoint (a first load inserts every row, and the staging round trip was a fifth of the
  server's work); the first unique violation rolls that savepoint back, and that batch and every
  later one take the upsert. The server's share (parsing JSONB, inserting into the table and its
  indexes) is most of a load's time, so batches are written from a worker thread while the operator
  builds the next one (``benchmarks/bench_load.py`` measures it).
- SQLite: ``sqlite.insert().on_conflict_do_update`` with the same ``WHERE``, by ``executemany``.
- MySQL/MariaDB: ``mysql.insert().on_duplicate_key_update``.
- Any other database whose Airflow provider ships a common-sql dialect with an upsert (MSSQL's
  ``MERGE``, ...): that dialect's ``generate_replace_sql``, the SQL ``DbApiHook.insert_rows(
  replace=True)`` runs. A database without one is refused before anything is written.

Counting: PostgreSQL's upsert returns the rows it inserted or updated, ``xmax = 0`` marking the
inserted ones. The others count the batch's ids already in the table (``existing``) before writing;
the upsert's row count then tells inserted, updated (content changed) and unchanged rows apart.
"""

from __future__ import annotations

import io
import logging
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Final

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.pool import StaticPool

from airflow_provider_slack_audit.transfers._errors import (
    InvalidTableNameError,
    SchemaMismatchError,
    UnsupportedDatabaseError,
)
from airflow_provider_slack_audit.transfers._schema import (
    ADDED_COLUMNS,
    COLUMN_NAMES,
    COLUMNS,
    INDEXED_COLUMNS,
    JSON_KINDS,
    REQUIRED_COLUMNS,
    ColumnKind,
    Row,
)

log = logging.getLogger(__name__)

# Plain identifiers only: table/schema are templated user input. SQLAlchemy quotes what needs it
# (reserved words, capitals); anything else (quotes, semicolons, spaces) is refused up front.
_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# How many ids one "id IN (...)" lists: below SQLite's historical 999-parameter limit.
_IDS_PER_QUERY: Final = 500
_VALUE_COLUMNS: Final = tuple(name for name in COLUMN_NAMES if name != "id")
_EPOCH: Final = datetime(1970, 1, 1)
_MICROS: Final = 1_000_000


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
    It also costs the server 0.5-1 s less CPU per 100,000 rows than JSONB (the backend's own CPU,
    measured COPYing the same rows into both).
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


def _chunks(values: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


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

    # -- creation -------------------------------------------------------------------------------
    def ensure_table(self, connection: Connection) -> None:
        """Create the table and its indexes when missing, add columns newer releases added; commit.

        Concurrent first loads race to create the table: each dialect serializes creation with a
        lock (:meth:`creation_lock`), so the losers find the table and create nothing.
        """
        with self.creation_lock(connection):
            self.table.metadata.create_all(connection, checkfirst=True)
            present = {column["name"] for column in sa.inspect(connection).get_columns(*self._where())}
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

    def _where(self) -> tuple[str, str | None]:
        return self.name_of_table.table, self.name_of_table.schema

    # -- shape ----------------------------------------------------------------------------------
    def check_table(self, connection: Connection) -> None:
        """Raise :class:`SchemaMismatchError` unless the table has every column and a key on ``id``."""
        inspector = sa.inspect(connection)
        table, schema = self._where()
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

    # -- loading --------------------------------------------------------------------------------
    def start_load(self, connection: Connection) -> None:  # noqa: B027 (optional hook, empty by default)
        """Open the load's transaction and its helpers (e.g. a staging table)."""

    @abstractmethod
    def write_batch(self, connection: Connection, rows: Sequence[Row]) -> BatchCounts:
        """Upsert ``rows`` (distinct ids) by id and count what happened."""

    def count_existing(self, connection: Connection, ids: Sequence[str]) -> int:
        """How many of ``ids`` the table holds already."""
        existing = 0
        for chunk in _chunks(ids, _IDS_PER_QUERY):
            query = sa.select(sa.func.count()).select_from(self.table).where(self.table.c.id.in_(chunk))
            existing += int(connection.execute(query).scalar_one())
        return existing


def _differs(table: sa.Table, incoming: Any) -> sa.ColumnElement[bool]:
    """NULL-safe "some value column differs": skips identical rows, so a reload writes nothing.

    ``raw`` is compared as text: PostgreSQL's JSON has no equality (a table from an older release
    holds JSONB there, whose text is canonical, so equal values give equal texts too).
    """
    return sa.or_(
        *(
            sa.cast(table.c[name], sa.Text).is_distinct_from(sa.cast(incoming[name], sa.Text))
            if COLUMNS[name] is ColumnKind.RAW
            else table.c[name].is_distinct_from(incoming[name])
            for name in _VALUE_COLUMNS
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


_pg_timestamp = iso_utc("+00:00")
_sqlite_timestamp = iso_utc("Z")


@contextmanager
def _postgres_lock(connection: Connection, key: str) -> Iterator[None]:
    """A transaction-scoped advisory lock keyed by the table's name, released by commit or rollback."""
    connection.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(key))))
    yield


class PostgresDialect(WarehouseDialect):
    """PostgreSQL: TIMESTAMPTZ, JSONB (raw: JSON) columns; COPY straight in, or into staging and upsert."""

    name = "postgresql"
    escape_nul = True
    writes_in_background = True  # psycopg connections are thread-safe
    _staging_name: Final = "slack_audit_load_staging"

    def __init__(self, table: TableName) -> None:
        super().__init__(table)
        self._table_sql = ""  # the table's quoted name, and whether to COPY straight into it: start_load
        self._copy_straight = False
        self.staging = sa.Table(
            self._staging_name, sa.MetaData(), *(sa.Column(name) for name in COLUMN_NAMES)
        )
        upsert = postgresql.insert(self.table).from_select(list(COLUMN_NAMES), sa.select(self.staging))
        # RETURNING lists the rows inserted or updated (not those the WHERE left alone); xmax is 0
        # exactly for a freshly inserted row version, so one statement also counts what it did.
        written = (
            upsert.on_conflict_do_update(
                index_elements=[self.table.c.id],
                set_={name: upsert.excluded[name] for name in _VALUE_COLUMNS},
                where=_differs(self.table, upsert.excluded),
            )
            .returning(sa.literal_column("xmax = 0", sa.Boolean).label("inserted"))
            .cte("written")
        )
        self.upsert = sa.select(sa.func.count(), sa.func.count().filter(written.c.inserted)).select_from(
            written
        )

    def timestamp(self, micros: int) -> str:
        return _pg_timestamp(micros)

    def creation_lock(self, connection: Connection) -> AbstractContextManager[None]:
        return _postgres_lock(connection, f"airflow-provider-slack-audit:{self.name_of_table}")

    def start_load(self, connection: Connection) -> None:
        # A temp table is private to this session and dropped with the transaction, rolled back or not.
        # (LIKE has no SQLAlchemy construct; the table name is quoted by SQLAlchemy's preparer.)
        table = connection.dialect.identifier_preparer.format_table(self.table)
        connection.exec_driver_sql(f"CREATE TEMP TABLE {self._staging_name} (LIKE {table}) ON COMMIT DROP")
        self._table_sql = table
        self._copy_straight = True  # until a batch meets an id the table holds

    def write_batch(self, connection: Connection, rows: Sequence[Row]) -> BatchCounts:
        if self._copy_straight:
            if self._copy_into_table(connection, rows):
                return BatchCounts(inserted=len(rows))
            # The table holds some of the window (a reload, an overlapping window, a concurrent
            # load): upsert this batch and the rest, rather than fail a COPY per batch.
            self._copy_straight = False
        self._copy(connection, self._staging_name, rows)
        written, inserted = connection.execute(self.upsert).one()
        connection.exec_driver_sql(f"TRUNCATE {self._staging_name}")
        return BatchCounts(inserted=inserted, updated=written - inserted, unchanged=len(rows) - written)

    def _copy_into_table(self, connection: Connection, rows: Sequence[Row]) -> bool:
        """COPY ``rows`` straight into the table in a savepoint: True when every row went in; False
        (and nothing written) when one of their ids was there already.

        A batch never repeats an id (the operator splits it), so a unique violation means the
        table held that id: committed before, or by a concurrent load, which the COPY waits for.
        """
        savepoint = connection.begin_nested()
        try:
            self._copy(connection, self._table_sql, rows)
        except Exception as error:
            savepoint.rollback()
            if _sqlstate(error) == _UNIQUE_VIOLATION:
                return False
            raise
        savepoint.commit()
        return True

    def _copy(self, connection: Connection, target: str, rows: Sequence[Row]) -> None:
        statement = f"COPY {target} ({', '.join(COLUMN_NAMES)}) FROM STDIN"
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            if hasattr(cursor, "copy"):  # psycopg 3 escapes rows in C: 25% faster than our text format
                with cursor.copy(statement) as copy:
                    for row in rows:
                        copy.write_row(row)
            else:  # psycopg2
                cursor.copy_expert(statement, io.BytesIO(_copy_text(rows)))
        finally:
            cursor.close()


_UNIQUE_VIOLATION: Final = "23505"


def _sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a psycopg 3 (``sqlstate``) or psycopg2 (``pgcode``) error, else ``None``."""
    return getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)


def _copy_escaped(value: str) -> str:
    """A value in COPY's text format, which reserves backslash, tab, newline and carriage return.

    Four C-level ``replace`` scans are 4x faster than ``str.translate`` with a mapping.
    """
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _copy_text(rows: Sequence[Row]) -> bytes:
    """Rows in PostgreSQL's COPY text format: tab-separated, ``\\N`` for NULL; values are str or None."""
    lines = ["\t".join(["\\N" if value is None else _copy_escaped(value) for value in row]) for row in rows]
    lines.append("")
    return "\n".join(lines).encode()


class SqliteDialect(WarehouseDialect):
    """SQLite: TEXT everywhere (timestamps as ISO-8601 UTC, which sorts in time order); upsert."""

    name = "sqlite"

    def __init__(self, table: TableName) -> None:
        super().__init__(table)
        upsert = sqlite.insert(self.table)
        self.upsert = upsert.on_conflict_do_update(
            index_elements=[self.table.c.id],
            set_={name: upsert.excluded[name] for name in _VALUE_COLUMNS},
            where=_differs(self.table, upsert.excluded),
        ).execution_options(preserve_rowcount=True)

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

    def write_batch(self, connection: Connection, rows: Sequence[Row]) -> BatchCounts:
        existing = self.count_existing(connection, [row[0] for row in rows])
        written = connection.execute(self.upsert, [dict(zip(COLUMN_NAMES, row, strict=True)) for row in rows])
        # sqlite3 sums executemany's changes: inserted rows plus rows the DO UPDATE rewrote.
        return BatchCounts.from_counts(len(rows), existing, written.rowcount)


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


class MySqlDialect(WarehouseDialect):
    """MySQL and MariaDB: JSON and DATETIME(6) (UTC) columns; INSERT ... ON DUPLICATE KEY UPDATE."""

    name = "mysql"

    def __init__(self, table: TableName) -> None:
        super().__init__(table)
        upsert = mysql.insert(self.table)
        self.upsert = upsert.on_duplicate_key_update(
            {name: upsert.inserted[name] for name in _VALUE_COLUMNS}
        ).execution_options(preserve_rowcount=True)

    def timestamp(self, micros: int) -> datetime:
        # Naive UTC: DATETIME has no zone and drivers bind it without shifting it.
        return _EPOCH + timedelta(microseconds=micros)

    def creation_lock(self, connection: Connection) -> AbstractContextManager[None]:
        return _mysql_lock(connection, f"slack_audit:{self.name_of_table}")

    def write_batch(self, connection: Connection, rows: Sequence[Row]) -> BatchCounts:
        existing = self.count_existing(connection, [row[0] for row in rows])
        written = connection.execute(self.upsert, [dict(zip(COLUMN_NAMES, row, strict=True)) for row in rows])
        # MySQL counts 1 per inserted row, 2 per updated row and 0 per row left as it was.
        inserted = len(rows) - existing
        updated = (written.rowcount - inserted) // 2
        return BatchCounts(inserted=inserted, updated=updated, unchanged=existing - updated)


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

    def timestamp(self, micros: int) -> datetime:
        return _EPOCH + timedelta(microseconds=micros)

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


__all__ = [
    "BatchCounts",
    "CommonSqlWriter",
    "MySqlDialect",
    "PostgresDialect",
    "SqliteDialect",
    "TableName",
    "WarehouseDialect",
    "audit_table",
    "dialect_for",
    "engine_on",
    "iso_utc",
]
