"""The token never travels in clear text to another host, and TLS certificates are verified unless
the user hands the client their own SSL context."""

from __future__ import annotations

import json
import ssl
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from airflow_provider_slack_audit.client import AsyncAuditLogsClient
from airflow_provider_slack_audit.hooks.slack_audit import SlackAuditLogsHook
from airflow_provider_slack_audit.operators.slack_audit import SlackAuditLogsOperator
from airflow_provider_slack_audit.triggers.slack_audit import SlackAuditLogsTrigger
from airflow_provider_slack_audit.version_compat import AirflowFailException

from support.secret_scan import TOKEN

NON_LOOPBACK_HTTP = [
    "http://api.slack.com/audit/v1/",
    "http://10.0.0.7/audit/v1/",
    "http://0.0.0.0:8080/audit/v1/",
    "http://[2001:db8::1]/audit/v1/",
    "http://localhost.example.com/audit/v1/",
    "http://127.0.0.1.nip.io/audit/v1/",
    "http://127.0.0.1@example.com/audit/v1/",  # user info: the host is example.com
    "HTTP://EXAMPLE.COM/audit/v1/",
]
LOOPBACK_HTTP = [
    "http://127.0.0.1:8080/audit/v1/",
    "http://127.3.4.5/audit/v1/",
    "http://localhost:8080/audit/v1/",
    "http://[::1]:8080/audit/v1/",
]
OTHER_SCHEMES = [
    "ftp://example.com/audit/v1/",
    "file:///etc/passwd",
    "ws://127.0.0.1/",
    "api.slack.com/audit/v1/",
]


class RequestNotSent(Exception):
    """Raised by the stand-in for aiohttp, so no test ever reaches a network."""


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every request the client hands to aiohttp, with its keyword arguments; none is sent."""
    requests: list[dict[str, Any]] = []

    def record(self: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> Any:
        requests.append({"method": method, "url": str(url), **kwargs})
        raise RequestNotSent

    monkeypatch.setattr(aiohttp.ClientSession, "request", record)
    return requests


def is_empty(directory: Path) -> bool:
    return not any(directory.iterdir())


@pytest.fixture
def insecure_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {"conn_type": "slack_audit", "password": TOKEN, "extra": {"base_url": "http://example.com/"}}
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_AUDIT_DEFAULT", json.dumps(conn))


@pytest.mark.parametrize("base_url", NON_LOOPBACK_HTTP)
def test_plain_http_to_another_host_is_refused_when_the_client_is_built(
    base_url: str, sent: list[dict[str, Any]]
) -> None:
    with pytest.raises(ValueError, match="refusing to send the token over plain http"):
        AsyncAuditLogsClient(TOKEN, base_url=base_url)
    assert sent == []


@pytest.mark.parametrize("base_url", OTHER_SCHEMES)
def test_a_base_url_that_is_not_http_or_https_is_refused(base_url: str, sent: list[dict[str, Any]]) -> None:
    with pytest.raises(ValueError, match="must be an https:// URL"):
        AsyncAuditLogsClient(TOKEN, base_url=base_url)
    assert sent == []


async def test_a_base_url_changed_after_construction_is_checked_again_before_sending(
    sent: list[dict[str, Any]],
) -> None:
    client = AsyncAuditLogsClient(TOKEN, base_url="https://api.slack.com/audit/v1/")
    client.base_url = "http://api.slack.com/audit/v1/"

    with pytest.raises(ValueError, match="plain http"):
        await client.logs(limit=1)
    assert sent == []


@pytest.mark.parametrize("base_url", LOOPBACK_HTTP)
async def test_plain_http_to_loopback_is_allowed_for_local_test_servers(
    base_url: str, sent: list[dict[str, Any]]
) -> None:
    with pytest.raises(RequestNotSent):
        await AsyncAuditLogsClient(TOKEN, base_url=base_url, retry_handlers=[]).logs(limit=1)
    assert [request["url"] for request in sent] == [base_url + "logs"]


async def test_plain_http_to_another_host_needs_an_explicit_opt_in(sent: list[dict[str, Any]]) -> None:
    client = AsyncAuditLogsClient(
        TOKEN, base_url="http://proxy.internal/audit/v1/", allow_insecure_http=True, retry_handlers=[]
    )
    with pytest.raises(RequestNotSent):
        await client.logs(limit=1)
    assert len(sent) == 1


async def test_the_hook_refuses_a_connection_with_plain_http_to_another_host(
    sent: list[dict[str, Any]],
    insecure_connection: None,
) -> None:
    with pytest.raises(ValueError, match="plain http"):
        await SlackAuditLogsHook().get_async_client()
    with pytest.raises(ValueError, match="plain http"):
        SlackAuditLogsHook().get_client()
    assert sent == []


async def test_the_trigger_reports_plain_http_as_a_permanent_error_without_a_request(
    sent: list[dict[str, Any]],
    tmp_path: Path,
    insecure_connection: None,
) -> None:
    spec = {
        "window": {"start": "2026-01-04T00:00:00+00:00", "end": "2026-01-05T00:00:00+00:00"},
        "interval_seconds": 3600,
        "destination": f"file://{tmp_path}",
    }
    trigger = SlackAuditLogsTrigger(slack_audit_conn_id="slack_audit_default", spec=spec)

    (event,) = [event async for event in trigger.run()]

    assert (event.payload["status"], event.payload["kind"]) == ("error", "permanent")
    assert "plain http" in event.payload["message"]
    assert sent == []
    assert is_empty(tmp_path), "nothing may be written for a refused connection"


def test_the_operator_in_sync_mode_fails_without_retrying_and_without_a_request(
    sent: list[dict[str, Any]],
    tmp_path: Path,
    insecure_connection: None,
) -> None:
    operator = SlackAuditLogsOperator(task_id="land", destination=f"file://{tmp_path}", deferrable=False)
    context = {
        "data_interval_start": datetime(2026, 1, 4, tzinfo=timezone.utc),
        "data_interval_end": datetime(2026, 1, 5, tzinfo=timezone.utc),
    }

    with pytest.raises(AirflowFailException, match="plain http"):
        operator.execute(context)  # type: ignore[arg-type]
    assert sent == []


async def test_certificates_are_verified_by_default(sent: list[dict[str, Any]]) -> None:
    client = AsyncAuditLogsClient(TOKEN, retry_handlers=[])
    with pytest.raises(RequestNotSent):
        await client.logs(limit=1)

    (request,) = sent
    assert request["url"] == "https://api.slack.com/audit/v1/logs"
    assert request["ssl"] is True


async def test_the_hooks_client_verifies_certificates(
    sent: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = {"conn_type": "slack_audit", "password": TOKEN}
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_AUDIT_DEFAULT", json.dumps(conn))
    client = await SlackAuditLogsHook().get_async_client()
    client.retry_handlers = []

    with pytest.raises(RequestNotSent):
        await client.logs(limit=1)

    (request,) = sent
    assert request["url"].startswith("https://")
    assert request["ssl"] is True


async def test_a_users_ssl_context_is_used_as_given(sent: list[dict[str, Any]]) -> None:
    context = ssl.create_default_context()
    client = AsyncAuditLogsClient(TOKEN, ssl=context, retry_handlers=[])
    with pytest.raises(RequestNotSent):
        await client.logs(limit=1)

    (request,) = sent
    assert request["ssl"] is context


@pytest.mark.parametrize("fault", ["redirect", "redirect_loop"])
async def test_a_redirect_is_never_followed_and_fails_permanently(fault: str) -> None:
    from airflow_provider_slack_audit.client import SlackAuditLogsApiError
    from airflow_provider_slack_audit.testing import FakeAuditLogsServer, FaultPlan

    async with FakeAuditLogsServer(
        events=20, tokens=(TOKEN,), faults=FaultPlan(rates={fault: 1.0})
    ) as server:
        client = AsyncAuditLogsClient(TOKEN, base_url=server.base_url)
        with pytest.raises(SlackAuditLogsApiError) as info:
            async for _ in client.pages(oldest=0, latest=10):
                pass
        paths = [request.path for request in server.requests]

    assert (info.value.error, info.value.kind) == ("redirected", "permanent")
    assert "never redirects" in info.value.message
    assert paths == ["/audit/v1/logs"], "the redirect was followed"
