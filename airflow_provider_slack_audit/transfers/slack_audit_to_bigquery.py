"""Load one landed window of Slack audit events into a BigQuery table, exactly once by id.

Why one file of rows (see :mod:`airflow_provider_slack_audit.transfers._bulk`) rather than a load
job over the landed ``gs://`` files: the documented columns need what a load job cannot do (the
entity's target sits under a key named after its type, a scalar may come as any type, an
``action_timestamp`` in ms or µs); the docs' BigQuery page says more. The upload is plain JSON lines
(streamed out of the gzip'd rows file): BigQuery documents gzip for Cloud Storage sources only.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Final

from isal import igzip

from airflow_provider_slack_audit.transfers._bulk import (
    BIGQUERY,
    SEQ,
    BulkLoadOperator,
    Staging,
    identifier,
)
from airflow_provider_slack_audit.transfers._schema import COLUMN_NAMES, INDEXED_COLUMNS, REQUIRED_COLUMNS

__all__ = ["SlackAuditLogsToBigQueryOperator", "bigquery_table_schema"]

#: The staging table keeps every column as the text the rows file holds; the MERGE types it.
_STAGED_SCHEMA: Final = (*((name, "STRING") for name in COLUMN_NAMES), (SEQ, "INT64"))
#: How long a staging table outlives a load that could not drop it (a killed worker).
STAGING_EXPIRATION: Final = datetime.timedelta(days=1)
_PARTITION_COLUMN, _CLUSTER_COLUMN = INDEXED_COLUMNS  # date_create (by day), action


def bigquery_table_schema() -> list[dict[str, str]]:
    """The target table's columns: the SQL transfer's, ``JSON`` for details, reasons and ``raw``."""
    return [
        {
            "name": name,
            "type": BIGQUERY.types.of(name),
            "mode": "REQUIRED" if name in REQUIRED_COLUMNS else "NULLABLE",
        }
        for name in COLUMN_NAMES
    ]


class SlackAuditLogsToBigQueryOperator(BulkLoadOperator):
    """
    Load exactly one landed window of Slack audit events into a BigQuery table, exactly once by id.

    As for the SQL transfer, the manifest must cover its window exactly once and every data file is
    checked against it as it is read (a mismatch fails the task, no retry, naming the file). The
    rows are uploaded by one load job into a staging table of their own (created with an expiration,
    dropped after the load) and merged by ``id`` in one ``MERGE``: a rerun changes nothing, a
    reconciled window adds only its late rows. The table is created when missing, partitioned by day
    of ``date_create`` and clustered by ``action`` (``JSON`` for ``details``, ``anomaly_reasons`` and
    ``raw``), and gets the columns newer releases added. The docs' BigQuery page lists the jobs,
    permissions and columns.

    Errors: a lost connection, a 5xx, ``rateLimitExceeded`` or ``backendError`` propagate for
    Airflow to retry; anything else (``accessDenied``, ``notFound`` with ``create_table=False``,
    ``invalidQuery``, a table of another shape) fails the task without retries.

    :param source: the window to load (templated): the landing operator's output
        (``source=land.output``), a dict with a ``"manifest"`` key (an Asset event's ``extra``), or the
        manifest's URL/path.
    :param dataset: the target table's dataset (templated); the staging table goes there too.
    :param table: the target table (templated), a plain identifier.
    :param project_id: the table's project (templated); default: the connection's project.
    :param gcp_conn_id: a ``google_cloud_platform`` connection (apache-airflow-providers-google).
    :param location: where the jobs run (the dataset's location, e.g. ``EU``); default: BigQuery's.
    :param impersonation_chain: a service account (or a chain) to impersonate, as the Google
        provider's operators take it.
    :param source_conn_id: the connection for the object store holding the landing, when the
        manifest is given as a URL string and the store needs credentials.
    :param create_table: create the table when missing. Turn off to load into a table you created
        (the same column names).

    Returns a :class:`~airflow_provider_slack_audit.transfers.LoadSummary`; its ``table`` is
    ``project.dataset.table``.
    """

    template_fields: Sequence[str] = ("source", "dataset", "table", "project_id")
    ui_color = "#e8f0fe"
    warehouse = "BigQuery"
    hook_class = (
        "airflow.providers.google.cloud.hooks.bigquery",
        "BigQueryHook",
        "Google",
        "google_cloud_platform",
    )
    dialect = BIGQUERY

    def __init__(
        self,
        *,
        dataset: str,
        project_id: str | None = None,
        gcp_conn_id: str = "google_cloud_default",
        location: str | None = None,
        impersonation_chain: str | Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dataset = dataset
        self.project_id = project_id
        self.hook_params = {
            "gcp_conn_id": gcp_conn_id,
            "location": location,
            "impersonation_chain": impersonation_chain,
        }

    def _names(self) -> tuple[str | None, str, str]:
        """(project, dataset, table), each checked: a project id also takes ``-``, ``.`` and ``:``."""
        project = identifier("project", self.project_id, extra="-.:") if self.project_id else None
        return project, identifier("dataset", self.dataset), identifier("table", self.table)

    def target(self) -> str:
        """``project.dataset.table``; the project is the connection's unless ``project_id`` is given."""
        project, dataset, table = self._names()
        return f"{project or '<the connection project>'}.{dataset}.{table}"

    @contextmanager
    def _staging(self, target: str) -> Iterator[Staging]:
        from google.cloud import bigquery

        project, dataset, table = self._names()
        client = self.hook.get_client(
            project_id=project or self.hook.project_id, location=self.hook_params["location"]
        )
        target = f"{client.project}.{dataset}.{table}"
        self._prepare_table(client, target)
        staging_id = f"{target}__load_{uuid.uuid4().hex}"  # this load's own staging table
        staging = bigquery.Table(staging_id, schema=[bigquery.SchemaField(*f) for f in _STAGED_SCHEMA])
        staging.expires = datetime.datetime.now(datetime.timezone.utc) + STAGING_EXPIRATION

        def load(path: Path) -> int:
            config = bigquery.LoadJobConfig(
                source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
                schema=staging.schema,
                write_disposition=bigquery.WriteDisposition.WRITE_EMPTY,
            )
            with igzip.open(path, "rb") as rows:  # type: ignore[no-untyped-call]
                job = client.load_table_from_file(
                    rows, staging.reference, job_config=config, job_id_prefix="slack_audit_load_"
                )
                job.result()
            return int(job.output_rows or 0)

        def count(sql: str) -> int:
            (value,) = next(iter(self._query(client, sql).result()))
            return int(value)

        def merge(sql: str) -> tuple[int, int]:
            stats = self._query(client, sql).dml_stats
            return (int(stats.inserted_row_count), int(stats.updated_row_count)) if stats else (0, 0)

        client.create_table(staging)
        try:
            yield Staging(target, _quoted(target), _quoted(staging_id), load, count, merge)
        finally:
            with suppress(Exception):  # it expires by itself in STAGING_EXPIRATION
                client.delete_table(staging.reference, not_found_ok=True)

    @staticmethod
    def _query(client: Any, sql: str) -> Any:
        """Run one query job to its end; its rows are read from the finished job."""
        job = client.query(sql, job_id_prefix="slack_audit_")
        job.result()
        return job

    def _prepare_table(self, client: Any, target: str) -> None:
        """Create the table when missing; add the columns newer releases added; refuse other shapes."""
        from google.cloud import bigquery

        if self.create_table:
            wanted = bigquery.Table(
                target, schema=[bigquery.SchemaField.from_api_repr(f) for f in bigquery_table_schema()]
            )
            wanted.time_partitioning = bigquery.TimePartitioning(
                type_=bigquery.TimePartitioningType.DAY, field=_PARTITION_COLUMN
            )
            wanted.clustering_fields = [_CLUSTER_COLUMN]
            existing = client.create_table(wanted, exists_ok=True)  # an existing table is read instead
        else:
            existing = client.get_table(target)
        addable = self._addable_columns(target, [field.name for field in existing.schema])
        if addable:
            existing.schema = [
                *existing.schema,
                *(bigquery.SchemaField(name, BIGQUERY.types.of(name), mode="NULLABLE") for name in addable),
            ]
            client.update_table(existing, ["schema"])

    def _lineage_output(self, table: str) -> tuple[str, str]:
        return "bigquery", table


def _quoted(name: str) -> str:
    """A table path as BigQuery SQL names it: backquoted (a project id may hold ``-``, ``.``, ``:``)."""
    return f"`{name}`"
