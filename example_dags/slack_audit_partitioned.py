"""
### Slack audit logs as partitions: one partition per UTC day, loaded per partition (Airflow 3.2+)

- **`slack_audit_partitioned`** lands one UTC day per run. Its schedule is a *partition* timetable:
  the run at 2026-01-05 00:00 UTC has the partition key `2026-01-04` (`run_offset=-1`: the day that
  just ended) and lands `[2026-01-04, 2026-01-05)`. Its asset event carries that key, so partition-aware
  DAGs downstream see which day landed.
- **`slack_audit_partitioned_warehouse`** is scheduled on those partitioned events
  (`PartitionedAssetTimetable`): one run per landed day, with the same partition key, which loads
  exactly that day's window into the SQL warehouse. The load checks that the event's key names the
  window its manifest covers before any row is written.

A landed window's partition key is its UTC start: the day (`2026-01-04`) for a UTC day, the instant
(`2026-01-04T06:00:00`) for any other window. A partitioned event triggers only partition-aware DAGs:
`slack_audit_warehouse_on_landing` (not partition-aware) ignores these landings, and this file's
warehouse DAG ignores the unpartitioned ones of `slack_audit_daily`.

**A partition backfill** lands a range of days, one run per partition, and each landed day then
loads on its own. What `--from-date`/`--to-date` name differs by Airflow line (both inclusive): to
land 2026-01-01 to 2026-01-31,

```bash
# Airflow 3.3+: the partitions' dates, i.e. the days to land
airflow backfill create --dag-id slack_audit_partitioned --from-date 2026-01-01 --to-date 2026-01-31
# Airflow 3.2: the runs' dates; the run of 00:00 on a day lands the day before (run_offset=-1)
airflow backfill create --dag-id slack_audit_partitioned --from-date 2026-01-02 --to-date 2026-02-01
```

(`--dry-run` lists the partition keys, the days that would land, on both lines.) Committed hours
are skipped, so a backfill over days already landed by `slack_audit_daily` re-reads nothing; it
still emits each day's partitioned event, so the warehouse loads every day.

**Connections and settings**: as `slack_audit_warehouse` (`slack_audit_default`, the warehouse
connection and the `SLACK_AUDIT_*` variables). On Airflow before 3.2 (no partition timetables) this
file defines no DAG.
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
    CronPartitionTimetable,
    PartitionedAssetTimetable,
    task,
)

BASE_PATH = os.environ.get("SLACK_AUDIT_BASE_PATH", "file:///tmp/slack_audit")
DEMO_DIR = Path(os.environ.get("SLACK_AUDIT_DEMO_DIR") or Path(tempfile.gettempdir(), "slack_audit_demo"))
TABLE = os.environ.get("SLACK_AUDIT_WAREHOUSE_TABLE", "slack_audit_logs")
WAREHOUSE_CONN_ID = os.environ.get("SLACK_AUDIT_WAREHOUSE_CONN_ID", "")

if not WAREHOUSE_CONN_ID:
    # The embedded default of slack_audit_warehouse.py, set here too: a worker parses only this file.
    WAREHOUSE_CONN_ID = "slack_audit_warehouse"
    if "AIRFLOW_CONN_SLACK_AUDIT_WAREHOUSE" not in os.environ:
        DEMO_DIR.mkdir(parents=True, exist_ok=True)
        os.environ["AIRFLOW_CONN_SLACK_AUDIT_WAREHOUSE"] = json.dumps(
            {"conn_type": "sqlite", "host": str(DEMO_DIR / "warehouse.db")}
        )

DEFAULT_ARGS: dict[str, Any] = {
    "retries": 3,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": DOUBLING_RETRY_BACKOFF,
    "max_retry_delay": timedelta(minutes=30),
}

if CronPartitionTimetable is not None and PartitionedAssetTimetable is not None:
    with DAG(
        dag_id="slack_audit_partitioned",
        description="Land one UTC day of Slack audit events per partition",
        # Runs at 00:00 UTC for the day that just ended, keyed like the landing keys a UTC day.
        schedule=CronPartitionTimetable("0 0 * * *", timezone="UTC", key_format="%Y-%m-%d", run_offset=-1),
        start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
        catchup=False,
        max_active_runs=4,
        default_args=DEFAULT_ARGS,
        doc_md=__doc__,
        tags=["slack", "audit", "partitions"],
    ):
        land = SlackAuditLogsOperator(
            task_id="land_audit_logs",
            deferrable=True,  # on Airflow 3.3 it starts on the triggerer: no worker until it has landed
            destination=BASE_PATH,
            interval=timedelta(hours=1),
            execution_timeout=timedelta(hours=6),
        )

    with DAG(
        dag_id="slack_audit_partitioned_warehouse",
        description="Load each landed day of Slack audit events into a SQL table, per partition",
        schedule=PartitionedAssetTimetable(assets=land.outlets[0]),
        start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
        catchup=False,
        max_active_runs=1,  # SQLite takes one writer
        default_args=DEFAULT_ARGS,
        doc_md=__doc__,
        tags=["slack", "audit", "partitions", "warehouse"],
    ):

        @task
        def partition_windows(
            *, triggering_asset_events: Any = None, dag_run: Any = None
        ) -> list[dict[str, Any]]:
            """The landed window(s) of this run's partition: each event's key checked against its extra."""
            return landed_manifests(triggering_asset_events, dag_run)

        SlackAuditLogsToSqlOperator.partial(
            task_id="load_into_warehouse", conn_id=WAREHOUSE_CONN_ID, table=TABLE, max_active_tis_per_dagrun=1
        ).expand(source=partition_windows())
