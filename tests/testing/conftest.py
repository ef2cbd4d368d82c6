"""Fixtures for the fake server's tests: a server on a fixed day, and plain aiohttp calls to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec
import pytest
from multidict import CIMultiDictProxy

from airflow_provider_slack_audit.testing import FakeAuditLogsServer, ManualClock

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


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(END + 3600)


@pytest.fixture
async def server(clock: ManualClock) -> AsyncIterator[FakeAuditLogsServer]:
    async with FakeAuditLogsServer(events=3000, seed=7, start=START, end=END, clock=clock) as fake:
        yield fake


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


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


@pytest.fixture
def fetch(session: aiohttp.ClientSession, server: FakeAuditLogsServer) -> Fetch:
    """``await fetch(endpoint="logs", token=..., **query)`` against the ``server`` fixture."""

    async def call(endpoint: str = "logs", **kwargs: Any) -> Reply:
        return await fetch_from(session, server, endpoint, **kwargs)

    return call


@pytest.fixture
def read_all(fetch: Fetch) -> ReadAll:
    """Page through ``logs`` with the same query on every page; return the pages' entries."""

    async def call(**params: Any) -> list[list[dict[str, Any]]]:
        pages: list[list[dict[str, Any]]] = []
        cursor = None
        while True:
            reply = await fetch(cursor=cursor, **params)
            assert reply.status == 200, reply.body
            body = reply.json()
            pages.append(body["entries"])
            cursor = body["response_metadata"]["next_cursor"]
            if not cursor:
                return pages

    return call
