"""The rate-budget scenario: a backfill's windows, ingested concurrently, share one org-wide budget.

The Audit Logs API allows about 50 requests a minute for the whole org. A backfill runs several
windows at once in one triggerer; each window's client paces itself, and they must neither waste
the budget (idle slots make the backfill slower than it has to be) nor overrun it (429s cost a
``Retry-After`` pause for every client). Here ``windows`` daily windows are ingested concurrently in
this process, each with its own client of the same token and ``requests_per_minute=R``, against a
fake server whose token bucket allows R requests a minute. R is scaled up from 50 so the scenario
runs in well under a minute with the same arithmetic.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
from _contenders import TrafficMeter
from _server import TOKEN, fake_server

# Pages are small so a budget of R requests a minute gives enough requests to measure in seconds.
PAGE_LIMIT = 200
INTERVAL = timedelta(hours=1)  # the provider's default interval length


class _Id(msgspec.Struct):
    id: str


_id_decoder = msgspec.json.Decoder(_Id)


@dataclass(frozen=True)
class RateBudgetPlan:
    """How big the scenario is: R, the server's burst allowance, and the events to fetch."""

    requests_per_minute: float
    burst: int
    windows: int
    seconds: float  # how long the scenario should take at R requests a minute
    seed: int
    first_day: datetime

    @property
    def events(self) -> int:
        """Enough events for about ``seconds`` of requests (a page is ``PAGE_LIMIT`` events or fewer)."""
        requests = self.requests_per_minute * self.seconds / 60
        # Each hourly interval ends with a partial page, half full on average.
        intervals = self.windows * (timedelta(days=1) // INTERVAL)
        return max(intervals, int((requests - intervals / 2) * PAGE_LIMIT))

    @property
    def span(self) -> tuple[datetime, datetime]:
        return self.first_day, self.first_day + timedelta(days=self.windows)


def run_rate_budget(plan: RateBudgetPlan) -> dict[str, Any]:
    """Start a rate-limited server, ingest the windows concurrently, and report budget and completeness."""
    start, end = plan.span
    with (
        fake_server(
            events=plan.events,
            seed=plan.seed,
            start=start,
            end=end,
            bench=False,
            requests_per_minute=plan.requests_per_minute,
            rate_limit_burst=plan.burst,
        ) as base_url,
        tempfile.TemporaryDirectory(prefix="bench-rate-budget-") as destination,
    ):
        return asyncio.run(_ingest_concurrently(plan, base_url, Path(destination)))


async def _ingest_concurrently(plan: RateBudgetPlan, base_url: str, destination: Path) -> dict[str, Any]:
    from airflow_provider_slack_audit.client import AsyncAuditLogsClient
    from airflow_provider_slack_audit.ingest.pipeline import ingest_window
    from airflow_provider_slack_audit.ingest.spec import IngestSpec
    from airflow_provider_slack_audit.ingest.windows import Window
    from airflow_provider_slack_audit.testing import FakeAuditLogsServer

    meter = TrafficMeter()
    start, _ = plan.span
    windows = [
        Window(start + timedelta(days=day), start + timedelta(days=day + 1)) for day in range(plan.windows)
    ]
    async with meter.session() as session:
        # One client per window, as each deferred task builds its own; the same token makes them
        # share the process-wide limiter of the org.
        clients = [
            AsyncAuditLogsClient(
                TOKEN, base_url=base_url, session=session, requests_per_minute=plan.requests_per_minute
            )
            for _ in windows
        ]
        specs = [
            IngestSpec(
                window=window,
                interval=INTERVAL,
                destination=destination.as_uri(),
                compression=None,
                settle_lag=timedelta(0),
                limit=PAGE_LIMIT,
            )
            for window in windows
        ]
        started = time.perf_counter()
        summaries = await asyncio.gather(
            *(ingest_window(client, spec) for client, spec in zip(clients, specs, strict=True))
        )
        seconds = time.perf_counter() - started

    # The oracle: the same deterministic events the server process generated, never started.
    oracle = FakeAuditLogsServer(events=plan.events, seed=plan.seed, start=plan.span[0], end=plan.span[1])
    complete = [
        _landed_ids(summary.manifest) == oracle.expected_ids(window.oldest, window.latest)
        for window, summary in zip(windows, summaries, strict=True)
    ]
    accepted = meter.statuses.get(200, 0)
    rate_limited = meter.statuses.get(429, 0)
    return {
        "requests_per_minute": plan.requests_per_minute,
        "server_burst": plan.burst,
        "windows": plan.windows,
        "events": plan.events,
        "page_limit": PAGE_LIMIT,
        "seconds": seconds,
        "requests": meter.requests,
        "accepted_requests": accepted,
        "rate_limited": rate_limited,
        "budget": plan.requests_per_minute * seconds / 60,
        "budget_fraction": accepted / (plan.requests_per_minute * seconds / 60),
        "windows_complete": sum(complete),
        "all_complete": all(complete),
        "landed_events": sum(summary.events for summary in summaries),
        # Pages are the requests the windows needed; requests above that were retries.
        "pages": sum(summary.pages for summary in summaries),
    }


def _landed_ids(manifest: str) -> set[str]:
    from airflow_provider_slack_audit.ingest.landing import read_manifest

    ids: set[str] = set()
    for line in read_manifest(manifest).iter_lines():
        ids.add(_id_decoder.decode(line).id)
    return ids
