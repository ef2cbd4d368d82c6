"""What a landing must look like at every instant, checked from the files alone.

The checks read the destination with nothing but ``gzip``/``json``/``hashlib`` and the fake
server's oracle, so a bug in the landing code cannot hide behind the same bug in the check.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from airflow_provider_slack_audit.ingest import Interval, Landing, Window
from airflow_provider_slack_audit.testing import FakeAuditLogsServer

DATA_SUFFIXES = (".jsonl", ".jsonl.gz")
TEMP_MARK = ".tmp-"
_GZIP_WBITS = 31

ExpectedIds = Callable[[Interval], set[str]]


@dataclass(frozen=True)
class LandingState:
    """What the destination holds: the intervals whose data file exists, and the committed ones."""

    landed: frozenset[Interval]
    committed: frozenset[Interval]


def independent_digest(ids: set[str]) -> str:
    """The documented id digest, written out longhand: sum of sha256(id) mod 2**256, in hex."""
    total = sum(int.from_bytes(hashlib.sha256(i.encode("utf-8")).digest(), "big") for i in ids)
    return format(total % 2**256, "064x")


def server_ids(server: FakeAuditLogsServer, **filters: object) -> ExpectedIds:
    """The oracle: the ids a complete read of an interval returns from ``server`` (same filters)."""

    def expected(interval: Interval) -> set[str]:
        return server.expected_ids(interval.oldest, interval.latest, **filters)  # type: ignore[arg-type]

    return expected


def final_name_files(root: Path) -> list[Path]:
    """Every file under ``root`` whose name says "complete data file"."""
    if not root.exists():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name.endswith(DATA_SUFFIXES))


def temp_files(root: Path) -> list[Path]:
    """Temporary files writers leave while they work (and a killed writer leaves behind)."""
    if not root.exists():
        return []
    return sorted(p for p in root.rglob("*") if TEMP_MARK in p.name)


def data_lines(path: Path) -> list[bytes]:
    """The entry lines of a data file; fail the test if the file is cut short anywhere."""
    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        decompressor = zlib.decompressobj(_GZIP_WBITS)
        text = decompressor.decompress(raw)
        assert decompressor.eof, f"{path} ends before its gzip stream does: a partial file under a final name"
        assert not decompressor.unused_data, f"{path} has bytes after its gzip stream"
    else:
        text = raw
    assert text == b"" or text.endswith(b"\n"), f"{path} does not end with a newline: a partial last line"
    return text.split(b"\n")[:-1] if text else []


def data_ids(path: Path) -> list[str]:
    """The ids in a data file, in file order (duplicates kept, so callers can see them)."""
    return [json.loads(line)["id"] for line in data_lines(path)]


def assert_landing_sound(
    root: Path,
    window: Window,
    step: timedelta,
    expected: ExpectedIds,
    *,
    compression: str | None = "gzip",
) -> LandingState:
    """Check the landing contract of one window's destination; return which intervals landed.

    - nothing ends in ``.jsonl``/``.jsonl.gz`` except the window's data files;
    - every data file is complete and holds exactly the oracle's ids for its interval, once each;
    - every commit marker agrees with its data file (size, SHA-256, line count, path).
    """
    landing = Landing(f"file://{root}", compression=compression)  # type: ignore[arg-type]
    intervals = window.intervals(step)
    by_path = {Path(landing.data_path(interval).path): interval for interval in intervals}
    strays = [p for p in final_name_files(root) if p not in by_path]
    assert not strays, f"files under a data file name that belong to no interval: {strays}"

    landed: set[Interval] = set()
    committed: set[Interval] = set()
    for path, interval in by_path.items():
        marker = Path(landing.marker_path(interval).path)
        if not path.exists():
            assert not marker.exists(), f"{marker} vouches for a data file that does not exist"
            continue
        ids = data_ids(path)
        assert len(ids) == len(set(ids)), f"{path} holds {len(ids) - len(set(ids))} duplicate ids"
        want = expected(interval)
        assert set(ids) == want, (
            f"{path}: {len(want - set(ids))} events missing, {len(set(ids) - want)} extra "
            f"for interval {interval.key}"
        )
        landed.add(interval)
        if marker.exists():
            _assert_marker_agrees(marker, path, len(ids), landing.relative_data_path(interval))
            committed.add(interval)
    return LandingState(frozenset(landed), frozenset(committed))


def _assert_marker_agrees(marker: Path, data: Path, lines: int, relative_path: str) -> None:
    document = json.loads(marker.read_bytes())
    raw = data.read_bytes()
    found = (document["path"], document["bytes"], document["sha256"], document["count"])
    actual = (relative_path, len(raw), hashlib.sha256(raw).hexdigest(), lines)
    assert found == actual, f"{marker} disagrees with {data}: marker {found}, file {actual}"


def window_files(root: Path) -> dict[str, bytes]:
    """The data files of a destination by relative path, for byte-for-byte comparisons."""
    return {str(p.relative_to(root)): p.read_bytes() for p in final_name_files(root)}


def interval_of_request(intervals: Sequence[Interval], query: dict[str, str]) -> Interval:
    """The interval a recorded ``logs`` request read (by its ``oldest``)."""
    oldest = int(query["oldest"])
    return next(interval for interval in intervals if interval.oldest == oldest)
