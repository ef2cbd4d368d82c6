"""Completeness evidence: an order-independent digest of an id set, and what manifests record of a run.

The id digest of a set of event ids is ``sum(sha256(id.encode("utf-8")) as a big-endian integer)
mod 2**256``, written as 64 hex digits. A sum (not XOR, where an id counted twice cancels out) is
order-independent, computed streaming page by page, and combines: a window's digest is the sum of
its intervals' digests mod 2**256. Anyone can recompute it from the data files with a few lines of
any language, which is the point: an auditor need not trust this code to check it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from airflow_provider_slack_audit.client.blocking import yield_to_loop

DIGEST_METHOD = "sum of sha256(utf-8 id) as big-endian integers, mod 2**256, in hex"
_MODULUS = 1 << 256
_DIGEST_SLICE = 1000
_get_id = attrgetter("id")
_get_date_create = attrgetter("date_create")


class _Keyed(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def date_create(self) -> int: ...


def id_digest_sum(ids: Iterable[str]) -> int:
    """The unreduced sum of sha256(id) over ``ids``.

    Each id is hashed by a copy of one fresh context (the same digest: a copy skips OpenSSL's lookup
    of the algorithm), in a plain loop that frees each context at once (docs/performance.md).
    """
    copy = hashlib.sha256().copy
    from_bytes = int.from_bytes
    total = 0
    for value in ids:
        hasher = copy()
        hasher.update(value.encode())
        total += from_bytes(hasher.digest(), "big")
    return total


def format_digest(total: int) -> str:
    return f"{total % _MODULUS:064x}"


def id_digest(ids: Iterable[str]) -> str:
    """The id digest of ``ids`` (see the module docstring)."""
    return format_digest(id_digest_sum(ids))


def combine_digests(digests: Iterable[str]) -> str:
    """The digest of a union of disjoint id sets, from their digests."""
    return format_digest(sum(int(digest, 16) for digest in digests))


@dataclass
class IdEvidence:
    """Count, id digest and first/last ``date_create`` of one interval, accumulated batch by batch."""

    count: int = 0
    total: int = 0
    first_date_create: int | None = None
    last_date_create: int | None = None

    def add(self, entries: Sequence[_Keyed]) -> None:
        """Add a batch of entries (objects with ``id`` and ``date_create``, e.g. ``RawEntry``)."""
        if not entries:
            return
        self.count += len(entries)
        # In slices, between which the stream's thread may hand the GIL to the event loop.
        for start in range(0, len(entries), _DIGEST_SLICE):
            self.total += id_digest_sum(map(_get_id, entries[start : start + _DIGEST_SLICE]))
            yield_to_loop()
        seconds = list(map(_get_date_create, entries))
        low, high = min(seconds), max(seconds)
        if self.first_date_create is None or low < self.first_date_create:
            self.first_date_create = low
        if self.last_date_create is None or high > self.last_date_create:
            self.last_date_create = high

    def to_json(self) -> dict[str, Any]:
        return {
            "id_digest": format_digest(self.total),
            "first_date_create": self.first_date_create,
            "last_date_create": self.last_date_create,
        }


def interval_evidence(recorded: Mapping[str, Any]) -> dict[str, Any]:
    """An interval's evidence as a manifest lists it (None where its marker predates evidence)."""
    return {name: recorded.get(name) for name in ("id_digest", "first_date_create", "last_date_create")}


def window_evidence(intervals: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The window's digest and first/last ``date_create`` from its intervals' evidence (None if unknown)."""
    digests = [item.get("id_digest") for item in intervals]
    firsts = [item["first_date_create"] for item in intervals if item.get("first_date_create") is not None]
    lasts = [item["last_date_create"] for item in intervals if item.get("last_date_create") is not None]
    return {
        "id_digest": combine_digests(d for d in digests if d) if all(digests) else None,
        "id_digest_method": DIGEST_METHOD,
        "first_date_create": min(firsts) if firsts else None,
        "last_date_create": max(lasts) if lasts else None,
    }


def public_base_url(url: str | None) -> str | None:
    """``url`` without userinfo, query or fragment: what a manifest may record of where it read from."""
    if not url:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6: urlsplit dropped the brackets
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


__all__ = [
    "DIGEST_METHOD",
    "IdEvidence",
    "combine_digests",
    "format_digest",
    "id_digest",
    "id_digest_sum",
    "interval_evidence",
    "public_base_url",
    "window_evidence",
]
