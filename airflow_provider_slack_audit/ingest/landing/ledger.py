"""The ledger: an append-only, digest-chained record of every window manifest a destination committed.

    <dest>/_ledger/000000000001.json     the first manifest written (after the ledger began)
    <dest>/_ledger/000000000002.json     the next one, naming the SHA-256 of entry 1's exact bytes
    ...

A manifest proves what its window holds; nothing proves a manifest that is gone. Each entry records
what ``verify`` needs when the manifest has been removed with its files: the manifest's path and
SHA-256, the window, each interval's data file, marker, SHA-256 and count, the window's events and id
digest, and the SHA-256 of the destination descriptor (which is never rewritten, so an edit shows).
The manifest itself names the ledger head it was written after (``ledger_after``), so removing the
whole ledger shows while any manifest remains; the landing task's summary carries the new head as an
anchor kept outside the destination, against which a removed tail shows too.

An entry is created exclusively (:func:`~._fs.create_exclusively`: a hard link locally, the store's
precondition remotely), so two runs never write one sequence number: the loser reads the entry that
won and tries the next number. Entries are never rewritten; a rerun that rewrites a manifest appends a
new entry, and the latest entry for a manifest path is the one its current bytes must match.

Finding the head lists ``_ledger/`` once per window (on an object store one LIST call per 1,000
entries) and reads the newest entry; appending is one small exclusive write.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from airflow_provider_slack_audit.ingest.windows import Interval
from airflow_provider_slack_audit.version_compat import ObjectStoragePath

from . import layout
from ._fs import create_exclusively, create_if_absent, is_local, names_in, open_file
from .commit import FORMAT_VERSION, json_bytes

LEDGER_DIR = "_ledger"
LEDGER_KIND = "slack_audit_ledger_entry"
_DIGITS = 12  # a window a minute for 1.9 million years


@dataclass(frozen=True)
class LedgerHead:
    """The newest entry of a ledger: its sequence number and the SHA-256 of its bytes (0/None: empty)."""

    seq: int
    sha256: str | None

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "sha256": self.sha256}

    @classmethod
    def parse(cls, text: str) -> LedgerHead:
        """``SEQ:SHA256`` (as a task summary's ``ledger`` reads), for ``verify --expect-ledger``."""
        seq, colon, digest = text.partition(":")
        digest = digest.strip().lower()
        if not colon or not seq.strip().isdigit() or int(seq) < 1 or len(digest) != 64:
            raise ValueError(
                f"{text!r} is not SEQ:SHA256 (a positive entry number and a 64-digit hex SHA-256), "
                "e.g. the ledger head a landing task's summary reports"
            )
        try:
            int(digest, 16)
        except ValueError:
            raise ValueError(f"{digest!r} is not a hex SHA-256") from None
        return cls(int(seq), digest)


EMPTY = LedgerHead(0, None)


def entry_name(seq: int) -> str:
    return f"{seq:0{_DIGITS}d}.json"


def relative_entry_path(seq: int) -> str:
    return f"{LEDGER_DIR}/{entry_name(seq)}"


def parse_entry_name(name: str) -> int | None:
    """The sequence number an entry's file name holds, or None when it is not an entry's name."""
    stem, dot, suffix = name.partition(".")
    if dot and suffix == "json" and len(stem) == _DIGITS and stem.isdigit() and int(stem) > 0:
        return int(stem)
    return None


def sha256(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def manifest_fields(
    relative_manifest: str, payload: bytes, document: Mapping[str, Any], descriptor_sha256: str | None
) -> dict[str, Any]:
    """What an entry records of one manifest (its exact bytes and its parsed ``document``)."""
    intervals = []
    for item in document["intervals"]:
        interval = Interval.from_json(item)
        intervals.append(
            {
                **interval.to_json(),
                "path": item["path"],
                "marker": layout.relative_marker_path(interval),
                "sha256": item["sha256"],
                "count": item["count"],
            }
        )
    return {
        "descriptor_sha256": descriptor_sha256,
        "manifest": {"path": relative_manifest, "sha256": sha256(payload)},
        "window": document["window"],
        "events": document["events"],
        "id_digest": document.get("id_digest"),
        "intervals": intervals,
    }


def withdrawal_fields(
    relative_manifest: str, window: Mapping[str, Any], descriptor_sha256: str | None
) -> dict[str, Any]:
    """What an entry records when a rerun withdraws a window's manifest before it rewrites a file.

    Without it a rewrite that fails part-way would leave a landed file changed and its manifest
    gone, which reads as tampering; with it, ``verify`` names the unfinished rewrite instead.
    """
    return {
        "descriptor_sha256": descriptor_sha256,
        "manifest": {"path": relative_manifest, "sha256": None},
        "withdrawn": True,
        "window": dict(window),
        "events": None,
        "id_digest": None,
        "intervals": [],
    }


class Ledger:
    """The ledger under one destination (blocking calls; the pipeline runs them in a thread)."""

    def __init__(
        self,
        destination: ObjectStoragePath,
        *,
        lock_options: Callable[[], Mapping[str, Any]] | None = None,
    ) -> None:
        self.destination = destination
        self.directory = destination / LEDGER_DIR
        # Write-once retention (see ``retention``): the open arguments that lock an entry written now.
        self._lock_options = lock_options

    def entries(self) -> list[int]:
        """The sequence numbers present, ascending (fresh from the store: listings are cached)."""
        return sorted(seq for seq in map(parse_entry_name, self.names()) if seq is not None)

    def names(self) -> list[str]:
        """Every file name under ``_ledger/`` (entries, and whatever else is there)."""
        return names_in(self.directory)

    def read(self, seq: int) -> bytes:
        """An entry's exact bytes; FileNotFoundError when it is not there."""
        with closing(open_file(self.directory / entry_name(seq), "rb")) as file:
            return file.read()

    def head(self) -> LedgerHead:
        """The newest entry present (EMPTY for a ledger not begun)."""
        seqs = self.entries()
        if not seqs:
            return EMPTY
        return LedgerHead(seqs[-1], sha256(self.read(seqs[-1])))

    def append(self, fields: Mapping[str, Any], *, after: LedgerHead | None = None) -> LedgerHead:
        """Create the entry following ``after`` (default: the head now) and return the new head.

        When another run created that number first, its entry becomes the one to follow and the
        next number is tried: entries are never overwritten, and each names the bytes before it.
        """
        head = after if after is not None else self.head()
        while True:
            seq = head.seq + 1
            payload = json_bytes(
                {
                    "kind": LEDGER_KIND,
                    "version": FORMAT_VERSION,
                    "seq": seq,
                    "prev_sha256": head.sha256,
                    "recorded_at": datetime.now(timezone.utc).isoformat(),
                    **fields,
                }
            )
            if self._create(seq, payload):
                return LedgerHead(seq, sha256(payload))
            head = LedgerHead(seq, sha256(self.read(seq)))

    def _create(self, seq: int, payload: bytes) -> bool:
        path = self.directory / entry_name(seq)
        if is_local(path):
            path.parent.mkdir(parents=True, exist_ok=True)
        options = self._lock_options() if self._lock_options is not None else {}
        if options:
            # create_exclusively's conditional write on S3 (If-None-Match: *), with the lock's headers.
            try:
                with closing(open_file(path, "xb", **options)) as file:
                    file.write(payload)
            except FileExistsError:
                return False
            return True
        created = create_exclusively(path, payload)
        if created is not None:  # every store the landing accepts
            return created
        # Any other store: written unless present, and the read-back settles a race.
        return create_if_absent(path, payload) and self.read(seq) == payload


def read_entry(payload: bytes) -> dict[str, Any]:
    """An entry's document; ValueError naming what is wrong when it is not one."""
    try:
        document = json.loads(payload)
    except ValueError as error:
        raise ValueError(f"not JSON ({error})") from None
    if not isinstance(document, dict) or document.get("kind") != LEDGER_KIND:
        kind = document.get("kind") if isinstance(document, dict) else type(document).__name__
        raise ValueError(f"kind {kind!r} is not {LEDGER_KIND!r}")
    for name in ("seq", "prev_sha256", "manifest", "window", "intervals"):
        if name not in document:
            raise ValueError(f"field {name!r} is missing")
    return document


__all__ = [
    "EMPTY",
    "LEDGER_DIR",
    "LEDGER_KIND",
    "Ledger",
    "LedgerHead",
    "entry_name",
    "manifest_fields",
    "parse_entry_name",
    "read_entry",
    "relative_entry_path",
]
