"""A real S3 API on loopback for the landing contract: moto in server mode, one per test session.

The code under test reaches it the way a deployment reaches S3: through ``ObjectStoragePath`` and an
``aws`` connection (``AIRFLOW_CONN_<ID>`` with ``endpoint_url`` in its extra). The checks read the
bucket with boto3 directly, so they do not reuse the code under test.

Fixtures other storage tests can build on:

* ``s3_destination``: a fresh bucket per test, as ``s3://<conn>@<bucket>/landing``;
* ``s3_bucket``: that bucket's name (the destination is its ``landing`` prefix, ``s3.prefix``);
* ``s3``: an :class:`S3Objects` reader of the bucket (keys, bytes, gzip JSONL, pending uploads);
* ``s3_conn_id`` / ``s3_endpoint``: the ``aws`` connection and the server's URL it points at.

They are fixtures rather than importable helpers, so test modules need no import of this file.
"""

from __future__ import annotations

import gzip
import json
import logging
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")

S3_CONN_ID = "slack_audit_s3"
REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
PREFIX = "landing"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 on 127.0.0.1 (a free port), with an ``aws`` connection pointing at it."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one log line per request otherwise
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    connection = {
        "conn_type": "aws",
        "login": CREDENTIALS["aws_access_key_id"],
        "password": CREDENTIALS["aws_secret_access_key"],
        "extra": {"endpoint_url": endpoint, "region_name": REGION},
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(f"AIRFLOW_CONN_{S3_CONN_ID.upper()}", json.dumps(connection))
        # Nothing may fall back to real AWS: no ambient credentials, no instance metadata.
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
            patch.delenv(name, raising=False)
        patch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS["aws_access_key_id"])
        patch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS["aws_secret_access_key"])
        patch.setenv("AWS_DEFAULT_REGION", REGION)
        patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        # Every AWS client of the process, whatever reads the connection's extra, talks to moto only.
        patch.setenv("AWS_ENDPOINT_URL", endpoint)
        patch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
        try:
            yield endpoint
        finally:
            server.stop()


@pytest.fixture(scope="session")
def s3_client(s3_endpoint: str) -> Any:
    """A plain boto3 client of the server: the checks' own way in, independent of the code under test."""
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name=REGION, **CREDENTIALS)


class S3Objects:
    """Reads one bucket with boto3: what the landing contract says must (or must not) be there."""

    def __init__(self, client: Any, bucket: str, prefix: str = PREFIX) -> None:
        self.client = client
        self.bucket = bucket
        #: Where ``s3_destination`` lands in the bucket.
        self.prefix = prefix

    def keys(self, prefix: str = "") -> list[str]:
        """Every key under ``prefix``, sorted (pages through listings of any size)."""
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def read(self, key: str) -> bytes:
        body: bytes = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return body

    def json(self, key: str) -> Any:
        return json.loads(self.read(key))

    def lines(self, key: str) -> list[bytes]:
        """The lines of a data file (gunzipped when the key ends in .gz); each must end in a newline."""
        data = self.read(key)
        if key.endswith(".gz"):
            data = gzip.decompress(data)
        assert data == b"" or data.endswith(b"\n"), f"{key} does not end with a newline"
        return data.split(b"\n")[:-1]

    def etags(self, prefix: str = "") -> dict[str, str]:
        """Key -> ETag: equal maps mean no object under ``prefix`` was rewritten."""
        return {
            key: self.client.head_object(Bucket=self.bucket, Key=key)["ETag"] for key in self.keys(prefix)
        }

    def pending_uploads(self) -> list[str]:
        """Keys of multipart uploads begun and neither completed nor aborted."""
        uploads = self.client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
        return [upload["Key"] for upload in uploads]


@pytest.fixture(scope="session")
def s3_conn_id(s3_endpoint: str) -> str:
    """The ``aws`` connection (an ``AIRFLOW_CONN_*`` variable) that points at the server."""
    return S3_CONN_ID


@pytest.fixture
def s3_bucket(s3_client: Any) -> str:
    """A fresh, empty bucket for one test (moto keeps it in memory until the session ends)."""
    name = f"slack-audit-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3(s3_client: Any, s3_bucket: str) -> S3Objects:
    return S3Objects(s3_client, s3_bucket)


@pytest.fixture
def s3_destination(s3_conn_id: str, s3_bucket: str) -> str:
    """Where a test lands: the fresh bucket's ``landing`` prefix, through the ``aws`` connection."""
    return f"s3://{s3_conn_id}@{s3_bucket}/{PREFIX}"
