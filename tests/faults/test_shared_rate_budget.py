"""The org's request budget holds: concurrent ingests of one org in one process (triggers in one
triggerer) share one limiter and get no 429 at all; processes that each pace at the org's whole
budget (two triggerers, a triggerer and a worker) converge by adaptive pacing (AIMD) on shares that
add up to it, with few 429s and most of the budget used."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from airflow_provider_slack_audit.client import AsyncAuditLogsClient
from airflow_provider_slack_audit.ingest import Window
from airflow_provider_slack_audit.ingest.pipeline import ingest_window
from airflow_provider_slack_audit.ingest.spec import IngestSpec, IngestSummary
from airflow_provider_slack_audit.testing import FakeAuditLogsServer

from support.landing_invariants import assert_landing_sound, server_ids

DAY = datetime(2026, 1, 4, tzinfo=timezone.utc)
STEP = timedelta(hours=1)
WINDOWS = [Window(DAY + timedelta(hours=3 * k), DAY + timedelta(hours=3 * (k + 1))) for k in range(4)]
REQUESTS_PER_MINUTE = 600
# The org's bucket saves at most this many requests: unpaced clients would hit it at once.
SERVER_BURST = 4
MAX_429 = 0


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
@pytest.mark.timing
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


# Two processes, each told the org's whole budget, against one org-wide bucket.
CROSS_PROCESS_RPM = 240
# A minute: each process must meet a 429 to learn that it shares the budget, and those first 2-5
# 429s weigh too much in half a minute's ~110 requests (simulated: 9 of 100 seeds of 30 s went over
# 5%, none of 60 s; tests/client/test_cross_process_pacing.py judges the pacing over hours).
CROSS_PROCESS_SECONDS = 60.0
CHILD = Path(__file__).with_name("rate_budget_child.py")


@pytest.mark.slow
@pytest.mark.timing
def test_two_processes_at_the_orgs_budget_converge_on_it_with_few_429s() -> None:
    server = FakeAuditLogsServer(events=500, requests_per_minute=CROSS_PROCESS_RPM, rate_limit_burst=3)
    base_url = server.start_in_thread()
    try:
        started = time.monotonic()
        children = [
            subprocess.Popen(
                [sys.executable, str(CHILD), base_url, str(CROSS_PROCESS_RPM), str(CROSS_PROCESS_SECONDS)],
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = [child.communicate(timeout=CROSS_PROCESS_SECONDS + 30)[0] for child in children]
        elapsed = time.monotonic() - started
        requests = server.logs_requests()
    finally:
        server.stop()

    assert all(child.returncode == 0 for child in children)
    statuses = [json.loads(output) for output in outputs]
    assert all(s.get("200", 0) > 0 for s in statuses), f"a process was starved: {statuses}"
    refused = sum(r.status == 429 for r in requests)
    granted = sum(r.status == 200 for r in requests)
    span = max(r.time for r in requests) - min(r.time for r in requests)
    budget = CROSS_PROCESS_RPM / 60 * span
    assert refused <= 0.05 * len(requests), f"{refused} of {len(requests)} requests were 429s"
    assert granted >= 0.8 * budget, f"{granted} granted of a budget of {budget:.0f} in {span:.1f} s"
    assert elapsed < CROSS_PROCESS_SECONDS + 15
