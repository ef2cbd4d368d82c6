"""A client of the pipeline's ``IngestClient`` protocol that serves scripted pages, without HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from airflow_provider_slack_audit.client import AuditLogsResponse


class ScriptedClient:
    """A client (the pipeline's IngestClient protocol, no HTTP) whose every query returns ``pages``
    (entries as (id, date_create)), newest first; each response says it took 2 requests."""

    def __init__(self, pages: list[list[tuple[str, int]]]) -> None:
        self.script = pages
        self.queries: list[dict[str, object]] = []

    async def pages(self, **query: object) -> AsyncIterator[AuditLogsResponse]:
        self.queries.append(query)
        for number, page in enumerate(self.script):
            body = {
                "entries": [{"id": i, "date_create": t} for i, t in page],
                "response_metadata": {"next_cursor": "" if number == len(self.script) - 1 else f"c{number}"},
            }
            response = AuditLogsResponse(
                url="http://127.0.0.1:1/logs", status_code=200, raw_body=json.dumps(body), headers={}
            )
            response.requests, response.wait_seconds = 2, 0.5
            yield response
