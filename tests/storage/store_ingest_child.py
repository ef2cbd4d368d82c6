"""The process the store kill test kills: one ``ingest_window`` onto an object store in sync mode, as a
worker runs it.

``python store_ingest_child.py BASE_URL SPEC_JSON``, the spec as ``IngestSpec.to_json()`` makes it.
The store's connection (``aws``, ``google_cloud_platform`` or ``wasb``) comes from the environment
(``AIRFLOW_CONN_*``) as in a worker: nothing is bound to a filesystem by hand.
"""

from __future__ import annotations

import asyncio
import json
import sys

from airflow_provider_slack_audit.client import AsyncAuditLogsClient
from airflow_provider_slack_audit.ingest.pipeline import ingest_window
from airflow_provider_slack_audit.ingest.spec import IngestSpec

if __name__ == "__main__":
    base_url, spec = sys.argv[1], IngestSpec.from_json(json.loads(sys.argv[2]))
    asyncio.run(ingest_window(AsyncAuditLogsClient("xoxp-test", base_url=base_url), spec))
