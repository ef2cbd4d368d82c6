"""The landing contract on real S3, GCS and Azure Blob APIs (emulators on loopback), through connections.

``ingest_window`` runs end to end against the fake Audit Logs server with an ``s3://``, ``gs://`` or
``abfs://`` destination (conftest's ``store`` fixture); every check reads the bucket with the store's
own client (boto3, the GCS JSON API, the Azure SDK), never through the landing code: data files are
gzip JSONL holding exactly the server's entries, one marker per data file agrees with its object, the
manifest covers the window once, and nothing partial is ever visible.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_slack_audit.client import AsyncAuditLogsClient, SlackAuditLogsApiError
from airflow_provider_slack_audit.ingest import Window, read_manifest
from airflow_provider_slack_audit.ingest.pipeline import ingest_window
from airflow_provider_slack_audit.ingest.spec import IngestSpec, IngestSummary
from airflow_provider_slack_audit.operators.slack_audit import SlackAuditLogsOperator
from airflow_provider_slack_audit.testing import FakeAuditLogsServer
from airflow_provider_slack_audit.version_compat import ObjectStoragePath

DAY = datetime(2026, 1, 4, tzinfo=timezone.utc)
WINDOW = Window(DAY, DAY + timedelta(hours=4))
STEP = timedelta(hours=1)
LIMIT = 100
TOKEN = "xoxp-test"
# Real object-store APIs on loopback: seconds per test, so CI runs them and `make test-fast` does not.
pytestmark = pytest.mark.slow


@pytest.fixture
async def server() -> AsyncIterator[FakeAuditLogsServer]:
    # Events reach past the window on both sides, so boundary seconds have neighbours to leak.
    async with FakeAuditLogsServer(
        events=1200, seed=11, start=DAY - timedelta(minutes=30), end=WINDOW.end + timedelta(minutes=30)
    ) as fake:
        yield fake


def spec_for(destination: str, **kwargs: Any) -> IngestSpec:
    values: dict[str, Any] = {
        "window": WINDOW,
        "interval": STEP,
        "destination": destination,
        "settle_lag": timedelta(0),
        "limit": LIMIT,
        **kwargs,
    }
    return IngestSpec(**values)


async def land(server: FakeAuditLogsServer, spec: IngestSpec, **client_options: Any) -> IngestSummary:
    client = AsyncAuditLogsClient(TOKEN, base_url=server.base_url, **client_options)
    return await ingest_window(client, spec)


# Independent checks -----------------------------------------------------------------------------


def data_keys(objects: Any) -> list[str]:
    return [key for key in objects.keys(objects.prefix) if key.endswith((".jsonl", ".jsonl.gz"))]


def marker_of(data_key: str) -> str:
    return data_key.removesuffix(".gz").removesuffix(".jsonl") + ".commit.json"


def relative(objects: Any, key: str) -> str:
    return key.removeprefix(f"{objects.prefix}/")


def assert_committed(objects: Any, data_key: str) -> dict[str, Any]:
    """The data file's marker exists and agrees with the object: lines, size and SHA-256."""
    data = objects.read(data_key)
    marker = objects.json(marker_of(data_key))
    assert marker["path"] == relative(objects, data_key)
    assert marker["bytes"] == len(data)
    assert marker["sha256"] == hashlib.sha256(data).hexdigest()
    assert marker["count"] == len(objects.lines(data_key))
    return dict(marker)


def assert_window_landed(objects: Any, server: FakeAuditLogsServer, window: Window) -> dict[str, Any]:
    """The whole contract for one landed window; returns its manifest document."""
    keys = objects.keys(objects.prefix)
    assert not [key for key in keys if ".tmp-" in key], "a temporary object was left behind"
    assert objects.pending_uploads() == [], "an upload was begun and never completed or aborted"
    data = data_keys(objects)
    assert all(key.endswith(".jsonl.gz") for key in data)

    # Every line is one entry exactly as the server sent it; every entry of the window lands once.
    lines = [line for key in data for line in objects.lines(key)]
    assert sorted(lines) == sorted(server.expected_entries(window.oldest, window.latest))
    assert all(json.loads(line)["id"] for line in lines)

    markers = {relative(objects, key): assert_committed(objects, key) for key in data}

    (manifest_key,) = [key for key in keys if key.endswith(".manifest.json")]
    manifest = objects.json(manifest_key)
    intervals = sorted(manifest["intervals"], key=lambda item: item["oldest"])
    assert intervals[0]["oldest"] == window.oldest
    assert intervals[-1]["latest"] == window.latest
    for before, after in itertools.pairwise(intervals):
        assert after["oldest"] == before["latest"] + 1, "the manifest's intervals leave a gap or overlap"
    assert sorted(item["path"] for item in intervals) == sorted(markers)
    for item in intervals:
        marker = markers[item["path"]]
        assert (item["count"], item["bytes"], item["sha256"]) == (
            marker["count"],
            marker["bytes"],
            marker["sha256"],
        )
    assert manifest["events"] == len(lines) == sum(item["count"] for item in intervals)
    assert manifest["bytes"] == sum(item["bytes"] for item in intervals)
    return dict(manifest)


# The contract -----------------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["connection_in_url", "destination_conn_id"])
async def test_a_window_lands_on_the_store_as_the_landing_contract_says(
    server: FakeAuditLogsServer,
    store: Any,
    spelling: str,
) -> None:
    if spelling == "connection_in_url":
        spec = spec_for(store.destination)
    else:
        scheme, _, rest = store.destination.partition("://")
        conn_id, _, location = rest.partition("@")
        spec = spec_for(f"{scheme}://{location}", destination_conn_id=conn_id)

    summary = await land(server, spec)

    manifest = assert_window_landed(store, server, WINDOW)
    assert len(data_keys(store)) == summary.intervals_landed == 4
    assert summary.events == manifest["events"] > 0
    assert summary.manifest.startswith(store.destination.partition("://")[0] + "://")


async def test_a_rerun_on_the_store_makes_no_request_and_rewrites_no_data_file(
    server: FakeAuditLogsServer, store: Any
) -> None:
    await land(server, spec_for(store.destination))
    before = store.etags(store.prefix)
    server.reset_log()

    summary = await land(server, spec_for(store.destination))

    assert (summary.intervals_landed, summary.intervals_skipped) == (0, 4)
    assert server.logs_requests() == []
    after = store.etags(store.prefix)
    # Data files and markers (GCS and Azure give every write a new version, even of the same bytes).
    landed = (".jsonl.gz", ".commit.json")
    assert {k: v for k, v in after.items() if k.endswith(landed)} == {
        k: v for k, v in before.items() if k.endswith(landed)
    }
    # The rewritten manifest gets a ledger entry of its own; the entry before it is untouched.
    assert sorted(k for k in set(after) - set(before)) == [f"{store.prefix}/_ledger/000000000002.json"]
    assert all(after[k] == v for k, v in before.items() if "_ledger/" in k)
    assert_window_landed(store, server, WINDOW)


async def test_a_run_failing_mid_window_on_the_store_leaves_nothing_partial_and_the_rerun_resumes(
    server: FakeAuditLogsServer, store: Any
) -> None:
    spec = spec_for(store.destination)
    # One query reads the window newest first: the newest interval commits first.
    newest, next_newest = WINDOW.intervals(STEP)[-1], WINDOW.intervals(STEP)[-2]
    counts = [len(server.expected_ids(i.oldest, i.latest)) for i in (newest, next_newest)]
    # Fail in the middle of the next-newest interval, once the stream has passed the newest one.
    failing_page = -(-(counts[0] + counts[1] // 2) // LIMIT)
    server.faults.push("http_503", count=1, after=failing_page)

    with pytest.raises(SlackAuditLogsApiError) as failed:
        await land(server, spec, retry_handlers=[])

    assert failed.value.kind == "transient"
    assert counts[1] >= 2 * LIMIT, (
        "the next-newest interval must span pages for the failure to fall inside it"
    )
    (landed,) = data_keys(store)  # the newest interval, committed; nothing of the next one
    assert assert_committed(store, landed)["interval"]["oldest"] == newest.oldest
    assert not [
        key for key in store.keys(store.prefix) if key.endswith(".commit.json") and key != marker_of(landed)
    ]
    assert not [key for key in store.keys(store.prefix) if key.endswith(".manifest.json")]
    assert store.pending_uploads() == []
    committed_etag = store.etags(store.prefix)[landed]

    server.reset_log()
    summary = await land(server, spec)

    assert (summary.intervals_skipped, summary.intervals_landed) == (1, 3)
    assert all(int(request.query["latest"]) < newest.oldest for request in server.logs_requests())
    assert store.etags(store.prefix)[landed] == committed_etag
    assert_window_landed(store, server, WINDOW)


async def test_an_overwrite_on_the_store_rewrites_every_interval_with_identical_bytes(
    server: FakeAuditLogsServer, store: Any
) -> None:
    await land(server, spec_for(store.destination))
    before = {key: store.read(key) for key in data_keys(store)}

    summary = await land(server, spec_for(store.destination, overwrite=True))

    assert summary.intervals_landed == 4
    assert {key: store.read(key) for key in data_keys(store)} == before
    assert_window_landed(store, server, WINDOW)


async def test_a_failed_overwrite_on_the_store_leaves_every_committed_interval_committed(
    server: FakeAuditLogsServer, store: Any
) -> None:
    await land(server, spec_for(store.destination))
    committed = {key: store.read(key) for key in data_keys(store)}
    # The rewrite fails in its first interval, as with a revoked token.
    server.faults.push("http_503", count=1, after=1)

    with pytest.raises(SlackAuditLogsApiError):
        await land(server, spec_for(store.destination, overwrite=True), retry_handlers=[])

    assert {key: store.read(key) for key in data_keys(store)} == committed
    for key in committed:
        assert_committed(store, key)
    assert store.pending_uploads() == []


async def test_a_window_landed_on_the_store_reads_back_through_its_manifest(
    server: FakeAuditLogsServer, store: Any
) -> None:
    summary = await land(server, spec_for(store.destination))

    manifest = await asyncio.to_thread(read_manifest, summary.manifest)
    lines = await asyncio.to_thread(lambda: list(manifest.iter_lines()))  # verifies sizes and hashes

    assert sorted(lines) == sorted(server.expected_entries(WINDOW.oldest, WINDOW.latest))


# Through the operator -----------------------------------------------------------------------------


@pytest.fixture
def threaded_server(slack_audit_connection: Callable[..., None]) -> Iterator[FakeAuditLogsServer]:
    """The fake API in a thread of its own, with the ``slack_audit`` connection the operator reads."""
    fake = FakeAuditLogsServer(events=600, seed=12, start=WINDOW.start, end=WINDOW.end)
    fake.start_in_thread()
    slack_audit_connection(fake.base_url, password=TOKEN)
    yield fake
    fake.stop()


def test_the_operator_lands_on_the_store_through_an_object_storage_path_and_its_connection(
    threaded_server: FakeAuditLogsServer, store: Any
) -> None:
    scheme, _, rest = store.destination.partition("://")
    conn_id, _, location = rest.partition("@")
    operator = SlackAuditLogsOperator(
        task_id="land",
        destination=ObjectStoragePath(f"{scheme}://{location}", conn_id=conn_id),
        interval=STEP,
        settle_lag=timedelta(0),
        deferrable=False,
    )

    summary = operator.execute({"data_interval_start": WINDOW.start, "data_interval_end": WINDOW.end})  # type: ignore[arg-type]

    manifest = assert_window_landed(store, threaded_server, WINDOW)
    assert summary["events"] == manifest["events"]
    assert summary["intervals_landed"] == 4
