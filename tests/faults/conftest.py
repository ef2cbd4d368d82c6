"""Fixtures of the fault tests: retry waits that take no time but are recorded."""

from __future__ import annotations

import pytest

from support.recorded_sleeps import RecordedSleeps


@pytest.fixture(autouse=True)
def retry_sleeps(instant_retries: RecordedSleeps) -> RecordedSleeps:
    return instant_retries
