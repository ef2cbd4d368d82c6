"""Fixtures every test directory shares."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import settings

from airflow_provider_slack_audit.client.retry import set_default_sleep
from airflow_provider_slack_audit.ingest.stores import MEMORY_OPT_IN

from support.connections import CLOSED_PORT_URL, connection_env
from support.recorded_sleeps import RecordedSleeps

# CI draws the same examples on every run, so a verdict there is about the change, not the draw;
# local runs keep exploring new ones (and a failure prints the blob that reproduces it).
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# Where each Airflow line keeps its process-wide SecretsMasker (newest first).
_MASKER_MODULES = (
    "airflow.sdk._shared.secrets_masker",
    "airflow.sdk.execution_time.secrets_masker",
    "airflow.utils.log.secrets_masker",
)


def _secrets_masker() -> Any:
    for name in _MASKER_MODULES:
        try:
            return importlib.import_module(name)._secrets_masker()
        except (ImportError, AttributeError):
            continue
    raise RuntimeError(f"no SecretsMasker in {_MASKER_MODULES}")


@pytest.fixture(autouse=True)
def isolated_secrets_masker() -> Iterator[None]:
    """Forget the secrets a test registered (Airflow's masker is process-wide).

    Airflow 2 masks even one-character secrets: a test of a blank password would otherwise leave
    " " masked, and every later message would read "a***b".
    """
    masker = _secrets_masker()
    patterns, replacer = set(masker.patterns), masker.replacer
    yield
    masker.patterns, masker.replacer = patterns, replacer


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


@pytest.fixture
def slack_audit_connection(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Define a ``slack_audit`` connection for this test: ``slack_audit_connection(base_url, **options)``
    takes ``support.connections.connection_env``'s arguments (``conn_id``, ``password``, extra fields)."""

    def define(base_url: str = CLOSED_PORT_URL, **options: Any) -> None:
        for name, value in connection_env(base_url, **options).items():
            monkeypatch.setenv(name, value)

    return define


@pytest.fixture
def allow_memory_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let this test land on ``memory://`` (refused otherwise: see ``ingest.stores``)."""
    monkeypatch.setenv(MEMORY_OPT_IN, "1")
