"""ingest_window against the fake Audit Logs server: exact id sets through every kind of trouble."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from airflow_provider_slack_audit.client import (
    AsyncAuditLogsClient,
    AuditLogsResponse,
    SlackAuditLogsApiError,
)
from airflow_provider_slack_audit.client.async_client import MAX_GARBLED_PAGE_RETRIES
from airflow_provider_slack_audit.client.retry import default_retry_handlers
from airflow_provider_slack_audit.ingest import Window, read_manifest
from airflow_provider_slack_audit.ingest.pipeline import IngestSpec, ingest_window
from airflow_provider_slack_audit.testing import FakeAuditLogsServer

DAY = datetime(2026, 1, 4, tzinfo=timezone.utc)
WINDOW = Window(DAY, DAY + timedelta(hours=6))


@pytest.fixture
async def server() -> AsyncIterator[FakeAuditLogsServer]:
    # The span reaches past the window on both sides, so boundary seconds have neighbours to leak.
    async with FakeAuditLogsServer(
        events=6000, seed=7, start=DAY - timedelta(hours=1), end=DAY + timedelta(hours=7)
    ) as fake:
        yield fake


pytestmark = pytest.mark.usefixtures("instant_retries")


def client_for(server: FakeAuditLogsServer, **kwargs: object) -> AsyncAuditLogsClient:
    return AsyncAuditLogsClient("xoxp-test", base_url=server.base_url, **kwargs)  # type: ignore[arg-type]


def spec_for(tmp_path: Path, **kwargs: object) -> IngestSpec:
    values: dict[str, object] = {
        "window": WINDOW,
        "interval": timedelta(hours=1),
        "destination": f"file://{tmp_path}/landing",
        "settle_lag": timedelta(0),
        "limit": 200,
    }
    values.update(kwargs)
    return IngestSpec(**values)  # type: ignore[arg-type]


def landed_ids(manifest: str) -> list[str]:
    return [json.loads(line)["id"] for line in read_manifest(manifest).iter_lines()]


def data_files(tmp_path: Path) -> dict[str, bytes]:
    root = tmp_path / "landing"
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.jsonl*"))}


async def test_a_window_lands_exactly_the_servers_events(server: FakeAuditLogsServer, tmp_path: Path) -> None:
    summary = await ingest_window(client_for(server), spec_for(tmp_path))
    ids = landed_ids(summary.manifest)
    assert len(ids) == len(set(ids))
    assert set(ids) == server.expected_ids(WINDOW.oldest, WINDOW.latest)
    assert summary.intervals_landed == 6
    assert summary.events == len(ids)
    assert summary.pages >= 6


async def test_boundary_seconds_land_in_exactly_one_interval(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    summary = await ingest_window(client_for(server), spec_for(tmp_path))
    manifest = read_manifest(summary.manifest)
    for item in manifest.intervals:
        expected = server.expected_ids(item.oldest, item.latest)
        with gzip.open(item.data_path.open("rb")) as data:
            got = {json.loads(line)["id"] for line in data}
        assert got == expected


async def test_entries_land_byte_for_byte_as_the_api_sent_them(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    summary = await ingest_window(client_for(server), spec_for(tmp_path, compression=None))
    lines = list(read_manifest(summary.manifest).iter_lines())
    sent = server.expected_entries(WINDOW.oldest, WINDOW.latest)
    assert sorted(lines) == sorted(bytes(e) for e in sent)


async def test_filters_are_resent_on_every_page(server: FakeAuditLogsServer, tmp_path: Path) -> None:
    actions = ("user_login", "file_downloaded")
    summary = await ingest_window(client_for(server), spec_for(tmp_path, action=actions, limit=20))
    assert set(landed_ids(summary.manifest)) == server.expected_ids(
        WINDOW.oldest, WINDOW.latest, action=actions
    )
    logs = server.logs_requests()
    assert len(logs) > 12  # several pages per interval
    for request in logs:
        assert request.query["action"] == "user_login,file_downloaded"
        assert "oldest" in request.query
        assert "latest" in request.query


async def test_a_rerun_skips_committed_intervals_and_rewrites_nothing(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    await ingest_window(client_for(server), spec_for(tmp_path))
    before = data_files(tmp_path)
    server.reset_log()
    summary = await ingest_window(client_for(server), spec_for(tmp_path))
    assert summary.intervals_skipped == 6
    assert summary.intervals_landed == 0
    assert server.logs_requests() == []
    assert data_files(tmp_path) == before


async def test_overwrite_refetches_and_writes_identical_bytes(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    await ingest_window(client_for(server), spec_for(tmp_path))
    before = data_files(tmp_path)
    summary = await ingest_window(client_for(server), spec_for(tmp_path, overwrite=True))
    assert summary.intervals_landed == 6
    assert data_files(tmp_path) == before


async def test_a_failure_keeps_earlier_intervals_and_the_next_try_resumes(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    spec = spec_for(tmp_path)
    client = client_for(server, retry_handlers=[])
    first = server.expected_ids(
        WINDOW.intervals(spec.interval)[0].oldest, WINDOW.intervals(spec.interval)[0].latest
    )
    pages_of_first = -(-len(first) // 200) or 1
    server.faults.push("http_503", count=1, after=pages_of_first)
    with pytest.raises(SlackAuditLogsApiError) as info:
        await ingest_window(client, spec)
    assert info.value.kind == "transient"
    committed = [p for p in data_files(tmp_path)]
    assert len(committed) == 1  # the first interval, and nothing partial under a final name

    server.reset_log()
    summary = await ingest_window(client, spec)
    assert summary.intervals_skipped == 1
    assert summary.intervals_landed == 5
    first_interval = WINDOW.intervals(spec.interval)[0]
    assert all(int(r.query["oldest"]) > first_interval.latest for r in server.logs_requests())
    assert set(landed_ids(summary.manifest)) == server.expected_ids(WINDOW.oldest, WINDOW.latest)


async def test_server_errors_within_the_retry_budget_are_invisible(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    server.faults.push("http_502", count=2)
    server.faults.push("drop", count=1)
    summary = await ingest_window(client_for(server), spec_for(tmp_path))
    assert set(landed_ids(summary.manifest)) == server.expected_ids(WINDOW.oldest, WINDOW.latest)


async def test_an_expired_cursor_rereads_the_interval_without_duplicates(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    server.faults.push("invalid_cursor", count=1, after=2)
    summary = await ingest_window(client_for(server), spec_for(tmp_path, limit=50))
    ids = landed_ids(summary.manifest)
    assert summary.cursor_restarts == 1
    assert len(ids) == len(set(ids))
    assert set(ids) == server.expected_ids(WINDOW.oldest, WINDOW.latest)


async def test_a_permanent_error_fails_before_anything_is_committed(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    client = AsyncAuditLogsClient("xoxp-wrong", base_url=server.base_url)
    with pytest.raises(SlackAuditLogsApiError) as info:
        await ingest_window(client, spec_for(tmp_path))
    assert info.value.kind == "permanent"
    assert info.value.error == "invalid_authentication"
    assert data_files(tmp_path) == {}


async def test_a_page_garbled_past_the_retries_is_never_committed(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    server.faults.push("missing_id", count=MAX_GARBLED_PAGE_RETRIES + 1)
    with pytest.raises(SlackAuditLogsApiError) as info:
        await ingest_window(client_for(server, retry_handlers=default_retry_handlers()), spec_for(tmp_path))
    assert info.value.error == "invalid_response"
    assert info.value.kind == "transient"
    assert data_files(tmp_path) == {}


async def test_the_last_interval_waits_for_the_settle_lag(
    server: FakeAuditLogsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr("airflow_provider_slack_audit.ingest.pipeline.asyncio.sleep", fake_sleep)
    now = WINDOW.end + timedelta(minutes=1)
    spec = spec_for(tmp_path, settle_lag=timedelta(minutes=5))
    await ingest_window(client_for(server), spec, now=lambda: now)
    assert slept == [240.0]


async def test_cancellation_leaves_no_partial_file_and_a_new_run_completes(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    server.faults.push("slow", count=1, after=8)
    task = asyncio.create_task(ingest_window(client_for(server), spec_for(tmp_path, limit=50)))
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    root = tmp_path / "landing"
    assert not [p for p in root.rglob("*") if ".tmp" in p.name]
    summary = await ingest_window(client_for(server), spec_for(tmp_path, limit=50))
    assert set(landed_ids(summary.manifest)) == server.expected_ids(WINDOW.oldest, WINDOW.latest)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"interval": timedelta(milliseconds=10)}, "shorter than one second"),
        ({"interval": timedelta(seconds=1)}, "at most 100000 per window"),
        ({"destination": " "}, "destination is empty"),
        ({"action": tuple(f"a{i}" for i in range(31))}, "at most 30"),
        ({"compression": "zstd"}, "compression must be 'gzip' or None"),
        ({"settle_lag": timedelta(seconds=-1)}, "settle_lag"),
        ({"limit": 10_000}, "between 1 and 9999"),
    ],
)
async def test_a_bad_spec_fails_before_any_request(
    server: FakeAuditLogsServer, tmp_path: Path, change: dict[str, object], message: str
) -> None:
    spec = spec_for(tmp_path, window=Window(DAY, DAY + timedelta(days=2)), **change)
    with pytest.raises((ValueError, TypeError), match=message):
        await ingest_window(client_for(server), spec)
    assert server.requests == []


def test_the_spec_round_trips_through_json() -> None:
    spec = IngestSpec(
        window=WINDOW,
        interval=timedelta(minutes=30),
        destination="s3://bucket/audit",
        destination_conn_id="aws",
        action=("user_login",),
        actor="W1",
        entity="C1",
        compression=None,
        settle_lag=timedelta(seconds=90),
        limit=500,
        overwrite=True,
    )
    data = json.loads(json.dumps(spec.to_json()))
    assert IngestSpec.from_json(data) == spec


def scripted_client(pages: list[list[tuple[str, int]]]) -> AsyncAuditLogsClient:
    """A client whose every query returns these pages (entries as (id, date_create)), newest first."""
    client = AsyncAuditLogsClient("xoxp-test", base_url="http://127.0.0.1:1/audit/v1/")

    async def pages_of(**query: object) -> AsyncIterator[AuditLogsResponse]:
        for number, page in enumerate(pages):
            body = {
                "entries": [{"id": i, "date_create": t} for i, t in page],
                "response_metadata": {"next_cursor": "" if number == len(pages) - 1 else f"c{number}"},
            }
            yield AuditLogsResponse(
                url="http://127.0.0.1:1/logs", status_code=200, raw_body=json.dumps(body), headers={}
            )

    client.pages = pages_of  # type: ignore[method-assign]
    return client


T0 = WINDOW.oldest


async def test_an_entry_repeated_across_a_page_boundary_lands_once(tmp_path: Path) -> None:
    client = scripted_client([[("a", T0 + 10), ("b", T0 + 9)], [("b", T0 + 9), ("c", T0 + 8)]])
    summary = await ingest_window(client, spec_for(tmp_path, window=Window(DAY, DAY + timedelta(hours=1))))
    assert landed_ids(summary.manifest) == ["a", "b", "c"]
    assert summary.duplicates == 1


async def test_entries_out_of_newest_first_order_are_reread_remembering_every_id(tmp_path: Path) -> None:
    # "a" comes back after older entries: the last-second dedup cannot see it, so the interval is
    # read again with every id remembered.
    client = scripted_client([[("a", T0 + 10), ("b", T0 + 9)], [("a", T0 + 10), ("c", T0 + 8)]])
    summary = await ingest_window(client, spec_for(tmp_path, window=Window(DAY, DAY + timedelta(hours=1))))
    assert landed_ids(summary.manifest) == ["a", "b", "c"]
    assert summary.duplicates == 1
