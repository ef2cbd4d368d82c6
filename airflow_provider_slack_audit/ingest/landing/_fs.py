"""Files on any store the landing accepts: opening, exclusive create, small documents, temporary names.

How each store publishes a file whole and creates one only if absent is the table in
``ingest.stores``; this module applies it. An aborted write publishes nothing, and a temporary file
names its owner (``.<name>.tmp-<owner>-<random>``), so a writer removes another's temporary file
only when that owner holds no live lease on it. Everything here is synchronous and blocking.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
from collections.abc import Callable
from contextlib import closing
from pathlib import PurePosixPath
from typing import Any, Protocol

from airflow_provider_slack_audit.ingest.stores import LOCAL, Publication, store_for
from airflow_provider_slack_audit.version_compat import ObjectStoragePath

from .layout import TEMP_MARK

log = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 120.0
"""A lease's default ttl, and the age after which a temporary file no lease guards is stale."""
# memory:// (tests only): its "xb" checks and creates in two steps, so threads take turns.
_PROCESS_CREATE_LOCK = threading.Lock()


class BinaryFile(Protocol):
    """The part of an fsspec file object this module uses (``commit``/``discard``: see ``autocommit``)."""

    def read(self, size: int = -1, /) -> bytes: ...

    def write(self, data: bytes, /) -> int | None: ...

    def close(self) -> None: ...

    forced: bool

    def commit(self) -> None: ...

    def discard(self) -> None: ...


def open_file(path: ObjectStoragePath, mode: str, **kwargs: Any) -> BinaryFile:
    """The fsspec file of ``path``, opened through its filesystem.

    Not ``path.open``: Airflow 3 wraps that file to record hook lineage on every ``read``/``write``
    call, which at one call per page costs more than landing the page (docs/performance.md). The
    operator declares the destination as its outlet asset instead.
    """
    file: BinaryFile = path.fs.open(path.path, mode, **kwargs)
    return file


def names_in(directory: ObjectStoragePath) -> list[str]:
    """The names in ``directory``, sorted, fresh from the store (empty when it does not exist).

    Listings are cached per filesystem (s3fs, gcsfs): another process's files must not be missed.
    """
    directory.fs.invalidate_cache(directory.path)
    try:
        entries = directory.fs.ls(directory.path, detail=False)
    except FileNotFoundError:
        return []
    return sorted(PurePosixPath(str(entry)).name for entry in entries)


def relative_files(destination: ObjectStoragePath) -> list[str]:
    """Every file under ``destination``, relative to it, sorted, fresh from the store."""
    base = destination.path.rstrip("/")
    destination.fs.invalidate_cache(base)
    try:
        found = destination.fs.find(base)
    except FileNotFoundError:
        return []
    return sorted(str(full)[len(base) :].lstrip("/") for full in found)


def is_local(path: ObjectStoragePath) -> bool:
    return store_for(path.protocol) is LOCAL


def publication(path: ObjectStoragePath) -> Publication:
    """How a file of ``path``'s store takes its final name (see ``ingest.stores``).

    A store outside the table (reached without the destination check, e.g. by ``verify``) gets the
    temporary sibling and rename: the one way that never shows a partial file under a final name.
    """
    store = store_for(path.protocol)
    return store.publication if store is not None else "rename"


def abandon(file: BinaryFile) -> None:
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
    *,
    written: ObjectStoragePath | None = None,
    live_owner: Callable[[], str | None] | None = None,
    prefix: str | None = None,
) -> None:
    """Delete temporary siblings of ``path`` that no live writer owns (a kill -9 left them behind).

    A temporary file names its owner (see :func:`temp_sibling`). With ``live_owner`` (the token of
    the run holding the lease on ``path``, or None), every temp not of that owner is stale. Without
    it (a file no lease guards), a temp counts as stale once it is older than a lease's ttl: a
    small document is written in milliseconds, so only a dead writer leaves one that old. Its age
    is measured against ``written`` (the caller's own temp, just written, never removed here), not
    this host's clock: both are stamped by the file system (a file server's clock on NFS).
    ``prefix`` widens the temps looked at to every sibling named after it (default: ``path``'s name).
    """
    mark = f".{prefix if prefix is not None else path.name}"
    if not path.parent.exists():
        return
    unknown = object()
    live: object = unknown
    now = _modified(written) if written is not None else None
    for sibling in path.parent.iterdir():
        if not sibling.name.startswith(mark) or TEMP_MARK not in sibling.name:
            continue
        if written is not None and sibling.name == written.name:
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
        with closing(open_file(path, "wb")) as file:
            file.write(payload)
        return
    temp = temp_sibling(path, owner)
    try:
        with closing(open_file(temp, "wb")) as file:
            file.write(payload)
        remove_stale_temps_of(path, written=temp, live_owner=live_owner)
        temp.rename(path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def owner_of_temp(name: str) -> str | None:
    """The owner token in a temporary file's name (``.<name>.tmp-<owner>-<random>``), if it has one."""
    _, mark, tail = name.rpartition(TEMP_MARK)
    if not mark:
        return None
    owner, dash, _ = tail.rpartition("-")
    return owner if dash and owner else None


def create_exclusively(path: ObjectStoragePath, payload: bytes) -> bool | None:
    """Write ``path`` only if it does not exist: True when this call created it, False when it
    existed, None when the store has no conditional write (the caller decides by reading back).

    How is the store's (``ingest.stores``: a hard link locally, the API's precondition on S3, GCS
    and Azure), never whether its filesystem accepts mode ``"xb"``: fsspec's generic buffered file
    takes ``"xb"`` without looking.
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
