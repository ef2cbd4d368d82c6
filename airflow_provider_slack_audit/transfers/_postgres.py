"""PostgreSQL: COPY straight into the table while it holds none of the window, else COPY into a
staging table and one upsert from it that counts what it did.

COPY is the fastest way in (the performance docs' "Warehouse load" has the figures); the upsert's
``WHERE <row differs>`` leaves identical rows untouched (no dead tuples) on a reload. A first load
inserts every row, so the staging round trip is skipped until a batch meets an id the table holds.
The server's share (parsing JSONB, inserting into the table and its indexes) is most of a load's
time, so batches are written from a worker thread while the operator builds the next one.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from airflow_provider_slack_audit.transfers._errors import sqlstate
from airflow_provider_slack_audit.transfers._schema import COLUMN_NAMES, VALUE_COLUMNS, Row
from airflow_provider_slack_audit.transfers._table import (
    BatchCounts,
    TableName,
    WarehouseDialect,
    differs,
    iso_utc,
)

_pg_timestamp = iso_utc("+00:00")


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
                set_={name: upsert.excluded[name] for name in VALUE_COLUMNS},
                where=differs(self.table, upsert.excluded),
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
            if sqlstate(error) == _UNIQUE_VIOLATION:
                return False
            raise
        savepoint.commit()
        return True

    def _copy(self, connection: Connection, target: str, rows: Sequence[Row]) -> None:
        statement = f"COPY {target} ({', '.join(COLUMN_NAMES)}) FROM STDIN"
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            if hasattr(cursor, "copy"):  # psycopg 3 escapes the rows itself
                with cursor.copy(statement) as copy:
                    for row in rows:
                        copy.write_row(row)
            else:  # psycopg2
                cursor.copy_expert(statement, io.BytesIO(_copy_text(rows)))
        finally:
            cursor.close()


_UNIQUE_VIOLATION: Final = "23505"


def _copy_escaped(value: str) -> str:
    """A value in COPY's text format, which reserves backslash, tab, newline and carriage return."""
    # Four str.replace scans rather than str.translate with a mapping: measured quicker (see the
    # performance docs, "Warehouse load").
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _copy_text(rows: Sequence[Row]) -> bytes:
    """Rows in PostgreSQL's COPY text format: tab-separated, ``\\N`` for NULL; values are str or None."""
    lines = ["\t".join(["\\N" if value is None else _copy_escaped(value) for value in row]) for row in rows]
    lines.append("")
    return "\n".join(lines).encode()
