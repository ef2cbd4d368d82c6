"""Fixtures every test directory shares."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from recorded_sleeps import RecordedSleeps

from airflow_provider_slack_audit.client.retry import set_default_sleep


@pytest.fixture
def instant_retries() -> Iterator[RecordedSleeps]:
    """Retry waits of every client built without ``sleep=`` take no time and are recorded.

    Through the public seam :func:`set_default_sleep`, so clients built deep inside the pipeline
    or a trigger are covered too. The rate limiter's pacing keeps its real clock.
    """
    sleeps = RecordedSleeps()
    previous = set_default_sleep(sleeps)
    yield sleeps
    set_default_sleep(previous)
