"""Every column of a loaded row, pinned: a plain entry, an anomaly event and an entry holding NUL.

These pins are what a faster loader must keep byte for byte: the rows RowBuilder hands PostgreSQL's
COPY, and what each database returns after the operator loaded them (SQLite, PostgreSQL, MariaDB).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_slack_audit.transfers._dialects import PostgresDialect
from airflow_provider_slack_audit.transfers._schema import (
    COLUMN_NAMES,
    COLUMNS,
    JSON_KINDS,
    ColumnKind,
    RowBuilder,
)
from airflow_provider_slack_audit.transfers._table import TableName
from airflow_provider_slack_audit.transfers.slack_audit_to_sql import SlackAuditLogsToSqlOperator

from support.audit_entries import SAMPLE_ENTRIES, entry_line, land_window, lines_in_date_order, make_entry
from support.warehouses import Warehouse

ANOMALY = make_entry(
    "0d8a7b1e-0000-4000-8000-0000000000b0",
    seconds=900,
    action="anomaly",
    entity={"type": "user", "user": {"id": "W0ALICE", "name": "alice"}},
    context={
        "location": {"type": "enterprise", "id": "E0ACME", "name": "Acme Corp", "domain": "acme"},
        "ua": "curl/8.5",
        "ip_address": "198.51.100.9",
        "session_id": 1600000060282,  # a number: stored as its text
    },
    details={
        "reason": ["asn", "ip_address"],
        "previous_ip_address": "203.0.113.7",
        "previous_ua": "Mozilla/5.0",
        "action_timestamp": 1767485700123,  # milliseconds
        "location": "Paris",
    },
)
WITH_NUL = make_entry(
    "0d8a7b1e-0000-4000-8000-0000000000a0",
    seconds=600,
    action="user_login",
    entity={"type": "user", "user": {"id": "W0BOB", "name": "bo\x00b"}},
    actor={"type": "user", "user": {"id": "W0EVE", "name": "ev\x00e", "email": None, "team": "E0"}},
    details={"note": "a\x00b", "literal": "C:\\u0000"},
)
PLAIN = SAMPLE_ENTRIES["file"]

_LOCATION = {"location_type": "enterprise", "location_id": "E0ACME", "location_name": "Acme Corp"}
_ALICE = {
    "actor_type": "user",
    "actor_user_id": "W0ALICE",
    "actor_user_name": "alice",
    "actor_user_email": "alice@example.com",
    "actor_user_team": "E0ACME",
}
_NO_ANOMALY = {
    "anomaly_reasons": None,
    "anomaly_previous_ip_address": None,
    "anomaly_previous_ua": None,
    "anomaly_action_timestamp": None,
}
#: Every column but raw, with timestamps as PostgreSQL's COPY gets them and U+0000 escaped.
PINNED: dict[str, dict[str, Any]] = {
    PLAIN["id"]: {
        "id": PLAIN["id"],
        "date_create": "2026-01-04T02:00:00+00:00",
        "action": "file_downloaded",
        **_ALICE,
        "entity_type": "file",
        "entity_id": "F0REPORT",
        "entity_name": "q4.csv",
        **_LOCATION,
        "location_domain": "acme",
        "ua": "Mozilla/5.0 (Macintosh) Slack/4.41",
        "ip_address": "203.0.113.7",
        "session_id": "8412335931",
        "app_id": "A0EXPORT",
        "app_name": "Exporter",
        "details": None,
        **_NO_ANOMALY,
    },
    ANOMALY["id"]: {
        "id": ANOMALY["id"],
        "date_create": "2026-01-04T00:15:00+00:00",
        "action": "anomaly",
        **_ALICE,
        "entity_type": "user",
        "entity_id": "W0ALICE",
        "entity_name": "alice",
        **_LOCATION,
        "location_domain": "acme",
        "ua": "curl/8.5",
        "ip_address": "198.51.100.9",
        "session_id": "1600000060282",
        "app_id": None,
        "app_name": None,
        "details": '{"reason":["asn","ip_address"],"previous_ip_address":"203.0.113.7",'
        '"previous_ua":"Mozilla/5.0","action_timestamp":1767485700123,"location":"Paris"}',
        "anomaly_reasons": '["asn","ip_address"]',
        "anomaly_previous_ip_address": "203.0.113.7",
        "anomaly_previous_ua": "Mozilla/5.0",
        "anomaly_action_timestamp": "2026-01-04T00:15:00.123000+00:00",
    },
    WITH_NUL["id"]: {
        "id": WITH_NUL["id"],
        "date_create": "2026-01-04T00:10:00+00:00",
        "action": "user_login",
        "actor_type": "user",
        "actor_user_id": "W0EVE",
        "actor_user_name": "ev\\u0000e",
        "actor_user_email": None,
        "actor_user_team": "E0",
        "entity_type": "user",
        "entity_id": "W0BOB",
        "entity_name": "bo\\u0000b",
        **_LOCATION,
        "location_domain": "acme",
        "ua": "Mozilla/5.0 (Macintosh) Slack/4.41",
        "ip_address": "203.0.113.7",
        "session_id": "8412335931",
        "app_id": None,
        "app_name": None,
        "details": '{"note":"a\\\\u0000b","literal":"C:\\\\u0000"}',
        **_NO_ANOMALY,
    },
}
ENTRIES = (PLAIN, ANOMALY, WITH_NUL)


#: ``raw`` of the NUL entry as PostgreSQL gets it: its JSON escape of U+0000 escaped once more, the
#: escaped backslash before a literal "u0000" left as it was.
NUL_RAW = (
    '{"id":"0d8a7b1e-0000-4000-8000-0000000000a0","date_create":1767485400,"action":"user_login",'
    '"actor":{"type":"user","user":{"id":"W0EVE","name":"ev\\\\u0000e","email":null,"team":"E0"}},'
    '"entity":{"type":"user","user":{"id":"W0BOB","name":"bo\\\\u0000b"}},'
    '"context":{"location":{"type":"enterprise","id":"E0ACME","name":"Acme Corp","domain":"acme"},'
    '"ua":"Mozilla/5.0 (Macintosh) Slack/4.41","ip_address":"203.0.113.7","session_id":"8412335931"},'
    '"details":{"note":"a\\\\u0000b","literal":"C:\\\\u0000"}}'
)


def postgres_raw(entry: dict[str, Any]) -> str:
    """``raw`` as PostgreSQL gets it: the landed line, or for the NUL entry its pinned escape."""
    return NUL_RAW if entry is WITH_NUL else entry_line(entry).decode()


@pytest.mark.parametrize("entry", ENTRIES, ids=["plain", "anomaly", "nul"])
def test_postgres_rows_are_pinned_column_by_column(entry: dict[str, Any]) -> None:
    dialect = PostgresDialect(TableName("t"))
    builder = RowBuilder(dialect.timestamp, escape_nul=dialect.escape_nul)

    row = dict(zip(COLUMN_NAMES, builder.build(entry_line(entry)), strict=True))

    assert row == {**PINNED[entry["id"]], "raw": postgres_raw(entry)}


def normalised(kind: str, column: str, value: Any) -> Any:
    """A stored value in one form for every database: aware UTC datetimes, parsed JSON."""
    if value is None:
        return None
    if COLUMNS[column] is ColumnKind.TIMESTAMP:
        if isinstance(value, str):
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    if COLUMNS[column] in JSON_KINDS:
        return json.loads(value) if isinstance(value, (str, bytes)) else value
    return value


def expected_stored(kind: str, entry: dict[str, Any]) -> dict[str, Any]:
    """The pinned row as ``kind`` stores it: only PostgreSQL needs the escape for U+0000."""
    pinned = {**PINNED[entry["id"]], "raw": postgres_raw(entry)}
    if kind != "postgres":
        names = ("actor_user_name", "entity_name")
        unescaped = {name: str(pinned[name]).replace("\\u0000", "\x00") for name in names if pinned[name]}
        pinned.update(unescaped, raw=entry_line(entry).decode())
        if entry.get("details") is not None:
            pinned["details"] = json.dumps(entry["details"])
    return {name: normalised(kind, name, value) for name, value in pinned.items()}


def test_loaded_rows_are_pinned_column_by_column(warehouse: Warehouse, landing_dir: Path) -> None:
    manifest = land_window(landing_dir, lines_in_date_order(ENTRIES))
    SlackAuditLogsToSqlOperator(
        task_id="load", source=manifest, conn_id=warehouse.conn_id, table=warehouse.table
    ).execute(context={})

    stored = warehouse.rows_by_id()

    assert set(stored) == {entry["id"] for entry in ENTRIES}
    for entry in ENTRIES:
        row = {name: normalised(warehouse.kind, name, value) for name, value in stored[entry["id"]].items()}
        assert row == expected_stored(warehouse.kind, entry), entry["id"]
