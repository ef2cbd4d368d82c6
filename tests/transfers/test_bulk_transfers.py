"""What the two bulk transfers share without a warehouse: their hooks, their summary, their SQL spelling."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from airflow_provider_slack_audit.transfers import LoadSummary
from airflow_provider_slack_audit.transfers._bulk import (
    BIGQUERY,
    SNOWFLAKE,
    BulkLoadOperator,
    merge_statement,
)
from airflow_provider_slack_audit.transfers.slack_audit_to_sql import SlackAuditLogsToSqlOperator
from airflow_provider_slack_audit.version_compat import AirflowFailException

pytest.importorskip("airflow.providers.google")
pytest.importorskip("airflow.providers.snowflake")

from airflow_provider_slack_audit.transfers.slack_audit_to_bigquery import (
    SlackAuditLogsToBigQueryOperator,
)
from airflow_provider_slack_audit.transfers.slack_audit_to_snowflake import (
    SlackAuditLogsToSnowflakeOperator,
)


@pytest.fixture(autouse=True)
def _connections(monkeypatch: pytest.MonkeyPatch) -> None:
    """The connections the hooks look up as they are made (no request is sent)."""
    for conn_id, conn_type in [
        ("gcp_audit", "google_cloud_platform"),
        ("google_cloud_default", "google_cloud_platform"),
        ("sf_audit", "snowflake"),
        ("snowflake_default", "snowflake"),
    ]:
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": conn_type}))


def bigquery(**kwargs: Any) -> SlackAuditLogsToBigQueryOperator:
    return SlackAuditLogsToBigQueryOperator(task_id="load", source="/m.json", dataset="security", **kwargs)


def snowflake(**kwargs: Any) -> SlackAuditLogsToSnowflakeOperator:
    return SlackAuditLogsToSnowflakeOperator(task_id="load", source="/m.json", **kwargs)


def test_the_bigquery_hook_takes_the_operators_connection_location_and_impersonation() -> None:
    hook = bigquery(gcp_conn_id="gcp_audit", location="EU", impersonation_chain=["loader@p.iam"]).hook

    assert (hook.gcp_conn_id, hook.location, hook.impersonation_chain) == (
        "gcp_audit",
        "EU",
        ["loader@p.iam"],
    )
    assert bigquery().hook.gcp_conn_id == "google_cloud_default"


def test_the_snowflake_hook_takes_the_operators_connection() -> None:
    assert snowflake(snowflake_conn_id="sf_audit").hook.snowflake_conn_id == "sf_audit"
    assert snowflake().hook.snowflake_conn_id == "snowflake_default"


@pytest.mark.parametrize(
    ("make", "module", "package"),
    [
        (bigquery, "airflow.providers.google.cloud.hooks.bigquery", "airflow-provider-slack-audit[google]"),
        (snowflake, "airflow.providers.snowflake.hooks.snowflake", "airflow-provider-slack-audit[snowflake]"),
    ],
)
def test_a_missing_provider_fails_the_task_naming_what_to_install(
    make: Any, module: str, package: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError

    with pytest.raises(AirflowFailException, match="provider is not installed") as failed:
        _ = make().hook

    assert package in str(failed.value)


@pytest.mark.parametrize(
    "operator",
    [SlackAuditLogsToSqlOperator, SlackAuditLogsToSnowflakeOperator, SlackAuditLogsToBigQueryOperator],
)
def test_every_transfer_declares_the_one_summary_it_returns(operator: type[Any]) -> None:
    declared = operator.execute.__annotations__["return"]  # a string: the modules postpone annotations
    assert getattr(sys.modules[operator.execute.__module__], declared) is LoadSummary


@pytest.mark.parametrize(
    ("operator", "dialect"),
    [(SlackAuditLogsToSnowflakeOperator, SNOWFLAKE), (SlackAuditLogsToBigQueryOperator, BIGQUERY)],
)
def test_each_bulk_transfer_merges_in_its_own_warehouses_spelling(
    operator: type[BulkLoadOperator], dialect: Any
) -> None:
    assert operator.dialect is dialect
    text = merge_statement("t", "s", operator.dialect)
    assert ("WHERE TRUE" in text) is (dialect is BIGQUERY)  # BigQuery's QUALIFY wants a WHERE
    assert ("v:seq::NUMBER" in text) is (dialect is SNOWFLAKE)  # Snowflake stages a VARIANT per row
