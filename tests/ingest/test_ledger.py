"""The ledger: a destination proves what it holds, and what it no longer holds.

Each committed window manifest gets an entry under ``_ledger/``, created exclusively and chained by
digest; ``verify`` reads it back, so a removal that takes its own evidence with it still shows.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_slack_audit.__main__ import main
from airflow_provider_slack_audit.client import AsyncAuditLogsClient
from airflow_provider_slack_audit.ingest import Window
from airflow_provider_slack_audit.ingest.pipeline import ingest_window
from airflow_provider_slack_audit.ingest.spec import IngestSpec, IngestSummary
from airflow_provider_slack_audit.testing import FakeAuditLogsServer

DAY = datetime(2026, 1, 4, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)
FIRST = Window(DAY, DAY + timedelta(hours=3))
SECOND = Window(DAY + timedelta(hours=3), DAY + timedelta(hours=6))
DAY_ONE = Window(DAY, DAY + timedelta(days=1))
DAY_TWO = Window(DAY + timedelta(days=1), DAY + timedelta(days=2))


@pytest.fixture
async def server() -> AsyncIterator[FakeAuditLogsServer]:
    async with FakeAuditLogsServer(events=1200, seed=7, start=DAY, end=DAY + timedelta(days=2)) as fake:
        yield fake


async def land(
    server: FakeAuditLogsServer, root: Path, window: Window = FIRST, **kwargs: Any
) -> IngestSummary:
    client = AsyncAuditLogsClient("xoxp-test", base_url=server.base_url)
    spec = IngestSpec(
        window=window,
        interval=HOUR,
        destination=f"file://{root}",
        settle_lag=timedelta(0),
        limit=100,
        **kwargs,
    )
    return await ingest_window(client, spec)


@pytest.fixture
async def landed(server: FakeAuditLogsServer, tmp_path: Path) -> Path:
    """Two windows of one day, landed one after the other: ledger entries 1 and 2."""
    root = tmp_path / "landing"
    await land(server, root, FIRST)
    await land(server, root, SECOND)
    return root


def verify(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["verify", f"file://{root}", *args])
    return code, capsys.readouterr().out


def manifest_of(root: Path, window: Window) -> Path:
    return root / "_manifests" / f"slack_audit_{window.key}.manifest.json"


def entry(root: Path, seq: int) -> Path:
    return root / "_ledger" / f"{seq:012d}.json"


def hour_files(root: Path, start: datetime) -> tuple[Path, Path]:
    key = f"{start:%Y%m%dT%H%M%SZ}_{start + HOUR:%Y%m%dT%H%M%SZ}"
    folder = root / f"dt={start.date().isoformat()}"
    return folder / f"slack_audit_{key}.jsonl.gz", folder / f"slack_audit_{key}.commit.json"


def data_like(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.name.endswith((".jsonl", ".jsonl.gz"))]


# -- what the ledger holds ---------------------------------------------------------------------------


async def test_each_manifest_gets_one_exclusively_created_entry_chained_to_the_one_before(
    landed: Path,
) -> None:
    first, second = (json.loads(entry(landed, seq).read_bytes()) for seq in (1, 2))

    assert sorted(path.name for path in (landed / "_ledger").iterdir()) == [
        "000000000001.json",
        "000000000002.json",
    ]
    assert (first["seq"], first["prev_sha256"]) == (1, None)
    assert second["prev_sha256"] == hashlib.sha256(entry(landed, 1).read_bytes()).hexdigest()
    manifest = manifest_of(landed, SECOND)
    assert second["manifest"] == {
        "path": f"_manifests/{manifest.name}",
        "sha256": hashlib.sha256(manifest.read_bytes()).hexdigest(),
    }
    assert second["window"] == SECOND.to_json()
    assert (
        second["descriptor_sha256"] == hashlib.sha256((landed / "_slack_audit.json").read_bytes()).hexdigest()
    )
    listed = json.loads(manifest.read_bytes())
    assert (second["events"], second["id_digest"]) == (listed["events"], listed["id_digest"])
    data, marker = hour_files(landed, SECOND.start)
    assert second["intervals"][0]["path"] == str(data.relative_to(landed))
    assert second["intervals"][0]["marker"] == str(marker.relative_to(landed))
    assert second["intervals"][0]["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert not data_like(landed / "_ledger")


async def test_a_manifest_names_the_ledger_head_it_was_written_after(landed: Path) -> None:
    first = json.loads(manifest_of(landed, FIRST).read_bytes())
    second = json.loads(manifest_of(landed, SECOND).read_bytes())

    assert first["ledger_after"] == {"seq": 0, "sha256": None}
    assert second["ledger_after"] == {
        "seq": 1,
        "sha256": hashlib.sha256(entry(landed, 1).read_bytes()).hexdigest(),
    }


async def test_the_summary_carries_the_new_ledger_head_as_an_external_anchor(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    root = tmp_path / "landing"
    await land(server, root, FIRST)
    summary = await land(server, root, SECOND)

    assert summary.to_json()["ledger"] == {
        "seq": 2,
        "sha256": hashlib.sha256(entry(root, 2).read_bytes()).hexdigest(),
    }


async def test_a_rerun_appends_an_entry_for_the_rewritten_manifest(
    server: FakeAuditLogsServer, landed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await land(server, landed, FIRST, overwrite=True)

    third = json.loads(entry(landed, 3).read_bytes())
    assert third["manifest"]["path"] == f"_manifests/{manifest_of(landed, FIRST).name}"
    code, out = await asyncio.to_thread(verify, landed, capsys)
    assert code == 0, out


async def test_a_new_destination_records_that_it_keeps_a_ledger(landed: Path) -> None:
    assert json.loads((landed / "_slack_audit.json").read_bytes())["ledger"] is True


def test_two_writers_racing_for_one_seq_both_land_one_after_the_other(tmp_path: Path) -> None:
    from airflow_provider_slack_audit.ingest.landing.ledger import Ledger
    from airflow_provider_slack_audit.version_compat import ObjectStoragePath

    root = ObjectStoragePath(f"file://{tmp_path}")
    ledger = Ledger(root)
    stale = ledger.head()  # both writers read the empty head...
    one = ledger.append({"manifest": {"path": "a", "sha256": "0" * 64}}, after=stale)
    two = ledger.append({"manifest": {"path": "b", "sha256": "1" * 64}}, after=stale)  # ...one loses seq 1

    assert (one.seq, two.seq) == (1, 2)
    second = json.loads(entry(tmp_path, 2).read_bytes())
    assert second["prev_sha256"] == one.sha256 == hashlib.sha256(entry(tmp_path, 1).read_bytes()).hexdigest()


# -- what verify sees through it ------------------------------------------------------------------------


async def test_a_deleted_hour_with_its_marker_and_manifest_fails_naming_both(
    landed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, marker = hour_files(landed, FIRST.start + HOUR)
    for path in (data, marker, manifest_of(landed, FIRST)):
        path.unlink()

    code, out = await asyncio.to_thread(verify, landed, capsys)

    assert code == 1, out
    manifest = f"_manifests/{manifest_of(landed, FIRST).name}"
    assert f"FAIL {manifest}: missing, but ledger entry 1 records it" in out
    assert f"FAIL {data.relative_to(landed)}: missing, but ledger entry 1 lists it" in out
    assert f"FAIL {marker.relative_to(landed)}: missing, but ledger entry 1 lists it" in out


async def test_a_deleted_whole_day_fails_naming_its_window(
    server: FakeAuditLogsServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "landing"
    await land(server, root, DAY_ONE)
    await land(server, root, DAY_TWO)
    shutil.rmtree(root / f"dt={DAY_TWO.start.date().isoformat()}")
    manifest_of(root, DAY_TWO).unlink()

    code, out = await asyncio.to_thread(verify, root, capsys)

    assert code == 1, out
    assert f"_manifests/{manifest_of(root, DAY_TWO).name}: missing, but ledger entry 2 records it" in out
    assert f"window {DAY_TWO.key}" in out


async def test_a_replaced_manifest_fails_naming_it(landed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = manifest_of(landed, FIRST)
    document = json.loads(path.read_bytes())
    document["created_at"] = "2026-01-04T09:00:00+00:00"  # still a valid manifest, other bytes
    path.write_text(json.dumps(document))

    code, out = await asyncio.to_thread(verify, landed, capsys)

    assert code == 1, out
    assert f"FAIL _manifests/{path.name}: its SHA-256" in out
    assert "ledger entry 1 records" in out


@pytest.mark.parametrize(("field", "value"), [("grid_seconds", 86400), ("adopted", True)])
async def test_an_edited_descriptor_fails_naming_it(
    landed: Path, capsys: pytest.CaptureFixture[str], field: str, value: object
) -> None:
    descriptor = landed / "_slack_audit.json"
    document = json.loads(descriptor.read_bytes())
    document[field] = value
    descriptor.write_text(json.dumps(document))

    code, out = await asyncio.to_thread(verify, landed, capsys)

    assert code == 1, out
    assert "FAIL _slack_audit.json: its SHA-256" in out and "ledger entry 1 records" in out


async def test_a_removed_ledger_entry_in_the_middle_fails_as_a_gap(
    server: FakeAuditLogsServer, landed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await land(server, landed, Window(SECOND.end, SECOND.end + HOUR))
    entry(landed, 2).unlink()

    code, out = await asyncio.to_thread(verify, landed, capsys)

    assert code == 1, out
    assert "FAIL _ledger/: entry 2 is missing" in out


async def test_a_removed_newest_ledger_entry_fails_as_a_manifest_without_one(
    landed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entry(landed, 2).unlink()

    code, out = await asyncio.to_thread(verify, landed, capsys)

    assert code == 1, out
    assert f"FAIL _manifests/{manifest_of(landed, SECOND).name}: no ledger entry records it" in out


async def test_an_edited_ledger_entry_fails_on_the_chain(
    landed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = entry(landed, 1)
    document = json.loads(path.read_bytes())
    document["events"] += 1
    path.write_text(json.dumps(document))

    code, out = await asyncio.to_thread(verify, landed, capsys)

    assert code == 1, out
    assert "FAIL _ledger/000000000002.json: records prev_sha256" in out


async def test_a_deleted_ledger_fails_while_any_manifest_remains(
    landed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.rmtree(landed / "_ledger")
    descriptor = landed / "_slack_audit.json"  # even with the descriptor's promise removed too
    document = json.loads(descriptor.read_bytes())
    del document["ledger"]
    descriptor.write_text(json.dumps(document))

    code, out = await asyncio.to_thread(verify, landed, capsys)

    assert code == 1, out
    assert f"FAIL _manifests/{manifest_of(landed, SECOND).name}: names ledger entry 1" in out


async def test_a_missing_ledger_fails_where_the_descriptor_promises_one(
    server: FakeAuditLogsServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "landing"
    await land(server, root, FIRST)
    shutil.rmtree(root / "_ledger")

    code, out = await asyncio.to_thread(verify, root, capsys)

    assert code == 1, out
    assert "FAIL _ledger/: missing, but _slack_audit.json records that this destination keeps a ledger" in out


async def test_a_swapped_data_file_fails(landed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one, _ = hour_files(landed, FIRST.start)
    two, _ = hour_files(landed, FIRST.start + HOUR)
    first, second = one.read_bytes(), two.read_bytes()
    one.write_bytes(second)
    two.write_bytes(first)

    code, out = await asyncio.to_thread(verify, landed, capsys)

    assert code == 1, out
    assert f"FAIL {one.relative_to(landed)}" in out and f"FAIL {two.relative_to(landed)}" in out


async def test_an_appended_duplicate_line_fails_naming_the_file(
    server: FakeAuditLogsServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "plain"
    await land(server, root, FIRST, compression=None)
    target = sorted(root.rglob("*.jsonl"))[0]
    content = target.read_bytes()
    target.write_bytes(content + content.split(b"\n")[0] + b"\n")

    code, out = await asyncio.to_thread(verify, root, capsys)

    assert code == 1, out
    assert f"FAIL {target.relative_to(root)}: line" in out and "repeats id" in out


async def test_an_older_destination_without_a_ledger_gets_a_note_and_its_chain_starts_at_the_next_manifest(
    server: FakeAuditLogsServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "landing"
    await land(server, root, FIRST)
    # What an earlier provider version left: no ledger, no promise of one, manifests naming no head.
    shutil.rmtree(root / "_ledger")
    descriptor = root / "_slack_audit.json"
    document = json.loads(descriptor.read_bytes())
    del document["ledger"]
    descriptor.write_text(json.dumps(document))
    manifest = json.loads(manifest_of(root, FIRST).read_bytes())
    del manifest["ledger_after"]
    manifest_of(root, FIRST).write_text(json.dumps(manifest))

    before = await asyncio.to_thread(verify, root, capsys)
    await land(server, root, SECOND)
    after = await asyncio.to_thread(verify, root, capsys)

    assert before[0] == 0, before[1]
    assert "keeps no ledger (landed by a provider version without one)" in before[1]
    assert json.loads(entry(root, 1).read_bytes())["window"] == SECOND.to_json()
    assert after[0] == 0, after[1]
    assert f"_manifests/{manifest_of(root, FIRST).name}: written before the ledger began" in after[1]


# -- gaps and the external anchor ------------------------------------------------------------------------


async def test_a_window_range_reports_every_second_no_manifest_covers(
    server: FakeAuditLogsServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "landing"
    await land(server, root, FIRST)
    await land(server, root, Window(SECOND.end, SECOND.end + HOUR))  # a paused DAG skipped SECOND
    end = SECOND.end + 3 * HOUR

    code, out = await asyncio.to_thread(verify, root, capsys, "--window", DAY.isoformat(), end.isoformat())
    covered = await asyncio.to_thread(
        verify, root, capsys, "--window", FIRST.start.isoformat(), FIRST.end.isoformat()
    )

    assert covered[0] == 0, covered[1]
    assert "no window manifest covers" not in covered[1]
    assert code == 1, out
    assert f"FAIL no window manifest covers [{SECOND.start.isoformat()}, {SECOND.end.isoformat()})" in out
    gap = f"[{(SECOND.end + HOUR).isoformat()}, {end.isoformat()})"
    assert f"FAIL no window manifest covers {gap}" in out
    assert out.count("no window manifest covers") == 2


async def test_removing_the_newest_window_with_its_ledger_tail_shows_only_against_an_anchor(
    server: FakeAuditLogsServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "landing"
    await land(server, root, FIRST)
    summary = await land(server, root, SECOND)
    anchor = f"{summary.ledger['seq']}:{summary.ledger['sha256']}" if summary.ledger else ""
    for hour in range(3):
        for path in hour_files(root, SECOND.start + hour * HOUR):
            path.unlink()
    manifest_of(root, SECOND).unlink()
    entry(root, 2).unlink()

    unanchored = await asyncio.to_thread(verify, root, capsys)
    anchored = await asyncio.to_thread(verify, root, capsys, "--expect-ledger", anchor)

    assert unanchored[0] == 0, unanchored[1]  # what verify cannot see from the files alone
    assert anchored[0] == 1, anchored[1]
    assert "FAIL _ledger/: ends at entry 1, but the anchor --expect-ledger names entry 2" in anchored[1]


async def test_a_matching_anchor_verifies_and_a_forged_one_fails(
    landed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    head = hashlib.sha256(entry(landed, 2).read_bytes()).hexdigest()

    good = await asyncio.to_thread(verify, landed, capsys, "--expect-ledger", f"2:{head}")
    bad = await asyncio.to_thread(verify, landed, capsys, "--expect-ledger", f"2:{'0' * 64}")

    assert good[0] == 0, good[1]
    assert bad[0] == 1
    assert "FAIL _ledger/000000000002.json: its SHA-256" in bad[1] and "the anchor --expect-ledger" in bad[1]
