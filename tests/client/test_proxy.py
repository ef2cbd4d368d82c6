"""Proxies: credentials are sent to the proxy only, never shown; NO_PROXY is honoured for proxies
taken from the environment; no secret crosses the network in clear on the way to a proxy."""

from __future__ import annotations

import logging
import socket

import aiohttp
import pytest

from airflow_provider_slack_audit.client import AsyncAuditLogsClient, SlackAuditLogsApiError
from airflow_provider_slack_audit.client.errors import SlackAuditLogsConfigError
from airflow_provider_slack_audit.testing import FakeAuditLogsServer, FakeForwardProxy

TOKEN = "xoxp-test"
PROXY_ENV = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy")


@pytest.fixture(autouse=True)
def clean_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_ENV:
        monkeypatch.delenv(name, raising=False)


async def test_requests_go_through_a_proxy_that_demands_credentials(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with FakeAuditLogsServer(events=50) as server, FakeForwardProxy() as proxy:
        client = AsyncAuditLogsClient(TOKEN, base_url=server.base_url, proxy=proxy.url_with_credentials())
        response = await client.logs(limit=10)
        assert response.status_code == 200
        assert len(server.logs_requests()) == 1
    assert [(r.authorized, r.status) for r in proxy.requests] == [(True, 200)]
    assert proxy.password not in repr(client)
    assert all(proxy.password not in record.getMessage() for record in caplog.records)


async def test_wrong_proxy_credentials_fail_without_showing_the_password() -> None:
    async with FakeAuditLogsServer(events=50) as server, FakeForwardProxy() as proxy:
        wrong = proxy.url_with_credentials(password="not-the-password-77")
        client = AsyncAuditLogsClient(TOKEN, base_url=server.base_url, proxy=wrong)
        response = await client.logs(limit=10)
        with pytest.raises(SlackAuditLogsApiError) as info:
            response.validate()
        assert server.logs_requests() == []
    assert response.status_code == 407
    assert "not-the-password-77" not in str(info.value)


async def test_an_unreachable_proxy_raises_an_error_without_its_credentials() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proxy = f"http://user:unreachable-secret-9@127.0.0.1:{port}"
    client = AsyncAuditLogsClient(
        TOKEN, base_url="http://127.0.0.1:9/audit/v1/", proxy=proxy, retry_handlers=[]
    )
    with pytest.raises(aiohttp.ClientError) as info:
        await client.logs()
    texts = [str(info.value), repr(info.value), repr(info.value.args), repr(vars(info.value))]
    assert not any("unreachable-secret-9" in text for text in texts)


async def test_no_proxy_exempts_hosts_from_a_proxy_taken_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with FakeAuditLogsServer(events=50) as server, FakeForwardProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url_with_credentials())
        through = AsyncAuditLogsClient(TOKEN, base_url=server.base_url)
        assert (await through.logs(limit=1)).status_code == 200
        monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
        direct = AsyncAuditLogsClient(TOKEN, base_url=server.base_url)
        assert (await direct.logs(limit=1)).status_code == 200
        assert len(server.logs_requests()) == 2
    assert len(proxy.requests) == 1, "the second client should have bypassed the proxy"


@pytest.mark.parametrize(
    "proxy",
    [
        "http://user:secret-pass@proxy.internal:3128",  # the proxy's credentials in clear
        "http://user:secret-pass@10.1.2.3:3128",
    ],
)
def test_plain_http_to_a_remote_proxy_with_credentials_is_refused(proxy: str) -> None:
    with pytest.raises(SlackAuditLogsConfigError, match="refusing plain http to the proxy") as info:
        AsyncAuditLogsClient(TOKEN, proxy=proxy)
    assert "secret-pass" not in str(info.value)
    assert AsyncAuditLogsClient(TOKEN, proxy=proxy, allow_insecure_http=True).proxy == proxy


def test_plain_http_requests_through_a_remote_proxy_are_refused() -> None:
    # The token itself would cross to the proxy in clear.
    with pytest.raises(SlackAuditLogsConfigError, match="the token"):
        AsyncAuditLogsClient(
            TOKEN, base_url="http://127.0.0.1:8080/audit/v1/", proxy="http://proxy.internal:3128"
        )


def test_a_remote_proxy_from_the_environment_is_checked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://user:env-secret@proxy.internal:3128")
    with pytest.raises(SlackAuditLogsConfigError) as info:
        AsyncAuditLogsClient(TOKEN)
    assert "env-secret" not in str(info.value)


def test_an_https_api_through_a_plain_http_proxy_without_credentials_is_allowed() -> None:
    # The request travels in a CONNECT tunnel, TLS end to end: nothing secret is in clear.
    assert (
        AsyncAuditLogsClient(TOKEN, proxy="http://proxy.internal:3128").proxy == "http://proxy.internal:3128"
    )


@pytest.mark.parametrize("proxy", ["proxy.internal:3128", "socks5://127.0.0.1:1080", "http://"])
def test_a_proxy_that_is_not_an_http_url_is_refused(proxy: str) -> None:
    with pytest.raises(SlackAuditLogsConfigError, match="proxy must be"):
        AsyncAuditLogsClient(TOKEN, proxy=proxy)
