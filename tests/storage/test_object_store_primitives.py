"""Atomic publication and exclusive create on S3, GCS and Azure Blob, each read back with its own client.

The landing's two promises at the level of one file (conftest's ``store`` fixture gives a fresh
bucket on each emulator): a data file is under its final name only once complete, an aborted write
leaves the file it would replace untouched, and create-if-absent creates once (the API's precondition:
S3 and Azure ``If-None-Match: *``, GCS ``ifGenerationMatch=0``), for leases and ledger entries alike.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_slack_audit.ingest.landing import Landing
from airflow_provider_slack_audit.ingest.landing.lease import LeaseOwner, LeaseStore, create_exclusively
from airflow_provider_slack_audit.ingest.landing.ledger import Ledger
from airflow_provider_slack_audit.ingest.windows import Interval, Window
from airflow_provider_slack_audit.version_compat import ObjectStoragePath

pytestmark = pytest.mark.slow

DAY = datetime(2026, 1, 4, tzinfo=timezone.utc)
INTERVAL: Interval = Window(DAY, DAY + timedelta(hours=1)).intervals(timedelta(hours=1))[0]
QUERY = {"action": None, "actor": None, "entity": None}
STATS = {"pages": 1, "duplicates": 0, "out_of_range": 0}
# Past one upload part (5 MiB on S3, 256 KiB on GCS, 4 MiB blocks on Azure), so parts are staged.
PAGES = [
    [b'{"id":"%08d-%04d","date_create":1767484800,"pad":"%s"}' % (p, i, b"x" * 900) for i in range(1000)]
    for p in range(8)
]


def key_of(store: Any, path: ObjectStoragePath) -> str:
    return f"{store.prefix}/{path.relative_to(ObjectStoragePath(store.destination)).as_posix()}"


def landing_on(store: Any) -> Landing:
    return Landing(store.destination)


def test_an_aborted_rewrite_leaves_the_landed_file_and_its_marker_untouched(store: Any) -> None:
    landing = landing_on(store)
    with landing.open_interval(INTERVAL) as writer:
        writer.write(PAGES[0])
        writer.commit(query=QUERY, stats=STATS)
    data_key = key_of(store, landing.data_path(INTERVAL))
    landed = store.read(data_key)

    with landing.open_interval(INTERVAL) as writer:
        for page in PAGES:
            writer.write(page)
        # leaving without commit: aborted

    assert store.read(data_key) == landed
    assert landing.committed(INTERVAL, QUERY) is not None
    assert store.pending_uploads() == []


def test_a_data_file_is_absent_under_its_final_name_until_its_upload_completes(store: Any) -> None:
    landing = landing_on(store)
    data_key = key_of(store, landing.data_path(INTERVAL))
    with landing.open_interval(INTERVAL) as writer:
        for page in PAGES:
            writer.write(page)
        seen_while_writing = [key for key in store.keys(store.prefix) if key.endswith(".jsonl.gz")]
        commit = writer.commit(query=QUERY, stats=STATS)

    assert seen_while_writing == []
    assert len(store.read(data_key)) == commit.bytes
    assert len(store.lines(data_key)) == commit.count == 8000


def test_create_if_absent_creates_once_and_keeps_the_first_payload(store: Any) -> None:
    path = ObjectStoragePath(store.destination) / "_leases" / ".x.lease"

    assert create_exclusively(path, b'{"owner": "first"}') is True
    assert create_exclusively(path, b'{"owner": "second"}') is False
    assert store.read(key_of(store, path)) == b'{"owner": "first"}'


def test_a_lease_held_by_a_live_run_is_not_taken_by_a_second_run(store: Any) -> None:
    destination = ObjectStoragePath(store.destination)
    first, second = LeaseStore(destination, LeaseOwner.new()), LeaseStore(destination, LeaseOwner.new())
    first.renew()
    second.renew()
    lease = destination / "dt=2026-01-04" / ".slack_audit_x.lease"

    assert first.try_acquire(lease) is None
    assert second.try_acquire(lease) == first.owner.token
    first.release(lease)
    assert second.try_acquire(lease) is None


def test_two_ledger_writers_racing_for_one_entry_on_the_store_land_one_after_the_other(store: Any) -> None:
    ledger = Ledger(ObjectStoragePath(store.destination))
    stale = ledger.head()  # both writers read the empty head ...
    one = ledger.append({"manifest": {"path": "a", "sha256": "0" * 64}}, after=stale)
    two = ledger.append({"manifest": {"path": "b", "sha256": "1" * 64}}, after=stale)  # ... one loses seq 1

    assert (one.seq, two.seq) == (1, 2)
    first, second = (store.read(f"{store.prefix}/_ledger/{seq:012d}.json") for seq in (1, 2))
    assert json.loads(first)["manifest"]["path"] == "a"  # the loser did not overwrite the winner's entry
    assert json.loads(second)["manifest"]["path"] == "b"
    assert json.loads(second)["prev_sha256"] == one.sha256 == hashlib.sha256(first).hexdigest()
