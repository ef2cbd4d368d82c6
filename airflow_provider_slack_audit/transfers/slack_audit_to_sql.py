"""Load one landed window of Slack audit events into a SQL table, idempotently.

The landing operator writes a window's events to object storage with a manifest listing its data
files; this operator reads exactly that window through the manifest and upserts it into a flat,
typed table (see :mod:`airflow_provider_slack_audit.transfers._schema` for the columns) through any
common-sql ``DbApiHook`` connection. PostgreSQL and SQLite get native types and a real upsert; other
databases get portable ANSI SQL (see :mod:`airflow_provider_slack_audit.transfers._dialects`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.sql.hooks.sql import DbApiHook

from airflow_provider_slack_audit.ingest.landing import WindowManifest, read_manifest
from airflow_provider_slack_audit.transfers._dialects import (
    BatchCounts,
    TableName,
    WarehouseDialect,
    dialect_for,
    rollback,
)
from airflow_provider_slack_audit.transfers._schema import InvalidEntryError, Row, RowBuilder
from airflow_provider_slack_audit.version_compat import (
    AirflowFailException,
    BaseHook,
    BaseOperator,
    ObjectStoragePath,
)

if TYPE_CHECKING:
    from airflow_provider_slack_audit.version_compat import Context

__all__ = ["SlackAuditLogsToSqlOperator", "manifest_location"]


def manifest_location(source: Any) -> str | ObjectStoragePath:
    """The manifest a ``source`` names: the landing operator's summary, a dict with it, or a path.

    The landing operator returns ``{"manifest": "<url>", "window": {...}, ...}``; its Asset events
    carry the same keys in their ``extra``, so either can be passed as-is.
    """
    if isinstance(source, Mapping):
        manifest = source.get("manifest")
        if not manifest:
            raise ValueError(
                f"source has no 'manifest' key (keys: {sorted(source)}); pass the landing operator's "
                "output (source=land.output) or the manifest's URL"
            )
        source = manifest
    if isinstance(source, ObjectStoragePath):
        return source
    if isinstance(source, str) and source.strip():
        return source.strip()
    raise TypeError(
        "source must be the landing operator's output (a dict with 'manifest'), an Asset event's extra, "
        f"or a manifest URL/path such as 'file:///data/slack_audit/_manifests/...manifest.json'; "
        f"got {type(source).__name__} {source!r}"
    )


class SlackAuditLogsToSqlOperator(BaseOperator):
    """
    Load exactly one landed window of Slack audit events into a SQL table, idempotently.

    The load upserts by entry ``id`` in one transaction: loading a window twice leaves the same rows
    (the second load changes nothing), and a failure part-way (a bad data file, a lost connection)
    rolls the table back to what it was. The table is created when missing, with indexes on
    ``date_create`` and ``action``; it is never dropped or truncated. Every data file is checked
    against the SHA-256, size and line count its manifest records while it is read, because loaded
    audit data is evidence: a mismatch fails the task (no retry) and names the file.

    Memory stays flat whatever the window's size: lines stream from storage and are written in
    batches of ``batch_size`` rows (PostgreSQL: COPY into a staging table, then one upsert per batch;
    SQLite: ``executemany`` of an upsert; other databases: DELETE + INSERT per batch, ANSI types).

    :param source: the window to load (templated): the landing operator's output
        (``source=land.output``), a dict with a ``"manifest"`` key (an Asset event's ``extra``), or the
        manifest's URL/path.
    :param conn_id: an Airflow connection whose hook is a common-sql ``DbApiHook`` (postgres, sqlite,
        ...). PostgreSQL and SQLite are first-class; other databases get portable ANSI SQL.
    :param table: the table to load into (templated); a plain identifier, not quoted.
    :param schema: the table's schema (templated; an attached database name on SQLite).
    :param source_conn_id: the connection for the object store holding the landing, when the
        manifest is given as a URL string and the store needs credentials.
    :param batch_size: rows per insert batch; larger batches are faster and use more memory.
    :param create_table: create the table and its indexes when missing. Turn off to load into a
        table you created yourself (same column names, your types).

    Returns ``{"rows", "inserted", "updated", "unchanged", "table", "window", "manifest"}``: ``rows``
    is the number of entries landed in the window; every entry is counted once as inserted (new id),
    updated (an existing row whose content changed) or unchanged. On databases other than PostgreSQL
    and SQLite a replaced row always counts as updated, because ANSI SQL cannot tell.
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

    def execute(self, context: Context) -> dict[str, Any]:
        table = TableName(self.table, self.schema or None)
        manifest = read_manifest(manifest_location(self.source), conn_id=self.source_conn_id)
        hook = self.get_db_hook()
        dialect = dialect_for(_dialect_name(hook), table, hook.placeholder)
        started = time.monotonic()
        conn = hook.get_conn()
        try:
            if self.create_table:
                dialect.ensure_table(conn)
            counts = self._load_window(conn, hook, dialect, manifest)
        finally:
            conn.close()
        self.log.info(
            "Loaded window %s into %s (%s): %d rows from %d files, %d inserted, %d updated, %d unchanged, "
            "%.1f s",
            manifest.window.key,
            table,
            dialect.name,
            counts.rows,
            len(manifest.intervals),
            counts.inserted,
            counts.updated,
            counts.unchanged,
            time.monotonic() - started,
        )
        return {
            "rows": counts.rows,
            "inserted": counts.inserted,
            "updated": counts.updated,
            "unchanged": counts.unchanged,
            "table": table.qualified,
            "window": manifest.window.to_json(),
            "manifest": str(manifest.path),
        }

    def get_db_hook(self) -> DbApiHook:
        """The warehouse connection's hook; it must speak DB-API through common-sql."""
        hook = BaseHook.get_connection(self.conn_id).get_hook()  # type: ignore[no-untyped-call]
        if not isinstance(hook, DbApiHook):
            raise TypeError(
                f"connection {self.conn_id!r} gives a {type(hook).__name__}, which is not a common-sql "
                "DbApiHook; use a SQL database connection (postgres, sqlite, mysql, ...)"
            )
        return hook

    def _load_window(
        self, conn: Any, hook: DbApiHook, dialect: WarehouseDialect, manifest: WindowManifest
    ) -> BatchCounts:
        """Upsert every landed entry of the window in ONE transaction; roll back on any failure."""
        if hook.supports_autocommit:
            hook.set_autocommit(conn, False)
        builder = RowBuilder(dialect.timestamp)
        counts = BatchCounts()
        cursor = conn.cursor()
        try:
            for statement in dialect.start_load_statements():
                cursor.execute(statement)
            for batch in self._batches(_landed_rows(manifest, builder)):
                counts += dialect.write_batch(cursor, batch)
            conn.commit()
        except BaseException:
            rollback(conn)
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
        for row in rows:
            if row[0] in batch or len(batch) >= self.batch_size:
                yield list(batch.values())
                batch = {}
            batch[row[0]] = row
        if batch:
            yield list(batch.values())


def _landed_rows(manifest: WindowManifest, builder: RowBuilder) -> Iterator[Row]:
    """Every landed entry of the window as a row, file by file, each file verified as it is read.

    A file is read through a one-interval view of the manifest so errors can name the file and line.
    Corrupt or tampered data cannot be fixed by retrying, so both failures are AirflowFailException.
    """
    for landed in manifest.intervals:
        lines = dataclasses.replace(manifest, intervals=(landed,)).iter_lines(verify=True)
        number = 0
        try:
            for number, line in enumerate(lines, start=1):  # noqa: B007 (number is read in the handler)
                yield builder.build(line)
        except InvalidEntryError as error:
            raise AirflowFailException(
                f"line {number} of {landed.data_path} is not an Audit Logs entry: {error}; "
                "the landed file is corrupt, rerun the ingest of this window"
            ) from error
        except ValueError as error:  # size, SHA-256 or line count differs from the manifest
            raise AirflowFailException(f"landed data failed verification: {error}") from error


def _dialect_name(hook: DbApiHook) -> str:
    """The SQLAlchemy dialect name of the hook, or its connection type when it has none."""
    name = hook.dialect_name
    if name and name != "default":
        return name
    return str(BaseHook.get_connection(hook.get_conn_id()).conn_type or "default")
