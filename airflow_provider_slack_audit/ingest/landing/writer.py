"""Writing files atomically: data files streamed through gzip, small documents, temporary siblings.

How a file takes its final name depends on the store (``ingest.stores``): on local files (and
``memory://`` in tests) it is written to a hidden temporary sibling and renamed into place; on S3
and GCS it is uploaded to its final key with ``autocommit=False`` and published by ``commit()``; on
Azure Blob Storage its blocks are staged and committed by ``close()``. Everywhere, an aborted write
publishes nothing, so a rewrite never touches the file it would have replaced.
Everything here is synchronous and blocking; the pipeline calls it in the stream's thread, through
``client.blocking.run_blocking``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import closing
from datetime import datetime, timezone
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_slack_audit.client.blocking import yield_to_loop
from airflow_provider_slack_audit.ingest.stores import LOCAL, Publication, store_for
from airflow_provider_slack_audit.ingest.windows import Interval
from airflow_provider_slack_audit.version_compat import ObjectStoragePath

from .commit import IntervalCommit, json_normalized
from .layout import TEMP_MARK
from .lease import DEFAULT_TTL_SECONDS, owner_of_temp

if TYPE_CHECKING:
    from .destination import Landing

log = logging.getLogger(__name__)

_COMPRESS_BLOCK = 1 << 18  # 256 KiB: large enough for ISA-L's speed, small enough to stay flat
GZIP_WBITS = 31  # zlib's gzip wrapper: header with mtime 0 and no file name, so output is deterministic


class _BinaryFile(Protocol):
    """
    The part of an fsspec file object (as ``ObjectStoragePath.open`` returns it) this module uses.

    ``commit``/``discard`` finish or cancel a write opened with ``autocommit=False``.
    """

    def read(self, size: int = -1, /) -> bytes: ...

    def write(self, data: bytes, /) -> int | None: ...

    def close(self) -> None: ...

    forced: bool

    def commit(self) -> None: ...

    def discard(self) -> None: ...


def _open(path: ObjectStoragePath, mode: str, **kwargs: Any) -> _BinaryFile:
    """The fsspec file of ``path``, opened through its filesystem.

    Not ``path.open``: Airflow 3 wraps that file to record hook lineage on every ``read``/``write``
    call, ~70 ms each (measured on Airflow 3.3), which at one call per page cost more than landing
    the page. The operator declares the destination as its outlet asset instead.
    """
    file: _BinaryFile = path.fs.open(path.path, mode, **kwargs)
    return file


def is_local(path: ObjectStoragePath) -> bool:
    return store_for(path.protocol) is LOCAL


def publication(path: ObjectStoragePath) -> Publication:
    """How a file of ``path``'s store takes its final name (see ``ingest.stores``).

    A store outside the table (reached without the destination check, e.g. by ``verify``) gets the
    temporary sibling and rename: the one way that never shows a partial file under a final name.
    """
    store = store_for(path.protocol)
    return store.publication if store is not None else "rename"


def _abandon(file: _BinaryFile) -> None:
    """Drop a file opened for writing without publishing anything.

    fsspec's ``close()`` of a write file uploads the rest and, on Azure (and on any store that
    ignores ``autocommit=False``), publishes it; ``forced`` is fsspec's own mark that the final
    flush was done, so ``close()`` then releases the file without it. ``discard()`` cancels an
    upload begun (S3's multipart upload, GCS's resumable session); Azure's staged blocks are never
    committed and the service deletes them.
    """
    file.forced = True
    try:
        file.close()
    finally:
        file.discard()


def remove_stale_temps_of(
    path: ObjectStoragePath,
    written: ObjectStoragePath,
    *,
    live_owner: Callable[[], str | None] | None = None,
) -> None:
    """Delete temporary siblings of ``path`` that no live writer owns (a kill -9 left them behind).

    ``written`` is the caller's own temporary sibling, just written (never removed here). A
    temporary file names its owner (see :func:`temp_sibling`). With ``live_owner`` (the token of
    the run holding the lease on ``path``, or None), every temp not of that owner is stale. Without
    it (a file no lease guards), a temp counts as stale once it is older than a lease's ttl: a
    small document is written in milliseconds, so only a dead writer leaves one that old. Its age
    is measured against ``written``'s modification time, not this host's clock: both are stamped by
    the file system (a file server's clock on NFS), however far this host's clock is from it.
    """
    prefix = f".{path.name}{TEMP_MARK}"
    if not path.parent.exists():
        return
    unknown = object()
    live: object = unknown
    now = _modified(written)
    for sibling in path.parent.iterdir():
        if not sibling.name.startswith(prefix) or sibling.name == written.name:
            continue
        if live_owner is None:
            modified = _modified(sibling)
            if now is None or modified is None or now - modified <= DEFAULT_TTL_SECONDS:
                continue
        else:
            if live is unknown:
                live = live_owner()
            if live is not None and owner_of_temp(sibling.name) == live:
                continue
        log.info("Removing %s, left behind by an interrupted writer", sibling)
        sibling.unlink(missing_ok=True)


def _modified(path: ObjectStoragePath) -> float | None:
    """A local file's modification time, as its file system stamped it (None when it is gone)."""
    try:
        return os.stat(path.path).st_mtime
    except FileNotFoundError:
        return None


def temp_sibling(path: ObjectStoragePath, owner: str | None = None) -> ObjectStoragePath:
    """A unique hidden sibling whose name never ends in ``.jsonl``/``.jsonl.gz``.

    Named ``.<name>.tmp-<owner>-<random>``: ``owner`` is the writing run's lease token
    (:attr:`~.lease.LeaseOwner.token`; the pid when none is given), so other runs can tell whether
    the writer of a temp still holds its lease.
    """
    return path.parent / f".{path.name}{TEMP_MARK}{owner or os.getpid()}-{secrets.token_hex(4)}"


def write_small_file(
    path: ObjectStoragePath,
    payload: bytes,
    *,
    owner: str | None = None,
    live_owner: Callable[[], str | None] | None = None,
) -> None:
    """Write a small document so readers see the old version or the new one, never a part.

    ``owner``/``live_owner``: the writer's lease token and who holds the lease guarding ``path``
    (see :func:`remove_stale_temps_of`).
    """
    if publication(path) != "rename":  # one request publishes it whole (S3, GCS, Azure)
        with closing(_open(path, "wb")) as file:
            file.write(payload)
        return
    temp = temp_sibling(path, owner)
    try:
        with closing(_open(temp, "wb")) as file:
            file.write(payload)
        remove_stale_temps_of(path, temp, live_owner=live_owner)
        temp.rename(path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _gzip_compressor(level: int) -> Any:
    """A gzip stream compressor: ISA-L's when the ``isal`` package is installed (~10x zlib's speed).

    zlib at level 6 compresses ~85 MB/s, below what one page stream delivers; ISA-L's levels 0-3
    take zlib's 0-9 scaled down (6 -> 2: ~940 MB/s, files ~20% larger than zlib 6). Both write
    standard gzip, deterministic for a given library.
    """
    try:
        from isal import isal_zlib
    except ImportError:
        return zlib.compressobj(level, zlib.DEFLATED, GZIP_WBITS)
    return isal_zlib.compressobj(min(level // 3, 3), isal_zlib.DEFLATED, GZIP_WBITS)


_JOIN_ENTRIES = 256  # entries joined per C call (~0.2 MB): a join of msgspec.Raw holds the GIL throughout


def _join_lines(batch: Sequence[bytes | memoryview]) -> bytes:
    """``batch`` as JSONL (each entry then a newline), joined a slice at a time.

    One ``join`` of a page's ``msgspec.Raw`` entries holds the GIL for the whole ~10 MB copy (only
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
        self._publication = "rename" if temp is not None else publication(final)
        if self._publication == "rename" and temp is None:
            raise ValueError(f"{final} is on a store that publishes by rename: pass a temporary sibling")
        # S3 and GCS: autocommit=False keeps the upload unpublished until commit(). Azure ignores it
        # and publishes on close(), which an abort never calls (see _abandon).
        self._file = _open(temp, "wb") if temp is not None else _open(final, "wb", autocommit=False)
        self._compressor = _gzip_compressor(landing.level) if landing.compression == "gzip" else None
        self._hasher = hashlib.sha256()
        self._pending = bytearray()  # input not yet handed to the compressor (< one block)
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

    def write(self, entries: Iterable[bytes | memoryview], *, single_line: bool = False) -> None:
        """
        Append entries (each one JSON object's raw bytes, as the API sent it) as lines.

        Pass a page at a time: the page is joined into one buffer, so compression and the file see
        one call per page instead of one per entry. ``single_line=True`` says the caller has proven
        that no entry holds a line break (the pipeline scans each page's body, of which every entry
        is a slice): the writer then skips counting the joined bytes' newlines (~0.4 us an entry).
        Empty entries are refused either way.
        """
        self._require_open("write")
        batch = entries if isinstance(entries, (list, tuple)) else list(entries)
        if not batch:
            return
        data = _join_lines(batch)
        # C-speed checks (a few % of the write cost): an empty entry or one holding a newline would
        # corrupt the JSONL for every reader. Counted block by block, like everything below: each
        # call holding the GIL stays short, so the event loop thread is never kept waiting long.
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
            path=self._landing.relative_data_path(self.interval),
            count=self._count,
            bytes=self._bytes,
            sha256=self._hasher.hexdigest(),
            query=query,
            compression=self._landing.compression,
            stats=dict(stats),
            committed_at=datetime.now(timezone.utc),
            evidence=dict(evidence or {}),
        )
        # A failure here leaves a complete data file without a marker: not committed, rewritten next run.
        self._landing._write_marker(commit)
        self._landing.remove_other_formats(self.interval)
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
        self._landing.marker_path(self.interval).unlink(missing_ok=True)
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
                _abandon(self._file)  # nothing was published, so the landed file is untouched
        except Exception:
            log.warning("Could not clean up the aborted write of %s", self.path, exc_info=True)

    def _require_open(self, action: str) -> None:
        if self._closed:
            raise RuntimeError(
                f"cannot {action}: the writer of interval {self.interval.key} is closed; "
                f"open the interval again to rewrite it"
            )
