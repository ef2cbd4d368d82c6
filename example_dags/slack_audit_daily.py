"""
### Slack audit logs, landed daily

Every day at 00:00 UTC this DAG lands the previous UTC day of Slack audit events under
`SLACK_AUDIT_BASE_PATH`, one gzip JSON-lines file per hour plus a manifest for the day:

```
<base>/dt=2026-01-04/slack_audit_20260104T000000Z_20260104T010000Z.jsonl.gz   (+ .commit.json)
<base>/_manifests/slack_audit_20260104T000000Z_20260105T000000Z.manifest.json
```

The schedule is a *data-interval* timetable (`CronDataIntervalTimetable`), so the run at
2026-01-05 00:00 gets the window `[2026-01-04, 2026-01-05)`. A cron string such as `"@daily"` would
not work: Airflow 3 runs it with `CronTriggerTimetable`, whose runs have an empty data interval.

**Connection** `slack_audit_default` (type *Slack Audit Logs*): the password is an org owner's user
token (`xoxp-…`) with the `auditlogs:read` scope.

**Settings** (environment variables read when the DAG is parsed):

- `SLACK_AUDIT_BASE_PATH`: where files land, any `ObjectStoragePath` URL such as
  `s3://aws_default@my-bucket/slack_audit` (default `file:///tmp/slack_audit`).
- `SLACK_AUDIT_RETRY_DELAY_SECONDS`: first retry delay, doubled on each retry (default 60).

**Retries are cheap**: each hour is committed on its own, so a retried or rerun task skips the
hours already landed. To re-read a day and pick up events Slack recorded late, trigger the run
again with the param `overwrite` set to true: it rewrites that day's files in place.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

from airflow_provider_slack_audit.operators.slack_audit import SlackAuditLogsOperator
from airflow_provider_slack_audit.version_compat import (
    DAG,
    DOUBLING_RETRY_BACKOFF,
    CronDataIntervalTimetable,
    Param,
)

BASE_PATH = os.environ.get("SLACK_AUDIT_BASE_PATH", "file:///tmp/slack_audit")
RETRY_DELAY = timedelta(seconds=float(os.environ.get("SLACK_AUDIT_RETRY_DELAY_SECONDS", "60")))

with DAG(
    dag_id="slack_audit_daily",
    description="Land yesterday's Slack audit events, one file per hour",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args={
        "retries": 3,
        "retry_delay": RETRY_DELAY,
        "retry_exponential_backoff": DOUBLING_RETRY_BACKOFF,
        "max_retry_delay": timedelta(minutes=30),
    },
    params={
        "overwrite": Param(
            False,
            type="boolean",
            description="Rewrite the day's files instead of skipping committed hours (late events).",
        )
    },
    doc_md=__doc__,
    tags=["slack", "audit"],
):
    SlackAuditLogsOperator(
        task_id="land_audit_logs",
        deferrable=True,  # wait on the triggerer, not in a worker slot
        destination=BASE_PATH,
        interval=timedelta(hours=1),
        overwrite="{{ params.overwrite }}",
        # The deferral's timeout too: a day that has not landed in 3 hours needs a human.
        execution_timeout=timedelta(hours=3),
    )
