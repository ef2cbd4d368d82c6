"""The landing contract needs a store that publishes atomically and creates exclusively; others are refused.

Two stores the contract cannot trust, both in memory so no network is involved:

* ``memory://``: fsspec's memory filesystem publishes a file the moment it is opened for writing;
* ``bufstore://``: a filesystem built on fsspec's generic buffered file, as ``dbfs://`` is: it
  ignores ``autocommit=False``, publishes whatever was written when the file is closed, and takes
  mode ``"xb"`` without looking whether the object exists.
"""

from __future__ import annotations

import gzip
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import fsspec
import pytest
from fsspec.implementations.memory import MemoryFileSystem
from fsspec.spec import AbstractBufferedFile

from airflow_provider_slack_audit.ingest import Window
from airflow_provider_slack_audit.ingest.errors import EvidenceLossError
from airflow_provider_slack_audit.ingest.landing import Landing
from airflow_provider_slack_audit.ingest.landing.lease import create_exclusively
from airflow_provider_slack_audit.ingest.pipeline import ingest_window
from airflow_provider_slack_audit.ingest.spec import IngestSpec, parse_destination_url
from airflow_provider_slack_audit.ingest.windows import Interval
from airflow_provider_slack_audit.version_compat import ObjectStoragePath, attach

from support.scripted_client import ScriptedClient

MEMORY_OPT_IN = "SLACK_AUDIT_ALLOW_MEMORY_STORE"


class _BufferedFile(AbstractBufferedFile):  # type: ignore[misc]
    """fsspec's generic buffered file: the object is written, whole, when the file is closed."""

    def _initiate_upload(self) -> None:
        self._parts: list[bytes] = []

    def _upload_chunk(self, final: bool = False) -> bool:
        self._parts.append(self.buffer.getvalue())
        if final:
            self.fs.store_object(self.path, b"".join(self._parts))
        return True


class BufferedStore(MemoryFileSystem):  # type: ignore[misc]
    """A store whose writes go through fsspec's generic buffered file (as dbfs's do)."""

    protocol = "bufstore"

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        if "r" in mode:
            return super()._open(path, mode, **kwargs)
        return _BufferedFile(self, self._strip_protocol(path), mode, **kwargs)

    def store_object(self, path: str, data: bytes) -> None:
        with super()._open(path, "wb") as file:
            file.write(data)


fsspec.register_implementation("bufstore", BufferedStore, clobber=True)  # so paths can name it


def isolated(protocol: str, fs: MemoryFileSystem) -> str:
    """A connection id whose filesystem is ``fs``, private to the calling test."""
    conn_id = f"{protocol}-{uuid.uuid4().hex}"
    attach(protocol, conn_id=conn_id, fs=fs)
    return conn_id


def unsafe_landing(protocol: str) -> Landing:
    fs = (BufferedStore if protocol == "bufstore" else MemoryFileSystem)(
        global_store=False, skip_instance_cache=True
    )
    conn_id = isolated(protocol, fs)
    # A bucket of its own too: older fsspec releases (2026.6.0, which the Airflow 3.2 cell pins) know
    # no global_store and share one memory store between instances.
    return Landing(f"{protocol}://bucket-{uuid.uuid4().hex}/landing", conn_id=conn_id)


QUERY = {"action": None, "actor": None, "entity": None}
STATS = {"pages": 1, "duplicates": 0, "out_of_range": 0}
ENTRIES = [b'{"id":"a1","date_create":1767484800}', b'{"id":"b2","date_create":1767484801}']


def first_interval() -> Interval:
    day = datetime(2026, 1, 4, tzinfo=timezone.utc)
    return Window(day, day + timedelta(hours=1)).intervals(timedelta(hours=1))[0]


# Reproduction 1: an aborted write publishes nothing, and never touches a landed file ---------------


@pytest.mark.parametrize("protocol", ["memory", "bufstore"])
def test_an_aborted_rewrite_leaves_the_landed_file_untouched_on_a_store_that_publishes_on_open(
    protocol: str,
) -> None:
    landing, interval = unsafe_landing(protocol), first_interval()
    with landing.open_interval(interval) as writer:
        writer.write(ENTRIES)
        writer.commit(query=QUERY, stats=STATS)
    landed = landing.data_path(interval).read_bytes()

    with landing.open_interval(interval) as writer:
        writer.write([b'{"id":"z9","date_create":1767484802}'] * 1000)
        # leaving without commit: aborted

    assert landing.data_path(interval).read_bytes() == landed
    assert landing.committed(interval, QUERY) is not None


def test_no_data_file_is_visible_under_its_final_name_until_it_is_complete_on_memory() -> None:
    landing, interval = unsafe_landing("memory"), first_interval()
    with landing.open_interval(interval) as writer:
        writer.write(ENTRIES)
        seen_while_writing = landing.data_path(interval).exists()
        writer.commit(query=QUERY, stats=STATS)

    assert not seen_while_writing
    assert gzip.decompress(landing.data_path(interval).read_bytes()) == b"".join(e + b"\n" for e in ENTRIES)


async def test_a_refused_overwrite_on_memory_keeps_the_hours_file_byte_for_byte(
    allow_memory_store: None,
) -> None:
    conn_id = isolated("memory", MemoryFileSystem(global_store=False, skip_instance_cache=True))
    interval = first_interval()
    spec = {
        "window": Window(interval.start, interval.end),
        "interval": timedelta(hours=1),
        "destination": f"memory://{conn_id}/landing",
        "destination_conn_id": conn_id,
        "settle_lag": timedelta(0),
    }
    t0 = interval.oldest
    await ingest_window(ScriptedClient([[("a", t0 + 10), ("b", t0 + 9), ("c", t0 + 8)]]), IngestSpec(**spec))
    path = Landing(f"memory://{conn_id}/landing", conn_id=conn_id).data_path(interval)
    landed = path.read_bytes()

    shrunk = ScriptedClient([[("a", t0 + 10)]])
    with pytest.raises(EvidenceLossError, match="lacks 2 of the 3"):
        await ingest_window(shrunk, IngestSpec(**spec, overwrite=True))

    assert path.read_bytes() == landed


# Reproduction 2: create-if-absent is exclusive, or says it cannot be ----------------------------------


def test_create_if_absent_never_reports_creating_an_object_that_existed_on_a_generic_buffered_store() -> None:
    conn_id = isolated("bufstore", BufferedStore(global_store=False, skip_instance_cache=True))
    path = ObjectStoragePath(f"bufstore://{conn_id}/landing/.x.lease", conn_id=conn_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b'{"owner": "first"}')

    created = create_exclusively(path, b'{"owner": "second"}')

    assert created is not True
    assert path.read_bytes() == b'{"owner": "first"}'


# Refused before any request -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["dbfs://workspace/slack_audit", "bufstore://bucket/landing", "sftp://host/data", "memory://landing"],
)
def test_a_store_without_atomic_publication_and_exclusive_create_is_refused_naming_the_supported_ones(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(MEMORY_OPT_IN, raising=False)
    scheme = url.partition("://")[0]

    with pytest.raises(ValueError, match=f"'{scheme}://'") as refused:
        parse_destination_url(url)

    for supported in ("file://", "s3://", "gs://", "abfs://"):
        assert supported in str(refused.value)


@pytest.mark.parametrize(
    "url",
    [
        "file:///data/slack_audit",
        "local:///data/slack_audit",
        "s3://bucket/slack_audit",
        "s3a://bucket/slack_audit",
        "gs://bucket/slack_audit",
        "gcs://bucket/slack_audit",
        "abfs://container/slack_audit",
        "abfss://container/slack_audit",
        "az://container/slack_audit",
    ],
)
def test_local_files_s3_gcs_and_azure_blob_are_accepted(url: str) -> None:
    assert parse_destination_url(url) == url


def test_memory_is_accepted_only_with_the_test_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MEMORY_OPT_IN, "1")
    assert parse_destination_url("memory://landing") == "memory://landing"
    monkeypatch.setenv(MEMORY_OPT_IN, "0")
    with pytest.raises(ValueError, match=MEMORY_OPT_IN):
        parse_destination_url("memory://landing")


async def test_ingest_window_refuses_a_dbfs_destination_before_any_request() -> None:
    client = ScriptedClient([[("a", 1767484810)]])
    interval = first_interval()

    with pytest.raises(ValueError, match="'dbfs://'"):
        await ingest_window(
            client,
            IngestSpec(
                window=Window(interval.start, interval.end),
                interval=timedelta(hours=1),
                destination="dbfs://workspace/slack_audit",
            ),
        )

    assert client.queries == []
