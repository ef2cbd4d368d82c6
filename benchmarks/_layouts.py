"""Requests per window for each file layout, and a small org's day (issue 10, item 8).

One request stream per window makes the request count a function of the events only: a day lands
in ceil(N/9999) requests whether it is one file or 24. Each layout here is one ``ingest_window`` of
the benchmark's day (1-hour and 1-day intervals), plus a small org's day (5,000 events, 1-hour
files), which the API serves in one request.
"""

from __future__ import annotations

import asyncio
import math
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from _server import TOKEN, fake_server

MAX_LIMIT = 9999
SMALL_ORG_EVENTS = 5_000
LAYOUTS = {"1 h files (24)": timedelta(hours=1), "1 day file (1)": timedelta(days=1)}


def _land(base_url: str, day: datetime, interval: timedelta, dest: Path) -> dict[str, Any]:
    from airflow_provider_slack_audit.client import AsyncAuditLogsClient
    from airflow_provider_slack_audit.ingest import Window
    from airflow_provider_slack_audit.ingest.pipeline import ingest_window
    from airflow_provider_slack_audit.ingest.spec import IngestSpec

    spec = IngestSpec(
        window=Window(day, day + timedelta(days=1)),
        interval=interval,
        destination=dest.as_uri(),
        settle_lag=timedelta(0),
        compression="gzip",
    )

    async def run() -> dict[str, Any]:
        summary = await ingest_window(AsyncAuditLogsClient(TOKEN, base_url=base_url), spec)
        return {"files": summary.intervals_landed, "events": summary.events, "requests": summary.requests}

    return asyncio.run(run())


def requests_per_layout(base_url: str, day: datetime, events: int, workdir: Path) -> list[dict[str, Any]]:
    rows = []
    for name, interval in LAYOUTS.items():
        with tempfile.TemporaryDirectory(dir=workdir) as dest:
            landed = _land(base_url, day, interval, Path(dest))
        rows.append({"layout": name, **landed, "minimum": math.ceil(events / MAX_LIMIT)})
    return rows


def small_org_day(day: datetime, seed: int, workdir: Path) -> dict[str, Any]:
    with (
        fake_server(events=SMALL_ORG_EVENTS, seed=seed, start=day, end=day + timedelta(days=1)) as url,
        tempfile.TemporaryDirectory(dir=workdir) as dest,
    ):
        landed = _land(url, day, timedelta(hours=1), Path(dest))
    return {"layout": "small org, 1 h files", **landed, "minimum": math.ceil(SMALL_ORG_EVENTS / MAX_LIMIT)}
