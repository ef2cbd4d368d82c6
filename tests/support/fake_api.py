"""Helpers for the fake server's tests: the fake org's day and plain aiohttp calls to a server.

A module of its own (not conftest.py) so test modules can import it by a unique name.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec
from multidict import CIMultiDictProxy

from airflow_provider_slack_audit.testing import FakeAuditLogsServer

# The fake org's data: one day, 2026-01-01 UTC, seen from an hour after it ended.
START = 1_767_225_600
END = START + 86_400
TOKEN = "xoxp-test"


@dataclass
class Reply:
    """What a client received: status, headers and the raw body."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    def json(self) -> Any:
        return msgspec.json.decode(self.body)


Fetch = Callable[..., Awaitable[Reply]]
ReadAll = Callable[..., Awaitable[list[list[dict[str, Any]]]]]


async def fetch_from(
    session: aiohttp.ClientSession,
    server: FakeAuditLogsServer,
    endpoint: str = "logs",
    *,
    token: str | None = TOKEN,
    method: str = "GET",
    **params: Any,
) -> Reply:
    """Call ``endpoint`` of ``server`` with query ``params`` (None values are left out)."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    query = {key: str(value) for key, value in params.items() if value is not None}
    async with session.request(method, server.base_url + endpoint, params=query, headers=headers) as response:
        return Reply(response.status, response.headers, await response.read())
