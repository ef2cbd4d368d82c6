"""Commit markers: what makes an interval committed, and the check that it still is."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from airflow_provider_slack_audit.ingest.windows import Interval, parse_datetime

from .layout import Compression, parse_compression

FORMAT_VERSION = 1


def json_bytes(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, indent=2).encode() + b"\n"


def json_normalized(value: Mapping[str, Any], what: str) -> dict[str, Any]:
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
    # Completeness evidence of the file (id_digest, first/last date_create: see ingest.evidence).
    evidence: Mapping[str, Any] = field(default_factory=dict)

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
            **({"evidence": dict(self.evidence)} if self.evidence else {}),
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
            compression=parse_compression(data["compression"]),
            stats={str(name): int(value) for name, value in data["stats"].items()},
            committed_at=parse_datetime(data["committed_at"], "committed_at"),
            evidence=dict(data.get("evidence") or {}),
        )
