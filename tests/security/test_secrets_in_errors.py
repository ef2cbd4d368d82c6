"""No error the client, the pipeline or the hook can raise carries the token: not in its message,
repr, args or attributes, not in the event payload the trigger makes of it, and not in any log line
written while it happened, at DEBUG."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from airflow_provider_slack_audit.client import AsyncAuditLogsClient, SlackAuditLogsApiError
from airflow_provider_slack_audit.client.retry import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from airflow_provider_slack_audit.hooks.slack_audit import SlackAuditLogsHook
from airflow_provider_slack_audit.ingest import Window
from airflow_provider_slack_audit.ingest.outcome import failure_outcome
from airflow_provider_slack_audit.ingest.pipeline import ingest_window
from airflow_provider_slack_audit.ingest.spec import IngestSpec
from airflow_provider_slack_audit.testing import FakeAuditLogsServer, FaultPlan
from airflow_provider_slack_audit.version_compat import redact

from support.secret_scan import TOKEN, leaks_in, reachable_texts

DAY = datetime(2026, 1, 4, tzinfo=timezone.utc)
WINDOW = Window(DAY, DAY + timedelta(hours=2))


@dataclass
class Scene:
    """What a case may use: a scratch directory and a way to set the connection."""

    tmp_path: Path
    monkeypatch: pytest.MonkeyPatch

    def connection(self, **extra: object) -> None:
        conn = {"conn_type": "slack_audit", "password": TOKEN, "extra": extra}
        self.monkeypatch.setenv("AIRFLOW_CONN_SLACK_AUDIT_DEFAULT", json.dumps(conn))


@dataclass(frozen=True)
class ErrorCase:
    """A way to make the provider raise, and what it must raise."""

    name: str
    provoke: Callable[[Scene], Awaitable[object]]
    raises: type[BaseException]
    error: str | None = None  # SlackAuditLogsApiError.error, when it is one
    sends_requests: bool = True  # the client logs its request at DEBUG


@asynccontextmanager
async def fake_server(**kwargs: Any) -> AsyncIterator[FakeAuditLogsServer]:
    kwargs.setdefault("tokens", (TOKEN,))
    async with FakeAuditLogsServer(events=300, seed=2, start=DAY, end=WINDOW.end, **kwargs) as server:
        yield server


def client_for(server: FakeAuditLogsServer | str, **kwargs: Any) -> AsyncAuditLogsClient:
    base_url = server if isinstance(server, str) else server.base_url
    # One retry per handler: the handlers run (and log) before the error surfaces.
    kwargs.setdefault(
        "retry_handlers",
        [
            AsyncConnectionErrorRetryHandler(max_retry_count=1),
            AsyncRateLimitErrorRetryHandler(max_retry_count=1),
            AsyncServerErrorRetryHandler(max_retry_count=1),
        ],
    )
    return AsyncAuditLogsClient(TOKEN, base_url=base_url, timeout=1, **kwargs)


async def read_all(client: AsyncAuditLogsClient, **query: Any) -> None:
    arguments = {"oldest": WINDOW.oldest, "latest": WINDOW.latest, "limit": 50, **query}
    async for page in client.pages(**arguments):
        page.raw_page()


def api_error(**server_kwargs: Any) -> Callable[[Scene], Awaitable[None]]:
    """Read a window from a server configured to refuse or break."""

    async def provoke(scene: Scene) -> None:
        async with fake_server(**server_kwargs) as server:
            await read_all(client_for(server))

    return provoke


def failing_with(fault: str) -> Callable[[Scene], Awaitable[None]]:
    return api_error(faults=FaultPlan(rates={fault: 1.0}, slow_seconds=1.5))


def query_error(**query: Any) -> Callable[[Scene], Awaitable[None]]:
    async def provoke(scene: Scene) -> None:
        async with fake_server() as server:
            await read_all(client_for(server), **query)

    return provoke


def call_error(**call: Any) -> Callable[[Scene], Awaitable[None]]:
    """``api_call`` with unusual arguments, then ``validate()`` (as a caller of the raw API does)."""

    async def provoke(scene: Scene) -> None:
        async with fake_server() as server:
            (await client_for(server).api_call(**call)).validate()

    return provoke


async def rate_limited(scene: Scene) -> None:
    async with fake_server(requests_per_minute=1, rate_limit_burst=1) as server:
        client = client_for(server)
        await client.logs(limit=1)
        (await client.logs(limit=1)).validate()


async def missing_authentication(scene: Scene) -> None:
    async with fake_server() as server:
        (await client_for(server).logs(headers={"Authorization": ""})).validate()


async def connection_refused(scene: Scene) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    await read_all(client_for(f"http://127.0.0.1:{port}/audit/v1/"))


def argument_error(**query: Any) -> Callable[[Scene], Awaitable[None]]:
    async def provoke(scene: Scene) -> None:
        await read_all(client_for("http://127.0.0.1:9/audit/v1/"), **query)

    return provoke


async def plain_http_to_another_host(scene: Scene) -> None:
    client_for("http://audit.example.com/audit/v1/")


def ingest_error(**spec_changes: Any) -> Callable[[Scene], Awaitable[None]]:
    async def provoke(scene: Scene) -> None:
        values: dict[str, Any] = {
            "window": WINDOW,
            "destination": f"file://{scene.tmp_path}/landing",
            "settle_lag": timedelta(0),
            "limit": 50,
            **spec_changes,
        }
        async with fake_server(faults=FaultPlan(rates={"invalid_cursor": 1.0})) as server:
            await ingest_window(client_for(server), IngestSpec(**values))

    return provoke


async def storage_error(scene: Scene) -> None:
    blocker = scene.tmp_path / "a_file"
    blocker.write_text("")
    spec = IngestSpec(window=WINDOW, destination=f"file://{blocker}/landing", settle_lag=timedelta(0))
    async with fake_server() as server:
        await ingest_window(client_for(server), spec)


def hook_error(**extra: Any) -> Callable[[Scene], Awaitable[None]]:
    async def provoke(scene: Scene) -> None:
        scene.connection(**extra)
        await SlackAuditLogsHook().get_async_client()

    return provoke


CASES = [
    ErrorCase(
        "invalid_authentication",
        api_error(tokens=("xoxp-someone-else",)),
        SlackAuditLogsApiError,
        "invalid_authentication",
    ),
    ErrorCase(
        "missing_authentication", missing_authentication, SlackAuditLogsApiError, "missing_authentication"
    ),
    *(
        ErrorCase(code, api_error(denied_tokens={TOKEN: code}), SlackAuditLogsApiError, code)
        for code in ("feature_not_enabled", "team_not_authorized", "user_not_authorized", "invalid_workspace")
    ),
    ErrorCase(
        "invalid_action", query_error(action="no_such_action"), SlackAuditLogsApiError, "invalid_action"
    ),
    ErrorCase(
        "invalid_range",
        call_error(path="logs", query_params={"oldest": 2**40}),
        SlackAuditLogsApiError,
        "invalid_range",
    ),
    ErrorCase("bad_endpoint", call_error(path="no_such_endpoint"), SlackAuditLogsApiError, "bad_endpoint"),
    ErrorCase(
        "method_not_allowed",
        call_error(path="logs", http_verb="POST"),
        SlackAuditLogsApiError,
        "method_not_allowed",
    ),
    ErrorCase(
        "invalid_cursor",
        call_error(path="logs", query_params={"cursor": "forged"}),
        SlackAuditLogsApiError,
        "invalid_cursor",
    ),
    ErrorCase("rate_limited", rate_limited, SlackAuditLogsApiError, "rate_limited"),
    ErrorCase("http_500", failing_with("http_500"), SlackAuditLogsApiError, "internal_error"),
    ErrorCase("http_502", failing_with("http_502"), SlackAuditLogsApiError, "bad_gateway"),
    ErrorCase("http_503", failing_with("http_503"), SlackAuditLogsApiError, "service_unavailable"),
    ErrorCase("http_504", failing_with("http_504"), SlackAuditLogsApiError, "gateway_timeout"),
    ErrorCase("html_502", failing_with("html_502"), SlackAuditLogsApiError, None),
    *(
        ErrorCase(fault, failing_with(fault), SlackAuditLogsApiError, "invalid_response")
        for fault in ("html_200", "empty_200", "bad_entries", "missing_id")
    ),
    ErrorCase("redirect", failing_with("redirect"), SlackAuditLogsApiError, "redirected"),
    ErrorCase("redirect_loop", failing_with("redirect_loop"), SlackAuditLogsApiError, "redirected"),
    ErrorCase(
        "huge_retry_after",
        api_error(faults=FaultPlan(rates={"http_429": 1.0}, retry_after=86400)),
        SlackAuditLogsApiError,
        "rate_limited",
    ),
    ErrorCase(
        "fresh_cursor_loop", failing_with("fresh_cursor"), SlackAuditLogsApiError, "pagination_stalled"
    ),
    ErrorCase("dropped_connection", failing_with("drop"), aiohttp.ServerDisconnectedError),
    ErrorCase("timeout", failing_with("slow"), asyncio.TimeoutError),
    ErrorCase("truncated_body", failing_with("truncated"), aiohttp.ClientPayloadError),
    ErrorCase("connection_refused", connection_refused, aiohttp.ClientConnectorError),
    ErrorCase("limit_out_of_range", argument_error(limit=0), ValueError, sends_requests=False),
    ErrorCase("oldest_not_an_int", argument_error(oldest="yesterday"), TypeError, sends_requests=False),
    ErrorCase(
        "empty_action_name", argument_error(action=["user_login", ""]), ValueError, sends_requests=False
    ),
    ErrorCase("plain_http_to_another_host", plain_http_to_another_host, ValueError, sends_requests=False),
    ErrorCase("ingest_cursor_keeps_expiring", ingest_error(), SlackAuditLogsApiError, "invalid_cursor"),
    ErrorCase("ingest_bad_spec", ingest_error(limit=0), ValueError, sends_requests=False),
    ErrorCase("ingest_storage_error", storage_error, NotADirectoryError, sends_requests=False),
    ErrorCase(
        "hook_plain_http", hook_error(base_url="http://audit.example.com/"), ValueError, sends_requests=False
    ),
    ErrorCase("hook_bad_extra", hook_error(timeout="soon"), ValueError, sends_requests=False),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
async def test_errors_and_debug_logs_never_carry_the_token(
    case: ErrorCase,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)

    with pytest.raises(case.raises) as info:
        await case.provoke(Scene(tmp_path, monkeypatch))

    error = info.value
    if case.error is not None or isinstance(error, SlackAuditLogsApiError):
        assert isinstance(error, SlackAuditLogsApiError)
        assert error.error == case.error
    for text in (str(error), repr(error), repr(error.args), *reachable_texts(error)):
        assert not leaks_in(text), f"the error carries the token: {text[:300]}"
    assert not leaks_in(json.dumps(failure_outcome(error, redact=redact)))
    if case.sends_requests:
        assert any(
            r.levelno == logging.DEBUG and r.name.startswith("airflow_provider_slack_audit.client")
            for r in caplog.records
        ), "the client wrote no DEBUG line: the log check below would prove nothing"
    for record in caplog.records:
        assert not leaks_in(record.getMessage()), f"log line carries the token: {record.getMessage()}"
        assert not leaks_in(repr(record.args))
    captured = capfd.readouterr()
    assert not leaks_in(captured.out + captured.err)


async def test_the_connection_test_button_reports_a_rejected_token_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with fake_server(tokens=("xoxp-someone-else",)) as server:
        Scene(Path(), monkeypatch).connection(base_url=server.base_url)
        # test_connection runs its own event loop, as in the API server's worker thread.
        ok, message = await asyncio.to_thread(SlackAuditLogsHook().test_connection)

    assert not ok
    assert message.startswith("invalid_authentication")
    assert not leaks_in(message)
    assert not any(leaks_in(record.getMessage()) for record in caplog.records)


def test_the_scan_finds_a_token_a_library_keeps_on_its_exception() -> None:
    # The check above is only as good as this search: an aiohttp error that kept the request's
    # headers (as ClientResponseError does) must be caught.
    from multidict import CIMultiDict, CIMultiDictProxy
    from yarl import URL

    headers = CIMultiDictProxy(CIMultiDict({"Authorization": f"Bearer {TOKEN}"}))
    url = URL("https://api.slack.com/audit/v1/logs")
    request = aiohttp.RequestInfo(url, "GET", headers, url)
    error = aiohttp.ClientResponseError(request, (), status=500, message="Internal Server Error")

    assert not leaks_in(str(error))
    assert any(leaks_in(text) for text in reachable_texts(error))


async def test_an_aiohttp_error_carrying_the_request_headers_leaves_the_client_scrubbed() -> None:
    # aiohttp's ClientResponseError keeps request_info (every header, Authorization included) and
    # the history of followed redirects; the client rewrites both before the error propagates.
    from aioresponses import aioresponses
    from multidict import CIMultiDict, CIMultiDictProxy
    from yarl import URL

    url = URL("http://127.0.0.1:9/audit/v1/logs")
    headers = CIMultiDictProxy(CIMultiDict({"Authorization": f"Bearer {TOKEN}"}))
    request = aiohttp.RequestInfo(url, "GET", headers, url)
    raised = aiohttp.ClientResponseError(request, (), status=500, message=f"echo {TOKEN}")
    with aioresponses() as mocked:
        mocked.get(re.compile(r"^http://127\.0\.0\.1:9/.*"), exception=raised)
        with pytest.raises(aiohttp.ClientResponseError) as info:
            await AsyncAuditLogsClient(TOKEN, base_url=str(url.parent) + "/", retry_handlers=[]).logs()

    assert not any(leaks_in(text) for text in reachable_texts(info.value))
    assert info.value.request_info.headers["Authorization"] == "(redacted)"
