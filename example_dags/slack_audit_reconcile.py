"""
### Slack audit logs: reconcile the events Slack recorded late

The API shows some events hours after they happened. The daily DAG reads each day once, after a
settle lag of minutes, so those events are not in its files. Every day at 00:00 UTC this DAG re-reads
the day `days_back` days before the run's own day (param, default 3: the run of 2026-01-10 re-reads
2026-01-06) under `SLACK_AUDIT_BASE_PATH` with `reconcile=True`:

- one query for the day, at the API's minimum of requests;
- an hour whose events did not change is not touched (same file, same bytes);
- an hour that grew is rewritten with its late events, keeping every event it held (events the API no
  longer returns stay landed, and are counted);
- the day's manifest records, per rewritten hour, its late events and how late they were
  (`stats.late_events`, `late_min_seconds`/`late_median_seconds`/`late_max_seconds`: discovery time
  minus `date_create`), and the run's totals (`run.reconcile`).

`report_late_events` logs the late-event ratio of the day, the number to watch: a ratio that climbs
says the daily DAG's settle lag is too short for this org.

Run it by hand for another depth: `airflow dags trigger slack_audit_reconcile --conf '{"days_back": 7}'`
(without a logical date, the run's day is the day of the trigger). Point `SLACK_AUDIT_BASE_PATH` at the
daily DAG's destination; each reconciled day is also an asset event of that destination, so the
asset-scheduled warehouse DAG reloads it.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_slack_audit.operators.slack_audit import SlackAuditLogsOperator
from airflow_provider_slack_audit.version_compat import (
    DAG,
    DOUBLING_RETRY_BACKOFF,
    CronDataIntervalTimetable,
    Param,
    task,
)

log = logging.getLogger(__name__)

BASE_PATH = os.environ.get("SLACK_AUDIT_BASE_PATH", "file:///tmp/slack_audit")
RETRY_DELAY = timedelta(seconds=float(os.environ.get("SLACK_AUDIT_RETRY_DELAY_SECONDS", "60")))
# Midnight UTC ending the run's own day: its data interval's end, or (a manual run without a logical
# date has no data interval) the day of the trigger.
RUN_DAY_END = "(data_interval_end or dag_run.run_after).replace(hour=0, minute=0, second=0, microsecond=0)"

with DAG(
    dag_id="slack_audit_reconcile",
    description="Re-read the day N days back and add the Slack audit events recorded late",
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
        "days_back": Param(
            3,
            type="integer",
            minimum=1,
            maximum=90,
            title="Days back",
            description="Reconcile the day this many days before the run's own day.",
        ),
    },
    doc_md=__doc__,
    tags=["slack", "audit"],
):
    reconcile = SlackAuditLogsOperator(
        task_id="reconcile_late_events",
        deferrable=True,
        destination=BASE_PATH,
        interval=timedelta(hours=1),  # the daily DAG's grid: the same files
        oldest=f"{{{{ ({RUN_DAY_END} - macros.timedelta(days=params.days_back + 1)).isoformat() }}}}",
        latest=f"{{{{ ({RUN_DAY_END} - macros.timedelta(days=params.days_back)).isoformat() }}}}",
        reconcile=True,
        execution_timeout=timedelta(hours=3),
    )

    @task
    def report_late_events(summary: dict[str, Any]) -> float:
        """Log the day's late-event ratio (late events / events landed for the day) and return it."""
        events, late = summary["events"], summary["late_events"]
        ratio = late / events if events else 0.0
        window = summary["window"]
        log.info(
            "Window [%s, %s): %d late events of %d (late-event ratio %.4f%%), %d hours rewritten, "
            "%d landed events the API no longer returns kept",
            window["start"],
            window["end"],
            late,
            events,
            100 * ratio,
            summary["intervals_reconciled"],
            summary["vanished_kept"],
        )
        return ratio

    report_late_events(reconcile.output)
