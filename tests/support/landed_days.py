"""A landed day for the Snowflake and BigQuery load tests: the fake server's events, anomalies, late events.

The events are the fake server's own (its generator, the ids its oracle knows), landed with the
ingest's ``Landing`` as the landing operator lands them, plus anomaly events (which the generator
does not make) with ``action_timestamp`` in milliseconds and in microseconds. Some events arrive
late: the first landing misses them; :meth:`LandedDay.reconcile` lands the window again with them,
as a reconcile run does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from airflow_provider_slack_audit.testing import FakeAuditLogsServer, ManualClock

from support.audit_entries import DAY, WINDOW, entry_line, land_window, make_entry

EVENTS = 12_000
LATE_DELAY = 600


def anomaly_lines(count: int) -> list[bytes]:
    """``count`` anomaly events spread over the window, half with ms, half with µs timestamps."""
    lines = []
    for number in range(count):
        seconds = 3_000 + number * (80_000 // max(count, 1))
        stamp = (WINDOW.oldest + seconds) * (1_000 if number % 2 else 1_000_000)
        lines.append(
            entry_line(
                make_entry(
                    f"a0a0a0a0-0000-4000-8000-{number:012d}",
                    seconds=seconds,
                    action="anomaly",
                    entity={"type": "user", "user": {"id": f"W0ANOM{number}", "name": f"anom{number}"}},
                    details={
                        "reason": ["asn", "ip_address"] if number % 2 else ["tor"],
                        "previous_ip_address": "198.51.100.9",
                        "previous_ua": "curl/8.0",
                        "action_timestamp": stamp,
                    },
                )
            )
        )
    return lines


def _date_create(line: bytes) -> int:
    value: int = json.loads(line)["date_create"]
    return value


@dataclass
class LandedDay:
    """A window of the fake org landed under ``destination``; ``manifest`` is its manifest URL."""

    server: FakeAuditLogsServer
    clock: ManualClock
    destination: Path
    anomalies: list[bytes]
    manifest: str = ""

    def visible_lines(self) -> list[bytes]:
        entries = self.server.expected_entries(WINDOW.oldest, WINDOW.latest)  # newest first
        return sorted([bytes(line) for line in entries] + self.anomalies, key=_date_create)

    def land(self) -> str:
        self.manifest = land_window(self.destination, self.visible_lines(), window=WINDOW)
        return self.manifest

    def ids(self) -> set[str]:
        return {json.loads(line)["id"] for line in self.visible_lines()}

    def anomaly_ids(self) -> set[str]:
        return {json.loads(line)["id"] for line in self.anomalies}

    def late_ids(self) -> set[str]:
        """The ids not visible yet: the first landing misses them."""
        return self.server.pending_ids(WINDOW.oldest, WINDOW.latest)

    def reconcile(self) -> set[str]:
        """Let the late events arrive and land the window again; returns the ids that arrived."""
        late = self.late_ids()
        self.clock.advance(LATE_DELAY + 1)
        self.land()
        return late


def landed_day(destination: Path, *, events: int = EVENTS, seed: int = 24) -> LandedDay:
    """The day landed as a run at the window's end + 2 minutes would land it (late events missing)."""
    clock = ManualClock(WINDOW.end.timestamp() + 120)
    server = FakeAuditLogsServer(
        events=events,
        seed=seed,
        start=DAY,
        end=WINDOW.end,
        late_fraction=0.3,
        late_delay=LATE_DELAY,
        clock=clock,
    )
    day = LandedDay(server, clock, destination, anomaly_lines(24))
    day.land()
    return day
