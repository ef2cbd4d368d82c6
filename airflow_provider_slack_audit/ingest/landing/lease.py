"""Leases: at most one live writer per interval under a destination, across processes and hosts.

Two runs of one window can overlap (a manual re-run racing the scheduled run, two DAGs on one base
path, a trigger that briefly runs twice). Each interval a run is about to read gets a **lease**, a
small hidden file beside its data file, created atomically so only one run can hold it:

    <dest>/dt=2026-01-04/.slack_audit_<interval.key>.lease     {"owner", "host", "pid", "acquired_at", ...}
    <dest>/_leases/.<owner>.owner.json                           {"owner", ..., "renewals", "renewed_at"}

The second file is the **owner record** of one run, which the run rewrites every ``ttl / 3`` while it
works (a renewal counter in it goes up each time), so one write per run keeps all its interval leases
alive however many intervals it holds.

Liveness never compares one host's clock with another's. A run judging another run's lease reads
that run's owner record and remembers, on its **own monotonic clock**, when it first saw it and when
it last saw it change. The lease is *live* while the record exists and this run has seen it change
(or first looked at it) no more than ``ttl`` ago; it is *stale*, and taken over, once the record is
gone or this run has watched it stay unchanged for longer than ``ttl``. A live run renews three times
per ttl, so it is never taken over however far its wall clock is from the waiter's; a dead run is
taken over about one ttl after a waiting run first looks, however far ahead its clock was. (The
record's ``expires_at`` is still written, for runs of earlier versions, which judge by it; nothing
here reads it.) On the host that wrote it, a lease whose process is gone (a ``kill -9``; same host
name and pid namespace, pid no longer running) is stale at once. A lease file that cannot be read
(its writer died while creating it) is judged the same way, by its bytes. A run deletes its leases,
then its owner record, when it is done, failed or cancelled.

Atomic create (``create_exclusively``): locally a complete temp hard-linked into place; on S3, GCS
and Azure the API's precondition (fsspec's ``"xb"`` mode: ``If-None-Match: *``,
``ifGenerationMatch=0``); the store decides, from the table in ``ingest.stores``. Elsewhere (a store
the destination check refuses, reached directly) a best-effort fallback: write unless the lease
exists, then read it back and keep it only if it names this owner.

Temporary files carry their owner in their name (``.<name>.tmp-<owner>-<random>``), so a writer
removes another's temporary file only when that owner holds no live lease on it (see
:func:`owner_of_temp`). Everything here but :class:`RunLeases` is synchronous and blocking; the
pipeline calls it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import TracebackType
from typing import TYPE_CHECKING, Any

from airflow_provider_slack_audit.ingest.stores import LOCAL, store_for
from airflow_provider_slack_audit.ingest.windows import Interval
from airflow_provider_slack_audit.version_compat import ObjectStoragePath

from ..errors import LeaseWaitTimeout
from .layout import TEMP_MARK

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from .destination import Landing

log = logging.getLogger(__name__)

LEASES_DIR = "_leases"
LEASE_SUFFIX = ".lease"
OWNER_SUFFIX = ".owner.json"
DEFAULT_TTL_SECONDS = 120.0
# Long enough for any run that is alive (it renews), short enough that a stuck wait ends the try
# with a transient error Airflow retries, instead of holding a worker slot all day.
DEFAULT_MAX_WAIT_SECONDS = 3600.0
_LOCAL_PROTOCOLS = LOCAL.schemes
# memory:// (tests only): its "xb" checks and creates in two steps, so threads take turns.
_PROCESS_CREATE_LOCK = threading.Lock()


@dataclass(frozen=True)
class LeaseSettings:
    """How long leases live and how a run waits for one; every figure is seconds.

    ``ttl`` is how long a waiting run watches another run's owner record stay unchanged before it
    takes that run's leases over. ``monotonic`` is the waiting run's own clock for that watch (never
    compared with another host's); ``sleep`` is how it waits between polls (tests pass a pair that
    takes no time). ``clock`` (wall-clock time) only stamps the records, for people reading them.
    Renewals use ``renew_every`` (default ``ttl / 3``) on the event loop's own clock; a waiting
    run sees one at most ``max_poll`` after it lands, so their sum must stay below the ttl.
    """

    ttl: float = DEFAULT_TTL_SECONDS
    renew_every: float | None = None
    max_wait: float = DEFAULT_MAX_WAIT_SECONDS
    first_poll: float = 0.05
    max_poll: float = 5.0
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    monotonic: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        for name in ("ttl", "max_wait", "first_poll", "max_poll"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"lease {name} must be a positive number of seconds, got {value!r}")
        if self.renew_every is not None and not 0 < self.renew_every < self.ttl:
            raise ValueError(
                f"lease renew_every {self.renew_every!r} must be positive and below the ttl {self.ttl}, "
                "or a lease expires between renewals"
            )
        if self.renew_interval + self.max_poll >= self.ttl:
            # A waiter sees a renewal up to max_poll after it lands: between two it sees, a live run
            # must never look silent for a whole ttl.
            raise ValueError(
                f"lease renewals every {self.renew_interval:g} s seen up to max_poll {self.max_poll:g} s "
                f"late could leave a live run looking silent for the whole ttl {self.ttl:g} s, and "
                "taken over; renew more often, poll more often or raise the ttl"
            )

    @property
    def renew_interval(self) -> float:
        return self.renew_every if self.renew_every is not None else self.ttl / 3


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


def owner_of_temp(name: str) -> str | None:
    """The owner token in a temporary file's name (``.<name>.tmp-<owner>-<random>``), if it has one."""
    _, mark, tail = name.rpartition(TEMP_MARK)
    if not mark:
        return None
    owner, dash, _ = tail.rpartition("-")
    return owner if dash and owner else None


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


class LeaseStore:
    """Lease files and owner records under one destination, for one owner (blocking calls)."""

    def __init__(
        self,
        destination: ObjectStoragePath,
        owner: LeaseOwner,
        *,
        ttl: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.destination = destination
        self.owner = owner
        self.ttl = ttl
        self.clock = clock
        self.monotonic = monotonic
        self._local = destination.protocol in _LOCAL_PROTOCOLS
        self._acquired_at = clock()
        self._renewals = 0
        # Keyed by the path looked at: an owner record, or a lease file that names no owner.
        self._sightings: dict[str, Sighting] = {}

    @property
    def local(self) -> bool:
        """Whether the destination is a local filesystem (atomic renames, ``O_EXCL``)."""
        return self._local

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
        payload = json.dumps(document, sort_keys=True).encode()
        if not self._local:
            with path.fs.open(path.path, "wb") as file:
                file.write(payload)
            return
        os.makedirs(os.path.dirname(path.path), exist_ok=True)
        temp = f"{path.path}{TEMP_MARK}{self.owner.token}-{secrets.token_hex(4)}"
        try:
            with open(temp, "wb") as file:
                file.write(payload)
            os.replace(temp, path.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise

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

    def _lease_payload(self) -> bytes:
        return json.dumps(self._document(), sort_keys=True).encode()

    def _create(self, lease: ObjectStoragePath) -> bool:
        payload = self._lease_payload()
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
        if not self._local:
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
        if self._local:
            with open(path.path, "rb") as file:
                return file.read()
        data: bytes = path.fs.cat_file(path.path)
        return data


def create_exclusively(path: ObjectStoragePath, payload: bytes) -> bool | None:
    """Write ``path`` only if it does not exist: True when this call created it, False when it
    existed, None when the store has no conditional write (the caller decides by reading back).

    How depends on the store (``ingest.stores``), never on whether its filesystem accepts mode
    ``"xb"``: fsspec's generic buffered file takes ``"xb"`` without looking. Locally a complete
    temporary sibling is hard-linked into place (atomic, never seen half written; ``O_EXCL`` where
    hard links are not supported); on S3, GCS and Azure an exclusive open, which their filesystems
    send with the API's precondition (``If-None-Match: *``, ``ifGenerationMatch=0``,
    ``If-None-Match: *``); on ``memory://`` (tests) the same under a process-wide lock.
    Any other store: None.
    """
    store = store_for(path.protocol)
    if store is None:
        return None
    if store.exclusive_create == "link":
        return _link_exclusively(path, payload)
    if store.exclusive_create == "process":
        with _PROCESS_CREATE_LOCK:
            return _open_exclusively(path, payload)
    return _open_exclusively(path, payload)


def _open_exclusively(path: ObjectStoragePath, payload: bytes) -> bool | None:
    # One request with the precondition: s3fs's PutObject, gcsfs's single-request upload (its "xb"
    # file starts a resumable upload instead), adlfs's Put Blob.
    try:
        path.fs.pipe_file(path.path, payload, mode="create")
    except FileExistsError:
        return False
    except (ValueError, NotImplementedError, TypeError):
        log.warning("%s refused an exclusive create of %s; upgrade its filesystem package", path.fs, path)
        return None
    return True


def create_if_absent(path: ObjectStoragePath, payload: bytes) -> bool:
    """Write ``path`` only if it does not exist; True when this call created it.

    Exclusive where the store has a conditional write (:func:`create_exclusively`); elsewhere (a
    store the landing refuses) written unless present, so the caller must read it back to know.
    """
    created = create_exclusively(path, payload)
    if created is not None:
        return created
    if path.exists():
        return False
    with closing(path.fs.open(path.path, "wb")) as file:
        file.write(payload)
    return True


def _link_exclusively(path: ObjectStoragePath, payload: bytes) -> bool:
    os.makedirs(os.path.dirname(path.path), exist_ok=True)
    temp = f"{os.path.dirname(path.path)}/.{path.name}{TEMP_MARK}{os.getpid()}-{secrets.token_hex(4)}"
    try:
        with open(temp, "wb") as file:
            file.write(payload)
        try:
            os.link(temp, path.path)
        except FileExistsError:
            return False
        except OSError:  # no hard links here: an exclusive create of a small file
            try:
                descriptor = os.open(path.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(descriptor, "wb") as file:
                file.write(payload)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


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


@dataclass
class RunLeases:
    """The leases one run holds on one destination: claimed, kept alive while held, released at the end.

    Use as ``async with``: entering writes the owner record and starts renewing it; leaving (also on
    an error or cancellation) releases every lease still held and deletes the record.
    """

    landing: Landing
    settings: LeaseSettings = field(default_factory=LeaseSettings)
    logger: logging.Logger = log
    store: LeaseStore = field(init=False)
    _held: dict[str, ObjectStoragePath] = field(default_factory=dict, init=False)
    _heartbeat: asyncio.Task[None] | None = field(default=None, init=False)
    # A renewal thread still running when the run ends must not write the record back after it is gone.
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _ended: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.store = LeaseStore(
            self.landing.destination,
            self.landing.owner,
            ttl=self.settings.ttl,
            clock=self.settings.clock,
            monotonic=self.settings.monotonic,
        )

    async def __aenter__(self) -> RunLeases:
        await asyncio.to_thread(self.store.renew)
        self._heartbeat = asyncio.ensure_future(self._renew_forever())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        if exc_type is None or not issubclass(exc_type, asyncio.CancelledError):
            await asyncio.to_thread(self.release_now)
        elif self.store.local:
            self.release_now()  # cancelled: no more awaiting; a few local deletes
        else:  # cancelled, and the deletes are network calls: in a thread, not waited for
            asyncio.get_running_loop().run_in_executor(None, self.release_now)

    async def _renew_forever(self) -> None:
        # Timed waits on an event that is never set: the loop's own timer, whatever sleep tests stub.
        never = asyncio.Event()
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(never.wait(), self.settings.renew_interval)
            try:
                await asyncio.to_thread(self._renew)
            except Exception:  # the next renewal tries again; a lapsed record makes leases stale
                self.logger.warning("Could not renew the leases of %s", self.store.owner.token, exc_info=True)

    def _renew(self) -> None:
        with self._lock:
            if not self._ended:
                self.store.renew()

    def release_now(self) -> None:
        """Release every lease held, then delete the owner record (blocking)."""
        with self._lock:
            self._ended = True
            self._release_all()

    def _release_all(self) -> None:
        held, self._held = list(self._held.values()), {}
        for path in held:
            try:
                self.store.release(path)
            except Exception:
                self.logger.warning("Could not release the lease %s", path, exc_info=True)
        try:
            self.store.retire()
        except Exception:
            self.logger.warning(
                "Could not delete the owner record of %s", self.store.owner.token, exc_info=True
            )

    async def claim(self, intervals: Sequence[Interval]) -> tuple[list[Interval], list[Interval]]:
        """Lease the longest prefix of ``intervals`` no live run holds; return it and the rest.

        When the first interval is leased by a live run, wait (polling with backoff, no request) until
        that lease is released or goes stale, then try again. Every run claims in ascending order and
        holds nothing while it waits, so two runs never wait for each other, and a run that started
        second finds the first interval taken and claims nothing rather than a scattered half.
        """
        waited = 0.0
        while True:
            claimed, holder = await asyncio.to_thread(self._claim_prefix, intervals)
            if claimed or not intervals:
                return claimed, list(intervals[len(claimed) :])
            waited = await self._wait_for(self.landing.lease_path(intervals[0]), holder, waited)

    async def release(self, intervals: Sequence[Interval]) -> None:
        await asyncio.to_thread(self._release, [self.landing.lease_path(interval) for interval in intervals])

    @asynccontextmanager
    async def holding(self, lease: ObjectStoragePath) -> AsyncIterator[None]:
        """Hold one lease (e.g. a window manifest's) for the ``async with`` block, waiting for it first."""
        waited = 0.0
        while (holder := await asyncio.to_thread(self._acquire, lease)) is not None:
            waited = await self._wait_for(lease, holder, waited)
        try:
            yield
        finally:
            await asyncio.to_thread(self._release, [lease])

    def _acquire(self, lease: ObjectStoragePath) -> str | None:
        holder = self.store.try_acquire(lease)
        if holder is None:
            self._held[str(lease)] = lease
        return holder

    def _claim_prefix(self, intervals: Sequence[Interval]) -> tuple[list[Interval], str | None]:
        claimed: list[Interval] = []
        for interval in intervals:
            holder = self._acquire(self.landing.lease_path(interval))
            if holder is not None:
                return claimed, holder
            claimed.append(interval)
        return claimed, None

    def _release(self, leases: Sequence[ObjectStoragePath]) -> None:
        for lease in leases:
            self._held.pop(str(lease), None)
            self.store.release(lease)

    async def _wait_for(self, lease: ObjectStoragePath, holder: str | None, waited: float) -> float:
        """Sleep until ``lease`` is free or stale (or ``max_wait`` is spent); return the total waited.

        Each poll reads the holder's owner record: a renewal seen keeps it live, a ttl without one
        (on this run's monotonic clock) makes it stale, and the next claim takes it over.
        """
        settings = self.settings
        self.logger.info(
            "%s is leased by run %s: waiting (up to %.0f s) for it to finish, or to show no renewal "
            "for %.0f s",
            lease.name,
            holder,
            settings.max_wait - waited,
            settings.ttl,
        )
        delay = settings.first_poll
        while True:
            if waited >= settings.max_wait:
                raise LeaseWaitTimeout(self._still_leased(lease, holder or "?", waited))
            pause = min(delay, settings.max_poll, settings.max_wait - waited)
            await settings.sleep(pause)
            waited += pause
            delay *= 2
            current = await asyncio.to_thread(self.store.holder, lease)
            if current in (None, self.store.owner.token):
                return waited
            holder = current

    def _still_leased(self, lease: ObjectStoragePath, holder: str, waited: float) -> str:
        """The wait error's message: what this run saw of the holder, not what its clock claims."""
        settings = self.settings
        head = (
            f"{lease} was still leased by run {holder} after waiting {waited:.0f} s "
            f"(max_wait {settings.max_wait:.0f} s); "
        )
        seen = self.store.sighting(lease, holder)
        now = self.store.monotonic()
        watched = now - seen.first_seen if seen is not None else 0.0
        if seen is not None and seen.renewals:
            return head + (
                f"this run saw its owner record renewed {seen.renewals} times in the {watched:.0f} s it "
                f"watched, last {seen.silent_for(now):.0f} s ago: that run is alive and landing the same "
                "interval. Retry later, or let the other run finish"
            )
        if holder == "?":
            seen_now = f"the lease file unreadable and unchanged for the {watched:.0f} s it watched"
            rule = f"such a lease is taken over once unchanged for {settings.ttl:.0f} s"
        else:
            seen_now = f"no renewal of its owner record in the {watched:.0f} s it watched"
            rule = f"a run is taken over once none is seen for {settings.ttl:.0f} s"
        return head + (
            f"this run saw {seen_now}; {rule} (the lease ttl). Retry later, or set max_wait above the ttl"
        )


__all__ = [
    "DEFAULT_MAX_WAIT_SECONDS",
    "DEFAULT_TTL_SECONDS",
    "LEASES_DIR",
    "LEASE_SUFFIX",
    "LeaseOwner",
    "LeaseSettings",
    "LeaseStore",
    "LeaseWaitTimeout",
    "RunLeases",
    "Sighting",
    "owner_of_temp",
]
