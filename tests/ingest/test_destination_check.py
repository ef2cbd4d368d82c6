"""Planning a window around the files a destination already holds (pure: no I/O, no server)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_slack_audit.ingest.errors import DestinationConflictError
from airflow_provider_slack_audit.ingest.landing.layout import data_file_interval, relative_data_path
from airflow_provider_slack_audit.ingest.landing.manifest import check_covers
from airflow_provider_slack_audit.ingest.landing.plan import partitions_touched, plan_intervals
from airflow_provider_slack_audit.ingest.windows import Interval, Window

DAY = datetime(2026, 1, 4, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)


def at(hours: float) -> datetime:
    return DAY + timedelta(hours=hours)


def landed(*intervals: Interval) -> dict[Interval, str]:
    return {interval: relative_data_path(interval, "gzip") for interval in intervals}


@pytest.mark.parametrize(
    "interval",
    [
        Interval(at(0), at(1)),
        Interval(at(0.5), at(1)),
        Interval(DAY + timedelta(microseconds=250), at(1) + timedelta(seconds=1, microseconds=7)),
    ],
)
@pytest.mark.parametrize("compression", ["gzip", None])
def test_a_data_file_name_gives_back_its_interval_and_compression(
    interval: Interval, compression: str | None
) -> None:
    name = relative_data_path(interval, compression).split("/")[-1]  # type: ignore[arg-type]

    assert data_file_interval(name) == (interval, compression)


@pytest.mark.parametrize(
    "name",
    [
        "slack_audit_20260104T000000Z_20260104T010000Z.commit.json",
        ".slack_audit_x.jsonl.gz.tmp-1-ab",
        "x.jsonl",
    ],
)
def test_other_names_are_not_data_files(name: str) -> None:
    assert data_file_interval(name) is None


def test_with_nothing_landed_the_plan_is_the_windows_cells() -> None:
    window = Window(at(0.5), at(5.5))

    assert plan_intervals(window, HOUR, {}) == window.intervals(HOUR)


def test_landed_pieces_inside_the_window_are_kept_and_the_gaps_filled_covering_each_second_once() -> None:
    window = Window(at(0), at(3))
    pieces = landed(Interval(at(0.25), at(0.5)), Interval(at(2), at(2.5)))

    plan = plan_intervals(window, HOUR, pieces)

    assert plan == [
        Interval(at(0), at(0.25)),
        Interval(at(0.25), at(0.5)),
        Interval(at(0.5), at(1)),
        Interval(at(1), at(2)),
        Interval(at(2), at(2.5)),
        Interval(at(2.5), at(3)),
    ]
    check_covers(window, plan)


def test_files_that_overlap_each_other_are_named_both() -> None:
    window = Window(at(0), at(2))

    with pytest.raises(DestinationConflictError, match="overlap each other") as refused:
        plan_intervals(window, HOUR, landed(Interval(at(0), at(1)), Interval(at(0.5), at(1))))

    assert "slack_audit_20260104T000000Z_20260104T010000Z" in str(refused.value)
    assert "slack_audit_20260104T003000Z_20260104T010000Z" in str(refused.value)


def test_a_file_across_a_grid_boundary_is_refused() -> None:
    with pytest.raises(DestinationConflictError, match="crosses a boundary of the 1h grid"):
        plan_intervals(Window(at(0), at(3)), HOUR, landed(Interval(at(0.5), at(1.5))))


def test_files_outside_the_window_do_not_matter() -> None:
    window = Window(at(1), at(2))

    assert plan_intervals(window, HOUR, landed(Interval(at(0), at(1)), Interval(at(2), at(3)))) == [
        window.intervals(HOUR)[0]
    ]


def test_the_partitions_are_those_a_file_overlapping_the_window_can_start_in() -> None:
    kolkata_day = Window(DAY - timedelta(hours=5, minutes=30), DAY + timedelta(hours=18, minutes=30))

    assert partitions_touched(kolkata_day, HOUR) == ["dt=2026-01-03", "dt=2026-01-04"]
    assert partitions_touched(Window(DAY, DAY + timedelta(days=1)), HOUR) == ["dt=2026-01-04"]
    assert partitions_touched(Window(at(12), at(13)), timedelta(days=2)) == ["dt=2026-01-03", "dt=2026-01-04"]
