"""One destination, one truth: every event in exactly one final data file, whatever the runs used.

Each test lands through ``ingest_window`` against the fake server, then counts, from the files alone,
in how many final-named data files each event is: windows whose edges cut landed files, other grids,
time zones, filters and compressions are refused before any request, or land around what is there.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_slack_audit.client import AsyncAuditLogsClient
from airflow_provider_slack_audit.ingest import Interval, Window, read_manifest
from airflow_provider_slack_audit.ingest.errors import DestinationConflictError
from airflow_provider_slack_audit.ingest.landing import Landing
from airflow_provider_slack_audit.ingest.landing.descriptor import DESCRIPTOR_NAME
from airflow_provider_slack_audit.ingest.landing.plan import DestinationLayout
from airflow_provider_slack_audit.ingest.outcome import failure_outcome
from airflow_provider_slack_audit.ingest.pipeline import ingest_window
from airflow_provider_slack_audit.ingest.spec import IngestSpec, IngestSummary
from airflow_provider_slack_audit.ingest.verify import verify_destination
from airflow_provider_slack_audit.testing import FakeAuditLogsServer
from airflow_provider_slack_audit.version_compat import ObjectStoragePath

from support.descriptor_races import race_first_landings
from support.landing_invariants import data_ids, final_name_files, window_files

DAY = datetime(2026, 1, 4, tzinfo=timezone.utc)
UTC_DAY = Window(DAY, DAY + timedelta(days=1))
MANUAL = Window(DAY + timedelta(minutes=30), DAY + timedelta(hours=2, minutes=30))
# A daily DAG in Asia/Kolkata (UTC+05:30): its day ends at 18:30 UTC.
KOLKATA_DAY = Window(DAY - timedelta(hours=5, minutes=30), DAY + timedelta(hours=18, minutes=30))
UNFILTERED = {"action": None, "actor": None, "entity": None}


@pytest.fixture
async def server() -> AsyncIterator[FakeAuditLogsServer]:
    async with FakeAuditLogsServer(
        events=4800, seed=11, start=DAY - timedelta(days=1), end=DAY + timedelta(days=1)
    ) as fake:
        yield fake


def destination(tmp_path: Path) -> str:
    return f"file://{tmp_path}/landing"


async def land(server: FakeAuditLogsServer, tmp_path: Path, window: Window, **kwargs: Any) -> IngestSummary:
    values: dict[str, Any] = {
        "window": window,
        "interval": timedelta(hours=1),
        "destination": destination(tmp_path),
        "settle_lag": timedelta(0),
    }
    values.update(kwargs)
    client = AsyncAuditLogsClient("xoxp-test", base_url=server.base_url)
    return await ingest_window(client, IngestSpec(**values))


def files_per_event(tmp_path: Path) -> Counter[str]:
    """How many final-named data files hold each id (one truth: 1 for every id)."""
    return Counter(i for path in final_name_files(tmp_path / "landing") for i in set(data_ids(path)))


def assert_each_event_once(tmp_path: Path, server: FakeAuditLogsServer, *windows: Window) -> None:
    counts = files_per_event(tmp_path)
    twice = [i for i, n in counts.items() if n > 1]
    assert not twice, f"{len(twice)} events are in more than one final file"
    expected: set[str] = set()
    for window in windows:
        expected |= server.expected_ids(window.oldest, window.latest)
    assert set(counts) == expected


async def assert_refused_before_any_request(
    server: FakeAuditLogsServer, tmp_path: Path, window: Window, *needles: str, **kwargs: Any
) -> str:
    before = window_files(tmp_path / "landing")
    server.reset_log()
    with pytest.raises(DestinationConflictError) as refused:
        await land(server, tmp_path, window, **kwargs)
    assert server.logs_requests() == []
    assert window_files(tmp_path / "landing") == before  # nothing replaced, nothing added
    message = str(refused.value)
    for needle in needles:
        assert needle in message, message
    assert failure_outcome(refused.value, redact=str)["kind"] == "permanent"
    return message


# -- windows whose edges cut landed files --------------------------------------------------------------


async def test_a_manual_rerun_cutting_the_daily_runs_cells_is_refused_naming_the_files_and_edges(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    await land(server, tmp_path, UTC_DAY)

    await assert_refused_before_any_request(
        server,
        tmp_path,
        MANUAL,
        "dt=2026-01-04/slack_audit_20260104T000000Z_20260104T010000Z.jsonl.gz",
        "[2026-01-04T00:00:00+00:00, 2026-01-04T01:00:00+00:00)",
        "start the window at 2026-01-04T00:00:00+00:00 or 2026-01-04T01:00:00+00:00",
        "dt=2026-01-04/slack_audit_20260104T020000Z_20260104T030000Z.jsonl.gz",
        "end it at 2026-01-04T02:00:00+00:00 or 2026-01-04T03:00:00+00:00",
    )
    assert_each_event_once(tmp_path, server, UTC_DAY)


async def test_a_landed_file_without_its_marker_still_counts_as_landed(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    await land(server, tmp_path, UTC_DAY)
    (tmp_path / "landing/dt=2026-01-04/slack_audit_20260104T000000Z_20260104T010000Z.commit.json").unlink()

    await assert_refused_before_any_request(
        server, tmp_path, MANUAL, "slack_audit_20260104T000000Z_20260104T010000Z.jsonl.gz"
    )


async def test_the_daily_run_after_a_manual_run_reuses_its_pieces_and_lands_each_event_once(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    await land(server, tmp_path, MANUAL)

    summary = await land(server, tmp_path, UTC_DAY)

    assert_each_event_once(tmp_path, server, UTC_DAY)
    manifest = read_manifest(summary.manifest)  # covers its window exactly once (checked on read)
    paths = [item.path for item in manifest.intervals]
    assert "dt=2026-01-04/slack_audit_20260104T000000Z_20260104T003000Z.jsonl.gz" in paths
    assert "dt=2026-01-04/slack_audit_20260104T003000Z_20260104T010000Z.jsonl.gz" in paths
    assert summary.intervals_skipped == 3  # the manual run's three files
    assert sum(1 for _ in manifest.iter_lines()) == len(server.expected_ids(UTC_DAY.oldest, UTC_DAY.latest))
    assert verify_destination(destination(tmp_path)).ok


async def test_windows_that_tile_time_plan_no_refusal_and_no_extra_request(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    first = Window(KOLKATA_DAY.start - timedelta(days=1), KOLKATA_DAY.start)
    await land(server, tmp_path, first)
    server.reset_log()

    summary = await land(server, tmp_path, KOLKATA_DAY)

    assert summary.queries == 1 and len(server.logs_requests()) == 1
    assert summary.intervals_landed == len(KOLKATA_DAY.intervals(timedelta(hours=1)))
    assert_each_event_once(tmp_path, server, first, KOLKATA_DAY)


# -- other grids, time zones, filters, compressions ----------------------------------------------------


async def test_another_interval_into_the_same_destination_is_refused_before_any_request(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    await land(server, tmp_path, UTC_DAY)

    await assert_refused_before_any_request(
        server,
        tmp_path,
        UTC_DAY,
        "lands on a 1h grid, gzip, unfiltered",
        "pass interval=timedelta(hours=1) (not timedelta(hours=6))",
        interval=timedelta(hours=6),
    )
    assert_each_event_once(tmp_path, server, UTC_DAY)


async def test_a_kolkata_day_beside_the_utc_day_is_refused_where_its_edge_cuts_the_utc_files(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    await land(server, tmp_path, UTC_DAY)

    await assert_refused_before_any_request(
        server,
        tmp_path,
        KOLKATA_DAY,
        "slack_audit_20260104T180000Z_20260104T190000Z.jsonl.gz",
        "end it at 2026-01-04T18:00:00+00:00 or 2026-01-04T19:00:00+00:00",
    )
    assert_each_event_once(tmp_path, server, UTC_DAY)


async def test_a_utc_day_after_the_kolkata_day_lands_around_its_pieces_each_event_once(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    await land(server, tmp_path, KOLKATA_DAY)

    await land(server, tmp_path, UTC_DAY)

    assert_each_event_once(tmp_path, server, KOLKATA_DAY, UTC_DAY)
    assert verify_destination(destination(tmp_path)).ok


async def test_a_filtered_run_neither_replaces_nor_mixes_with_the_unfiltered_data_and_manifest(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    summary = await land(server, tmp_path, UTC_DAY)
    manifest = ObjectStoragePath(summary.manifest).read_bytes()

    await assert_refused_before_any_request(
        server,
        tmp_path,
        UTC_DAY,
        "unfiltered",
        "filtered by action=user_login",
        f"file://{tmp_path}/landing_action=user_login",
        action=["user_login"],
    )
    assert ObjectStoragePath(summary.manifest).read_bytes() == manifest


async def test_a_filtered_run_lands_in_a_destination_of_its_own(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    await land(server, tmp_path, UTC_DAY)
    own = f"file://{tmp_path}/landing_action=user_login"

    summary = await land(server, tmp_path, UTC_DAY, action=["user_login"], destination=own)

    assert summary.events == len(server.expected_ids(UTC_DAY.oldest, UTC_DAY.latest, action="user_login"))
    assert verify_destination(own).ok and verify_destination(destination(tmp_path)).ok


async def test_another_compression_into_the_same_destination_is_refused_before_any_request(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    await land(server, tmp_path, UTC_DAY)

    await assert_refused_before_any_request(
        server, tmp_path, UTC_DAY, "pass compression='gzip' (not None)", compression=None
    )


# -- the descriptor --------------------------------------------------------------------------------------


async def test_the_first_landing_writes_the_descriptor_with_the_layout(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    await land(server, tmp_path, MANUAL, action="user_login, file_downloaded")

    document = json.loads((tmp_path / "landing" / DESCRIPTOR_NAME).read_bytes())
    assert document["kind"] == "slack_audit_destination" and document["version"] == 1
    assert document["grid_seconds"] == 3600
    assert document["compression"] == "gzip"
    assert document["query"] == {"action": ["file_downloaded", "user_login"], "actor": None, "entity": None}
    assert document["adopted"] is False
    assert {"created_at", "provider_version"} <= set(document)
    assert not DESCRIPTOR_NAME.endswith((".jsonl", ".jsonl.gz"))


def test_landing_prepare_plans_around_landed_files_and_records_the_descriptor(tmp_path: Path) -> None:
    landing = Landing(ObjectStoragePath(f"file://{tmp_path}"))
    layout = DestinationLayout(timedelta(hours=1), "gzip", UNFILTERED)
    with landing.open_interval(MANUAL.intervals(timedelta(hours=1))[0]) as writer:
        writer.commit(query=UNFILTERED, stats={})

    planned = landing.prepare(UTC_DAY, layout, record=False)

    # The landed piece [00:30, 01:00) is an interval of its own; the gap before it is landed beside it.
    piece = MANUAL.intervals(timedelta(hours=1))[0]
    assert planned[:2] == [Interval(DAY, piece.start), piece]
    assert planned[2:] == UTC_DAY.intervals(timedelta(hours=1))[1:]
    assert not (tmp_path / DESCRIPTOR_NAME).exists()
    landing.prepare(UTC_DAY, layout)
    assert json.loads((tmp_path / DESCRIPTOR_NAME).read_bytes())["compression"] == "gzip"


def test_landing_prepare_refuses_a_layout_its_files_are_not_written_in_before_any_io(tmp_path: Path) -> None:
    landing = Landing(ObjectStoragePath(f"file://{tmp_path / 'landing'}"), compression=None)

    with pytest.raises(ValueError, match="layout compression 'gzip' is not this landing's None"):
        landing.prepare(UTC_DAY, DestinationLayout(timedelta(hours=1), "gzip", UNFILTERED))
    assert not (tmp_path / "landing").exists()


def test_two_concurrent_first_landings_agree_on_one_descriptor(tmp_path: Path) -> None:
    """Rounds of two first landings at once, with different layouts: one wins, the other is refused."""
    layouts = [
        DestinationLayout(timedelta(hours=1), "gzip", UNFILTERED),
        DestinationLayout(timedelta(hours=1), None, UNFILTERED),
    ]
    for round_ in range(20):
        root = tmp_path / f"race{round_}"
        outcomes = race_first_landings(ObjectStoragePath(f"file://{root}"), UTC_DAY, layouts)

        assert sorted(outcomes) == ["landed", "refused"]
        document = json.loads((root / DESCRIPTOR_NAME).read_bytes())
        assert document["compression"] == layouts[outcomes.index("landed")].compression
        assert [path.name for path in root.iterdir()] == [DESCRIPTOR_NAME]  # no temporary file left


def test_two_concurrent_first_landings_of_one_layout_both_go_ahead(tmp_path: Path) -> None:
    layout = DestinationLayout(timedelta(hours=1), "gzip", UNFILTERED)
    for round_ in range(20):
        root = tmp_path / f"race{round_}"
        assert (
            race_first_landings(ObjectStoragePath(f"file://{root}"), UTC_DAY, [layout, layout])
            == ["landed"] * 2
        )


async def test_two_concurrent_first_runs_of_one_layout_both_land(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    yesterday = Window(UTC_DAY.start - timedelta(days=1), UTC_DAY.start)

    await asyncio.gather(land(server, tmp_path, yesterday), land(server, tmp_path, UTC_DAY))

    assert_each_event_once(tmp_path, server, yesterday, UTC_DAY)
    assert verify_destination(destination(tmp_path)).ok


# -- destinations landed before descriptors ------------------------------------------------------------


async def test_a_destination_landed_before_descriptors_is_adopted_by_a_run_that_fits_it(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    await land(server, tmp_path, UTC_DAY)
    (tmp_path / "landing" / DESCRIPTOR_NAME).unlink()
    server.reset_log()

    summary = await land(server, tmp_path, UTC_DAY)

    assert summary.intervals_skipped == 24 and server.logs_requests() == []
    document = json.loads((tmp_path / "landing" / DESCRIPTOR_NAME).read_bytes())
    assert document["adopted"] is True and document["grid_seconds"] == 3600


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"compression": None}, "is gzip"),
        ({"action": ["user_login"]}, "records unfiltered"),
        ({"interval": timedelta(minutes=30)}, "crosses a boundary of the 30min grid"),
    ],
)
async def test_a_destination_landed_before_descriptors_refuses_a_run_that_does_not_fit_it(
    server: FakeAuditLogsServer, tmp_path: Path, change: dict[str, Any], needle: str
) -> None:
    await land(server, tmp_path, UTC_DAY)
    (tmp_path / "landing" / DESCRIPTOR_NAME).unlink()

    await assert_refused_before_any_request(server, tmp_path, UTC_DAY, "has no descriptor", needle, **change)
    assert not (tmp_path / "landing" / DESCRIPTOR_NAME).exists()


async def test_a_damaged_descriptor_is_refused_before_any_request(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    await land(server, tmp_path, UTC_DAY)
    (tmp_path / "landing" / DESCRIPTOR_NAME).write_text("{not json")
    server.reset_log()

    with pytest.raises(ValueError, match="not a well-formed destination descriptor"):
        await land(server, tmp_path, UTC_DAY)
    assert server.logs_requests() == []
