"""Filters, destinations and windows: one spelling per query, and refusals before any request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from airflow_provider_slack_audit.client import AsyncAuditLogsClient
from airflow_provider_slack_audit.ingest import Window
from airflow_provider_slack_audit.ingest.pipeline import ingest_window
from airflow_provider_slack_audit.ingest.routing import SCAN_BLOCK, scan_body
from airflow_provider_slack_audit.ingest.spec import (
    IngestSpec,
    check_window_bounds,
    normalize_actions,
    parse_destination_url,
)
from airflow_provider_slack_audit.testing import FakeAuditLogsServer

DAY = datetime(2026, 1, 4, tzinfo=timezone.utc)
WINDOW = Window(DAY, DAY + timedelta(hours=3))
NOW = datetime(2026, 6, 1, 12, tzinfo=timezone.utc)


@pytest.fixture
async def server() -> AsyncIterator[FakeAuditLogsServer]:
    async with FakeAuditLogsServer(events=1500, seed=3, start=DAY, end=DAY + timedelta(hours=3)) as fake:
        yield fake


def spec_for(tmp_path: Path, **kwargs: object) -> IngestSpec:
    values: dict[str, object] = {
        "window": WINDOW,
        "destination": f"file://{tmp_path}/landing",
        "settle_lag": timedelta(0),
        "limit": 500,
    }
    values.update(kwargs)
    return IngestSpec(**values)  # type: ignore[arg-type]


# Filters ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    [
        ["user_login", "file_downloaded"],
        ["file_downloaded", "user_login"],
        ("user_login", "file_downloaded", "user_login"),
        {"user_login", "file_downloaded"},
        " user_login , file_downloaded",
        [" file_downloaded", "user_login "],
    ],
)
def test_every_spelling_of_one_filter_normalizes_to_sorted_unique_names(spelling: object) -> None:
    assert normalize_actions(spelling) == ("file_downloaded", "user_login")  # type: ignore[arg-type]


def test_no_filter_stays_no_filter() -> None:
    assert normalize_actions(None) is None


def test_a_comma_inside_a_listed_name_is_refused_naming_the_fix() -> None:
    with pytest.raises(ValueError, match=r"contains a comma.*\['a', 'b'\]"):
        normalize_actions(["a,b"])


def test_sixteen_comma_joined_pairs_never_pass_the_thirty_name_limit() -> None:
    with pytest.raises(ValueError, match="comma"):
        normalize_actions(["a,b"] * 16)


def test_thirty_distinct_names_pass_and_thirty_one_are_refused() -> None:
    names = [f"action_{n:02d}" for n in range(31)]
    assert normalize_actions(names[:30]) == tuple(names[:30])
    with pytest.raises(ValueError, match=r"31 distinct names.*at most 30"):
        normalize_actions(names)
    with pytest.raises(ValueError, match="at most 30"):
        normalize_actions(",".join(names))


def test_repeated_names_count_once_against_the_limit() -> None:
    assert normalize_actions(["user_login"] * 40) == ("user_login",)


@pytest.mark.parametrize("action", [[], "", "a,,b", [" "], ["a", ""]])
def test_empty_names_are_refused(action: object) -> None:
    with pytest.raises(ValueError, match="empty name"):
        normalize_actions(action)  # type: ignore[arg-type]


@pytest.mark.parametrize("action", [[1], ["a", None], 7, b"user_login", {"user_login": 1}])
def test_names_that_are_not_strings_are_refused(action: object) -> None:
    with pytest.raises(TypeError, match="action"):
        normalize_actions(action)  # type: ignore[arg-type]


def test_the_recorded_query_is_the_same_for_every_spelling(tmp_path: Path) -> None:
    one = spec_for(tmp_path, action=("user_login", "file_downloaded"))
    other = spec_for(tmp_path, action=("file_downloaded", "user_login", "file_downloaded"))

    assert one.query == other.query
    assert one.query["action"] == ["file_downloaded", "user_login"]


def test_a_spec_refuses_sixteen_comma_joined_pairs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="comma"):
        spec_for(tmp_path, action=("a,b",) * 16).validate()


async def test_a_retry_with_the_filter_reversed_skips_every_committed_interval(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    actions = ["user_login", "file_downloaded", "user_logout"]
    client = AsyncAuditLogsClient("xoxp-test", base_url=server.base_url)
    first = await ingest_window(client, spec_for(tmp_path, action=tuple(actions)))
    assert first.intervals_landed == 3
    server.reset_log()

    again = await ingest_window(client, spec_for(tmp_path, action=tuple(reversed(actions))))

    assert (again.intervals_landed, again.intervals_skipped) == (0, 3)
    assert server.requests == []
    assert again.manifest == first.manifest
    assert again.events == first.events


# Destinations -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "file:///data/slack_audit",
        "s3://bucket/slack_audit",
        "s3://aws_conn@bucket/slack_audit",
        "gs://bucket",
        "memory://landing",
        "memory:///landing/x",
        "  file:///data/slack_audit  ",
    ],
)
def test_absolute_urls_with_a_scheme_are_accepted(url: str, allow_memory_store: None) -> None:
    assert parse_destination_url(url) == url.strip()


@pytest.mark.parametrize(
    ("url", "fix"),
    [
        ("None", "rendered to nothing"),
        ("none", "rendered to nothing"),
        ("", "empty"),
        ("   ", "empty"),
        ("landing", r"relative path.*'file:///<absolute directory>/landing'"),
        ("./landing/x", "relative path"),
        ("/data/landing", r"without a scheme.*'file:///data/landing'"),
        ("file://relative/x", r"relative path.*three slashes.*'file:///relative/x'"),
        ("file:relative/x", "relative path"),
        ("s3://", "names no bucket"),
        ("s3:///", "names no bucket"),
    ],
)
def test_destinations_that_would_land_in_the_working_directory_are_refused_with_the_fix(
    url: str, fix: str
) -> None:
    with pytest.raises(ValueError, match=fix):
        parse_destination_url(url)


@pytest.mark.parametrize("url", [None, 7, b"file:///x"])
def test_a_destination_that_is_not_a_string_is_refused(url: object) -> None:
    with pytest.raises(TypeError, match="destination must be a URL"):
        parse_destination_url(url)


@pytest.mark.parametrize("destination", ["None", "landing", "file://relative/x", "{tmp_path}/no_scheme"])
async def test_ingest_window_refuses_a_bad_destination_before_any_request(
    server: FakeAuditLogsServer, tmp_path: Path, destination: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    destination = destination.format(tmp_path=tmp_path)
    client = AsyncAuditLogsClient("xoxp-test", base_url=server.base_url)

    with pytest.raises(ValueError, match="destination"):
        await ingest_window(client, spec_for(tmp_path, destination=destination))

    assert server.requests == []
    assert not any(tmp_path.iterdir())  # noqa: ASYNC240 - nothing landed in the working directory


# Windows ----------------------------------------------------------------------------------------


def test_a_window_ending_a_day_from_now_is_accepted() -> None:
    check_window_bounds(Window(NOW, NOW + timedelta(days=1)), NOW)


def test_a_window_ending_past_a_day_from_now_is_refused_naming_the_bound() -> None:
    window = Window(NOW, NOW + timedelta(days=1, seconds=1))

    with pytest.raises(
        ValueError, match=r"more than a day in the future.*at most 2026-06-02T12:00:00\+00:00"
    ):
        check_window_bounds(window, NOW)


def test_a_typo_in_the_year_is_refused() -> None:
    with pytest.raises(ValueError, match="2062-01-05"):
        check_window_bounds(
            Window(datetime(2062, 1, 4, tzinfo=timezone.utc), datetime(2062, 1, 5, tzinfo=timezone.utc))
        )


def test_a_window_with_no_whole_second_is_refused_naming_its_first_second() -> None:
    window = Window(DAY + timedelta(microseconds=200_000), DAY + timedelta(microseconds=900_000))

    with pytest.raises(ValueError, match=r"no whole second.*pass a latest after 2026-01-04T00:00:01\+00:00"):
        check_window_bounds(window, NOW)


def test_a_window_holding_one_whole_second_is_accepted() -> None:
    check_window_bounds(
        Window(DAY + timedelta(microseconds=200_000), DAY + timedelta(seconds=1, microseconds=1)), NOW
    )


async def test_ingest_window_refuses_a_window_in_the_future_before_any_request(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    start = datetime.now(timezone.utc) + timedelta(days=3)
    client = AsyncAuditLogsClient("xoxp-test", base_url=server.base_url)

    spec = spec_for(tmp_path, window=Window(start, start + timedelta(hours=1)))

    # The old code slept until the window settled: a timeout here is that defect.
    with pytest.raises(ValueError, match="more than a day in the future"):
        await asyncio.wait_for(ingest_window(client, spec), timeout=10)

    assert server.requests == []


async def test_ingest_window_refuses_a_window_with_no_whole_second_before_any_request(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    window = Window(DAY + timedelta(microseconds=1), DAY + timedelta(microseconds=999_999))
    client = AsyncAuditLogsClient("xoxp-test", base_url=server.base_url)

    with pytest.raises(ValueError, match="no whole second"):
        await ingest_window(client, spec_for(tmp_path, window=window))

    assert server.requests == []


@pytest.mark.parametrize("offset", range(-3, 3))
def test_a_body_is_checked_for_utf8_and_line_breaks_across_scan_blocks(offset: int) -> None:
    # A two-byte character around a block boundary is UTF-8; the same body cut inside it is not.
    body = b"a" * (SCAN_BLOCK - 1 + offset) + "é".encode() + b"x"
    assert scan_body(body) == (False, False)
    assert scan_body(body[:-2]) == (False, True)
    assert scan_body(body + b"\r") == (True, False)
    assert scan_body(b"\xff" + body + b"\n") == (True, True)
