"""
### Slack audit logs, landed and loaded into a SQL warehouse

Two ways to get each day of Slack audit events into a SQL table you can query ("who exported data
last week?"). Enable the one that fits; both load with `SlackAuditLogsToSqlOperator`, which upserts
one landed window by entry id in one transaction, so loading a window again changes nothing.

- **`slack_audit_warehouse`** lands yesterday's window (like `slack_audit_daily`), then loads it.
  Its schedule is a data-interval timetable, so the run at 2026-01-05 00:00 UTC handles
  `[2026-01-04, 2026-01-05)`.
- **`slack_audit_warehouse_on_landing`** lands nothing: it runs whenever a window lands under
  `SLACK_AUDIT_BASE_PATH` (the landing operator emits an asset event carrying the window's manifest)
  and loads every window that landed since its last run. Pair it with `slack_audit_daily` or
  `slack_audit_backfill`. It also sees the windows `slack_audit_warehouse` lands; loading those a
  second time is harmless (nothing changes) but wasted work, so do not enable both.

Query the table, e.g. events per action in a day:

```sql
SELECT action, COUNT(*) FROM slack_audit_logs
WHERE date_create >= '2026-01-04' AND date_create < '2026-01-05'
GROUP BY action ORDER BY 2 DESC;
```

**Connections**: `slack_audit_default` (type *Slack Audit Logs*, the org owner's `xoxp-…` token with
`auditlogs:read`), and the warehouse, `slack_audit_warehouse` by default: any common-sql database
connection (PostgreSQL and SQLite first-class). Without one, this file points
`AIRFLOW_CONN_SLACK_AUDIT_WAREHOUSE` at an embedded SQLite file, `<SLACK_AUDIT_DEMO_DIR>/warehouse.db`.
For PostgreSQL:

```bash
export AIRFLOW_CONN_SLACK_AUDIT_WAREHOUSE='postgresql://airflow:secret@db.internal:5432/audit'
```

**Settings** (environment variables read when the DAG is parsed):

- `SLACK_AUDIT_BASE_PATH`: where windows land (default `file:///tmp/slack_audit`, as the other DAGs).
- `SLACK_AUDIT_DEMO_DIR`: folder of the embedded SQLite warehouse (default `/tmp/slack_audit_demo`).
- `SLACK_AUDIT_WAREHOUSE_CONN_ID`: load through this connection instead (defined in the UI, a
  secrets backend or an env var); then no embedded SQLite connection is set up.
- `SLACK_AUDIT_WAREHOUSE_TABLE`: the table (default `slack_audit_logs`, created when missing).
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from airflow_provider_slack_audit.operators.slack_audit import SlackAuditLogsOperator
from airflow_provider_slack_audit.transfers import landed_manifests
from airflow_provider_slack_audit.transfers.slack_audit_to_sql import SlackAuditLogsToSqlOperator
from airflow_provider_slack_audit.version_compat import (
    DAG,
    DOUBLING_RETRY_BACKOFF,
    CronDataIntervalTimetable,
    task,
)

BASE_PATH = os.environ.get("SLACK_AUDIT_BASE_PATH", "file:///tmp/slack_audit")
DEMO_DIR = Path(os.environ.get("SLACK_AUDIT_DEMO_DIR") or Path(tempfile.gettempdir(), "slack_audit_demo"))
TABLE = os.environ.get("SLACK_AUDIT_WAREHOUSE_TABLE", "slack_audit_logs")
WAREHOUSE_CONN_ID = os.environ.get("SLACK_AUDIT_WAREHOUSE_CONN_ID", "")

if not WAREHOUSE_CONN_ID:
    # The embedded default: a SQLite file in the demo folder, as an env connection, unless the
    # environment already defines slack_audit_warehouse. Set SLACK_AUDIT_WAREHOUSE_CONN_ID to use a
    # connection from the UI or a secrets backend (an env connection would shadow those).
    WAREHOUSE_CONN_ID = "slack_audit_warehouse"
    if "AIRFLOW_CONN_SLACK_AUDIT_WAREHOUSE" not in os.environ:
        DEMO_DIR.mkdir(parents=True, exist_ok=True)  # SQLite creates the file, not its folder
        os.environ["AIRFLOW_CONN_SLACK_AUDIT_WAREHOUSE"] = json.dumps(
            {"conn_type": "sqlite", "host": str(DEMO_DIR / "warehouse.db")}
        )

DEFAULT_ARGS: dict[str, Any] = {
    "retries": 3,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": DOUBLING_RETRY_BACKOFF,
    "max_retry_delay": timedelta(minutes=30),
}

with DAG(
    dag_id="slack_audit_warehouse",
    description="Land yesterday's Slack audit events, then load them into a SQL table",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    tags=["slack", "audit", "warehouse"],
):
    land = SlackAuditLogsOperator(
        task_id="land_audit_logs",
        deferrable=True,  # wait on the triggerer, not in a worker slot
        destination=BASE_PATH,
        interval=timedelta(hours=1),
        execution_timeout=timedelta(hours=3),
    )
    # The landing's summary names the window's manifest; passing it sets land >> load.
    SlackAuditLogsToSqlOperator(
        task_id="load_into_warehouse",
        source=land.output,
        conn_id=WAREHOUSE_CONN_ID,
        table=TABLE,
    )

# The asset the landing operator emits for BASE_PATH, exactly as every landing DAG emits it.
LANDED = land.outlets

with DAG(
    dag_id="slack_audit_warehouse_on_landing",
    description="Load every Slack audit window landed under the base path, when it lands",
    schedule=LANDED,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    tags=["slack", "audit", "warehouse"],
):

    @task
    def landed_windows(
        *, triggering_asset_events: Any = None, triggering_dataset_events: Any = None, dag_run: Any = None
    ) -> list[dict[str, Any]]:
        """The manifest and window of every landing that triggered this run, oldest first.

        Airflow passes the triggering events under the name this function asks for: "asset" on
        Airflow 3, "dataset" on 2.x, so it asks for both. Several windows can land before the run
        starts (a backfill lands many days); each becomes one mapped load.
        """
        return landed_manifests(triggering_asset_events or triggering_dataset_events, dag_run)

    SlackAuditLogsToSqlOperator.partial(
        task_id="load_into_warehouse",
        conn_id=WAREHOUSE_CONN_ID,
        table=TABLE,
        # One window at a time, oldest first: SQLite takes one writer, and order keeps "latest wins".
        max_active_tis_per_dagrun=1,
    ).expand(source=landed_windows())
