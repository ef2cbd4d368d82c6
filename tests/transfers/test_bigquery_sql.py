"""The BigQuery transfer's SQL text and table shape, read with sqlglot's BigQuery dialect (no server).

The emulator runs these statements end to end (test_slack_audit_to_bigquery); this checks what it
cannot: that the text is GoogleSQL as BigQuery parses it, whatever DuckDB underneath would accept.
"""

from __future__ import annotations

import os

import pytest

from airflow_provider_slack_audit.transfers._bulk import BIGQUERY, merge_statement
from airflow_provider_slack_audit.transfers._schema import COLUMN_NAMES, REQUIRED_COLUMNS
from airflow_provider_slack_audit.transfers.slack_audit_to_bigquery import bigquery_table_schema

# slow: with the emulator tests, which `make test` runs with the emulators extra (sqlglot is in it).
pytestmark = pytest.mark.slow
try:
    import sqlglot
    from sqlglot import exp
except ImportError:  # pragma: no cover - depends on the environment
    # CI's `make test` has the emulators extra; a compatibility cell installs the test extra only.
    if os.environ.get("CI") and not os.environ.get("SLACK_AUDIT_COMPAT_CELL"):
        raise
    pytest.skip("sqlglot is not installed: pip install -e '.[emulators]'", allow_module_level=True)

TARGET, STAGING = "`my-project.security.slack_audit_logs`", "`my-project.security.slack_audit_logs__load_1`"


def parsed_merge() -> exp.Merge:
    statement = sqlglot.parse_one(merge_statement(TARGET, STAGING, BIGQUERY), read="bigquery")
    assert isinstance(statement, exp.Merge)
    return statement


def test_the_merge_is_googlesql_keyed_on_id() -> None:
    merge = parsed_merge()

    table = merge.this
    assert (table.catalog, table.db, table.name) == ("my-project", "security", "slack_audit_logs")
    assert merge.args["on"].sql("bigquery") == "t.id = s.id"


def test_the_merge_picks_the_last_copy_of_an_id_with_qualify_next_to_a_where() -> None:
    select = parsed_merge().find(exp.Select)
    assert select is not None

    assert select.args["where"].sql("bigquery") == "WHERE TRUE"  # BigQuery wants one with QUALIFY
    assert "ROW_NUMBER() OVER (PARTITION BY id ORDER BY seq DESC) = 1" in select.args["qualify"].sql(
        "bigquery"
    )


def test_json_columns_are_parsed_and_compared_as_their_canonical_text() -> None:
    text = merge_statement(TARGET, STAGING, BIGQUERY)

    for column in ("details", "anomaly_reasons", "raw"):
        assert f"PARSE_JSON({column}) AS {column}" in text
        assert f"TO_JSON_STRING(t.{column}) IS DISTINCT FROM TO_JSON_STRING(s.{column})" in text
    for column in ("date_create", "anomaly_action_timestamp"):
        assert f"TIMESTAMP({column}) AS {column}" in text


def test_the_merge_inserts_every_column() -> None:
    insert = parsed_merge().find(exp.Insert)
    assert insert is not None

    assert [column.name for column in insert.this.expressions] == list(COLUMN_NAMES)


def test_the_table_has_every_column_with_json_for_the_nested_parts() -> None:
    schema = {field["name"]: (field["type"], field["mode"]) for field in bigquery_table_schema()}

    assert list(schema) == list(COLUMN_NAMES)
    assert {name for name, (_, mode) in schema.items() if mode == "REQUIRED"} == REQUIRED_COLUMNS
    assert {name for name, (kind, _) in schema.items() if kind == "JSON"} == {
        "details",
        "anomaly_reasons",
        "raw",
    }
    assert {name for name, (kind, _) in schema.items() if kind == "TIMESTAMP"} == {
        "date_create",
        "anomaly_action_timestamp",
    }
