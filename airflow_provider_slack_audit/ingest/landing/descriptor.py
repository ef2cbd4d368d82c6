"""The destination descriptor: ``<destination>/_slack_audit.json``, the layout every file there shares.

Written once, by the first run that lands in a destination, before its first request, and never
rewritten. Created if absent (``_fs.create_if_absent``), then read back, so two first runs racing
agree on one descriptor (on a store without conditional writes, reached directly, the read-back alone
decides: best effort). A destination an earlier version landed without one is adopted by the first
run whose layout fits every marker and data file there. Its fields: docs/concepts/layout.md.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import PurePosixPath
from typing import Any

from airflow_provider_slack_audit import __version__
from airflow_provider_slack_audit.ingest.errors import DestinationConflictError
from airflow_provider_slack_audit.ingest.windows import Interval, Window, crosses_cells, parse_datetime
from airflow_provider_slack_audit.version_compat import ObjectStoragePath

from ._fs import create_if_absent, names_in, relative_files
from .commit import FORMAT_VERSION, IntervalCommit, json_bytes, json_normalized
from .layout import PREFIX, data_file_interval, parse_compression
from .plan import (
    DestinationLayout,
    describe_query,
    duration,
    filtered_label,
    partitions_touched,
    plan_intervals,
)

log = logging.getLogger(__name__)

DESCRIPTOR_NAME = "_slack_audit.json"
DESCRIPTOR_KIND = "slack_audit_destination"


@dataclass(frozen=True)
class DestinationDescriptor:
    """The descriptor document: a layout, and when and by what it was written."""

    layout: DestinationLayout
    created_at: datetime
    provider_version: str
    adopted: bool = False  # written over a destination an earlier version landed
    # It keeps a ledger (see ``ledger``): a missing ledger there is damage, not an older version.
    ledger: bool = False

    def to_json(self) -> dict[str, Any]:
        seconds = self.layout.grid.total_seconds()
        return {
            "kind": DESCRIPTOR_KIND,
            "version": FORMAT_VERSION,
            "grid_seconds": int(seconds) if seconds.is_integer() else seconds,
            "compression": self.layout.compression,
            "query": dict(self.layout.query),
            "created_at": self.created_at.isoformat(),
            "provider_version": self.provider_version,
            "adopted": self.adopted,
            **({"ledger": True} if self.ledger else {}),
        }

    @classmethod
    def from_json(cls, data: object) -> DestinationDescriptor:
        """Parse a descriptor; ValueError (naming what is wrong) when it is not a well-formed one."""
        if not isinstance(data, dict) or data.get("kind") != DESCRIPTOR_KIND:
            kind = data.get("kind") if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"kind {kind!r} is not {DESCRIPTOR_KIND!r}")
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(
                f"version {data.get('version')!r} is not {FORMAT_VERSION}; install the provider version "
                f"that wrote it ({data.get('provider_version')!r})"
            )
        try:
            seconds = data["grid_seconds"]
            if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 1:
                raise ValueError(f"grid_seconds {seconds!r} is not a number of seconds of at least 1")
            query = data["query"]
            if not isinstance(query, dict) or set(query) != {"action", "actor", "entity"}:
                raise ValueError(f"query {query!r} is not the normalized filters (action, actor, entity)")
            return cls(
                layout=DestinationLayout(
                    grid=timedelta(seconds=seconds),
                    compression=parse_compression(data["compression"]),
                    query=query,
                ),
                created_at=parse_datetime(data["created_at"], "created_at"),
                provider_version=str(data["provider_version"]),
                adopted=bool(data.get("adopted", False)),
                ledger=data.get("ledger") is True,
            )
        except KeyError as error:
            raise ValueError(f"field {error} is missing") from None
        except TypeError as error:
            raise ValueError(str(error)) from None


def descriptor_path(destination: ObjectStoragePath) -> ObjectStoragePath:
    return destination / DESCRIPTOR_NAME


def read_descriptor(destination: ObjectStoragePath) -> DestinationDescriptor | None:
    """The destination's descriptor, or None when it has none; ValueError when it is damaged."""
    path = descriptor_path(destination)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return DestinationDescriptor.from_json(json.loads(raw))
    except ValueError as error:  # JSONDecodeError included
        raise ValueError(
            f"{path} is not a well-formed destination descriptor ({error}); it records the layout every "
            f"file under {destination} shares: restore it from a backup, or delete it so the next run "
            f"writes it again after checking the commit markers"
        ) from None


def prepare_destination(
    destination: ObjectStoragePath,
    window: Window,
    layout: DestinationLayout,
    *,
    record: bool = True,
) -> list[Interval]:
    """Check that a run of ``window`` with ``layout`` fits the destination; return its intervals.

    The I/O half of :meth:`~.destination.Landing.prepare`, called once, before any request: the
    run's layout must be the descriptor's (or, with no descriptor, fit what an earlier version
    landed), and the window must fit the data files already landed in the partitions it touches
    (see ``plan``). With ``record``, a destination without a descriptor gets one. Raises
    :class:`DestinationConflictError` otherwise.
    """
    found = read_descriptor(destination)
    legacy = False
    if found is None:
        legacy = _check_legacy_files(destination, layout)
    else:
        _check_layout(destination, found, layout)
    intervals = plan_intervals(window, layout.grid, _landed_files(destination, window, layout.grid))
    if found is None and record:
        _record(destination, layout, adopted=legacy)
    return intervals


def _check_layout(
    destination: ObjectStoragePath, found: DestinationDescriptor, wanted: DestinationLayout
) -> None:
    fixes = found.layout.differences(wanted)
    if not fixes:
        return
    advice = "pass " + " and ".join(fixes)
    if dict(wanted.query) != dict(found.layout.query):
        sibling = f"{str(destination).rstrip('/')}_{filtered_label(wanted.query)}"
        advice += (
            f", or land runs {describe_query(wanted.query)} into a destination of their own, next to "
            f"this one rather than inside it (e.g. {sibling!r})"
        )
    else:
        advice += ", or land this run into a destination of its own"
    empty = (
        ""
        if _holds_data(destination)
        else (
            f" Nothing is landed under it yet: if the run that wrote the descriptor was a mistake, delete "
            f"{descriptor_path(destination)} and rerun."
        )
    )
    raise DestinationConflictError(
        f"destination {destination} lands on {found.layout.describe()} (its descriptor "
        f"{DESCRIPTOR_NAME} was written {found.created_at.isoformat()} by provider "
        f"{found.provider_version}), but this run asks for {wanted.describe()}: landing it would put "
        f"events in a second set of files, so nothing was requested; {advice}.{empty}"
    )


def _record(destination: ObjectStoragePath, layout: DestinationLayout, *, adopted: bool) -> None:
    """Create the descriptor if absent; whoever created it first, check the run against it."""
    descriptor = DestinationDescriptor(
        layout=layout,
        created_at=datetime.now(timezone.utc),
        provider_version=__version__,
        adopted=adopted,
        ledger=True,
    )
    path = descriptor_path(destination)
    created = create_if_absent(path, json_bytes(descriptor.to_json()))
    winner = read_descriptor(destination)  # the read-back decides, whoever wrote it
    if winner is None:
        raise OSError(f"{path} is missing right after it was written; rerun the task")
    _check_layout(destination, winner, layout)
    if created:
        log.info("Wrote the destination descriptor %s: %s", path, layout.describe())


def _landed_files(destination: ObjectStoragePath, window: Window, grid: timedelta) -> dict[Interval, str]:
    """Final-named data files (committed or not) in the partitions a data file overlapping the window
    can be in: interval -> path relative to the destination."""
    landed: dict[Interval, str] = {}
    for partition in partitions_touched(window, grid):
        for name in names_in(destination / partition):
            parsed = data_file_interval(name)
            if parsed is not None:
                landed[parsed[0]] = f"{partition}/{name}"
    return landed


def _holds_data(destination: ObjectStoragePath) -> bool:
    return any(data_file_interval(PurePosixPath(relative).name) for relative in relative_files(destination))


def _check_legacy_files(destination: ObjectStoragePath, layout: DestinationLayout) -> bool:
    """No descriptor: whatever an earlier version landed must fit the run's layout (adoption).

    True when something is landed there (the descriptor will be an adoption), False when it is new.
    """
    files = relative_files(destination)
    data = {relative: data_file_interval(PurePosixPath(relative).name) for relative in files}
    landed = {relative: parsed for relative, parsed in data.items() if parsed is not None}
    markers = [
        relative
        for relative in files
        if PurePosixPath(relative).name.startswith(PREFIX) and relative.endswith(".commit.json")
    ]
    if not landed and not markers:
        return False  # a new destination
    problems: list[str] = []
    for relative, (interval, compression) in sorted(landed.items()):
        if compression != layout.compression:
            problems.append(f"{relative} is {compression or 'uncompressed'}")
        elif crosses_cells(interval, layout.grid):
            problems.append(f"{relative} crosses a boundary of the {duration(layout.grid)} grid")
    query = json_normalized(layout.query, "query")
    for relative, commit in _read_markers(destination, markers).items():
        if commit is None:
            continue  # unreadable: the interval reads as not committed, and is rewritten
        if commit.query != query:
            problems.append(f"{relative} records {describe_query(commit.query)}")
        elif commit.compression != layout.compression:
            problems.append(f"{relative} records {commit.compression or 'uncompressed'}")
        elif crosses_cells(commit.interval, layout.grid):
            problems.append(f"{relative} crosses a boundary of the {duration(layout.grid)} grid")
    if problems:
        more = f" (and {len(problems) - 4} more)" if len(problems) > 4 else ""
        raise DestinationConflictError(
            f"destination {destination} has no descriptor ({DESCRIPTOR_NAME}: landed by a provider "
            f"version without descriptors), and what is landed there does not fit this run's layout, "
            f"{layout.describe()}: "
            + "; ".join(problems[:4])
            + more
            + "; nothing was requested. Rerun with the interval, compression and filters the destination "
            "was landed with (that run adopts it and writes the descriptor), or land this run into a "
            "destination of its own"
        )
    return True


def _read_markers(destination: ObjectStoragePath, markers: list[str]) -> Mapping[str, IntervalCommit | None]:
    """Every marker at once (fsspec fetches them concurrently on object stores)."""
    if not markers:
        return {}
    base = destination.path.rstrip("/")
    paths = [f"{base}/{relative}" for relative in markers]
    contents = destination.fs.cat(paths, on_error="return")
    parsed: dict[str, IntervalCommit | None] = {}
    for relative, full in zip(markers, paths, strict=True):
        raw = contents.get(full) if isinstance(contents, dict) else None
        if raw is None:  # a filesystem that keys its answer otherwise: read that one on its own
            with suppress(OSError):
                raw = (destination / relative).read_bytes()
        parsed[relative] = None
        if isinstance(raw, bytes):
            with suppress(ValueError, KeyError, TypeError, AttributeError):
                parsed[relative] = IntervalCommit.from_json(json.loads(raw))
    return parsed


__all__ = [
    "DESCRIPTOR_KIND",
    "DESCRIPTOR_NAME",
    "DestinationConflictError",
    "DestinationDescriptor",
    "descriptor_path",
    "prepare_destination",
    "read_descriptor",
]
