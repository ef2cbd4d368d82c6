"""Retries: every failure is offered to the handlers; slack_sdk's own handlers work unchanged."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest
from aioresponses import aioresponses
from slack_sdk.http_retry.async_handler import AsyncRetryHandler as SdkAsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler as SdkRateLimitHandler,
)
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncServerErrorRetryHandler as SdkServerErrorHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator as SdkFixed

from airflow_provider_slack_audit.client import (
    AsyncAuditLogsClient,
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
    SlackAuditLogsApiError,
    async_default_handlers,
    default_retry_handlers,
)

from support.recorded_sleeps import RecordedSleeps

BASE = "http://127.0.0.1:9/audit/v1/"
LOGS = re.compile(r"^http://127\.0\.0\.1:9/audit/v1/logs(\?.*)?$")
PAGE = {"entries": [{"id": "a", "date_create": 1}], "response_metadata": {"next_cursor": ""}}


@pytest.fixture
def waits(instant_retries: RecordedSleeps) -> list[float]:
    """The handlers' waits, recorded instead of slept through."""
    return instant_retries.durations


def make_client(handlers: list[object] | None = None) -> AsyncAuditLogsClient:
    return AsyncAuditLogsClient("xoxp-test", base_url=BASE, retry_handlers=handlers)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_default_handlers_retry_server_errors(waits: list[float], status: int) -> None:
    # slack_sdk's defaults retry no 5xx at all, and its server-error handler only 500 and 503.
    with aioresponses() as m:
        m.get(LOGS, status=status, body="<html>Bad gateway</html>")
        m.get(LOGS, payload=PAGE)
        response = await make_client().logs()
    assert response.status_code == 200
    assert len(waits) == 1


async def test_server_error_backoff_grows_exponentially(waits: list[float]) -> None:
    handler = AsyncServerErrorRetryHandler(max_retry_count=3)
    with aioresponses() as m:
        for _ in range(3):
            m.get(LOGS, status=503, payload={"ok": False, "error": "service_unavailable"})
        m.get(LOGS, payload=PAGE)
        await make_client([handler]).logs()
    # 0.5 * 2**n plus up to one second of jitter
    assert all(lo <= w <= lo + 1 for w, lo in zip(waits, (0.5, 1.0, 2.0), strict=True))


async def test_rate_limited_calls_wait_for_retry_after_plus_jitter(waits: list[float]) -> None:
    with aioresponses() as m:
        m.get(LOGS, status=429, headers={"Retry-After": "7"}, payload={"ok": False, "error": "rate_limited"})
        m.get(LOGS, payload=PAGE)
        response = await make_client().logs()
    assert response.status_code == 200
    assert 7 <= waits[0] <= 8


@pytest.mark.parametrize(
    "error",
    [
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientOSError(104, "Connection reset by peer"),
        aiohttp.ClientPayloadError("Response payload is not completed"),
        asyncio.TimeoutError(),
        aiohttp.ServerTimeoutError("read timeout"),
    ],
)
async def test_default_handlers_retry_connection_errors_and_timeouts(
    waits: list[float], error: Exception
) -> None:
    with aioresponses() as m:
        m.get(LOGS, exception=error)
        m.get(LOGS, payload=PAGE)
        response = await make_client().logs()
    assert response.status_code == 200


async def test_a_connection_error_no_handler_retries_propagates_as_aiohttp_raised_it() -> None:
    with aioresponses() as m:
        m.get(LOGS, exception=aiohttp.ServerDisconnectedError())
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await make_client([]).logs()


async def test_an_error_status_is_returned_once_retries_are_spent(waits: list[float]) -> None:
    handler = AsyncServerErrorRetryHandler(max_retry_count=2)
    with aioresponses() as m:
        m.get(LOGS, status=503, payload={"ok": False, "error": "service_unavailable"}, repeat=True)
        response = await make_client([handler]).logs()
    assert response.status_code == 503
    assert len(waits) == 2
    with pytest.raises(SlackAuditLogsApiError) as info:
        response.validate()
    assert info.value.kind == "transient"
    assert info.value.status_code == 503


async def test_the_total_wait_budget_stops_retries_before_the_count_does(waits: list[float]) -> None:
    handler = AsyncRateLimitErrorRetryHandler(max_retry_count=100, max_wait_seconds=25, jitter=0)
    with aioresponses() as m:
        m.get(LOGS, status=429, headers={"Retry-After": "10"}, repeat=True)
        response = await make_client([handler]).logs()
    assert response.status_code == 429
    assert waits == [10, 10]  # a third wait would pass the 25 s budget


async def test_each_handler_counts_its_own_retries(waits: list[float]) -> None:
    connection = AsyncConnectionErrorRetryHandler(max_retry_count=1)
    server = AsyncServerErrorRetryHandler(max_retry_count=1)
    with aioresponses() as m:
        m.get(LOGS, exception=aiohttp.ServerDisconnectedError())
        m.get(LOGS, status=502)
        m.get(LOGS, payload=PAGE)
        response = await make_client([connection, server]).logs()
    assert response.status_code == 200


async def test_connection_handler_takes_slack_sdks_error_types(waits: list[float]) -> None:
    # As slack_sdk's ConnectionErrorRetryHandler(error_types=...): only the listed exceptions retry.
    handler = AsyncConnectionErrorRetryHandler(max_retry_count=2, error_types=[aiohttp.ClientPayloadError])
    assert AsyncConnectionErrorRetryHandler().error_types != handler.error_types
    with aioresponses() as m:
        m.get(LOGS, exception=aiohttp.ClientPayloadError("truncated"))
        m.get(LOGS, payload=PAGE)
        assert (await make_client([handler]).logs()).status_code == 200
        m.get(LOGS, exception=aiohttp.ServerDisconnectedError())
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await make_client([handler]).logs()
    assert len(waits) == 1


async def test_permanent_errors_are_not_retried(waits: list[float]) -> None:
    with aioresponses() as m:
        m.get(LOGS, status=401, payload={"ok": False, "error": "invalid_authentication"})
        response = await make_client().logs()
    assert response.status_code == 401
    assert waits == []


async def test_slack_sdks_rate_limit_handler_works_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr("slack_sdk.http_retry.builtin_async_handlers.asyncio.sleep", fake_sleep)
    with aioresponses() as m:
        m.get(LOGS, status=429, headers={"Retry-After": "3"}, payload={"ok": False, "error": "ratelimited"})
        m.get(LOGS, payload=PAGE)
        response = await make_client([SdkRateLimitHandler(max_retry_count=1)]).logs()
    assert response.status_code == 200
    assert 3 <= slept[0] <= 4


async def test_slack_sdks_server_error_handler_is_asked_about_a_503(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("slack_sdk.http_retry.async_handler.asyncio.sleep", _no_sleep)
    handler = SdkServerErrorHandler(max_retry_count=1, interval_calculator=SdkFixed(0))
    with aioresponses() as m:
        m.get(LOGS, status=503)
        m.get(LOGS, payload=PAGE)
        response = await make_client([handler]).logs()
    assert response.status_code == 200


async def _no_sleep(seconds: float) -> None:
    return None


class RetryConnectionResets(SdkAsyncRetryHandler):
    """A user's handler written against slack_sdk's base class."""

    async def _can_retry_async(self, *, state, request, response=None, error=None):  # type: ignore[no-untyped-def]
        assert request.headers["Authorization"] == ["(redacted)"]
        return isinstance(error, aiohttp.ClientOSError)


async def test_a_subclass_of_slack_sdks_base_handler_is_asked_about_connection_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("slack_sdk.http_retry.async_handler.asyncio.sleep", _no_sleep)
    with aioresponses() as m:
        m.get(LOGS, exception=aiohttp.ClientOSError(104, "reset"))
        m.get(LOGS, payload=PAGE)
        response = await make_client([RetryConnectionResets(max_retry_count=2)]).logs()
    assert response.status_code == 200


def test_budgets_below_zero_are_refused() -> None:
    with pytest.raises(ValueError, match="max_wait_seconds"):
        AsyncServerErrorRetryHandler(max_wait_seconds=-1)
    with pytest.raises(ValueError, match="max_retry_count"):
        AsyncServerErrorRetryHandler(max_retry_count=-1)


def test_slack_sdks_name_for_the_default_list_gives_ours() -> None:
    # Code written against slack_sdk's async_default_handlers() keeps working, with our defaults.
    assert [type(h) for h in async_default_handlers()] == [type(h) for h in default_retry_handlers()]


def test_default_retry_handlers_share_one_budget_setting() -> None:
    assert {h.max_wait_seconds for h in default_retry_handlers(max_wait_seconds=12)} == {12}


async def test_each_response_carries_its_own_requests_and_waits(waits: list[float]) -> None:
    # The pipeline adds these figures up per page instead of diffing the client's counters.
    with aioresponses() as m:
        m.get(LOGS, status=503, body="busy")
        m.get(LOGS, status=429, headers={"Retry-After": "2"}, body='{"ok": false, "error": "ratelimited"}')
        m.get(LOGS, payload=PAGE)
        m.get(LOGS, payload=PAGE)
        client = make_client()
        first = await client.logs()
        second = await client.logs()
    assert (first.requests, second.requests) == (3, 1)
    assert second.wait_seconds == 0.0
    assert client.request_count == 4
