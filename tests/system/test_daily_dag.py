"""The slack_audit_daily example DAG, run by ``airflow dags test`` against the fake Audit Logs API.

Every test checks the landed ids against the server's own answer for the window. The fake server
puts bursts of events on the first and last second of its span; each test picks a span so that
those bursts sit on the window's edges: on its first second and just past its end, or just before
its start and on its last second.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_slack_audit.ingest.landing import read_manifest
from airflow_provider_slack_audit.ingest.windows import Window
from airflow_provider_slack_audit.testing import FakeAuditLogsServer, FaultKind, FaultPlan

from support.airflow_quirks import DAGS_TEST_RETRY_RESUMES_THE_OLD_EVENT

pytestmark = [pytest.mark.system, pytest.mark.slow]

DAG_ID = "slack_audit_daily"
TASK_ID = "land_audit_logs"
LOGICAL_DATE = datetime(2026, 1, 5, tzinfo=timezone.utc)
WINDOW = Window(datetime(2026, 1, 4, tzinfo=timezone.utc), LOGICAL_DATE)  # CronDataIntervalTimetable
INTERVALS = WINDOW.intervals(timedelta(hours=1))
SECOND = timedelta(seconds=1)
# Bursts on the window's first second and on the first second after it.
SPAN_ON_START_AND_PAST_END = {"start": WINDOW.start, "end": WINDOW.end + SECOND}
# Bursts on the second before the window and on its last second.
SPAN_BEFORE_START_AND_ON_END = {"start": WINDOW.start - SECOND, "end": WINDOW.end}


@dataclass(frozen=True)
class Landing:
    """A local landing destination, as the tests read it."""

    root: Path

    @property
    def url(self) -> str:
        return self.root.as_uri()

    def data_files(self) -> dict[str, bytes]:
        return {str(path.relative_to(self.root)): path.read_bytes() for path in self.root.rglob("*.jsonl.gz")}

    def inodes(self) -> dict[str, int]:
        return {
            str(path.relative_to(self.root)): path.stat().st_ino for path in self.root.rglob("*.jsonl.gz")
        }

    def committed_oldest(self) -> set[int]:
        """The API ``oldest`` of every interval with a commit marker."""
        keys = {
            path.name.removeprefix("slack_audit_").removesuffix(".commit.json") for path in self.markers()
        }
        return {interval.oldest for interval in INTERVALS if interval.key in keys}

    def markers(self) -> list[Path]:
        return sorted(self.root.rglob("*.commit.json"))

    def leftovers(self) -> list[Path]:
        """Temporary files of interrupted writers."""
        return [path for path in self.root.rglob("*") if ".tmp-" in path.name]

    def landed_ids(self) -> list[str]:
        manifest = read_manifest(self.root / "_manifests" / f"slack_audit_{WINDOW.key}.manifest.json")
        return [entry["id"] for entry in manifest.iter_entries()]


def assert_landed_exactly(landing: Landing, server: FakeAuditLogsServer) -> None:
    """The window's events, each once, in one file per interval; nothing else looks like data."""
    ids = landing.landed_ids()
    assert len(ids) == len(set(ids)), "an event was landed twice"
    assert set(ids) == server.expected_ids(WINDOW.oldest, WINDOW.latest)
    expected_files = {f"dt=2026-01-04/slack_audit_{interval.key}.jsonl.gz" for interval in INTERVALS}
    assert set(landing.data_files()) == expected_files
    assert not list(landing.root.rglob("*.jsonl"))


def requested_oldest(server: FakeAuditLogsServer) -> list[int]:
    return [int(request.query["oldest"]) for request in server.logs_requests()]


def requested_ranges(server: FakeAuditLogsServer) -> list[tuple[int, int]]:
    """The (oldest, latest) of every ``logs`` request: one pair per paginated query."""
    return [(int(r.query["oldest"]), int(r.query["latest"])) for r in server.logs_requests()]


class FaultOnRequests(FaultPlan):
    """Answer the ``logs`` requests with the given 1-based numbers with ``kind``; the others normally."""

    def __init__(self, kind: FaultKind, numbers: set[int]) -> None:
        super().__init__()
        self._kind = kind
        self._numbers = frozenset(numbers)
        self._seen = 0

    def next_fault(self) -> FaultKind | None:
        self._seen += 1
        if self._seen in self._numbers:
            self.injected[self._kind] += 1
            return self._kind
        return super().next_fault()


@dataclass(frozen=True)
class LandedDay:
    """The daily DAG's run for LOGICAL_DATE, landed once; reruns start from here."""

    server: FakeAuditLogsServer
    landing: Landing
    env: dict[str, str]
    logs: Path


@pytest.fixture(scope="module")
def landed_day(
    airflow_home: Any,
    serve_fake_api: Callable[..., AbstractContextManager[FakeAuditLogsServer]],
    connection_env: Callable[..., dict[str, str]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LandedDay]:
    root = tmp_path_factory.mktemp("landed_day")
    with serve_fake_api(events=20_000, seed=11, **SPAN_ON_START_AND_PAST_END) as server:
        landing = Landing(root / "landing")
        env = {**connection_env(server), "SLACK_AUDIT_BASE_PATH": landing.url}
        run = airflow_home.dags_test(DAG_ID, LOGICAL_DATE, env=env, log=root / "first_run.log")
        run.assert_succeeded()
        yield LandedDay(server, landing, env, root)


def test_the_daily_dag_lands_exactly_the_windows_events(landed_day: LandedDay) -> None:
    server = landed_day.server
    assert server.expected_ids(WINDOW.oldest, WINDOW.oldest), "no event on the window's first second"
    assert server.expected_ids(WINDOW.latest + 1, WINDOW.latest + 1), "no event just past the window"

    assert_landed_exactly(landed_day.landing, server)


def test_a_second_run_of_the_day_keeps_the_same_files_without_a_request(
    landed_day: LandedDay, airflow_home: Any
) -> None:
    before = landed_day.landing.data_files()
    landed_day.server.reset_log()

    run = airflow_home.dags_test(DAG_ID, LOGICAL_DATE, env=landed_day.env, log=landed_day.logs / "rerun.log")

    run.assert_succeeded()
    assert landed_day.server.logs_requests() == []
    assert landed_day.landing.data_files() == before


def test_a_rerun_with_overwrite_rewrites_the_same_bytes(landed_day: LandedDay, airflow_home: Any) -> None:
    before, inodes_before = landed_day.landing.data_files(), landed_day.landing.inodes()
    landed_day.server.reset_log()

    run = airflow_home.dags_test(
        DAG_ID,
        LOGICAL_DATE,
        env=landed_day.env,
        log=landed_day.logs / "overwrite.log",
        conf={"mode": "overwrite"},
    )

    run.assert_succeeded()
    assert set(requested_ranges(landed_day.server)) == {(WINDOW.oldest, WINDOW.latest)}, "one query"
    inodes_after = landed_day.landing.inodes()
    assert all(inodes_after[name] != inodes_before[name] for name in before), "a file was not rewritten"
    assert landed_day.landing.data_files() == before


def wait_for_first_commit(landing: Landing, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not landing.markers():
        assert time.monotonic() < deadline, f"no interval was committed within {timeout} s"
        time.sleep(0.05)


def test_a_run_killed_mid_window_and_rerun_lands_exactly_the_windows_events(
    airflow_home: Any,
    audit_server: Callable[..., FakeAuditLogsServer],
    connection_env: Callable[..., dict[str, str]],
    tmp_path: Path,
) -> None:
    server = audit_server(events=20_000, seed=12, **SPAN_BEFORE_START_AND_ON_END)
    assert server.expected_ids(WINDOW.oldest - 1, WINDOW.oldest - 1), "no event just before the window"
    assert server.expected_ids(WINDOW.latest, WINDOW.latest), "no event on the window's last second"
    landing = Landing(tmp_path / "landing")
    env = {**connection_env(server), "SLACK_AUDIT_BASE_PATH": landing.url}
    server.faults.slow_seconds = 1.0  # 3 pages of one stream: the first commits about half the day
    server.faults.set_rate("slow", 1.0)

    killed = airflow_home.start_dags_test(DAG_ID, LOGICAL_DATE, env=env, log=tmp_path / "killed.log")
    try:
        wait_for_first_commit(landing, timeout=180)
    finally:
        killed.kill()
    committed = landing.committed_oldest()
    assert 0 < len(committed) < len(INTERVALS), "the kill did not land mid-window"
    server.faults.clear()
    server.reset_log()

    run = airflow_home.dags_test(DAG_ID, LOGICAL_DATE, env=env, log=tmp_path / "rerun.log")

    run.assert_succeeded()
    assert set(requested_ranges(server)) == {(WINDOW.oldest, min(committed) - 1)}, (
        "the rerun reads exactly the uncommitted intervals, with one query"
    )
    assert_landed_exactly(landing, server)
    assert landing.leftovers() == []


@pytest.mark.skipif(
    DAGS_TEST_RETRY_RESUMES_THE_OLD_EVENT,
    reason="Airflow 3.0's dags test resumes a retry from the failed try's event (never clears next_method)",
)
def test_503s_past_the_retry_budget_fail_the_try_and_the_next_try_resumes(
    airflow_home: Any,
    audit_server: Callable[..., FakeAuditLogsServer],
    connection_env: Callable[..., dict[str, str]],
    tmp_path: Path,
) -> None:
    failing_request = 2  # the first page (the newest ~10k events) commits, the second request fails
    server = audit_server(
        events=20_000,
        seed=13,
        faults=FaultOnRequests("http_503", {failing_request}),
        **SPAN_BEFORE_START_AND_ON_END,
    )
    landing = Landing(tmp_path / "landing")
    # A budget below the client's first backoff: the one 503 exhausts it, so the try fails.
    env = {
        **connection_env(server, max_retry_wait=0.25),
        "SLACK_AUDIT_BASE_PATH": landing.url,
        "SLACK_AUDIT_RETRY_DELAY_SECONDS": "1",
    }

    run = airflow_home.dags_test(DAG_ID, LOGICAL_DATE, env=env, log=tmp_path / "run.log")

    run.assert_succeeded()
    assert airflow_home.latest_try_number(DAG_ID, TASK_ID) == 2
    requests = server.logs_requests()
    assert [request.status for request in requests].count(503) == 1
    first_try, second_try = requests[:failing_request], requests[failing_request:]
    assert "cursor" in first_try[-1].query, "the failure struck mid-stream"
    ((oldest, latest),) = {(int(r.query["oldest"]), int(r.query["latest"])) for r in second_try}
    assert oldest == WINDOW.oldest, "the second try reads the uncommitted intervals with one query"
    assert latest + 1 in {interval.oldest for interval in INTERVALS[1:]}, "it stops at a committed one"
    events_left = len(server.expected_ids(oldest, latest))
    assert len(second_try) <= -(-events_left // 9999) + 1
    assert_landed_exactly(landing, server)


@pytest.mark.parametrize(("events", "max_requests"), [(5_000, 2), (110_000, 13)])
def test_a_day_lands_24_hourly_files_with_the_apis_minimum_requests_and_reruns_without_any(
    airflow_home: Any,
    audit_server: Callable[..., FakeAuditLogsServer],
    connection_env: Callable[..., dict[str, str]],
    tmp_path: Path,
    events: int,
    max_requests: int,
) -> None:
    server = audit_server(events=events, seed=14, **SPAN_ON_START_AND_PAST_END)
    landing = Landing(tmp_path / "landing")
    env = {**connection_env(server), "SLACK_AUDIT_BASE_PATH": landing.url}

    airflow_home.dags_test(DAG_ID, LOGICAL_DATE, env=env, log=tmp_path / "run.log").assert_succeeded()

    assert len(server.logs_requests()) <= max_requests
    assert len(landing.data_files()) == 24
    assert_landed_exactly(landing, server)

    before = landing.data_files()
    server.reset_log()
    airflow_home.dags_test(DAG_ID, LOGICAL_DATE, env=env, log=tmp_path / "rerun.log").assert_succeeded()
    assert server.logs_requests() == []
    assert landing.data_files() == before
