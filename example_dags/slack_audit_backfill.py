"""
### Slack audit logs, backfilled from a start date

Lands every UTC day from `SLACK_AUDIT_BACKFILL_START` (default 2026-01-01) up to yesterday, then keeps
up daily. Use it instead of `slack_audit_daily` when you need the history too (Slack keeps audit logs
for a limited time; nothing exists before 2018-03-01). Both DAGs land the same files under the same
base path, and committed hours are skipped, so switching from one to the other re-reads nothing.

**Org-wide rate budget.** Slack allows about 50 Audit Logs requests per minute for the *whole org*,
shared by every task. `max_active_runs=4` bounds the days in flight, and every task runs in the
pool `slack_audit_api`. The pool must exist, and must count deferred tasks, because the requests are
made while the task is deferred (on the triggerer):

```bash
airflow pools set slack_audit_api 4 "Slack Audit Logs API: ~50 requests/min per org" --include-deferred
```

Set `requests_per_minute` in the connection's extra (e.g. 40) to pace the requests of the tasks that
share a triggerer; a 429 is retried after its `Retry-After` within the connection's retry budget.

**Settings** (environment variables read when the DAG is parsed): `SLACK_AUDIT_BASE_PATH` (default
`file:///tmp/slack_audit`), `SLACK_AUDIT_BACKFILL_START` (an ISO date, default `2026-01-01`) and
`SLACK_AUDIT_RETRY_DELAY_SECONDS` (default 60).
"""

from __future__ import annotations

import os
from datetime import timedelta

from airflow_provider_slack_audit.ingest.windows import parse_datetime
from airflow_provider_slack_audit.operators.slack_audit import SlackAuditLogsOperator
from airflow_provider_slack_audit.version_compat import DAG, DOUBLING_RETRY_BACKOFF, CronDataIntervalTimetable

BASE_PATH = os.environ.get("SLACK_AUDIT_BASE_PATH", "file:///tmp/slack_audit")
# A bare date means that day's midnight UTC.
BACKFILL_START = parse_datetime(
    os.environ.get("SLACK_AUDIT_BACKFILL_START", "2026-01-01"), "SLACK_AUDIT_BACKFILL_START"
)
RETRY_DELAY = timedelta(seconds=float(os.environ.get("SLACK_AUDIT_RETRY_DELAY_SECONDS", "60")))

with DAG(
    dag_id="slack_audit_backfill",
    description="Land every day of Slack audit events since a start date, 4 days at a time",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=BACKFILL_START,
    catchup=True,
    max_active_runs=4,
    default_args={
        "retries": 5,
        "retry_delay": RETRY_DELAY,
        "retry_exponential_backoff": DOUBLING_RETRY_BACKOFF,
        "max_retry_delay": timedelta(minutes=30),
        "pool": "slack_audit_api",
    },
    doc_md=__doc__,
    tags=["slack", "audit"],
):
    SlackAuditLogsOperator(
        task_id="land_audit_logs",
        deferrable=True,  # wait on the triggerer, not in a worker slot
        destination=BASE_PATH,
        interval=timedelta(hours=1),
        execution_timeout=timedelta(hours=6),
    )
