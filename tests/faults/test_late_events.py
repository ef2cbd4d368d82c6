"""Events the API shows late: the settle lag catches those within it; later ones need a rerun with
``overwrite=True``, which rewrites idempotently.

The server's clock and the pipeline's "now" are one :class:`ManualClock`, so time only moves when
a test moves it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_slack_audit.client import AsyncAuditLogsClient
from airflow_provider_slack_audit.ingest import Landing, Window
from airflow_provider_slack_audit.ingest.landing import layout
from airflow_provider_slack_audit.ingest.pipeline import ingest_window
from airflow_provider_slack_audit.ingest.spec import IngestSpec, IngestSummary
from airflow_provider_slack_audit.testing import FakeAuditLogsServer, ManualClock

from support.audit_entries import manifest_document
from support.landing_invariants import assert_landing_sound, data_ids, server_ids, window_files

DAY = datetime(2026, 1, 4, tzinfo=timezone.utc)
WINDOW = Window(DAY, DAY + timedelta(hours=4))
STEP = timedelta(hours=1)
LATE_DELAY = timedelta(minutes=10)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(WINDOW.end)


@pytest.fixture
async def server(clock: ManualClock) -> AsyncIterator[FakeAuditLogsServer]:
    async with FakeAuditLogsServer(
        events=2000,
        seed=3,
        start=DAY,
        end=WINDOW.end,
        late_fraction=0.2,
        late_delay=int(LATE_DELAY.total_seconds()),
        clock=clock,
    ) as fake:
        yield fake


def now_of(clock: ManualClock) -> Callable[[], datetime]:
    return lambda: datetime.fromtimestamp(clock(), timezone.utc)


async def ingest(
    server: FakeAuditLogsServer,
    clock: ManualClock,
    root: Path,
    *,
    settle_lag: timedelta,
    overwrite: bool = False,
    reconcile: bool = False,
) -> IngestSummary:
    spec = IngestSpec(
        window=WINDOW,
        interval=STEP,
        destination=f"file://{root}",
        settle_lag=settle_lag,
        limit=200,
        overwrite=overwrite,
        reconcile=reconcile,
    )
    client = AsyncAuditLogsClient("xoxp-test", base_url=server.base_url)
    return await ingest_window(client, spec, now=now_of(clock))


def all_ids(server: FakeAuditLogsServer) -> Callable[..., set[str]]:
    """The oracle once every late event has arrived."""
    return lambda interval: server.expected_ids(interval.oldest, interval.latest, visible_only=False)


def manifest_without_timestamp(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_bytes())
    # When, what this run read, and the ledger head it was written after: differ by run.
    del document["created_at"], document["run"], document["ledger_after"]
    for item in document["intervals"]:
        del item["committed_at"]
    return document


def landed_ids(root: Path) -> set[str]:
    landing = Landing(f"file://{root}")
    return {
        i for interval in WINDOW.intervals(STEP) for i in data_ids(Path(landing.data_path(interval).path))
    }


async def test_a_settle_lag_as_long_as_the_delay_catches_every_late_event(
    server: FakeAuditLogsServer, clock: ManualClock, tmp_path: Path
) -> None:
    late_at_window_end = server.pending_ids(WINDOW.oldest, WINDOW.latest)
    assert late_at_window_end, "the window must end with events that are not visible yet"
    clock.advance(LATE_DELAY.total_seconds())  # the pipeline does not wait: the lag has passed

    await ingest(server, clock, tmp_path, settle_lag=LATE_DELAY, overwrite=False)

    state = assert_landing_sound(tmp_path, WINDOW, STEP, all_ids(server))
    assert state.committed == set(WINDOW.intervals(STEP))
    assert late_at_window_end <= landed_ids(tmp_path)


async def test_events_later_than_the_settle_lag_are_missed_and_a_plain_rerun_keeps_missing_them(
    server: FakeAuditLogsServer, clock: ManualClock, tmp_path: Path
) -> None:
    clock.advance(120)
    await ingest(server, clock, tmp_path, settle_lag=timedelta(minutes=2), overwrite=False)
    missed = server.pending_ids(WINDOW.oldest, WINDOW.latest)
    assert missed, "some late events must still be invisible after a 2-minute settle lag"
    assert landed_ids(tmp_path) == server.expected_ids(WINDOW.oldest, WINDOW.latest)
    assert not missed & landed_ids(tmp_path)

    clock.advance(LATE_DELAY.total_seconds())
    summary = await ingest(server, clock, tmp_path, settle_lag=timedelta(minutes=2), overwrite=False)

    assert summary.intervals_skipped == 4, "committed intervals are skipped, late events or not"
    assert not missed & landed_ids(tmp_path)


async def test_a_rerun_with_overwrite_catches_the_late_events_and_rewrites_only_what_changed(
    server: FakeAuditLogsServer, clock: ManualClock, tmp_path: Path
) -> None:
    clock.advance(120)
    await ingest(server, clock, tmp_path, settle_lag=timedelta(minutes=2), overwrite=False)
    first_files = window_files(tmp_path)
    clock.advance(LATE_DELAY.total_seconds())

    summary = await ingest(server, clock, tmp_path, settle_lag=timedelta(minutes=2), overwrite=True)

    assert summary.intervals_landed == 4
    state = assert_landing_sound(tmp_path, WINDOW, STEP, all_ids(server))
    assert state.committed == set(WINDOW.intervals(STEP))
    rewritten = window_files(tmp_path)
    changed = {name for name in rewritten if rewritten[name] != first_files[name]}
    last = Landing(f"file://{tmp_path}").relative_data_path(WINDOW.intervals(STEP)[-1])
    # Only the last interval ended less than the late delay before the first run.
    assert changed == {last}


async def test_rerunning_with_overwrite_when_nothing_changed_writes_identical_bytes(
    server: FakeAuditLogsServer, clock: ManualClock, tmp_path: Path
) -> None:
    clock.advance(LATE_DELAY.total_seconds())
    await ingest(server, clock, tmp_path, settle_lag=LATE_DELAY, overwrite=False)
    before = window_files(tmp_path)
    manifest = next((tmp_path / "_manifests").iterdir())
    listed_before = manifest_without_timestamp(manifest)

    summary = await ingest(server, clock, tmp_path, settle_lag=LATE_DELAY, overwrite=True)

    assert summary.intervals_landed == 4
    assert window_files(tmp_path) == before
    assert manifest_without_timestamp(manifest) == listed_before
    assert assert_landing_sound(tmp_path, WINDOW, STEP, server_ids(server)).committed == set(
        WINDOW.intervals(STEP)
    )


# Reconcile: re-read committed intervals, rewrite only those that grew -------------------------------


def file_identities(root: Path) -> dict[str, tuple[int, int, bytes]]:
    """Each landed file (data and markers) with its inode, mtime and bytes: untouched means all equal."""
    return {
        str(path.relative_to(root)): (path.stat().st_ino, path.stat().st_mtime_ns, path.read_bytes())
        for path in sorted(root.glob("dt=*/*"))
    }


async def test_a_reconcile_adds_exactly_the_late_events_and_leaves_the_other_intervals_untouched(
    server: FakeAuditLogsServer, clock: ManualClock, tmp_path: Path
) -> None:
    clock.advance(120)
    await ingest(server, clock, tmp_path, settle_lag=timedelta(minutes=2))
    missed = server.pending_ids(WINDOW.oldest, WINDOW.latest)
    before = file_identities(tmp_path)
    clock.advance(LATE_DELAY.total_seconds())
    requests_before = len(server.logs_requests())

    summary = await ingest(server, clock, tmp_path, settle_lag=timedelta(minutes=2), reconcile=True)

    assert missed and summary.late_events == len(missed)
    assert landed_ids(tmp_path) == server.expected_ids(WINDOW.oldest, WINDOW.latest)
    state = assert_landing_sound(tmp_path, WINDOW, STEP, all_ids(server))
    assert state.committed == set(WINDOW.intervals(STEP))
    # Only the last interval had events later than the first run's settle lag.
    landing = Landing(f"file://{tmp_path}")
    last = WINDOW.intervals(STEP)[-1]
    changed = {landing.relative_data_path(last), layout.relative_marker_path(last)}
    after = file_identities(tmp_path)
    assert {name for name in after if after[name] != before.get(name)} == changed
    assert (summary.intervals_reconciled, summary.intervals_landed, summary.intervals_skipped) == (1, 1, 3)
    # One query for the window, at the API's minimum of requests.
    events = len(server.expected_ids(WINDOW.oldest, WINDOW.latest))
    assert summary.queries == 1
    assert len(server.logs_requests()) - requests_before <= -(-events // 200) + 1
    # The manifest records how many late events the interval got and how late they were.
    manifest = manifest_document(summary.manifest)
    stats = {item["path"]: item["stats"] for item in manifest["intervals"]}
    late = stats[landing.relative_data_path(last)]
    assert late["late_events"] == len(missed)
    assert 0 < late["late_min_seconds"] <= late["late_median_seconds"] <= late["late_max_seconds"]
    assert late["late_max_seconds"] <= (last.end - DAY).total_seconds() + 120 + LATE_DELAY.total_seconds()
    assert all("late_events" not in stats[path] for path in stats if path != landing.relative_data_path(last))
    assert manifest["run"]["reconcile"] == {
        "intervals_reconciled": 1,
        "late_events": len(missed),
        "vanished_kept": 0,
    }


async def test_a_reconcile_without_late_events_touches_no_data_file(
    server: FakeAuditLogsServer, clock: ManualClock, tmp_path: Path
) -> None:
    clock.advance(LATE_DELAY.total_seconds())
    await ingest(server, clock, tmp_path, settle_lag=LATE_DELAY)
    before = file_identities(tmp_path)

    summary = await ingest(server, clock, tmp_path, settle_lag=LATE_DELAY, reconcile=True)

    assert file_identities(tmp_path) == before
    assert (summary.late_events, summary.intervals_reconciled, summary.intervals_landed) == (0, 0, 0)
    assert summary.queries == 1 and summary.requests >= 1, "a reconcile re-reads the window"


def test_reconcile_and_overwrite_are_refused_together() -> None:
    spec = IngestSpec(window=WINDOW, destination="file:///tmp/x", overwrite=True, reconcile=True)
    with pytest.raises(ValueError, match="two rerun modes"):
        spec.validate()
