"""Concurrent ingests of one org in one process (triggers in one triggerer) share one request
budget: they pace themselves to ``requests_per_minute`` together, so none fails and 429s stay rare."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from landing_invariants import assert_landing_sound, server_ids

from airflow_provider_slack_audit.client import AsyncAuditLogsClient
from airflow_provider_slack_audit.ingest import Window
from airflow_provider_slack_audit.ingest.pipeline import IngestSpec, IngestSummary, ingest_window
from airflow_provider_slack_audit.testing import FakeAuditLogsServer

DAY = datetime(2026, 1, 4, tzinfo=timezone.utc)
STEP = timedelta(hours=1)
WINDOWS = [Window(DAY + timedelta(hours=3 * k), DAY + timedelta(hours=3 * (k + 1))) for k in range(4)]
REQUESTS_PER_MINUTE = 600
# The org's bucket saves at most this many requests: unpaced clients would hit it at once.
SERVER_BURST = 4
MAX_429 = 4


async def ingest(server: FakeAuditLogsServer, window: Window, root: Path) -> IngestSummary:
    # A client per ingest, as each trigger builds its own from the connection.
    client = AsyncAuditLogsClient(
        "xoxp-test", base_url=server.base_url, requests_per_minute=REQUESTS_PER_MINUTE
    )
    spec = IngestSpec(
        window=window, interval=STEP, destination=f"file://{root}", settle_lag=timedelta(0), limit=100
    )
    return await ingest_window(client, spec)


@pytest.mark.slow
async def test_four_concurrent_windows_share_the_org_budget_and_all_land_exactly(tmp_path: Path) -> None:
    async with FakeAuditLogsServer(
        events=12_000,
        seed=8,
        start=WINDOWS[0].start,
        end=WINDOWS[-1].end,
        requests_per_minute=REQUESTS_PER_MINUTE,
        rate_limit_burst=SERVER_BURST,
    ) as server:
        roots = [tmp_path / f"window{k}" for k in range(len(WINDOWS))]
        summaries = await asyncio.gather(
            *(ingest(server, window, root) for window, root in zip(WINDOWS, roots, strict=True))
        )
        arrivals = sorted(r.time for r in server.logs_requests())

    assert server.rate_limited_count <= MAX_429
    for window, root, summary in zip(WINDOWS, roots, summaries, strict=True):
        state = assert_landing_sound(root, window, STEP, server_ids(server))
        assert state.committed == set(window.intervals(STEP))
        assert summary.events == len(server.expected_ids(window.oldest, window.latest))
    # Paced together: any 20 consecutive requests span at least 18 slots of 60/R seconds. Four
    # clients pacing on their own would fit 20 requests into 5 slots.
    assert len(arrivals) > 100
    slot = 60 / REQUESTS_PER_MINUTE
    tightest = min(later - earlier for earlier, later in zip(arrivals, arrivals[20:], strict=False))
    assert tightest >= (20 - SERVER_BURST) * slot - 0.05
