"""Storage that refuses writes: the ingest fails with a transient error and commits nothing partial.

Tests run as root in CI, where a read-only mode bit does not stop a write, so the faults are made
the way root also meets them: a destination whose parent is a regular file, and a disk that fills
up (or a marker write that fails) in the middle of the window.
"""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_slack_audit.client import AsyncAuditLogsClient
from airflow_provider_slack_audit.ingest import Window
from airflow_provider_slack_audit.ingest.errors import kind_of
from airflow_provider_slack_audit.ingest.landing import _fs as landing_files
from airflow_provider_slack_audit.ingest.outcome import failure_outcome
from airflow_provider_slack_audit.ingest.pipeline import ingest_window
from airflow_provider_slack_audit.ingest.spec import IngestSpec
from airflow_provider_slack_audit.testing import FakeAuditLogsServer
from airflow_provider_slack_audit.version_compat import redact

from support.landing_invariants import assert_landing_sound, final_name_files, server_ids, temp_files

DAY = datetime(2026, 1, 4, tzinfo=timezone.utc)
WINDOW = Window(DAY, DAY + timedelta(hours=3))
STEP = timedelta(hours=1)
# Named in the order the stream writes them: newest first.
THIRD, SECOND, FIRST = WINDOW.intervals(STEP)


@pytest.fixture
async def server() -> AsyncIterator[FakeAuditLogsServer]:
    async with FakeAuditLogsServer(events=600, seed=5, start=DAY, end=WINDOW.end) as fake:
        yield fake


def spec_for(destination: Path) -> IngestSpec:
    return IngestSpec(
        window=WINDOW, interval=STEP, destination=f"file://{destination}", settle_lag=timedelta(0), limit=40
    )


def client_for(server: FakeAuditLogsServer) -> AsyncAuditLogsClient:
    return AsyncAuditLogsClient("xoxp-test", base_url=server.base_url)


class FailingFile:
    """A file whose ``fail_on_write``-th write raises ``OSError(ENOSPC)``: a disk that fills up."""

    def __init__(self, inner: Any, fail_on_write: int) -> None:
        self._inner = inner
        self._writes_left = fail_on_write

    def write(self, data: bytes) -> int | None:
        self._writes_left -= 1
        if self._writes_left == 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        result: int | None = self._inner.write(data)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def fail_writes(
    monkeypatch: pytest.MonkeyPatch, *, name_contains: str, nth_file: int, fail_on_write: int
) -> None:
    """Make the ``nth_file``-th file opened for writing whose name holds ``name_contains`` fail."""
    real_open = landing_files.open_file
    opened = 0

    def open_(path: Any, mode: str, **kwargs: Any) -> Any:
        nonlocal opened
        file = real_open(path, mode, **kwargs)
        if "w" in mode and name_contains in path.name:
            opened += 1
            if opened == nth_file:
                return FailingFile(file, fail_on_write)
        return file

    monkeypatch.setattr(landing_files, "open_file", open_)


async def test_a_destination_that_cannot_exist_fails_transiently_before_any_request(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    blocker = tmp_path / "not_a_directory"
    blocker.write_text("a regular file where the destination's parent should be\n")

    with pytest.raises(NotADirectoryError) as info:
        await ingest_window(client_for(server), spec_for(blocker / "landing"))

    assert kind_of(info.value) == "transient"
    assert failure_outcome(info.value, redact=redact)["kind"] == "transient"
    assert server.logs_requests() == []
    assert blocker.read_text() == "a regular file where the destination's parent should be\n"


async def test_a_disk_filling_up_mid_interval_commits_nothing_of_that_interval(
    server: FakeAuditLogsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The second interval's data file fails on its first write to disk. (ISA-L's compressor buffers
    # small pages, so how many pages reach the file before that write depends on the page sizes.)
    with monkeypatch.context() as patch:
        fail_writes(patch, name_contains=".jsonl.gz.tmp-", nth_file=2, fail_on_write=1)
        with pytest.raises(OSError, match="No space left on device") as info:
            await ingest_window(client_for(server), spec_for(tmp_path))

    assert info.value.errno == errno.ENOSPC
    assert kind_of(info.value) == "transient"
    state = assert_landing_sound(tmp_path, WINDOW, STEP, server_ids(server))
    assert state.committed == state.landed == {FIRST}
    assert temp_files(tmp_path) == [], "the aborted write left its temporary file behind"

    summary = await ingest_window(client_for(server), spec_for(tmp_path))
    assert (summary.intervals_skipped, summary.intervals_landed) == (1, 2)
    assert assert_landing_sound(tmp_path, WINDOW, STEP, server_ids(server)).committed == set(
        WINDOW.intervals(STEP)
    )


async def test_a_failed_commit_marker_leaves_the_interval_uncommitted_and_the_rerun_rewrites_it(
    server: FakeAuditLogsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The data file of the second interval is published, then writing its marker fails.
    with monkeypatch.context() as patch:
        fail_writes(patch, name_contains=".commit.json.tmp-", nth_file=2, fail_on_write=1)
        with pytest.raises(OSError, match="No space left on device") as info:
            await ingest_window(client_for(server), spec_for(tmp_path))

    assert kind_of(info.value) == "transient"
    state = assert_landing_sound(tmp_path, WINDOW, STEP, server_ids(server))
    assert state.committed == {FIRST}
    assert state.landed == {FIRST, SECOND}, "the complete data file stays; only its marker is missing"

    server.reset_log()
    summary = await ingest_window(client_for(server), spec_for(tmp_path))
    assert (summary.intervals_skipped, summary.intervals_landed) == (1, 2)
    assert {(int(r.query["oldest"]), int(r.query["latest"])) for r in server.logs_requests()} == {
        (THIRD.oldest, SECOND.latest)
    }, "one query over the two uncommitted intervals"
    assert assert_landing_sound(tmp_path, WINDOW, STEP, server_ids(server)).committed == set(
        WINDOW.intervals(STEP)
    )
    assert len(final_name_files(tmp_path)) == 3
