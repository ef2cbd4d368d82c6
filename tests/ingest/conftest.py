"""Fixtures of this directory: retry waits that take no time but are recorded (every test), and a
record of the files read."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from airflow_provider_slack_audit.version_compat import ObjectStoragePath

from support.recorded_sleeps import RecordedSleeps


@pytest.fixture(autouse=True)
def retry_sleeps(instant_retries: RecordedSleeps) -> RecordedSleeps:
    """The root conftest's ``instant_retries``, for every test here (ask for either to read the waits)."""
    return instant_retries


@pytest.fixture
def record_reads(monkeypatch: pytest.MonkeyPatch) -> Callable[[], list[str]]:
    """Call it to start recording the name of every file read through ``ObjectStoragePath``."""

    def start() -> list[str]:
        names: list[str] = []
        real_read = ObjectStoragePath.read_bytes

        def read_bytes(path: ObjectStoragePath) -> bytes:
            names.append(path.name)
            return real_read(path)

        monkeypatch.setattr(ObjectStoragePath, "read_bytes", read_bytes)
        return names

    return start
