"""One event, one final file, through re-dated ids, corrected bodies, rewrites and restarts.

Slack re-dates an entry now and then (the same id at another second) and corrects bodies (an
``ip_address``); a run can stop anywhere (cancelled, killed, a failed try) and resume. Whatever
happened, every id is in exactly one final file, ``verify`` passes, and a resumed run ends with the
same files, byte for byte, as a clean run.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_slack_audit.client import SlackAuditLogsApiError
from airflow_provider_slack_audit.ingest import Window
from airflow_provider_slack_audit.ingest.landing import Landing
from airflow_provider_slack_audit.ingest.pipeline import ingest_window
from airflow_provider_slack_audit.ingest.spec import IngestSpec, IngestSummary
from airflow_provider_slack_audit.ingest.verify import verify_destination

from support.audit_entries import manifest_document
from support.landing_invariants import data_lines, window_files
from support.list_client import ListClient, entry, raising

DAY = datetime(2026, 1, 4, tzinfo=timezone.utc)
WINDOW = Window(DAY, DAY + timedelta(hours=3))
STEP = timedelta(hours=1)
T0 = WINDOW.oldest
HOURS = WINDOW.intervals(STEP)


def at(hours: int, minutes: int = 0, seconds: int = 0) -> int:
    return T0 + hours * 3600 + minutes * 60 + seconds


def spec_for(root: Path, **kwargs: Any) -> IngestSpec:
    values: dict[str, Any] = {
        "window": WINDOW,
        "interval": STEP,
        "destination": f"file://{root}",
        "settle_lag": timedelta(0),
        "limit": 2,
    }
    values.update(kwargs)
    return IngestSpec(**values)


def lines_by_hour(root: Path) -> dict[int, list[dict[str, Any]]]:
    landing = Landing(f"file://{root}")
    found = {}
    for number, interval in enumerate(HOURS):
        path = Path(landing.data_path(interval).path)
        if path.exists():
            found[number] = [json.loads(line) for line in data_lines(path)]
    return found


def files_holding(root: Path, entry_id: str) -> list[int]:
    return [hour for hour, entries in lines_by_hour(root).items() for e in entries if e["id"] == entry_id]


def verify_problems(root: Path) -> list[str]:
    report = verify_destination(f"file://{root}")
    return report.problems + [p for window in report.windows for p in window.problems]


def redated(entries: list[dict[str, Any]], entry_id: str, second: int) -> list[dict[str, Any]]:
    """The API's answer once Slack re-dated ``entry_id``: same id, same body, another second."""
    return [{**e, "date_create": second} if e["id"] == entry_id else e for e in entries]


# Reconcile and overwrite of a re-dated id ---------------------------------------------------------

LANDED = [
    entry("moved", at(0, 3)),
    entry("a", at(0, 10)),
    entry("b", at(1, 30)),
    entry("c", at(2, 30)),
]


async def test_a_reconcile_keeps_a_redated_id_in_the_file_it_was_first_landed_in_and_records_the_move(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await ingest_window(ListClient(LANDED), spec_for(tmp_path))
    before = window_files(tmp_path)
    client = ListClient(redated(LANDED, "moved", at(2, 1, 17)))  # 00:03:00 -> 02:01:17

    with caplog.at_level(logging.INFO):
        summary = await ingest_window(client, spec_for(tmp_path, reconcile=True))

    assert files_holding(tmp_path, "moved") == [0]
    assert window_files(tmp_path) == before, "a move alone rewrites no file"
    assert (summary.late_events, summary.vanished_kept, summary.moved) == (0, 0, 1)
    assert "no longer returned by the API" not in caplog.text
    moves = manifest_document(summary.manifest)["run"]["moves"]
    assert moves["moved"] == 1
    assert moves["intervals"] == {
        HOURS[0].key: {"moved_out": 1},
        HOURS[2].key: {"moved_in": 1},
    }
    assert verify_problems(tmp_path) == []


async def test_a_reconcile_adds_a_late_event_next_to_a_redated_id_without_landing_the_id_twice(
    tmp_path: Path,
) -> None:
    await ingest_window(ListClient(LANDED), spec_for(tmp_path))
    client = ListClient([*redated(LANDED, "moved", at(2, 1, 17)), entry("late", at(2, 40))])

    summary = await ingest_window(client, spec_for(tmp_path, reconcile=True))

    assert files_holding(tmp_path, "moved") == [0]
    assert files_holding(tmp_path, "late") == [2]
    assert (summary.late_events, summary.moved, summary.intervals_reconciled) == (1, 1, 1)
    stats = {item["path"]: item["stats"] for item in manifest_document(summary.manifest)["intervals"]}
    hour2 = Landing(f"file://{tmp_path}").relative_data_path(HOURS[2])
    assert (stats[hour2]["late_events"], stats[hour2]["moved_in"]) == (1, 1)
    assert verify_problems(tmp_path) == []


@pytest.mark.parametrize("direction", ["to a newer hour", "to an older hour"])
async def test_an_overwrite_keeps_a_redated_id_in_one_file_instead_of_failing(
    tmp_path: Path, direction: str
) -> None:
    landed = [*LANDED, entry("moved-back", at(2, 50))]
    await ingest_window(ListClient(landed), spec_for(tmp_path))
    served = redated(landed, "moved", at(2, 1, 17)) if direction == "to a newer hour" else landed
    served = redated(served, "moved-back", at(0, 20)) if direction == "to an older hour" else served

    summary = await ingest_window(ListClient(served), spec_for(tmp_path, overwrite=True))

    assert files_holding(tmp_path, "moved") == [0]
    assert files_holding(tmp_path, "moved-back") == [2]
    assert summary.moved == 1
    assert verify_problems(tmp_path) == []


async def test_a_rewrite_failing_between_two_intervals_commits_never_leaves_the_manifest_out_of_step(
    tmp_path: Path,
) -> None:
    await ingest_window(ListClient(LANDED), spec_for(tmp_path))
    served = [*redated(LANDED, "moved", at(2, 1, 17)), entry("late", at(2, 40))]
    client = ListClient(served)
    # One entry a page: hour 2 commits with the page that reaches 01:30; the next page fails.
    client.interrupt_after(4, raising(lambda: ConnectionResetError("connection reset by peer")))

    with pytest.raises(ConnectionResetError):
        await ingest_window(client, spec_for(tmp_path, overwrite=True, limit=1))

    assert "late" in {e["id"] for e in lines_by_hour(tmp_path)[2]}, "hour 2 was rewritten"
    assert files_holding(tmp_path, "moved") == [0]
    report = verify_destination(f"file://{tmp_path}")
    # No manifest vouches for the window while it is rewritten; none lists a file its marker disowns.
    assert [p for w in report.windows for p in w.problems] == []
    assert all("no window manifest" in problem for problem in report.problems)

    summary = await ingest_window(ListClient(served), spec_for(tmp_path, overwrite=True, limit=1))

    assert summary.moved == 1
    assert files_holding(tmp_path, "moved") == [0]
    assert verify_problems(tmp_path) == []


# A corrected body ---------------------------------------------------------------------------------


async def test_a_reconcile_keeps_the_first_landed_body_of_a_corrected_id_in_every_interval(
    tmp_path: Path,
) -> None:
    landed = [entry("a", at(0, 10), "203.0.113.7"), entry("b", at(1, 10), "203.0.113.7")]
    await ingest_window(ListClient(landed), spec_for(tmp_path))
    corrected = [
        entry("a", at(0, 10), "198.51.100.9"),  # hour 0 also gains a late event
        entry("b", at(1, 10), "198.51.100.9"),  # hour 1 does not
        entry("late", at(0, 20)),
    ]

    summary = await ingest_window(ListClient(corrected), spec_for(tmp_path, reconcile=True))

    hours = lines_by_hour(tmp_path)
    ips = {e["id"]: e["context"]["ip_address"] for entries in hours.values() for e in entries}
    assert ips == {"a": "203.0.113.7", "b": "203.0.113.7", "late": "203.0.113.7"}
    assert (summary.bodies_changed, summary.late_events) == (2, 1)
    moves = manifest_document(summary.manifest)["run"]["moves"]
    assert moves["bodies_changed"] == 2
    assert verify_problems(tmp_path) == []


async def test_an_overwrite_lands_the_latest_body_of_a_corrected_id(tmp_path: Path) -> None:
    await ingest_window(ListClient([entry("a", at(0, 10), "203.0.113.7")]), spec_for(tmp_path))

    summary = await ingest_window(
        ListClient([entry("a", at(0, 10), "198.51.100.9")]), spec_for(tmp_path, overwrite=True)
    )

    assert lines_by_hour(tmp_path)[0][0]["context"]["ip_address"] == "198.51.100.9"
    assert summary.bodies_changed == 1


# Restarts: the dedup memory is rebuilt from what is committed -------------------------------------

# "twice" is served at 02:00:05 and again at 01:59:50: a clean run drops the repeat.
STRADDLING = [
    entry("e1", at(2, 30)),
    entry("twice", at(2, 0, 5)),
    {**entry("twice", at(1, 59, 50)), "details": {"repeat": True}},
    entry("e2", at(1, 0)),
    entry("e3", at(0, 30)),
]


async def wait_for_marker_of(root: Path, interval_number: int) -> None:
    marker = Path(Landing(f"file://{root}").marker_path(HOURS[interval_number]).path)
    for _ in range(2000):  # the commit runs in the stream's thread; 10 s at most
        if await asyncio.to_thread(marker.exists):
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"{marker} never appeared")


def interruption(kind: str, root: Path) -> Callable[[], Awaitable[BaseException]]:
    async def interrupt() -> BaseException:
        await wait_for_marker_of(root, 2)  # "right after hour 2 commits"
        if kind == "cancel":
            return asyncio.CancelledError()
        if kind == "failed try":
            return SlackAuditLogsApiError("service_unavailable", error="service_unavailable", status_code=503)
        return SlackAuditLogsApiError("invalid_cursor", error="invalid_cursor", kind="cursor")

    return interrupt


async def clean_run(root: Path, entries: list[dict[str, Any]], **kwargs: Any) -> IngestSummary:
    return await ingest_window(ListClient(entries), spec_for(root, limit=1, **kwargs))


@pytest.mark.parametrize("kind", ["cancel", "failed try"])
async def test_a_resumed_run_drops_a_repeat_straddling_the_resume_point_like_a_clean_run(
    tmp_path: Path, kind: str
) -> None:
    clean = await clean_run(tmp_path / "clean", STRADDLING)
    assert clean.duplicates == 1
    root = tmp_path / "resumed"
    client = ListClient(STRADDLING)
    client.interrupt_after(3, interruption(kind, root))  # the 4th page: below hour 2's start
    with pytest.raises((asyncio.CancelledError, SlackAuditLogsApiError)):
        await ingest_window(client, spec_for(root, limit=1))
    assert sorted(lines_by_hour(root)) == [2], "only hour 2 was committed"

    requests_before = client.requests
    resumed = await ingest_window(client, spec_for(root, limit=1))

    assert resumed.intervals_skipped == 1 and resumed.duplicates == 1
    assert files_holding(root, "twice") == [2]
    assert window_files(root) == window_files(tmp_path / "clean")
    remaining = 3  # the entries of hours 0 and 1 as the resumed query sees them, one a page
    assert client.requests - requests_before <= remaining + 1
    assert verify_problems(root) == []


async def test_an_expired_cursor_rereads_the_rest_remembering_the_ids_of_what_the_stream_committed(
    tmp_path: Path,
) -> None:
    await clean_run(tmp_path / "clean", STRADDLING)
    root = tmp_path / "restarted"
    client = ListClient(STRADDLING)
    client.interrupt_after(3, interruption("cursor", root))

    summary = await ingest_window(client, spec_for(root, limit=1))

    assert summary.cursor_restarts == 1
    assert files_holding(root, "twice") == [2]
    assert window_files(root) == window_files(tmp_path / "clean")


async def test_a_resumed_run_remembers_and_forgets_exactly_what_a_clean_run_did(tmp_path: Path) -> None:
    # "near" repeats 15 minutes later, across the resume point: a clean run drops the repeat.
    # "far" repeats more than two horizons of date_create later: a clean run has forgotten it and
    # lands it twice. A resumed run must do both, to end with the same files byte for byte.
    window = Window(DAY, DAY + timedelta(hours=6))
    entries = [
        entry("far", T0 + 5 * 3600 + 100),
        entry("mid", T0 + 4 * 3600 - 200),
        entry("near", T0 + 2 * 3600 + 600),
        {**entry("near", T0 + 2 * 3600 - 300), "details": {"repeat": True}},
        {**entry("far", T0 + 3600 + 5), "details": {"repeat": True}},
        entry("first", T0 + 60),
    ]
    clean = await clean_run(tmp_path / "clean", entries, window=window)
    assert clean.duplicates == 1
    root = tmp_path / "resumed"
    client = ListClient(entries)
    # Stop once hour 2 is committed: the repeat of "near" has not been landed yet.
    client.interrupt_after(4, raising(lambda: ConnectionResetError("reset")))
    with pytest.raises(ConnectionResetError):
        await ingest_window(client, spec_for(root, limit=1, window=window))
    assert await asyncio.to_thread(
        Path(Landing(f"file://{root}").marker_path(window.intervals(STEP)[2]).path).exists
    )

    await ingest_window(client, spec_for(root, limit=1, window=window))

    assert window_files(root) == window_files(tmp_path / "clean")
