"""Fixtures every test gets."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import pytest

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
