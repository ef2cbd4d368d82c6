"""Fixtures for the fake server's tests: a server on a fixed day, and plain aiohttp calls to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from airflow_provider_slack_audit.testing import FakeAuditLogsServer, ManualClock

from support.fake_api import END, START, Fetch, ReadAll, Reply, fetch_from


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
