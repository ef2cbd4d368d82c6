"""Fixtures every test of this directory uses: retry waits that take no time but are recorded."""

from __future__ import annotations

import pytest

from support.recorded_sleeps import RecordedSleeps


@pytest.fixture(autouse=True)
def retry_sleeps(instant_retries: RecordedSleeps) -> RecordedSleeps:
    """The root conftest's ``instant_retries``, for every test here (ask for either to read the waits)."""
    return instant_retries
