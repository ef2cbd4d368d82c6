"""SlackAuditLogsToSqlOperator against real databases: a SQLite file and a PostgreSQL server.

Every test taking the ``warehouse`` fixture runs on both. Windows are landed with the ingest's own
``Landing``, so the operator reads exactly what the landing operator writes.
"""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_slack_audit.ingest.landing import read_manifest
from airflow_provider_slack_audit.transfers._dialects import MySqlDialect, PostgresDialect, SqliteDialect
from airflow_provider_slack_audit.transfers.slack_audit_to_sql import SlackAuditLogsToSqlOperator
from airflow_provider_slack_audit.version_compat import AirflowFailException

from support.audit_entries import (
    SAMPLE_ENTRIES,
    WINDOW,
    entry_line,
    land_window,
    lines_in_date_order,
    make_entry,
    sample_lines,
)
from support.warehouses import Warehouse, assert_is_load_summary


def load(warehouse: Warehouse, source: Any, **kwargs: Any) -> dict[str, Any]:
    operator = SlackAuditLogsToSqlOperator(
        task_id="load", source=source, conn_id=warehouse.conn_id, table=warehouse.table, **kwargs
    )
    result: dict[str, Any] = operator.execute(context={})
    return result


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def as_json(value: Any) -> Any:
    """A JSON column's value as Python data: SQLite returns text, PostgreSQL (JSONB) parsed data."""
    return json.loads(value) if isinstance(value, str) else value


def as_utc(value: Any) -> datetime:
    """``date_create`` as an aware datetime: SQLite holds ISO-8601 text, PostgreSQL a timestamptz."""
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert isinstance(value, datetime)
    return value.astimezone(timezone.utc)


_ACTOR_ALICE = {
    "actor_type": "user",
    "actor_user_id": "W0ALICE",
    "actor_user_name": "alice",
    "actor_user_email": "alice@example.com",
    "actor_user_team": "E0ACME",
}
_CONTEXT_ACME = {
    "location_type": "enterprise",
    "location_id": "E0ACME",
    "location_name": "Acme Corp",
    "location_domain": "acme",
    "ua": "Mozilla/5.0 (Macintosh) Slack/4.41",
    "ip_address": "203.0.113.7",
    "session_id": "8412335931",
    "app_id": None,
    "app_name": None,
}

#: No sample entry is an anomaly event: their anomaly columns are NULL.
_NOT_AN_ANOMALY = {
    "anomaly_reasons": None,
    "anomaly_previous_ip_address": None,
    "anomaly_previous_ua": None,
    "anomaly_action_timestamp": None,
}

#: The row each sample entry must become (all columns but ``id`` and ``raw``).
EXPECTED_ROWS: dict[str, dict[str, Any]] = {
    "user": {
        "date_create": utc("2026-01-04T00:01:00"),
        "action": "user_login",
        **_ACTOR_ALICE,
        "entity_type": "user",
        "entity_id": "W0BOB",
        "entity_name": "bob",
        **_CONTEXT_ACME,
        "details": None,
        **_NOT_AN_ANOMALY,
    },
    "channel": {
        "date_create": utc("2026-01-04T01:00:00"),
        "action": "private_channel_created",
        **_ACTOR_ALICE,
        "entity_type": "channel",
        "entity_id": "C0SECRET",
        "entity_name": "project-x",
        **_CONTEXT_ACME,
        "details": {"is_internal_integration": False},
        **_NOT_AN_ANOMALY,
    },
    "file": {
        "date_create": utc("2026-01-04T02:00:00"),
        "action": "file_downloaded",
        **_ACTOR_ALICE,
        "entity_type": "file",
        "entity_id": "F0REPORT",
        "entity_name": "q4.csv",
        **_CONTEXT_ACME,
        "app_id": "A0EXPORT",
        "app_name": "Exporter",
        "details": None,
        **_NOT_AN_ANOMALY,
    },
    "app": {
        "date_create": utc("2026-01-04T06:00:00"),
        "action": "app_scopes_expanded",
        **_ACTOR_ALICE,
        "entity_type": "app",
        "entity_id": "A0EXPORT",
        "entity_name": "Exporter",
        **_CONTEXT_ACME,
        "details": {"new_scopes": ["files:read", "users:read.email"], "previous_scopes": ["files:read"]},
        **_NOT_AN_ANOMALY,
    },
    "workspace": {
        "date_create": utc("2026-01-04T12:00:00"),
        "action": "pref.sso_setting_changed",
        **_ACTOR_ALICE,
        "entity_type": "workspace",
        "entity_id": "T0SALES",
        "entity_name": "Sales",
        **_CONTEXT_ACME,
        "location_type": "workspace",
        "location_id": "T0SALES",
        "location_name": "Sales",
        "location_domain": None,
        "details": None,
        **_NOT_AN_ANOMALY,
    },
    "enterprise": {
        "date_create": utc("2026-01-04T18:00:00"),
        "action": "manual_export_started",
        **_ACTOR_ALICE,
        "entity_type": "enterprise",
        "entity_id": "E0ACME",
        "entity_name": "Acme Corp",
        **_CONTEXT_ACME,
        "details": {"export_type": "standard", "path": "C:\\exports\\q4\tfinal\nv2"},
        **_NOT_AN_ANOMALY,
    },
    "unknown_type_and_fields": {
        "date_create": utc("2026-01-04T19:26:40"),
        "action": "canvas_shared",
        "actor_type": "user",
        "actor_user_id": "W0ZOE",
        "actor_user_name": "Zoë 東京",
        "actor_user_email": None,
        "actor_user_team": "E0ACME",
        "entity_type": "canvas",
        "entity_id": "F0CANVAS",
        "entity_name": "Roadmap 🚀",
        **_CONTEXT_ACME,
        "ua": None,
        "ip_address": "2001:db8::1",
        "session_id": None,
        "details": None,
        **_NOT_AN_ANOMALY,
    },
    "minimal": {
        "date_create": utc("2026-01-04T23:59:59"),
        "action": "message_tombstoned",
        "actor_type": "app",
        "actor_user_id": None,
        "actor_user_name": None,
        "actor_user_email": None,
        "actor_user_team": None,
        "entity_type": "message",
        "entity_id": None,
        "entity_name": None,
        "location_type": None,
        "location_id": None,
        "location_name": None,
        "location_domain": None,
        "ua": None,
        "ip_address": None,
        "session_id": None,
        "app_id": None,
        "app_name": None,
        "details": None,
        **_NOT_AN_ANOMALY,
    },
}


@pytest.fixture
def sample_manifest(landing_dir: Path) -> str:
    return land_window(landing_dir, sample_lines())


def test_row_count_equals_the_windows_distinct_ids(
    warehouse: Warehouse, landing_dir: Path, tmp_path: Path
) -> None:
    # The same entry landed in two intervals (a late copy): one row, holding the later copy.
    first = make_entry("dup-1", seconds=100, action="user_login", entity={"type": "user", "user": {}})
    later = {**first, "date_create": first["date_create"] + 30_000, "details": {"copy": 2}}
    manifest = land_window(landing_dir, lines_in_date_order([*SAMPLE_ENTRIES.values(), first, later]))

    result = load(warehouse, manifest)

    assert warehouse.count() == len(SAMPLE_ENTRIES) + 1
    assert result["rows"] == len(SAMPLE_ENTRIES) + 2
    assert as_json(warehouse.rows_by_id()["dup-1"]["details"]) == {"copy": 2}


@pytest.mark.parametrize("name", list(SAMPLE_ENTRIES))
def test_columns_hold_the_entrys_values(warehouse: Warehouse, sample_manifest: str, name: str) -> None:
    load(warehouse, sample_manifest)

    entry = SAMPLE_ENTRIES[name]
    row = warehouse.rows_by_id()[entry["id"]]
    found = {
        **row,
        "date_create": as_utc(row["date_create"]),
        "details": as_json(row["details"]),
    }
    del found["id"], found["raw"]
    assert found == EXPECTED_ROWS[name]


def test_raw_holds_the_entry_with_fields_this_provider_does_not_know(
    warehouse: Warehouse, sample_manifest: str
) -> None:
    load(warehouse, sample_manifest)

    entry = SAMPLE_ENTRIES["unknown_type_and_fields"]
    # Byte for byte as landed: SQLite's text, MariaDB's JSON (text checked by JSON_VALID) and
    # PostgreSQL's JSON (text checked to be JSON; JSONB would reorder keys and respace).
    text = "raw::text" if warehouse.kind == "postgres" else "raw"
    found = dict(warehouse.query(f"SELECT id, {text} FROM {{table}}"))  # noqa: S608 (our column name)
    assert found[entry["id"]] == entry_line(entry).decode()
    assert as_json(warehouse.rows_by_id()[entry["id"]]["raw"])["labels"] == {"sensitivity": "high"}


@pytest.mark.parametrize("warehouse", ["sqlite"], indirect=True)
def test_sqlite_stores_date_create_as_iso_utc_text_that_sorts_by_time(
    warehouse: Warehouse, sample_manifest: str
) -> None:
    load(warehouse, sample_manifest)

    stored = [row[0] for row in warehouse.query("SELECT date_create FROM {table} ORDER BY date_create")]

    assert stored[0] == "2026-01-04T00:01:00Z"
    assert stored[-1] == "2026-01-04T23:59:59Z"
    assert stored == sorted(as_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ") for value in stored)


def test_loading_a_window_twice_leaves_identical_rows(warehouse: Warehouse, sample_manifest: str) -> None:
    first = load(warehouse, sample_manifest)
    content = warehouse.dump()

    second = load(warehouse, sample_manifest)

    assert warehouse.dump() == content
    assert (first["inserted"], first["updated"], first["unchanged"]) == (len(SAMPLE_ENTRIES), 0, 0)
    assert (second["inserted"], second["updated"], second["unchanged"]) == (0, 0, len(SAMPLE_ENTRIES))


@pytest.mark.parametrize("warehouse", ["postgres"], indirect=True)
def test_reloading_on_postgres_rewrites_no_row_versions(warehouse: Warehouse, sample_manifest: str) -> None:
    load(warehouse, sample_manifest)
    row_versions = "SELECT id, xmin::text, ctid::text FROM {table} ORDER BY id"
    versions = warehouse.query(row_versions)

    load(warehouse, sample_manifest)

    assert warehouse.query(row_versions) == versions


def _spy_on_copies(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The table each COPY of the PostgreSQL writer goes into, in order (unquoted)."""
    targets: list[str] = []
    copy = PostgresDialect._copy

    def spy(self: PostgresDialect, connection: Any, target: str, rows: Any) -> None:
        targets.append(target.strip('"'))
        copy(self, connection, target, rows)

    monkeypatch.setattr(PostgresDialect, "_copy", spy)
    return targets


@pytest.mark.parametrize("warehouse", ["postgres"], indirect=True)
def test_a_first_postgres_load_copies_every_batch_straight_into_the_table(
    warehouse: Warehouse, sample_manifest: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    targets = _spy_on_copies(monkeypatch)

    result = load(warehouse, sample_manifest, batch_size=2)

    assert targets == [warehouse.table] * -(-len(SAMPLE_ENTRIES) // 2)
    assert (result["inserted"], result["updated"], result["unchanged"]) == (len(SAMPLE_ENTRIES), 0, 0)
    assert warehouse.count() == len(SAMPLE_ENTRIES)


@pytest.mark.parametrize("warehouse", ["postgres"], indirect=True)
@pytest.mark.parametrize("batch_size", [2, 1000])
def test_a_postgres_load_meeting_an_id_the_table_holds_upserts_from_that_batch_on(
    warehouse: Warehouse, landing_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch_size: int
) -> None:
    # The table holds the window's newest entry: the load's last batch, and that batch's last row,
    # meets it (the COPY fails at its very end, after every other row went in).
    newest = max(SAMPLE_ENTRIES.values(), key=lambda entry: entry["date_create"])
    load(warehouse, land_window(tmp_path / "newest", [entry_line(newest)]))
    manifest = land_window(landing_dir, sample_lines())
    targets = _spy_on_copies(monkeypatch)

    result = load(warehouse, manifest, batch_size=batch_size)

    assert (result["inserted"], result["updated"], result["unchanged"]) == (len(SAMPLE_ENTRIES) - 1, 0, 1)
    straight = -(-len(SAMPLE_ENTRIES) // batch_size)  # every batch tried straight; the last one failed
    assert targets == [warehouse.table] * straight + ["slack_audit_load_staging"]
    # The same rows as a first load of the window into an empty table, each once.
    fresh = Warehouse(warehouse.kind, warehouse.conn_id, f"{warehouse.table}_fresh")
    try:
        load(fresh, manifest)
        assert warehouse.dump() == fresh.dump()
    finally:
        fresh.drop()


@pytest.mark.parametrize("warehouse", ["postgres"], indirect=True)
def test_a_postgres_reload_upserts_after_one_failed_copy(
    warehouse: Warehouse, sample_manifest: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    load(warehouse, sample_manifest)
    targets = _spy_on_copies(monkeypatch)

    result = load(warehouse, sample_manifest, batch_size=2)

    assert targets[0] == warehouse.table
    assert set(targets[1:]) == {"slack_audit_load_staging"}
    assert len(targets) == 1 + -(-len(SAMPLE_ENTRIES) // 2)
    assert (result["inserted"], result["updated"], result["unchanged"]) == (0, 0, len(SAMPLE_ENTRIES))


def test_reloading_a_relanded_window_updates_only_changed_entries(
    warehouse: Warehouse, landing_dir: Path, tmp_path: Path
) -> None:
    load(warehouse, land_window(landing_dir, sample_lines()))
    changed = {**SAMPLE_ENTRIES["app"], "details": {"new_scopes": ["admin"]}}
    relanded = [
        entry_line(changed) if json.loads(line)["id"] == changed["id"] else line for line in sample_lines()
    ]

    result = load(warehouse, land_window(tmp_path / "relanded", relanded))

    assert (result["inserted"], result["updated"], result["unchanged"]) == (0, 1, len(SAMPLE_ENTRIES) - 1)
    assert as_json(warehouse.rows_by_id()[changed["id"]]["details"]) == {"new_scopes": ["admin"]}


def test_a_failure_mid_load_rolls_the_table_back(
    warehouse: Warehouse, landing_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load(warehouse, land_window(landing_dir, sample_lines("user", "channel")))
    before = warehouse.dump()
    calls = 0

    def write_batch_failing_on_the_third(self: Any, cursor: Any, rows: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise ConnectionError("server closed the connection unexpectedly")
        return original[type(self)](self, cursor, rows)

    original = {cls: cls.write_batch for cls in (PostgresDialect, SqliteDialect, MySqlDialect)}
    for cls in original:
        monkeypatch.setattr(cls, "write_batch", write_batch_failing_on_the_third)
    # The new window updates both stored rows and inserts six, two per batch: the third batch fails.
    changed = lines_in_date_order(
        [{**entry, "action": f"{entry['action']}_v2"} for entry in SAMPLE_ENTRIES.values()]
    )

    with pytest.raises(ConnectionError):
        load(warehouse, land_window(tmp_path / "second", changed), batch_size=2)

    assert calls == 3
    assert warehouse.dump() == before


def test_a_corrupt_line_after_batches_were_written_rolls_the_table_back(
    warehouse: Warehouse, landing_dir: Path
) -> None:
    # PostgreSQL writes a batch while the next is built: the failure comes while one is in flight.
    not_an_entry = json.dumps({"id": "x", "date_create": WINDOW.oldest + 86_000}).encode()  # no action
    lines = [line for line in sample_lines() if json.loads(line)["date_create"] < WINDOW.oldest + 86_000]
    manifest = land_window(landing_dir, [*lines, not_an_entry])

    with pytest.raises(AirflowFailException, match=r"line \d+ of .* is not an Audit Logs entry"):
        load(warehouse, manifest, batch_size=1)

    assert warehouse.count() == 0


def test_a_data_file_that_differs_from_its_manifest_fails_and_loads_nothing(
    warehouse: Warehouse, sample_manifest: str
) -> None:
    # Tampered evidence: same entries, one of them edited, recompressed.
    data_path = Path(read_manifest(sample_manifest).intervals[0].data_path.path)
    lines = gzip.decompress(data_path.read_bytes()).replace(b"alice@example.com", b"mallory@example.com")
    data_path.write_bytes(gzip.compress(lines))

    with pytest.raises(AirflowFailException, match="does not match its manifest") as failure:
        load(warehouse, sample_manifest)

    assert str(data_path) in str(failure.value)
    assert warehouse.count() == 0


def test_a_landed_line_that_is_not_an_entry_fails_naming_file_and_line(
    warehouse: Warehouse, landing_dir: Path
) -> None:
    not_an_entry = json.dumps({"id": "x", "date_create": WINDOW.oldest + 5}).encode()  # no action
    manifest = land_window(landing_dir, [not_an_entry])

    with pytest.raises(AirflowFailException, match=r"line 1 of .*slack_audit_.*\.jsonl\.gz is not"):
        load(warehouse, manifest)


def test_creates_the_table_with_indexes_on_date_create_and_action(
    warehouse: Warehouse, sample_manifest: str
) -> None:
    load(warehouse, sample_manifest)

    if warehouse.kind == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = '{table}'"
    elif warehouse.kind == "mariadb":
        sql = "SELECT index_name FROM information_schema.statistics WHERE table_name = '{table}'"
    else:
        sql = "SELECT indexname FROM pg_indexes WHERE tablename = '{table}'"
    indexes = {row[0] for row in warehouse.query(sql)}
    assert {f"{warehouse.table}_date_create_idx", f"{warehouse.table}_action_idx"} <= indexes


@pytest.mark.parametrize("warehouse", ["postgres"], indirect=True)
def test_postgres_columns_have_native_types(warehouse: Warehouse, sample_manifest: str) -> None:
    load(warehouse, sample_manifest)

    types = dict(
        warehouse.query(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = '{table}'"
        )
    )
    assert types["date_create"] == "timestamp with time zone"
    assert types["details"] == types["anomaly_reasons"] == "jsonb"
    assert types["raw"] == "json"  # the entry's text exactly as landed
    assert types["id"] == types["action"] == types["entity_name"] == "text"


@pytest.mark.parametrize("warehouse", ["postgres"], indirect=True)
def test_a_postgres_table_with_jsonb_raw_from_an_older_release_loads_and_reloads(
    warehouse: Warehouse, landing_dir: Path, tmp_path: Path
) -> None:
    load(warehouse, land_window(tmp_path / "first", sample_lines("user")))
    warehouse.hook().run(f"ALTER TABLE {warehouse.table} ALTER raw TYPE jsonb USING raw::jsonb")
    manifest = land_window(landing_dir, sample_lines())

    first = load(warehouse, manifest)
    again = load(warehouse, manifest)

    assert (first["inserted"], first["updated"], first["unchanged"]) == (len(SAMPLE_ENTRIES) - 1, 0, 1)
    assert (again["inserted"], again["updated"], again["unchanged"]) == (0, 0, len(SAMPLE_ENTRIES))
    raw_type = (
        "SELECT data_type FROM information_schema.columns "
        "WHERE table_name = '{table}' AND column_name = 'raw'"
    )
    assert warehouse.query(raw_type) == [("jsonb",)]


def test_an_empty_window_creates_the_table_and_loads_nothing(warehouse: Warehouse, landing_dir: Path) -> None:
    result = load(warehouse, land_window(landing_dir, []))

    assert result["rows"] == 0
    assert warehouse.count() == 0


def test_returns_what_the_load_did(warehouse: Warehouse, sample_manifest: str) -> None:
    result = load(warehouse, {"manifest": sample_manifest, "window": {"start": "ignored"}})

    assert_is_load_summary(result)
    assert result == {
        "rows": len(SAMPLE_ENTRIES),
        "inserted": len(SAMPLE_ENTRIES),
        "updated": 0,
        "unchanged": 0,
        "table": warehouse.table,
        "window": WINDOW.to_json(),
        "manifest": sample_manifest,
    }


@pytest.mark.parametrize("warehouse", ["postgres"], indirect=True)
def test_loads_into_the_given_schema(warehouse: Warehouse, sample_manifest: str) -> None:
    schema = f"s_{warehouse.table}"
    warehouse.hook().run(f"CREATE SCHEMA {schema}")
    try:
        result = load(warehouse, sample_manifest, schema=schema)

        assert result["table"] == f"{schema}.{warehouse.table}"
        in_schema = Warehouse(warehouse.kind, warehouse.conn_id, f"{schema}.{warehouse.table}")
        assert in_schema.count() == len(SAMPLE_ENTRIES)
    finally:
        warehouse.hook().run(f"DROP SCHEMA {schema} CASCADE")


@pytest.mark.parametrize("warehouse", ["sqlite"], indirect=True)
@pytest.mark.parametrize("table", ["audit; DROP TABLE x", 't"--', "t`--", "1audit", "audit-logs", ""])
def test_refuses_a_table_name_that_is_not_a_plain_identifier_without_retry(
    warehouse: Warehouse, sample_manifest: str, table: str
) -> None:
    operator = SlackAuditLogsToSqlOperator(
        task_id="load", source=sample_manifest, conn_id=warehouse.conn_id, table=table
    )

    with pytest.raises(AirflowFailException, match="is not a plain SQL identifier"):
        operator.execute(context={})


@pytest.mark.parametrize("reserved", ["order", "select", "table"])
def test_a_reserved_word_as_table_name_is_quoted_and_loads(
    warehouse: Warehouse, sample_manifest: str, reserved: str
) -> None:
    warehouse.drop(reserved)
    try:
        first = load(Warehouse(warehouse.kind, warehouse.conn_id, reserved), sample_manifest)
        second = load(Warehouse(warehouse.kind, warehouse.conn_id, reserved), sample_manifest)

        assert (first["inserted"], second["unchanged"]) == (len(SAMPLE_ENTRIES), len(SAMPLE_ENTRIES))
        count = f"SELECT COUNT(*) FROM {warehouse.quoted(reserved)}"  # noqa: S608
        assert warehouse.query(count) == [(len(SAMPLE_ENTRIES),)]
    finally:
        warehouse.drop(reserved)


def test_refuses_a_connection_that_is_not_a_sql_database_without_retry(
    monkeypatch: pytest.MonkeyPatch, sample_manifest: str
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_NOT_SQL", json.dumps({"conn_type": "fs", "extra": {"path": "/tmp"}}))
    operator = SlackAuditLogsToSqlOperator(task_id="load", source=sample_manifest, conn_id="not_sql")

    with pytest.raises(AirflowFailException, match="'not_sql' gives a FSHook, which is not a common-sql"):
        operator.execute(context={})


def test_batches_start_small_then_hold_batch_size_distinct_ids() -> None:
    # The first batch is small, so the database starts while the rest is read; an id repeated
    # within a batch ends it (each batch is one upsert, which may touch a row only once).
    operator = SlackAuditLogsToSqlOperator(
        task_id="load", source="x", conn_id="c", table="t", batch_size=2500
    )
    rows = [(f"id-{n}", n) for n in range(6000)]
    rows.insert(4000, ("id-3999", "again"))

    sizes = [len(batch) for batch in operator._batches(iter(rows))]

    assert sizes == [1000, 2500, 500, 2001]  # the repeat opens the last batch
    assert sum(sizes) == len(rows)
    assert [len(batch) for batch in operator._batches(iter(rows[:10]))] == [10]


def test_refuses_a_batch_size_below_one() -> None:
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        SlackAuditLogsToSqlOperator(task_id="load", source="x", conn_id="c", batch_size=0)


def test_source_and_table_are_templated() -> None:
    assert {"source", "table"} <= set(SlackAuditLogsToSqlOperator.template_fields)
