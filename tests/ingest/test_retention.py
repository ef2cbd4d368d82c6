"""``retention=``: validated before any request, refused where the store cannot keep it, and carried
through the spec's JSON like every other field (the write-once behaviour itself: tests/storage)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from airflow_provider_slack_audit.ingest import Window
from airflow_provider_slack_audit.ingest.spec import IngestSpec

DAY = datetime(2026, 1, 4, tzinfo=timezone.utc)
WINDOW = Window(DAY, DAY + timedelta(days=1))


def spec(destination: str, retention: object) -> IngestSpec:
    return IngestSpec(window=WINDOW, destination=destination, retention=retention)  # type: ignore[arg-type]


def test_retention_round_trips_through_the_spec_json() -> None:
    landed = spec("s3://aws_default@bucket/slack_audit", timedelta(days=2557))

    assert IngestSpec.from_json(landed.to_json()).retention == timedelta(days=2557)
    assert IngestSpec.from_json(spec("s3://b/p", None).to_json()).retention is None


@pytest.mark.parametrize("destination", ["file:///data/slack_audit", "memory://bucket/slack_audit"])
def test_retention_is_refused_on_a_store_without_object_lock(
    destination: str, allow_memory_store: None
) -> None:
    with pytest.raises(ValueError, match="retention= needs S3 Object Lock"):
        spec(destination, timedelta(days=30)).validate()


@pytest.mark.parametrize(
    ("retention", "error"),
    [(timedelta(hours=1), "outside 1 day"), (timedelta(days=40_000), "outside 1 day"), (30, "timedelta")],
)
def test_a_retention_out_of_bounds_or_not_a_timedelta_is_refused(retention: object, error: str) -> None:
    with pytest.raises((ValueError, TypeError), match=error):
        spec("s3://b/p", retention).validate()


def test_the_operator_refuses_retention_on_a_local_destination_before_any_request(tmp_path: Path) -> None:
    from airflow_provider_slack_audit.operators.slack_audit import SlackAuditLogsOperator
    from airflow_provider_slack_audit.version_compat import AirflowFailException

    operator = SlackAuditLogsOperator(
        task_id="land", destination=f"file://{tmp_path}", retention=timedelta(days=30), deferrable=True
    )

    with pytest.raises(AirflowFailException, match="retention= needs S3 Object Lock"):
        operator.execute({"data_interval_start": DAY, "data_interval_end": WINDOW.end})
    assert not list(tmp_path.iterdir())
