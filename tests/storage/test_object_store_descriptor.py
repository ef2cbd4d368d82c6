"""The destination descriptor on S3, GCS and Azure Blob (emulators on loopback): a conditional write.

The first landing creates ``<destination>/_slack_audit.json`` under the API's precondition (S3 and
Azure ``If-None-Match: *``, GCS ``ifGenerationMatch=0``); a run of another layout is refused before
any request; two first landings racing agree on one descriptor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_slack_audit.client import AsyncAuditLogsClient
from airflow_provider_slack_audit.ingest import Window
from airflow_provider_slack_audit.ingest.errors import DestinationConflictError
from airflow_provider_slack_audit.ingest.landing.plan import DestinationLayout
from airflow_provider_slack_audit.ingest.pipeline import ingest_window
from airflow_provider_slack_audit.ingest.spec import IngestSpec
from airflow_provider_slack_audit.testing import FakeAuditLogsServer
from airflow_provider_slack_audit.version_compat import ObjectStoragePath

from support.descriptor_races import race_first_landings

DAY = datetime(2026, 1, 4, tzinfo=timezone.utc)
WINDOW = Window(DAY, DAY + timedelta(hours=3))
UNFILTERED = {"action": None, "actor": None, "entity": None}

# Real object-store APIs on loopback: seconds per test, so CI runs them and `make test-fast` does not.
pytestmark = pytest.mark.slow


@pytest.fixture
async def server() -> AsyncIterator[FakeAuditLogsServer]:
    async with FakeAuditLogsServer(events=300, seed=3, start=DAY, end=WINDOW.end) as fake:
        yield fake


async def land(server: FakeAuditLogsServer, destination: str, **kwargs: Any) -> None:
    spec = IngestSpec(
        window=WINDOW, destination=destination, settle_lag=timedelta(0), interval=timedelta(hours=1), **kwargs
    )
    await ingest_window(AsyncAuditLogsClient("xoxp-test", base_url=server.base_url), spec)


async def test_the_descriptor_is_written_on_the_store_and_a_run_of_another_layout_is_refused(
    server: FakeAuditLogsServer, store: Any
) -> None:
    await land(server, store.destination)
    document = store.json(f"{store.prefix}/_slack_audit.json")
    assert (document["grid_seconds"], document["compression"], document["query"]) == (
        3600,
        "gzip",
        UNFILTERED,
    )
    objects = {key: store.read(key) for key in store.keys(store.prefix)}
    server.reset_log()

    with pytest.raises(DestinationConflictError, match="pass compression='gzip' \\(not None\\)"):
        await land(server, store.destination, compression=None)

    assert server.logs_requests() == []
    assert {key: store.read(key) for key in store.keys(store.prefix)} == objects


def test_two_first_landings_racing_on_the_store_agree_on_one_descriptor(store: Any) -> None:
    layouts = [
        DestinationLayout(timedelta(hours=1), "gzip", UNFILTERED),
        DestinationLayout(timedelta(hours=1), None, UNFILTERED),
    ]
    for round_ in range(5):
        root = ObjectStoragePath(f"{store.destination.rsplit('/', 1)[0]}/race{round_}")
        outcomes = race_first_landings(root, WINDOW, layouts)

        assert sorted(outcomes) == ["landed", "refused"]
        document = store.json(f"race{round_}/_slack_audit.json")
        assert document["compression"] == layouts[outcomes.index("landed")].compression
