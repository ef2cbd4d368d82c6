"""Load one landed window of Slack audit events into a SQL table, idempotently.

PostgreSQL, SQLite and MySQL/MariaDB get native types and SQLAlchemy's upserts; other databases
their Airflow provider's common-sql upsert (:mod:`._dialects`). Errors a retry cannot fix raise
``AirflowFailException``; only connection, lock and timeout errors propagate, for Airflow to retry
(:mod:`._errors`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from airflow_provider_slack_audit.ingest.landing import WindowManifest
from airflow_provider_slack_audit.transfers._dialects import CommonSqlWriter, dialect_for
from airflow_provider_slack_audit.transfers._errors import (
    InvalidTableNameError,
    SchemaMismatchError,
    UnsupportedDatabaseError,
    missing_provider_hint,
)
from airflow_provider_slack_audit.transfers._schema import Row, RowBuilder
from airflow_provider_slack_audit.transfers._table import BatchCounts, TableName, WarehouseDialect, engine_on
from airflow_provider_slack_audit.transfers._window import (
    LoadSummary,
    landed_rows,
    load_errors_classified,
    load_summary,
    manifest_location,
    read_checked_manifest,
)
from airflow_provider_slack_audit.version_compat import (
    AirflowFailException,
    BaseHook,
    BaseOperator,
    DbApiHook,
)

if TYPE_CHECKING:
    from airflow_provider_slack_audit.version_compat import Context

__all__ = ["SlackAuditLogsToSqlOperator", "manifest_location"]

# Rows in a load's first batch (at most batch_size): the database waits for less before it starts.
_FIRST_BATCH_ROWS = 1000


class SlackAuditLogsToSqlOperator(BaseOperator):
    """
    Load exactly one landed window of Slack audit events into a SQL table, idempotently.

    The load upserts by entry ``id`` in one transaction: loading a window twice leaves the same rows
    (the second load changes nothing), and a failure part-way (a bad data file, a lost connection)
    rolls the table back to what it was. Before a row is written the manifest must cover its window
    exactly once with totals that add up; every data file is then checked against the SHA-256, size
    and line count its manifest records while it is read, because loaded audit data is evidence: a
    mismatch fails the task (no retry) and names the file.

    The table is created when missing (concurrent first loads included), with indexes on
    ``date_create`` and ``action``, and gets the columns newer releases added; it is never dropped or
    truncated. Rows stream in batches of ``batch_size``, so memory stays flat whatever the window's
    size. The docs' SQL page lists each database's statements.

    :param source: the window to load (templated): the landing operator's output
        (``source=land.output``), a dict with a ``"manifest"`` key (an Asset event's ``extra``), or the
        manifest's URL/path.
    :param conn_id: an Airflow connection whose hook is a common-sql ``DbApiHook``: postgres, sqlite,
        mysql (install the extra of the same name), or another database whose provider has an upsert.
    :param table: the table to load into (templated); a plain identifier (reserved words are quoted).
    :param schema: the table's schema (templated; an attached database name on SQLite).
    :param source_conn_id: the connection for the object store holding the landing, when the
        manifest is given as a URL string and the store needs credentials.
    :param batch_size: rows per insert batch; larger batches are faster and use more memory.
    :param create_table: create the table and its indexes when missing. Turn off to load into a
        table you created yourself (same column names, your types, a primary key on ``id``).

    Returns a :class:`~airflow_provider_slack_audit.transfers.LoadSummary`. Through a common-sql
    dialect's upsert (MERGE) every row counts as updated, because its row count cannot tell.
    """

    template_fields: Sequence[str] = ("source", "table", "schema")
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        source: Any,
        conn_id: str,
        table: str = "slack_audit_logs",
        schema: str | None = None,
        source_conn_id: str | None = None,
        batch_size: int = 5000,
        create_table: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer such as 5000, got {batch_size!r}")
        self.source = source
        self.conn_id = conn_id
        self.table = table
        self.schema = schema
        self.source_conn_id = source_conn_id
        self.batch_size = batch_size
        self.create_table = create_table

    def execute(self, context: Context) -> LoadSummary:
        try:
            table = TableName(self.table, self.schema or None)
        except InvalidTableNameError as error:
            raise AirflowFailException(str(error)) from error
        manifest = read_checked_manifest(self.source, self.source_conn_id)
        hook = self.get_db_hook()
        started = time.monotonic()
        with load_errors_classified(
            f"loading window {manifest.window.key} into {table}",
            permanent=(SchemaMismatchError, UnsupportedDatabaseError),
        ):
            counts, database = self._load(hook, table, manifest)
        return load_summary(self.log, f"{table} ({database})", table.qualified, manifest, counts, started)

    def get_db_hook(self) -> DbApiHook:
        """The warehouse connection's hook; it must speak DB-API through common-sql."""
        connection = BaseHook.get_connection(self.conn_id)
        try:
            hook = connection.get_hook()  # type: ignore[no-untyped-call]
        except Exception as error:  # Airflow: 'Unknown hook type "sqlite"', or the driver is missing
            raise AirflowFailException(
                f"connection {self.conn_id!r} is of type {connection.conn_type!r}, but Airflow has no "
                f"working hook for it ({type(error).__name__}: {error}); install its provider: "
                f"{missing_provider_hint(str(connection.conn_type))}"
            ) from error
        if not isinstance(hook, DbApiHook):
            raise AirflowFailException(
                f"connection {self.conn_id!r} gives a {type(hook).__name__}, which is not a common-sql "
                "DbApiHook; use a SQL database connection (postgres, sqlite, mysql, ...)"
            )
        return hook

    def _load(self, hook: DbApiHook, table: TableName, manifest: WindowManifest) -> tuple[BatchCounts, str]:
        """Upsert every landed entry of the window in ONE transaction; roll back on any failure."""
        conn = hook.get_conn()
        engine = engine_on(conn)
        try:
            if engine is None:
                return self._load_through_common_sql(conn, hook, table, manifest), CommonSqlWriter.name
            dialect = dialect_for(engine.dialect.name, table)
            with engine.connect() as connection:
                if self.create_table:
                    dialect.ensure_table(connection)
                dialect.check_table(connection)
                connection.rollback()  # end the inspector's reads; the load opens its own transaction
                dialect.start_load(connection)
                counts = self._write(connection, dialect, manifest)
                connection.commit()
            return counts, dialect.name
        finally:
            if engine is not None:
                engine.dispose()
            with suppress(Exception):
                conn.close()

    def _write(
        self, target: Any, dialect: WarehouseDialect | CommonSqlWriter, manifest: WindowManifest
    ) -> BatchCounts:
        builder = RowBuilder(dialect.timestamp, escape_nul=getattr(dialect, "escape_nul", False))
        counts = BatchCounts()
        batches = self._batches(landed_rows(manifest, builder))
        if not getattr(dialect, "writes_in_background", False):
            for batch in batches:
                counts += dialect.write_batch(target, batch)
            return counts
        # The database works on one batch while this thread reads and builds the next: the load
        # takes about the longer of the two, not their sum, with two batches in memory at most.
        # Leaving the block (a failed batch, a corrupt file) waits for the batch being written,
        # so the transaction is rolled back only once the connection is idle.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="slack-audit-load") as writer:
            pending: Future[BatchCounts] | None = None
            for batch in batches:
                if pending is not None:
                    counts += pending.result()
                pending = writer.submit(dialect.write_batch, target, batch)
                del batch  # the writer holds it; the next batch is built meanwhile
            if pending is not None:
                counts += pending.result()
        return counts

    def _load_through_common_sql(
        self, conn: Any, hook: DbApiHook, table: TableName, manifest: WindowManifest
    ) -> BatchCounts:
        """A database SQLAlchemy is not wired for here: its provider's common-sql upsert, one transaction."""
        writer = CommonSqlWriter(table, hook)
        writer.check_table()
        if hook.supports_autocommit:
            hook.set_autocommit(conn, False)
        cursor = conn.cursor()
        try:
            counts = self._write(cursor, writer, manifest)
            conn.commit()
        except BaseException:
            with suppress(Exception):
                conn.rollback()
            raise
        finally:
            cursor.close()
        return counts

    def _batches(self, rows: Iterator[Row]) -> Iterator[list[Row]]:
        """Rows in batches of at most ``batch_size`` distinct ids, in landed order.

        A batch ends early when an id repeats (the landing dedups per interval, so only a window
        whose intervals share an entry can hit this): each batch is one upsert statement, which
        PostgreSQL refuses to apply twice to one row, and splitting keeps "the later copy wins".
        """
        batch: dict[str, Row] = {}
        size = min(self.batch_size, _FIRST_BATCH_ROWS)
        for row in rows:
            if row[0] in batch or len(batch) >= size:
                yield list(batch.values())
                batch, size = {}, self.batch_size
            batch[row[0]] = row
        if batch:
            yield list(batch.values())
