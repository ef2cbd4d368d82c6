"""The client against the fake Audit Logs server: pagination, filters, errors, retries, rate limits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from airflow_provider_slack_audit.client import (
    AsyncAuditLogsClient,
    AsyncRateLimitErrorRetryHandler,
    SlackAuditLogsApiError,
)
from airflow_provider_slack_audit.client.retry import AsyncInvalidResponseRetryHandler
from airflow_provider_slack_audit.testing import FakeAuditLogsServer, FaultPlan

from support.recorded_sleeps import RecordedSleeps

MAX_GARBLED_PAGE_RETRIES = AsyncInvalidResponseRetryHandler().max_retry_count

START = datetime(2026, 1, 1, tzinfo=timezone.utc)
END = START + timedelta(days=1)
OLDEST, LATEST = int(START.timestamp()), int(END.timestamp()) - 1


@pytest.fixture
async def server() -> AsyncIterator[FakeAuditLogsServer]:
    async with FakeAuditLogsServer(events=3000, seed=3, start=START, end=END) as fake:
        yield fake


async def collect_ids(client: AsyncAuditLogsClient, **query: object) -> list[str]:
    return [e.id async for page in client.pages(**query) for e in page.raw_page().entries]  # type: ignore[arg-type]


async def test_pages_return_every_id_once_and_resend_filters_on_every_page(
    server: FakeAuditLogsServer,
) -> None:
    client = AsyncAuditLogsClient("xoxp-test", base_url=server.base_url)
    actions = ["user_login", "file_downloaded", "user_channel_join"]
    ids = await collect_ids(client, oldest=OLDEST, latest=LATEST, limit=25, action=actions)
    assert len(ids) == len(set(ids))
    assert set(ids) == server.expected_ids(OLDEST, LATEST, action=actions)
    requests = server.logs_requests()
    assert len(requests) > 10
    for request in requests:
        assert request.query["oldest"] == str(OLDEST)
        assert request.query["latest"] == str(LATEST)
        assert request.query["limit"] == "25"
        assert request.query["action"] == ",".join(actions)
    assert "cursor" not in requests[0].query
    assert all("cursor" in r.query for r in requests[1:])


async def test_entries_come_newest_first(server: FakeAuditLogsServer) -> None:
    client = AsyncAuditLogsClient("xoxp-test", base_url=server.base_url)
    dates = [
        e.date_create
        async for page in client.pages(oldest=OLDEST, latest=LATEST)
        for e in page.raw_page().entries
    ]
    assert dates == sorted(dates, reverse=True)


@pytest.mark.slow
async def test_a_100000_entry_window_pages_every_id_exactly_once() -> None:
    async with FakeAuditLogsServer(events=100_000, seed=11, start=START, end=END) as server:
        client = AsyncAuditLogsClient("xoxp-test", base_url=server.base_url)
        ids = await collect_ids(client, oldest=OLDEST, latest=LATEST, limit=9999)
        assert len(ids) == 100_000
        assert len(set(ids)) == 100_000
        assert set(ids) == server.expected_ids(OLDEST, LATEST)
        # at most ceil(100000 / 9999): a page runs over the limit to finish its last second
        assert len(server.logs_requests()) <= 11


@pytest.mark.parametrize(
    ("token", "code", "kind"),
    [
        ("xoxp-wrong", "invalid_authentication", "permanent"),
        ("xoxp-nofeature", "feature_not_enabled", "permanent"),
    ],
)
async def test_api_errors_carry_code_status_and_kind(token: str, code: str, kind: str) -> None:
    async with FakeAuditLogsServer(
        events=10, denied_tokens={"xoxp-nofeature": "feature_not_enabled"}
    ) as server:
        client = AsyncAuditLogsClient(token, base_url=server.base_url)
        with pytest.raises(SlackAuditLogsApiError) as info:
            await collect_ids(client, oldest=OLDEST, latest=LATEST)
    assert info.value.error == code
    assert info.value.kind == kind
    assert token not in str(info.value)


async def test_a_range_in_the_future_is_a_permanent_invalid_range(server: FakeAuditLogsServer) -> None:
    client = AsyncAuditLogsClient("xoxp-test", base_url=server.base_url)
    future = int(datetime.now(timezone.utc).timestamp()) + 86_400
    response = await client.logs(oldest=future, latest=future + 10)
    assert response.status_code == 400
    with pytest.raises(SlackAuditLogsApiError) as info:
        response.validate()
    assert (info.value.error, info.value.kind) == ("invalid_range", "permanent")


async def test_schemas_and_actions_need_no_token_and_type_without_raising(
    server: FakeAuditLogsServer,
) -> None:
    client = AsyncAuditLogsClient("xoxp-anything", base_url=server.base_url)
    for response in (await client.schemas(), await client.actions()):
        assert response.status_code == 200
        assert response.typed_body is not None
        assert response.typed_body.entries is None


@pytest.mark.parametrize("fault", ["http_500", "http_502", "http_503", "http_504", "html_502", "truncated"])
async def test_transient_faults_are_retried_to_the_same_result(
    server: FakeAuditLogsServer, fault: str
) -> None:
    client = AsyncAuditLogsClient("xoxp-test", base_url=server.base_url)
    server.faults.push(fault, count=2, after=1)
    ids = await collect_ids(client, oldest=OLDEST, latest=LATEST, limit=200)
    assert len(ids) == len(set(ids))
    assert set(ids) == server.expected_ids(OLDEST, LATEST)
    assert server.faults.injected[fault] == 2


async def test_dropped_connections_are_retried(server: FakeAuditLogsServer) -> None:
    client = AsyncAuditLogsClient("xoxp-test", base_url=server.base_url)
    server.faults.push("drop", count=3)  # aiohttp silently resends a GET once; the rest reach our handlers
    ids = await collect_ids(client, oldest=OLDEST, latest=LATEST, limit=500)
    assert set(ids) == server.expected_ids(OLDEST, LATEST)


async def test_a_slow_response_past_the_timeout_is_retried() -> None:
    async with FakeAuditLogsServer(events=50, start=START, end=END) as server:
        server.faults.slow_seconds = 3
        server.faults.push("slow", count=1)
        client = AsyncAuditLogsClient("xoxp-test", base_url=server.base_url, timeout=1)
        ids = await collect_ids(client, oldest=OLDEST, latest=LATEST)
        assert set(ids) == server.expected_ids(OLDEST, LATEST)


async def test_429s_wait_for_retry_after_and_then_succeed(instant_retries: RecordedSleeps) -> None:
    waits = instant_retries.durations
    async with FakeAuditLogsServer(
        events=200, start=START, end=END, requests_per_minute=60, rate_limit_burst=1
    ) as server:
        handler = AsyncRateLimitErrorRetryHandler(jitter=0)
        client = AsyncAuditLogsClient("xoxp-test", base_url=server.base_url, retry_handlers=[handler])
        await client.logs(oldest=OLDEST, latest=LATEST)
        second = await client.logs(oldest=OLDEST, latest=LATEST)
    # The bucket is empty for the second call; the fake sleep does not refill it, so the handler
    # retries until its count runs out, each time waiting the server's Retry-After.
    assert second.status_code == 429
    assert waits
    assert all(w >= 1 for w in waits)
    assert server.rate_limited_count == len(waits) + 1


@pytest.mark.parametrize("fault", ["html_200", "empty_200", "bad_entries", "missing_id"])
async def test_a_garbled_2xx_page_is_requested_again(server: FakeAuditLogsServer, fault: str) -> None:
    client = AsyncAuditLogsClient("xoxp-test", base_url=server.base_url)
    server.faults.push(fault, count=MAX_GARBLED_PAGE_RETRIES, after=1)
    ids = await collect_ids(client, oldest=OLDEST, latest=LATEST, limit=200)
    assert len(ids) == len(set(ids))
    assert set(ids) == server.expected_ids(OLDEST, LATEST)


async def test_a_page_garbled_on_every_retry_raises_a_transient_invalid_response(
    server: FakeAuditLogsServer,
) -> None:
    client = AsyncAuditLogsClient("xoxp-test", base_url=server.base_url)
    server.faults.push("html_200", count=MAX_GARBLED_PAGE_RETRIES + 1)
    with pytest.raises(SlackAuditLogsApiError) as info:
        await collect_ids(client, oldest=OLDEST, latest=LATEST)
    assert (info.value.error, info.value.kind) == ("invalid_response", "transient")
    assert len(server.logs_requests()) == MAX_GARBLED_PAGE_RETRIES + 1


def data_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith((".jsonl", ".jsonl.gz"))]


@pytest.mark.parametrize(
    ("code", "kind"), [("service_unavailable", "transient"), ("invalid_auth", "permanent")]
)
async def test_a_gateways_ok_false_200_commits_nothing_through_ingest_window(
    tmp_path: Path, code: str, kind: str
) -> None:
    from airflow_provider_slack_audit.ingest import Window
    from airflow_provider_slack_audit.ingest.pipeline import ingest_window
    from airflow_provider_slack_audit.ingest.spec import IngestSpec

    window = Window(START, START + timedelta(hours=2))
    faults = FaultPlan(rates={"ok_false_200": 1.0}, ok_false_error=code)
    async with FakeAuditLogsServer(events=300, start=START, end=END, faults=faults) as server:
        spec = IngestSpec(
            window=window,
            interval=timedelta(hours=1),
            destination=f"file://{tmp_path}",
            settle_lag=timedelta(0),
            limit=50,
        )
        with pytest.raises(SlackAuditLogsApiError) as info:
            await ingest_window(AsyncAuditLogsClient("xoxp-test", base_url=server.base_url), spec)

    assert (info.value.error, info.value.kind) == (code, kind)
    assert data_files(tmp_path) == []
