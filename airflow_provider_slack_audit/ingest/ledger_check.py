"""``verify`` through the ledger: what a destination no longer holds, and gaps in what it covers.

The file checks in :mod:`~airflow_provider_slack_audit.ingest.verify` prove that what is there is
consistent; a removal that takes its own evidence (a data file, its marker and its manifest) leaves a
consistent rest. The ledger (see :mod:`~airflow_provider_slack_audit.ingest.landing.ledger`)
remembers it: its chain of entries, each manifest's latest bytes and the intervals it listed, the
descriptor's SHA-256, the ledger head each manifest was written after, and an external anchor
(``expect``) show what was removed or edited (docs/guides/verify.md lists each).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from airflow_provider_slack_audit.ingest.windows import Interval, Window
from airflow_provider_slack_audit.version_compat import ObjectStoragePath

from .landing.commit import IntervalCommit
from .landing.descriptor import DESCRIPTOR_NAME, DestinationDescriptor
from .landing.layout import TEMP_MARK
from .landing.ledger import (
    LEDGER_DIR,
    Ledger,
    LedgerHead,
    parse_entry_name,
    read_entry,
    relative_entry_path,
)
from .landing.plan import duration
from .report import VerifyReport, WindowReport


@dataclass(frozen=True)
class _Entry:
    seq: int
    sha256: str
    document: dict[str, Any]

    @property
    def relative(self) -> str:
        return relative_entry_path(self.seq)

    @property
    def window(self) -> Window | None:
        return _window_of(self.document)


def check_ledger(
    root: ObjectStoragePath,
    report: VerifyReport,
    *,
    manifests: Mapping[str, bytes | None],
    present: Collection[str],
    commits: Mapping[str, IntervalCommit],
    descriptor: DestinationDescriptor | None,
    scope: Window | None,
    expect: LedgerHead | None = None,
) -> None:
    """Add what the ledger shows missing or changed to ``report`` (problems, and notes worth knowing).

    ``manifests``: every manifest found, its bytes by relative path (None: unreadable); ``present``:
    every file found; ``commits``: the markers read, by data path (those in scope).
    """
    ledger = Ledger(root)
    entries = _read_entries(ledger, report)
    latest: dict[str, _Entry] = {}
    for entry in entries.values():
        path = entry.document.get("manifest", {}).get("path")
        if isinstance(path, str):
            latest[path] = entry  # ascending: the last one wins
    _check_chain(entries, report)
    _check_descriptor(root, entries, report)
    if not entries:
        if descriptor is not None and descriptor.ledger:
            report.problems.append(
                f"{LEDGER_DIR}/: missing, but {DESCRIPTOR_NAME} records that this destination keeps a "
                f"ledger: every entry (one per window manifest written) was removed"
            )
        elif descriptor is not None:
            report.notes.append(
                "this destination keeps no ledger (landed by a provider version without one): a manifest "
                "removed with its files cannot be seen; its next ingest run begins the ledger"
            )
    windows = {window.manifest: window for window in report.windows}
    for relative, payload in sorted(manifests.items()):
        if payload is not None:  # an unreadable one is reported by the manifest check
            _check_manifest(
                relative, payload, entries, latest.get(relative), windows.get(relative), scope, report
            )
    for path, entry in sorted(latest.items()):
        if path not in manifests and overlaps(entry.window, scope):
            _check_missing_manifest(path, entry, present, commits, report)
    if expect is not None:
        _check_anchor(entries, expect, report)
    if entries:
        head = entries[max(entries)]
        report.ledger = {"entries": len(entries), "head": LedgerHead(head.seq, head.sha256).to_json()}


def report_gaps(report: VerifyReport, scope: Window) -> None:
    """Every second of ``scope`` no window manifest in the report covers, as failing ranges."""
    covered = sorted((window.window.start, window.window.end) for window in report.windows)
    cursor = scope.start
    gaps: list[tuple[datetime, datetime]] = []
    for start, end in covered:
        if start > cursor:
            gaps.append((cursor, min(start, scope.end)))
        cursor = max(cursor, end)
        if cursor >= scope.end:
            break
    if cursor < scope.end:
        gaps.append((cursor, scope.end))
    for start, end in gaps:
        if end <= start:
            continue
        report.gaps.append({"start": start.isoformat(), "end": end.isoformat()})
        report.problems.append(
            f"no window manifest covers {Interval(start, end).span} "
            f"({duration(end - start)}): a paused DAG, or a window never landed"
        )


def _read_entries(ledger: Ledger, report: VerifyReport) -> dict[int, _Entry]:
    entries: dict[int, _Entry] = {}
    for name in ledger.names():
        relative = f"{LEDGER_DIR}/{name}"
        if name.startswith(".") and TEMP_MARK in name:
            report.notes.append(f"{relative}: temporary file (a writer running now, or one that was killed)")
            continue
        seq = parse_entry_name(name)
        if seq is None:
            report.problems.append(f"{relative}: stray file; only ledger entries belong in {LEDGER_DIR}/")
            continue
        try:
            payload = ledger.read(seq)
            document = read_entry(payload)
        except (OSError, ValueError) as error:
            report.problems.append(f"{relative}: not a ledger entry ({error})")
            continue
        if document.get("seq") != seq:
            report.problems.append(f"{relative}: records seq {document.get('seq')!r}, not its name's {seq}")
        entries[seq] = _Entry(seq, hashlib.sha256(payload).hexdigest(), document)
    return dict(sorted(entries.items()))


def _check_chain(entries: Mapping[int, _Entry], report: VerifyReport) -> None:
    if not entries:
        return
    missing = [seq for seq in range(1, max(entries) + 1) if seq not in entries]
    for first, last in _ranges(missing):
        which = f"entry {first} is" if first == last else f"entries {first}..{last} are"
        report.problems.append(
            f"{LEDGER_DIR}/: {which} missing (the ledger runs 1..{max(entries)}): removed after it was "
            f"written, with whatever manifest it recorded"
        )
    for seq, entry in entries.items():
        recorded = entry.document.get("prev_sha256")
        if seq == 1:
            if recorded is not None:
                report.problems.append(
                    f"{entry.relative}: is the first entry but records prev_sha256 {recorded}: the entries "
                    f"before it were removed and the rest renumbered"
                )
            continue
        before = entries.get(seq - 1)
        if before is not None and recorded != before.sha256:
            report.problems.append(
                f"{entry.relative}: records prev_sha256 {recorded}, but {before.relative} has SHA-256 "
                f"{before.sha256}: entry {seq - 1} was edited or replaced after entry {seq} was written"
            )


def _check_descriptor(root: ObjectStoragePath, entries: Mapping[int, _Entry], report: VerifyReport) -> None:
    recorded = [entry for entry in entries.values() if entry.document.get("descriptor_sha256")]
    if not recorded:
        return
    try:
        found: str | None = hashlib.sha256((root / DESCRIPTOR_NAME).read_bytes()).hexdigest()
    except FileNotFoundError:
        found = None  # reported as missing by the descriptor check
    if found is None:
        return
    differing = [entry for entry in recorded if entry.document["descriptor_sha256"] != found]
    if differing:
        first = differing[0]
        more = f" (and {len(differing) - 1} later entries)" if len(differing) > 1 else ""
        report.problems.append(
            f"{DESCRIPTOR_NAME}: its SHA-256 {found} is not the {first.document['descriptor_sha256']} "
            f"ledger entry {first.seq} records{more}: the descriptor was edited or replaced after it was "
            f"written (it never is rewritten); restore it from a backup"
        )


def _check_manifest(
    relative: str,
    payload: bytes,
    entries: Mapping[int, _Entry],
    entry: _Entry | None,
    window: WindowReport | None,
    scope: Window | None,
    report: VerifyReport,
) -> None:
    """One manifest present: its latest entry's bytes, and the ledger head it names."""
    try:
        document = json.loads(payload)
    except ValueError:
        return  # reported damaged by the manifest check
    if not isinstance(document, dict):
        return
    if not overlaps(_window_of(document), scope):
        return
    problems = window.problems if window is not None else report.problems
    found = hashlib.sha256(payload).hexdigest()
    after = document.get("ledger_after")
    if entry is not None and entry.document.get("withdrawn"):
        problems.append(
            f"{relative}: no ledger entry records it: ledger entry {entry.seq} withdrew the window's "
            f"manifest for a rewrite, and the run that wrote this one stopped before appending its entry "
            f"(rerun the window's ingest to record it)"
        )
    elif entry is not None:
        recorded = entry.document["manifest"].get("sha256")
        if recorded != found:
            problems.append(
                f"{relative}: its SHA-256 {found} is not the {recorded} ledger entry {entry.seq} records: "
                f"the manifest was replaced or edited after it was landed"
            )
    elif after is not None:
        problems.append(
            f"{relative}: no ledger entry records it: its entry was removed, or the run that wrote it "
            f"stopped before appending one (rerun the window's ingest to record it)"
        )
    else:
        report.notes.append(f"{relative}: written before the ledger began; verified from its own files only")
    if isinstance(after, dict) and isinstance(after.get("seq"), int) and after["seq"] > 0:
        named = entries.get(after["seq"])
        if named is None:
            problems.append(
                f"{relative}: names ledger entry {after['seq']} as the head it was written after, but "
                f"{relative_entry_path(after['seq'])} is missing"
            )
        elif named.sha256 != after.get("sha256"):
            problems.append(
                f"{relative}: names ledger entry {after['seq']} with SHA-256 {after.get('sha256')} as the "
                f"head it was written after, but that entry's SHA-256 is {named.sha256}"
            )
        if entry is not None and entry.seq <= after["seq"]:
            problems.append(
                f"{relative}: its ledger entry {entry.seq} comes before the head {after['seq']} it was "
                f"written after"
            )


def _check_missing_manifest(
    path: str,
    entry: _Entry,
    present: Collection[str],
    commits: Mapping[str, IntervalCommit],
    report: VerifyReport,
) -> None:
    """A manifest the ledger records is gone: say so, and which of its intervals went with it."""
    document = entry.document
    window = entry.window
    described = window.key if window is not None else document.get("window")
    if document.get("withdrawn"):
        report.problems.append(
            f"{path}: no window manifest: ledger entry {entry.seq} withdrew it at "
            f"{document.get('recorded_at')} for a rewrite of window {described} that has not finished "
            f"(a rerun that failed or is still running); rerun the window (overwrite or reconcile)"
        )
        return
    intervals = [item for item in document.get("intervals", []) if isinstance(item, dict)]
    report.problems.append(
        f"{path}: missing, but ledger entry {entry.seq} records it (window {described}, "
        f"{len(intervals)} intervals, {document.get('events')} events, recorded at "
        f"{document.get('recorded_at')})"
    )
    for item in intervals:
        for name in ("path", "marker"):
            relative = item.get(name)
            if isinstance(relative, str) and relative not in present:
                report.problems.append(
                    f"{relative}: missing, but ledger entry {entry.seq} lists it for window {described}"
                )
        commit = commits.get(str(item.get("path")))
        if commit is not None and commit.sha256 != item.get("sha256"):
            report.problems.append(
                f"{item.get('path')}: SHA-256 {commit.sha256} (per its marker), but ledger entry "
                f"{entry.seq} lists {item.get('sha256')}: replaced after its window was landed"
            )


def _check_anchor(entries: Mapping[int, _Entry], expect: LedgerHead, report: VerifyReport) -> None:
    last = max(entries) if entries else 0
    entry = entries.get(expect.seq)
    if expect.seq > last:
        report.problems.append(
            f"{LEDGER_DIR}/: ends at entry {last}, but the anchor --expect-ledger names entry {expect.seq}: "
            f"entries after {last} were removed, with the manifests they recorded"
        )
    elif entry is not None and entry.sha256 != expect.sha256:
        report.problems.append(
            f"{entry.relative}: its SHA-256 {entry.sha256} is not the {expect.sha256} the anchor "
            f"--expect-ledger names: the ledger was rewritten from entry {expect.seq} or before"
        )


def overlaps(bounds: Interval | Window | None, scope: Window | None) -> bool:
    """Whether ``bounds`` (unknown: None) falls in ``scope`` (everything: None)."""
    return scope is None or bounds is None or (bounds.start < scope.end and scope.start < bounds.end)


def _window_of(document: Mapping[str, Any]) -> Window | None:
    try:
        return Window.from_json(document["window"])
    except (KeyError, TypeError, ValueError):
        return None


def _ranges(numbers: list[int]) -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    for number in numbers:
        if ranges and ranges[-1][1] == number - 1:
            ranges[-1] = (ranges[-1][0], number)
        else:
            ranges.append((number, number))
    return ranges


__all__ = ["check_ledger", "report_gaps"]
