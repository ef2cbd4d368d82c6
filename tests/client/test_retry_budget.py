"""One wait budget per request: every back-off, every Retry-After and every limiter pause draws from
it, and no Retry-After stalls the org's other ingests for longer than the shared-pause cap."""

from __future__ import annotations

import itertools
import math
import re
import time
from email.utils import formatdate

import pytest
from aioresponses import aioresponses
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler as SdkRateLimitHandler,
)

from airflow_provider_slack_audit.client import (
    AsyncAuditLogsClient,
    InvalidEntryApiError,
    SlackAuditLogsApiError,
)
from airflow_provider_slack_audit.client.ratelimit import MAX_SHARED_PAUSE, RateLimiter
from airflow_provider_slack_audit.client.retry import retry_after_seconds
from airflow_provider_slack_audit.testing import FakeAuditLogsServer, FaultPlan

from support.recorded_sleeps import RecordedSleeps

PAGE = {"entries": [{"id": "a", "date_create": 1}], "response_metadata": {"next_cursor": ""}}
RATE_LIMITED = '{"ok": false, "error": "rate_limited"}'
_ports = itertools.count(20000)


def fresh_base() -> tuple[str, re.Pattern[str]]:
    """A base URL no other test used, so the process-wide limiter of its org starts fresh."""
    base = f"http://127.0.0.1:{next(_ports)}/audit/v1/"
    return base, re.compile("^" + re.escape(base) + r"logs(\?.*)?$")


async def read_all(client: AsyncAuditLogsClient) -> int:
    return sum([len(page.raw_page().entries) async for page in client.pages(oldest=0, latest=10)])


@pytest.mark.parametrize("retry_after", ["86400", "inf"])
async def test_a_retry_after_beyond_the_budget_fails_at_once_as_transient_without_sleeping(
    instant_retries: RecordedSleeps, retry_after: str
) -> None:
    base, logs = fresh_base()
    client = AsyncAuditLogsClient("xoxp-test", base_url=base, requests_per_minute=40)
    with aioresponses() as m:
        m.get(logs, status=429, headers={"Retry-After": retry_after}, body=RATE_LIMITED)
        with pytest.raises(SlackAuditLogsApiError) as info:
            await read_all(client)
    assert (info.value.kind, info.value.error) == ("transient", "rate_limited")
    assert instant_retries.durations == []


async def test_a_huge_retry_after_holds_the_orgs_other_ingests_no_longer_than_the_cap(
    instant_retries: RecordedSleeps,
) -> None:
    base, logs = fresh_base()
    first = AsyncAuditLogsClient("xoxp-test", base_url=base, requests_per_minute=40)
    with aioresponses() as m:
        m.get(logs, status=429, headers={"Retry-After": "86400"}, body=RATE_LIMITED)
        with pytest.raises(SlackAuditLogsApiError):
            await read_all(first)
    other = AsyncAuditLogsClient("xoxp-test", base_url=base, requests_per_minute=40)
    assert other.rate_limiter is first.rate_limiter
    assert other.rate_limiter is not None
    assert other.rate_limiter.reserve() <= MAX_SHARED_PAUSE + 0.01


def test_the_shared_pause_is_capped() -> None:
    limiter = RateLimiter(60)
    assert limiter.pause(math.inf) == MAX_SHARED_PAUSE


async def test_a_retry_after_given_as_an_http_date_is_waited_for(instant_retries: RecordedSleeps) -> None:
    base, logs = fresh_base()
    when = formatdate(time.time() + 30, usegmt=True)
    with aioresponses() as m:
        m.get(logs, status=429, headers={"Retry-After": when}, body=RATE_LIMITED)
        m.get(logs, payload=PAGE)
        assert await read_all(AsyncAuditLogsClient("xoxp-test", base_url=base)) == 1
    assert 28 <= instant_retries.durations[0] <= 31 + 1  # + jitter


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after_seconds({"Retry-After": "7"}) == 7.0
    assert retry_after_seconds({"retry-after": ["2.5"]}) == 2.5
    assert retry_after_seconds({"Retry-After": "Thu, 01 Jan 2026 00:01:40 GMT"}, now=1767225600.0) == 100.0
    assert retry_after_seconds({"Retry-After": "Thu, 01 Jan 2026 00:00:00 GMT"}, now=1767225700.0) == 0.0
    assert retry_after_seconds({"Retry-After": "inf"}) == math.inf
    assert retry_after_seconds({"Retry-After": "soon"}) is None
    assert retry_after_seconds({"Retry-After": "nan"}) is None


async def test_a_request_never_waits_more_than_max_retry_wait_however_its_failures_mix(
    instant_retries: RecordedSleeps,
) -> None:
    # Per-handler budgets let one request wait about 3x the setting; the one budget does not.
    base, logs = fresh_base()
    client = AsyncAuditLogsClient("xoxp-test", base_url=base, max_retry_wait=30)
    with aioresponses() as m:
        for _ in range(20):
            m.get(logs, status=503, body="busy")
            m.get(logs, status=429, headers={"Retry-After": "4"}, body=RATE_LIMITED)
            m.get(logs, status=200, body="<html>proxy error</html>")
        with pytest.raises(SlackAuditLogsApiError) as info:
            await read_all(client)
    assert info.value.kind == "transient"
    # The last wait is the budget's remainder, so the waits add up to 30 s give or take a rounding.
    assert math.fsum(instant_retries.durations) <= 30 + 1e-9
    assert sum(instant_retries.durations) >= 20, "the budget should have been mostly used"


async def test_garbled_pages_draw_from_the_same_budget(instant_retries: RecordedSleeps) -> None:
    base, logs = fresh_base()
    client = AsyncAuditLogsClient("xoxp-test", base_url=base, max_retry_wait=1.0)
    with aioresponses() as m:
        m.get(logs, status=200, body="<html>captive portal</html>", repeat=True)
        with pytest.raises(SlackAuditLogsApiError) as info:
            await read_all(client)
    assert (info.value.kind, info.value.error) == ("transient", "invalid_response")
    # 0.5 s, then 1 s would exceed the budget: one retry only.
    assert instant_retries.durations == [0.5]


async def test_a_page_with_a_lone_surrogate_is_permanent_and_never_asked_for_again(
    instant_retries: RecordedSleeps,
) -> None:
    # Valid JSON, not Unicode: every retry would return the same bytes.
    base, logs = fresh_base()
    client = AsyncAuditLogsClient("xoxp-test", base_url=base)
    body = '{"entries":[{"id":"a","date_create":5},{"id":"b","date_create":4,"name":"\\ud800x"}]}'
    with aioresponses() as m:
        m.get(logs, status=200, body=body, repeat=True)
        with pytest.raises(InvalidEntryApiError) as info:
            await read_all(client)
        assert sum(len(calls) for calls in m.requests.values()) == 1
    assert (info.value.kind, info.value.error) == ("permanent", "invalid_entry")
    assert (info.value.position, info.value.entry_id, info.value.date_create) == (1, "b", 4)
    assert instant_retries.durations == []


async def test_waiting_for_the_rate_limiter_draws_from_the_budget() -> None:
    base, logs = fresh_base()
    client = AsyncAuditLogsClient("xoxp-test", base_url=base, requests_per_minute=1, max_retry_wait=5)
    assert client.rate_limiter is not None
    client.rate_limiter.reserve()  # another ingest took the slot: the next is 60 s away
    with aioresponses() as m:
        m.get(logs, payload=PAGE)
        with pytest.raises(SlackAuditLogsApiError) as info:
            await read_all(client)
        assert not m.requests, "a request that cannot get a slot within its budget is never sent"
    assert (info.value.kind, info.value.error) == ("transient", "retry_budget_exhausted")


async def test_a_slack_sdk_handler_never_sleeps_through_a_retry_after_beyond_the_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr("slack_sdk.http_retry.builtin_async_handlers.asyncio.sleep", fake_sleep)
    base, logs = fresh_base()
    client = AsyncAuditLogsClient("xoxp-test", base_url=base, retry_handlers=[SdkRateLimitHandler()])
    with aioresponses() as m:
        m.get(logs, status=429, headers={"Retry-After": "86400"}, body=RATE_LIMITED)
        response = await client.logs()
    assert response.status_code == 429
    assert slept == []


async def test_each_page_reports_the_requests_and_seconds_it_took(instant_retries: RecordedSleeps) -> None:
    base, logs = fresh_base()
    with aioresponses() as m:
        m.get(logs, status=200, body="<html>proxy error</html>")
        m.get(logs, status=429, headers={"Retry-After": "3"}, body=RATE_LIMITED)
        m.get(logs, payload=PAGE)
        pages = [p async for p in AsyncAuditLogsClient("xoxp-test", base_url=base).pages(oldest=0, latest=9)]
    assert pages[0].requests == 3
    assert pages[0].wait_seconds == pytest.approx(sum(instant_retries.durations))
    assert pages[0].wait_seconds >= 3.5


async def test_the_client_takes_its_sleep_as_an_argument() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    base, logs = fresh_base()
    with aioresponses() as m:
        m.get(logs, status=503, body="busy")
        m.get(logs, payload=PAGE)
        await AsyncAuditLogsClient("xoxp-test", base_url=base, sleep=sleep).logs()
    assert len(slept) == 1


async def test_the_fake_servers_huge_retry_after_fails_the_read_at_once(
    instant_retries: RecordedSleeps,
) -> None:
    faults = FaultPlan(retry_after=86400)
    faults.push("http_429")
    async with FakeAuditLogsServer(events=20, faults=faults) as server:
        client = AsyncAuditLogsClient("xoxp-test", base_url=server.base_url, requests_per_minute=40)
        with pytest.raises(SlackAuditLogsApiError) as info:
            await read_all(client)
        assert len(server.logs_requests()) == 1
    assert info.value.kind == "transient"
    assert instant_retries.durations == []


def test_a_budget_that_is_not_a_finite_number_of_seconds_is_refused() -> None:
    for bad in (-1, math.inf, "300", True):
        with pytest.raises(ValueError, match="max_retry_wait"):
            AsyncAuditLogsClient("xoxp-test", max_retry_wait=bad)  # type: ignore[arg-type]


async def test_a_slack_sdk_handler_is_charged_what_it_slept_and_stops_being_asked_once_the_budget_is_spent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from slack_sdk.http_retry.builtin_async_handlers import (
        AsyncServerErrorRetryHandler as SdkServerErrorHandler,
    )
    from slack_sdk.http_retry.builtin_interval_calculators import (
        FixedValueRetryIntervalCalculator as SdkFixed,
    )

    now = [0.0]
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    monkeypatch.setattr("slack_sdk.http_retry.async_handler.asyncio.sleep", fake_sleep)
    base, logs = fresh_base()
    handler = SdkServerErrorHandler(max_retry_count=10, interval_calculator=SdkFixed(2))
    client = AsyncAuditLogsClient(
        "xoxp-test", base_url=base, retry_handlers=[handler], max_retry_wait=5, clock=lambda: now[0]
    )
    with aioresponses() as m:
        m.get(logs, status=503, body="busy", repeat=True)
        response = await client.logs()
    assert response.status_code == 503
    # A foreign handler's wait is known only once slept: it may overrun the budget by one wait.
    assert slept == [2, 2, 2]
    assert response.wait_seconds == 6
