"""``verify``: re-check a landed destination from its files alone, for an auditor to keep the report.

Every data file, marker and manifest, the descriptor and the ledger (see
:mod:`~airflow_provider_slack_audit.ingest.ledger_check`); what each check proves, and which tampers
it cannot see: docs/guides/verify.md. Finding an id in two files keeps every id verified in memory
(see docs/performance.md): verify a large destination window by window (``window=``) to bound it.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import PurePosixPath
from typing import Any

import msgspec

from airflow_provider_slack_audit import __version__
from airflow_provider_slack_audit.client.response import EntryKey
from airflow_provider_slack_audit.ingest import evidence
from airflow_provider_slack_audit.ingest.landing.plan import describe_query, duration
from airflow_provider_slack_audit.ingest.windows import Window, crosses_cells
from airflow_provider_slack_audit.version_compat import ObjectStoragePath

from .landing import layout
from .landing._fs import relative_files
from .landing.commit import IntervalCommit
from .landing.descriptor import DESCRIPTOR_NAME, DestinationDescriptor, read_descriptor
from .landing.ledger import LedgerHead
from .landing.manifest import ManifestInterval, iter_commit_lines, parse_manifest
from .ledger_check import check_ledger, overlaps, report_gaps
from .report import VerifyReport, WindowReport

_MAX_LINE_PROBLEMS = 3  # per data file: the first few bad lines name the damage well enough
_key_decoder = msgspec.json.Decoder(EntryKey)


@dataclass
class _FileFigures:
    count: int
    id_digest: str
    first_date_create: int | None
    last_date_create: int | None


def verify_destination(
    destination: ObjectStoragePath | str,
    *,
    window: Window | None = None,
    conn_id: str | None = None,
    expect_ledger: LedgerHead | None = None,
) -> VerifyReport:
    """Re-check the landing under ``destination`` (within ``window`` when given); never raises on damage.

    ``expect_ledger``: a ledger head kept elsewhere (a landing task's summary reports one); the
    ledger must reach it with those bytes, so removing the newest windows with their entries shows.
    """
    root = (
        destination
        if isinstance(destination, ObjectStoragePath)
        else ObjectStoragePath(destination, conn_id=conn_id)
    )
    report = VerifyReport(
        destination=str(root),
        verified_at=datetime.now(timezone.utc),
        provider_version=__version__,
        scope=window,
    )
    manifests, markers, data, temps = _listing(root)
    present = {*manifests, *markers, *data}
    descriptor = _check_descriptor(root, report)
    by_file: dict[str, list[str]] = {}  # problems of each data file or marker, by relative path
    ids: dict[str, str] = {}  # every id verified so far -> the data file holding it
    commits: dict[str, IntervalCommit] = {}  # by data path
    figures: dict[str, _FileFigures] = {}

    for relative in markers:
        commit = _read_marker(root, relative, report)
        if commit is None or not overlaps(commit.interval, window):
            if commit is not None:
                data.discard(commit.path)  # out of scope: neither checked nor reported
            continue
        report.markers += 1
        problems = by_file.setdefault(commit.path, [])
        if descriptor is not None:
            problems.extend(_descriptor_disagreements(relative, commit, descriptor))
        expected_marker = layout.relative_marker_path(commit.interval)
        if relative != expected_marker:
            problems.append(
                f"{relative}: marker for interval {commit.interval.key} belongs at {expected_marker}"
            )
        if commit.path != layout.relative_data_path(commit.interval, commit.compression):
            problems.append(
                f"{relative}: names data file {commit.path}, not the layout's path for its interval"
            )
        if commit.path not in data:
            problems.append(f"{commit.path}: missing, but its commit marker {relative} says it is committed")
            continue
        data.discard(commit.path)
        commits[commit.path] = commit
        report.data_files += 1
        result = _check_data_file(root, commit, ids, problems)
        if result is not None:
            figures[commit.path] = result
            report.events += result.count

    for relative in sorted(data):
        if not _stray_in_scope(relative, window):
            continue
        name = PurePosixPath(relative).name
        if name.startswith(layout.PREFIX) and PurePosixPath(relative).parent.name.startswith("dt="):
            by_file.setdefault(relative, []).append(f"{relative}: data file without a commit marker")
        else:
            report.problems.append(
                f"{relative}: stray file; nothing but committed data files may end in .jsonl"
            )

    listed: set[str] = set()
    payloads: dict[str, bytes | None] = {}  # each manifest read once, for this check and the ledger's
    for relative in manifests:
        try:
            payload = payloads[relative] = (root / relative).read_bytes()
        except OSError as error:
            payloads[relative] = None
            report.problems.append(f"{relative}: {error}")
            continue
        checked = _check_manifest(root, relative, payload, window, commits, figures, report)
        if checked is None:
            continue
        window_report, paths = checked
        for item_path in paths:
            listed.add(item_path)
            window_report.problems.extend(by_file.pop(item_path, []))
        report.windows.append(window_report)
    for problems in by_file.values():
        report.problems.extend(problems)
    check_ledger(
        root,
        report,
        manifests=payloads,
        present=present,
        commits=commits,
        descriptor=descriptor,
        scope=window,
        expect=expect_ledger,
    )
    if window is not None:
        report_gaps(report, window)
    if not report.windows:
        report.problems.append(
            f"no window manifest under {root}"
            + (f" for {window.span}" if window is not None else "")
            + ": nothing proves a window was landed completely"
        )
    unlisted = sorted(set(commits) - listed)
    if unlisted:
        report.notes.append(
            f"{len(unlisted)} committed intervals are in no manifest "
            f"(a run that did not finish its window?), "
            f"e.g. {unlisted[0]}"
        )
    report.notes.extend(
        f"{relative}: temporary file (a writer running now, or one that was killed)" for relative in temps
    )
    return report


def _listing(root: ObjectStoragePath) -> tuple[list[str], list[str], set[str], list[str]]:
    """Manifests, markers, data files and temporary files under ``root``, as relative paths."""
    manifests, markers, temps = [], [], []
    data: set[str] = set()
    for relative in relative_files(root):
        name = PurePosixPath(relative).name
        if layout.TEMP_MARK in name and name.startswith("."):
            temps.append(relative)
        elif relative.startswith(f"{layout.MANIFESTS_DIR}/") and name.endswith(".manifest.json"):
            manifests.append(relative)
        elif name.startswith(layout.PREFIX) and name.endswith(".commit.json"):
            markers.append(relative)
        elif name.endswith((".jsonl", ".jsonl.gz")):
            data.add(relative)
    return manifests, markers, data, temps


def _check_descriptor(root: ObjectStoragePath, report: VerifyReport) -> DestinationDescriptor | None:
    try:
        descriptor = read_descriptor(root)
    except ValueError as error:
        report.problems.append(f"{DESCRIPTOR_NAME}: {error}")
        return None
    except OSError as error:
        report.problems.append(f"{DESCRIPTOR_NAME}: unreadable ({error})")
        return None
    if descriptor is None:
        report.problems.append(
            f"{DESCRIPTOR_NAME}: missing; it records the layout (grid, compression, filters) every file "
            f"here shares. A destination landed by a provider version without descriptors gets one from "
            f"its next ingest run, which checks the commit markers first"
        )
    return descriptor


def _descriptor_disagreements(
    relative: str, commit: IntervalCommit, descriptor: DestinationDescriptor
) -> list[str]:
    """How a marker disagrees with the destination's descriptor (empty when it agrees)."""
    found = descriptor.layout
    problems = []
    if commit.compression != found.compression:
        problems.append(
            f"{relative}: records compression {commit.compression!r}, but {DESCRIPTOR_NAME} says "
            f"{found.compression!r}"
        )
    if dict(commit.query) != dict(found.query):
        problems.append(
            f"{relative}: records {describe_query(commit.query)}, but {DESCRIPTOR_NAME} says "
            f"{describe_query(found.query)}"
        )
    if crosses_cells(commit.interval, found.grid):
        problems.append(
            f"{relative}: interval {commit.interval.key} crosses a boundary of the {duration(found.grid)} "
            f"grid {DESCRIPTOR_NAME} records"
        )
    return problems


def _read_marker(root: ObjectStoragePath, relative: str, report: VerifyReport) -> IntervalCommit | None:
    try:
        return IntervalCommit.from_json(json.loads((root / relative).read_bytes()))
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        report.problems.append(f"{relative}: unreadable commit marker ({type(error).__name__}: {error})")
        return None


def _check_data_file(
    root: ObjectStoragePath, commit: IntervalCommit, ids: dict[str, str], problems: list[str]
) -> _FileFigures | None:
    """Stream the data file once: checksums and lines against the marker, each entry's id and second."""
    interval = commit.interval
    tracker = evidence.IdEvidence()
    bad_lines = 0
    batch: list[EntryKey] = []
    seen_here: set[str] = set()
    try:
        for number, line in enumerate(iter_commit_lines(root, commit), start=1):
            try:
                key = _key_decoder.decode(line)
            except msgspec.DecodeError as error:
                bad_lines += 1
                if bad_lines <= _MAX_LINE_PROBLEMS:
                    problems.append(
                        f"{commit.path}: line {number} is not a JSON object with a string id and an integer "
                        f"date_create ({error})"
                    )
                continue
            if not interval.oldest <= key.date_create <= interval.latest:
                problems.append(
                    f"{commit.path}: line {number} (id {key.id}) has date_create {key.date_create}, outside "
                    f"its interval {interval.oldest}..{interval.latest}"
                )
            other = ids.setdefault(key.id, commit.path)
            if other != commit.path:
                problems.append(f"{commit.path}: line {number} holds id {key.id}, which {other} holds too")
            elif key.id in seen_here:
                problems.append(f"{commit.path}: line {number} repeats id {key.id}")
            seen_here.add(key.id)
            batch.append(key)
            if len(batch) >= 10_000:
                tracker.add(batch)
                batch = []
    except zlib.error as error:
        problems.append(
            f"{commit.path}: not a valid gzip stream ({error}): the file changed after it was landed"
        )
        return None
    except (ValueError, OSError) as error:
        problems.append(f"{commit.path}: {error}")
        return None
    tracker.add(batch)
    found = _FileFigures(
        tracker.count,
        evidence.format_digest(tracker.total),
        tracker.first_date_create,
        tracker.last_date_create,
    )
    recorded = commit.evidence
    if recorded.get("id_digest") is not None and recorded["id_digest"] != found.id_digest:
        problems.append(
            f"{commit.path}: id digest {found.id_digest} differs from its marker's {recorded['id_digest']}"
        )
    for name in ("first_date_create", "last_date_create"):
        if recorded.get(name) is not None and recorded[name] != getattr(found, name):
            problems.append(
                f"{commit.path}: {name} {getattr(found, name)} differs from its marker's {recorded[name]}"
            )
    return found


def _check_manifest(
    root: ObjectStoragePath,
    relative: str,
    payload: bytes,
    scope: Window | None,
    commits: Mapping[str, IntervalCommit],
    figures: Mapping[str, _FileFigures],
    report: VerifyReport,
) -> tuple[WindowReport, list[str]] | None:
    """The manifest's window report and the data paths it lists; None when out of scope or damaged.

    Parsing checked its coverage of its window and its totals."""
    try:
        manifest = parse_manifest(payload, root / relative)
    except ValueError as error:
        report.problems.append(f"{relative}: {error}")
        return None
    document: dict[str, Any] = json.loads(payload)
    if not overlaps(manifest.window, scope):
        return None
    items = [item for item in document.get("intervals", []) if isinstance(item, dict)]
    window_report = WindowReport(
        manifest=relative,
        window=manifest.window,
        intervals=len(manifest.intervals),
        events=manifest.events,
        id_digest=document.get("id_digest"),
        first_date_create=document.get("first_date_create"),
        last_date_create=document.get("last_date_create"),
    )
    problems = window_report.problems
    expected_manifest = layout.relative_manifest_path(manifest.window)
    if relative != expected_manifest:
        problems.append(
            f"{relative}: manifest of window {manifest.window.key} belongs at {expected_manifest}"
        )
    combined = evidence.window_evidence(items)
    for name in ("id_digest", "first_date_create", "last_date_create"):
        if document.get(name) is not None and document.get(name) != combined[name]:
            problems.append(f"{relative}: {name} {document.get(name)} is not what its intervals combine to")
    for entry, item in zip(manifest.intervals, items, strict=True):
        _check_listed_interval(relative, entry, item, commits, figures, problems)
    return window_report, [entry.path for entry in manifest.intervals]


def _check_listed_interval(
    relative: str,
    entry: ManifestInterval,
    item: Mapping[str, Any],
    commits: Mapping[str, IntervalCommit],
    figures: Mapping[str, _FileFigures],
    problems: list[str],
) -> None:
    """One interval the manifest lists, against its marker and the figures read from its file."""
    commit = commits.get(entry.path)
    if commit is None:
        problems.append(f"{relative}: lists {entry.path}, which has no commit marker or no data file")
        return
    if commit.interval != entry.interval:
        problems.append(
            f"{relative}: lists {entry.path} for {entry.interval.key}, its marker says {commit.interval.key}"
        )
    listed = (entry.count, entry.bytes, entry.sha256)
    marked = (commit.count, commit.bytes, commit.sha256)
    if listed != marked:
        problems.append(
            f"{relative}: lists {entry.path} with (count, bytes, sha256) {listed}, its marker says {marked}"
        )
    found = figures.get(entry.path)
    digest = item.get("id_digest")
    if found is not None and digest is not None and digest != found.id_digest:
        problems.append(
            f"{relative}: lists {entry.path} with id digest {digest}, its data holds {found.id_digest}"
        )


def _stray_in_scope(relative: str, scope: Window | None) -> bool:
    """A file without a marker is in scope when its ``dt=`` partition overlaps the scope (or it has none)."""
    if scope is None:
        return True
    partition = PurePosixPath(relative).parts[0]
    if not partition.startswith("dt="):
        return True
    day = partition[3:]
    return scope.start.date().isoformat() <= day <= scope.end.date().isoformat()


__all__ = ["VerifyReport", "WindowReport", "verify_destination"]
