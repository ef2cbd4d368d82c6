"""Concurrent runs and leases on S3, GCS and Azure Blob (emulators on loopback), through ObjectStoragePath
and each store's connection: leases are conditional writes (S3 and Azure ``If-None-Match: *``, GCS
``ifGenerationMatch=0``), one run writes each interval, the other waits or skips, both succeed; a
renewing lease is never taken over whatever the skew between clocks. The checks read the bucket with
the store's own client."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_slack_audit.client import AsyncAuditLogsClient
from airflow_provider_slack_audit.ingest import Window
from airflow_provider_slack_audit.ingest.landing.lease import LeaseOwner, LeaseStore
from airflow_provider_slack_audit.ingest.pipeline import ingest_window
from airflow_provider_slack_audit.ingest.spec import IngestSpec
from airflow_provider_slack_audit.testing import FakeAuditLogsServer
from airflow_provider_slack_audit.version_compat import ObjectStoragePath

DAY = datetime(2026, 1, 4, tzinfo=timezone.utc)
WINDOW = Window(DAY, DAY + timedelta(hours=4))
STEP = timedelta(hours=1)
SMALL_CONSTANT = 2

# Real object-store APIs on loopback: seconds per test, so CI runs them and `make test-fast` does not.
pytestmark = pytest.mark.slow


@pytest.fixture
async def server() -> AsyncIterator[FakeAuditLogsServer]:
    async with FakeAuditLogsServer(events=1200, seed=13, start=DAY, end=WINDOW.end) as fake:
        yield fake


def client_for(server: FakeAuditLogsServer) -> AsyncAuditLogsClient:
    return AsyncAuditLogsClient("xoxp-test", base_url=server.base_url)


def spec_for(destination: str) -> IngestSpec:
    return IngestSpec(
        window=WINDOW, interval=STEP, destination=destination, settle_lag=timedelta(0), limit=100
    )


async def test_two_concurrent_runs_on_the_store_both_succeed_and_land_each_event_once(
    server: FakeAuditLogsServer, store: Any, tmp_path: Path
) -> None:
    alone = (await ingest_window(client_for(server), spec_for(tmp_path.as_uri()))).requests  # same requests
    server.reset_log()
    server.faults.slow_seconds = 0.01
    server.faults.set_rate("slow", 1.0)

    first, second = await asyncio.gather(
        ingest_window(client_for(server), spec_for(store.destination)),
        ingest_window(client_for(server), spec_for(store.destination)),
    )

    keys = store.keys(f"{store.prefix}/")
    data = [key for key in keys if key.endswith(".jsonl.gz")]
    lines = [line for key in data for line in store.lines(key)]
    assert sorted(lines) == sorted(server.expected_entries(WINDOW.oldest, WINDOW.latest))
    assert len(data) == len(WINDOW.intervals(STEP))
    for key in data:
        marker = store.json(key.removesuffix(".jsonl.gz") + ".commit.json")
        body = store.read(key)
        assert (marker["bytes"], marker["sha256"]) == (len(body), hashlib.sha256(body).hexdigest())
    assert not [key for key in keys if key.endswith((".lease", ".owner.json")) or ".tmp-" in key]
    assert store.pending_uploads() == []
    assert first.events == second.events == len(lines)
    assert first.intervals_landed + second.intervals_landed == len(WINDOW.intervals(STEP))
    assert first.requests + second.requests <= alone + SMALL_CONSTANT


def test_leases_on_the_store_are_conditional_writes_so_a_second_owner_finds_the_lease_taken(
    store: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # Each API makes its conditional create atomic (S3 and Azure If-None-Match: *, GCS
    # ifGenerationMatch=0). An emulator may check and write without a lock (moto's server does), so
    # racing threads against it would test the emulator: the race itself is tested locally (O_EXCL),
    # and here that the lease is a conditional write every later owner is refused by.
    destination = ObjectStoragePath(store.destination)
    first, *others = owners = [LeaseStore(destination, LeaseOwner.new()) for _ in range(4)]
    for owner in owners:
        owner.renew()
    caplog.set_level(logging.DEBUG, logger="airflow_provider_slack_audit.ingest.landing.lease")

    for round_number in range(3):
        lease = destination / f".slack_audit_round{round_number}.lease"
        assert first.try_acquire(lease) is None, f"round {round_number}: the first owner must get it"
        holders = {owner.try_acquire(lease) for owner in others}
        assert holders == {first.owner.token}, f"round {round_number}: later owners saw {holders}"
        # What an owner that judged the lease free a moment too early does next: the conditional
        # create, which the store refuses because the object now exists.
        assert [owner._create(lease) for owner in others] == [False] * len(others)
        assert first.holder(lease) == first.owner.token
    assert "no conditional write" not in caplog.text


@pytest.mark.parametrize("skew", [-600, 600, 3600])
def test_a_renewing_lease_on_the_store_is_kept_whatever_its_clock_and_a_silent_one_taken_after_one_ttl(
    store: Any, skew: float
) -> None:
    destination = ObjectStoragePath(store.destination)
    writer = LeaseStore(
        destination, LeaseOwner("elsewhere.example", 4242, "feedfacecafe"), clock=lambda: time.time() + skew
    )
    waited = [0.0]  # the waiting run's own monotonic clock
    waiter = LeaseStore(destination, LeaseOwner.new(), monotonic=lambda: waited[0])
    writer.renew()
    waiter.renew()
    lease = destination / ".slack_audit_x.lease"
    assert writer.try_acquire(lease) is None

    for _ in range(15):  # ten minutes of the writer's heartbeat (every 40 s), the waiter asking each time
        assert waiter.try_acquire(lease) == writer.owner.token
        waited[0] += 40
        writer.renew()
    assert waiter.try_acquire(lease) == writer.owner.token  # sees the last renewal; then the writer dies
    waited[0] += 119
    assert waiter.try_acquire(lease) == writer.owner.token
    waited[0] += 2

    assert waiter.try_acquire(lease) is None
    assert waiter.holder(lease) == waiter.owner.token
    assert store.json(f"{store.prefix}/.slack_audit_x.lease")["owner"] == waiter.owner.token
    assert f"{store.prefix}/_leases/.{writer.owner.token}.owner.json" not in store.keys(store.prefix)
