"""Pagination always ends: pages that do not move older stop with a clear transient error, and no
query reads more pages than its window can hold."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from aioresponses import aioresponses

from airflow_provider_slack_audit.client import AsyncAuditLogsClient, SlackAuditLogsApiError
from airflow_provider_slack_audit.client.query import MAX_STALLED_PAGES, page_cap
from airflow_provider_slack_audit.testing import FakeAuditLogsServer, FaultPlan

START = datetime(2026, 1, 1, tzinfo=timezone.utc)
END = START + timedelta(hours=2)
OLDEST, LATEST = int(START.timestamp()), int(END.timestamp()) - 1
BASE = "http://127.0.0.1:9/audit/v1/"
LOGS = re.compile(r"^http://127\.0\.0\.1:9/audit/v1/logs(\?.*)?$")


async def read_all(client: AsyncAuditLogsClient, **query: object) -> list[str]:
    query = {"oldest": OLDEST, "latest": LATEST, "limit": 20, **query}
    return [e.id async for page in client.pages(**query) for e in page.raw_page().entries]  # type: ignore[arg-type]


def page(ids: list[str], second: int, cursor: str) -> dict[str, object]:
    entries = [{"id": i, "date_create": second} for i in ids]
    return {"entries": entries, "response_metadata": {"next_cursor": cursor}}


async def test_a_server_handing_out_a_fresh_cursor_on_every_page_is_stopped_after_a_few_pages() -> None:
    async with FakeAuditLogsServer(
        events=400, start=START, end=END, faults=FaultPlan(rates={"fresh_cursor": 1.0})
    ) as server:
        client = AsyncAuditLogsClient("xoxp-test", base_url=server.base_url)
        with pytest.raises(SlackAuditLogsApiError) as info:
            await read_all(client)
        sent = len(server.logs_requests())
    assert (info.value.kind, info.value.error) == ("transient", "pagination_stalled")
    assert "did not move older" in info.value.message
    assert sent == MAX_STALLED_PAGES + 1


async def test_a_fresh_cursor_now_and_then_does_not_stop_a_read_that_moves_on() -> None:
    faults = FaultPlan()
    faults.push("fresh_cursor", count=MAX_STALLED_PAGES - 1, after=2)
    async with FakeAuditLogsServer(events=400, start=START, end=END, faults=faults) as server:
        ids = await read_all(AsyncAuditLogsClient("xoxp-test", base_url=server.base_url))
        assert set(ids) == server.expected_ids(OLDEST, LATEST)


async def test_two_cursors_handed_back_in_turn_are_stopped() -> None:
    with aioresponses() as m:
        m.get(LOGS, payload=page(["a", "b"], 100, "c1"))
        for _ in range(5):
            m.get(LOGS, payload=page(["c", "d"], 90, "c2"))
            m.get(LOGS, payload=page(["a", "b"], 100, "c1"))
        with pytest.raises(SlackAuditLogsApiError) as info:
            await read_all(AsyncAuditLogsClient("xoxp-test", base_url=BASE), oldest=0, latest=200)
    assert info.value.error == "pagination_stalled"


async def test_a_read_stops_with_a_transient_error_past_its_page_cap() -> None:
    with aioresponses() as m:
        for n in range(10):
            m.get(LOGS, payload=page([f"id{n}"], 100 - n, f"c{n}"))
        with pytest.raises(SlackAuditLogsApiError) as info:
            await read_all(
                AsyncAuditLogsClient("xoxp-test", base_url=BASE), oldest=0, latest=200, max_pages=4
            )
        assert len(m.requests[("GET", next(iter(m.requests))[1])]) <= 4 if m.requests else True
    assert (info.value.kind, info.value.error) == ("transient", "too_many_pages")


async def test_the_default_page_cap_comes_from_the_window() -> None:
    # A window of 3 seconds holds at most 4 pages (a page never ends inside a second).
    assert page_cap(10, 12) == 4
    assert page_cap(None, 12) is None
    with aioresponses() as m:
        for n in range(10):
            m.get(LOGS, payload=page([f"id{n}"], 12, f"c{n}"))
        with pytest.raises(SlackAuditLogsApiError) as info:
            await read_all(AsyncAuditLogsClient("xoxp-test", base_url=BASE), oldest=10, latest=12)
    assert info.value.error == "too_many_pages"


@pytest.mark.parametrize("bad", [0, -1, True, 2.5])
async def test_a_page_cap_that_is_not_a_positive_int_is_refused_before_any_request(bad: object) -> None:
    with aioresponses() as m, pytest.raises((TypeError, ValueError), match="max_pages"):
        await read_all(AsyncAuditLogsClient("xoxp-test", base_url=BASE), max_pages=bad)
    assert not m.requests
