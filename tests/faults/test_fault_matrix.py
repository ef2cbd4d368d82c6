"""Every fault the fake server can inject, at the ingest level: within the retry budget it changes
nothing; past it, the ingest fails with a clear transient error, commits no partial interval, and a
rerun lands the window exactly.

The window is read as one stream, newest first. Each fault strikes in the middle of it (on the
second page after the stream entered its second-newest interval), so "nothing partial committed"
is checked with one interval (the newest) committed before the fault and the one being read when it
struck.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import pytest

from airflow_provider_slack_audit.client import (
    AsyncAuditLogsClient,
    SlackAuditLogsApiError,
    classify_exception,
)
from airflow_provider_slack_audit.client.retry import (
    AsyncConnectionErrorRetryHandler,
    AsyncInvalidResponseRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncRetryHandler,
    AsyncServerErrorRetryHandler,
)
from airflow_provider_slack_audit.ingest import Window
from airflow_provider_slack_audit.ingest.outcome import failure_outcome
from airflow_provider_slack_audit.ingest.pipeline import MAX_CURSOR_RESTARTS, ingest_window
from airflow_provider_slack_audit.ingest.spec import IngestSpec
from airflow_provider_slack_audit.testing import EventSet, FakeAuditLogsServer, FaultPlan, ManualClock
from airflow_provider_slack_audit.version_compat import redact

from support.landing_invariants import (
    assert_landing_sound,
    server_ids,
    temp_files,
    window_files,
)
from support.recorded_sleeps import RecordedSleeps

DAY = datetime(2026, 1, 4, tzinfo=timezone.utc)
WINDOW = Window(DAY, DAY + timedelta(hours=4))
STEP = timedelta(hours=1)
LIMIT = 40
TOKEN = "xoxp-test"
# Retries each handler grants one request: small, so "past the budget" is a short storm.
BUDGET = 2
# Slow answers take longer than the client's timeout (whole seconds, the client's unit).
CLIENT_TIMEOUT = 1
SLOW_SECONDS = 1.5

# One data set for every server of the module, reaching past the window on both sides so boundary
# seconds have neighbours to leak.
EVENTS = EventSet.generate(
    events=800, seed=11, start=DAY - timedelta(minutes=30), end=WINDOW.end + timedelta(minutes=30)
)

# Faults the client retries by itself, each within its handler's budget.
RETRIED_FAULTS = ("http_500", "http_502", "http_503", "http_504", "html_502", "drop", "slow", "truncated")
# 2xx answers whose body is not an Audit Logs page: the client cannot tell until it decodes them.
GARBLED_PAGE_FAULTS = ("html_200", "empty_200", "bad_entries", "missing_id")


@dataclass(frozen=True)
class ExpectedFailure:
    """What an ingest raises once a fault outlasts the retry budget."""

    exception: type[BaseException]
    error: str | None = None  # SlackAuditLogsApiError.error
    status: int | None = None  # SlackAuditLogsApiError.status_code


EXPECTED_FAILURES: dict[str, ExpectedFailure] = {
    "http_500": ExpectedFailure(SlackAuditLogsApiError, "internal_error", 500),
    "http_502": ExpectedFailure(SlackAuditLogsApiError, "bad_gateway", 502),
    "http_503": ExpectedFailure(SlackAuditLogsApiError, "service_unavailable", 503),
    "http_504": ExpectedFailure(SlackAuditLogsApiError, "gateway_timeout", 504),
    "html_502": ExpectedFailure(SlackAuditLogsApiError, None, 502),
    "drop": ExpectedFailure(aiohttp.ServerDisconnectedError),
    "slow": ExpectedFailure(asyncio.TimeoutError),
    "truncated": ExpectedFailure(aiohttp.ClientPayloadError),
    "html_200": ExpectedFailure(SlackAuditLogsApiError, "invalid_response", 200),
    "empty_200": ExpectedFailure(SlackAuditLogsApiError, "invalid_response", 200),
    "bad_entries": ExpectedFailure(SlackAuditLogsApiError, "invalid_response", 200),
    "missing_id": ExpectedFailure(SlackAuditLogsApiError, "invalid_response", 200),
}


@dataclass(frozen=True)
class CleanRun:
    """A fault-free run of the window: its files, and where in its request sequence faults strike."""

    files: dict[str, bytes]
    # Requests answered before the second page of the second interval.
    fault_point: int
    # How many of those requests carried a cursor.
    cursor_uses_before_fault_point: int


def budget_handlers() -> list[AsyncRetryHandler]:
    return [
        AsyncConnectionErrorRetryHandler(max_retry_count=BUDGET),
        AsyncRateLimitErrorRetryHandler(max_retry_count=BUDGET),
        AsyncServerErrorRetryHandler(max_retry_count=BUDGET),
        AsyncInvalidResponseRetryHandler(),
    ]


def client_for(server: FakeAuditLogsServer) -> AsyncAuditLogsClient:
    return AsyncAuditLogsClient(
        TOKEN, base_url=server.base_url, timeout=CLIENT_TIMEOUT, retry_handlers=budget_handlers()
    )


def spec_for(root: Path) -> IngestSpec:
    return IngestSpec(
        window=WINDOW, interval=STEP, destination=f"file://{root}", settle_lag=timedelta(0), limit=LIMIT
    )


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> CleanRun:
    root = tmp_path_factory.mktemp("clean") / "landing"
    server = FakeAuditLogsServer(event_set=EVENTS)
    server.start_in_thread()
    try:
        asyncio.run(ingest_window(client_for(server), spec_for(root)))
        requests = server.logs_requests()
    finally:
        server.stop()
    *_, second_newest, newest = WINDOW.intervals(STEP)
    # Pages hold LIMIT entries (more only when a second is crowded): the stream has passed the
    # newest interval by the page after its last, and is mid-way through the next one after that.
    pages_of_newest = -(-len(EVENTS.index_range(newest.oldest, newest.latest)) // LIMIT)
    assert len(EVENTS.index_range(second_newest.oldest, second_newest.latest)) >= 3 * LIMIT, (
        "the second-newest interval must span several pages for a mid-interval fault"
    )
    fault_point = pages_of_newest + 1
    return CleanRun(
        files=window_files(root),
        fault_point=fault_point,
        cursor_uses_before_fault_point=sum("cursor" in r.query for r in requests[:fault_point]),
    )


@pytest.fixture
async def server() -> AsyncIterator[FakeAuditLogsServer]:
    async with FakeAuditLogsServer(
        event_set=EVENTS, faults=FaultPlan(seed=11, slow_seconds=SLOW_SECONDS)
    ) as fake:
        yield fake


def assert_only_first_interval_committed(root: Path, server: FakeAuditLogsServer) -> None:
    """Only the interval the stream read first (the newest) is committed."""
    state = assert_landing_sound(root, WINDOW, STEP, server_ids(server))
    newest = WINDOW.intervals(STEP)[-1]
    assert state.committed == {newest}, "the interval being read when the fault struck must not commit"
    assert state.landed == state.committed, "a data file without its commit marker was left behind"
    assert temp_files(root) == [], "a failed write left its temporary file behind"


async def assert_rerun_lands_exactly(
    server: FakeAuditLogsServer, root: Path, clean_run: CleanRun, *, skipped: int
) -> None:
    summary = await ingest_window(client_for(server), spec_for(root))
    assert (summary.intervals_skipped, summary.intervals_landed) == (skipped, 4 - skipped)
    state = assert_landing_sound(root, WINDOW, STEP, server_ids(server))
    assert state.committed == set(WINDOW.intervals(STEP))
    assert window_files(root) == clean_run.files


# Within the budget -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", RETRIED_FAULTS)
async def test_a_fault_burst_within_the_retry_budget_changes_nothing(
    kind: str, server: FakeAuditLogsServer, clean_run: CleanRun, tmp_path: Path
) -> None:
    server.faults.push(kind, count=BUDGET, after=clean_run.fault_point)

    summary = await ingest_window(client_for(server), spec_for(tmp_path))

    assert server.faults.injected[kind] == BUDGET
    assert summary.intervals_landed == 4
    assert_landing_sound(tmp_path, WINDOW, STEP, server_ids(server))
    assert window_files(tmp_path) == clean_run.files


@pytest.mark.parametrize("kind", GARBLED_PAGE_FAULTS)
async def test_a_garbled_page_within_the_retry_budget_changes_nothing(
    kind: str, server: FakeAuditLogsServer, clean_run: CleanRun, tmp_path: Path
) -> None:
    server.faults.push(kind, count=1, after=clean_run.fault_point)

    await ingest_window(client_for(server), spec_for(tmp_path))

    assert server.faults.injected[kind] == 1
    assert window_files(tmp_path) == clean_run.files


async def test_a_429_storm_is_waited_out_as_retry_after_says(
    clean_run: CleanRun, retry_sleeps: RecordedSleeps, tmp_path: Path
) -> None:
    # 60/min with no burst against a client that does not pace itself: after the first request,
    # every request is refused once with Retry-After: 1. Retry waits move the server's clock forward,
    # and the bucket holds one token at most, so each wait buys exactly one request.
    clock = ManualClock(0.0)
    retry_sleeps.on_sleep = clock.advance
    async with FakeAuditLogsServer(
        event_set=EVENTS, requests_per_minute=60, rate_limit_burst=1, rate_limit_clock=clock
    ) as server:
        summary = await ingest_window(client_for(server), spec_for(tmp_path))
        refused = server.rate_limited_count

    assert refused == summary.pages - 1
    assert len(retry_sleeps.durations) == refused
    assert min(retry_sleeps.durations) >= 1.0, "a retry came before the server's Retry-After"
    assert window_files(tmp_path) == clean_run.files


# Past the budget ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", RETRIED_FAULTS + GARBLED_PAGE_FAULTS)
async def test_a_fault_outlasting_the_retry_budget_fails_cleanly_and_a_rerun_lands_exactly(
    kind: str, server: FakeAuditLogsServer, clean_run: CleanRun, tmp_path: Path
) -> None:
    expected = EXPECTED_FAILURES[kind]
    server.faults.push(kind, count=1, after=clean_run.fault_point)
    server.faults.set_rate(kind, 1.0)  # then every request fails: an outage, not a blip

    with pytest.raises(expected.exception) as info:
        await ingest_window(client_for(server), spec_for(tmp_path))

    error = info.value
    if isinstance(error, SlackAuditLogsApiError):
        assert (error.error, error.status_code) == (expected.error, expected.status)
    assert classify_exception(error) == "transient"
    assert (
        failure_outcome(error, redact=redact)["kind"] == "transient"
    )  # the operator lets Airflow retry the task
    assert_only_first_interval_committed(tmp_path, server)

    server.faults.clear()
    await assert_rerun_lands_exactly(server, tmp_path, clean_run, skipped=1)


async def test_a_429_storm_outlasting_the_budget_fails_as_rate_limited_and_a_rerun_lands_exactly(
    clean_run: CleanRun, retry_sleeps: RecordedSleeps, tmp_path: Path
) -> None:
    # The burst covers the requests before the fault point; the clock never moves, so from there on
    # every request is refused, however long the client waits.
    clock = ManualClock(0.0)
    async with FakeAuditLogsServer(
        event_set=EVENTS,
        requests_per_minute=60,
        rate_limit_burst=clean_run.fault_point,
        rate_limit_clock=clock,
    ) as server:
        with pytest.raises(SlackAuditLogsApiError) as info:
            await ingest_window(client_for(server), spec_for(tmp_path))

        assert (info.value.error, info.value.status_code, info.value.kind) == (
            "rate_limited",
            429,
            "transient",
        )
        assert server.rate_limited_count == BUDGET + 1
        assert_only_first_interval_committed(tmp_path, server)

        retry_sleeps.on_sleep = clock.advance  # the storm passes
        await assert_rerun_lands_exactly(server, tmp_path, clean_run, skipped=1)


# Expired cursors ---------------------------------------------------------------------------------


async def test_cursors_expiring_in_two_intervals_reread_each_from_its_start(
    clean_run: CleanRun, tmp_path: Path
) -> None:
    first_expiry = clean_run.cursor_uses_before_fault_point + 1  # page 2 of interval 2
    async with FakeAuditLogsServer(
        event_set=EVENTS, expire_cursor_uses={first_expiry, first_expiry + 5}
    ) as server:
        summary = await ingest_window(client_for(server), spec_for(tmp_path))
        requests = server.logs_requests()

    assert summary.cursor_restarts == 2
    assert summary.duplicates == 0
    assert window_files(tmp_path) == clean_run.files
    refusals = [i for i, r in enumerate(requests) if r.status == 400]
    assert len(refusals) == 2
    for i in refusals:
        refused, reread = requests[i], requests[i + 1]
        assert "cursor" not in reread.query, "the interval was not re-read from its first page"
        assert reread.query["oldest"] == refused.query["oldest"]


async def test_a_cursor_that_keeps_expiring_fails_the_interval_without_committing_it(
    server: FakeAuditLogsServer, clean_run: CleanRun, tmp_path: Path
) -> None:
    # Page 2 of interval 2 is refused on the first read and on every re-read.
    server.faults.push("invalid_cursor", count=1, after=clean_run.fault_point)
    for _ in range(MAX_CURSOR_RESTARTS):
        server.faults.push("invalid_cursor", count=1, after=1)

    with pytest.raises(SlackAuditLogsApiError) as info:
        await ingest_window(client_for(server), spec_for(tmp_path))

    assert (info.value.error, info.value.kind) == ("invalid_cursor", "cursor")
    assert server.faults.injected["invalid_cursor"] == MAX_CURSOR_RESTARTS + 1
    assert_only_first_interval_committed(tmp_path, server)
    await assert_rerun_lands_exactly(server, tmp_path, clean_run, skipped=1)
