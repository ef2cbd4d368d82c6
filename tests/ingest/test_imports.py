"""The client, and the ingest's window arithmetic, import without Airflow (checked in a fresh interpreter).

Issue 23 relaxed "the ingest imports no Airflow" to the client: the outcome sits above the landing,
which needs Airflow's ObjectStoragePath.
"""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module",
    [
        "airflow_provider_slack_audit.ingest",
        "airflow_provider_slack_audit.ingest.windows",
        "airflow_provider_slack_audit.client",
    ],
)
def test_importing_a_pure_ingest_module_imports_no_airflow(module: str) -> None:
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
