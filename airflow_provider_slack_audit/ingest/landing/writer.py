"""Streaming one interval's data file: gzip, SHA-256 and count as the pages arrive, published whole.

The file takes its final name the store's way (see ``_fs``); an aborted write publishes nothing, so
a rewrite never touches the file it would have replaced. Publishing returns the interval's commit;
the caller's ``write_marker`` (the :class:`~.destination.Landing` that opened the writer) makes it
committed. Everything here is synchronous and blocking; the pipeline calls it in the stream's
thread, through ``client.blocking.run_blocking``.
"""

from __future__ import annotations

import hashlib
import logging
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from airflow_provider_slack_audit.client.blocking import yield_to_loop
from airflow_provider_slack_audit.ingest.windows import Interval
from airflow_provider_slack_audit.version_compat import ObjectStoragePath

from . import _fs
from .commit import IntervalCommit, json_normalized
from .layout import GZIP_WBITS, Compression

log = logging.getLogger(__name__)

_COMPRESS_BLOCK = 1 << 18  # large enough for ISA-L's speed, small enough to keep memory flat


def _gzip_compressor(level: int) -> Any:
    """A gzip stream compressor: ISA-L's when the ``isal`` package is installed, zlib's otherwise.

    zlib compresses slower than one page stream delivers (docs/performance.md); ISA-L's levels 0-3
    take zlib's 0-9 scaled down (6 -> 2), for somewhat larger files. Both write standard gzip,
    deterministic for a given library.
    """
    try:
        from isal import isal_zlib
    except ImportError:
        return zlib.compressobj(level, zlib.DEFLATED, GZIP_WBITS)
    return isal_zlib.compressobj(min(level // 3, 3), isal_zlib.DEFLATED, GZIP_WBITS)


_JOIN_ENTRIES = 256  # entries joined per C call: a join of msgspec.Raw holds the GIL throughout


def _join_lines(batch: Sequence[bytes | memoryview]) -> bytes:
    """``batch`` as JSONL (each entry then a newline), joined a slice at a time.

    One ``join`` of a page's ``msgspec.Raw`` entries holds the GIL for the whole page's copy (only
    a join of ``bytes`` lets it go); the slices, joined again as ``bytes``, hand over in between.
    """
    if len(batch) <= _JOIN_ENTRIES:
        return b"\n".join([*batch, b""])
    pieces = []
    for start in range(0, len(batch), _JOIN_ENTRIES):
        pieces.append(b"\n".join([*batch[start : start + _JOIN_ENTRIES], b""]))
        yield_to_loop()
    return b"".join(pieces)  # bytes only: CPython copies a large join without holding the GIL


class IntervalWriter:
    """
    Streams one interval's entries into its data file; ``commit`` publishes it, anything else discards it.

    Entries are compressed and hashed as they arrive, so memory stays flat and count, bytes and
    SHA-256 never need a second read. Leaving the ``with`` block without ``commit`` aborts.
    ``relative`` is the data file's path as markers record it; ``marker`` the interval's commit
    marker, removed right before the new file takes the final name; ``write_marker`` writes the new one.
    """

    def __init__(
        self,
        interval: Interval,
        final: ObjectStoragePath,
        *,
        relative: str,
        compression: Compression,
        level: int,
        marker: ObjectStoragePath,
        write_marker: Callable[[IntervalCommit], None],
        temp: ObjectStoragePath | None,
    ) -> None:
        self.interval = interval
        self.path = final
        self._temp = temp
        self._publication = "rename" if temp is not None else _fs.publication(final)
        if self._publication == "rename" and temp is None:
            raise ValueError(f"{final} is on a store that publishes by rename: pass a temporary sibling")
        # What the commit records and how it is made committed (see ``commit``).
        self._relative, self._compression = relative, compression
        self._marker, self._write_marker = marker, write_marker
        # S3 and GCS: autocommit=False keeps the upload unpublished until commit(). Azure ignores it
        # and publishes on close(), which an abort never calls (see _fs.abandon).
        if temp is not None:
            self._file = _fs.open_file(temp, "wb")
        else:
            self._file = _fs.open_file(final, "wb", autocommit=False)
        self._compressor = _gzip_compressor(level) if compression == "gzip" else None
        self._hasher = hashlib.sha256()
        self._pending = bytearray()  # input not yet handed to the compressor (< one block)
        self._count = 0
        self._bytes = 0
        self._closed = False

    def __enter__(self) -> IntervalWriter:
        return self

    def __exit__(self, *_: object) -> None:
        self.abort()

    def write(self, entries: Iterable[bytes | memoryview], *, single_line: bool = False) -> None:
        """
        Append entries (each one JSON object's raw bytes, as the API sent it) as lines.

        Pass a page at a time: the page is joined into one buffer, so compression and the file see
        one call per page instead of one per entry. ``single_line=True`` says the caller has proven
        that no entry holds a line break (the pipeline scans each page's body, of which every entry
        is a slice): the writer then skips counting the joined bytes' newlines.
        Empty entries are refused either way.
        """
        self._require_open("write")
        batch = entries if isinstance(entries, (list, tuple)) else list(entries)
        if not batch:
            return
        data = _join_lines(batch)
        # An empty entry or one holding a newline would corrupt the JSONL for every reader; newlines
        # are counted block by block, so no call holds the GIL for long.
        newlines = len(batch)
        if not single_line:
            newlines = 0
            for start in range(0, len(data), _COMPRESS_BLOCK):
                newlines += data.count(b"\n", start, start + _COMPRESS_BLOCK)
                yield_to_loop()
        if 0 in map(len, batch) or newlines != len(batch):
            raise ValueError(
                f"a page for interval {self.interval.key} holds an empty entry or one containing a newline; "
                f"pass each entry as the single-line JSON object the API sent"
            )
        self._count += len(batch)
        if self._compressor is None:
            self._emit(data)
            return
        self._compress(self._compressor, data)

    def _compress(self, compressor: Any, data: bytes) -> None:
        """Feed the compressor fixed-size blocks counted from the file's start, whatever the pages.

        ISA-L's output depends on how its input is split, and pages cut differently on a resumed or
        widened read must still give byte-identical files.
        """
        with memoryview(data) as view:
            position = 0
            if self._pending:
                position = _COMPRESS_BLOCK - len(self._pending)
                self._pending += view[:position]
                if len(self._pending) < _COMPRESS_BLOCK:
                    return
                self._emit(compressor.compress(bytes(self._pending)))
                self._pending.clear()
            while len(data) - position >= _COMPRESS_BLOCK:
                self._emit(compressor.compress(view[position : position + _COMPRESS_BLOCK]))
                position += _COMPRESS_BLOCK
                yield_to_loop()
            self._pending += view[position:]

    def _emit(self, chunk: bytes) -> None:
        if chunk:
            self._hasher.update(chunk)
            self._file.write(chunk)
            self._bytes += len(chunk)

    def commit(
        self,
        *,
        query: Mapping[str, Any],
        stats: Mapping[str, int],
        evidence: Mapping[str, Any] | None = None,
    ) -> IntervalCommit:
        """Publish the data file under its final name, then write the marker that makes it committed."""
        self._require_open("commit")
        query = json_normalized(query, "query")
        try:
            self._publish_data_file()
        except BaseException:
            self.abort()
            raise
        commit = IntervalCommit(
            interval=self.interval,
            path=self._relative,
            count=self._count,
            bytes=self._bytes,
            sha256=self._hasher.hexdigest(),
            query=query,
            compression=self._compression,
            stats=dict(stats),
            committed_at=datetime.now(timezone.utc),
            evidence=dict(evidence or {}),
        )
        self._write_marker(commit)
        log.debug("Committed %s: %d entries, %d bytes", self.path, commit.count, commit.bytes)
        return commit

    def _publish_data_file(self) -> None:
        if self._compressor is not None:
            if self._pending:
                self._emit(self._compressor.compress(bytes(self._pending)))
                self._pending.clear()
            self._emit(self._compressor.flush())
        if self._publication != "close":
            self._file.close()  # everything uploaded, nothing published yet
        # The new file is complete: only now does the old marker go, right before the file takes
        # the final name, so no marker ever vouches for a file it does not describe, and a rewrite
        # that fails before this point leaves the interval committed as it was.
        self._marker.unlink(missing_ok=True)
        if self._temp is not None:
            self._temp.rename(self.path)
        elif self._publication == "commit":
            self._file.commit()
        else:
            self._file.close()  # Azure: one Put Block List publishes the staged blocks
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
            if self._temp is not None:
                self._file.close()
                self._temp.unlink(missing_ok=True)
            else:
                _fs.abandon(self._file)  # nothing was published, so the landed file is untouched
        except Exception:
            log.warning("Could not clean up the aborted write of %s", self.path, exc_info=True)

    def _require_open(self, action: str) -> None:
        if self._closed:
            raise RuntimeError(
                f"cannot {action}: the writer of interval {self.interval.key} is closed; "
                f"open the interval again to rewrite it"
            )


__all__ = ["IntervalWriter"]
