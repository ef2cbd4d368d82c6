"""One of the processes the cross-process budget test starts: requests ``logs`` for a while, paced
at the org's whole ``requests_per_minute`` as a triggerer or worker of its own would be.

Run as a script: ``python rate_budget_child.py BASE_URL REQUESTS_PER_MINUTE SECONDS``; prints the
statuses it received as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter

from airflow_provider_slack_audit.client import AsyncAuditLogsClient


async def hammer(base_url: str, requests_per_minute: float, seconds: float) -> Counter[int]:
    client = AsyncAuditLogsClient("xoxp-test", base_url=base_url, requests_per_minute=requests_per_minute)
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        response = await client.logs(limit=1)
        statuses[response.status_code] += 1
    return statuses


if __name__ == "__main__":
    base_url, rate, duration = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    print(json.dumps(asyncio.run(hammer(base_url, rate, duration))))
