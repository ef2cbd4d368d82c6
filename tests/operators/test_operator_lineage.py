"""OpenLineage of the landing task, on the deferred path: built from the trigger's outcome (issue 13)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.openlineage.extractors import OperatorLineage

from airflow_provider_slack_audit import _lineage
from airflow_provider_slack_audit.operators.slack_audit import SlackAuditLogsOperator
from airflow_provider_slack_audit.testing import FakeAuditLogsServer
from airflow_provider_slack_audit.version_compat import OutletEventAccessors, TaskDeferred

DAY_START = datetime(2026, 1, 4, tzinfo=timezone.utc)
DAY_END = datetime(2026, 1, 5, tzinfo=timezone.utc)


def operator(destination: str) -> SlackAuditLogsOperator:
    return SlackAuditLogsOperator(
        task_id="land",
        deferrable=True,
        destination=destination,
        interval=timedelta(hours=6),
        action="user_login,file_downloaded",
    )


def context() -> dict[str, Any]:
    return {
        "data_interval_start": DAY_START,
        "data_interval_end": DAY_END,
        "outlet_events": OutletEventAccessors(),
    }


async def deferred_run(server: FakeAuditLogsServer, destination: str) -> tuple[SlackAuditLogsOperator, Any]:
    """execute() defers; the trigger runs; a fresh operator (the resumed process) runs execute_complete."""
    with pytest.raises(TaskDeferred) as excinfo:
        operator(destination).execute(context())
    (event,) = [event async for event in excinfo.value.trigger.run()]
    resumed = operator(destination)
    summary = resumed.execute_complete(context(), event.payload)
    return resumed, summary


@pytest.fixture
async def server(slack_audit_connection: Callable[..., None]) -> Any:
    async with FakeAuditLogsServer(events=3000, seed=5, start=DAY_START, end=DAY_END) as fake:
        slack_audit_connection(fake.base_url)
        yield fake


async def test_a_deferred_run_reports_the_audit_log_as_input_and_the_destination_as_output(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    resumed, summary = await deferred_run(server, tmp_path.as_uri())

    lineage = resumed.get_openlineage_facets_on_complete(task_instance=None)

    assert isinstance(lineage, OperatorLineage)
    ((source,), (target,)) = lineage.inputs, lineage.outputs
    base = server.base_url.rstrip("/").split("://", 1)[1]
    assert (source.namespace, source.name) == (f"slack-audit://{base}", "logs")
    assert (target.namespace, target.name) == ("file", str(tmp_path))
    assert summary["events_landed"] > 0
    statistics = target.outputFacets["outputStatistics"]
    assert (statistics.rowCount, statistics.size) == (summary["events_landed"], summary["bytes"])


async def test_the_run_facet_carries_the_window_the_counts_and_the_filters(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    resumed, summary = await deferred_run(server, tmp_path.as_uri())

    facet = resumed.get_openlineage_facets_on_complete(task_instance=None).run_facets["slackAuditLanding"]

    assert facet.window == summary["window"]
    assert facet.window["start"] == DAY_START.isoformat()
    assert facet.manifest == summary["manifest"]
    assert facet.filters == {"action": ("file_downloaded", "user_login")}  # normalized: sorted
    assert facet.figures["events"] == summary["events"]
    assert facet.figures["intervals_landed"] == 4
    assert facet.figures["requests"] == summary["requests"]


def test_an_operator_that_has_not_landed_anything_reports_no_lineage() -> None:
    """Attributes set before a deferral do not survive it: only the outcome counts."""
    assert operator("file:///tmp/x").get_openlineage_facets_on_complete(task_instance=None) is None


@pytest.mark.parametrize(
    ("destination", "expected"),
    [
        ("s3://aws_default@bucket/slack_audit/", ("s3://bucket", "slack_audit")),
        ("gs://bucket/a/b", ("gs://bucket", "a/b")),
        ("file:///data/slack_audit", ("file", "/data/slack_audit")),
    ],
)
def test_the_output_is_named_as_its_storage_names_it_without_a_connection_id(
    destination: str, expected: tuple[str, str]
) -> None:
    assert _lineage.output_dataset_name(destination) == expected


def test_the_input_namespace_comes_from_the_base_url() -> None:
    assert (
        _lineage.input_namespace("https://api.slack.com/audit/v1/") == "slack-audit://api.slack.com/audit/v1"
    )


def test_without_the_openlineage_provider_there_is_no_lineage_and_no_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "airflow.providers.openlineage.extractors", None)  # import fails

    summary = {"window": {"start": "a", "end": "b"}, "events": 1}
    assert (
        _lineage.operator_lineage(summary, base_url="https://x/", destination="file:///d", filters={}) is None
    )
