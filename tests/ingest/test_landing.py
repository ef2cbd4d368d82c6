from __future__ import annotations

import gzip
import hashlib
import json
import re
import shutil
import tracemalloc
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from fsspec.implementations.memory import MemoryFileSystem

from airflow_provider_slack_audit.ingest.landing import IntervalCommit, Landing, read_manifest
from airflow_provider_slack_audit.ingest.windows import Interval, Window
from airflow_provider_slack_audit.version_compat import ObjectStoragePath, attach

UTC = timezone.utc
WINDOW = Window(datetime(2026, 1, 4, tzinfo=UTC), datetime(2026, 1, 5, tzinfo=UTC))
INTERVALS = WINDOW.intervals(timedelta(hours=6))
FIRST = INTERVALS[0]
QUERY = {"action": None, "actor": None, "entity": None}
STATS = {"pages": 1, "duplicates": 0, "out_of_range": 0}
ENTRIES = [
    b'{"id":"a1","date_create":1767484800,"action":"user_login"}',
    b'{"id":"b2","date_create":1767484801,"action":"file_downloaded","details":{"k":"v"}}',
    b'{"id":"c3","date_create":1767484802,"action":"user_logout","unknown_field":[1,2]}',
]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "landing"


@pytest.fixture
def landing(root: Path) -> Landing:
    return Landing(ObjectStoragePath(f"file://{root}"))


def land(landing: Landing, interval: Interval = FIRST, entries: list[bytes] = ENTRIES) -> IntervalCommit:
    with landing.open_interval(interval) as writer:
        writer.write(entries)
        return writer.commit(query=QUERY, stats=STATS)


def land_window(landing: Landing) -> list[IntervalCommit]:
    return [land(landing, interval, [*ENTRIES[: index + 1]]) for index, interval in enumerate(INTERVALS)]


def files_under(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


# Writing and reading back -------------------------------------------------------------------------


def test_data_file_holds_the_entries_byte_exact_one_per_line(landing):
    land(landing)

    stored = gzip.decompress(landing.data_path(FIRST).read_bytes())

    assert stored == b"".join(entry + b"\n" for entry in ENTRIES)


def test_layout_partitions_by_utc_date_of_the_interval_start(landing, root):
    land(landing)

    assert files_under(root) == [
        "dt=2026-01-04/slack_audit_20260104T000000Z_20260104T060000Z.commit.json",
        "dt=2026-01-04/slack_audit_20260104T000000Z_20260104T060000Z.jsonl.gz",
    ]


def test_commit_records_count_bytes_and_sha256_of_the_stored_file(landing):
    commit = land(landing)

    stored = landing.data_path(FIRST).read_bytes()
    assert (commit.count, commit.bytes, commit.sha256) == (
        len(ENTRIES),
        len(stored),
        hashlib.sha256(stored).hexdigest(),
    )
    assert commit.path == "dt=2026-01-04/slack_audit_20260104T000000Z_20260104T060000Z.jsonl.gz"
    assert (commit.query, commit.compression, commit.stats) == (QUERY, "gzip", STATS)


def test_marker_is_the_documented_json(landing):
    commit = land(landing)

    marker = json.loads(landing.marker_path(FIRST).read_bytes())

    assert marker == {
        "version": 1,
        "interval": FIRST.to_json(),
        "path": commit.path,
        "count": 3,
        "bytes": commit.bytes,
        "sha256": commit.sha256,
        "query": QUERY,
        "compression": "gzip",
        "stats": STATS,
        "committed_at": commit.committed_at.isoformat(),
    }


def test_rerun_writes_byte_identical_files(landing):
    first = land(landing)
    first_bytes = landing.data_path(FIRST).read_bytes()

    second = land(landing)

    assert landing.data_path(FIRST).read_bytes() == first_bytes
    assert second.sha256 == first.sha256


def test_gzip_header_carries_no_mtime_or_file_name(landing):
    land(landing)

    header = landing.data_path(FIRST).read_bytes()[:10]

    assert header[:3] == b"\x1f\x8b\x08"
    assert header[3] == 0  # FLG: no FNAME, no FEXTRA, no comment
    assert header[4:8] == b"\x00\x00\x00\x00"  # MTIME


def test_rerun_overwrites_instead_of_appending(landing):
    land(landing, entries=ENTRIES)

    commit = land(landing, entries=ENTRIES[:1])

    assert gzip.decompress(landing.data_path(FIRST).read_bytes()) == ENTRIES[0] + b"\n"
    assert commit.count == 1


def test_pages_written_in_several_calls_land_in_order(landing):
    with landing.open_interval(FIRST) as writer:
        writer.write(ENTRIES[:1])
        writer.write(iter(ENTRIES[1:]))
        writer.write([])
        commit = writer.commit(query=QUERY, stats=STATS)

    assert commit.count == 3
    assert gzip.decompress(landing.data_path(FIRST).read_bytes()).splitlines() == ENTRIES


def test_memoryview_entries_are_written_as_their_bytes(landing):
    land(landing, entries=[memoryview(entry) for entry in ENTRIES])  # type: ignore[misc]

    assert gzip.decompress(landing.data_path(FIRST).read_bytes()).splitlines() == ENTRIES


@pytest.mark.parametrize("bad_entry", [b'{"id":\n"x"}', b""])
def test_an_entry_that_would_break_the_line_format_is_refused(landing, bad_entry):
    with landing.open_interval(FIRST) as writer, pytest.raises(ValueError, match="single-line JSON object"):
        writer.write([ENTRIES[0], bad_entry])


def test_an_empty_entry_is_refused_even_when_the_caller_vouches_for_single_lines(landing):
    with landing.open_interval(FIRST) as writer, pytest.raises(ValueError, match="single-line JSON object"):
        writer.write([ENTRIES[0], b""], single_line=True)


def test_entries_vouched_single_line_land_as_the_checked_path_lands_them(landing, root):
    other = Landing(ObjectStoragePath(f"file://{root}/other"))
    land(landing)
    with other.open_interval(FIRST) as writer:
        writer.write(ENTRIES, single_line=True)
        writer.commit(query=QUERY, stats=STATS)

    assert other.data_path(FIRST).read_bytes() == landing.data_path(FIRST).read_bytes()


def test_uncompressed_mode_writes_plain_jsonl(root):
    landing = Landing(ObjectStoragePath(f"file://{root}"), compression=None)

    commit = land(landing)

    assert commit.path.endswith("_20260104T060000Z.jsonl")
    assert landing.data_path(FIRST).read_bytes() == b"".join(entry + b"\n" for entry in ENTRIES)
    assert commit.compression is None


def test_empty_interval_commits_a_valid_empty_file(landing):
    commit = land(landing, entries=[])

    assert commit.count == 0
    assert gzip.decompress(landing.data_path(FIRST).read_bytes()) == b""
    assert landing.committed(FIRST, QUERY) == commit


def test_writer_refuses_writes_after_commit(landing):
    with landing.open_interval(FIRST) as writer:
        writer.commit(query=QUERY, stats=STATS)

        with pytest.raises(RuntimeError, match="is closed; open the interval again"):
            writer.write(ENTRIES)


def test_destination_string_is_opened_as_an_object_storage_path(root):
    landing = Landing(f"file://{root}")

    land(landing)

    assert landing.committed(FIRST, QUERY) is not None


def test_gzip_level_outside_zlib_range_is_refused(root):
    with pytest.raises(ValueError, match=re.escape("gzip level 11 is outside 0..9")):
        Landing(f"file://{root}", level=11)


# Commit state -------------------------------------------------------------------------------------


def test_committed_returns_the_commit_when_marker_and_data_agree(landing):
    commit = land(landing)

    assert landing.committed(FIRST, dict(QUERY)) == commit


def test_not_committed_without_a_marker(landing):
    land(landing)
    landing.marker_path(FIRST).unlink()

    assert landing.committed(FIRST, QUERY) is None


def test_not_committed_without_the_data_file(landing):
    land(landing)
    landing.data_path(FIRST).unlink()

    assert landing.committed(FIRST, QUERY) is None


def test_not_committed_when_the_data_size_differs_from_the_marker(landing, root):
    commit = land(landing)
    with open(root / commit.path, "ab") as data:
        data.write(b"appended later\n")

    assert landing.committed(FIRST, QUERY) is None


def test_not_committed_for_another_query(landing):
    land(landing)

    assert landing.committed(FIRST, {**QUERY, "action": "user_login"}) is None


def test_not_committed_for_another_compression(landing, root):
    land(landing)

    assert Landing(ObjectStoragePath(f"file://{root}"), compression=None).committed(FIRST, QUERY) is None


def test_not_committed_when_the_marker_is_unreadable(landing):
    land(landing)
    landing.marker_path(FIRST).write_bytes(b"{not json")

    assert landing.committed(FIRST, QUERY) is None


def test_not_committed_logs_why_at_debug(landing, caplog):
    caplog.set_level("DEBUG", logger="airflow_provider_slack_audit.ingest.landing")

    landing.committed(FIRST, QUERY)

    assert "20260104T000000Z_20260104T060000Z is not committed: no commit marker" in caplog.text


def test_a_rewrite_keeps_the_interval_committed_until_its_new_file_is_complete(landing):
    old = land(landing)

    writer = landing.open_interval(FIRST)
    writer.write(ENTRIES[:1])
    assert landing.committed(FIRST, QUERY) == old
    writer.abort()

    assert landing.committed(FIRST, QUERY) == old


def test_switching_compression_leaves_one_data_file_per_interval(landing, root):
    land(landing)

    land(Landing(ObjectStoragePath(f"file://{root}"), compression=None))

    assert [name for name in files_under(root) if ".jsonl" in name] == [
        "dt=2026-01-04/slack_audit_20260104T000000Z_20260104T060000Z.jsonl"
    ]


# Abort and crash recovery -------------------------------------------------------------------------


def test_abort_leaves_no_data_file_and_no_temp(landing, root):
    writer = landing.open_interval(FIRST)
    writer.write(ENTRIES)

    writer.abort()

    assert files_under(root) == []


def test_leaving_the_context_without_commit_aborts(landing, root):
    with landing.open_interval(FIRST) as writer:
        writer.write(ENTRIES)

    assert files_under(root) == []


def test_an_error_inside_the_context_aborts_and_propagates(landing, root):
    def fail_on_second_page() -> None:
        with landing.open_interval(FIRST) as writer:
            writer.write(ENTRIES)
            raise ConnectionError("page 2 failed")

    with pytest.raises(ConnectionError, match="page 2 failed"):
        fail_on_second_page()

    assert files_under(root) == []


def test_data_is_written_to_a_hidden_temp_until_commit(landing, root):
    with landing.open_interval(FIRST) as writer:
        writer.write(ENTRIES)

        (temp,) = files_under(root)
        assert temp.startswith("dt=2026-01-04/.slack_audit_20260104T000000Z_20260104T060000Z.jsonl.gz.tmp-")
        assert not landing.data_path(FIRST).exists()

        writer.commit(query=QUERY, stats=STATS)


def test_stale_temp_of_a_killed_writer_is_removed_when_the_interval_is_reopened(landing, root):
    killed = landing.open_interval(FIRST)  # never committed nor aborted, as if the process died
    killed.write(ENTRIES)
    other = landing.open_interval(INTERVALS[1])  # another interval's in-progress temp
    stale = files_under(root)

    land(landing)

    remaining = files_under(root)
    assert [name for name in stale if name not in remaining] == [
        name for name in stale if "T000000Z_20260104T060000Z" in name
    ]
    assert [name for name in remaining if ".tmp-" in name] == [
        name for name in stale if "T060000Z_20260104T120000Z" in name
    ]
    other.abort()


def test_a_stale_manifest_temp_of_a_killed_writer_is_removed_when_the_manifest_is_written(landing, root):
    commits = land_window(landing)
    manifest = landing.manifest_path(WINDOW)
    manifest.parent.mkdir(parents=True, exist_ok=True)
    stale = manifest.parent / f".{manifest.name}.tmp-999-deadbeef"
    stale.write_bytes(b'{"half": ')

    landing.write_manifest(WINDOW, QUERY, commits)

    assert not stale.exists()
    assert [name for name in files_under(root) if ".tmp-" in name] == []


def test_only_data_files_end_in_jsonl(landing, root):
    commits = land_window(landing)
    landing.write_manifest(WINDOW, QUERY, commits)
    aborted = landing.open_interval(Interval(WINDOW.end, WINDOW.end + timedelta(hours=1)))
    aborted.write(ENTRIES)
    aborted.abort()
    in_progress = landing.open_interval(Interval(WINDOW.end, WINDOW.end + timedelta(hours=2)))
    in_progress.write(ENTRIES)

    data_files = [name for name in files_under(root) if name.endswith((".jsonl", ".jsonl.gz"))]

    assert data_files == sorted(commit.path for commit in commits)
    in_progress.abort()


# Manifest -----------------------------------------------------------------------------------------


def test_manifest_lists_the_window_with_relative_paths(landing, root):
    commits = land_window(landing)

    path = landing.write_manifest(WINDOW, QUERY, list(reversed(commits)))

    document = json.loads(path.read_bytes())
    assert (
        str(path) == f"file://{root}/_manifests/slack_audit_20260104T000000Z_20260105T000000Z.manifest.json"
    )
    assert (document["version"], document["kind"]) == (1, "slack_audit_window_manifest")
    assert document["window"] == WINDOW.to_json()
    assert (document["query"], document["compression"]) == (QUERY, "gzip")
    assert [item["path"] for item in document["intervals"]] == [commit.path for commit in commits]
    assert document["intervals"][0] == {
        **FIRST.to_json(),
        "path": commits[0].path,
        "count": 1,
        "bytes": commits[0].bytes,
        "sha256": commits[0].sha256,
        # Completeness evidence: none here, since these commits were written without it.
        "id_digest": None,
        "first_date_create": None,
        "last_date_create": None,
        "stats": STATS,
        "committed_at": commits[0].committed_at.isoformat(),
    }
    assert (document["events"], document["bytes"]) == (1 + 2 + 3 + 3, sum(commit.bytes for commit in commits))


def test_manifest_round_trip_streams_every_line_in_order(landing):
    path = landing.write_manifest(WINDOW, QUERY, land_window(landing))

    manifest = read_manifest(path)

    assert manifest.window == WINDOW
    assert (manifest.query, manifest.compression, manifest.events) == (QUERY, "gzip", 9)
    assert [entry.interval for entry in manifest.intervals] == INTERVALS
    assert list(manifest.iter_lines()) == ENTRIES[:1] + ENTRIES[:2] + ENTRIES + ENTRIES
    assert next(manifest.iter_entries()) == json.loads(ENTRIES[0])


def test_manifest_of_a_copied_tree_reads_the_copy(landing, root, tmp_path):
    landing.write_manifest(WINDOW, QUERY, land_window(landing))
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    shutil.rmtree(root)

    manifest = Landing.read_manifest(
        f"file://{copy}/_manifests/slack_audit_20260104T000000Z_20260105T000000Z.manifest.json"
    )

    assert str(manifest.intervals[0].data_path).startswith(f"file://{copy}/dt=2026-01-04/")
    assert len(list(manifest.iter_lines())) == 9


def test_uncompressed_manifest_streams_plain_files(root):
    landing = Landing(ObjectStoragePath(f"file://{root}"), compression=None)

    manifest = read_manifest(landing.write_manifest(WINDOW, QUERY, land_window(landing)))

    assert manifest.compression is None
    assert len(list(manifest.iter_lines())) == 9


def test_reading_a_file_changed_after_landing_fails_verification(landing):
    path = landing.write_manifest(WINDOW, QUERY, land_window(landing))
    gzip_bytes = gzip.compress(ENTRIES[2] + b"\n", mtime=0)
    landing.data_path(FIRST).write_bytes(gzip_bytes)

    with pytest.raises(ValueError, match="does not match its manifest"):
        list(read_manifest(path).iter_lines())


def test_manifest_refuses_commits_that_leave_a_gap(landing):
    commits = land_window(landing)

    with pytest.raises(
        ValueError, match=re.escape("no committed interval covers seconds 1767506400..1767527999")
    ):
        landing.write_manifest(WINDOW, QUERY, [commits[0], *commits[2:]])


def test_manifest_refuses_commits_of_another_query(landing):
    commits = land_window(landing)

    with pytest.raises(ValueError, match="re-ingest the window with one query"):
        landing.write_manifest(WINDOW, {**QUERY, "actor": "W123"}, commits)


def test_read_manifest_refuses_another_kind_of_file(landing):
    path = landing.marker_path(FIRST)
    land(landing)

    with pytest.raises(ValueError, match="is not a window manifest"):
        read_manifest(path)


def test_read_manifest_refuses_an_unknown_version(landing):
    path = landing.write_manifest(WINDOW, QUERY, land_window(landing))
    document = json.loads(path.read_bytes())
    path.write_bytes(json.dumps({**document, "version": 2}).encode())

    with pytest.raises(ValueError, match="has manifest version 2, but this provider reads version 1"):
        read_manifest(path)


def test_read_manifest_refuses_a_damaged_manifest(landing):
    path = landing.write_manifest(WINDOW, QUERY, land_window(landing))
    document = json.loads(path.read_bytes())
    del document["intervals"][0]["sha256"]
    path.write_bytes(json.dumps(document).encode())

    with pytest.raises(ValueError, match="is a damaged window manifest"):
        read_manifest(path)


# Object stores (direct write) ---------------------------------------------------------------------


@pytest.fixture
def remote_landing() -> Landing:
    """A landing on an isolated in-memory filesystem: the object-store code path, without a network."""
    conn_id = f"memory-{uuid.uuid4().hex}"
    attach("memory", conn_id=conn_id, fs=MemoryFileSystem(global_store=False, skip_instance_cache=True))
    return Landing("memory://bucket/landing", conn_id=conn_id)


def test_object_store_landing_commits_and_reads_back(remote_landing):
    commit = land(remote_landing)

    manifest = read_manifest(remote_landing.write_manifest(Window(FIRST.start, FIRST.end), QUERY, [commit]))

    assert remote_landing.committed(FIRST, QUERY) == commit
    assert list(manifest.iter_lines()) == ENTRIES


def test_object_store_abort_leaves_no_object(remote_landing):
    # A fresh interval (some lines share one memory store between tests): an aborted rewrite keeps
    # the landed object, which is another test's promise.
    remote_landing.data_path(FIRST).unlink(missing_ok=True)
    with remote_landing.open_interval(FIRST) as writer:
        writer.write(ENTRIES)

    assert not remote_landing.data_path(FIRST).exists()


# Memory -------------------------------------------------------------------------------------------


def test_memory_stays_flat_while_landing_200_000_entries(root):
    # Level 1 keeps the test fast; zlib's working memory does not depend on the level.
    landing = Landing(ObjectStoragePath(f"file://{root}"), level=1)
    tail = b'","pad":"' + b"x" * 960 + b'"}'  # ~1 KB per entry, ~200 MB in all

    def page(number: int) -> list[bytes]:
        return [b'{"id":"' + b"%08d" % (number * 1000 + index) + tail for index in range(1000)]

    tracemalloc.start()
    try:
        with landing.open_interval(FIRST) as writer:
            for number in range(200):
                writer.write(page(number))
            commit = writer.commit(query=QUERY, stats=STATS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert commit.count == 200_000
    assert peak < 20 * 1024 * 1024, f"peak traced memory {peak / 1e6:.1f} MB"


def test_memory_stays_flat_while_reading_a_highly_compressed_window(root):
    # 200 MB of lines that gzip to a few hundred KB: one read chunk inflates to far more than the
    # limit unless decompression is bounded.
    landing = Landing(ObjectStoragePath(f"file://{root}"), level=1)
    entry = b'{"pad":"' + b"x" * 10_000 + b'"}'
    with landing.open_interval(FIRST) as writer:
        for _ in range(20):
            writer.write([entry] * 1000)
        commit = writer.commit(query=QUERY, stats=STATS)
    manifest = read_manifest(landing.write_manifest(Window(FIRST.start, FIRST.end), QUERY, [commit]))

    tracemalloc.start()
    try:
        lines = sum(1 for _ in manifest.iter_lines())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert lines == 20_000
    assert peak < 20 * 1024 * 1024, f"peak traced memory {peak / 1e6:.1f} MB"


def test_gzip_bytes_do_not_depend_on_how_the_entries_were_split_into_pages(root):
    entries = [
        b'{"id":"%d","date_create":1767484800,"pad":"%s"}' % (i, b"x" * (i % 97)) for i in range(20_000)
    ]
    one = Landing(ObjectStoragePath(f"file://{root}/one"))
    many = Landing(ObjectStoragePath(f"file://{root}/many"))
    land(one, FIRST, entries)
    with many.open_interval(FIRST) as writer:
        for start in range(0, len(entries), 777):
            writer.write(entries[start : start + 777])
        writer.commit(query=QUERY, stats=STATS)

    assert one.data_path(FIRST).read_bytes() == many.data_path(FIRST).read_bytes()
