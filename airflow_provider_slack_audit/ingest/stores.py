"""The stores that keep the landing contract, and how each keeps it (no I/O, no Airflow, no fsspec).

The contract needs two things of a store: **atomic publication** (a data file appears under its
final name only when complete, and an aborted write leaves the file it would replace untouched) and
**exclusive create-if-absent** (leases and the destination descriptor are created by one run only).
Whether a store gives them is a property of its API, not of the Python object that reaches it, so
the decision is a table keyed by URL scheme (:data:`STORES`; docs/concepts/layout.md renders it).

Any other scheme is refused before a request (:func:`check_store`). fsspec stores built on its generic
buffered file (``dbfs://`` and many more) ignore ``autocommit=False`` and accept mode ``"xb"`` without
an existence check, so they would publish partial files and let two runs hold one lease.

``memory://`` is refused too, unless the environment variable :data:`MEMORY_OPT_IN` is ``1``: a test
opt-in. With it, files are written to a temporary sibling and moved into place, and create-if-absent
is exclusive among the threads of one process. It guarantees nothing across processes (each process
has its own memory store), nor durability: what is landed is gone when the process ends.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from .errors import UnsupportedStoreError

__all__ = [
    "AZURE_BLOB",
    "GCS",
    "LOCAL",
    "MEMORY",
    "MEMORY_OPT_IN",
    "S3",
    "STORES",
    "Store",
    "UnsupportedStoreError",
    "check_store",
    "memory_opted_in",
    "store_for",
    "supported_schemes",
]

MEMORY_OPT_IN = "SLACK_AUDIT_ALLOW_MEMORY_STORE"
"""Set to ``1`` to let tests land on ``memory://`` (see the module docstring for what it does not keep)."""

Publication = Literal["rename", "commit", "close"]
ExclusiveCreate = Literal["link", "precondition", "process"]


@dataclass(frozen=True)
class Store:
    """One kind of store and the mechanisms the landing uses on it.

    ``publication``: how a data file takes its final name.

    * ``rename``: written to a hidden temporary sibling, renamed into place once complete;
    * ``commit``: written to the final key with ``autocommit=False``; ``close()`` uploads the rest,
      ``commit()`` publishes it in one request (S3 PutObject or CompleteMultipartUpload, GCS's last
      resumable-upload chunk), ``discard()`` cancels the upload;
    * ``close``: written to the final key as staged blocks, published by ``close()`` in one request
      (Azure's Put Block List); an aborted file is dropped without being closed, so nothing is committed.

    ``exclusive_create``: ``link`` (a complete temporary file hard-linked into place), ``precondition``
    (mode ``"xb"``, which the store's filesystem sends as the API's precondition, named by
    ``precondition``), or ``process`` (memory: exclusive within one process).
    """

    name: str
    schemes: tuple[str, ...]
    publication: Publication
    exclusive_create: ExclusiveCreate
    precondition: str = ""


LOCAL = Store("local files", ("file", "local", ""), "rename", "link")
S3 = Store("Amazon S3", ("s3", "s3a"), "commit", "precondition", "If-None-Match: *")
GCS = Store("Google Cloud Storage", ("gs", "gcs"), "commit", "precondition", "ifGenerationMatch=0")
AZURE_BLOB = Store("Azure Blob Storage", ("abfs", "abfss", "az"), "close", "precondition", "If-None-Match: *")

STORES: tuple[Store, ...] = (LOCAL, S3, GCS, AZURE_BLOB)
"""The stores the landing contract holds on (tested end to end against each API's emulator)."""

MEMORY = Store("fsspec's in-memory filesystem (tests only)", ("memory",), "rename", "process")

_BY_SCHEME = {scheme: store for store in (*STORES, MEMORY) for scheme in store.schemes}


def store_for(scheme: str) -> Store | None:
    """The store of a URL scheme (or an ``ObjectStoragePath``'s protocol), None when it is not in the table.

    ``memory`` maps to its test-only entry whether or not it is opted in: how a file is written
    there does not depend on the opt-in, only whether a run may land there (:func:`check_store`).
    """
    return _BY_SCHEME.get(scheme.lower())


def memory_opted_in() -> bool:
    return os.environ.get(MEMORY_OPT_IN, "").strip() == "1"


def supported_schemes() -> str:
    return ", ".join(f"{store.name} ({', '.join(f'{s}://' for s in store.schemes if s)})" for store in STORES)


def check_store(scheme: str, url: str) -> Store:
    """The store of ``url`` (whose scheme is ``scheme``), or :class:`UnsupportedStoreError` naming it and
    the supported ones. Called before any request, wherever a destination is checked."""
    store = store_for(scheme)
    if store is MEMORY and not memory_opted_in():
        raise UnsupportedStoreError(
            f"destination {url!r} is on 'memory://', which keeps nothing across processes and is for "
            f"tests only: set the environment variable {MEMORY_OPT_IN}=1 in a test to land there "
            f"anyway. Supported stores: {supported_schemes()}"
        )
    if store is None:
        raise UnsupportedStoreError(
            f"destination {url!r} is on '{scheme}://', a store the landing contract cannot rely on: it "
            f"needs a store that publishes a file only when it is complete and creates a file only if "
            f"absent, and '{scheme}://' is not known to do both, so nothing was requested. Supported "
            f"stores: {supported_schemes()}"
        )
    return store
