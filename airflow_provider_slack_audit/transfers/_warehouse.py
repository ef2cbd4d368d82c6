"""What every SQLAlchemy warehouse does: create the audit table, check its shape, count and upsert.

Each database's subclass (:mod:`._dialects`, :mod:`._postgres`) only says how it binds timestamps,
serializes table creation and writes a batch. Counting, except on PostgreSQL (whose upsert counts
itself): the batch's ids already in the table (``existing``) are counted before writing, and the
upsert's row count then tells inserted, updated (content changed) and unchanged rows apart.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from typing import Any, ClassVar, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from airflow_provider_slack_audit.transfers._errors import SchemaMismatchError
from airflow_provider_slack_audit.transfers._schema import (
    ADDED_COLUMNS,
    COLUMN_NAMES,
    COLUMNS,
    ColumnKind,
    Row,
)
from airflow_provider_slack_audit.transfers._table import BatchCounts, TableName, audit_table

log = logging.getLogger(__name__)

# How many ids one "id IN (...)" lists: below SQLite's historical 999-parameter limit.
_IDS_PER_QUERY: Final = 500
VALUE_COLUMNS: Final = tuple(name for name in COLUMN_NAMES if name != "id")
EPOCH: Final = datetime(1970, 1, 1)
_MICROS: Final = 1_000_000


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
