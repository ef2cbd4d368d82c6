"""The client imports without Airflow (checked in a fresh interpreter): the one layer that keeps the
rule, so it stays usable on its own; the ingest builds on Airflow's ObjectStoragePath."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module",
    [
        "airflow_provider_slack_audit",
        "airflow_provider_slack_audit.client",
        "airflow_provider_slack_audit.client.async_client",
    ],
)
def test_importing_the_client_imports_no_airflow(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "loaded = sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.'))\n"
        "print(len(loaded), loaded[:5])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.startswith("0 "), result.stdout


def test_landing_names_stay_importable_from_the_ingest_package() -> None:
    from airflow_provider_slack_audit.ingest import Landing, read_manifest
    from airflow_provider_slack_audit.ingest.landing import Landing as LandingFromPackage

    assert Landing is LandingFromPackage
    assert callable(read_manifest)
