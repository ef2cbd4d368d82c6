"""Fixtures of the fault tests: retry waits that take no time but are recorded."""

from __future__ import annotations

import pytest
from recorded_sleeps import RecordedSleeps

from airflow_provider_slack_audit.client import retry as retry_module


@pytest.fixture(autouse=True)
def retry_sleeps(monkeypatch: pytest.MonkeyPatch) -> RecordedSleeps:
    sleeps = RecordedSleeps()
    monkeypatch.setattr(retry_module, "_sleep", sleeps)
    return sleeps
