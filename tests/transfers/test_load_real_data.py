"""Data real windows hold loads on every database: NUL characters, anomaly events; bad bytes fail once.

Every test taking the ``warehouse`` fixture runs on SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_slack_audit.ingest.landing import read_manifest
from airflow_provider_slack_audit.transfers._schema import NUL_ESCAPE
from airflow_provider_slack_audit.transfers.slack_audit_to_sql import SlackAuditLogsToSqlOperator
from airflow_provider_slack_audit.version_compat import AirflowFailException

from support.audit_entries import (
    SAMPLE_ENTRIES,
    entry_line,
    land_window,
    lines_in_date_order,
    make_entry,
    replace_landed_lines,
    sample_lines,
)
from support.warehouses import Warehouse


def load(warehouse: Warehouse, source: Any, **kwargs: Any) -> dict[str, Any]:
    operator = SlackAuditLogsToSqlOperator(
        task_id="load", source=source, conn_id=warehouse.conn_id, table=warehouse.table, **kwargs
    )
    result: dict[str, Any] = operator.execute(context={})
    return result


def as_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def as_utc(value: Any) -> datetime:
    """A timestamp column as an aware datetime: SQLite text, PostgreSQL aware, MariaDB naive UTC."""
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert isinstance(value, datetime)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def with_nul_escaped(value: Any) -> Any:
    """``value`` with every U+0000 in its strings (keys too) replaced by the documented escape."""
    if isinstance(value, str):
        return value.replace("\x00", NUL_ESCAPE)
    if isinstance(value, dict):
        return {with_nul_escaped(key): with_nul_escaped(item) for key, item in value.items()}
    if isinstance(value, list):
        return [with_nul_escaped(item) for item in value]
    return value


NUL_ENTRY = make_entry(
    "0d8a7b1e-0000-4000-8000-0000000000a0",
    seconds=600,
    action="user_login",
    entity={"type": "user", "user": {"id": "W0BOB", "name": "bo\x00b"}},
    actor={"type": "user", "user": {"id": "W0EVE", "name": "ev\x00e", "email": None, "team": "E0"}},
    details={"note": "a\x00b", "literal": "C:\\u0000"},
)


def test_an_entry_holding_nul_loads_with_the_documented_escape(
    warehouse: Warehouse, landing_dir: Path
) -> None:
    manifest = land_window(landing_dir, lines_in_date_order([*SAMPLE_ENTRIES.values(), NUL_ENTRY]))
    data_path = Path(read_manifest(manifest).intervals[0].data_path.path)
    landed = data_path.read_bytes()

    result = load(warehouse, manifest)

    assert result["rows"] == warehouse.count() == len(SAMPLE_ENTRIES) + 1
    row = warehouse.rows_by_id()[NUL_ENTRY["id"]]
    raw, details = as_json(row["raw"]), as_json(row["details"])
    if warehouse.kind == "postgres":  # text and JSONB cannot hold U+0000: the six characters \u0000
        assert (row["actor_user_name"], row["entity_name"]) == (f"ev{NUL_ESCAPE}e", f"bo{NUL_ESCAPE}b")
        assert details == {"note": f"a{NUL_ESCAPE}b", "literal": "C:\\u0000"}
        assert raw == with_nul_escaped(NUL_ENTRY)
    else:  # SQLite and MariaDB hold it as it is
        assert (row["actor_user_name"], row["entity_name"]) == ("ev\x00e", "bo\x00b")
        assert details == NUL_ENTRY["details"]
        assert row["raw"] == entry_line(NUL_ENTRY).decode()
    assert data_path.read_bytes() == landed  # the landed file stays byte-exact


def test_reloading_a_window_with_nul_changes_nothing(warehouse: Warehouse, landing_dir: Path) -> None:
    manifest = land_window(landing_dir, lines_in_date_order([NUL_ENTRY]))
    load(warehouse, manifest)

    again = load(warehouse, manifest)

    assert (again["inserted"], again["updated"], again["unchanged"]) == (0, 0, 1)


def test_a_landed_file_that_is_not_utf8_fails_once_naming_file_and_line(
    warehouse: Warehouse, landing_dir: Path
) -> None:
    manifest = land_window(landing_dir, sample_lines("user", "app"))
    good = entry_line(SAMPLE_ENTRIES["user"])
    bad = good.replace(b"alice", b"al\xffce")
    data_path = replace_landed_lines(manifest, 0, [good, bad])

    with pytest.raises(AirflowFailException, match=rf"line 2 of .*{data_path.name} is not an Audit Logs"):
        load(warehouse, manifest)

    assert warehouse.count() == 0


ANOMALY_MS = make_entry(
    "0d8a7b1e-0000-4000-8000-0000000000b1",
    seconds=900,
    action="anomaly",
    entity={"type": "user", "user": {"id": "W0ALICE", "name": "alice"}},
    details={
        "action_timestamp": 1767485700123,  # milliseconds
        "location": "Paris, FR",
        "reason": ["asn", "ip_address"],
        "previous_ip_address": "198.51.100.4",
        "previous_ua": "Slack/4.40 (Windows)",
    },
)
ANOMALY_US = make_entry(
    "0d8a7b1e-0000-4000-8000-0000000000b2",
    seconds=1_000,
    action="anomaly",
    entity={"type": "user", "user": {"id": "W0ALICE", "name": "alice"}},
    details={"action_timestamp": 1767485800123456, "reason": ["tor"]},  # microseconds
)


def test_anomaly_events_get_queryable_columns(warehouse: Warehouse, landing_dir: Path) -> None:
    manifest = land_window(
        landing_dir, lines_in_date_order([*SAMPLE_ENTRIES.values(), ANOMALY_MS, ANOMALY_US])
    )

    load(warehouse, manifest)

    rows = warehouse.rows_by_id()
    ms, us = rows[ANOMALY_MS["id"]], rows[ANOMALY_US["id"]]
    assert as_json(ms["anomaly_reasons"]) == ["asn", "ip_address"]
    assert (ms["anomaly_previous_ip_address"], ms["anomaly_previous_ua"]) == (
        "198.51.100.4",
        "Slack/4.40 (Windows)",
    )
    assert as_utc(ms["anomaly_action_timestamp"]) == datetime(
        2026, 1, 4, 0, 15, 0, 123000, tzinfo=timezone.utc
    )
    assert as_utc(us["anomaly_action_timestamp"]) == datetime(
        2026, 1, 4, 0, 16, 40, 123456, tzinfo=timezone.utc
    )
    assert as_json(us["anomaly_reasons"]) == ["tor"] and us["anomaly_previous_ua"] is None
    assert as_json(ms["raw"]) == ANOMALY_MS  # raw keeps the whole event
    assert rows[SAMPLE_ENTRIES["user"]["id"]]["anomaly_reasons"] is None


@pytest.mark.parametrize("warehouse", ["postgres"], indirect=True)
def test_postgres_anomaly_columns_are_jsonb_and_timestamptz(warehouse: Warehouse, landing_dir: Path) -> None:
    load(warehouse, land_window(landing_dir, lines_in_date_order([ANOMALY_MS])))

    found = warehouse.query(
        "SELECT id FROM {table} WHERE anomaly_reasons ? 'asn' "
        "AND anomaly_action_timestamp > date_create - interval '1 hour'"
    )
    assert found == [(ANOMALY_MS["id"],)]


def test_an_older_table_without_the_anomaly_columns_gets_them(
    warehouse: Warehouse, landing_dir: Path
) -> None:
    load(warehouse, land_window(landing_dir, sample_lines("user")))
    for column in ("anomaly_reasons", "anomaly_previous_ip_address", "anomaly_previous_ua"):
        warehouse.hook().run(f"ALTER TABLE {warehouse.table} DROP COLUMN {column}")

    load(warehouse, land_window(landing_dir / "again", lines_in_date_order([ANOMALY_MS])))

    assert as_json(warehouse.rows_by_id()[ANOMALY_MS["id"]]["anomaly_reasons"]) == ["asn", "ip_address"]
