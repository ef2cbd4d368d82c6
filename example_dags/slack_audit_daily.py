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
hours already landed.

**Re-landing a chosen window** (late events, a fixed bug, an auditor's question): trigger the DAG
*without a logical date* with the params `oldest` and `latest` (ISO-8601 with a time zone, or a bare
date meaning its midnight UTC) and `mode`:

- `resume` (default): land only the hours of the window not committed yet.
- `reconcile`: re-read the window and add the events Slack recorded late: only the hours that grew
  are rewritten, every landed event stays, the other files are not touched (see
  `slack_audit_reconcile`, which does this every day for the day N days back).
- `overwrite`: re-read every hour of the window and rewrite its files.

```bash
airflow dags trigger slack_audit_daily \\
    --conf '{"oldest": "2026-01-04", "latest": "2026-01-05", "mode": "overwrite"}'
```

or *Trigger* in the UI, filling the params form. Without `oldest`/`latest`, a manual run lands the
latest completed day. Avoid `--logical-date`: Airflow 3's CLI derives a manual run's data interval from
the time of the trigger, not from the logical date, and a logical date can be used only once per DAG.

**Alerting** (opt-in): with `SLACK_AUDIT_LANDING_GRACE_HOURS` set (e.g. 6), a day not landed that many
hours after it ended calls `airflow_provider_slack_audit.alerting.log_missed_landing` (an ERROR line;
pass your own async callback to `landing_deadline`): a deadline alert on Airflow 3.1+, the failure
callback of the task's `execution_timeout` on earlier lines. Off by default because Airflow 3.3's
`airflow dags test` fails at the end of a run of a DAG with a deadline alert.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

from airflow_provider_slack_audit.alerting import landing_deadline
from airflow_provider_slack_audit.operators.slack_audit import SlackAuditLogsOperator
from airflow_provider_slack_audit.version_compat import (
    DAG,
    DOUBLING_RETRY_BACKOFF,
    CronDataIntervalTimetable,
    Param,
)

BASE_PATH = os.environ.get("SLACK_AUDIT_BASE_PATH", "file:///tmp/slack_audit")
RETRY_DELAY = timedelta(seconds=float(os.environ.get("SLACK_AUDIT_RETRY_DELAY_SECONDS", "60")))
# Opt-in alerting: be told when a day is not landed this many hours after it ended.
LANDING_GRACE_HOURS = os.environ.get("SLACK_AUDIT_LANDING_GRACE_HOURS", "").strip()
ALERTING = (
    landing_deadline(period=timedelta(days=1), grace=timedelta(hours=float(LANDING_GRACE_HOURS)))
    if LANDING_GRACE_HOURS
    else {}
)
# ISO-8601 with a time zone (2026-01-04T06:00:00Z, ...+01:00) or a bare date (its midnight UTC).
ISO_8601 = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?$"

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
        "oldest": Param(
            None,
            type=["null", "string"],
            pattern=ISO_8601,
            title="Window start (inclusive)",
            description="Re-land a chosen window: its start, e.g. 2026-01-04 or 2026-01-04T06:00:00Z. "
            "Give latest too. Empty: the run's day (a manual run: the latest completed day).",
        ),
        "latest": Param(
            None,
            type=["null", "string"],
            pattern=ISO_8601,
            title="Window end (exclusive)",
            description="The end of the chosen window, e.g. 2026-01-05 (the window then is the 4th).",
        ),
        "mode": Param(
            "resume",
            enum=["resume", "reconcile", "overwrite"],
            title="Re-run mode",
            description="resume: land only the hours not committed yet. reconcile: re-read the window and "
            "add the events Slack recorded late, rewriting only the hours that grew. overwrite: re-read "
            "every hour of the window and rewrite its files.",
        ),
    },
    **ALERTING,
    doc_md=__doc__,
    tags=["slack", "audit"],
):
    SlackAuditLogsOperator(
        task_id="land_audit_logs",
        deferrable=True,  # wait on the triggerer, not in a worker slot
        destination=BASE_PATH,
        interval=timedelta(hours=1),
        # A param left empty renders blank: the operator then lands the run's data interval.
        oldest="{{ params.oldest or '' }}",
        latest="{{ params.latest or '' }}",
        overwrite="{{ params.mode == 'overwrite' }}",
        reconcile="{{ params.mode == 'reconcile' }}",
        # The deferral's timeout too: a day that has not landed in 3 hours needs a human.
        execution_timeout=timedelta(hours=3),
    )
