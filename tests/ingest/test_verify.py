"""``verify``: a landed destination passes; any damage to a data file, marker or manifest fails, naming it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fsspec.implementations.memory import MemoryFileSystem

from airflow_provider_slack_audit.__main__ import main
from airflow_provider_slack_audit.client import AsyncAuditLogsClient
from airflow_provider_slack_audit.ingest import Window
from airflow_provider_slack_audit.ingest.pipeline import ingest_window
from airflow_provider_slack_audit.ingest.spec import IngestSpec
from airflow_provider_slack_audit.ingest.verify import verify_destination
from airflow_provider_slack_audit.testing import FakeAuditLogsServer
from airflow_provider_slack_audit.version_compat import ObjectStoragePath, attach

DAY = datetime(2026, 1, 4, tzinfo=timezone.utc)
WINDOW = Window(DAY, DAY + timedelta(hours=3))
NEXT_WINDOW = Window(DAY + timedelta(hours=3), DAY + timedelta(hours=6))


@pytest.fixture
async def server() -> AsyncIterator[FakeAuditLogsServer]:
    async with FakeAuditLogsServer(events=900, seed=5, start=DAY, end=DAY + timedelta(hours=6)) as fake:
        yield fake


async def land(server: FakeAuditLogsServer, destination: str, window: Window = WINDOW, **kwargs: Any) -> None:
    client = AsyncAuditLogsClient("xoxp-test", base_url=server.base_url)
    spec = IngestSpec(
        window=window,
        interval=timedelta(hours=1),
        destination=destination,
        settle_lag=timedelta(0),
        limit=100,
        **kwargs,
    )
    await ingest_window(client, spec)


@pytest.fixture
async def landed(server: FakeAuditLogsServer, tmp_path: Path) -> Path:
    root = tmp_path / "landing"
    await land(server, f"file://{root}")
    return root


def verify(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["verify", f"file://{root}", *args])
    return code, capsys.readouterr().out


def data_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.jsonl.gz"))


def manifest_of(root: Path, window: Window = WINDOW) -> Path:
    return root / "_manifests" / f"slack_audit_{window.key}.manifest.json"


async def test_a_landed_destination_verifies(landed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = await asyncio.to_thread(verify, landed, capsys)

    assert code == 0, out
    assert f"window [{WINDOW.start.isoformat()}, {WINDOW.end.isoformat()}): 3 intervals" in out
    assert "OK" in out and "RESULT: OK" in out
    assert f"destination:      file://{landed}" in out


async def test_each_manifest_is_read_once(landed: Path, record_reads: Callable[[], list[str]]) -> None:
    reads = record_reads()

    report = await asyncio.to_thread(verify_destination, f"file://{landed}")

    assert report.ok, report.problems
    assert [name for name in reads if name.endswith(".manifest.json")] == [manifest_of(landed).name]


async def test_one_changed_byte_of_one_data_file_fails_naming_it(
    landed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = data_files(landed)[1]
    content = bytearray(target.read_bytes())
    content[len(content) // 2] ^= 0x01
    target.write_bytes(bytes(content))

    code, out = await asyncio.to_thread(verify, landed, capsys)

    assert code == 1
    assert f"FAIL {target.relative_to(landed)}" in out
    assert "RESULT: FAIL" in out


async def test_one_changed_byte_of_an_uncompressed_file_fails_on_its_checksum(
    server: FakeAuditLogsServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "plain"
    await land(server, f"file://{root}", compression=None)
    target = sorted(root.rglob("*.jsonl"))[0]
    content = bytearray(target.read_bytes())
    content[10] = ord("X") if content[10] != ord("X") else ord("Y")
    target.write_bytes(bytes(content))

    code, out = await asyncio.to_thread(verify, root, capsys)

    assert code == 1
    assert f"FAIL {target.relative_to(root)}" in out


async def test_a_swapped_id_fails_on_the_id_digest_even_with_checksums_rewritten_to_match(
    server: FakeAuditLogsServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "plain"
    await land(server, f"file://{root}", compression=None)
    target = sorted(root.rglob("*.jsonl"))[0]
    lines = target.read_bytes().split(b"\n")
    entry = json.loads(lines[0])
    lines[0] = lines[0].replace(entry["id"].encode(), str(uuid.UUID(int=1)).encode())
    forged = b"\n".join(lines)
    target.write_bytes(forged)
    digest = hashlib.sha256(forged).hexdigest()
    for document_path in [
        target.with_name(target.name.removesuffix(".jsonl") + ".commit.json"),
        manifest_of(root),
    ]:
        text = document_path.read_text()
        document_path.write_text(re.sub(r'"sha256": "[0-9a-f]{64}"', f'"sha256": "{digest}"', text, count=1))

    code, out = await asyncio.to_thread(verify, root, capsys)

    assert code == 1
    assert f"FAIL {target.relative_to(root)}: id digest" in out


async def test_an_id_in_two_files_fails_naming_both(
    server: FakeAuditLogsServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "plain"
    await land(server, f"file://{root}", compression=None)
    first, second = sorted(root.rglob("*.jsonl"))[:2]
    entry = json.loads(first.read_bytes().split(b"\n")[0])
    entry["date_create"] = WINDOW.oldest + 3600  # inside the second interval
    second.write_bytes(second.read_bytes() + json.dumps(entry).encode() + b"\n")

    code, out = await asyncio.to_thread(verify, root, capsys)

    assert code == 1
    assert f"holds id {entry['id']}, which {first.relative_to(root)} holds too" in out
    assert f"FAIL {second.relative_to(root)}" in out


async def test_a_removed_marker_fails_naming_its_data_file(
    landed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = data_files(landed)[0]
    marker = target.with_name(target.name.removesuffix(".jsonl.gz") + ".commit.json")
    marker.unlink()

    code, out = await asyncio.to_thread(verify, landed, capsys)

    assert code == 1
    relative = target.relative_to(landed)
    assert f"FAIL {relative}: data file without a commit marker" in out
    assert f"lists {relative}, which has no commit marker" in out


async def test_a_removed_data_file_fails_naming_it(landed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = data_files(landed)[2]
    target.unlink()

    code, out = await asyncio.to_thread(verify, landed, capsys)

    assert code == 1
    assert f"FAIL {target.relative_to(landed)}: missing" in out


@pytest.mark.parametrize("edit", ["remove", "duplicate"])
async def test_an_edited_interval_list_fails_naming_the_manifest(
    landed: Path, capsys: pytest.CaptureFixture[str], edit: str
) -> None:
    path = manifest_of(landed)
    document = json.loads(path.read_bytes())
    if edit == "remove":
        del document["intervals"][1]
    else:
        document["intervals"].insert(1, document["intervals"][1])
    path.write_text(json.dumps(document))

    code, out = await asyncio.to_thread(verify, landed, capsys)

    assert code == 1
    # The manifest reader refuses it (the same check the transfer makes), naming the manifest.
    assert f"FAIL {path.relative_to(landed)}: " in out
    assert "does not describe its window exactly once" in out


async def test_a_stray_jsonl_file_fails_naming_it(landed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (landed / "copy").mkdir()
    (landed / "copy" / "old.jsonl").write_text('{"id": "x", "date_create": 1}\n')

    code, out = await asyncio.to_thread(verify, landed, capsys)

    assert code == 1
    assert "FAIL copy/old.jsonl: stray file" in out


async def test_a_window_option_verifies_only_what_overlaps_it(
    server: FakeAuditLogsServer, landed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await land(server, f"file://{landed}", NEXT_WINDOW)
    damaged = data_files(landed)[-1]  # in NEXT_WINDOW
    damaged.write_bytes(damaged.read_bytes()[:-1])

    inside = await asyncio.to_thread(
        verify, landed, capsys, "--window", WINDOW.start.isoformat(), WINDOW.end.isoformat()
    )
    everything = await asyncio.to_thread(verify, landed, capsys)

    assert inside[0] == 0, inside[1]
    assert (inside[1].count("\nwindow ["), everything[1].count("\nwindow [")) == (1, 2)
    assert everything[0] == 1
    assert f"FAIL {damaged.relative_to(landed)}" in everything[1]


async def test_the_json_report_lists_windows_digests_and_problems(
    landed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = json.loads(manifest_of(landed).read_bytes())

    code, out = await asyncio.to_thread(verify, landed, capsys, "--json")

    report = json.loads(out)
    assert code == 0
    assert report["ok"] is True
    assert report["events"] == manifest["events"]
    [window] = report["windows"]
    assert (window["window"], window["events"]) == (WINDOW.to_json(), manifest["events"])
    assert window["id_digest"] == manifest["id_digest"]


async def test_an_empty_destination_does_not_verify(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = await asyncio.to_thread(verify, tmp_path / "nothing", capsys)

    assert code == 1
    assert "no window manifest" in out


async def test_a_memory_destination_verifies_and_a_changed_file_fails(
    server: FakeAuditLogsServer, allow_memory_store: None
) -> None:
    conn_id = f"memory-{uuid.uuid4().hex}"
    attach("memory", conn_id=conn_id, fs=MemoryFileSystem(global_store=False, skip_instance_cache=True))
    destination = f"memory://{conn_id}/landing"  # its own bucket: some lines share one memory store
    await land(server, destination, destination_conn_id=conn_id)

    report = await asyncio.to_thread(verify_destination, destination, conn_id=conn_id)
    assert report.ok, report.to_text()
    assert report.data_files == 3

    target = sorted(ObjectStoragePath(destination, conn_id=conn_id).rglob("*.jsonl.gz"))[0]
    target.write_bytes(target.read_bytes()[:-2] + b"\x00\x00")
    damaged = await asyncio.to_thread(verify_destination, destination, conn_id=conn_id)
    assert not damaged.ok
    assert target.name in damaged.to_text()


@pytest.mark.parametrize(
    "args",
    [
        ["verify"],
        ["verify", "file:///x", "--window", "2026-01-05T00:00:00Z", "2026-01-04T00:00:00Z"],
        ["verify", "relative/path"],
    ],
)
def test_usage_errors_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(args)
    assert raised.value.code == 2


@pytest.mark.slow  # a fresh interpreter
async def test_the_command_runs_as_a_module(landed: Path) -> None:
    command = [sys.executable, "-m", "airflow_provider_slack_audit", "verify", f"file://{landed}"]
    done = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr
    assert "RESULT: OK" in done.stdout


# -- the destination descriptor ------------------------------------------------------------------------


async def test_a_destination_without_its_descriptor_fails_naming_it(
    landed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (landed / "_slack_audit.json").unlink()

    code, out = await asyncio.to_thread(verify, landed, capsys)

    assert code == 1
    assert "FAIL _slack_audit.json: missing; it records the layout" in out


async def test_a_damaged_descriptor_fails_naming_it(landed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (landed / "_slack_audit.json").write_text('{"kind": "slack_audit_destination", "version": 1}')

    code, out = await asyncio.to_thread(verify, landed, capsys)

    assert code == 1
    assert "FAIL _slack_audit.json:" in out and "not a well-formed destination descriptor" in out


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("compression", None, "records compression 'gzip', but _slack_audit.json says None"),
        ("query", {"action": ["user_login"], "actor": None, "entity": None}, "records unfiltered, but"),
        (
            "grid_seconds",
            1800,
            "interval 20260104T000000Z_20260104T010000Z crosses a boundary of the 30min grid",
        ),
    ],
)
async def test_a_descriptor_disagreeing_with_the_markers_fails_naming_each_marker(
    landed: Path, capsys: pytest.CaptureFixture[str], field: str, value: object, needle: str
) -> None:
    descriptor = landed / "_slack_audit.json"
    document = json.loads(descriptor.read_bytes())
    document[field] = value
    descriptor.write_text(json.dumps(document))

    code, out = await asyncio.to_thread(verify, landed, capsys)

    assert code == 1
    assert "dt=2026-01-04/slack_audit_20260104T000000Z_20260104T010000Z.commit.json: " + needle in out


async def test_the_descriptor_is_neither_a_stray_nor_a_data_file(
    landed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = await asyncio.to_thread(verify, landed, capsys)

    assert code == 0, out
    assert "checked:          3 data files, 3 commit markers" in out
