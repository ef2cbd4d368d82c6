"""Apache Airflow provider for the Slack Audit Logs API.

The client (:mod:`airflow_provider_slack_audit.client`) knows nothing of Airflow; the hook, trigger
and operators build on it. Importing this package does not import Airflow.
"""

from __future__ import annotations

import copy
from typing import Any

__version__ = "0.1.0"

# The connection form, declared once. Airflow 3.2+ builds its UI from get_provider_info() without
# importing the hook; the hook derives its own form methods (and its defaults) from the same dicts.
CONNECTION_FIELDS: dict[str, dict[str, Any]] = {
    "base_url": {
        "label": "Base URL",
        "schema": {"type": ["string", "null"], "default": "https://api.slack.com/audit/v1/"},
        "description": "Root of the Audit Logs API. Change it only to point at a test server.",
    },
    "timeout": {
        "label": "Request timeout (seconds)",
        "schema": {"type": ["integer", "null"], "default": 30},
    },
    "proxy": {
        "label": "Proxy URL",
        "schema": {"type": ["string", "null"]},
        "description": "HTTP(S) proxy for every request, e.g. http://proxy.internal:3128.",
    },
    "max_retry_wait": {
        "label": "Retry budget (seconds)",
        "schema": {"type": ["number", "null"], "default": 300},
        "description": "Longest total wait for one request, 0-3600 s: 429s (Retry-After), 5xx, dropped "
        "connections, garbled pages and rate pacing all draw from it; past it the try fails and "
        "Airflow's task retries resume from committed intervals.",
    },
    "requests_per_minute": {
        "label": "Requests per minute",
        "schema": {"type": ["number", "null"]},
        "description": "Client-side pace, 0.1-6000 (adapts down on 429s). Slack allows about 50 "
        "requests/minute for the whole org, "
        "shared by every task; leave empty to pace on Retry-After only.",
    },
    "allow_insecure_http": {
        "label": "Allow plain http",
        "schema": {"type": ["boolean", "null"], "default": False},
        "description": "Permit an http:// base URL on a non-loopback host (test servers only).",
    },
}

CONNECTION_UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["host", "schema", "login", "port", "extra"],
    "relabeling": {"password": "Org owner token (xoxp-…)"},
    "placeholders": {
        "password": "xoxp-… (an org owner's user token with the auditlogs:read scope)",
        "base_url": "https://api.slack.com/audit/v1/",
        "timeout": "30",
        "proxy": "http://proxy.internal:3128",
        "max_retry_wait": "300",
        "requests_per_minute": "40",
    },
}


def get_provider_info() -> dict[str, Any]:
    """Describe the provider to Airflow's ProvidersManager (the ``apache_airflow_provider`` entry point)."""
    integration = "Slack Audit Logs"
    return {
        "package-name": "airflow-provider-slack-audit",
        "name": "Slack Audit Logs",
        "description": "Land Slack Enterprise Grid audit logs in object storage and warehouses.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": integration,
                "external-doc-url": "https://api.slack.com/admins/audit-logs",
                "tags": ["service"],
            }
        ],
        **{
            kind: [
                {
                    "integration-name": integration,
                    "python-modules": [f"airflow_provider_slack_audit.{kind}.slack_audit"],
                }
            ]
            for kind in ("hooks", "triggers", "operators")
        },
        "transfers": [
            {
                "source-integration-name": integration,
                "target-integration-name": target,
                "python-module": f"airflow_provider_slack_audit.transfers.slack_audit_to_{target_module}",
            }
            for target, target_module in (
                ("Common SQL", "sql"),
                ("Snowflake", "snowflake"),
                ("Google BigQuery", "bigquery"),
            )
        ],
        "connection-types": [
            {
                "hook-class-name": "airflow_provider_slack_audit.hooks.slack_audit.SlackAuditLogsHook",
                "hook-name": "Slack Audit Logs",
                "connection-type": "slack_audit",
                "conn-fields": copy.deepcopy(CONNECTION_FIELDS),
                "ui-field-behaviour": copy.deepcopy(CONNECTION_UI_FIELD_BEHAVIOUR),
            }
        ],
    }
