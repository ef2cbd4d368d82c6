"""What ``verify`` reports: a destination's verdict, window by window, for an auditor to keep.

Its own module, below both :mod:`.verify` (the file checks) and :mod:`.ledger_check` (the ledger
checks), which each add what they find to one report.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import evidence
from .windows import Window

__all__ = ["VerifyReport", "WindowReport"]


@dataclass
class WindowReport:
    """One manifest's window: what it lists and what is wrong with it (empty ``problems``: verified)."""

    manifest: str
    window: Window
    intervals: int
    events: int
    id_digest: str | None
    first_date_create: int | None
    last_date_create: int | None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "manifest": self.manifest,
            "window": self.window.to_json(),
            "intervals": self.intervals,
            "events": self.events,
            "id_digest": self.id_digest,
            "first_date_create": self.first_date_create,
            "last_date_create": self.last_date_create,
            "ok": self.ok,
            "problems": list(self.problems),
        }


@dataclass
class VerifyReport:
    """What ``verify`` found under one destination; ``ok`` only when every check passed."""

    destination: str
    verified_at: datetime
    provider_version: str
    scope: Window | None
    windows: list[WindowReport] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # not attributable to one window
    notes: list[str] = field(default_factory=list)  # worth knowing, not a failure
    data_files: int = 0
    markers: int = 0
    events: int = 0
    gaps: list[dict[str, str]] = field(default_factory=list)  # [start, end) no manifest covers
    ledger: dict[str, Any] | None = None  # {"entries", "head": {"seq", "sha256"}} when there is one

    @property
    def ok(self) -> bool:
        return not self.problems and all(window.ok for window in self.windows)

    def to_json(self) -> dict[str, Any]:
        return {
            "destination": self.destination,
            "verified_at": self.verified_at.isoformat(),
            "provider_version": self.provider_version,
            "scope": self.scope.to_json() if self.scope is not None else None,
            "id_digest_method": evidence.DIGEST_METHOD,
            "ok": self.ok,
            "data_files": self.data_files,
            "markers": self.markers,
            "events": self.events,
            "windows": [window.to_json() for window in self.windows],
            "problems": list(self.problems),
            "notes": list(self.notes),
            "gaps": list(self.gaps),
            "ledger": self.ledger,
        }

    def to_text(self) -> str:
        scope = "every window" if self.scope is None else self.scope.span
        lines = [
            "Slack audit landing verification",
            f"destination:      {self.destination}",
            f"verified at:      {self.verified_at.isoformat()}",
            f"provider version: {self.provider_version}",
            f"scope:            {scope}",
            f"checked:          {self.data_files} data files, {self.markers} commit markers, "
            f"{len(self.windows)} window manifests; {self.events} events read back",
            f"id digest:        {evidence.DIGEST_METHOD}",
            f"ledger head:      {_head(self.ledger)}",
            "",
        ]
        for window in self.windows:
            lines.append(
                f"window {window.window.span}: {window.intervals} intervals, {window.events} events, "
                f"id digest {window.id_digest or '(not recorded)'}, "
                f"date_create {window.first_date_create}..{window.last_date_create}: "
                f"{'OK' if window.ok else 'FAIL'}"
            )
            lines.extend(f"  FAIL {problem}" for problem in window.problems)
        if self.problems:
            lines += ["", "outside any window manifest:", *(f"  FAIL {problem}" for problem in self.problems)]
        if self.notes:
            lines += ["", "notes:", *(f"  {note}" for note in self.notes)]
        failures = len(self.problems) + sum(len(window.problems) for window in self.windows)
        lines += ["", "RESULT: OK" if self.ok else f"RESULT: FAIL ({failures} problems)"]
        return "\n".join(lines) + "\n"


def _head(ledger: Mapping[str, Any] | None) -> str:
    if ledger is None:
        return "(no ledger)"
    head = ledger["head"]
    return f"{head['seq']}:{head['sha256']} ({ledger['entries']} entries; keep it to pass --expect-ledger)"
