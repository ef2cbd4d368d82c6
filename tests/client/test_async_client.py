"""The client's surface: slack_sdk parity, requests it sends, sessions, proxies, logging, transport."""

from __future__ import annotations

import logging
import re
from typing import Any

import aiohttp
import pytest
from aioresponses import CallbackResult, aioresponses

from airflow_provider_slack_audit.client import AsyncAuditLogsClient, SlackAuditLogsApiError, get_user_agent
from airflow_provider_slack_audit.client.query import build_logs_params

BASE = "http://127.0.0.1:9/audit/v1/"
LOGS = re.compile(r"^http://127\.0\.0\.1:9/audit/v1/logs(\?.*)?$")
PAGE = {"entries": [], "response_metadata": {"next_cursor": ""}}


def sent(m: aioresponses) -> list[tuple[str, dict[str, Any]]]:
    """(url, kwargs) of every request aioresponses saw, in order."""
    return [(str(key[1]), call.kwargs) for key, calls in m.requests.items() for call in calls]


@pytest.fixture
def client() -> AsyncAuditLogsClient:
    return AsyncAuditLogsClient(token="xoxp-test", base_url=BASE, retry_handlers=[])


def test_constructor_takes_slack_sdks_arguments_and_exposes_its_attributes() -> None:
    session_free = AsyncAuditLogsClient(
        "xoxp-test",
        30,
        None,
        "http://proxy.invalid:3128",
        "https://api.slack.com/audit/v1/",
        None,
        True,
        None,
        {"X-Team": "a"},
        "pre",
        "suf",
        logging.getLogger("x"),
        [],
    )
    assert session_free.token == "xoxp-test"
    assert session_free.timeout == 30
    assert session_free.proxy == "http://proxy.invalid:3128"
    assert session_free.base_url == "https://api.slack.com/audit/v1/"
    assert session_free.trust_env_in_session is True
    assert session_free.default_headers["X-Team"] == "a"
    assert session_free.default_headers["User-Agent"].startswith("pre Python/")
    assert session_free.default_headers["User-Agent"].endswith(" suf")
    assert session_free.retry_handlers == []
    assert session_free.logger.name == "x"


def test_user_agent_names_python_and_this_package() -> None:
    agent = get_user_agent()
    assert re.match(r"^Python/\d+\.\d+\.\d+ airflow-provider-slack-audit/\S+ \S+/\S*$", agent)


def test_default_retry_handlers_cover_connection_errors_rate_limits_server_errors_and_garbled_pages() -> None:
    names = {type(h).__name__ for h in AsyncAuditLogsClient("xoxp-test").retry_handlers}
    assert names == {
        "AsyncConnectionErrorRetryHandler",
        "AsyncRateLimitErrorRetryHandler",
        "AsyncServerErrorRetryHandler",
        "AsyncInvalidResponseRetryHandler",
    }


@pytest.mark.parametrize("name", ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"])
def test_proxy_comes_from_the_environment_when_not_given(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(name, "http://proxy.invalid:8080")
    assert AsyncAuditLogsClient("xoxp-test").proxy == "http://proxy.invalid:8080"


def test_an_empty_proxy_variable_means_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", " ")
    assert AsyncAuditLogsClient("xoxp-test").proxy is None


def test_an_explicit_proxy_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://env.invalid:1")
    assert AsyncAuditLogsClient("xoxp-test", proxy="http://mine.invalid:2").proxy == "http://mine.invalid:2"


def test_repr_does_not_show_the_token() -> None:
    assert "xoxp" not in repr(AsyncAuditLogsClient("xoxp-secret-123"))


def test_an_empty_token_is_refused() -> None:
    with pytest.raises(ValueError, match="token is empty"):
        AsyncAuditLogsClient("  ")


async def test_logs_sends_the_bearer_token_and_drops_unset_params(client: AsyncAuditLogsClient) -> None:
    with aioresponses() as m:
        m.get(LOGS, payload=PAGE)
        response = await client.logs(oldest=10, latest=20, actor="U1")
    assert response.status_code == 200
    [(_url, kwargs)] = sent(m)
    assert kwargs["params"] == {"oldest": "10", "latest": "20", "actor": "U1"}
    assert kwargs["headers"]["Authorization"] == "Bearer xoxp-test"
    assert kwargs["headers"]["User-Agent"] == client.default_headers["User-Agent"]


async def test_logs_joins_a_list_of_actions_with_commas(client: AsyncAuditLogsClient) -> None:
    with aioresponses() as m:
        m.get(LOGS, payload=PAGE)
        await client.logs(action=["user_login", "file_downloaded"])
    [(_, kwargs)] = sent(m)
    assert kwargs["params"]["action"] == "user_login,file_downloaded"


async def test_additional_query_params_are_sent(client: AsyncAuditLogsClient) -> None:
    with aioresponses() as m:
        m.get(LOGS, payload=PAGE)
        await client.logs(limit=5, additional_query_params={"workspace": "T1", "skip": None})
    [(_, kwargs)] = sent(m)
    assert kwargs["params"] == {"limit": "5", "workspace": "T1"}


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"action": [f"a{i}" for i in range(31)]}, ValueError, "at most 30"),
        ({"action": "a,,b"}, ValueError, "empty name"),
        ({"action": [1]}, TypeError, "strings"),
        ({"limit": 0}, ValueError, "between 1 and 9999"),
        ({"limit": 10000}, ValueError, "between 1 and 9999"),
        ({"limit": True}, TypeError, "must be an int"),
        ({"oldest": "1"}, TypeError, "must be an int"),
        ({"oldest": 20, "latest": 10}, ValueError, "oldest 20 is after latest 10"),
        ({"latest": -1}, ValueError, ">= 0"),
        ({"actor": ""}, TypeError, "non-empty string"),
        ({"olddest": 1}, TypeError, "unexpected keyword arguments: olddest"),
        ({"action": b"user_login"}, TypeError, "a name or a list of names"),
    ],
)
async def test_bad_logs_arguments_fail_before_any_request(
    client: AsyncAuditLogsClient, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with aioresponses() as m:
        with pytest.raises(error, match=message):
            await client.logs(**kwargs)
        with pytest.raises(error, match=message):
            await anext(client.pages(**kwargs))
        assert sent(m) == []


async def test_pages_refuses_a_cursor_since_it_follows_its_own(client: AsyncAuditLogsClient) -> None:
    with aioresponses() as m:
        with pytest.raises(TypeError, match="cursor"):
            await anext(client.pages(oldest=1, latest=2, cursor="c1"))  # type: ignore[call-arg]
        assert sent(m) == []


def test_thirty_actions_are_allowed() -> None:
    params = build_logs_params(action=[f"a{i}" for i in range(30)])
    assert params["action"].count(",") == 29


async def test_schemas_and_actions_call_their_endpoints(client: AsyncAuditLogsClient) -> None:
    with aioresponses() as m:
        m.get(BASE + "schemas", payload={"schemas": [{"type": "user"}]})
        m.get(BASE + "actions", payload={"actions": {"user": ["user_login"]}})
        schemas = await client.schemas()
        actions = await client.actions()
    assert schemas.body == {"schemas": [{"type": "user"}]}
    assert actions.typed_body is not None
    assert actions.typed_body.unknown_fields == {"actions": {"user": ["user_login"]}}


async def test_a_callers_session_is_reused_and_left_open() -> None:
    async with aiohttp.ClientSession() as session:
        client = AsyncAuditLogsClient("xoxp-test", base_url=BASE, session=session, retry_handlers=[])
        with aioresponses() as m:
            m.get(LOGS, payload=PAGE)
            m.get(LOGS, payload=PAGE)
            await client.logs()
            await client.logs()
        assert not session.closed


@pytest.fixture
def opened(client: AsyncAuditLogsClient, monkeypatch: pytest.MonkeyPatch) -> list[aiohttp.ClientSession]:
    """The sessions the client opens itself, in order."""
    sessions: list[aiohttp.ClientSession] = []
    original = client._new_session

    def tracking() -> aiohttp.ClientSession:
        sessions.append(original())
        return sessions[-1]

    monkeypatch.setattr(client, "_new_session", tracking)
    return sessions


async def test_the_client_closes_the_sessions_it_opens(
    client: AsyncAuditLogsClient, opened: list[aiohttp.ClientSession]
) -> None:
    with aioresponses() as m:
        m.get(LOGS, payload=PAGE)
        await client.logs()
    assert len(opened) == 1
    assert opened[0].closed


async def test_debug_logs_show_the_request_without_the_token(
    client: AsyncAuditLogsClient, caplog: pytest.LogCaptureFixture
) -> None:
    client.logger.setLevel(logging.DEBUG)
    with caplog.at_level(logging.DEBUG, logger=client.logger.name), aioresponses() as m:
        m.get(LOGS, status=401, payload={"ok": False, "error": "invalid_authentication"})
        await client.logs(oldest=1)
    text = caplog.text
    assert "Sending GET" in text
    assert "(redacted)" in text
    assert "invalid_authentication" in text
    assert "xoxp-test" not in text


@pytest.mark.parametrize(
    "base_url", ["http://api.example.com/audit/v1/", "http://10.0.0.5/audit/v1/", "http://[2001:db8::1]/x/"]
)
def test_plain_http_to_a_remote_host_is_refused(base_url: str) -> None:
    with pytest.raises(ValueError, match="refusing to send the token over plain http"):
        AsyncAuditLogsClient("xoxp-test", base_url=base_url)


async def test_plain_http_refusal_also_guards_a_base_url_changed_later(client: AsyncAuditLogsClient) -> None:
    client.base_url = "http://api.example.com/audit/v1/"
    with aioresponses() as m:
        with pytest.raises(ValueError, match="plain http"):
            await client.logs()
        assert sent(m) == []


@pytest.mark.parametrize("base_url", ["http://127.0.0.1:1/a/", "http://localhost:1/a/", "http://[::1]:1/a/"])
def test_plain_http_to_loopback_is_allowed(base_url: str) -> None:
    assert AsyncAuditLogsClient("xoxp-test", base_url=base_url).base_url == base_url


def test_plain_http_to_a_remote_host_is_allowed_when_asked_explicitly() -> None:
    client = AsyncAuditLogsClient("xoxp-test", base_url="http://gateway.internal/", allow_insecure_http=True)
    assert client.base_url == "http://gateway.internal/"


def test_other_schemes_are_refused() -> None:
    with pytest.raises(ValueError, match="https://"):
        AsyncAuditLogsClient("xoxp-test", base_url="ftp://example.com/")


async def test_pages_follow_the_cursor_and_resend_every_filter(client: AsyncAuditLogsClient) -> None:
    bodies = iter(
        [
            {"entries": [{"id": "a", "date_create": 5}], "response_metadata": {"next_cursor": "c1"}},
            {"entries": [{"id": "b", "date_create": 4}], "response_metadata": {"next_cursor": "c2"}},
            {"entries": [{"id": "c", "date_create": 3}], "response_metadata": {"next_cursor": ""}},
        ]
    )

    def reply(url: Any, **kwargs: Any) -> CallbackResult:
        return CallbackResult(payload=next(bodies))

    with aioresponses() as m:
        m.get(LOGS, callback=reply, repeat=True)
        ids = [
            e.id
            async for page in client.pages(
                oldest=1, latest=9, limit=2, action=["x", "y"], actor="U", entity="C"
            )
            for e in page.raw_page().entries
        ]
    assert ids == ["a", "b", "c"]
    params = [kwargs["params"] for _, kwargs in sent(m)]
    common = {"oldest": "1", "latest": "9", "limit": "2", "action": "x,y", "actor": "U", "entity": "C"}
    assert params == [common, {**common, "cursor": "c1"}, {**common, "cursor": "c2"}]


async def test_pages_stop_with_a_transient_error_when_the_server_repeats_a_cursor(
    client: AsyncAuditLogsClient,
) -> None:
    with aioresponses() as m:
        m.get(LOGS, payload={"entries": [], "response_metadata": {"next_cursor": "same"}}, repeat=True)
        with pytest.raises(SlackAuditLogsApiError) as info:
            async for _ in client.pages(oldest=1, latest=2):
                pass
    assert (info.value.error, info.value.kind) == ("pagination_stalled", "transient")


async def test_pages_open_one_session_for_the_whole_iteration_and_close_it(
    client: AsyncAuditLogsClient, opened: list[aiohttp.ClientSession]
) -> None:
    cursors = iter(["c1", "c2", ""])

    def reply(url: Any, **kwargs: Any) -> CallbackResult:
        return CallbackResult(payload={"entries": [], "response_metadata": {"next_cursor": next(cursors)}})

    with aioresponses() as m:
        m.get(LOGS, callback=reply, repeat=True)
        pages = [page async for page in client.pages(oldest=1, latest=2)]
    assert len(pages) == 3
    assert len(opened) == 1
    assert opened[0].closed
