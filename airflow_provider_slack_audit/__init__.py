"""Apache Airflow provider for the Slack Audit Logs API.

The client (:mod:`airflow_provider_slack_audit.client`) knows nothing of Airflow; the hook, trigger
and operators build on it. Importing this package does not import Airflow.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def get_provider_info() -> dict[str, Any]:
    """Describe the provider to Airflow's ProvidersManager (the ``apache_airflow_provider`` entry point)."""
    return {
        "package-name": "airflow-provider-slack-audit",
        "name": "Slack Audit Logs",
        "description": "Land Slack Enterprise Grid audit logs in object storage and warehouses.",
        "versions": [__version__],
    }
