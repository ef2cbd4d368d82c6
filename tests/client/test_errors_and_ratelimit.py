"""Error classification, and the org-wide rate limiter shared by clients of one org."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from airflow_provider_slack_audit.client import (
    AsyncAuditLogsClient,
    RateLimiter,
    SlackAuditLogsApiError,
    classify,
    classify_exception,
    shared_rate_limiter,
)


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (401, "invalid_authentication", "permanent"),
        (401, "missing_authentication", "permanent"),
        (403, "feature_not_enabled", "permanent"),
        (403, "team_not_authorized", "permanent"),
        (403, "user_not_authorized", "permanent"),
        (400, "invalid_action", "permanent"),
        (400, "invalid_range", "permanent"),
        (404, "bad_endpoint", "permanent"),
        (405, "method_not_allowed", "permanent"),
        (400, "invalid_cursor", "cursor"),
        (429, "rate_limited", "transient"),
        (429, "ratelimited", "transient"),
        (429, None, "transient"),
        (500, None, "transient"),
        (502, "invalid_authentication", "transient"),  # a proxy's 5xx says nothing about the token
        (503, "service_unavailable", "transient"),
        (504, None, "transient"),
        (418, None, "permanent"),
        (200, "invalid_response", "transient"),
    ],
)
def test_classify(status: int, code: str | None, kind: str) -> None:
    assert classify(status, code) == kind


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (SlackAuditLogsApiError("x", status_code=400, error="invalid_cursor"), "cursor"),
        (aiohttp.ServerDisconnectedError(), "transient"),
        (asyncio.TimeoutError(), "transient"),
        (PermissionError("read-only"), "transient"),
        (ValueError("bad"), "permanent"),
        (TypeError("bad"), "permanent"),
        (KeyError("x"), None),
    ],
)
def test_classify_exception(exc: BaseException, kind: str | None) -> None:
    assert classify_exception(exc) == kind


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_limiter_spaces_reservations_by_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(60, clock=clock)
    assert [limiter.reserve() for _ in range(4)] == [0.0, 1.0, 2.0, 3.0]


def test_the_limiter_allows_a_burst_after_a_quiet_period() -> None:
    clock = FakeClock()
    limiter = RateLimiter(60, burst=3, clock=clock)
    clock.now += 100
    assert [limiter.reserve() for _ in range(4)] == [0.0, 0.0, 0.0, 1.0]


def test_a_pause_holds_every_caller() -> None:
    clock = FakeClock()
    limiter = RateLimiter(6000, clock=clock)
    limiter.pause(30)
    assert limiter.reserve() == pytest.approx(30)
    assert limiter.reserve() == pytest.approx(30.01)


def test_the_limiter_refuses_a_rate_of_zero() -> None:
    with pytest.raises(ValueError, match="requests_per_minute must be > 0"):
        RateLimiter(0)


def test_clients_of_one_org_share_a_limiter_and_other_orgs_do_not() -> None:
    a = AsyncAuditLogsClient("xoxp-org-a", base_url="http://127.0.0.1:1/", requests_per_minute=50)
    b = AsyncAuditLogsClient("xoxp-org-a", base_url="http://127.0.0.1:1", requests_per_minute=50)
    c = AsyncAuditLogsClient("xoxp-org-c", base_url="http://127.0.0.1:1/", requests_per_minute=50)
    assert a.rate_limiter is b.rate_limiter
    assert a.rate_limiter is not c.rate_limiter
    assert shared_rate_limiter("http://127.0.0.1:1/", "xoxp-org-a", 99) is a.rate_limiter


def test_without_a_rate_the_client_does_not_pace() -> None:
    assert AsyncAuditLogsClient("xoxp-test").rate_limiter is None


async def test_acquire_sleeps_for_its_slot() -> None:
    limiter = RateLimiter(1200)  # 50 ms apart
    start = time.monotonic()
    await asyncio.gather(*(limiter.acquire() for _ in range(5)))
    assert time.monotonic() - start >= 0.19
