"""
The landing contract: how one interval's audit events become a file a warehouse can trust.

Layout under the destination (any :class:`ObjectStoragePath`: ``file://`` locally, s3/gcs/... remotely)::

    <dest>/dt=2026-01-04/slack_audit_<interval.key>.jsonl.gz      data, one API entry per line
    <dest>/dt=2026-01-04/slack_audit_<interval.key>.commit.json   commit marker, written after the data
    <dest>/_manifests/slack_audit_<window.key>.manifest.json       the intervals of one window

``dt`` is the UTC date of the interval start. Guarantees:

* A data file exists under its final name only when it is complete, and nothing else under the
  destination ends in ``.jsonl`` or ``.jsonl.gz`` (temporary files end in ``.tmp-<pid>-<random>``).
* An interval is committed only when its marker and its data file agree (query, compression, size),
  so a crash between the two steps reads as "not committed" and the rerun rewrites the interval.
* Reruns overwrite, never append; gzip output is deterministic, so a rerun writes identical bytes.

Everything here is synchronous and blocking; the async pipeline calls it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import logging
import os
import secrets
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import PurePosixPath
from types import TracebackType
from typing import Any, Literal, Protocol

from airflow_provider_slack_audit.ingest.manifest_check import checked
from airflow_provider_slack_audit.ingest.windows import Interval, Window, parse_datetime
from airflow_provider_slack_audit.version_compat import ObjectStoragePath

__all__ = [
    "Compression",
    "IntervalCommit",
    "IntervalWriter",
    "Landing",
    "ManifestInterval",
    "WindowManifest",
    "read_manifest",
]

log = logging.getLogger(__name__)

Compression = Literal["gzip"] | None

FORMAT_VERSION = 1
MANIFEST_KIND = "slack_audit_window_manifest"

_PREFIX = "slack_audit_"
_MANIFESTS_DIR = "_manifests"
_TEMP_MARK = ".tmp-"
_LOCAL_PROTOCOLS = ("file", "local", "")
_GZIP_WBITS = 31  # zlib's gzip wrapper: header with mtime 0 and no file name, so output is deterministic
_READ_CHUNK = 1 << 20


class _BinaryFile(Protocol):
    """
    The part of an fsspec file object (as ``ObjectStoragePath.open`` returns it) this module uses.

    ``commit``/``discard`` finish or cancel a write opened with ``autocommit=False``.
    """

    def read(self, size: int = -1, /) -> bytes: ...

    def write(self, data: bytes, /) -> int | None: ...

    def close(self) -> None: ...

    def commit(self) -> None: ...

    def discard(self) -> None: ...


def _open(path: ObjectStoragePath, mode: str, **kwargs: Any) -> _BinaryFile:
    file: _BinaryFile = path.open(mode, **kwargs)  # type: ignore[no-untyped-call]
    return file


def _is_local(path: ObjectStoragePath) -> bool:
    return path.protocol in _LOCAL_PROTOCOLS


def _remove_stale_temps_of(path: ObjectStoragePath) -> None:
    """Delete temporary siblings of ``path`` that an interrupted writer (a kill -9) left behind."""
    prefix = f".{path.name}{_TEMP_MARK}"
    if not path.parent.exists():
        return
    for sibling in path.parent.iterdir():
        if sibling.name.startswith(prefix):
            log.info("Removing %s, left behind by an interrupted writer", sibling)
            sibling.unlink(missing_ok=True)


def _temp_sibling(path: ObjectStoragePath) -> ObjectStoragePath:
    """A unique hidden sibling whose name never ends in ``.jsonl``/``.jsonl.gz``."""
    return path.parent / f".{path.name}{_TEMP_MARK}{os.getpid()}-{secrets.token_hex(4)}"


def _json_bytes(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, indent=2).encode() + b"\n"


def _json_normalized(value: Mapping[str, Any], what: str) -> dict[str, Any]:
    """The value as it reads back from JSON (tuples become lists), so stored and given values compare."""
    try:
        normalized: dict[str, Any] = json.loads(json.dumps(dict(value)))
    except TypeError as error:
        raise TypeError(
            f"{what} must be JSON-serializable because it is stored in the landing: {error}"
        ) from None
    return normalized


@dataclass(frozen=True)
class IntervalCommit:
    """What the commit marker of one landed interval records; ``path`` is relative to the destination."""

    interval: Interval
    path: str
    count: int
    bytes: int
    sha256: str
    query: Mapping[str, Any]
    compression: Compression
    stats: Mapping[str, int]
    committed_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The marker document (format version 1)."""
        return {
            "version": FORMAT_VERSION,
            "interval": self.interval.to_json(),
            "path": self.path,
            "count": self.count,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "query": dict(self.query),
            "compression": self.compression,
            "stats": dict(self.stats),
            "committed_at": self.committed_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> IntervalCommit:
        """Parse a marker document; raises ValueError/KeyError/TypeError when it is not one."""
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"commit marker version {data.get('version')!r} is not {FORMAT_VERSION}")
        return cls(
            interval=Interval.from_json(data["interval"]),
            path=str(data["path"]),
            count=int(data["count"]),
            bytes=int(data["bytes"]),
            sha256=str(data["sha256"]),
            query=dict(data["query"]),
            compression=_compression(data["compression"]),
            stats={str(name): int(value) for name, value in data["stats"].items()},
            committed_at=parse_datetime(data["committed_at"], "committed_at"),
        )


def _compression(value: object) -> Compression:
    if value == "gzip":
        return "gzip"
    if value is None:
        return None
    raise ValueError(f"compression {value!r} is not supported; use 'gzip' or None")


@dataclass(frozen=True)
class ManifestInterval:
    """One interval listed in a manifest, with its data file resolved against the manifest's location."""

    interval: Interval
    path: str
    data_path: ObjectStoragePath
    count: int
    bytes: int
    sha256: str

    # The manifest's JSON lists these per interval; readers expect them on the entry too.
    @property
    def start(self) -> datetime:
        return self.interval.start

    @property
    def end(self) -> datetime:
        return self.interval.end

    @property
    def oldest(self) -> int:
        return self.interval.oldest

    @property
    def latest(self) -> int:
        return self.interval.latest


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
            yield from _iter_data_lines(entry, self.compression, verify=verify)

    def iter_entries(self, *, verify: bool = True) -> Iterator[dict[str, Any]]:
        """Like :meth:`iter_lines`, decoded to dicts (convenient for small loads; the lines are faster)."""
        for line in self.iter_lines(verify=verify):
            entry: dict[str, Any] = json.loads(line)
            yield entry


def _iter_data_lines(entry: ManifestInterval, compression: Compression, *, verify: bool) -> Iterator[bytes]:
    hasher = hashlib.sha256()
    size = count = 0
    decompressor = zlib.decompressobj(_GZIP_WBITS) if compression == "gzip" else None
    pending = b""
    with closing(_open(entry.data_path, "rb")) as file:
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
    try:
        data = json.loads(manifest_path.read_bytes())
    except json.JSONDecodeError as error:
        raise ValueError(f"{manifest_path} is not a window manifest: it is not JSON ({error})") from None
    if not isinstance(data, dict) or data.get("kind") != MANIFEST_KIND:
        kind = data.get("kind") if isinstance(data, dict) else type(data).__name__
        raise ValueError(
            f"{manifest_path} is not a window manifest (kind {kind!r}, expected {MANIFEST_KIND!r}); "
            f"pass a file from <destination>/{_MANIFESTS_DIR}/"
        )
    if data.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"{manifest_path} has manifest version {data.get('version')!r}, but this provider reads version "
            f"{FORMAT_VERSION}; install the provider version that wrote it"
        )
    try:
        return checked(_manifest_from_document(data, manifest_path))
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
        compression=_compression(data["compression"]),
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
    return ManifestInterval(
        interval=Interval.from_json(item),
        path=relative,
        data_path=destination / relative,
        count=int(item["count"]),
        bytes=int(item["bytes"]),
        sha256=str(item["sha256"]),
    )


class Landing:
    """
    Lands intervals under ``destination`` following the landing contract (see the module docstring).

    On a local filesystem each file is written to a hidden temporary sibling and renamed into place,
    which is atomic. On object stores a rename is a copy plus a delete, so files are written to their
    final key directly: the object appears only when its upload completes. ``level`` is the gzip level.
    """

    def __init__(
        self,
        destination: ObjectStoragePath | str,
        *,
        compression: Compression = "gzip",
        conn_id: str | None = None,
        level: int = 6,
    ) -> None:
        if isinstance(destination, ObjectStoragePath):
            if conn_id is not None and conn_id != destination.conn_id:
                raise ValueError(
                    f"conn_id {conn_id!r} differs from the destination path's conn_id "
                    f"{destination.conn_id!r}; pass conn_id only with a string destination"
                )
            self.destination = destination
        else:
            self.destination = ObjectStoragePath(destination, conn_id=conn_id)
        self.compression: Compression = _compression(compression)
        if not 0 <= level <= 9:
            raise ValueError(f"gzip level {level} is outside 0..9; 6 is a good balance of speed and size")
        self.level = level
        self._local = _is_local(self.destination)

    def __repr__(self) -> str:
        return f"Landing({str(self.destination)!r}, compression={self.compression!r})"

    # Layout -----------------------------------------------------------------------------------------

    def relative_data_path(self, interval: Interval) -> str:
        """The data file's path relative to the destination (as markers and manifests record it)."""
        return self._relative_data_path(interval, self.compression)

    def _relative_data_path(self, interval: Interval, compression: Compression) -> str:
        suffix = ".jsonl.gz" if compression == "gzip" else ".jsonl"
        return f"{self._partition(interval)}/{_PREFIX}{interval.key}{suffix}"

    def data_path(self, interval: Interval) -> ObjectStoragePath:
        """Where the interval's data file lives once complete."""
        return self.destination / self.relative_data_path(interval)

    def marker_path(self, interval: Interval) -> ObjectStoragePath:
        """Where the interval's commit marker lives."""
        return self.destination / self._partition(interval) / f"{_PREFIX}{interval.key}.commit.json"

    def manifest_path(self, window: Window) -> ObjectStoragePath:
        """Where the window's manifest lives."""
        return self.destination / _MANIFESTS_DIR / f"{_PREFIX}{window.key}.manifest.json"

    @staticmethod
    def _partition(interval: Interval) -> str:
        return f"dt={interval.start.date().isoformat()}"

    # Commit state ---------------------------------------------------------------------------------

    def committed(self, interval: Interval, query: Mapping[str, Any]) -> IntervalCommit | None:
        """
        The interval's commit if it landed with this ``query`` and compression, else None.

        The marker alone is not enough: the data file must exist with the size the marker records,
        which catches a data file deleted or replaced after the commit. The reason for a None is logged
        at DEBUG.
        """
        marker = self.marker_path(interval)
        try:
            commit = IntervalCommit.from_json(json.loads(marker.read_bytes()))
        except FileNotFoundError:
            return self._not_committed(interval, "no commit marker")
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            return self._not_committed(interval, f"unreadable commit marker {marker}: {error!r}")
        if commit.interval != interval:
            return self._not_committed(interval, f"marker {marker} is for interval {commit.interval.key}")
        if commit.query != _json_normalized(query, "query"):
            return self._not_committed(interval, f"committed with query {commit.query}, not {dict(query)}")
        if commit.compression != self.compression:
            return self._not_committed(
                interval, f"committed with compression {commit.compression}, not {self.compression}"
            )
        if commit.path != self.relative_data_path(interval):
            return self._not_committed(interval, f"marker names data file {commit.path}")
        data = self.data_path(interval)
        try:
            size = data.size()
        except FileNotFoundError:
            return self._not_committed(interval, f"data file {data} is missing")
        if size != commit.bytes:
            return self._not_committed(
                interval, f"data file {data} has {size} bytes, marker says {commit.bytes}"
            )
        return commit

    @staticmethod
    def _not_committed(interval: Interval, reason: str) -> None:
        log.debug("Interval %s is not committed: %s", interval.key, reason)
        return None

    # Writing ----------------------------------------------------------------------------------------

    def open_interval(self, interval: Interval) -> IntervalWriter:
        """
        Start (re)writing the interval; use the writer as a context manager and call ``commit``.

        The old marker is removed first: from here until the new commit the interval is not
        committed, so a crash can never leave an old marker vouching for a half-replaced data file.
        A data file in the other compression format is removed too (one data file per interval), and
        so are temporary files a killed writer of this interval left behind.
        """
        self.marker_path(interval).unlink(missing_ok=True)
        other_format: Compression = None if self.compression == "gzip" else "gzip"
        (self.destination / self._relative_data_path(interval, other_format)).unlink(missing_ok=True)
        final = self.data_path(interval)
        if not self._local:
            return IntervalWriter(self, interval, final, temp=None)
        final.parent.mkdir(parents=True, exist_ok=True)
        self._remove_stale_temps(interval)
        return IntervalWriter(self, interval, final, temp=_temp_sibling(final))

    def _remove_stale_temps(self, interval: Interval) -> None:
        prefix = f".{_PREFIX}{interval.key}."
        for path in self.data_path(interval).parent.iterdir():
            if path.name.startswith(prefix) and _TEMP_MARK in path.name:
                log.info("Removing %s, left behind by an interrupted writer", path)
                path.unlink(missing_ok=True)

    def write_manifest(
        self, window: Window, query: Mapping[str, Any], commits: Sequence[IntervalCommit]
    ) -> ObjectStoragePath:
        """
        Write the window's manifest from its interval commits and return its path.

        Refuses commits that do not cover every second of the window exactly once, or that landed
        with another query or compression: a manifest is a promise that loading it loads the window.
        """
        query = _json_normalized(query, "query")
        ordered = sorted(commits, key=lambda commit: commit.interval)
        for commit in ordered:
            if commit.query != query or commit.compression != self.compression:
                raise ValueError(
                    f"interval {commit.interval.key} was committed with query {commit.query} and "
                    f"compression {commit.compression}, but the manifest is for query {query} and "
                    f"compression {self.compression}; re-ingest the window with one query"
                )
        _check_covers(window, [commit.interval for commit in ordered])
        path = self.manifest_path(window)
        if self._local:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._write_small_file(path, _json_bytes(self._manifest_document(window, query, ordered)))
        return path

    def _manifest_document(
        self, window: Window, query: Mapping[str, Any], commits: Sequence[IntervalCommit]
    ) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "kind": MANIFEST_KIND,
            "window": window.to_json(),
            "query": dict(query),
            "compression": self.compression,
            "destination": str(self.destination),
            "intervals": [
                {
                    **commit.interval.to_json(),
                    "path": commit.path,
                    "count": commit.count,
                    "bytes": commit.bytes,
                    "sha256": commit.sha256,
                }
                for commit in commits
            ],
            "events": sum(commit.count for commit in commits),
            "bytes": sum(commit.bytes for commit in commits),
            "created_at": datetime.now(timezone.utc).isoformat(),
        }

    def _write_marker(self, commit: IntervalCommit) -> None:
        self._write_small_file(self.marker_path(commit.interval), _json_bytes(commit.to_json()))

    def _write_small_file(self, path: ObjectStoragePath, payload: bytes) -> None:
        """Write a small document so readers see the old version or the new one, never a part."""
        if not self._local:
            with closing(_open(path, "wb")) as file:
                file.write(payload)
            return
        _remove_stale_temps_of(path)
        temp = _temp_sibling(path)
        try:
            with closing(_open(temp, "wb")) as file:
                file.write(payload)
            temp.rename(path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    read_manifest = staticmethod(read_manifest)


def _check_covers(window: Window, intervals: Sequence[Interval]) -> None:
    """Raise unless the sorted intervals cover each second of the window exactly once."""
    next_second = window.oldest
    for interval in intervals:
        if interval.start < window.start or interval.end > window.end:
            raise ValueError(f"interval {interval.key} lies outside window {window.key}")
        if interval.oldest > next_second:
            raise ValueError(
                f"no committed interval covers seconds {next_second}..{interval.oldest - 1} of window "
                f"{window.key}; commit every interval of the window before writing its manifest"
            )
        if interval.oldest < next_second:
            raise ValueError(f"interval {interval.key} overlaps the one before it in window {window.key}")
        next_second = interval.latest + 1
    if next_second != window.latest + 1:
        raise ValueError(
            f"no committed interval covers seconds {next_second}..{window.latest} of window {window.key}; "
            f"commit every interval of the window before writing its manifest"
        )


def _gzip_compressor(level: int) -> Any:
    """A gzip stream compressor: ISA-L's when the ``isal`` package is installed (~10x zlib's speed).

    zlib at level 6 compresses ~85 MB/s, below what one page stream delivers; ISA-L's levels 0-3
    take zlib's 0-9 scaled down (6 -> 2: ~940 MB/s, files ~20% larger than zlib 6). Both write
    standard gzip, deterministic for a given library.
    """
    try:
        from isal import isal_zlib
    except ImportError:
        return zlib.compressobj(level, zlib.DEFLATED, _GZIP_WBITS)
    return isal_zlib.compressobj(min(level // 3, 3), isal_zlib.DEFLATED, _GZIP_WBITS)


class IntervalWriter:
    """
    Streams one interval's entries into its data file; ``commit`` publishes it, anything else discards it.

    Entries are compressed and hashed as they arrive, so memory stays flat and count, bytes and
    SHA-256 never need a second read. Leaving the ``with`` block without ``commit`` aborts.
    """

    def __init__(
        self,
        landing: Landing,
        interval: Interval,
        final: ObjectStoragePath,
        *,
        temp: ObjectStoragePath | None,
    ) -> None:
        self.interval = interval
        self.path = final
        self._landing = landing
        self._temp = temp
        # Remote: autocommit=False makes fsspec's object-store files publish only on commit(), so an
        # aborted upload never shows a partial object (the same mechanism as fsspec transactions).
        self._file = _open(temp, "wb") if temp is not None else _open(final, "wb", autocommit=False)
        self._compressor = _gzip_compressor(landing.level) if landing.compression == "gzip" else None
        self._hasher = hashlib.sha256()
        self._count = 0
        self._bytes = 0
        self._closed = False

    def __enter__(self) -> IntervalWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.abort()

    @property
    def count(self) -> int:
        """Entries written so far."""
        return self._count

    def write(self, entries: Iterable[bytes | memoryview]) -> None:
        """
        Append entries (each one JSON object's raw bytes, as the API sent it) as lines.

        Pass a page at a time: the page is joined into one buffer, so compression and the file see
        one call per page instead of one per entry.
        """
        self._require_open("write")
        batch = entries if isinstance(entries, (list, tuple)) else list(entries)
        if not batch:
            return
        data = b"\n".join([*batch, b""])
        # C-speed checks (a few % of the write cost): an empty entry or one holding a newline would
        # corrupt the JSONL for every reader.
        if 0 in map(len, batch) or data.count(b"\n") != len(batch):
            raise ValueError(
                f"a page for interval {self.interval.key} holds an empty entry or one containing a newline; "
                f"pass each entry as the single-line JSON object the API sent"
            )
        self._count += len(batch)
        self._emit(self._compressor.compress(data) if self._compressor else data)

    def _emit(self, chunk: bytes) -> None:
        if chunk:
            self._hasher.update(chunk)
            self._file.write(chunk)
            self._bytes += len(chunk)

    def commit(self, *, query: Mapping[str, Any], stats: Mapping[str, int]) -> IntervalCommit:
        """Publish the data file under its final name, then write the marker that makes it committed."""
        self._require_open("commit")
        query = _json_normalized(query, "query")
        try:
            self._publish_data_file()
        except BaseException:
            self.abort()
            raise
        commit = IntervalCommit(
            interval=self.interval,
            path=self._landing.relative_data_path(self.interval),
            count=self._count,
            bytes=self._bytes,
            sha256=self._hasher.hexdigest(),
            query=query,
            compression=self._landing.compression,
            stats=dict(stats),
            committed_at=datetime.now(timezone.utc),
        )
        # A failure here leaves a complete data file without a marker: not committed, rewritten next run.
        self._landing._write_marker(commit)
        log.debug("Committed %s: %d entries, %d bytes", self.path, commit.count, commit.bytes)
        return commit

    def _publish_data_file(self) -> None:
        if self._compressor is not None:
            self._emit(self._compressor.flush())
        self._file.close()
        if self._temp is not None:
            self._temp.rename(self.path)
        else:
            self._file.commit()
        self._closed = True
        # One stat (a HEAD on object stores) guards against a filesystem that dropped or cut the upload.
        landed = self.path.size()
        if landed != self._bytes:
            self.path.unlink(missing_ok=True)
            raise OSError(
                f"{self.path} holds {landed} bytes after the upload, but {self._bytes} were written; "
                f"the interval is not committed, rerun to rewrite it"
            )

    def abort(self) -> None:
        """Discard what was written; no-op once committed or aborted. Errors are logged, not raised."""
        if self._closed:
            return
        self._closed = True
        try:
            self._file.close()
            if self._temp is not None:
                self._temp.unlink(missing_ok=True)
            else:
                self._file.discard()
                # A filesystem that ignores autocommit=False published on close: remove that partial file.
                self.path.unlink(missing_ok=True)
        except Exception:
            log.warning("Could not clean up the aborted write of %s", self.path, exc_info=True)

    def _require_open(self, action: str) -> None:
        if self._closed:
            raise RuntimeError(
                f"cannot {action}: the writer of interval {self.interval.key} is closed; "
                f"open the interval again to rewrite it"
            )
