"""ingest_window against the fake Audit Logs server: exact id sets through every kind of trouble."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_slack_audit.client import (
    AsyncAuditLogsClient,
    AuditLogsResponse,
    SlackAuditLogsApiError,
)
from airflow_provider_slack_audit.client.async_client import MAX_GARBLED_PAGE_RETRIES
from airflow_provider_slack_audit.client.retry import default_retry_handlers
from airflow_provider_slack_audit.ingest import Window, read_manifest
from airflow_provider_slack_audit.ingest.errors import EvidenceLossError, InvalidEntryError
from airflow_provider_slack_audit.ingest.landing import IntervalWriter
from airflow_provider_slack_audit.ingest.outcome import failure_outcome
from airflow_provider_slack_audit.ingest.pipeline import ingest_window
from airflow_provider_slack_audit.ingest.routing import DEDUP_HORIZON_SECONDS
from airflow_provider_slack_audit.ingest.spec import IngestSpec
from airflow_provider_slack_audit.testing import FakeAuditLogsServer

from support.audit_entries import manifest_document
from support.scripted_client import ScriptedClient

DAY = datetime(2026, 1, 4, tzinfo=timezone.utc)
WINDOW = Window(DAY, DAY + timedelta(hours=6))


@pytest.fixture
async def server() -> AsyncIterator[FakeAuditLogsServer]:
    # The span reaches past the window on both sides, so boundary seconds have neighbours to leak.
    async with FakeAuditLogsServer(
        events=6000, seed=7, start=DAY - timedelta(hours=1), end=DAY + timedelta(hours=7)
    ) as fake:
        yield fake


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


async def test_a_failure_keeps_the_intervals_already_streamed_and_the_next_try_resumes(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    spec = spec_for(tmp_path)
    client = client_for(server, retry_handlers=[])
    newest = WINDOW.intervals(spec.interval)[-1]
    pages_of_newest = -(-len(server.expected_ids(newest.oldest, newest.latest)) // 200)
    # Pages come newest first: the failure hits once the stream is past the newest interval.
    server.faults.push("http_503", count=1, after=pages_of_newest + 1)
    with pytest.raises(SlackAuditLogsApiError) as info:
        await ingest_window(client, spec)
    assert info.value.kind == "transient"
    assert list(data_files(tmp_path)) == [f"dt=2026-01-04/slack_audit_{newest.key}.jsonl.gz"]

    server.reset_log()
    summary = await ingest_window(client, spec)
    assert (summary.intervals_skipped, summary.intervals_landed, summary.queries) == (1, 5, 1)
    requests = server.logs_requests()
    assert {(r.query["oldest"], r.query["latest"]) for r in requests} == {
        (str(WINDOW.oldest), str(newest.oldest - 1))
    }
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


def scripted_client(pages: list[list[tuple[str, int]]]) -> ScriptedClient:
    return ScriptedClient(pages)


T0 = WINDOW.oldest


async def test_an_entry_repeated_across_a_page_boundary_lands_once(tmp_path: Path) -> None:
    client = scripted_client([[("a", T0 + 10), ("b", T0 + 9)], [("b", T0 + 9), ("c", T0 + 8)]])
    summary = await ingest_window(client, spec_for(tmp_path, window=Window(DAY, DAY + timedelta(hours=1))))
    assert landed_ids(summary.manifest) == ["a", "b", "c"]
    assert summary.duplicates == 1


async def test_an_id_repeated_at_another_second_lands_once(tmp_path: Path) -> None:
    # "b" again 7 seconds older (and on the next page): the same event, not a second one.
    client = scripted_client([[("a", T0 + 10), ("b", T0 + 9)], [("c", T0 + 8), ("b", T0 + 2)]])
    summary = await ingest_window(client, spec_for(tmp_path, window=Window(DAY, DAY + timedelta(hours=1))))
    assert landed_ids(summary.manifest) == ["a", "b", "c"]
    assert summary.duplicates == 1
    assert summary.queries == 1, "no re-read: newest-first order held"


async def test_an_id_repeated_in_another_interval_within_the_horizon_lands_once(tmp_path: Path) -> None:
    # 10-minute files: "b" at 00:50 and again at 00:05 would otherwise be in two files.
    client = scripted_client([[("a", T0 + 3001), ("b", T0 + 3000)], [("c", T0 + 1200), ("b", T0 + 300)]])
    spec = spec_for(tmp_path, window=Window(DAY, DAY + timedelta(hours=1)), interval=timedelta(minutes=10))
    summary = await ingest_window(client, spec)
    assert sorted(landed_ids(summary.manifest)) == ["a", "b", "c"]
    assert summary.duplicates == 1


async def test_ids_are_remembered_for_the_dedup_horizon_then_forgotten(tmp_path: Path) -> None:
    # Memory stays bounded: ids live at least DEDUP_HORIZON_SECONDS (of date_create) and at most two
    # horizons. "b" repeated 2 horizons + 2 s later (past two generations) is no longer recognised.
    horizon = DEDUP_HORIZON_SECONDS
    far = 2 * horizon + 60
    pages = [
        [("a", T0 + far + 10), ("b", T0 + far)],
        [("c", T0 + far - horizon - 1), ("d", T0 + far - 2 * horizon - 2)],
        [("b", T0 + far - 2 * horizon - 3)],
    ]
    window = Window(DAY, DAY + timedelta(seconds=far + 11))
    summary = await ingest_window(
        scripted_client(pages), spec_for(tmp_path, window=window, interval=timedelta(days=1))
    )
    assert sorted(landed_ids(summary.manifest)) == ["a", "b", "b", "c", "d"]
    assert summary.duplicates == 0


async def test_entries_out_of_newest_first_order_are_reread_remembering_every_id(tmp_path: Path) -> None:
    # "a" comes back after older entries: the last-second dedup cannot see it, so the interval is
    # read again with every id remembered.
    client = scripted_client([[("a", T0 + 10), ("b", T0 + 9)], [("a", T0 + 10), ("c", T0 + 8)]])
    summary = await ingest_window(client, spec_for(tmp_path, window=Window(DAY, DAY + timedelta(hours=1))))
    assert landed_ids(summary.manifest) == ["a", "b", "c"]
    assert summary.duplicates == 1


async def test_a_reconcile_keeps_ids_the_api_no_longer_returns_and_adds_the_late_ones(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hour = Window(DAY, DAY + timedelta(hours=1))
    await ingest_window(
        scripted_client([[("a", T0 + 10), ("b", T0 + 9), ("c", T0 + 8)]]), spec_for(tmp_path, window=hour)
    )
    # "b" is gone from the API (retention, a narrower token); "d" arrived late.
    client = scripted_client([[("a", T0 + 10), ("c", T0 + 8), ("d", T0 + 7)]])

    summary = await ingest_window(client, spec_for(tmp_path, window=hour, reconcile=True))

    assert sorted(landed_ids(summary.manifest)) == ["a", "b", "c", "d"]
    assert (summary.late_events, summary.vanished_kept, summary.intervals_reconciled) == (1, 1, 1)
    manifest = manifest_document(summary.manifest)
    (item,) = manifest["intervals"]
    assert (item["count"], item["stats"]["late_events"], item["stats"]["vanished_kept"]) == (4, 1, 1)
    assert "1 of its 3 landed ids are no longer returned by the API" in caplog.text


async def test_a_reconcile_that_only_finds_fewer_ids_leaves_the_interval_as_landed(tmp_path: Path) -> None:
    hour = Window(DAY, DAY + timedelta(hours=1))
    await ingest_window(scripted_client([[("a", T0 + 10), ("b", T0 + 9)]]), spec_for(tmp_path, window=hour))
    before = data_files(tmp_path)

    summary = await ingest_window(
        scripted_client([[("a", T0 + 10)]]), spec_for(tmp_path, window=hour, reconcile=True)
    )

    assert data_files(tmp_path) == before
    assert sorted(landed_ids(summary.manifest)) == ["a", "b"]
    assert (summary.late_events, summary.vanished_kept, summary.intervals_reconciled) == (0, 1, 0)


# One request stream per window ---------------------------------------------------------------------


@pytest.mark.parametrize("interval", [timedelta(hours=1), timedelta(minutes=10), timedelta(hours=6)])
async def test_a_window_is_one_query_with_the_apis_minimum_requests_whatever_the_interval(
    server: FakeAuditLogsServer, tmp_path: Path, interval: timedelta
) -> None:
    summary = await ingest_window(client_for(server), spec_for(tmp_path, interval=interval, limit=500))
    events = len(server.expected_ids(WINDOW.oldest, WINDOW.latest))
    requests = server.logs_requests()
    assert summary.queries == 1
    assert summary.intervals_landed == len(WINDOW.intervals(interval))
    assert len(requests) <= -(-events // 500) + 1
    assert {(r.query["oldest"], r.query["latest"]) for r in requests} == {
        (str(WINDOW.oldest), str(WINDOW.latest))
    }
    assert "cursor" not in requests[0].query
    assert set(landed_ids(summary.manifest)) == server.expected_ids(WINDOW.oldest, WINDOW.latest)


async def test_a_try_failed_after_half_the_window_resumes_with_the_minimum_requests_for_the_rest(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    spec = spec_for(tmp_path, limit=100)
    events = len(server.expected_ids(WINDOW.oldest, WINDOW.latest))
    server.faults.push("http_503", count=1, after=-(-events // 100) // 2)
    with pytest.raises(SlackAuditLogsApiError):
        await ingest_window(client_for(server, retry_handlers=[]), spec)
    landing_files = data_files(tmp_path)
    assert 0 < len(landing_files) < len(WINDOW.intervals(spec.interval))

    server.reset_log()
    summary = await ingest_window(client_for(server), spec)
    remaining = sum(
        len(server.expected_ids(i.oldest, i.latest))
        for i in WINDOW.intervals(spec.interval)
        if f"dt=2026-01-04/slack_audit_{i.key}.jsonl.gz" not in landing_files
    )
    assert summary.intervals_skipped == len(landing_files)
    assert len(server.logs_requests()) <= -(-remaining // 100) + 1
    assert set(landed_ids(summary.manifest)) == server.expected_ids(WINDOW.oldest, WINDOW.latest)


async def test_an_expired_cursor_never_rereads_the_intervals_the_stream_already_committed(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    newest = WINDOW.intervals(timedelta(hours=1))[-1]
    pages_of_newest = -(-len(server.expected_ids(newest.oldest, newest.latest)) // 50)
    server.faults.push("invalid_cursor", count=1, after=pages_of_newest + 2)
    summary = await ingest_window(client_for(server), spec_for(tmp_path, limit=50))

    assert (summary.cursor_restarts, summary.queries) == (1, 2)
    restarted = [r for r in server.logs_requests() if r.query["latest"] != str(WINDOW.latest)]
    assert restarted and all(int(r.query["latest"]) < newest.oldest for r in restarted)
    ids = landed_ids(summary.manifest)
    assert len(ids) == len(set(ids))
    assert set(ids) == server.expected_ids(WINDOW.oldest, WINDOW.latest)


async def test_entries_outside_the_run_are_dropped_and_counted(tmp_path: Path) -> None:
    hour = Window(DAY, DAY + timedelta(hours=1))
    client = scripted_client([[("late", hour.latest + 1), ("a", T0 + 10), ("early", T0 - 1)]])
    summary = await ingest_window(client, spec_for(tmp_path, window=hour))
    assert landed_ids(summary.manifest) == ["a"]
    assert summary.out_of_range == 2


async def test_the_summary_adds_up_the_figures_each_response_carries(tmp_path: Path) -> None:
    client = scripted_client([[("a", T0 + 10)], [("b", T0 + 9)], [("c", T0 + 8)]])
    summary = await ingest_window(client, spec_for(tmp_path, window=Window(DAY, DAY + timedelta(hours=1))))
    assert (summary.pages, summary.requests, summary.wait_seconds) == (3, 6, 1.5)


async def test_a_window_off_the_grid_lands_its_edges_as_clipped_cells(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    shifted = Window(DAY + timedelta(minutes=30), DAY + timedelta(hours=2, minutes=30))
    summary = await ingest_window(client_for(server), spec_for(tmp_path, window=shifted))
    assert sorted(data_files(tmp_path)) == [
        "dt=2026-01-04/slack_audit_20260104T003000Z_20260104T010000Z.jsonl.gz",
        "dt=2026-01-04/slack_audit_20260104T010000Z_20260104T020000Z.jsonl.gz",
        "dt=2026-01-04/slack_audit_20260104T020000Z_20260104T023000Z.jsonl.gz",
    ]
    assert set(landed_ids(summary.manifest)) == server.expected_ids(shifted.oldest, shifted.latest)


async def test_settle_lag_is_waited_once_per_window(
    server: FakeAuditLogsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr("airflow_provider_slack_audit.ingest.pipeline.asyncio.sleep", fake_sleep)
    now = WINDOW.start + timedelta(hours=3)  # half the window is still in the future
    await ingest_window(
        client_for(server), spec_for(tmp_path, settle_lag=timedelta(minutes=5)), now=lambda: now
    )
    assert [s for s in slept if s] == [3 * 3600 + 300.0]


# A rewrite never loses landed evidence -------------------------------------------------------------

HOUR = Window(DAY, DAY + timedelta(hours=1))


def marker_and_data(tmp_path: Path) -> dict[str, bytes]:
    root = tmp_path / "landing"
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("slack_audit_*"))
        if "_manifests" not in str(p)
    }


async def test_a_rewrite_whose_read_lost_ids_replaces_nothing_and_fails_permanently_naming_the_loss(
    tmp_path: Path,
) -> None:
    await ingest_window(
        scripted_client([[("a", T0 + 10), ("b", T0 + 9), ("c", T0 + 8)]]), spec_for(tmp_path, window=HOUR)
    )
    before = marker_and_data(tmp_path)

    shrunk = scripted_client([[("a", T0 + 10)]])  # retention, an incident, a narrower token scope
    with pytest.raises(EvidenceLossError, match=r"lacks 2 of the 3 event ids") as info:
        await ingest_window(shrunk, spec_for(tmp_path, window=HOUR, overwrite=True))

    assert info.value.interval == HOUR.intervals(timedelta(hours=1))[0]
    assert failure_outcome(info.value, redact=str)["kind"] == "permanent"
    assert marker_and_data(tmp_path) == before
    assert not [p for p in (tmp_path / "landing").rglob("*") if ".tmp-" in p.name]


async def test_a_rewrite_that_only_adds_late_events_replaces_the_file(tmp_path: Path) -> None:
    await ingest_window(scripted_client([[("a", T0 + 10), ("c", T0 + 8)]]), spec_for(tmp_path, window=HOUR))
    grown = scripted_client([[("a", T0 + 10), ("b", T0 + 9), ("c", T0 + 8)]])

    summary = await ingest_window(grown, spec_for(tmp_path, window=HOUR, overwrite=True))

    assert landed_ids(summary.manifest) == ["a", "b", "c"]


async def test_a_destructive_replace_is_a_separate_explicit_option(tmp_path: Path) -> None:
    await ingest_window(scripted_client([[("a", T0 + 10), ("b", T0 + 9)]]), spec_for(tmp_path, window=HOUR))
    spec = spec_for(tmp_path, window=HOUR, overwrite=True, replace_destructively=True)

    summary = await ingest_window(scripted_client([[("a", T0 + 10)]]), spec)

    assert landed_ids(summary.manifest) == ["a"]
    with pytest.raises(ValueError, match="only applies to a rewrite"):
        spec_for(tmp_path, window=HOUR, replace_destructively=True).validate()


async def test_a_failed_rewrite_leaves_every_committed_interval_committed(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    await ingest_window(client_for(server), spec_for(tmp_path))
    before = marker_and_data(tmp_path)
    revoked = AsyncAuditLogsClient("xoxp-revoked", base_url=server.base_url)

    with pytest.raises(SlackAuditLogsApiError):
        await ingest_window(revoked, spec_for(tmp_path, overwrite=True))

    assert marker_and_data(tmp_path) == before
    server.reset_log()
    summary = await ingest_window(client_for(server), spec_for(tmp_path))
    assert (summary.intervals_skipped, server.logs_requests()) == (6, [])


# Each landed entry is a strict UTF-8 JSON object on one line ----------------------------------------


class RawBodyClient:
    """A client whose every query returns one page with this exact body."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    async def pages(self, **query: object) -> AsyncIterator[AuditLogsResponse]:
        yield AuditLogsResponse(
            url="http://127.0.0.1:1/logs", status_code=200, raw_body=self.body, headers={}
        )


def page_of(*entries: bytes) -> bytes:
    return b'{"entries":[' + b",".join(entries) + b'],"response_metadata":{"next_cursor":""}}'


async def test_a_pretty_printed_entry_lands_on_one_line_with_its_values_unchanged(tmp_path: Path) -> None:
    pretty = b'{\n  "id": "p1",\n  "date_create": %d,\n  "details": {"n": 1.50}\n}' % (T0 + 5)
    compact = b'{"id":"c1","date_create":%d}' % (T0 + 4)
    summary = await ingest_window(
        RawBodyClient(page_of(pretty, compact)), spec_for(tmp_path, window=HOUR, compression=None)
    )

    lines = list(read_manifest(summary.manifest).iter_lines())
    assert lines == [b'{"id": "p1", "date_create": %d, "details": {"n": 1.50}}' % (T0 + 5), compact]


async def test_only_a_page_whose_body_has_no_line_break_skips_the_writers_newline_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vouched: list[bool] = []
    write = IntervalWriter.write

    def spy(self: IntervalWriter, entries: Any, *, single_line: bool = False) -> None:
        vouched.append(single_line)
        write(self, entries, single_line=single_line)

    monkeypatch.setattr(IntervalWriter, "write", spy)
    compact = [b'{"id":"c%d","date_create":%d}' % (n, T0 + n) for n in (5, 4)]
    pretty = b'{\n  "id": "p1",\n  "date_create": %d\n}' % (T0 + 6)

    await ingest_window(RawBodyClient(page_of(*compact)), spec_for(tmp_path / "a", window=HOUR))
    await ingest_window(RawBodyClient(page_of(pretty, *compact)), spec_for(tmp_path / "b", window=HOUR))

    assert vouched == [True, False]


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        (b'{"id":"bad","date_create":%d,"name":"caf\xe9"}', "not valid UTF-8"),
        (b'{"id":"bad","date_create":%d,"name":"\\ud800x"}', "lone surrogate"),
        (b'{"id":"bad","date_create":%d,"details":{"n":"x\\udc00"}}', "lone surrogate"),
    ],
)
async def test_an_entry_that_is_not_strict_utf8_fails_permanently_naming_interval_and_position(
    tmp_path: Path, entry: bytes, reason: str
) -> None:
    good = b'{"id":"ok","date_create":%d}' % (T0 + 9)
    body = page_of(good, entry % (T0 + 8))

    with pytest.raises(InvalidEntryError, match=reason) as info:
        await ingest_window(RawBodyClient(body), spec_for(tmp_path, window=HOUR))

    assert "entry 1 of page 1 of interval 20260104T000000Z_20260104T010000Z" in str(info.value)
    assert failure_outcome(info.value, redact=str)["kind"] == "permanent"
    assert data_files(tmp_path) == {}


async def test_an_escaped_backslash_before_u_d800_is_text_not_a_surrogate(tmp_path: Path) -> None:
    text = b'{"id":"e1","date_create":%d,"name":"C:\\\\ud800"}' % (T0 + 3)
    summary = await ingest_window(
        RawBodyClient(page_of(text)), spec_for(tmp_path, window=HOUR, compression=None)
    )
    assert list(read_manifest(summary.manifest).iter_lines()) == [text]


async def test_a_valid_surrogate_pair_lands_unchanged(tmp_path: Path) -> None:
    emoji = b'{"id":"e1","date_create":%d,"name":"\\ud83d\\ude00"}' % (T0 + 3)
    summary = await ingest_window(
        RawBodyClient(page_of(emoji)), spec_for(tmp_path, window=HOUR, compression=None)
    )
    assert list(read_manifest(summary.manifest).iter_lines()) == [emoji]
