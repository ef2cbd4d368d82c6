"""Window manifests: written from interval commits, read back and verified against the data files.

A manifest is the promise "loading these files loads this window". A damaged one (an interval
dropped, one listed twice, totals that do not add up) would load a part of the window, or some of it
twice, and report success: :func:`check_manifest` refuses it, for the reader here and for the
warehouse load alike, and :func:`coverage_problems` is the one "every second exactly once" check.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import PurePosixPath
from typing import Any

from airflow_provider_slack_audit.ingest import evidence
from airflow_provider_slack_audit.ingest.errors import ManifestCheckError
from airflow_provider_slack_audit.ingest.windows import Interval, Window, parse_datetime
from airflow_provider_slack_audit.version_compat import ObjectStoragePath

from . import _fs
from .commit import FORMAT_VERSION, IntervalCommit
from .layout import GZIP_WBITS, MANIFESTS_DIR, Compression, parse_compression

MANIFEST_KIND = "slack_audit_window_manifest"
_READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class ManifestInterval(Interval):
    """One interval listed in a manifest, with its data file resolved against the manifest's location."""

    path: str
    data_path: ObjectStoragePath
    count: int
    bytes: int
    sha256: str

    @property
    def interval(self) -> Interval:
        return Interval(self.start, self.end)


@dataclass(frozen=True)
class WindowManifest:
    """
    A window's manifest as read back: the one thing a warehouse load needs to read exactly one window.

    ``destination`` is the manifest's grandparent (not the URL recorded at write time), so a landing
    tree copied elsewhere still resolves to its own files.
    """

    path: ObjectStoragePath
    destination: ObjectStoragePath
    window: Window
    query: Mapping[str, Any]
    compression: Compression
    intervals: tuple[ManifestInterval, ...]
    events: int
    bytes: int
    created_at: datetime

    def iter_lines(self, *, verify: bool = True) -> Iterator[builtins.bytes]:
        """
        Stream every entry's raw JSON bytes (no newline), interval by interval, in time order.

        Memory stays flat whatever the window size. With ``verify`` (the default) each file's size,
        SHA-256 and line count are checked against the manifest; a mismatch raises ValueError after
        that file's lines were yielded, so load inside a transaction and let the error roll it back.
        """
        for entry in self.intervals:
            yield from iter_data_lines(entry, self.compression, verify=verify)

    def iter_entries(self, *, verify: bool = True) -> Iterator[dict[str, Any]]:
        """Like :meth:`iter_lines`, decoded to dicts (convenient for small loads; the lines are faster)."""
        for line in self.iter_lines(verify=verify):
            entry: dict[str, Any] = json.loads(line)
            yield entry


def iter_data_lines(entry: ManifestInterval, compression: Compression, *, verify: bool) -> Iterator[bytes]:
    hasher = hashlib.sha256()
    size = count = 0
    decompressor = zlib.decompressobj(GZIP_WBITS) if compression == "gzip" else None
    pending = b""
    with closing(_fs.open_file(entry.data_path, "rb")) as file:
        while chunk := file.read(_READ_CHUNK):
            size += len(chunk)
            if verify:
                hasher.update(chunk)
            for data in _inflate(decompressor, chunk) if decompressor else (chunk,):
                lines = (pending + data).split(b"\n")
                pending = lines.pop()  # an incomplete line, continued by the next block
                count += len(lines)
                yield from lines
    if decompressor is not None and not decompressor.eof:
        raise ValueError(f"{entry.data_path} ends before its gzip stream does: the file is truncated")
    if pending:
        raise ValueError(f"{entry.data_path} does not end with a newline: the file is truncated")
    if verify:
        _verify_data_file(entry, size=size, sha256=hasher.hexdigest(), count=count)


def iter_commit_lines(destination: ObjectStoragePath, commit: IntervalCommit) -> Iterator[bytes]:
    """The lines of a committed interval's data file, verified against its marker while read."""
    start, end, path = commit.interval.start, commit.interval.end, commit.path
    entry = ManifestInterval(start, end, path, destination / path, commit.count, commit.bytes, commit.sha256)
    return iter_data_lines(entry, commit.compression, verify=True)


def _inflate(decompressor: zlib._Decompress, chunk: bytes) -> Iterator[bytes]:
    """Decompress in bounded blocks: JSON inflates 10-100x, so one call per chunk would not stay flat."""
    yield decompressor.decompress(chunk, _READ_CHUNK)
    while decompressor.unconsumed_tail:
        yield decompressor.decompress(decompressor.unconsumed_tail, _READ_CHUNK)


def _verify_data_file(entry: ManifestInterval, *, size: int, sha256: str, count: int) -> None:
    found = (size, sha256, count)
    expected = (entry.bytes, entry.sha256, entry.count)
    if found != expected:
        raise ValueError(
            f"{entry.data_path} does not match its manifest: (bytes, sha256, lines) {found} != {expected}; "
            f"the file changed after it was landed: rerun the ingest of the window holding interval "
            f"{entry.interval.key}"
        )


def read_manifest(path: ObjectStoragePath | str, conn_id: str | None = None) -> WindowManifest:
    """Read and validate a window manifest; data paths resolve relative to the manifest's location."""
    manifest_path = path if isinstance(path, ObjectStoragePath) else ObjectStoragePath(path, conn_id=conn_id)
    return parse_manifest(manifest_path.read_bytes(), manifest_path)


def parse_manifest(payload: bytes, manifest_path: ObjectStoragePath) -> WindowManifest:
    """Validate the bytes of the window manifest read from ``manifest_path``."""
    try:
        data = json.loads(payload)
    except json.JSONDecodeError as error:
        raise ValueError(f"{manifest_path} is not a window manifest: it is not JSON ({error})") from None
    if not isinstance(data, dict) or data.get("kind") != MANIFEST_KIND:
        kind = data.get("kind") if isinstance(data, dict) else type(data).__name__
        raise ValueError(
            f"{manifest_path} is not a window manifest (kind {kind!r}, expected {MANIFEST_KIND!r}); "
            f"pass a file from <destination>/{MANIFESTS_DIR}/"
        )
    if data.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"{manifest_path} has manifest version {data.get('version')!r}, but this provider reads version "
            f"{FORMAT_VERSION}; install the provider version that wrote it"
        )
    try:
        # Coverage of its window exactly once, totals, no file listed twice: the transfer's check too.
        manifest = _manifest_from_document(data, manifest_path)
        check_manifest(
            manifest.window, manifest.intervals, events=manifest.events, total_bytes=manifest.bytes
        )
        return manifest
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(
            f"{manifest_path} is a damaged window manifest ({type(error).__name__}: {error}); "
            f"rerun the ingest of its window to rewrite it"
        ) from error


def _manifest_from_document(data: Mapping[str, Any], manifest_path: ObjectStoragePath) -> WindowManifest:
    destination = manifest_path.parent.parent
    return WindowManifest(
        path=manifest_path,
        destination=destination,
        window=Window.from_json(data["window"]),
        query=dict(data["query"]),
        compression=parse_compression(data["compression"]),
        intervals=tuple(_manifest_interval(item, destination) for item in data["intervals"]),
        events=int(data["events"]),
        bytes=int(data["bytes"]),
        created_at=parse_datetime(data["created_at"], "created_at"),
    )


def _manifest_interval(item: Mapping[str, Any], destination: ObjectStoragePath) -> ManifestInterval:
    relative = str(item["path"])
    parts = PurePosixPath(relative).parts
    if not parts or PurePosixPath(relative).is_absolute() or ".." in parts or "://" in relative:
        raise ValueError(
            f"manifest data path {relative!r} is not relative to the landing destination; "
            f"a manifest lists paths like 'dt=2026-01-04/slack_audit_<key>.jsonl.gz'"
        )
    interval = Interval.from_json(item)
    return ManifestInterval(
        interval.start,
        interval.end,
        path=relative,
        data_path=destination / relative,
        count=int(item["count"]),
        bytes=int(item["bytes"]),
        sha256=str(item["sha256"]),
    )


def coverage_problems(window: Window, listed: Iterable[tuple[int, int, str]], *, noun: str) -> list[str]:
    """What keeps ``listed`` (``(oldest, latest, label)``, inclusive seconds) from covering each second
    of ``window`` exactly once: gaps, overlaps, pieces outside it (empty when there are none)."""
    problems: list[str] = []
    next_second = window.oldest
    for oldest, latest, label in sorted(listed):
        if oldest < window.oldest or latest > window.latest:
            problems.append(f"{noun} {label} lies outside the window")
        elif oldest > next_second:
            problems.append(f"no {noun} covers seconds {next_second}..{oldest - 1}")
        elif oldest < next_second:
            problems.append(f"{noun} {label} overlaps another (seconds covered twice)")
        next_second = max(next_second, latest + 1)
    if next_second <= window.latest:
        problems.append(f"no {noun} covers seconds {next_second}..{window.latest}")
    return problems


def check_covers(window: Window, intervals: Sequence[Interval]) -> None:
    """Raise ValueError unless the committed ``intervals`` cover each second of ``window`` exactly once."""
    problems = coverage_problems(
        window,
        ((interval.oldest, interval.latest, interval.key) for interval in intervals),
        noun="committed interval",
    )
    if problems:
        raise ValueError(
            f"window {window.key}: " + "; ".join(problems) + "; commit every interval of the window, "
            "once, before writing its manifest"
        )


def check_manifest(
    window: Window, intervals: Sequence[ManifestInterval], *, events: int, total_bytes: int
) -> None:
    """Raise :class:`ManifestCheckError` unless ``intervals`` cover ``window`` exactly once and add up.

    Coverage is checked second by second on the inclusive integer bounds the API uses (no gap, no
    overlap, nothing outside the window), no data file may be listed twice, and the declared
    ``events`` and ``total_bytes`` must equal the sums over the intervals.
    """
    problems: list[str] = []
    paths: set[str] = set()
    for item in intervals:
        if item.count < 0 or item.bytes < 0:
            problems.append(f"interval {_label(item)} lists a negative count or size")
        if item.path in paths:
            problems.append(f"data file {item.path} is listed twice")
        paths.add(item.path)
    listed = ((item.oldest, item.latest, _label(item)) for item in intervals)
    problems += coverage_problems(window, listed, noun="interval")
    counted = sum(item.count for item in intervals)
    if counted != events:
        problems.append(f"it declares {events} events but its intervals hold {counted}")
    sized = sum(item.bytes for item in intervals)
    if sized != total_bytes:
        problems.append(f"it declares {total_bytes} bytes but its intervals hold {sized}")
    if problems:
        raise ManifestCheckError(
            f"the manifest of window {window.key} does not describe its window exactly once: "
            + "; ".join(problems)
            + "; rerun the ingest of the window to rewrite its manifest"
        )


def _label(item: ManifestInterval) -> str:
    return f"{item.path} (seconds {item.oldest}..{item.latest})"


def retract_window_manifest(path: ObjectStoragePath) -> None:
    """Withdraw a window's manifest before a rerun replaces a file it lists.

    Files are replaced one interval at a time and no store commits two files at once, so a manifest
    kept through a rewrite would list a replaced file with the old file's figures until the rerun
    ends (and for good, were it to fail). Withdrawn first, at every instant there is either a
    manifest that agrees with every marker or none: "this window is being rewritten", which the run
    ends by writing the new manifest, and which any later run of the window repairs.
    """
    path.unlink(missing_ok=True)


def manifest_document(
    window: Window,
    query: Mapping[str, Any],
    compression: Compression,
    destination: str,
    commits: Sequence[IntervalCommit],
    run: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest of ``window`` listing ``commits`` (sorted, covering the window exactly once).

    ``run`` holds the figures of the run writing it (see ``ingest.evidence``); each interval carries
    its marker's evidence, and the window the digest and first/last date_create they combine to.
    """
    intervals = [
        {
            **commit.interval.to_json(),
            "path": commit.path,
            "count": commit.count,
            "bytes": commit.bytes,
            "sha256": commit.sha256,
            **evidence.interval_evidence(commit.evidence),
            "stats": dict(commit.stats),
            "committed_at": commit.committed_at.isoformat(),
        }
        for commit in commits
    ]
    return {
        "version": FORMAT_VERSION,
        "kind": MANIFEST_KIND,
        "window": window.to_json(),
        "query": dict(query),
        "compression": compression,
        "destination": destination,
        "intervals": intervals,
        "events": sum(commit.count for commit in commits),
        "bytes": sum(commit.bytes for commit in commits),
        "created_at": datetime.now(timezone.utc).isoformat(),
        **evidence.window_evidence(intervals),
        "run": dict(run or {}),
    }


__all__ = [
    "MANIFEST_KIND",
    "ManifestInterval",
    "WindowManifest",
    "check_covers",
    "check_manifest",
    "coverage_problems",
    "iter_commit_lines",
    "iter_data_lines",
    "manifest_document",
    "parse_manifest",
    "read_manifest",
    "retract_window_manifest",
]
