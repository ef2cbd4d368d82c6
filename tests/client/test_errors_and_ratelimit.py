"""Error classification, and the org-wide rate limiter shared by clients of one org."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from datetime import datetime, timedelta, timezone
from typing import Any

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
from airflow_provider_slack_audit.client.ratelimit import CEILING_SHARE, WaitExceedsBudget, infer_priority
from airflow_provider_slack_audit.ingest.errors import kind_of


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
        (ConnectionResetError(), "transient"),
        (ValueError("bad"), "permanent"),
        (TypeError("bad"), "permanent"),
        (KeyError("x"), None),
    ],
)
def test_classify_exception(exc: BaseException, kind: str | None) -> None:
    assert classify_exception(exc) == kind


def test_the_client_leaves_storage_errors_to_the_ingest() -> None:
    error = PermissionError("read-only")
    assert classify_exception(error) is None  # not the client's: a store's, sorted by the ingest
    assert kind_of(error) == "transient"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def paced_at(per_minute: float, **kwargs: Any) -> RateLimiter:
    """A limiter whose pace (CEILING_SHARE of its configured rate) is ``per_minute``, without jitter."""
    return RateLimiter(per_minute / CEILING_SHARE, jitter=0, **kwargs)


def test_the_limiter_paces_a_little_below_the_configured_rate() -> None:
    assert RateLimiter(40).rate == pytest.approx(40 * CEILING_SHARE)


def test_the_limiter_spaces_reservations_by_the_rate() -> None:
    clock = FakeClock()
    limiter = paced_at(60, clock=clock)
    assert [limiter.reserve() for _ in range(4)] == pytest.approx([0.0, 1.0, 2.0, 3.0])


def test_the_limiter_spreads_slots_around_the_interval_keeping_the_mean() -> None:
    clock = FakeClock()
    limiter = RateLimiter(60 / CEILING_SHARE, clock=clock, jitter=0.3, rng=random.Random(1))
    delays = [limiter.reserve() for _ in range(1001)]
    gaps = [later - earlier for earlier, later in itertools.pairwise(delays)]
    assert min(gaps) >= 0.7 - 1e-9 and max(gaps) <= 1.3 + 1e-9
    assert delays[-1] == pytest.approx(1000, rel=0.02)


def test_the_limiter_allows_a_burst_after_a_quiet_period() -> None:
    clock = FakeClock()
    limiter = paced_at(60, burst=3, clock=clock)
    clock.now += 100
    assert [limiter.reserve() for _ in range(4)] == pytest.approx([0.0, 0.0, 0.0, 1.0])


def test_a_pause_holds_every_caller() -> None:
    clock = FakeClock()
    limiter = paced_at(6000, clock=clock)
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
    limiter = paced_at(1200)  # 50 ms apart
    start = time.monotonic()
    await asyncio.gather(*(limiter.acquire() for _ in range(5)))
    assert time.monotonic() - start >= 0.19


def test_a_429_halves_the_rate_once_per_cool_down_and_successes_climb_back_to_the_ceiling() -> None:
    clock = FakeClock()
    limiter = paced_at(60, clock=clock)
    limiter.rate_limited()
    limiter.rate_limited()  # another request in flight when the first 429 came: counted once
    assert limiter.rate == pytest.approx(30)
    clock.now += 10
    limiter.rate_limited()
    assert limiter.rate == pytest.approx(15)
    limiter.succeeded()
    assert limiter.rate == pytest.approx(15), "no time spent succeeding yet"
    for _ in range(300):
        clock.now += 1
        limiter.succeeded()
    assert 15 < limiter.rate < 60, "about 0.1/min a second: 0.15% of the rate for each of its slots"
    for _ in range(300):
        clock.now += 1
        limiter.succeeded()
    assert limiter.rate == pytest.approx(60), "the rate climbs back, never above its ceiling"


def test_the_rate_climbs_by_time_not_by_requests_so_a_slower_process_catches_up() -> None:
    clock = FakeClock()
    fast, slow = paced_at(60, clock=clock), paced_at(60, clock=clock)
    for limiter in (fast, slow):
        limiter.rate_limited()
    clock.now += 10
    for _ in range(10):
        fast.succeeded()
    slow.succeeded()
    assert fast.rate == pytest.approx(slow.rate)


def test_a_lower_rate_spaces_requests_further_apart() -> None:
    clock = FakeClock()
    limiter = paced_at(60, clock=clock)
    limiter.rate_limited()
    assert [limiter.reserve() for _ in range(3)] == pytest.approx([0.0, 2.0, 4.0])


def test_the_rate_never_falls_below_a_floor() -> None:
    clock = FakeClock()
    limiter = RateLimiter(60, clock=clock)
    for _ in range(50):
        clock.now += 100
        limiter.rate_limited()
    assert limiter.rate >= 60 * 0.05


def test_a_reservation_beyond_the_callers_budget_is_refused_and_reserves_nothing() -> None:
    clock = FakeClock()
    limiter = paced_at(60, clock=clock)
    limiter.reserve()
    with pytest.raises(WaitExceedsBudget):
        limiter.reserve(max_wait=0.5)
    assert limiter.reserve(max_wait=1.001) == pytest.approx(1.0)


async def test_a_backfill_hog_never_delays_a_live_request_by_more_than_one_slot() -> None:
    limiter = RateLimiter(1200)  # about 50 ms slots
    interval = 60 / limiter.rate * (1 + limiter.jitter)  # the longest one slot can be
    stop = asyncio.Event()

    async def hog() -> None:
        while not stop.is_set():
            await limiter.acquire("backfill")

    hogs = [asyncio.create_task(hog()) for _ in range(20)]
    await asyncio.sleep(0.3)
    live = []
    for _ in range(5):
        live.append(await limiter.acquire("live"))
        await asyncio.sleep(0.07)
    stop.set()
    await asyncio.gather(*hogs)
    # What a live request was told to wait: never more than the one backfill slot in progress.
    assert max(live) <= interval + 1e-6


async def test_backfill_requests_still_share_the_budget_at_the_full_rate() -> None:
    limiter = paced_at(1200)  # 50 ms apart
    start = time.monotonic()
    await asyncio.gather(*(limiter.acquire("backfill") for _ in range(6)))
    assert time.monotonic() - start >= 5 * 0.05 - 0.01


def test_an_unknown_priority_is_refused() -> None:
    with pytest.raises(ValueError, match="priority"):
        AsyncAuditLogsClient("xoxp-test", priority="urgent")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ended_ago", "priority"),
    [(timedelta(hours=1), "live"), (timedelta(days=2), "live"), (timedelta(days=2, seconds=1), "backfill")],
)
def test_infer_priority_calls_a_window_that_ended_more_than_two_days_ago_a_backfill(
    ended_ago: timedelta, priority: str
) -> None:
    now = datetime(2026, 3, 1, tzinfo=timezone.utc)
    assert infer_priority(now - ended_ago, now) == priority
