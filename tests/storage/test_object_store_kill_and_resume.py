"""``kill -9`` of a worker landing on S3, GCS or Azure Blob, mid-window, twice, then a rerun.

Each killed run is a process of its own reaching the store through its connection alone
(``AIRFLOW_CONN_*``, as a worker does). At every point no partial object is visible under a final
name and what was committed stays committed; the killed runs' leases are left behind and taken over
(the second run takes over the first's, the rerun the second's); the rerun completes the window
without re-reading what was committed, and ends with the data files and markers of a clean run on
the same store, byte for byte, and no lease, owner record or temporary object left.
"""

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
from airflow_provider_slack_audit.ingest.pipeline import ingest_window
from airflow_provider_slack_audit.ingest.spec import IngestSpec
from airflow_provider_slack_audit.testing import FakeAuditLogsServer, FaultPlan

CHILD = Path(__file__).with_name("store_ingest_child.py")
KILLS = 2  # each child imports Airflow, seconds apiece; tests/faults kills 20 times locally
RUN_TIMEOUT = 120.0
SEED = 20261201

DAY = datetime(2026, 1, 4, tzinfo=timezone.utc)
WINDOW = Window(DAY, DAY + timedelta(hours=8))
STEP = timedelta(hours=1)
LIMIT = 50
LEASE_SUFFIXES = (".lease", ".owner.json")

pytestmark = pytest.mark.slow


def spec_for(destination: str) -> IngestSpec:
    return IngestSpec(
        window=WINDOW, interval=STEP, destination=destination, settle_lag=timedelta(0), limit=LIMIT
    )


@pytest.fixture
def server() -> Iterator[FakeAuditLogsServer]:
    # Each answer waits 20 ms, so a run spans a second or more and the kills fall inside it.
    fake = FakeAuditLogsServer(
        events=2400,
        seed=5,
        start=WINDOW.start,
        end=WINDOW.end,
        faults=FaultPlan(rates={"slow": 1.0}, slow_seconds=0.02),
    )
    fake.start_in_thread()
    yield fake
    fake.stop()


def land(server: FakeAuditLogsServer, destination: str) -> Any:
    client = AsyncAuditLogsClient("xoxp-test", base_url=server.base_url)
    return asyncio.run(ingest_window(client, spec_for(destination)))


# Independent checks (the store's own client) ------------------------------------------------------


def markers(store: Any, prefix: str) -> list[str]:
    return [key for key in store.keys(f"{prefix}/") if key.endswith(".commit.json")]


def assert_nothing_partial(store: Any, server: FakeAuditLogsServer) -> set[str]:
    """Every object under a final data name is a whole gzip JSONL of window entries; markers agree.

    Returns the committed data keys (those with a marker). A killed upload may leave an unfinished
    upload behind (an S3 multipart upload, staged Azure blocks): invisible to readers.
    """
    window_entries = set(server.expected_entries(WINDOW.oldest, WINDOW.latest))
    keys = store.keys(f"{store.prefix}/")
    committed = set()
    for key in keys:
        if not key.endswith(".jsonl.gz"):
            continue
        assert ".tmp-" not in key
        data = store.read(key)
        lines = gzip.decompress(data).split(b"\n")  # raises on a truncated stream
        assert lines.pop() == b""
        assert set(lines) <= window_entries
        assert len(lines) == len(set(lines))
        marker_key = key.removesuffix(".jsonl.gz") + ".commit.json"
        if marker_key in keys:
            marker = store.json(marker_key)
            assert (marker["count"], marker["bytes"]) == (len(lines), len(data))
            assert marker["sha256"] == hashlib.sha256(data).hexdigest()
            committed.add(key)
    return committed


def leases_of(store: Any) -> dict[str, dict[str, Any]]:
    """Lease files and owner records under the destination, by key, as their JSON documents."""
    return {key: store.json(key) for key in store.keys(f"{store.prefix}/") if key.endswith(LEASE_SUFFIXES)}


def interval_of(key: str) -> str:
    """The interval key in a data file's or an interval lease's name (``20260104T070000Z_...``)."""
    name = key.rpartition("/")[2].removeprefix(".").removeprefix("slack_audit_")
    return name.removesuffix(".jsonl.gz").removesuffix(".lease")


def landed_files(store: Any, prefix: str) -> dict[str, Any]:
    """What two landings of one window must share byte for byte: data files, and what each marker
    says of its file (path, count, size, SHA-256, id digest); run bookkeeping (times, pages) aside."""
    files: dict[str, Any] = {}
    for key in store.keys(f"{prefix}/"):
        name = key.removeprefix(f"{prefix}/")
        if key.endswith(".jsonl.gz"):
            files[name] = store.read(key)
        elif key.endswith(".commit.json"):
            marker = store.json(key)
            files[name] = {field: marker[field] for field in ("path", "count", "bytes", "sha256", "evidence")}
    return files


# The test ------------------------------------------------------------------------------------------


def run_and_kill(server: FakeAuditLogsServer, store: Any, rng: random.Random) -> int:
    """Start a worker process landing the window; kill -9 it once it has committed an interval more,
    a random moment later. Returns its pid."""
    spec = json.dumps(spec_for(store.destination).to_json())
    child = subprocess.Popen([sys.executable, str(CHILD), server.base_url, spec], env=dict(os.environ))
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        known = len(markers(store, store.prefix))
        while child.poll() is None and time.monotonic() < deadline:
            if len(markers(store, store.prefix)) > known:
                time.sleep(rng.uniform(0.0, 0.1))
                break
            time.sleep(0.02)
        assert child.poll() is None, f"the run ended ({child.returncode}) before it could be killed"
        child.kill()
        child.wait(RUN_TIMEOUT)
    finally:
        if child.poll() is None:
            child.kill()
    return child.pid


def test_kill_9_mid_window_on_the_store_leaves_nothing_partial_and_the_rerun_lands_a_clean_runs_files(
    server: FakeAuditLogsServer, store: Any
) -> None:
    clean = f"{store.destination.rsplit('/', 1)[0]}/clean"
    land(server, clean)
    clean_files = landed_files(store, "clean")
    assert len([name for name in clean_files if name.endswith(".jsonl.gz")]) == len(WINDOW.intervals(STEP))
    rng = random.Random(SEED)
    committed: set[str] = set()

    for kill in range(KILLS):
        left_behind = {  # the leases the run before left on intervals this run will land
            key: document
            for key, document in leases_of(store).items()
            if key.endswith(".lease") and interval_of(key) not in {interval_of(k) for k in committed}
        }
        assert kill == 0 or left_behind, "the killed run left no lease on what it had not landed"
        pid = run_and_kill(server, store, rng)

        now_committed = assert_nothing_partial(store, server)
        assert now_committed > committed, f"kill {kill}: the run committed nothing new"
        committed = now_committed
        leases = leases_of(store)
        # Killed holding its leases (and its owner record): nothing a dead run holds is released ...
        assert any(document.get("pid") == pid for document in leases.values()), f"kill {kill}: no lease"
        # ... and it had taken over every lease the killed run before it held on what it went on to land.
        assert all(leases[key]["pid"] == pid for key in left_behind if key in leases)
    assert len(committed) < len(WINDOW.intervals(STEP)), "the window was complete before the last kill"
    dead = {document["pid"] for document in leases_of(store).values()}

    server.reset_log()
    summary = land(server, store.destination)

    assert summary.intervals_skipped == len(committed)
    assert summary.intervals_skipped + summary.intervals_landed == len(WINDOW.intervals(STEP))
    newest_uncommitted = max(
        i.latest for i in WINDOW.intervals(STEP) if not any(i.key in key for key in committed)
    )
    assert all(int(request.query["latest"]) <= newest_uncommitted for request in server.logs_requests())
    keys = store.keys(f"{store.prefix}/")
    # Every lease of an interval the killed runs had not committed was taken over and released, and
    # with it their owner records. What a killed run committed keeps the lease it died holding: no
    # run claims a committed interval (a rewrite would take that stale lease over).
    left = leases_of(store)
    assert not [key for key in left if key.endswith(".owner.json")], "a dead run's owner record was left"
    assert {interval_of(key) for key in left} <= {interval_of(key) for key in committed}
    assert {document["pid"] for document in left.values()} <= dead
    assert not [key for key in keys if ".tmp-" in key]
    assert assert_nothing_partial(store, server) == {key for key in keys if key.endswith(".jsonl.gz")}
    assert landed_files(store, store.prefix) == clean_files
    (manifest_key,) = [key for key in keys if key.endswith(".manifest.json")]
    manifest = store.json(manifest_key)
    assert manifest["events"] == len(server.expected_entries(WINDOW.oldest, WINDOW.latest))
