"""A compatibility cell (``.ci/compat``) tests the installed wheel on the Airflow line it installed.

Outside a cell (``make test``) these checks have nothing to compare against and are skipped.
"""

from __future__ import annotations

import importlib.metadata
import os
import sysconfig
from pathlib import Path

import pytest

import airflow_provider_slack_audit

REPO = Path(__file__).resolve().parents[2]
CELL = os.environ.get("SLACK_AUDIT_COMPAT_CELL")

pytestmark = pytest.mark.skipif(CELL is None, reason="runs inside a .ci/compat cell only")


def test_airflow_is_the_version_the_cell_installed() -> None:
    assert importlib.metadata.version("apache-airflow") == os.environ["SLACK_AUDIT_EXPECTED_AIRFLOW"]


def test_the_provider_under_test_is_the_installed_wheel_not_the_work_tree() -> None:
    package_dir = Path(airflow_provider_slack_audit.__file__).resolve().parent
    site_packages = Path(sysconfig.get_paths()["purelib"]).resolve()

    assert package_dir.parent == site_packages, f"{package_dir} is not the installed wheel"
    assert package_dir != REPO / "airflow_provider_slack_audit"


def test_airflow_finds_the_provider_through_its_entry_point() -> None:
    from airflow.providers_manager import ProvidersManager

    providers = ProvidersManager().providers

    assert "airflow-provider-slack-audit" in providers
    assert "slack_audit" in ProvidersManager().hooks
