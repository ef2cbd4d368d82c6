"""Two runs of one window at once (a manual re-run racing the scheduled run, two DAGs on one base
path, a trigger running twice): one writes each interval, the other waits or skips, both succeed.

Runs the real pipeline against FakeAuditLogsServer; the landing is checked from the files alone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from airflow_provider_slack_audit.client import AsyncAuditLogsClient
from airflow_provider_slack_audit.ingest import Window
from airflow_provider_slack_audit.ingest.landing.lease import LeaseSettings
from airflow_provider_slack_audit.ingest.pipeline import ingest_window
from airflow_provider_slack_audit.ingest.spec import IngestSpec
from airflow_provider_slack_audit.testing import FakeAuditLogsServer

from support.landing_invariants import assert_landing_sound, server_ids, temp_files

DAY = datetime(2026, 1, 4, tzinfo=timezone.utc)
WINDOW = Window(DAY, DAY + timedelta(hours=6))
STEP = timedelta(hours=1)
# Requests the second of two concurrent runs may add to one run's: it may read what the first had
# not claimed when it looked (a run boundary), never the window again.
SMALL_CONSTANT = 2


@pytest.fixture
async def server() -> AsyncIterator[FakeAuditLogsServer]:
    async with FakeAuditLogsServer(
        events=3000, seed=5, start=DAY - timedelta(minutes=30), end=WINDOW.end + timedelta(minutes=30)
    ) as fake:
        yield fake


def client_for(server: FakeAuditLogsServer) -> AsyncAuditLogsClient:
    return AsyncAuditLogsClient("xoxp-test", base_url=server.base_url)


def spec_for(root: Path, **kwargs: object) -> IngestSpec:
    values: dict[str, object] = {
        "window": WINDOW,
        "interval": STEP,
        "destination": root.as_uri(),
        "settle_lag": timedelta(0),
        "limit": 100,
        **kwargs,
    }
    return IngestSpec(**values)  # type: ignore[arg-type]


async def first_request(server: FakeAuditLogsServer, timeout: float = 30) -> None:
    for _ in range(int(timeout / 0.005)):
        if server.logs_requests():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"no logs request within {timeout} s")


async def one_runs_requests(server: FakeAuditLogsServer, root: Path) -> int:
    summary = await ingest_window(client_for(server), spec_for(root))
    server.reset_log()
    return summary.requests


async def test_two_concurrent_runs_of_one_window_both_succeed_and_land_each_event_once(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    alone = await one_runs_requests(server, tmp_path / "alone")
    root = tmp_path / "landing"
    server.faults.slow_seconds = 0.01  # each page takes a while, so the runs overlap for sure
    server.faults.set_rate("slow", 1.0)

    first, second = await asyncio.gather(
        ingest_window(client_for(server), spec_for(root)),
        ingest_window(client_for(server), spec_for(root)),
    )

    state = assert_landing_sound(root, WINDOW, STEP, server_ids(server))
    assert state.committed == set(WINDOW.intervals(STEP))
    assert temp_files(root) == []
    assert first.manifest == second.manifest
    assert first.events == second.events == len(server.expected_ids(WINDOW.oldest, WINDOW.latest))
    requests = len(server.logs_requests())
    assert first.requests + second.requests == requests <= alone + SMALL_CONSTANT
    assert first.intervals_landed + second.intervals_landed == len(WINDOW.intervals(STEP))


async def test_a_run_starting_while_another_lands_the_window_waits_and_makes_no_request(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    root = tmp_path / "landing"
    server.faults.slow_seconds = 0.02
    server.faults.set_rate("slow", 1.0)
    first = asyncio.ensure_future(ingest_window(client_for(server), spec_for(root)))
    await first_request(server)  # the first run is reading

    second = await ingest_window(client_for(server), spec_for(root))

    assert (await first).intervals_landed == len(WINDOW.intervals(STEP))
    assert second.requests == 0
    assert second.intervals_skipped == len(WINDOW.intervals(STEP))
    assert_landing_sound(root, WINDOW, STEP, server_ids(server))


def skewed(seconds: float) -> LeaseSettings:
    """Lease settings of a run on a host whose wall clock is ``seconds`` off."""
    return LeaseSettings(clock=lambda: time.time() + seconds)


@pytest.mark.parametrize(("first_skew", "second_skew"), [(-300, 0), (-600, 600), (600, -600)])
async def test_a_run_starting_while_one_on_a_host_with_another_clock_lands_the_window_waits_and_both_succeed(
    server: FakeAuditLogsServer, tmp_path: Path, first_skew: float, second_skew: float
) -> None:
    root = tmp_path / "landing"
    server.faults.slow_seconds = 0.02
    server.faults.set_rate("slow", 1.0)
    first = asyncio.ensure_future(
        ingest_window(client_for(server), spec_for(root), leases=skewed(first_skew))
    )
    await first_request(server)  # the first run is reading

    second = await ingest_window(client_for(server), spec_for(root), leases=skewed(second_skew))

    assert (await first).intervals_landed == len(WINDOW.intervals(STEP))  # its temp files were its own
    assert second.requests == 0
    assert second.intervals_skipped == len(WINDOW.intervals(STEP))
    assert_landing_sound(root, WINDOW, STEP, server_ids(server))
    assert temp_files(root) == []


async def test_two_concurrent_rewrites_of_a_landed_window_both_succeed_and_keep_it_exact(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    root = tmp_path / "landing"
    await ingest_window(client_for(server), spec_for(root))
    server.faults.slow_seconds = 0.01
    server.faults.set_rate("slow", 1.0)

    first, second = await asyncio.gather(
        ingest_window(client_for(server), spec_for(root, overwrite=True)),
        ingest_window(client_for(server), spec_for(root, overwrite=True)),
    )

    state = assert_landing_sound(root, WINDOW, STEP, server_ids(server))
    assert state.committed == set(WINDOW.intervals(STEP))
    assert temp_files(root) == []
    # One of them rewrote each interval; the other skipped what was rewritten while it waited.
    assert first.intervals_landed + second.intervals_landed == len(WINDOW.intervals(STEP))
