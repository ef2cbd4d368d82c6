"""The operator refuses bad filters, destinations and windows permanently, before it defers."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_slack_audit.ingest.spec import IngestSpec
from airflow_provider_slack_audit.operators.slack_audit import SlackAuditLogsOperator
from airflow_provider_slack_audit.triggers.slack_audit import SlackAuditLogsTrigger
from airflow_provider_slack_audit.version_compat import (
    AirflowFailException,
    ObjectStoragePath,
    TaskDeferred,
)

DAY_START = datetime(2026, 1, 4, tzinfo=timezone.utc)
DAY_END = datetime(2026, 1, 5, tzinfo=timezone.utc)
CONTEXT = {"data_interval_start": DAY_START, "data_interval_end": DAY_END}
DESTINATION = "file:///tmp/slack_audit_operator_validation"


def operator(**kwargs: Any) -> SlackAuditLogsOperator:
    return SlackAuditLogsOperator(
        **{"task_id": "land", "destination": DESTINATION, "deferrable": True, **kwargs}
    )


def deferred_spec(task: SlackAuditLogsOperator) -> IngestSpec:
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(CONTEXT)  # type: ignore[arg-type]
    trigger = deferred.value.trigger
    assert isinstance(trigger, SlackAuditLogsTrigger)
    return IngestSpec.from_json(json.loads(json.dumps(trigger.spec)))


def refusal(deferrable: bool, **kwargs: Any) -> str:
    """The message of the permanent failure the task raises, before deferring or requesting."""
    with pytest.raises(AirflowFailException) as failed:
        operator(deferrable=deferrable, **kwargs).execute(CONTEXT)  # type: ignore[arg-type]
    assert isinstance(failed.value.__cause__, ValueError | TypeError)
    return str(failed.value)


# Filters ----------------------------------------------------------------------------------------


def test_every_spelling_of_a_filter_defers_the_same_sorted_query() -> None:
    names = ["user_login", "file_downloaded", "user_logout"]
    spellings = [names, list(reversed(names)), set(names), tuple(names + names), ", ".join(names)]

    specs = [deferred_spec(operator(action=spelling)) for spelling in spellings]

    assert {spec.action for spec in specs} == {("file_downloaded", "user_login", "user_logout")}
    assert all(spec.query == specs[0].query for spec in specs)


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferrable", "worker"])
def test_sixteen_comma_joined_pairs_fail_the_task_before_any_request(deferrable: bool) -> None:
    assert "contains a comma" in refusal(deferrable, action=["a,b"] * 16)


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferrable", "worker"])
def test_thirty_one_distinct_names_fail_the_task(deferrable: bool) -> None:
    assert "at most 30" in refusal(deferrable, action=[f"action_{n}" for n in range(31)])


# Destinations -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("destination", "fix"),
    [
        ("None", "rendered to nothing"),
        ("", "empty"),
        ("slack_audit/landing", "relative path"),
        ("file://relative/x", "'file:///relative/x'"),
        ("/data/no_scheme", "'file:///data/no_scheme'"),
    ],
)
@pytest.mark.parametrize("deferrable", [True, False], ids=["deferrable", "worker"])
def test_a_destination_relative_to_the_working_directory_fails_the_task_saying_what_to_pass(
    destination: str, fix: str, deferrable: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    message = refusal(deferrable, destination=destination)

    assert fix in message
    assert "s3://" in message
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "destination",
    ["dbfs://workspace/slack_audit", "memory://landing", ObjectStoragePath("memory://bucket/landing")],
    ids=["dbfs_url", "memory_url", "memory_path"],
)
@pytest.mark.parametrize("deferrable", [True, False], ids=["deferrable", "worker"])
def test_a_store_without_atomic_publication_fails_the_task_naming_the_supported_stores(
    destination: str | ObjectStoragePath, deferrable: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLACK_AUDIT_ALLOW_MEMORY_STORE", raising=False)

    message = refusal(deferrable, destination=destination)

    assert f"'{str(destination).partition('://')[0]}://'" in message
    assert all(store in message for store in ("file://", "s3://", "gs://", "abfs://"))


@pytest.mark.parametrize(
    "destination",
    [
        "s3://aws_conn@bucket/slack_audit",
        "memory://landing",
        ObjectStoragePath("file:///tmp/slack_audit_validation"),
        ObjectStoragePath("s3://bucket/slack_audit", conn_id="aws_conn"),
    ],
    ids=["s3_url", "memory_url", "local_path", "s3_path"],
)
def test_absolute_urls_and_object_storage_paths_defer(
    destination: str | ObjectStoragePath, allow_memory_store: None
) -> None:
    assert deferred_spec(operator(destination=destination)).destination == str(destination)


@pytest.mark.skipif(
    str(ObjectStoragePath("a/b")).startswith("/"),
    reason="this Airflow line's ObjectStoragePath (universal-pathlib 0.2) makes a relative path absolute",
)
def test_a_relative_object_storage_path_fails_the_task() -> None:
    assert "relative path" in refusal(True, destination=ObjectStoragePath("slack_audit/landing"))


def test_a_local_object_storage_path_without_a_scheme_defers_as_a_file_url() -> None:
    spec = deferred_spec(operator(destination=ObjectStoragePath("/tmp/slack_audit_validation")))

    assert spec.destination == "file:///tmp/slack_audit_validation"


# Windows ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferrable", "worker"])
def test_a_window_decades_ahead_fails_the_task_naming_the_bound(deferrable: bool) -> None:
    message = refusal(deferrable, oldest="2062-01-04T00:00:00Z", latest="2062-01-05T00:00:00Z")

    assert "more than a day in the future" in message
    assert "may be at most" in message


def test_a_window_ending_within_a_day_from_now_defers() -> None:
    now = datetime.now(timezone.utc)
    start = now.replace(minute=0, second=0, microsecond=0)

    spec = deferred_spec(operator(oldest=start, latest=start + timedelta(hours=12)))

    assert spec.window.end == start + timedelta(hours=12)


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferrable", "worker"])
def test_a_window_with_no_whole_second_fails_the_task_naming_the_bound(deferrable: bool) -> None:
    message = refusal(deferrable, oldest="2026-01-04T00:00:00.1Z", latest="2026-01-04T00:00:00.9Z")

    assert "no whole second" in message
    assert "pass a latest after 2026-01-04T00:00:01+00:00" in message


# One destination, one truth ------------------------------------------------------------------------


def landed_destination(root: Path) -> str:
    """A local destination whose descriptor says: 1h grid, gzip, unfiltered (as a first landing writes)."""
    from airflow_provider_slack_audit.ingest.spec import check_destination_fits
    from airflow_provider_slack_audit.ingest.windows import Window

    url = f"file://{root}"
    check_destination_fits(IngestSpec(window=Window(DAY_START, DAY_END), destination=url))
    return url


def test_a_run_of_another_layout_than_its_local_destinations_fails_before_deferring(tmp_path: Path) -> None:
    destination = landed_destination(tmp_path / "landing")

    message = refusal(True, destination=destination, compression=None)

    assert "lands on a 1h grid, gzip, unfiltered" in message
    assert "pass compression='gzip' (not None)" in message


def test_a_run_fitting_its_local_destination_defers(tmp_path: Path) -> None:
    destination = landed_destination(tmp_path / "landing")

    assert deferred_spec(operator(destination=destination)).destination == destination
