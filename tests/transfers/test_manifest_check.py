"""check_manifest on its own (pure figures), and the landing's manifest reader running it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_slack_audit.ingest.errors import ManifestCheckError
from airflow_provider_slack_audit.ingest.landing import read_manifest
from airflow_provider_slack_audit.ingest.landing.manifest import check_manifest

from support.audit_entries import edit_manifest, land_window, sample_lines


@dataclass(frozen=True)
class Bounds:
    oldest: int
    latest: int
    key: str = "w"


@dataclass(frozen=True)
class Listed:
    oldest: int
    latest: int
    count: int = 1
    bytes: int = 10
    path: str = ""

    def __post_init__(self) -> None:
        if not self.path:
            object.__setattr__(self, "path", f"f{self.oldest}")


WINDOW = Bounds(0, 99)
HALVES = [Listed(0, 49), Listed(50, 99)]


def check(intervals: list[Listed], *, events: int | None = None, total_bytes: int | None = None) -> None:
    check_manifest(
        WINDOW,
        intervals,
        events=sum(item.count for item in intervals) if events is None else events,
        total_bytes=sum(item.bytes for item in intervals) if total_bytes is None else total_bytes,
    )


def test_intervals_covering_the_window_once_with_matching_totals_pass() -> None:
    check(HALVES)
    check(list(reversed(HALVES)))  # order does not matter


def test_an_empty_window_listing_no_interval_is_a_gap() -> None:
    with pytest.raises(ManifestCheckError, match=r"no interval covers seconds 0\.\.99"):
        check([])


@pytest.mark.parametrize(
    ("intervals", "problem"),
    [
        ([Listed(0, 49)], r"no interval covers seconds 50\.\.99"),
        ([Listed(0, 39), Listed(50, 99)], r"no interval covers seconds 40\.\.49"),
        ([Listed(0, 59), Listed(50, 99)], r"overlaps another"),
        ([*HALVES, Listed(50, 99, path="again")], r"overlaps another"),
        ([*HALVES, Listed(100, 120)], r"lies outside the window"),
        ([Listed(0, 49), Listed(50, 99, path="f0")], r"data file f0 is listed twice"),
        ([Listed(0, 49, count=-1), Listed(50, 99)], r"negative count"),
    ],
)
def test_gaps_overlaps_strays_and_duplicates_are_refused(intervals: list[Listed], problem: str) -> None:
    with pytest.raises(ManifestCheckError, match=problem):
        check(intervals)


def test_declared_totals_must_equal_the_intervals_sums() -> None:
    with pytest.raises(ManifestCheckError, match="declares 5 events but its intervals hold 2"):
        check(HALVES, events=5)
    with pytest.raises(ManifestCheckError, match="declares 1 bytes but its intervals hold 20"):
        check(HALVES, total_bytes=1)


def test_every_problem_is_reported_at_once_with_what_to_do() -> None:
    with pytest.raises(ManifestCheckError) as failure:
        check([Listed(0, 49), Listed(0, 49, path="copy")], events=320)

    message = str(failure.value)
    assert "overlaps" in message and "50..99" in message and "declares 320 events" in message
    assert message.endswith("rerun the ingest of the window to rewrite its manifest")


def test_the_check_is_a_value_error() -> None:
    assert issubclass(ManifestCheckError, ValueError)


def _drop_last_interval(document: dict[str, Any]) -> None:
    dropped = document["intervals"].pop()
    document["events"] -= dropped["count"]
    document["bytes"] -= dropped["bytes"]


def test_the_landings_manifest_reader_refuses_a_manifest_that_misses_an_interval(landing_dir: Path) -> None:
    manifest = land_window(landing_dir, sample_lines())
    edit_manifest(manifest, _drop_last_interval)

    with pytest.raises(ValueError, match=r"damaged window manifest .*ManifestCheckError.*no interval covers"):
        read_manifest(manifest)
