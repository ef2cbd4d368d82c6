"""A client of the pipeline's ``IngestClient`` protocol serving a list of entries the way the API does.

The fake server serves a generated, immutable event set; re-dated ids (the same id at another
second), corrected bodies and repeats need entries written by hand, which this client serves:
inclusive ``oldest``/``latest``, newest first, an optimistic ``limit`` that never splits a second,
one page per response. Tests change ``entries`` between runs to play what Slack did meanwhile, and
``interrupt_after`` to stop a run after that many pages of one query (cancel, failed try).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from airflow_provider_slack_audit.client import AuditLogsResponse


def entry(entry_id: str, date_create: int, ip_address: str = "203.0.113.7") -> dict[str, Any]:
    """An entry shaped like the API's, small enough to read in a test."""
    return {
        "id": entry_id,
        "date_create": date_create,
        "action": "user_login",
        "actor": {"type": "user", "user": {"id": "W0ALICE", "name": "alice"}},
        "entity": {"type": "user", "user": {"id": "W0ALICE", "name": "alice"}},
        "context": {"ua": "Slack/4.41", "ip_address": ip_address, "session_id": 8412335931},
    }


class ListClient:
    """Serves ``entries`` (dicts, in any order; the same id may appear twice) to every query."""

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        self.entries = entries
        self.requests = 0
        #: Once ``pages_left`` pages were answered, raise what ``interrupt`` returns instead of the
        #: next page (None: never). It is awaited, so it can wait for what the run does meanwhile.
        self.pages_left: int | None = None
        self.interrupt: Callable[[], Awaitable[BaseException]] | None = None

    def interrupt_after(self, pages: int, error: Callable[[], Awaitable[BaseException]]) -> None:
        self.pages_left, self.interrupt = pages, error

    async def pages(self, **query: Any) -> AsyncIterator[AuditLogsResponse]:
        oldest, latest, limit = query["oldest"], query["latest"], query.get("limit") or 100
        selected = [e for e in self.entries if oldest <= e["date_create"] <= latest]
        selected.sort(key=lambda e: -e["date_create"])  # stable: ties keep the list's order
        position = 0
        while True:
            if self.pages_left is not None:
                if self.pages_left == 0:
                    assert self.interrupt is not None
                    self.pages_left = None
                    raise await self.interrupt()
                self.pages_left -= 1
            end = min(position + limit, len(selected))
            while (
                0 < end < len(selected) and selected[end]["date_create"] == selected[end - 1]["date_create"]
            ):
                end += 1  # optimistic limit: a page never ends in the middle of a second
            page, position = selected[position:end], end
            last = position >= len(selected)
            body = {
                "entries": page,
                "response_metadata": {"next_cursor": "" if last else f"p{position}"},
            }
            raw = json.dumps(body, separators=(",", ":"))
            response = AuditLogsResponse(
                url="http://127.0.0.1:1/logs", status_code=200, raw_body=raw, headers={}
            )
            response.requests, response.wait_seconds = 1, 0.0
            self.requests += 1
            yield response
            if last:
                return


def raising(error: Callable[[], BaseException]) -> Callable[[], Awaitable[BaseException]]:
    """An ``interrupt`` for :meth:`ListClient.interrupt_after` that raises at once."""

    async def interrupt() -> BaseException:
        return error()

    return interrupt
