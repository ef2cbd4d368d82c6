"""Completeness evidence in every manifest: recomputed here from the fake server, not from our code."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_slack_audit import __version__
from airflow_provider_slack_audit.client import AsyncAuditLogsClient
from airflow_provider_slack_audit.ingest import Window
from airflow_provider_slack_audit.ingest.evidence import public_base_url
from airflow_provider_slack_audit.ingest.pipeline import ingest_window
from airflow_provider_slack_audit.ingest.spec import IngestSpec
from airflow_provider_slack_audit.testing import FakeAuditLogsServer, ManualClock

from support.landing_invariants import independent_digest
from support.recorded_sleeps import RecordedSleeps

DAY = datetime(2026, 1, 4, tzinfo=timezone.utc)
WINDOW = Window(DAY, DAY + timedelta(hours=4))


@pytest.fixture
async def server() -> AsyncIterator[FakeAuditLogsServer]:
    async with FakeAuditLogsServer(
        events=2000, seed=3, start=DAY - timedelta(hours=1), end=DAY + timedelta(hours=5)
    ) as fake:
        yield fake


def spec_for(tmp_path: Path, **kwargs: Any) -> IngestSpec:
    values: dict[str, Any] = {
        "window": WINDOW,
        "interval": timedelta(hours=1),
        "destination": f"file://{tmp_path}/landing",
        "settle_lag": timedelta(0),
        "limit": 100,
    }
    values.update(kwargs)
    return IngestSpec(**values)


async def land(server: FakeAuditLogsServer, tmp_path: Path, **kwargs: Any) -> dict[str, Any]:
    client = AsyncAuditLogsClient("xoxp-test", base_url=server.base_url)
    summary = await ingest_window(client, spec_for(tmp_path, **kwargs))
    return read_document(summary.manifest)


def read_document(url: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(Path(url.removeprefix("file://")).read_bytes())
    return document


def seconds_of(server: FakeAuditLogsServer, oldest: int, latest: int) -> list[int]:
    return [json.loads(entry)["date_create"] for entry in server.expected_entries(oldest, latest)]


async def test_the_manifest_counts_and_digests_exactly_the_servers_ids(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    manifest = await land(server, tmp_path)

    ids = server.expected_ids(WINDOW.oldest, WINDOW.latest)
    seconds = seconds_of(server, WINDOW.oldest, WINDOW.latest)
    assert manifest["events"] == len(ids) > 0
    assert manifest["id_digest"] == independent_digest(ids)
    assert (manifest["first_date_create"], manifest["last_date_create"]) == (min(seconds), max(seconds))


async def test_each_interval_lists_its_count_digest_and_first_and_last_second(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    manifest = await land(server, tmp_path)

    for item in manifest["intervals"]:
        ids = server.expected_ids(item["oldest"], item["latest"])
        seconds = seconds_of(server, item["oldest"], item["latest"])
        assert item["count"] == len(ids)
        assert item["id_digest"] == independent_digest(ids)
        assert (item["first_date_create"], item["last_date_create"]) == (min(seconds), max(seconds))


async def test_the_run_records_requests_drained_pagination_query_version_and_settle_lag(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    manifest = await land(server, tmp_path, action=("user_login",), settle_lag=timedelta(seconds=1))

    run = manifest["run"]
    assert run["requests"] == len(server.logs_requests()) > 1
    assert run["drained"] is True
    assert [stream["drained"] for stream in run["streams"]] == [True]
    assert run["rate_limited"] == 0
    assert run["settle_lag_seconds"] == 1.0
    assert run["provider_version"] == __version__
    assert manifest["query"] == {"action": ["user_login"], "actor": None, "entity": None}


async def test_every_429_the_client_answered_is_counted(
    tmp_path: Path, instant_retries: RecordedSleeps
) -> None:
    clock = ManualClock(0)
    instant_retries.on_sleep = clock.advance  # each retry wait moves the server's rate-limit clock
    async with FakeAuditLogsServer(
        events=1000,
        seed=3,
        start=DAY,
        end=DAY + timedelta(hours=4),
        requests_per_minute=60,
        rate_limit_burst=2,
        rate_limit_clock=clock,
    ) as server:
        manifest = await land(server, tmp_path)

    run = manifest["run"]
    assert server.rate_limited_count > 0
    assert run["rate_limited"] == server.rate_limited_count
    assert run["requests"] == len(server.logs_requests())


async def test_the_base_url_the_client_read_from_is_recorded(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    text = json.dumps(await land(server, tmp_path))

    assert json.loads(text)["run"]["base_url"] == server.base_url
    assert "xoxp-test" not in text


@pytest.mark.parametrize(
    ("url", "recorded"),
    [
        ("https://user:secret@api.example.com/audit/v1/", "https://api.example.com/audit/v1/"),
        ("https://api.example.com:8443/audit/v1/?token=x#f", "https://api.example.com:8443/audit/v1/"),
        ("http://[::1]:9000/audit/v1/", "http://[::1]:9000/audit/v1/"),
    ],
)
def test_a_recorded_base_url_holds_no_userinfo_query_or_fragment(url: str, recorded: str) -> None:
    assert public_base_url(url) == recorded


async def test_a_resumed_window_keeps_the_evidence_of_intervals_landed_before(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    first = await land(server, tmp_path)
    again = await land(server, tmp_path)

    assert again["run"]["intervals_skipped"] == 4
    assert again["run"]["requests"] == 0
    assert [item["id_digest"] for item in again["intervals"]] == [
        item["id_digest"] for item in first["intervals"]
    ]
    assert again["id_digest"] == first["id_digest"]
