"""Write-once retention on a real S3 API (moto's server): evidence files under S3 Object Lock.

With ``retention=`` each data file, commit marker, manifest and ledger entry is written in COMPLIANCE
mode: its version cannot be deleted or replaced before its date (checked with boto3 directly), while
reruns, overwrites and reconciles keep working by writing new versions.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_slack_audit.client import AsyncAuditLogsClient
from airflow_provider_slack_audit.ingest import Window
from airflow_provider_slack_audit.ingest.pipeline import ingest_window
from airflow_provider_slack_audit.ingest.spec import IngestSpec, IngestSummary
from airflow_provider_slack_audit.ingest.verify import verify_destination

botocore_exceptions = pytest.importorskip("botocore.exceptions")

DAY = datetime(2026, 1, 4, tzinfo=timezone.utc)
WINDOW = Window(DAY, DAY + timedelta(hours=3))
RETENTION = timedelta(days=30)
pytestmark = pytest.mark.slow


@pytest.fixture
async def server() -> AsyncIterator[Any]:
    from airflow_provider_slack_audit.testing import FakeAuditLogsServer

    async with FakeAuditLogsServer(events=600, seed=3, start=DAY, end=WINDOW.end) as fake:
        yield fake


@pytest.fixture
def locked_bucket(s3_client: Any) -> str:
    name = f"slack-audit-locked-{uuid.uuid4().hex[:8]}"
    s3_client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


def spec(destination: str, **kwargs: Any) -> IngestSpec:
    return IngestSpec(
        window=WINDOW,
        interval=timedelta(hours=1),
        destination=destination,
        settle_lag=timedelta(0),
        limit=100,
        **kwargs,
    )


async def land(server: Any, destination: str, **kwargs: Any) -> IngestSummary:
    client = AsyncAuditLogsClient("xoxp-test", base_url=server.base_url)
    return await ingest_window(client, spec(destination, **kwargs))


def keys(client: Any, bucket: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="landing/")
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def evidence_keys(client: Any, bucket: str) -> list[str]:
    return [
        key
        for key in keys(client, bucket)
        if key.endswith((".jsonl.gz", ".commit.json", ".manifest.json")) or "/_ledger/" in key
    ]


def versions(client: Any, bucket: str, key: str) -> list[str]:
    found = client.list_object_versions(Bucket=bucket, Prefix=key).get("Versions", [])
    return [item["VersionId"] for item in found if item["Key"] == key]


async def test_every_evidence_file_is_locked_so_its_version_cannot_be_deleted_or_replaced(
    server: Any, s3_client: Any, s3_conn_id: str, locked_bucket: str
) -> None:
    await land(server, f"s3://{s3_conn_id}@{locked_bucket}/landing", retention=RETENTION)
    evidence = evidence_keys(s3_client, locked_bucket)

    assert {key.rsplit(".", 2)[-2] for key in evidence} >= {"jsonl", "commit", "manifest"}
    assert any("/_ledger/" in key for key in evidence)
    soon = datetime.now(timezone.utc) + RETENTION
    for key in evidence:
        head = s3_client.head_object(Bucket=locked_bucket, Key=key)
        assert head.get("ObjectLockMode") == "COMPLIANCE", key
        assert abs(head["ObjectLockRetainUntilDate"] - soon) < timedelta(minutes=5), key
        version = head["VersionId"]
        with pytest.raises(botocore_exceptions.ClientError, match="AccessDenied"):
            s3_client.delete_object(Bucket=locked_bucket, Key=key, VersionId=version)
        # An "overwrite" is a new version: the protected one stays, byte for byte.
        before = s3_client.get_object(Bucket=locked_bucket, Key=key, VersionId=version)["Body"].read()
        s3_client.put_object(Bucket=locked_bucket, Key=key, Body=b"tampered")
        kept = s3_client.get_object(Bucket=locked_bucket, Key=key, VersionId=version)["Body"].read()
        assert kept == before, key
    # Leases and owner records are bookkeeping, not evidence: never locked.
    assert not [key for key in keys(s3_client, locked_bucket) if key.endswith((".lease", ".owner.json"))]


async def test_reruns_overwrites_and_reconciles_keep_working_under_retention_as_new_versions(
    server: Any, s3_client: Any, s3_conn_id: str, locked_bucket: str
) -> None:
    destination = f"s3://{s3_conn_id}@{locked_bucket}/landing"
    await land(server, destination, retention=RETENTION)
    rerun = await land(server, destination, retention=RETENTION)
    overwritten = await land(server, destination, retention=RETENTION, overwrite=True)
    reconciled = await land(server, destination, retention=RETENTION, reconcile=True)

    assert (rerun.intervals_skipped, overwritten.intervals_landed) == (3, 3)
    # One entry a run, and the overwrite one more: it withdraws the manifest before rewriting a file.
    assert reconciled.ledger is not None and reconciled.ledger["seq"] == 5
    manifest = next(key for key in keys(s3_client, locked_bucket) if key.endswith(".manifest.json"))
    assert len(versions(s3_client, locked_bucket, manifest)) == 4
    data = next(key for key in keys(s3_client, locked_bucket) if key.endswith(".jsonl.gz"))
    assert len(versions(s3_client, locked_bucket, data)) >= 2
    report = await asyncio.to_thread(verify_destination, destination)
    assert report.ok, report.to_text()


async def test_retention_on_a_bucket_without_object_lock_is_refused_before_any_request(
    server: Any, s3_client: Any, s3_conn_id: str, s3_bucket: str
) -> None:
    with pytest.raises(ValueError, match="needs S3 Object Lock, but bucket"):
        await land(server, f"s3://{s3_conn_id}@{s3_bucket}/landing", retention=RETENTION)

    assert server.logs_requests() == []
    assert not keys(s3_client, s3_bucket)
