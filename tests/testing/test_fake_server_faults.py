"""The fake server misbehaves on demand: org-wide rate limit and scripted or seeded faults."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import aiohttp
import pytest

from airflow_provider_slack_audit.testing import FAULT_KINDS, FakeAuditLogsServer, FaultPlan, ManualClock

from support.fake_api import END, START, Fetch, fetch_from

WINDOW = {"oldest": START, "latest": END - 1, "limit": 50}


async def test_rate_limit_answers_429_with_retry_after_once_the_burst_is_spent(
    session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    async with FakeAuditLogsServer(
        events=300, seed=1, start=START, end=END, clock=clock, requests_per_minute=6, rate_limit_burst=2
    ) as fake:
        replies = [await fetch_from(session, fake, **WINDOW) for _ in range(3)]

    assert [reply.status for reply in replies] == [200, 200, 429]
    assert replies[2].json() == {"ok": False, "error": "rate_limited"}
    # 6 per minute: the next token is at most 10 s away.
    assert 1 <= int(replies[2].headers["Retry-After"]) <= 10
    assert fake.rate_limited_count == 1


async def test_rate_limit_refills_as_time_passes(session: aiohttp.ClientSession, clock: ManualClock) -> None:
    rate_clock = ManualClock(0)
    async with FakeAuditLogsServer(
        events=300,
        seed=1,
        start=START,
        end=END,
        clock=clock,
        requests_per_minute=60,
        rate_limit_burst=1,
        rate_limit_clock=rate_clock,
    ) as fake:
        granted = await fetch_from(session, fake, **WINDOW)
        refused = await fetch_from(session, fake, **WINDOW)
        rate_clock.advance(1.0)
        granted_again = await fetch_from(session, fake, **WINDOW)

    assert [granted.status, refused.status, granted_again.status] == [200, 429, 200]
    assert refused.headers["Retry-After"] == "1"


async def test_rate_limit_is_shared_by_every_token_of_the_org(
    session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    async with FakeAuditLogsServer(
        events=300,
        seed=1,
        start=START,
        end=END,
        clock=clock,
        tokens=("xoxp-a", "xoxp-b"),
        requests_per_minute=1,
        rate_limit_burst=1,
    ) as fake:
        first = await fetch_from(session, fake, token="xoxp-a", **WINDOW)
        second = await fetch_from(session, fake, token="xoxp-b", **WINDOW)
        schemas = await fetch_from(session, fake, "schemas", token=None)

    assert (first.status, second.status, schemas.status) == (200, 429, 200)


async def test_rate_limit_is_off_by_default(fetch: Fetch) -> None:
    statuses = {(await fetch(**WINDOW)).status for _ in range(30)}

    assert statuses == {200}


@pytest.mark.parametrize(
    ("kind", "status", "error"),
    [
        ("http_500", 500, "internal_error"),
        ("http_502", 502, "bad_gateway"),
        ("http_503", 503, "service_unavailable"),
        ("http_504", 504, "gateway_timeout"),
        ("invalid_cursor", 400, "invalid_cursor"),
    ],
)
async def test_error_faults_answer_a_json_error(
    fetch: Fetch, server: FakeAuditLogsServer, kind: str, status: int, error: str
) -> None:
    server.faults.push(kind)

    reply = await fetch(**WINDOW)

    assert (reply.status, reply.json()) == (status, {"ok": False, "error": error})
    assert reply.headers["Content-Type"].startswith("application/json")


@pytest.mark.parametrize(("kind", "status"), [("html_200", 200), ("html_502", 502)])
async def test_html_faults_answer_an_html_page(
    fetch: Fetch, server: FakeAuditLogsServer, kind: str, status: int
) -> None:
    server.faults.push(kind)

    reply = await fetch(**WINDOW)

    assert reply.status == status
    assert reply.headers["Content-Type"].startswith("text/html")
    assert reply.body.startswith(b"<!DOCTYPE html>")


async def test_empty_200_fault_answers_an_empty_body(fetch: Fetch, server: FakeAuditLogsServer) -> None:
    server.faults.push("empty_200")

    reply = await fetch(**WINDOW)

    assert (reply.status, reply.body) == (200, b"")


async def test_bad_entries_fault_answers_entries_that_are_not_a_list(
    fetch: Fetch, server: FakeAuditLogsServer
) -> None:
    server.faults.push("bad_entries")

    reply = await fetch(**WINDOW)

    assert reply.status == 200
    assert not isinstance(reply.json()["entries"], list)


async def test_missing_id_fault_answers_entries_without_id(fetch: Fetch, server: FakeAuditLogsServer) -> None:
    server.faults.push("missing_id")

    entries = (await fetch(**WINDOW)).json()["entries"]

    assert entries
    assert all("id" not in entry and "date_create" in entry for entry in entries)


async def test_drop_fault_closes_the_connection_without_an_answer(
    fetch: Fetch, server: FakeAuditLogsServer
) -> None:
    # Two drops: aiohttp itself resends an idempotent request once when the server hangs up.
    server.faults.push("drop", count=2)

    with pytest.raises(aiohttp.ServerDisconnectedError):
        await fetch(**WINDOW)

    assert [(request.status, request.fault) for request in server.logs_requests()] == [(None, "drop")] * 2


async def test_a_single_drop_is_absorbed_by_aiohttps_own_resend(
    fetch: Fetch, server: FakeAuditLogsServer
) -> None:
    server.faults.push("drop")

    reply = await fetch(**WINDOW)

    assert reply.status == 200
    assert [request.status for request in server.logs_requests()] == [None, 200]


async def test_truncated_fault_cuts_the_body_short_of_its_content_length(
    fetch: Fetch, server: FakeAuditLogsServer
) -> None:
    server.faults.push("truncated")

    with pytest.raises(aiohttp.ClientPayloadError):
        await fetch(**WINDOW)


async def test_slow_fault_outlasts_a_client_timeout(
    session: aiohttp.ClientSession, server: FakeAuditLogsServer
) -> None:
    server.faults.slow_seconds = 2.0
    server.faults.push("slow")

    with pytest.raises(asyncio.TimeoutError):
        async with session.get(
            server.base_url + "logs",
            params={"oldest": START, "latest": END - 1},
            headers={"Authorization": "Bearer xoxp-test"},
            timeout=aiohttp.ClientTimeout(total=0.3),
        ) as response:
            await response.read()


async def test_slow_fault_still_answers_the_right_page(fetch: Fetch, server: FakeAuditLogsServer) -> None:
    expected = await fetch(**WINDOW)
    server.faults.slow_seconds = 0.2
    server.faults.push("slow")

    late = await fetch(**WINDOW)

    assert late.body == expected.body


async def test_scripted_faults_hit_only_the_next_n_logs_requests(
    fetch: Fetch, server: FakeAuditLogsServer
) -> None:
    server.faults.push("http_503", count=2)

    schemas = await fetch("schemas")
    statuses = [(await fetch(**WINDOW)).status for _ in range(3)]

    assert schemas.status == 200
    assert statuses == [503, 503, 200]
    assert server.faults.injected == {"http_503": 2}
    assert [request.fault for request in server.logs_requests()] == ["http_503", "http_503", None]


async def test_a_fault_pushed_with_after_lets_that_many_requests_through_first(
    fetch: Fetch, server: FakeAuditLogsServer
) -> None:
    server.faults.push("invalid_cursor", after=2)
    server.faults.push("http_500", count=2, after=1)

    statuses = [(await fetch(**WINDOW)).status for _ in range(7)]

    assert statuses == [200, 200, 400, 200, 500, 500, 200]
    assert server.faults.pending == 0


async def test_a_retry_after_a_fault_gets_the_page_it_asked_for(
    fetch: Fetch, server: FakeAuditLogsServer
) -> None:
    first = (await fetch(**WINDOW)).json()
    page_two = {**WINDOW, "cursor": first["response_metadata"]["next_cursor"]}
    expected = await fetch(**page_two)
    server.faults.push("http_500")
    server.faults.push("drop", count=2)

    failed = await fetch(**page_two)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await fetch(**page_two)
    retried = await fetch(**page_two)

    assert failed.status == 500
    assert retried.body == expected.body


@pytest.mark.parametrize("kind", FAULT_KINDS)
async def test_every_fault_kind_can_be_injected(
    session: aiohttp.ClientSession, server: FakeAuditLogsServer, kind: str
) -> None:
    server.faults.slow_seconds = 0.05
    server.faults.push(kind)

    with contextlib.suppress(aiohttp.ClientError):
        await fetch_from(session, server, **WINDOW)

    assert server.faults.injected == {kind: 1}
    assert server.logs_requests()[0].fault == kind


def test_fault_rates_draw_the_same_sequence_for_the_same_seed() -> None:
    def draws(seed: int) -> list[Any]:
        plan = FaultPlan(seed=seed, rates={"http_503": 0.2, "drop": 0.1})
        return [plan.next_fault() for _ in range(500)]

    sequence = draws(4)

    assert sequence == draws(4)
    assert sequence != draws(5)
    assert 60 <= sequence.count("http_503") <= 140
    assert 20 <= sequence.count("drop") <= 80
    assert sequence.count(None) > 250


def test_unknown_fault_kind_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown fault 'http_418'.*http_503"):
        FaultPlan().push("http_418")


def test_fault_rates_must_be_probabilities() -> None:
    with pytest.raises(ValueError, match="more than 1"):
        FaultPlan(rates={"http_500": 0.7, "drop": 0.6})


async def test_http_429_asks_for_the_plans_retry_after_in_seconds_or_as_an_http_date(
    session: aiohttp.ClientSession, server: FakeAuditLogsServer
) -> None:
    from email.utils import parsedate_to_datetime

    server.faults.retry_after = 86400
    server.faults.push("http_429")
    server.faults.push("http_429_date")
    in_seconds = await fetch_from(session, server, **WINDOW)
    as_date = await fetch_from(session, server, **WINDOW)

    assert (in_seconds.status, in_seconds.headers["Retry-After"]) == (429, "86400")
    assert as_date.status == 429
    ahead = parsedate_to_datetime(as_date.headers["Retry-After"]).timestamp() - time.time()
    assert 86390 <= ahead <= 86401
    assert server.rate_limited_count == 2


async def test_redirects_point_elsewhere_or_back_at_the_same_url(server: FakeAuditLogsServer) -> None:
    server.faults.push("redirect")
    server.faults.push("redirect_loop")
    async with aiohttp.ClientSession() as session:
        url = server.base_url + "logs?limit=5"
        async with session.get(url, allow_redirects=False) as moved:
            elsewhere = moved.headers["Location"]
        async with session.get(url, allow_redirects=False) as looped:
            same = looped.headers["Location"]

    assert (moved.status, looped.status) == (302, 302)
    assert elsewhere.endswith("/audit/v1/moved") and same == url


async def test_fresh_cursor_serves_the_right_page_with_a_new_cursor_to_where_it_started(
    session: aiohttp.ClientSession, server: FakeAuditLogsServer
) -> None:
    first = await fetch_from(session, server, **WINDOW)
    server.faults.set_rate("fresh_cursor", 1.0)
    cursor = first.json()["response_metadata"]["next_cursor"]
    again = [await fetch_from(session, server, **WINDOW, cursor=cursor) for _ in range(3)]

    cursors = [reply.json()["response_metadata"]["next_cursor"] for reply in again]
    pages = [[entry["id"] for entry in reply.json()["entries"]] for reply in again]
    assert len(set(cursors)) == 3 and cursor not in cursors
    assert pages[0] == pages[1] == pages[2]
    # Each fresh cursor leads back to the same page.
    server.faults.clear()
    replay = await fetch_from(session, server, **WINDOW, cursor=cursors[0])
    assert [entry["id"] for entry in replay.json()["entries"]] == pages[0]


async def test_ok_false_200_is_a_gateways_error_body_with_an_empty_entry_list(
    session: aiohttp.ClientSession, server: FakeAuditLogsServer
) -> None:
    server.faults.ok_false_error = "upstream_timeout"
    server.faults.push("ok_false_200")
    reply = await fetch_from(session, server, **WINDOW)
    assert reply.status == 200
    assert reply.json() == {"ok": False, "error": "upstream_timeout", "entries": []}
