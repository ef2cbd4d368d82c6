"""Load one landed window of Slack audit events into a Snowflake table, exactly once by id.

The window's rows go to Snowflake as one file (see :mod:`airflow_provider_slack_audit.transfers._bulk`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from airflow_provider_slack_audit.transfers._bulk import (
    SNOWFLAKE,
    STAGED_FILE_NAME,
    BulkLoadOperator,
    Staging,
    identifier,
)
from airflow_provider_slack_audit.transfers._schema import COLUMNS, REQUIRED_COLUMNS

__all__ = ["SlackAuditLogsToSnowflakeOperator", "snowflake_table_ddl"]


def _column_ddl(name: str) -> str:
    return f"{name} {SNOWFLAKE.types.of(name)}" + (" NOT NULL" if name in REQUIRED_COLUMNS else "")


def snowflake_table_ddl(table: str) -> str:
    """The target table: the SQL transfer's columns, ``VARIANT`` for JSON, a primary key on ``id``.

    Snowflake does not enforce the key; the MERGE by id is what keeps each id once.
    """
    columns = ",\n  ".join(_column_ddl(name) for name in COLUMNS)
    return f"CREATE TABLE IF NOT EXISTS {table} (\n  {columns},\n  PRIMARY KEY (id)\n)"


class SlackAuditLogsToSnowflakeOperator(BulkLoadOperator):
    """
    Load exactly one landed window of Slack audit events into a Snowflake table, exactly once by id.

    As for the SQL transfer, the manifest must cover its window exactly once and every data file is
    checked against it as it is read (a mismatch fails the task, no retry, naming the file). The
    rows are ``PUT`` as one gzip'd JSON-lines file into a temporary stage, copied into a temporary
    staging table and merged by ``id`` in one ``MERGE``: a rerun changes nothing, a reconciled window
    adds only its late rows. The table is created when missing (``TIMESTAMP_TZ``, ``VARIANT`` for
    ``details``, ``anomaly_reasons`` and ``raw``) and gets the columns newer releases added. The docs'
    Snowflake page lists the statements, privileges and columns.

    Errors: a lost connection, a statement or warehouse timeout, a lock or an expired session
    propagate for Airflow to retry; anything else (a missing privilege, a missing table with
    ``create_table=False``, a table of another shape) fails the task without retries.

    :param source: the window to load (templated): the landing operator's output
        (``source=land.output``), a dict with a ``"manifest"`` key (an Asset event's ``extra``), or the
        manifest's URL/path.
    :param snowflake_conn_id: a Snowflake connection (apache-airflow-providers-snowflake); its
        database, schema, warehouse and role apply unless ``database``/``schema`` are given.
    :param table: the target table (templated), a plain identifier.
    :param schema: the table's schema (templated); default: the connection's.
    :param database: the table's database (templated); default: the connection's.
    :param source_conn_id: the connection for the object store holding the landing, when the
        manifest is given as a URL string and the store needs credentials.
    :param create_table: create the table when missing. Turn off to load into a table you created
        (the same column names; ``id`` unique).

    Returns a :class:`~airflow_provider_slack_audit.transfers.LoadSummary`; its ``table`` is the
    name as given (``[database.][schema.]table``).
    """

    template_fields: Sequence[str] = ("source", "table", "schema", "database")
    ui_color = "#e3f3fb"
    warehouse = "Snowflake"
    hook_class = ("airflow.providers.snowflake.hooks.snowflake", "SnowflakeHook", "Snowflake", "snowflake")
    dialect = SNOWFLAKE

    def __init__(
        self,
        *,
        snowflake_conn_id: str = "snowflake_default",
        schema: str | None = None,
        database: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hook_params = {"snowflake_conn_id": snowflake_conn_id}
        self.schema = schema
        self.database = database

    def target(self) -> str:
        """``[database.][schema.]table``, each part a plain identifier (Snowflake upper-cases them)."""
        parts = [("database", self.database), ("schema", self.schema), ("table", self.table)]
        return ".".join(identifier(what, name) for what, name in parts if name)

    @contextmanager
    def _staging(self, target: str) -> Iterator[Staging]:
        connection = self.hook.get_conn()
        cursor = connection.cursor()
        name = f"slack_audit_load_{uuid.uuid4().hex}"  # this load's stage and staging table

        def load(path: Path) -> int:
            cursor.execute(f"CREATE TEMPORARY STAGE {name}")
            cursor.execute(f"PUT '{path.as_uri()}' @{name} AUTO_COMPRESS = FALSE")
            cursor.execute(f"CREATE TEMPORARY TABLE {name} (v VARIANT)")
            # The stage holds this one file; FORCE: load it whatever Snowflake's load history says.
            cursor.execute(
                f"COPY INTO {name} FROM @{name}/{STAGED_FILE_NAME} FILE_FORMAT = (TYPE = JSON) FORCE = TRUE"
            )
            return _column_sum(cursor, "rows_loaded")

        def count(sql: str) -> int:
            cursor.execute(sql)
            return int(cursor.fetchone()[0])

        def merge(sql: str) -> tuple[int, int]:
            cursor.execute(sql)
            inserted, updated = cursor.fetchone()
            return int(inserted), int(updated)

        try:
            self._prepare_table(cursor, target)
            yield Staging(target, target, name, load, count, merge)
        finally:
            for drop in (f"DROP TABLE IF EXISTS {name}", f"DROP STAGE IF EXISTS {name}"):
                with suppress(Exception):
                    cursor.execute(drop)
            with suppress(Exception):
                connection.close()

    def _prepare_table(self, cursor: Any, table: str) -> None:
        """Create the table when missing; add the columns newer releases added; refuse other shapes."""
        if self.create_table:
            cursor.execute(snowflake_table_ddl(table))
        cursor.execute(f"DESCRIBE TABLE {table}")
        for column in self._addable_columns(table, [str(row[0]) for row in cursor.fetchall()]):
            cursor.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {_column_ddl(column)}")

    def _lineage_output(self, table: str) -> tuple[str, str]:
        """``snowflake://<account>`` and the table's full name, upper-cased."""
        connection = self.hook.get_connection(self.hook_params["snowflake_conn_id"])
        extra = connection.extra_dejson
        account = str(extra.get("account") or "").lower()
        database = self.database or str(extra.get("database") or "")
        schema = self.schema or str(connection.schema or "")
        name = ".".join(part for part in (database, schema, self.table) if part).upper()
        return f"snowflake://{account}", name


def _column_sum(cursor: Any, column: str) -> int:
    """The sum of one column of a statement's result rows (COPY's ``rows_loaded`` per file)."""
    names = [str(item[0]).lower() for item in cursor.description]
    index = names.index(column)
    return sum(int(row[index] or 0) for row in cursor.fetchall())
