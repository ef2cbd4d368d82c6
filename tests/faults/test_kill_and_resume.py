"""``kill -9`` at 20 seeded random points of a multi-interval window, with a rerun after each kill:
at every point no file under a final name is partial, and the finished window equals a clean run's.

Runs alternate between resuming (``overwrite=False``) and rewriting every interval
(``overwrite=True``), so kills land both in fresh intervals and in the middle of replacing
committed ones. The server answers each request after 20 ms, so a run spans about a second and
the kills fall inside intervals, between a data file and its marker, and in the manifest write.
"""

from __future__ import annotations

import json
import multiprocessing
import random
import time
from collections.abc import Iterator
from multiprocessing.context import ForkServerContext
from pathlib import Path

import pytest

from airflow_provider_slack_audit.ingest import read_manifest
from airflow_provider_slack_audit.testing import FakeAuditLogsServer, FaultPlan

from support import ingest_child
from support.ingest_child import STEP, WINDOW
from support.landing_invariants import assert_landing_sound, server_ids, window_files

KILLS = 20
SEED = 20260104
RUN_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def server() -> Iterator[FakeAuditLogsServer]:
    fake = FakeAuditLogsServer(
        events=1500,
        seed=4,
        start=WINDOW.start,
        end=WINDOW.end,
        faults=FaultPlan(rates={"slow": 1.0}, slow_seconds=0.02),
    )
    fake.start_in_thread()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def processes() -> ForkServerContext:
    context = multiprocessing.get_context("forkserver")
    # The forkserver of Python 3.11 does not see the test directory on its path (it imports the
    # installed package fine), so preload the package: that is the Airflow import that costs seconds.
    context.set_forkserver_preload(["airflow_provider_slack_audit.ingest.pipeline", "support.ingest_child"])
    return context


def start_run(
    processes: ForkServerContext, server: FakeAuditLogsServer, root: Path, *, overwrite: bool
) -> multiprocessing.process.BaseProcess:
    process = processes.Process(
        target=ingest_child.land_window, args=(server.base_url, f"file://{root}", overwrite)
    )
    process.start()
    return process


def run_to_completion(
    processes: ForkServerContext, server: FakeAuditLogsServer, root: Path, *, overwrite: bool = False
) -> float:
    started = time.monotonic()
    process = start_run(processes, server, root, overwrite=overwrite)
    process.join(RUN_TIMEOUT)
    assert process.exitcode == 0, f"the ingest process ended with exit code {process.exitcode}"
    return time.monotonic() - started


def assert_manifest_verifies(root: Path) -> None:
    """A manifest, once written, always loads: every file it lists matches it byte for byte."""
    manifests = root / "_manifests"
    for path in manifests.iterdir() if manifests.exists() else ():
        if path.name.endswith(".manifest.json"):
            for _ in read_manifest(f"file://{path}").iter_lines(verify=True):
                pass


@pytest.mark.slow
def test_kill_9_at_random_points_never_leaves_a_partial_file_and_reruns_land_a_clean_runs_files(
    server: FakeAuditLogsServer, processes: ForkServerContext, tmp_path: Path
) -> None:
    clean_root, root = tmp_path / "clean", tmp_path / "killed"
    run_to_completion(processes, server, clean_root)  # also starts the forkserver
    clean_seconds = run_to_completion(processes, server, tmp_path / "timing")
    clean_files = window_files(clean_root)
    expected = server_ids(server)
    rng = random.Random(SEED)
    killed_mid_run = 0

    for _ in range(KILLS):
        overwrite = rng.random() < 0.5
        delay = rng.uniform(0.0, clean_seconds)
        process = start_run(processes, server, root, overwrite=overwrite)
        try:
            process.join(delay)
            if process.is_alive():
                process.kill()
                killed_mid_run += 1
            process.join(RUN_TIMEOUT)
        finally:
            if process.is_alive():
                process.kill()
        assert process.exitcode in (0, -9)

        assert_landing_sound(root, WINDOW, STEP, expected)
        assert_manifest_verifies(root)

    assert killed_mid_run >= KILLS // 2, f"only {killed_mid_run} of {KILLS} kills landed mid-run"
    run_to_completion(processes, server, root)
    state = assert_landing_sound(root, WINDOW, STEP, expected)
    assert state.committed == set(WINDOW.intervals(STEP))
    assert window_files(root) == clean_files
    manifest = next((root / "_manifests").glob("*.manifest.json"))
    landed = [json.loads(line)["id"] for line in read_manifest(f"file://{manifest}").iter_lines(verify=True)]
    assert sorted(landed) == sorted(server.expected_ids(WINDOW.oldest, WINDOW.latest))
