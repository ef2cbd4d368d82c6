"""``kill -9`` of a worker landing on S3, mid-window: no partial object is ever visible under a final
key, what was committed stays committed, and the rerun completes the window without re-reading it."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_slack_audit.client import AsyncAuditLogsClient
from airflow_provider_slack_audit.ingest import Window
from airflow_provider_slack_audit.ingest.pipeline import IngestSpec, ingest_window
from airflow_provider_slack_audit.testing import FakeAuditLogsServer, FaultPlan

CHILD = Path(__file__).with_name("s3_ingest_child.py")
KILLS = 1  # each child imports Airflow, seconds apiece; tests/faults kills 20 times locally
RUN_TIMEOUT = 120.0
SEED = 20261201


DAY = datetime(2026, 1, 4, tzinfo=timezone.utc)
WINDOW = Window(DAY, DAY + timedelta(hours=6))
STEP = timedelta(hours=1)
LIMIT = 50


def spec_for(destination: str) -> IngestSpec:
    return IngestSpec(
        window=WINDOW, interval=STEP, destination=destination, settle_lag=timedelta(0), limit=LIMIT
    )


@pytest.fixture
def server() -> Iterator[FakeAuditLogsServer]:
    # Each answer waits 20 ms, so a run spans a second or so and the kills fall inside it.
    fake = FakeAuditLogsServer(
        events=1800,
        seed=5,
        start=WINDOW.start,
        end=WINDOW.end,
        faults=FaultPlan(rates={"slow": 1.0}, slow_seconds=0.02),
    )
    fake.start_in_thread()
    yield fake
    fake.stop()


def assert_nothing_partial(s3: Any, server: FakeAuditLogsServer) -> set[str]:
    """Every object under a final data key is a whole gzip JSONL of window entries; markers agree.

    Returns the committed data keys (those with a marker). A killed upload may leave an incomplete
    multipart upload behind: invisible to readers, so not checked here.
    """
    window_entries = set(server.expected_entries(WINDOW.oldest, WINDOW.latest))
    committed = set()
    for key in s3.keys(s3.prefix):
        assert ".tmp-" not in key
        if not key.endswith(".jsonl.gz"):
            continue
        data = s3.read(key)
        lines = gzip.decompress(data).split(b"\n")  # raises on a truncated stream
        assert lines.pop() == b""
        assert set(lines) <= window_entries
        assert len(lines) == len(set(lines))
        marker_key = key.removesuffix(".jsonl.gz") + ".commit.json"
        if marker_key in s3.keys(marker_key):
            marker = s3.json(marker_key)
            assert (marker["count"], marker["bytes"]) == (len(lines), len(data))
            assert marker["sha256"] == hashlib.sha256(data).hexdigest()
            committed.add(key)
    return committed


@pytest.mark.slow
def test_kill_9_mid_window_on_s3_never_shows_a_partial_object_and_the_rerun_resumes(
    server: FakeAuditLogsServer, s3: Any, s3_destination: str
) -> None:
    rng = random.Random(SEED)
    committed_before_rerun: set[str] = set()
    for _ in range(KILLS):
        child = subprocess.Popen(
            [sys.executable, str(CHILD), server.base_url, json.dumps(spec_for(s3_destination).to_json())],
            env=dict(os.environ),
        )
        try:
            # Kill once the run has committed something new, a random moment later.
            deadline = time.monotonic() + RUN_TIMEOUT
            known = len([k for k in s3.keys(s3.prefix) if k.endswith(".commit.json")])
            while child.poll() is None and time.monotonic() < deadline:
                if len([k for k in s3.keys(s3.prefix) if k.endswith(".commit.json")]) > known:
                    time.sleep(rng.uniform(0.0, 0.2))
                    break
                time.sleep(0.02)
            child.kill()
            child.wait(RUN_TIMEOUT)
        finally:
            if child.poll() is None:
                child.kill()
        committed_before_rerun = assert_nothing_partial(s3, server)
        assert committed_before_rerun, "the kill came before anything was committed"
    assert len(committed_before_rerun) < len(WINDOW.intervals(STEP)), "no kill fell inside the window"

    server.reset_log()
    client = AsyncAuditLogsClient("xoxp-test", base_url=server.base_url)
    summary = asyncio.run(ingest_window(client, spec_for(s3_destination)))

    assert summary.intervals_skipped >= len(committed_before_rerun)
    assert summary.intervals_skipped + summary.intervals_landed == len(WINDOW.intervals(STEP))
    assert assert_nothing_partial(s3, server) == {k for k in s3.keys(s3.prefix) if k.endswith(".jsonl.gz")}
    landed = [line for key in s3.keys(s3.prefix) if key.endswith(".jsonl.gz") for line in s3.lines(key)]
    assert sorted(landed) == sorted(server.expected_entries(WINDOW.oldest, WINDOW.latest))
    (manifest_key,) = [k for k in s3.keys(s3.prefix) if k.endswith(".manifest.json")]
    assert json.loads(s3.read(manifest_key))["events"] == len(landed)
