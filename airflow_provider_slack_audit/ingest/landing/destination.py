"""``Landing``: one destination, and the landing contract applied to it (layout, commits, manifests).

Guarantees:

* A data file exists under its final name only when it is complete, and nothing else under the
  destination ends in ``.jsonl`` or ``.jsonl.gz`` (temporary files end in ``.tmp-<owner>-<random>``).
* A temporary file is removed only when its owner holds no live lease on its interval (see ``lease``).
* An interval is committed only when its marker and its data file agree (query, compression, size),
  so a crash between the two steps reads as "not committed" and the rerun rewrites the interval.
* Reruns overwrite, never append; gzip output is deterministic, so a rerun writes identical bytes.

Everything here is synchronous and blocking; the async pipeline calls it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence, Set
from contextlib import closing
from datetime import timedelta
from typing import Any

import msgspec

from airflow_provider_slack_audit.client.response import EntryKey
from airflow_provider_slack_audit.ingest.retention import (
    check_object_lock,
    lock_object,
    lock_options,
    validate_retention,
)
from airflow_provider_slack_audit.ingest.windows import Interval, Window
from airflow_provider_slack_audit.version_compat import ObjectStoragePath

from . import _fs, layout
from ._fs import is_local, publication, remove_stale_temps_of, temp_sibling, write_small_file
from .commit import IntervalCommit, json_bytes, json_normalized
from .descriptor import DESCRIPTOR_NAME, prepare_destination
from .layout import PREFIX, Compression, parse_compression
from .lease_store import LeaseOwner, LeaseStore
from .ledger import Ledger, LedgerHead, manifest_fields, withdrawal_fields
from .manifest import (
    check_covers,
    iter_commit_lines,
    manifest_document,
    read_manifest,
    retract_window_manifest,
)
from .plan import DestinationLayout
from .writer import IntervalWriter

log = logging.getLogger(__name__)

_keys_decoder = msgspec.json.Decoder(EntryKey)


class Landing:
    """
    Lands intervals under ``destination`` following the landing contract (see the module docstring).

    On a local filesystem each file is written to a hidden temporary sibling and renamed into place,
    which is atomic. On object stores a rename is a copy plus a delete, so files are written to their
    final key directly: the object appears only when its upload completes (``ingest.stores`` says how
    on each store). ``level`` is the gzip level.
    """

    def __init__(
        self,
        destination: ObjectStoragePath | str,
        *,
        compression: Compression = "gzip",
        conn_id: str | None = None,
        level: int = 6,
        owner: LeaseOwner | None = None,
        retention: timedelta | None = None,
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
        self.compression: Compression = parse_compression(compression)
        if not 0 <= level <= 9:
            raise ValueError(f"gzip level {level} is outside 0..9; 6 is a good balance of speed and size")
        self.level = level
        self._local = is_local(self.destination)
        self._renames = publication(self.destination) == "rename"
        #: The run writing through this landing: its temporary files and leases carry its token.
        self.owner = owner or LeaseOwner.new()
        self._leases = LeaseStore(self.destination, self.owner)
        validate_retention(retention, str(self.destination))
        #: Write-once retention of data files, markers, manifests and ledger entries (see ``retention``).
        self.retention = retention
        self.ledger = Ledger(self.destination, lock_options=self.lock_options)
        #: The ledger entry of the last manifest this landing wrote (see ``ledger``), once it wrote one.
        self.ledger_head: LedgerHead | None = None
        self._descriptor_digest: str | None = None

    def __repr__(self) -> str:
        return f"Landing({str(self.destination)!r}, compression={self.compression!r})"

    # Planning -------------------------------------------------------------------------------------

    def prepare(self, window: Window, layout: DestinationLayout, *, record: bool = True) -> list[Interval]:
        """The intervals a run of ``window`` with ``layout`` lands here, once it is checked to fit.

        Blocking storage I/O before any request: the bucket's Object Lock when this landing keeps
        ``retention``, then the destination's descriptor and the data files landed in the partitions
        the window touches (see ``descriptor``). Raises :class:`DestinationConflictError` when the
        run would put events in a second final file. With ``record``, a destination without a
        descriptor gets one; without (the operator's check before it defers), nothing is written.
        """
        if layout.compression != self.compression:
            raise ValueError(
                f"layout compression {layout.compression!r} is not this landing's {self.compression!r}; "
                f"plan with the compression the files are written with"
            )
        if self.retention is not None:
            check_object_lock(self.destination)
        return prepare_destination(self.destination, window, layout, record=record)

    # Layout -----------------------------------------------------------------------------------------

    def relative_data_path(self, interval: Interval) -> str:
        """The data file's path relative to the destination (as markers and manifests record it)."""
        return layout.relative_data_path(interval, self.compression)

    def data_path(self, interval: Interval) -> ObjectStoragePath:
        return self.destination / self.relative_data_path(interval)

    def marker_path(self, interval: Interval) -> ObjectStoragePath:
        return self.destination / layout.relative_marker_path(interval)

    def manifest_path(self, window: Window) -> ObjectStoragePath:
        return self.destination / layout.relative_manifest_path(window)

    def lease_path(self, interval: Interval) -> ObjectStoragePath:
        """The interval's lease: a hidden sibling of its data file (see ``lease``)."""
        return self.destination / layout.relative_lease_path(interval)

    def manifest_lease_path(self, window: Window) -> ObjectStoragePath:
        """The lease a run holds while it writes the window's manifest."""
        manifest = self.manifest_path(window)
        return manifest.parent / layout.lease_name_of(manifest.name)

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
        if commit.query != json_normalized(query, "query"):
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

        A committed interval stays committed while it is rewritten: its old marker is removed only
        once the new data file is complete, right before the new file takes the final name (see
        :meth:`IntervalWriter.commit`), so a failed or interrupted rewrite leaves the old file and
        marker as they were. Temporary files a killed writer of this interval left behind are removed.
        """
        final = self.data_path(interval)
        temp = None
        if self._renames:
            final.parent.mkdir(parents=True, exist_ok=True)
            self._remove_stale_temps(interval)
            temp = temp_sibling(final, self.owner.token)
        return IntervalWriter(
            interval,
            final,
            relative=self.relative_data_path(interval),
            compression=self.compression,
            level=self.level,
            marker=self.marker_path(interval),
            write_marker=self._write_marker,
            temp=temp,
        )

    def committed_ids(self, commit: IntervalCommit) -> set[str]:
        """The ids in a committed interval's data file (verified against its marker while read)."""
        return {key.id for key in self.committed_keys(commit)}

    def committed_keys(self, commit: IntervalCommit) -> Iterator[EntryKey]:
        """The keys (``id``, ``date_create``) of a committed interval's entries, in file order (the
        file is verified against its marker while read)."""
        return map(_keys_decoder.decode, self.committed_lines(commit))

    def committed_entries(self, commit: IntervalCommit, ids: Set[str]) -> tuple[list[bytes], list[EntryKey]]:
        """The lines of a committed interval's data file whose id is in ``ids``, in file order, and
        their keys (``id``, ``date_create``); the file is verified against its marker while read."""
        lines: list[bytes] = []
        keys: list[EntryKey] = []
        for line in self.committed_lines(commit):
            key = _keys_decoder.decode(line)
            if key.id in ids:
                lines.append(bytes(line))
                keys.append(key)
        return lines, keys

    def committed_lines(self, commit: IntervalCommit) -> Iterator[bytes]:
        """The lines of a committed interval's data file, verified against its marker while read."""
        return iter_commit_lines(self.destination, commit)

    def _remove_stale_temps(self, interval: Interval) -> None:
        """Remove the interval's temporary files (either data format, marker) no live lease holder owns."""
        remove_stale_temps_of(
            self.data_path(interval),
            live_owner=lambda: self._leases.holder(self.lease_path(interval)),
            prefix=f"{PREFIX}{interval.key}.",
        )

    def write_manifest(
        self,
        window: Window,
        query: Mapping[str, Any],
        commits: Sequence[IntervalCommit],
        run: Mapping[str, Any] | None = None,
    ) -> ObjectStoragePath:
        """
        Write the window's manifest from its interval commits and return its path.

        Refuses commits that do not cover every second of the window exactly once, or that landed
        with another query or compression: a manifest is a promise that loading it loads the window.
        The manifest names the ledger head it is written after; right after it is written, its
        ledger entry is appended (see ``ledger``) and becomes :attr:`ledger_head`.
        """
        query = json_normalized(query, "query")
        ordered = sorted(commits, key=lambda commit: commit.interval)
        for commit in ordered:
            if commit.query != query or commit.compression != self.compression:
                raise ValueError(
                    f"interval {commit.interval.key} was committed with query {commit.query} and "
                    f"compression {commit.compression}, but the manifest is for query {query} and "
                    f"compression {self.compression}; re-ingest the window with one query"
                )
        check_covers(window, [commit.interval for commit in ordered])
        path = self.manifest_path(window)
        if self._local:
            path.parent.mkdir(parents=True, exist_ok=True)
        document = manifest_document(window, query, self.compression, str(self.destination), ordered, run)
        after = self.ledger.head()
        document["ledger_after"] = after.to_json()
        payload = json_bytes(document)
        self._write_document(path, payload, lambda: self._leases.holder(self.manifest_lease_path(window)))
        fields = manifest_fields(
            layout.relative_manifest_path(window), payload, document, self._descriptor_sha256()
        )
        self.ledger_head = self.ledger.append(fields, after=after)
        return path

    def withdraw_manifest(self, window: Window) -> None:
        """Withdraw the window's manifest before a rerun replaces a file it lists (blocking).

        The ledger records the withdrawal first, so a rerun that fails before it writes the new
        manifest reads as an unfinished rewrite, not as a manifest removed and a file replaced.
        """
        path = self.manifest_path(window)
        if not path.exists():
            return
        fields = withdrawal_fields(
            layout.relative_manifest_path(window), window.to_json(), self._descriptor_sha256()
        )
        self.ledger_head = self.ledger.append(fields)
        retract_window_manifest(path)

    def lock_options(self) -> dict[str, Any]:
        """The extra open arguments that lock an evidence file written now (empty without retention)."""
        return lock_options(self.retention)

    def _write_document(
        self, path: ObjectStoragePath, payload: bytes, live_owner: Callable[[], str | None]
    ) -> None:
        """A marker or a manifest: atomically, and under Object Lock when retention is on."""
        if self.retention is None:
            write_small_file(path, payload, owner=self.owner.token, live_owner=live_owner)
            return
        with closing(_fs.open_file(path, "wb", **self.lock_options())) as file:  # an object store: atomic PUT
            file.write(payload)

    def _descriptor_sha256(self) -> str | None:
        # The descriptor is never rewritten, so it is read once.
        if self._descriptor_digest is None:
            try:
                raw = (self.destination / DESCRIPTOR_NAME).read_bytes()
            except FileNotFoundError:
                return None
            self._descriptor_digest = hashlib.sha256(raw).hexdigest()
        return self._descriptor_digest

    def _write_marker(self, commit: IntervalCommit) -> None:
        """Commit a published data file (its writer calls this): the marker, then remove the file in
        the other compression format (one data file per interval).

        A failure here leaves a complete data file without a marker: not committed, rewritten next run.
        """
        if self.retention is not None:  # the data file is locked before its marker commits it
            lock_object(self.destination / commit.path, self.retention)
        self._write_document(
            self.marker_path(commit.interval),
            json_bytes(commit.to_json()),
            lambda: self._leases.holder(self.lease_path(commit.interval)),
        )
        other_format: Compression = None if self.compression == "gzip" else "gzip"
        (self.destination / layout.relative_data_path(commit.interval, other_format)).unlink(missing_ok=True)

    read_manifest = staticmethod(read_manifest)


__all__ = ["Landing"]
