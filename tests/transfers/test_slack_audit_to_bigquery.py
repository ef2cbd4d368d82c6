"""SlackAuditLogsToBigQueryOperator against local-bigquery's server, through the Google provider's hook.

A day of the fake org (12,000 events, anomaly events, late events) is landed with the ingest's own
Landing; every load goes through the operator's whole path (manifest check, verified read, upload
load job into a staging table, COUNT, MERGE by id) on the emulator. See support.emulators for how
the hook reaches the emulator.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_slack_audit.version_compat import AirflowFailException

from support.audit_entries import (
    SAMPLE_ENTRIES,
    bulk_lines,
    entry_line,
    land_window,
    lines_in_date_order,
    make_entry,
    replace_landed_lines,
    sample_lines,
)
from support.emulators import BIGQUERY_PROJECT, BigQueryEmulator
from support.landed_days import LandedDay, landed_day
from support.warehouses import assert_is_load_summary

pytest.importorskip("airflow.providers.google.cloud.hooks.bigquery")

from airflow_provider_slack_audit.transfers.slack_audit_to_bigquery import (
    SlackAuditLogsToBigQueryOperator,
)

pytestmark = [pytest.mark.slow, pytest.mark.bigquery]

DATASET = "slack_audit"
NUL_ENTRY = make_entry(
    "0d8a7b1e-0000-4000-8000-0000000000a0",
    seconds=600,
    action="user_login",
    entity={"type": "user", "user": {"id": "W0BOB", "name": "bo\x00b"}},
    actor={"type": "user", "user": {"id": "W0EVE", "name": "ev\x00e", "email": None, "team": "E0"}},
    details={"note": "a\x00b", "literal": "C:\\u0000"},
)


def load(conn_id: str, table: str, source: Any, **kwargs: Any) -> dict[str, Any]:
    operator = SlackAuditLogsToBigQueryOperator(
        task_id="load", source=source, gcp_conn_id=conn_id, dataset=DATASET, table=table, **kwargs
    )
    result: dict[str, Any] = operator.execute(context={})
    return result


def query(emulator: BigQueryEmulator, sql: str, table: str = "") -> list[tuple[Any, ...]]:
    """The rows of ``sql``, in which ``{table}`` stands for the dataset's ``table``."""
    client = emulator.client()
    return [tuple(row.values()) for row in client.query_and_wait(sql.format(table=f"{DATASET}.{table}"))]


def ids(emulator: BigQueryEmulator, table: str) -> list[str]:
    return [row[0] for row in query(emulator, "SELECT id FROM {table}", table)]


def dump(emulator: BigQueryEmulator, table: str) -> dict[str, str]:
    """Every row, every column (JSON columns as their canonical text), by id."""
    rows = query(emulator, "SELECT id, TO_JSON_STRING(t) FROM {table} AS t", table)
    return {row[0]: row[1] for row in rows}


@pytest.fixture(scope="module")
def dataset(bigquery_emulator: BigQueryEmulator) -> str:
    bigquery_emulator.client().create_dataset(DATASET, exists_ok=True)
    return DATASET


@pytest.fixture
def table(dataset: str) -> str:
    return f"audit_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> LandedDay:
    return landed_day(tmp_path_factory.mktemp("bigquery_day"))


@pytest.fixture(scope="module")
def small_day(tmp_path_factory: pytest.TempPathFactory) -> LandedDay:
    """A smaller day (anomaly events included), for the tests about one behaviour of the load."""
    return landed_day(tmp_path_factory.mktemp("bigquery_small_day"), events=1_500, seed=5)


@pytest.fixture
def fresh_day(tmp_path: Path) -> LandedDay:
    """A day of its own, for a test that re-lands it (a reconcile)."""
    return landed_day(tmp_path / "landing", events=3_000, seed=7)


def test_a_landed_day_loads_with_exactly_its_ids(
    bigquery_conn: str, bigquery_emulator: BigQueryEmulator, day: LandedDay, table: str
) -> None:
    result = load(bigquery_conn, table, {"manifest": day.manifest})

    loaded = ids(bigquery_emulator, table)
    assert len(loaded) == len(set(loaded)) == len(day.ids()) > 10_000
    assert set(loaded) == day.ids()
    assert (result["rows"], result["inserted"], result["updated"], result["unchanged"]) == (
        len(day.ids()),
        len(day.ids()),
        0,
        0,
    )
    assert result["table"] == f"{BIGQUERY_PROJECT}.{DATASET}.{table}" and result["manifest"] == day.manifest
    assert_is_load_summary(result)


def test_the_table_is_partitioned_by_day_of_date_create_and_clustered_by_action(
    bigquery_conn: str, bigquery_emulator: BigQueryEmulator, small_day: LandedDay, table: str
) -> None:
    load(bigquery_conn, table, small_day.manifest)

    created = bigquery_emulator.client().get_table(f"{DATASET}.{table}")
    assert (created.time_partitioning.type_, created.time_partitioning.field) == ("DAY", "date_create")
    assert created.clustering_fields == ["action"]
    types = {field.name: (field.field_type, field.mode) for field in created.schema}
    assert types["id"] == ("STRING", "REQUIRED") and types["date_create"] == ("TIMESTAMP", "REQUIRED")
    assert types["raw"] == ("JSON", "REQUIRED") and types["details"] == ("JSON", "NULLABLE")
    assert types["anomaly_reasons"] == ("JSON", "NULLABLE")


def test_anomaly_events_get_their_columns(
    bigquery_conn: str, bigquery_emulator: BigQueryEmulator, small_day: LandedDay, table: str
) -> None:
    load(bigquery_conn, table, small_day.manifest)

    rows = query(
        bigquery_emulator,
        "SELECT id, TO_JSON_STRING(anomaly_reasons), anomaly_previous_ip_address, anomaly_previous_ua, "
        "anomaly_action_timestamp, date_create FROM {table} WHERE action = 'anomaly'",
        table,
    )
    assert {row[0] for row in rows} == small_day.anomaly_ids()
    for _, reasons, previous_ip, previous_ua, acted, created in rows:
        assert json.loads(reasons) in (["tor"], ["asn", "ip_address"])
        assert (previous_ip, previous_ua) == ("198.51.100.9", "curl/8.0")
        assert acted == created  # ms and µs both become the event's own second


def test_raw_is_json_holding_the_landed_entry(
    bigquery_conn: str, bigquery_emulator: BigQueryEmulator, small_day: LandedDay, table: str
) -> None:
    load(bigquery_conn, table, small_day.manifest)

    (row,) = query(
        bigquery_emulator,
        "SELECT id, JSON_VALUE(raw, '$.id'), JSON_VALUE(raw, '$.action'), action, TO_JSON_STRING(raw) "
        "FROM {table} WHERE action = 'anomaly' ORDER BY id LIMIT 1",
        table,
    )
    assert row[1] == row[0] and row[2] == row[3] == "anomaly"
    assert json.loads(row[4])["details"]["previous_ua"] == "curl/8.0"


def test_a_rerun_of_the_load_changes_nothing(
    bigquery_conn: str, bigquery_emulator: BigQueryEmulator, day: LandedDay, table: str
) -> None:
    load(bigquery_conn, table, day.manifest)
    before = dump(bigquery_emulator, table)

    result = load(bigquery_conn, table, day.manifest)

    assert (result["inserted"], result["updated"], result["unchanged"]) == (0, 0, len(day.ids()))
    assert dump(bigquery_emulator, table) == before


def test_a_reconciled_window_reloaded_adds_exactly_the_late_rows_and_changes_nothing_else(
    bigquery_conn: str, bigquery_emulator: BigQueryEmulator, fresh_day: LandedDay, table: str
) -> None:
    load(bigquery_conn, table, fresh_day.manifest)
    before = dump(bigquery_emulator, table)

    late = fresh_day.reconcile()
    result = load(bigquery_conn, table, fresh_day.manifest)

    assert late, "the day must have events the first landing missed"
    after = dump(bigquery_emulator, table)
    assert set(after) - set(before) == late
    assert {key: after[key] for key in before} == before
    assert (result["inserted"], result["updated"]) == (len(late), 0)


def test_two_concurrent_loads_of_overlapping_windows_end_with_every_id_once(
    bigquery_conn: str,
    bigquery_emulator: BigQueryEmulator,
    day: LandedDay,
    table: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Emulator gap: two tables.insert of one table at once make local-bigquery answer 400 (a DuckLake
    # commit conflict) where BigQuery answers 409 Already Exists, which the operator's
    # create_table(exists_ok=True) takes. So table creation takes turns; uploads, loads and MERGEs don't.
    from google.cloud.bigquery import Client

    create_table, turns = Client.create_table, threading.Lock()

    def one_at_a_time(self: Any, *args: Any, **kwargs: Any) -> Any:
        with turns:
            return create_table(self, *args, **kwargs)

    monkeypatch.setattr(Client, "create_table", one_at_a_time)
    outcomes: list[str] = []

    def run() -> None:
        try:
            load(bigquery_conn, table, day.manifest)
            outcomes.append("ok")
        except Exception as error:  # collected: the assertion names it
            outcomes.append(f"{type(error).__name__}: {error}")

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)

    assert outcomes == ["ok", "ok"]
    loaded = ids(bigquery_emulator, table)
    assert len(loaded) == len(set(loaded)) == len(day.ids())


def test_nul_is_stored_as_is_and_a_reload_changes_nothing(
    bigquery_conn: str, bigquery_emulator: BigQueryEmulator, landing_dir: Path, table: str
) -> None:
    manifest = land_window(landing_dir, lines_in_date_order([*SAMPLE_ENTRIES.values(), NUL_ENTRY]))
    load(bigquery_conn, table, manifest)

    ((actor, entity, details, raw),) = query(
        bigquery_emulator,
        "SELECT actor_user_name, entity_name, TO_JSON_STRING(details), TO_JSON_STRING(raw) FROM {table} "  # noqa: S608
        f"WHERE id = '{NUL_ENTRY['id']}'",
        table,
    )
    assert (actor, entity) == ("ev\x00e", "bo\x00b")
    assert json.loads(details) == NUL_ENTRY["details"] and json.loads(raw) == NUL_ENTRY
    again = load(bigquery_conn, table, manifest)
    assert (again["inserted"], again["updated"]) == (0, 0)


def test_a_landed_file_that_is_not_utf8_fails_naming_file_and_line_and_loads_nothing(
    bigquery_conn: str, bigquery_emulator: BigQueryEmulator, landing_dir: Path, table: str
) -> None:
    manifest = land_window(landing_dir, sample_lines("user", "app"))
    good = entry_line(SAMPLE_ENTRIES["user"])
    data_path = replace_landed_lines(manifest, 0, [good, good.replace(b"alice", b"al\xffce")])

    with pytest.raises(AirflowFailException, match=rf"line 2 of .*{data_path.name} is not an Audit Logs"):
        load(bigquery_conn, table, manifest)

    assert query(bigquery_emulator, "SELECT COUNT(*) FROM {table}", table) == [(0,)]


@pytest.fixture
def jobs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The kind of every job the operator's client starts (load or query text), in order."""
    from google.cloud.bigquery import Client

    started: list[str] = []
    query, load_from_file = Client.query, Client.load_table_from_file

    def recording_query(self: Any, sql: str, *args: Any, **kwargs: Any) -> Any:
        started.append(sql)
        return query(self, sql, *args, **kwargs)

    def recording_load(self: Any, *args: Any, **kwargs: Any) -> Any:
        started.append("LOAD")
        return load_from_file(self, *args, **kwargs)

    monkeypatch.setattr(Client, "query", recording_query)
    monkeypatch.setattr(Client, "load_table_from_file", recording_load)
    return started


def test_jobs_per_window_do_not_grow_with_events_or_files(
    bigquery_conn: str, jobs: list[str], tmp_path: Path, dataset: str
) -> None:
    small = land_window(tmp_path / "small", bulk_lines(10, seed=1))  # 4 files, 10 events
    large = land_window(tmp_path / "large", bulk_lines(5_000, seed=2), step=timedelta(hours=1))  # 24 files
    load(bigquery_conn, f"audit_{uuid.uuid4().hex[:12]}", small)
    for_small = list(jobs)
    jobs.clear()

    load(bigquery_conn, f"audit_{uuid.uuid4().hex[:12]}", large)

    assert len(jobs) == len(for_small) == 3
    assert jobs[0] == "LOAD" and jobs[1].startswith("SELECT COUNT") and jobs[2].startswith("MERGE INTO")


def test_an_older_table_without_the_anomaly_columns_gets_them(
    bigquery_conn: str, bigquery_emulator: BigQueryEmulator, small_day: LandedDay, table: str
) -> None:
    load(bigquery_conn, table, small_day.manifest)
    for column in ("anomaly_reasons", "anomaly_previous_ip_address", "anomaly_action_timestamp"):
        query(bigquery_emulator, f"ALTER TABLE {{table}} DROP COLUMN {column}", table)

    load(bigquery_conn, table, small_day.manifest)

    rows = query(bigquery_emulator, "SELECT COUNT(*) FROM {table} WHERE anomaly_reasons IS NOT NULL", table)
    assert rows == [(len(small_day.anomaly_ids()),)]


def test_a_missing_table_with_create_table_off_fails_without_retries(
    bigquery_conn: str, small_day: LandedDay, table: str
) -> None:
    with pytest.raises(AirflowFailException, match=f"retry would repeat.*{table}"):
        load(bigquery_conn, table, small_day.manifest, create_table=False)


def test_a_table_of_another_shape_is_refused_naming_the_missing_columns(
    bigquery_conn: str, bigquery_emulator: BigQueryEmulator, small_day: LandedDay, table: str
) -> None:
    query(bigquery_emulator, "CREATE TABLE {table} (id STRING, date_create TIMESTAMP)", table)

    with pytest.raises(AirflowFailException, match="lacks the columns action, actor_type"):
        load(bigquery_conn, table, small_day.manifest)


def test_a_load_that_fails_after_staging_drops_its_staging_table(
    bigquery_conn: str,
    bigquery_emulator: BigQueryEmulator,
    small_day: LandedDay,
    table: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from google.api_core.exceptions import Forbidden
    from google.cloud.bigquery import Client

    def denied(self: Any, sql: str, *args: Any, **kwargs: Any) -> Any:
        raise Forbidden(
            "Access Denied: Table x: User does not have permission", errors=[{"reason": "accessDenied"}]
        )

    monkeypatch.setattr(Client, "query", denied)
    with pytest.raises(AirflowFailException, match=r"retry would repeat.*Access Denied"):
        load(bigquery_conn, table, small_day.manifest)

    names = [item.table_id for item in bigquery_emulator.client().list_tables(DATASET)]
    assert table in names and not [name for name in names if name.startswith(f"{table}__load_")]


def test_an_unreachable_bigquery_is_a_transient_error_left_to_airflows_retries(
    monkeypatch: pytest.MonkeyPatch, bigquery_emulator: BigQueryEmulator, small_day: LandedDay, table: str
) -> None:
    from support.emulators import free_loopback_port

    monkeypatch.setenv("AIRFLOW_CONN_BIGQUERY_DOWN", json.dumps(bigquery_emulator.connection()))
    monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", f"http://127.0.0.1:{free_loopback_port()}")

    from google.cloud.bigquery.retry import DEFAULT_RETRY

    # google-cloud-bigquery retries a refused connection for up to 10 minutes before raising it.
    monkeypatch.setattr(DEFAULT_RETRY, "_predicate", lambda error: False)
    with pytest.raises(Exception, match=r"\S") as raised:
        load("bigquery_down", table, small_day.manifest)

    assert not isinstance(raised.value, AirflowFailException)
    assert "Connection refused" in str(raised.value) or "ConnectionError" in type(raised.value).__name__


def test_an_invalid_table_name_fails_before_anything_is_read(bigquery_conn: str) -> None:
    with pytest.raises(AirflowFailException, match="not a plain identifier"):
        load(bigquery_conn, "audit; DROP TABLE x", "file:///nowhere/_manifests/x.manifest.json")


def test_lineage_names_the_landing_in_and_the_bigquery_table_out(
    bigquery_conn: str, small_day: LandedDay, table: str
) -> None:
    pytest.importorskip("airflow.providers.openlineage")
    operator = SlackAuditLogsToBigQueryOperator(
        task_id="load", source=small_day.manifest, gcp_conn_id=bigquery_conn, dataset=DATASET, table=table
    )
    assert operator.get_openlineage_facets_on_complete(None) is None  # nothing loaded yet

    result = operator.execute(context={})
    lineage = operator.get_openlineage_facets_on_complete(None)

    (source,), (target,) = lineage.inputs, lineage.outputs
    assert (source.namespace, source.name) == ("file", str(small_day.destination))
    assert (target.namespace, target.name) == ("bigquery", f"{BIGQUERY_PROJECT}.{DATASET}.{table}")
    assert target.outputFacets["outputStatistics"].rowCount == result["inserted"] == len(small_day.ids())
