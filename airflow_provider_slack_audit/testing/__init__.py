"""A fake Slack Audit Logs API for tests, demos and benchmarks (``python -m`` runs it standalone).

It imports nothing from Airflow: anything that speaks HTTP can use it.
"""

from __future__ import annotations

from .catalogue import ACTION_CATALOGUE, AUDIT_LOGS_EPOCH, GENERATED_ACTIONS, KNOWN_ACTIONS
from .clock import ManualClock
from .errors import ERROR_STATUS
from .events import (
    EntryFilter,
    EventSet,
    RenderedEntries,
    UnknownActionError,
    default_span,
    to_unix_seconds,
)
from .faults import FAULT_KINDS, FaultKind, FaultPlan
from .proxy import FakeForwardProxy, ProxiedRequest
from .server import API_PREFIX, DEFAULT_LIMIT, MAX_LIMIT, FakeAuditLogsServer, RecordedRequest

__all__ = [
    "ACTION_CATALOGUE",
    "API_PREFIX",
    "AUDIT_LOGS_EPOCH",
    "DEFAULT_LIMIT",
    "ERROR_STATUS",
    "FAULT_KINDS",
    "GENERATED_ACTIONS",
    "KNOWN_ACTIONS",
    "MAX_LIMIT",
    "EntryFilter",
    "EventSet",
    "FakeAuditLogsServer",
    "FakeForwardProxy",
    "FaultKind",
    "FaultPlan",
    "ManualClock",
    "ProxiedRequest",
    "RecordedRequest",
    "RenderedEntries",
    "UnknownActionError",
    "default_span",
    "to_unix_seconds",
]
