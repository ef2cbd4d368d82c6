"""Lease files and owner records: who holds an interval, and whether that run is still alive.

One lease per interval a run reads (see ``lease`` for why), one owner record per run:

    <dest>/dt=2026-01-04/.slack_audit_<interval.key>.lease     {"owner", "host", "pid", "acquired_at", ...}
    <dest>/_leases/.<owner>.owner.json                           {"owner", ..., "renewals", "renewed_at"}

The owner record is rewritten every ``ttl / 3`` (a renewal counter
goes up each time): one write per run keeps all its leases alive.

Liveness never compares one host's clock with another's: a lease is *stale*, and taken over, once
its record is gone or this run has watched it, on its **own monotonic clock**, stay unchanged for
longer than ``ttl`` (an unreadable lease file is watched by its bytes), or at once when its writer
was on this host and its process is gone. docs/concepts/guarantees.md states the whole protocol.

A lease is created exclusively (``_fs.create_exclusively``); on a store without a conditional write
(refused by the destination check, reached directly) it is written unless present, then read back
and kept only if it names this owner. Temporary files name their owner (``_fs.owner_of_temp``), so
a writer removes another's only when that owner holds no live lease on it. Everything here is
synchronous and blocking; :class:`~.lease.RunLeases` calls it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from datetime import datetime, timezone
from typing import Any

from airflow_provider_slack_audit.version_compat import ObjectStoragePath

from ._fs import DEFAULT_TTL_SECONDS, create_exclusively, is_local, write_small_file

# One logger for leases, whichever of their two modules writes (``lease`` is the one users know).
log = logging.getLogger(__name__.rpartition(".")[0] + ".lease")

LEASES_DIR = "_leases"
OWNER_SUFFIX = ".owner.json"


def _pid_namespace() -> str:
    """The pid namespace of this process (Linux), so a pid is only compared inside its namespace."""
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return ""


@dataclass(frozen=True)
class LeaseOwner:
    """One run: who holds its leases and writes its temporary files."""

    host: str
    pid: int
    nonce: str
    pid_namespace: str = ""

    @classmethod
    def new(cls) -> LeaseOwner:
        return cls(socket.gethostname(), os.getpid(), secrets.token_hex(6), _pid_namespace())

    @property
    def token(self) -> str:
        """The owner id in file names: ``<pid>-<random>`` (filename-safe, unique per run)."""
        return f"{self.pid}-{self.nonce}"


def _process_gone(document: dict[str, Any]) -> bool:
    """Whether the document's writer ran on this host, in this pid namespace, and has exited."""
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows
        return False
    if document.get("host") != socket.gethostname() or document.get("pid_namespace") != _pid_namespace():
        return False
    pid = document.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, but another user's process
        return False
    return False


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat()


@dataclass
class Sighting:
    """What one run has seen of another run's owner record (or of an unreadable lease file), timed
    on the looking run's own monotonic clock: nothing in it comes from the other host's clock."""

    content: bytes
    first_seen: float
    changed_at: float
    renewals: int = 0

    def silent_for(self, now: float) -> float:
        """Seconds since this run last saw the content change (or first saw it)."""
        return now - self.changed_at


@dataclass(eq=False, repr=False)
class LeaseStore:
    """Lease files and owner records under one destination, for one owner (blocking calls)."""

    destination: ObjectStoragePath
    owner: LeaseOwner
    _: KW_ONLY
    ttl: float = DEFAULT_TTL_SECONDS
    clock: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        #: Whether the destination is a local filesystem (atomic renames, ``O_EXCL``).
        self.local = is_local(self.destination)
        self._acquired_at = self.clock()
        self._renewals = 0
        # Keyed by the path looked at: an owner record, or a lease file that names no owner.
        self._sightings: dict[str, Sighting] = {}

    # Owner records ----------------------------------------------------------------------------------

    def owner_path(self, token: str | None = None) -> ObjectStoragePath:
        return self.destination / LEASES_DIR / f".{token or self.owner.token}{OWNER_SUFFIX}"

    def _document(self) -> dict[str, Any]:
        return {
            "owner": self.owner.token,
            "host": self.owner.host,
            "pid": self.owner.pid,
            "pid_namespace": self.owner.pid_namespace,
            "acquired_at": _iso(self._acquired_at),
        }

    def renew(self) -> None:
        """Write (or rewrite) this owner's record; every write differs from the last (``renewals``),
        which is what other runs watch. ``expires_at`` is for runs of earlier versions only."""
        self._renewals += 1
        now = self.clock()
        document = {
            **self._document(),
            "renewals": self._renewals,
            "renewed_at": _iso(now),
            "ttl_seconds": self.ttl,
            "expires_at": _iso(now + self.ttl),
        }
        path = self.owner_path()
        if self.local:
            os.makedirs(os.path.dirname(path.path), exist_ok=True)
        write_small_file(path, json.dumps(document, sort_keys=True).encode(), owner=self.owner.token)

    def retire(self) -> None:
        """Delete this owner's record: every lease still naming it is stale from now on."""
        path = self.owner_path()
        with contextlib.suppress(FileNotFoundError):
            path.fs.rm_file(path.path)

    def owner_live(self, token: str) -> bool:
        """Whether the run ``token`` names is alive: its record exists, its process is not known to
        be gone, and this run has not watched the record stay unchanged for longer than the ttl."""
        path = self.owner_path(token)
        try:
            raw = self._read_bytes(path)
        except FileNotFoundError:
            self._sightings.pop(str(path), None)
            return False
        document = _document_of(raw)
        if document is None or _process_gone(document):
            return False
        return self._looks_alive(str(path), raw)

    def sighting(self, lease: ObjectStoragePath, holder: str) -> Sighting | None:
        """What this run has seen of ``holder``'s record (of ``lease`` itself for the holder ``"?"``)."""
        key = str(lease) if holder == "?" else str(self.owner_path(holder))
        return self._sightings.get(key)

    def _looks_alive(self, key: str, content: bytes) -> bool:
        """Record what is seen at ``key`` now; True unless it has not changed for longer than the ttl."""
        now = self.monotonic()
        seen = self._sightings.get(key)
        if seen is None:
            seen = self._sightings[key] = Sighting(content, first_seen=now, changed_at=now)
        elif seen.content != content:
            seen.content, seen.changed_at, seen.renewals = content, now, seen.renewals + 1
        return seen.silent_for(now) <= self.ttl

    # Leases ---------------------------------------------------------------------------------------

    def holder(self, lease: ObjectStoragePath) -> str | None:
        """The token of the live owner holding ``lease``, or None when it is free or stale.

        A lease file that cannot be read (its writer died between creating and filling it) is held by
        nobody known (``"?"``): live until this run has seen it unchanged for longer than the ttl.
        """
        return self._judge(lease)[0]

    def _judge(self, lease: ObjectStoragePath) -> tuple[str | None, bytes | None]:
        """(the live holder's token or None, the lease's bytes as judged or None when absent)."""
        try:
            raw = self._read_bytes(lease)
        except FileNotFoundError:
            return None, None
        token = _token_of(raw)
        if token is None:
            return ("?" if self._looks_alive(str(lease), raw) else None), raw
        if token == self.owner.token or self.owner_live(token):
            return token, raw
        return None, raw

    def try_acquire(self, lease: ObjectStoragePath) -> str | None:
        """Take ``lease`` for this owner; return None when held now, else the live holder's token.

        A stale lease is taken over: moved aside (locally an atomic rename, so of two runs taking
        it over only one succeeds) or, on object stores, deleted, then created anew atomically.
        """
        holder, judged = self._judge(lease)
        if holder == self.owner.token:
            return None
        if holder is not None:
            return holder
        if judged is not None:  # stale: take it over, unless another run did since it was judged
            removed, stale_owner = self._remove_stale(lease, judged)
            if not removed:
                return self.holder(lease) or "?"
            if stale_owner is not None and not self.owner_live(stale_owner):
                record = self.owner_path(stale_owner)  # a dead run's: nothing it holds is live any more
                with contextlib.suppress(FileNotFoundError):
                    record.fs.rm_file(record.path)
        if self._create(lease):
            return None
        return self.holder(lease) or "?"

    def release(self, lease: ObjectStoragePath) -> None:
        """Delete ``lease`` if this owner holds it (another owner's lease is left alone)."""
        try:
            raw = self._read_bytes(lease)
        except FileNotFoundError:
            return
        if _token_of(raw) == self.owner.token:
            with contextlib.suppress(FileNotFoundError):
                lease.fs.rm_file(lease.path)

    def _create(self, lease: ObjectStoragePath) -> bool:
        payload = json.dumps(self._document(), sort_keys=True).encode()
        created = create_exclusively(lease, payload)
        if created is not None:
            return created
        log.debug("%s has no conditional write; leasing %s by write and read-back", lease.fs, lease)
        if lease.fs.exists(lease.path):
            return False
        with lease.fs.open(lease.path, "wb") as file:
            file.write(payload)
        return _token_of(self._read_bytes(lease)) == self.owner.token

    def _remove_stale(self, lease: ObjectStoragePath, judged: bytes) -> tuple[bool, str | None]:
        """Remove the lease judged stale from ``judged`` (its bytes then): (False, None) when it
        changed since (another run took it over), else (True, the stale lease's owner)."""
        if not self.local:
            try:
                current = self._read_bytes(lease)
            except FileNotFoundError:
                return True, None
            if current != judged:
                return False, None
            # Best effort: a run taking it over between this read and the delete loses its lease (a
            # narrow race of two takers; the files themselves stay atomic either way).
            with contextlib.suppress(FileNotFoundError):
                lease.fs.rm_file(lease.path)
            return True, _token_of(judged)
        aside = f"{lease.path}.stale-{self.owner.token}"
        try:
            os.rename(lease.path, aside)
        except FileNotFoundError:
            return True, None
        try:
            with open(aside, "rb") as file:
                moved = file.read()
            if moved != judged:  # another run took it over between the check and the rename: put back
                with contextlib.suppress(OSError):  # exists already: that run's lease stands
                    os.link(aside, lease.path)
                return False, None
            return True, _token_of(judged)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(aside)

    # Storage helpers -------------------------------------------------------------------------------

    def _read_bytes(self, path: ObjectStoragePath) -> bytes:
        if self.local:
            with open(path.path, "rb") as file:
                return file.read()
        data: bytes = path.fs.cat_file(path.path)
        return data


def _document_of(raw: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(raw)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _token_of(raw: bytes) -> str | None:
    document = _document_of(raw)
    token = document.get("owner") if document is not None else None
    return token if isinstance(token, str) and token else None
