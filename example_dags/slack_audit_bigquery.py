"""
### Slack audit logs into BigQuery, when each window lands

**`slack_audit_bigquery`** lands nothing: it runs whenever a window lands under
`SLACK_AUDIT_BASE_PATH` (the landing operator of `slack_audit_daily`, `slack_audit_backfill` or
`slack_audit_reconcile` emits an asset event carrying the window's manifest) and loads every window
that landed since its last run into a BigQuery table with `SlackAuditLogsToBigQueryOperator`: the
window's verified rows, one load job into a staging table, one `MERGE` by entry id into a table
partitioned by day of `date_create` and clustered by `action`. Loading a window again changes
nothing; a reconciled window adds only its late events.

A manual run loads the window whose manifest its configuration names:
`{"manifest": "gs://bucket/slack_audit/_manifests/slack_audit_20260104T000000Z_20260105T000000Z.manifest.json"}`.

Logins from an IP address the user had not used in the previous 30 days:

```sql
SELECT l.actor_user_email, l.ip_address, l.date_create
FROM security.slack_audit_logs AS l
WHERE l.action = 'user_login' AND l.date_create >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 1 DAY)
  AND NOT EXISTS (
    SELECT 1 FROM security.slack_audit_logs AS p
    WHERE p.action = 'user_login' AND p.actor_user_id = l.actor_user_id AND p.ip_address = l.ip_address
      AND p.date_create >= TIMESTAMP_SUB(l.date_create, INTERVAL 30 DAY) AND p.date_create < l.date_create);
```

**Connections**: the Google Cloud connection, `google_cloud_default` by default (a service account
key, or the worker's own credentials); it needs `roles/bigquery.dataEditor` on the dataset and
`roles/bigquery.jobUser` on the project. See the docs' BigQuery page.

**Settings** (environment variables read when the DAG is parsed):

- `SLACK_AUDIT_BASE_PATH`: where windows land (default `file:///tmp/slack_audit`, as the other DAGs).
- `SLACK_AUDIT_GCP_CONN_ID`: the Google Cloud connection (default `google_cloud_default`).
- `SLACK_AUDIT_BIGQUERY_DATASET`: the dataset (default `security`; it must exist).
- `SLACK_AUDIT_BIGQUERY_TABLE`: the table (default `slack_audit_logs`, created when missing).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_slack_audit.transfers import landed_manifests
from airflow_provider_slack_audit.transfers.slack_audit_to_bigquery import SlackAuditLogsToBigQueryOperator
from airflow_provider_slack_audit.version_compat import DAG, DOUBLING_RETRY_BACKOFF, Asset, task

BASE_PATH = os.environ.get("SLACK_AUDIT_BASE_PATH", "file:///tmp/slack_audit")
CONN_ID = os.environ.get("SLACK_AUDIT_GCP_CONN_ID", "google_cloud_default")
DATASET = os.environ.get("SLACK_AUDIT_BIGQUERY_DATASET", "security")
TABLE = os.environ.get("SLACK_AUDIT_BIGQUERY_TABLE", "slack_audit_logs")

with DAG(
    dag_id="slack_audit_bigquery",
    description="Load every Slack audit window landed under the base path into BigQuery, when it lands",
    schedule=[Asset(BASE_PATH)],  # the asset the landing operator emits for BASE_PATH
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args={
        "retries": 3,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": DOUBLING_RETRY_BACKOFF,
    },
    doc_md=__doc__,
    tags=["slack", "audit", "warehouse", "bigquery"],
):

    @task
    def landed_windows(
        *, triggering_asset_events: Any = None, triggering_dataset_events: Any = None, dag_run: Any = None
    ) -> list[dict[str, Any]]:
        """The manifest of every window whose landing triggered this run, oldest first."""
        return landed_manifests(triggering_asset_events or triggering_dataset_events, dag_run)

    SlackAuditLogsToBigQueryOperator.partial(
        task_id="load_into_bigquery",
        gcp_conn_id=CONN_ID,
        dataset=DATASET,
        table=TABLE,
        max_active_tis_per_dagrun=1,  # oldest first, so the latest copy of an entry wins
    ).expand(source=landed_windows())
