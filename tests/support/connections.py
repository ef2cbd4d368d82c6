"""The one way the tests define a ``slack_audit`` connection: an ``AIRFLOW_CONN_<ID>`` JSON variable,
as users and the system tests do. The root conftest's ``slack_audit_connection`` fixture sets it."""

from __future__ import annotations

import json
from typing import Any

FAKE_SERVER_TOKEN = "xoxp-test"  # the token FakeAuditLogsServer accepts unless told otherwise
# Nothing listens on the discard port: a request a test did not mean to make fails at once.
CLOSED_PORT_URL = "http://127.0.0.1:9/"


def connection_env(
    base_url: str = CLOSED_PORT_URL,
    *,
    conn_id: str = "slack_audit_default",
    password: str | None = FAKE_SERVER_TOKEN,
    **extra: Any,
) -> dict[str, str]:
    """The environment variable that defines connection ``conn_id``; ``extra`` fields as given."""
    conn: dict[str, Any] = {"conn_type": "slack_audit", "extra": {"base_url": base_url, **extra}}
    if password is not None:
        conn["password"] = password
    return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn)}
