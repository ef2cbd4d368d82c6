"""Interval leases: who may write an interval now, when a waiting run takes over, which temporary
files count as stale. Pipeline tests run ``ingest_window`` against FakeAuditLogsServer with the
waiting run's clocks and sleep injected, so a two-minute ttl passes without a real wait."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fsspec.implementations.memory import MemoryFileSystem

from airflow_provider_slack_audit.client import AsyncAuditLogsClient, SlackAuditLogsApiError
from airflow_provider_slack_audit.ingest import Interval, Landing, Window
from airflow_provider_slack_audit.ingest.errors import kind_of
from airflow_provider_slack_audit.ingest.landing.lease import (
    LeaseOwner,
    LeaseSettings,
    LeaseStore,
    LeaseWaitTimeout,
    RunLeases,
)
from airflow_provider_slack_audit.ingest.pipeline import ingest_window
from airflow_provider_slack_audit.ingest.spec import IngestSpec
from airflow_provider_slack_audit.ingest.verify import verify_destination
from airflow_provider_slack_audit.testing import FakeAuditLogsServer
from airflow_provider_slack_audit.version_compat import ObjectStoragePath, attach

from support.landing_invariants import assert_landing_sound, server_ids, temp_files

DAY = datetime(2026, 1, 4, tzinfo=timezone.utc)
WINDOW = Window(DAY, DAY + timedelta(hours=4))
STEP = timedelta(hours=1)
OLDEST = WINDOW.intervals(STEP)[0]
OUTSIDE = Interval(WINDOW.end, WINDOW.end + STEP)
PARTIAL = [b'{"id":"half-written","date_create":1767484800}']


class WallClock:
    """Time that a waiting run's sleeps move forward (as its wall clock or its monotonic clock),
    recording what happened meanwhile."""

    def __init__(self, server: FakeAuditLogsServer | None = None) -> None:
        self.offset = 0.0
        self.slept: list[float] = []
        self.requests_seen: list[int] = []
        self._server = server

    def __call__(self) -> float:
        return time.time() + self.offset

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if self._server is not None:
            self.requests_seen.append(len(self._server.logs_requests()))
        self.offset += seconds
        await asyncio.sleep(0)


@pytest.fixture
async def server() -> AsyncIterator[FakeAuditLogsServer]:
    async with FakeAuditLogsServer(events=1200, seed=9, start=DAY, end=WINDOW.end + STEP) as fake:
        yield fake


def spec_for(root: Path) -> IngestSpec:
    return IngestSpec(
        window=WINDOW, interval=STEP, destination=root.as_uri(), settle_lag=timedelta(0), limit=100
    )


def client_for(server: FakeAuditLogsServer) -> AsyncAuditLogsClient:
    return AsyncAuditLogsClient("xoxp-test", base_url=server.base_url)


def names(paths: list[Path]) -> list[str]:
    return sorted(path.name for path in paths)


# A run and the leases of others ---------------------------------------------------------------------


async def test_a_killed_writers_lease_expires_and_the_next_run_takes_over_removing_only_its_temps(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    root = tmp_path / "landing"
    clock = WallClock(server)
    # A run on another host was killed mid-interval: its lease and temp stay, its record stops renewing.
    killed = Landing(root.as_uri(), owner=LeaseOwner("elsewhere.example", 4242, "deadbeefdead"))
    killed_store = LeaseStore(killed.destination, killed.owner, clock=clock)
    killed_store.renew()
    assert killed_store.try_acquire(killed.lease_path(OLDEST)) is None
    killed.open_interval(OLDEST).write(PARTIAL)  # never committed nor aborted
    # A live run of this process writes an interval outside the window.
    live = Landing(root.as_uri())
    live_store = LeaseStore(live.destination, live.owner, ttl=100_000, clock=clock)
    live_store.renew()
    assert live_store.try_acquire(live.lease_path(OUTSIDE)) is None
    in_progress = live.open_interval(OUTSIDE)
    in_progress.write(PARTIAL)
    live_temps = [path for path in temp_files(root) if live.owner.token in path.name]
    assert live_temps and [path for path in temp_files(root) if killed.owner.token in path.name]

    summary = await ingest_window(
        client_for(server),
        spec_for(root),
        leases=LeaseSettings(clock=clock, sleep=clock.sleep, monotonic=clock),
    )

    assert sum(clock.slept) >= 119  # until the killed run's record stayed unchanged a ttl (120 s), no sooner
    assert set(clock.requests_seen) == {0}  # waiting makes no request
    assert summary.intervals_landed == len(WINDOW.intervals(STEP))
    assert summary.queries == 1
    assert names(temp_files(root)) == names(live_temps)
    state = assert_landing_sound(root, WINDOW, STEP, server_ids(server))
    assert state.committed == set(WINDOW.intervals(STEP))
    assert not (root / "_leases" / f".{killed.owner.token}.owner.json").exists()
    assert not killed.lease_path(OLDEST).exists()
    in_progress.abort()


async def test_a_live_writers_temp_file_is_never_removed_by_another_run(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    root = tmp_path / "landing"
    live = Landing(root.as_uri())
    temp_seen: list[bool] = []
    async with RunLeases(live) as held:
        claimed, _ = await held.claim([OLDEST])
        assert claimed == [OLDEST]
        writer = live.open_interval(OLDEST)
        writer.write(PARTIAL)
        (temp,) = temp_files(root)

        async def poll(seconds: float) -> None:
            temp_seen.append(temp.exists())
            if len(temp_seen) == 5:  # the live run gives the interval up (say it failed): now it is free
                writer.abort()
                await held.release([OLDEST])
            await asyncio.sleep(0)

        summary = await ingest_window(client_for(server), spec_for(root), leases=LeaseSettings(sleep=poll))

    assert temp_seen[:5] == [True] * 5
    assert summary.intervals_landed == len(WINDOW.intervals(STEP))
    assert summary.queries == 1
    state = assert_landing_sound(root, WINDOW, STEP, server_ids(server))
    assert state.committed == set(WINDOW.intervals(STEP))
    assert temp_files(root) == []


async def test_a_run_that_waits_longer_than_max_wait_fails_with_a_transient_error_and_no_request(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    root = tmp_path / "landing"
    clock = WallClock(server)
    async with RunLeases(Landing(root.as_uri())) as held:
        await held.claim([OLDEST])
        with pytest.raises(LeaseWaitTimeout, match=r"still leased by run .* \(max_wait 30 s\)") as raised:
            await ingest_window(
                client_for(server), spec_for(root), leases=LeaseSettings(max_wait=30, sleep=clock.sleep)
            )

    assert kind_of(raised.value) == "transient"
    assert sum(clock.slept) == pytest.approx(30)
    assert server.logs_requests() == []


async def test_a_run_leaves_no_lease_and_no_run_record_when_done_or_failed(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    root = tmp_path / "landing"
    await ingest_window(client_for(server), spec_for(root))
    rewrite = IngestSpec(**{**spec_for(root).__dict__, "overwrite": True})
    revoked = AsyncAuditLogsClient("xoxp-revoked", base_url=server.base_url)
    with pytest.raises(SlackAuditLogsApiError, match="invalid_authentication"):
        await ingest_window(revoked, rewrite)

    leftovers = [path for path in root.rglob("*") if path.name.endswith((".lease", ".owner.json"))]
    assert leftovers == []


# Hosts whose clocks disagree ----------------------------------------------------------------------


class WaiterClock:
    """A waiting run's own monotonic clock, moved only by its sleeps; ``meanwhile`` is what other hosts
    do as that time passes (called with the seconds since the waiter started)."""

    def __init__(self, server: FakeAuditLogsServer, meanwhile: Callable[[float], None] | None = None) -> None:
        self.now = 1000.0  # any origin: only differences on this clock mean anything
        self.slept: list[float] = []
        self.requests_seen: list[int] = []
        self._server = server
        self._meanwhile = meanwhile

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.requests_seen.append(len(self._server.logs_requests()))
        self.now += seconds
        if self._meanwhile is not None:
            self._meanwhile(sum(self.slept))
        await asyncio.sleep(0)


class RunElsewhere:
    """A run on another host whose wall clock is ``skew`` seconds off: it leases OLDEST and starts
    writing it. Its heartbeat is explicit (``renew``), so a test decides whether it lives."""

    def __init__(self, root: Path, skew: float) -> None:
        self.landing = Landing(root.as_uri(), owner=LeaseOwner("elsewhere.example", 4242, "feedfacecafe"))
        self.store = LeaseStore(
            self.landing.destination, self.landing.owner, clock=lambda: time.time() + skew
        )
        self.store.renew()
        self.lease = self.landing.lease_path(OLDEST)
        assert self.store.try_acquire(self.lease) is None
        self.writer = self.landing.open_interval(OLDEST)

    def finish(self, query: dict[str, Any]) -> None:
        """Commit the interval, release its lease, delete the run's record: what a run does at its end."""
        self.writer.commit(query=query, stats={})
        self.store.release(self.lease)
        self.store.retire()


@pytest.mark.parametrize("skew", [-600, -300, 300, 600])
async def test_a_live_writer_whose_clock_is_minutes_off_is_never_taken_over_and_keeps_its_temp(
    server: FakeAuditLogsServer, tmp_path: Path, skew: float
) -> None:
    root = tmp_path / "landing"
    other = RunElsewhere(root, skew)
    other.writer.write(server.expected_entries(OLDEST.oldest, OLDEST.latest))
    (temp,) = temp_files(root)
    temp_seen: list[bool] = []
    renewed, finished = [0.0], []

    def meanwhile(elapsed: float) -> None:  # it renews every 40 s for ten minutes, then commits
        if finished:
            return
        temp_seen.append(temp.exists())
        if elapsed >= 600:
            other.finish(spec_for(root).query)
            finished.append(elapsed)
        elif elapsed - renewed[-1] >= 40:
            other.store.renew()
            renewed.append(elapsed)

    waiter = WaiterClock(server, meanwhile)
    summary = await ingest_window(
        client_for(server), spec_for(root), leases=LeaseSettings(sleep=waiter.sleep, monotonic=waiter)
    )

    assert sum(waiter.slept) >= 600  # it waited for the live run to finish, however far off its clock
    assert temp_seen and all(temp_seen)
    assert set(waiter.requests_seen) == {0}
    assert (summary.intervals_skipped, summary.intervals_landed) == (1, len(WINDOW.intervals(STEP)) - 1)
    assert summary.queries == 1
    state = assert_landing_sound(root, WINDOW, STEP, server_ids(server))
    assert state.committed == set(WINDOW.intervals(STEP))
    assert temp_files(root) == []


@pytest.mark.parametrize("skew", [600, 3600])
async def test_a_dead_writer_whose_clock_was_ahead_is_taken_over_one_ttl_after_the_waiter_first_looked(
    server: FakeAuditLogsServer, tmp_path: Path, skew: float
) -> None:
    root = tmp_path / "landing"
    dead = RunElsewhere(root, skew)  # its record says it expires `skew` seconds from now; it never renews
    dead.writer.write(PARTIAL)
    waiter = WaiterClock(server)

    summary = await ingest_window(
        client_for(server),
        spec_for(root),
        leases=LeaseSettings(max_wait=150, sleep=waiter.sleep, monotonic=waiter),
    )

    assert 120 < sum(waiter.slept) <= 120 + 5  # one ttl of silence, then at most one poll of 5 s
    assert set(waiter.requests_seen) == {0}
    assert summary.intervals_landed == len(WINDOW.intervals(STEP))
    assert summary.queries == 1
    state = assert_landing_sound(root, WINDOW, STEP, server_ids(server))
    assert state.committed == set(WINDOW.intervals(STEP))
    assert temp_files(root) == []
    assert not (root / "_leases" / f".{dead.landing.owner.token}.owner.json").exists()


async def test_a_wait_that_ends_before_the_ttl_says_no_renewal_was_seen_rather_than_that_the_holder_lives(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    root = tmp_path / "landing"
    RunElsewhere(root, 3600).writer.write(PARTIAL)  # killed an hour "ahead": its record never changes
    waiter = WaiterClock(server)

    with pytest.raises(LeaseWaitTimeout) as raised:
        await ingest_window(
            client_for(server),
            spec_for(root),
            leases=LeaseSettings(max_wait=30, sleep=waiter.sleep, monotonic=waiter),
        )

    message = str(raised.value)
    assert "is alive" not in message
    assert "still leased by run 4242-feedfacecafe after waiting 30 s (max_wait 30 s)" in message
    assert "no renewal of its owner record in the 30 s" in message
    assert "a run is taken over once none is seen for 120 s" in message
    assert kind_of(raised.value) == "transient"
    assert server.logs_requests() == []


async def test_a_wait_that_ends_while_the_holder_renews_says_how_many_renewals_were_seen(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    root = tmp_path / "landing"
    other = RunElsewhere(root, -300)
    other.writer.write(PARTIAL)
    (temp,) = temp_files(root)
    renewed: list[float] = [0.0]

    def meanwhile(elapsed: float) -> None:
        if elapsed - renewed[-1] >= 40:
            other.store.renew()
            renewed.append(elapsed)

    waiter = WaiterClock(server, meanwhile)
    with pytest.raises(LeaseWaitTimeout) as raised:
        await ingest_window(
            client_for(server),
            spec_for(root),
            leases=LeaseSettings(max_wait=150, sleep=waiter.sleep, monotonic=waiter),
        )

    message = str(raised.value)
    assert f"renewed {len(renewed) - 1} times in the 150 s" in message
    assert "that run is alive" in message
    assert temp.exists()
    other.writer.abort()


# The lease store ----------------------------------------------------------------------------------


def test_a_lease_is_created_once_and_another_owner_sees_its_holder(tmp_path: Path) -> None:
    destination = ObjectStoragePath(tmp_path.as_uri())
    first, second = LeaseStore(destination, LeaseOwner.new()), LeaseStore(destination, LeaseOwner.new())
    first.renew()
    second.renew()
    lease = destination / "dt=2026-01-04" / ".slack_audit_x.lease"

    assert first.try_acquire(lease) is None
    assert second.try_acquire(lease) == first.owner.token
    document = json.loads(Path(lease.path).read_bytes())
    assert document["owner"] == first.owner.token
    assert {"host", "pid", "acquired_at"} <= set(document)
    record = json.loads(Path(first.owner_path().path).read_bytes())
    assert datetime.fromisoformat(record["expires_at"]) > datetime.fromisoformat(record["acquired_at"])

    second.release(lease)  # not its lease: left alone
    assert second.try_acquire(lease) == first.owner.token
    first.release(lease)
    assert second.try_acquire(lease) is None


def test_a_lease_whose_process_is_gone_on_this_host_is_stale_at_once(tmp_path: Path) -> None:
    destination = ObjectStoragePath(tmp_path.as_uri())
    exited = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    gone = LeaseOwner.new()
    gone = LeaseOwner(gone.host, int(exited.stdout), "0123456789ab", gone.pid_namespace)
    gone_store = LeaseStore(destination, gone)
    gone_store.renew()  # expires in two minutes, but its process has exited
    lease = destination / ".slack_audit_x.lease"
    assert gone_store.try_acquire(lease) is None

    taker = LeaseStore(destination, LeaseOwner.new())
    assert taker.holder(lease) is None
    assert taker.try_acquire(lease) is None
    assert json.loads(Path(lease.path).read_bytes())["owner"] == taker.owner.token


def test_an_unreadable_lease_counts_as_held_for_one_ttl_then_as_stale(tmp_path: Path) -> None:
    destination = ObjectStoragePath(tmp_path.as_uri())
    lease = destination / ".slack_audit_x.lease"
    Path(lease.path).write_bytes(b"")  # its writer died between creating and filling it
    clock = WallClock()
    store = LeaseStore(destination, LeaseOwner.new(), clock=clock, monotonic=clock)

    assert store.try_acquire(lease) == "?"
    clock.offset = 121
    assert store.try_acquire(lease) is None


@pytest.mark.parametrize("skew", [-3600, 3600])
def test_an_unreadable_lease_is_held_for_one_ttl_from_when_the_waiter_first_saw_it_whatever_its_clock(
    tmp_path: Path, skew: float
) -> None:
    destination = ObjectStoragePath(tmp_path.as_uri())
    lease = destination / ".slack_audit_x.lease"
    Path(lease.path).write_bytes(b"")  # its writer died between creating and filling it
    waited = [0.0]
    store = LeaseStore(
        destination, LeaseOwner.new(), clock=lambda: time.time() + skew, monotonic=lambda: waited[0]
    )

    assert store.try_acquire(lease) == "?"
    waited[0] = 119
    assert store.try_acquire(lease) == "?"
    waited[0] = 121
    assert store.try_acquire(lease) is None


def test_a_filesystem_without_conditional_writes_leases_by_write_and_read_back() -> None:
    class NoExclusiveCreate(MemoryFileSystem):  # type: ignore[misc]
        def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
            if "x" in mode:
                raise ValueError(f"unsupported file mode: {mode!r}")
            return super()._open(path, mode, **kwargs)

    conn_id = f"memory-{uuid.uuid4().hex}"
    attach("memory", conn_id=conn_id, fs=NoExclusiveCreate(global_store=False, skip_instance_cache=True))
    destination = ObjectStoragePath(f"memory://{conn_id}/landing", conn_id=conn_id)
    first, second = LeaseStore(destination, LeaseOwner.new()), LeaseStore(destination, LeaseOwner.new())
    first.renew()
    lease = destination / ".slack_audit_x.lease"

    assert first.try_acquire(lease) is None
    assert second.try_acquire(lease) == first.owner.token
    first.release(lease)
    assert second.try_acquire(lease) is None


def test_lease_settings_refuse_a_renewal_no_sooner_than_the_ttl() -> None:
    with pytest.raises(ValueError, match="renew_every 120 must be positive and below the ttl 60"):
        LeaseSettings(ttl=60, renew_every=120)
    with pytest.raises(ValueError, match="ttl must be a positive number"):
        LeaseSettings(ttl=0)


def test_lease_settings_refuse_renewals_a_waiter_could_miss_for_a_whole_ttl() -> None:
    with pytest.raises(ValueError, match=r"renewals every 58 s seen up to max_poll 5 s late .* ttl 60 s"):
        LeaseSettings(ttl=60, renew_every=58)
    with pytest.raises(ValueError, match=r"renewals every 2 s seen up to max_poll 5 s late"):
        LeaseSettings(ttl=6)
    assert LeaseSettings(ttl=60, renew_every=50).renew_interval == 50


async def test_verify_passes_with_the_lease_and_run_record_a_killed_run_left(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    root = tmp_path / "landing"
    await ingest_window(client_for(server), spec_for(root))
    killed = Landing(root.as_uri())
    killed_store = LeaseStore(killed.destination, killed.owner)
    killed_store.renew()
    killed_store.try_acquire(killed.lease_path(OLDEST))
    killed_store.try_acquire(killed.manifest_lease_path(WINDOW))

    report = await asyncio.to_thread(verify_destination, root.as_uri(), window=WINDOW)

    assert report.ok, report.to_text()
    assert not any(".lease" in line or ".owner" in line for line in report.notes)


# Which temporary files are stale ------------------------------------------------------------------


def test_reopening_an_interval_keeps_the_temp_of_the_writer_holding_its_lease(tmp_path: Path) -> None:
    holder, other = Landing(tmp_path.as_uri()), Landing(tmp_path.as_uri())
    store = LeaseStore(holder.destination, holder.owner)
    store.renew()
    assert store.try_acquire(holder.lease_path(OLDEST)) is None
    live = holder.open_interval(OLDEST)
    live.write(PARTIAL)
    (live_temp,) = temp_files(tmp_path)

    other.open_interval(OLDEST).abort()  # a writer ignoring the lease still keeps its hands off the temp

    assert temp_files(tmp_path) == [live_temp]
    live.commit(query={"action": None, "actor": None, "entity": None}, stats={})
    assert holder.data_path(OLDEST).exists()


def test_reopening_an_interval_removes_the_temp_of_a_writer_whose_lease_is_gone(tmp_path: Path) -> None:
    gone, other = Landing(tmp_path.as_uri()), Landing(tmp_path.as_uri())
    store = LeaseStore(gone.destination, gone.owner)
    store.renew()
    store.try_acquire(gone.lease_path(OLDEST))
    gone.open_interval(OLDEST).write(PARTIAL)
    store.retire()  # its run record is gone: the lease is stale

    other.open_interval(OLDEST).abort()

    assert temp_files(tmp_path) == []


def test_writing_a_manifest_keeps_the_temp_of_the_run_holding_the_manifest_lease(tmp_path: Path) -> None:
    holder, other = Landing(tmp_path.as_uri()), Landing(tmp_path.as_uri())
    store = LeaseStore(holder.destination, holder.owner)
    store.renew()
    store.try_acquire(holder.manifest_lease_path(WINDOW))
    manifest = Path(holder.manifest_path(WINDOW).path)
    manifest.parent.mkdir(parents=True, exist_ok=True)
    live_temp = manifest.parent / f".{manifest.name}.tmp-{holder.owner.token}-00000000"
    live_temp.write_bytes(b'{"half": ')
    commits = []
    for interval in WINDOW.intervals(STEP):
        with other.open_interval(interval) as writer:
            commits.append(writer.commit(query={"action": None, "actor": None, "entity": None}, stats={}))

    other.write_manifest(WINDOW, {"action": None, "actor": None, "entity": None}, commits)

    assert live_temp.exists()


def test_a_temp_of_a_file_no_lease_guards_is_stale_only_once_older_than_a_lease_ttl(tmp_path: Path) -> None:
    from airflow_provider_slack_audit.ingest.landing._fs import write_small_file

    target = ObjectStoragePath((tmp_path / "registry.json").as_uri())
    fresh = tmp_path / ".registry.json.tmp-111-aaaaaaaa"
    old = tmp_path / ".registry.json.tmp-222-bbbbbbbb"
    fresh.write_bytes(b"{")
    old.write_bytes(b"{")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))

    write_small_file(target, b"{}")

    assert fresh.exists() and not old.exists()
    assert (tmp_path / "registry.json").read_bytes() == b"{}"


@pytest.mark.parametrize("host_skew", [600, -7200], ids=["host_10_min_ahead", "host_2_h_behind"])
def test_a_temp_no_lease_guards_is_aged_by_the_file_systems_clock_not_the_hosts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, host_skew: float
) -> None:
    # A destination on a file server (NFS) stamps files with the server's clock, not this host's.
    from airflow_provider_slack_audit.ingest.landing._fs import write_small_file

    target = ObjectStoragePath((tmp_path / "registry.json").as_uri())
    fresh = tmp_path / ".registry.json.tmp-111-aaaaaaaa"  # another host writing it right now
    old = tmp_path / ".registry.json.tmp-222-bbbbbbbb"  # a writer that died an hour ago
    fresh.write_bytes(b"{")
    old.write_bytes(b"{")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + host_skew)

    write_small_file(target, b"{}")

    assert fresh.exists() and not old.exists()
    assert (tmp_path / "registry.json").read_bytes() == b"{}"


def test_of_owners_racing_for_one_lease_exactly_one_wins(tmp_path: Path) -> None:
    destination = ObjectStoragePath(tmp_path.as_uri())
    stores = [LeaseStore(destination, LeaseOwner.new()) for _ in range(4)]
    for store in stores:
        store.renew()

    for round_number in range(50):
        lease = destination / f".slack_audit_round{round_number}.lease"
        start = threading.Barrier(len(stores))

        def take(
            store: LeaseStore, lease: ObjectStoragePath = lease, start: threading.Barrier = start
        ) -> bool:
            start.wait()
            return store.try_acquire(lease) is None

        with ThreadPoolExecutor(len(stores)) as pool:
            won = list(pool.map(take, stores))

        assert won.count(True) == 1, f"round {round_number}: {won.count(True)} owners hold one lease"
