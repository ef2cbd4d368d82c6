"""Audit Logs entries and landed windows for the warehouse load tests.

The sample entries cover every entity type the fake server produces (user, channel, file, app,
workspace, enterprise), a type this provider has never heard of, and the optional parts of an entry:
no app, no details, JSON null details, unknown fields, nulls, non-ASCII text and characters that
SQL bulk formats must escape. They are written by hand, not by the fake server, so each test states
exactly what goes in.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from airflow_provider_slack_audit.ingest.landing import Landing
from airflow_provider_slack_audit.ingest.windows import Window

DAY = datetime(2026, 1, 4, tzinfo=timezone.utc)
WINDOW = Window(DAY, DAY + timedelta(days=1))
QUERY: dict[str, Any] = {"oldest": WINDOW.oldest, "latest": WINDOW.latest}

_USER = {"id": "W0ALICE", "name": "alice", "email": "alice@example.com", "team": "E0ACME"}
_LOCATION = {"type": "enterprise", "id": "E0ACME", "name": "Acme Corp", "domain": "acme"}
_CONTEXT = {
    "location": _LOCATION,
    "ua": "Mozilla/5.0 (Macintosh) Slack/4.41",
    "ip_address": "203.0.113.7",
    "session_id": "8412335931",
}


def seconds_into_window(seconds: int) -> int:
    """A ``date_create`` that many seconds after the window's start."""
    return WINDOW.oldest + seconds


def make_entry(
    entry_id: str,
    *,
    seconds: int,
    action: str,
    entity: dict[str, Any],
    actor: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    **optional: Any,
) -> dict[str, Any]:
    """An entry shaped like the API's; ``optional`` adds ``details`` and fields Slack may add."""
    return {
        "id": entry_id,
        "date_create": seconds_into_window(seconds),
        "action": action,
        "actor": actor if actor is not None else {"type": "user", "user": dict(_USER)},
        "entity": entity,
        "context": context if context is not None else dict(_CONTEXT),
        **optional,
    }


#: One entry per case a reader of the table cares about, keyed by what it shows.
SAMPLE_ENTRIES: dict[str, dict[str, Any]] = {
    "user": make_entry(
        "0d8a7b1e-0000-4000-8000-000000000001",
        seconds=60,
        action="user_login",
        entity={
            "type": "user",
            "user": {"id": "W0BOB", "name": "bob", "email": "bob@example.com", "team": "T0"},
        },
    ),
    "channel": make_entry(
        "0d8a7b1e-0000-4000-8000-000000000002",
        seconds=3_600,
        action="private_channel_created",
        entity={
            "type": "channel",
            "channel": {"id": "C0SECRET", "privacy": "private", "name": "project-x", "is_shared": False},
        },
        details={"is_internal_integration": False},
    ),
    "file": make_entry(
        "0d8a7b1e-0000-4000-8000-000000000003",
        seconds=7_200,
        action="file_downloaded",
        entity={
            "type": "file",
            "file": {"id": "F0REPORT", "name": "q4.csv", "filetype": "csv", "title": "Q4"},
        },
        context={**_CONTEXT, "app": {"id": "A0EXPORT", "name": "Exporter"}},
    ),
    "app": make_entry(
        "0d8a7b1e-0000-4000-8000-000000000004",
        seconds=21_600,  # the second interval of the window
        action="app_scopes_expanded",
        entity={
            "type": "app",
            "app": {"id": "A0EXPORT", "name": "Exporter", "is_distributed": True, "scopes": ["files:read"]},
        },
        details={"new_scopes": ["files:read", "users:read.email"], "previous_scopes": ["files:read"]},
    ),
    "workspace": make_entry(
        "0d8a7b1e-0000-4000-8000-000000000005",
        seconds=43_200,
        action="pref.sso_setting_changed",
        entity={"type": "workspace", "workspace": {"id": "T0SALES", "name": "Sales", "domain": "acme-sales"}},
        context={
            **_CONTEXT,
            "location": {"type": "workspace", "id": "T0SALES", "name": "Sales", "domain": None},
        },
        details=None,  # JSON null: stored as SQL NULL, like an absent details
    ),
    "enterprise": make_entry(
        "0d8a7b1e-0000-4000-8000-000000000006",
        seconds=64_800,
        action="manual_export_started",
        entity={"type": "enterprise", "enterprise": {"id": "E0ACME", "name": "Acme Corp", "domain": "acme"}},
        details={"export_type": "standard", "path": "C:\\exports\\q4\tfinal\nv2"},  # COPY escapes
    ),
    # Slack invents entity types and fields over time: a load must keep them, not fail on them.
    "unknown_type_and_fields": make_entry(
        "0d8a7b1e-0000-4000-8000-000000000007",
        seconds=70_000,
        action="canvas_shared",
        entity={"type": "canvas", "canvas": {"id": "F0CANVAS", "name": "Roadmap 🚀"}, "extra_flag": True},
        actor={"type": "user", "user": {"id": "W0ZOE", "name": "Zoë 東京", "email": None, "team": "E0ACME"}},
        context={"location": _LOCATION, "ua": None, "ip_address": "2001:db8::1", "session_id": None},
        schema_version=2,
        labels={"sensitivity": "high"},
    ),
    # A bot acting with no user, no context and no details at all.
    "minimal": {
        "id": "0d8a7b1e-0000-4000-8000-000000000008",
        "date_create": seconds_into_window(86_399),  # the window's last second
        "action": "message_tombstoned",
        "actor": {"type": "app"},
        "entity": {"type": "message", "message": {"channel": "C0SECRET", "timestamp": "1767571199.000100"}},
    },
}


def entry_line(entry: Mapping[str, Any]) -> bytes:
    """One entry as a landed line: compact JSON, UTF-8 (not \\u-escaped), no newline."""
    return json.dumps(entry, ensure_ascii=False, separators=(",", ":")).encode()


def bulk_lines(count: int, *, seed: int = 0, action: str = "user_login", day: int = 0) -> Iterator[bytes]:
    """``count`` distinct entries spread evenly over the window (or ``day`` days later), lazily."""
    spacing = 86_400 / count
    for number in range(count):
        entry = make_entry(
            str(uuid.UUID(int=(seed << 64) | number)),
            seconds=day * 86_400 + int(number * spacing),
            action=action,
            entity={"type": "file", "file": {"id": f"F{number:09d}", "name": f"file-{number}.pdf"}},
            details={"number": number, "seed": seed},
        )
        yield entry_line(entry)


def land_window(
    destination: Path,
    lines: Iterable[bytes],
    *,
    window: Window = WINDOW,
    step: timedelta = timedelta(hours=6),
) -> str:
    """Land ``lines`` (in date order) as the window's intervals and write its manifest; returns its URL.

    Each line goes to the interval holding its ``date_create``, as the ingest would put it; lines
    are written as they come, so a window of any size lands with flat memory.
    """
    landing = Landing(f"file://{destination}", level=1)
    intervals = window.intervals(step)
    pending = iter(lines)
    line = next(pending, None)
    commits = []
    for interval in intervals:
        with landing.open_interval(interval) as writer:
            page: list[bytes] = []
            while line is not None and _date_create(line) <= interval.latest:
                page.append(line)
                if len(page) == 1000:
                    writer.write(page)
                    page = []
                line = next(pending, None)
            writer.write(page)
            commits.append(writer.commit(query=QUERY, stats={}))
    if line is not None:
        raise ValueError(f"entry {line[:80]!r} is not inside window {window.key}, or lines are out of order")
    return str(landing.write_manifest(window, QUERY, commits))


def _date_create(line: bytes) -> int:
    seconds: int = json.loads(line)["date_create"]
    return seconds


def lines_in_date_order(entries: Iterable[Mapping[str, Any]]) -> list[bytes]:
    """Entries as landed lines, sorted by ``date_create`` as :func:`land_window` wants them."""
    return [entry_line(entry) for entry in sorted(entries, key=lambda entry: entry["date_create"])]


def sample_lines(*names: str) -> list[bytes]:
    """The named sample entries (all when none are named) as landed lines, in date order."""
    return lines_in_date_order([SAMPLE_ENTRIES[name] for name in names] if names else SAMPLE_ENTRIES.values())


def manifest_file(manifest: str) -> Path:
    """The local file behind a ``file://`` manifest URL."""
    return Path(manifest.removeprefix("file://"))


def manifest_document(manifest: str) -> dict[str, Any]:
    """A landed ``file://`` manifest's JSON document."""
    document: dict[str, Any] = json.loads(manifest_file(manifest).read_bytes())
    return document


def edit_manifest(manifest: str, edit: Callable[[dict[str, Any]], None]) -> None:
    """Rewrite a landed manifest after ``edit`` changed its document in place (a damaged manifest)."""
    path = manifest_file(manifest)
    document = json.loads(path.read_bytes())
    edit(document)
    path.write_text(json.dumps(document))


def replace_landed_lines(manifest: str, interval: int, lines: Iterable[bytes]) -> Path:
    """Replace interval ``interval``'s data file with ``lines`` and make the manifest agree with it.

    This is how a file the landing would refuse (not UTF-8, say) gets past verification: the
    loader's own checks are then the only defence left.
    """
    document = json.loads(manifest_file(manifest).read_bytes())
    data_path = manifest_file(manifest).parent.parent / document["intervals"][interval]["path"]
    lines = list(lines)
    data = gzip.compress(b"".join(line + b"\n" for line in lines))
    data_path.write_bytes(data)

    def agree(document: dict[str, Any]) -> None:
        listed = document["intervals"][interval]
        listed.update(count=len(lines), bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
        document["events"] = sum(item["count"] for item in document["intervals"])
        document["bytes"] = sum(item["bytes"] for item in document["intervals"])

    edit_manifest(manifest, agree)
    return data_path
