"""The process the kill test kills: ``ingest_window`` in sync mode, as ``deferrable=False`` runs it.

The kill test starts these processes from a multiprocessing *forkserver* that imported this module
(and with it Airflow) once, so each run starts in milliseconds instead of the seconds an Airflow
import takes; each run is still a process of its own, killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from airflow_provider_slack_audit.client import AsyncAuditLogsClient
from airflow_provider_slack_audit.ingest import Window
from airflow_provider_slack_audit.ingest.pipeline import ingest_window
from airflow_provider_slack_audit.ingest.spec import IngestSpec

TOKEN = "xoxp-test"
DAY = datetime(2026, 1, 4, tzinfo=timezone.utc)
WINDOW = Window(DAY, DAY + timedelta(hours=6))
STEP = timedelta(hours=1)
LIMIT = 40


def land_window(base_url: str, destination: str, overwrite: bool) -> None:
    """Land ``WINDOW`` from the server at ``base_url`` under ``destination``; return when done."""
    spec = IngestSpec(
        window=WINDOW,
        interval=STEP,
        destination=destination,
        settle_lag=timedelta(0),
        limit=LIMIT,
        overwrite=overwrite,
    )
    asyncio.run(ingest_window(AsyncAuditLogsClient(TOKEN, base_url=base_url), spec))
