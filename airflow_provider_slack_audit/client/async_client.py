"""Async client of the Slack Audit Logs API, a drop-in for slack_sdk's ``AsyncAuditLogsClient``.

Same constructor, attributes and methods (``schemas``, ``actions``, ``logs``, ``api_call``), so code
written for slack_sdk runs on it. What differs is what slack_sdk gets wrong for bulk export:

- the default retry handlers retry 429 (``Retry-After``), 500/502/503/504 and dropped connections,
  truncated bodies and timeouts, each within a total-wait budget (slack_sdk's defaults retry only
  dropped connections, and its server-error handler knows only 500 and 503); handlers are asked
  about every non-2xx response and every exception of a request;
- :meth:`pages` follows ``next_cursor`` and resends every filter on every page (the API keeps no
  query state);
- bodies are read once as bytes and decoded lazily; :meth:`AuditLogsResponse.raw_page` hands out
  each entry's original bytes without building Python objects;
- arguments are checked before any request, and the token is never sent over plain http to a
  host other than loopback.

It knows nothing of Airflow.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import platform
import sys
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from ssl import SSLContext
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import msgspec
from aiohttp import BasicAuth, ClientSession

from . import retry as retry_module
from .errors import SlackAuditLogsApiError
from .ratelimit import RateLimiter, shared_rate_limiter
from .response import AuditLogsResponse
from .retry import (
    AsyncRetryHandlerProtocol,
    HttpRequest,
    HttpResponse,
    RetryState,
    default_retry_handlers,
    retry_after_seconds,
)

MAX_LIMIT = 9999
MAX_ACTIONS = 30
# A runaway handler list must not loop forever (slack_sdk has the same cap).
MAX_ATTEMPTS = 100
# A 2xx body that is not a page is asked for again this many times, after 0.5 s, 1 s, 2 s.
MAX_GARBLED_PAGE_RETRIES = 3
GARBLED_PAGE_BACKOFF = 0.5


def get_user_agent(prefix: str | None = None, suffix: str | None = None) -> str:
    """``[prefix ]Python/X.Y.Z airflow-provider-slack-audit/V System/Release[ suffix]``."""
    from airflow_provider_slack_audit import __version__

    python = f"Python/{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    parts = [
        python,
        f"airflow-provider-slack-audit/{__version__}",
        f"{platform.system()}/{platform.release()}",
    ]
    if prefix:
        parts.insert(0, prefix)
    if suffix:
        parts.append(suffix)
    return " ".join(parts)


def load_http_proxy_from_env(logger: logging.Logger | None = None) -> str | None:
    """The proxy from HTTPS_PROXY, https_proxy, HTTP_PROXY or http_proxy; an empty value unsets it."""
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        value = os.environ.get(name)
        if value is not None:
            if not value.strip():
                return None
            if logger is not None:
                logger.debug("Using the proxy from the %s environment variable", name)
            return value
    return None


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class AsyncAuditLogsClient:
    """API client of the Audit Logs API (``https://api.slack.com/audit/v1/``).

    Args:
        token: an org owner's user token (``xoxp-...``) with the ``auditlogs:read`` scope.
        timeout: total seconds for one HTTP request (each retry gets its own).
        ssl: an ``ssl.SSLContext``; by default certificates are verified.
        proxy: proxy URL; when unset, taken from HTTPS_PROXY/https_proxy/HTTP_PROXY/http_proxy.
        base_url: the API's base URL, ending in ``/``.
        session: an ``aiohttp.ClientSession`` to reuse; the client never closes it. Without one,
            each call opens and closes its own session.
        trust_env_in_session: ``trust_env`` of the sessions the client opens.
        auth: basic auth for the sessions the client opens (e.g. for a proxy).
        default_headers: headers added to every request.
        user_agent_prefix, user_agent_suffix: wrapped around the default User-Agent.
        logger: logger for DEBUG request logs (Authorization is always redacted).
        retry_handlers: handlers with slack_sdk's protocol; default :func:`default_retry_handlers`.
        requests_per_minute: pace calls to this rate, sharing the budget with every client of the
            same org in this process (see :mod:`.ratelimit`). ``None`` (default) does not pace.
        allow_insecure_http: allow sending the token over plain http to a non-loopback host.
    """

    BASE_URL = "https://api.slack.com/audit/v1/"

    token: str
    timeout: int
    ssl: SSLContext | None
    proxy: str | None
    base_url: str
    session: ClientSession | None
    trust_env_in_session: bool
    auth: BasicAuth | None
    default_headers: dict[str, str]
    logger: logging.Logger
    retry_handlers: list[AsyncRetryHandlerProtocol]
    rate_limiter: RateLimiter | None

    def __init__(
        self,
        token: str,
        timeout: int = 30,
        ssl: SSLContext | None = None,
        proxy: str | None = None,
        base_url: str = BASE_URL,
        session: ClientSession | None = None,
        trust_env_in_session: bool = False,
        auth: BasicAuth | None = None,
        default_headers: dict[str, str] | None = None,
        user_agent_prefix: str | None = None,
        user_agent_suffix: str | None = None,
        logger: logging.Logger | None = None,
        retry_handlers: list[Any] | None = None,
        *,
        requests_per_minute: float | None = None,
        allow_insecure_http: bool = False,
    ) -> None:
        if not isinstance(token, str) or not token.strip():
            raise ValueError("token is empty: pass an org owner's user token (xoxp-...)")
        self.token = token
        self.timeout = timeout
        self.ssl = ssl
        self.proxy = proxy
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.session = session
        self.trust_env_in_session = trust_env_in_session
        self.auth = auth
        self.default_headers = dict(default_headers) if default_headers else {}
        self.default_headers["User-Agent"] = get_user_agent(user_agent_prefix, user_agent_suffix)
        self.logger = logger if logger is not None else logging.getLogger(__name__)
        self.retry_handlers = (
            list(retry_handlers) if retry_handlers is not None else list(default_retry_handlers())
        )
        self.allow_insecure_http = allow_insecure_http
        # Counters for callers' logs and benchmarks: HTTP requests sent, seconds spent waiting
        # (rate limiter slots and retry back-offs).
        self.request_count = 0
        self.wait_seconds = 0.0
        self.rate_limiter = (
            shared_rate_limiter(self.base_url, token, requests_per_minute) if requests_per_minute else None
        )
        if self.proxy is None or not self.proxy.strip():
            self.proxy = load_http_proxy_from_env(self.logger)
        self._check_transport(self.base_url)

    def __repr__(self) -> str:
        # The default repr would be harmless, but a repr is where secrets leak first.
        return f"<AsyncAuditLogsClient base_url={self.base_url!r}>"

    async def schemas(
        self, *, query_params: dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> AuditLogsResponse:
        """The kinds of objects the API returns (no authentication needed)."""
        return await self.api_call(path="schemas", query_params=query_params, headers=headers)

    async def actions(
        self, *, query_params: dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> AuditLogsResponse:
        """The actions the API reports, by kind of object (no authentication needed)."""
        return await self.api_call(path="actions", query_params=query_params, headers=headers)

    async def logs(
        self,
        *,
        latest: int | None = None,
        oldest: int | None = None,
        limit: int | None = None,
        action: str | Iterable[str] | None = None,
        actor: str | None = None,
        entity: str | None = None,
        cursor: str | None = None,
        additional_query_params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> AuditLogsResponse:
        """One page of audit events, newest first.

        Args:
            latest, oldest: Unix seconds, both inclusive. No data exists before 2018-03-01.
            limit: entries to return, 1..9999. Optimistic: a page may hold more when entries share
                a second.
            action: an action name, a comma-separated string, or a list of up to 30 names.
            actor: a user id; entity: the id of the target (channel, file, workspace, ...).
            cursor: ``response_metadata.next_cursor`` of the previous page. The server keeps no
                query state: send the same filters with it (:meth:`pages` does).
        """
        params = build_logs_params(
            latest=latest,
            oldest=oldest,
            limit=limit,
            action=action,
            actor=actor,
            entity=entity,
            cursor=cursor,
            additional_query_params=additional_query_params,
        )
        return await self.api_call(path="logs", query_params=params, headers=headers)

    async def pages(
        self,
        *,
        oldest: int | None = None,
        latest: int | None = None,
        limit: int | None = None,
        action: str | Iterable[str] | None = None,
        actor: str | None = None,
        entity: str | None = None,
        additional_query_params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> AsyncIterator[AuditLogsResponse]:
        """Every page of a query, following ``next_cursor`` until it is ``""``.

        Each request resends oldest, latest, limit and every filter with the cursor. Each yielded
        response is a 2xx page; a failure after retries raises :class:`SlackAuditLogsApiError`
        (``kind == "cursor"`` for an expired cursor: restart the query), and a page with a garbled
        body raises a transient ``invalid_response`` error. Use ``response.raw_page()`` for the
        entries' raw bytes, or ``response.typed_body`` for models.
        """
        # Validate once up front so a bad argument fails before the first request.
        base = build_logs_params(
            latest=latest,
            oldest=oldest,
            limit=limit,
            action=action,
            actor=actor,
            entity=entity,
            additional_query_params=additional_query_params,
        )
        # Without a caller's session, one session (one kept-alive connection) serves every page of
        # the iteration: a new connection per page costs a TLS handshake each against Slack.
        own_session = self._new_session() if self.session is None or self.session.closed else None
        cursor: str | None = None
        seen_cursors: set[str] = set()
        try:
            while True:
                params = dict(base) if cursor is None else {**base, "cursor": cursor}
                response, next_cursor = await self._fetch_page(params, headers, own_session)
                yield response
                if not next_cursor:
                    return
                if next_cursor in seen_cursors:
                    # A server that hands back a cursor twice would make this loop forever.
                    raise RuntimeError(f"the API returned the cursor {next_cursor[:16]}... twice; stopping")
                seen_cursors.add(next_cursor)
                cursor = next_cursor
        finally:
            if own_session is not None:
                await own_session.close()

    async def _fetch_page(
        self, params: dict[str, Any], headers: dict[str, str] | None, session: ClientSession | None
    ) -> tuple[AuditLogsResponse, str]:
        """One page and its next cursor; a 2xx body that is not a page is requested again.

        Such a body (a proxy's HTML page, an empty body, an entry without ``id``) says nothing about
        the query, so asking again for the same page is the cheapest repair; the retry handlers never
        see it because its status is 2xx.
        """
        requests, waited, limited = 0, 0.0, 0
        for attempt in range(MAX_GARBLED_PAGE_RETRIES + 1):
            response = await self._api_call(
                path="logs", query_params=params, headers=headers, session=session
            )
            requests += response.requests
            waited += response.wait_seconds
            limited += response.rate_limited
            try:
                # Validates status and body; decoding a large page runs in a thread, in slices, so
                # the event loop (shared by every trigger of a triggerer) is never held for long.
                next_cursor = await asyncio.to_thread(getattr, response, "next_cursor")
                response.requests, response.wait_seconds = requests, waited
                response.rate_limited = limited
                return response, next_cursor
            except SlackAuditLogsApiError as error:
                if error.error != "invalid_response" or attempt == MAX_GARBLED_PAGE_RETRIES:
                    raise
                delay = GARBLED_PAGE_BACKOFF * 2**attempt
                self.logger.warning("%s; asking for the same page again in %.1f s", error.message, delay)
                started = time.monotonic()
                await retry_module._sleep(delay)
                slept = time.monotonic() - started
                self.wait_seconds += slept
                waited += slept
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def api_call(
        self,
        *,
        http_verb: str = "GET",
        path: str,
        query_params: dict[str, Any] | None = None,
        body_params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> AuditLogsResponse:
        """Send one request, retrying as the handlers decide; return the last response.

        Like slack_sdk, any HTTP status is returned once retries are spent (call
        ``response.validate()`` to raise), and a connection error that no handler retries
        propagates as aiohttp raised it.
        """
        return await self._api_call(
            http_verb=http_verb,
            path=path,
            query_params=query_params,
            body_params=body_params,
            headers=headers,
        )

    async def _api_call(
        self,
        *,
        http_verb: str = "GET",
        path: str,
        query_params: dict[str, Any] | None = None,
        body_params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        session: ClientSession | None = None,
    ) -> AuditLogsResponse:
        """:meth:`api_call` on ``session`` when given (left open), else as the constructor decided."""
        url = f"{self.base_url}{path.lstrip('/')}"
        self._check_transport(url)
        request_headers = {
            "Content-Type": "application/json;charset=utf-8",
            "Authorization": f"Bearer {self.token}",
            **self.default_headers,
            **(headers or {}),
        }
        data = msgspec.json.encode(body_params) if body_params is not None else None
        params = {k: _query_value(v) for k, v in (query_params or {}).items() if v is not None}
        retry_request = HttpRequest(
            method=http_verb, url=url, headers=request_headers, body_params=body_params, data=data
        )

        own_session = session is None and (self.session is None or self.session.closed)
        session = self._new_session() if own_session else (session or self.session)
        assert session is not None
        try:
            return await self._send_with_retries(
                session, http_verb, url, params, data, request_headers, retry_request
            )
        finally:
            if own_session:
                await session.close()

    async def _send_with_retries(
        self,
        session: ClientSession,
        http_verb: str,
        url: str,
        params: dict[str, str],
        data: bytes | None,
        headers: dict[str, str],
        retry_request: HttpRequest,
    ) -> AuditLogsResponse:
        state = RetryState(custom_values={})
        requests, waited, limited = 0, 0.0, 0
        for _attempt in range(MAX_ATTEMPTS):
            state.next_attempt_requested = False
            if self.rate_limiter is not None:
                paced = await self.rate_limiter.acquire()
                self.wait_seconds += paced
                waited += paced
            self.request_count += 1
            requests += 1
            self._debug_request(http_verb, url, params, headers)
            try:
                response = await self._send(session, http_verb, url, params, data, headers)
            except Exception as error:
                retried, slept = await self._ask_handlers(state, retry_request, None, error)
                waited += slept
                if not retried:
                    raise
                continue
            self._debug_response(response)
            limited += response.status_code == 429
            response.requests, response.rate_limited = requests, limited
            if response.ok:
                response.wait_seconds = waited
                return response
            if response.status_code == 429 and self.rate_limiter is not None:
                self.rate_limiter.pause(retry_after_seconds(response.headers) or 1.0)
            view = HttpResponse(
                status_code=response.status_code,
                headers={k: str(v) for k, v in response.headers.items()},
                body=response.body,
                data=response.content,
            )
            retried, slept = await self._ask_handlers(state, retry_request, view, None)
            waited += slept
            if not retried:
                response.wait_seconds = waited
                return response
        raise RuntimeError(
            f"gave up after {MAX_ATTEMPTS} attempts of {http_verb} {url}: check the retry handlers"
        )

    async def _send(
        self,
        session: ClientSession,
        http_verb: str,
        url: str,
        params: dict[str, str],
        data: bytes | None,
        headers: dict[str, str],
    ) -> AuditLogsResponse:
        async with session.request(
            http_verb,
            url,
            params=params,
            data=data,
            headers=headers,
            ssl=self.ssl if self.ssl is not None else True,
            proxy=self.proxy,
            timeout=aiohttp.ClientTimeout(total=self.timeout),
        ) as res:
            body = await res.read()
            return AuditLogsResponse(
                url=str(res.url), status_code=res.status, raw_body=body, headers=res.headers
            )

    async def _ask_handlers(
        self,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None,
        error: Exception | None,
    ) -> tuple[bool, float]:
        """Let the first handler that accepts prepare the next attempt: (whether one did, seconds waited)."""
        for handler in self.retry_handlers:
            if await handler.can_retry_async(state=state, request=request, response=response, error=error):
                what = f"HTTP {response.status_code}" if response is not None else type(error).__name__
                self.logger.info(
                    "Retrying %s %s after %s (%s)",
                    request.method,
                    request.url.split("?")[0],
                    what,
                    type(handler).__name__,
                )
                started = time.monotonic()
                await handler.prepare_for_next_attempt_async(
                    state=state, request=request, response=response, error=error
                )
                slept = time.monotonic() - started
                self.wait_seconds += slept
                return state.next_attempt_requested, slept
        return False, 0.0

    def _new_session(self) -> ClientSession:
        return aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            auth=self.auth,
            trust_env=self.trust_env_in_session,
        )

    def _check_transport(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme == "https":
            return
        if parts.scheme != "http":
            raise ValueError(f"base_url must be an https:// URL, got scheme {parts.scheme!r} in {url!r}")
        if not self.allow_insecure_http and not is_loopback_host(parts.hostname):
            raise ValueError(
                f"refusing to send the token over plain http to {parts.hostname!r}: use https, or pass "
                "allow_insecure_http=True if you really mean it (plain http is allowed for loopback hosts)"
            )

    def _debug_request(
        self, verb: str, url: str, params: Mapping[str, str], headers: Mapping[str, str]
    ) -> None:
        if self.logger.isEnabledFor(logging.DEBUG):
            shown = {k: "(redacted)" if k.lower() == "authorization" else v for k, v in headers.items()}
            self.logger.debug("Sending %s %s params=%s headers=%s", verb, url, dict(params), shown)

    def _debug_response(self, response: AuditLogsResponse) -> None:
        if self.logger.isEnabledFor(logging.DEBUG):
            # Bodies hold audit data (emails, IPs): log their size, and only error bodies in full.
            body = response.raw_body if not response.ok else f"({len(response.content)} bytes)"
            self.logger.debug(
                "Received HTTP %s from %s: %s", response.status_code, response.url.split("?")[0], body
            )


def build_logs_params(
    *,
    latest: int | None = None,
    oldest: int | None = None,
    limit: int | None = None,
    action: str | Iterable[str] | None = None,
    actor: str | None = None,
    entity: str | None = None,
    cursor: str | None = None,
    additional_query_params: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Check ``logs`` arguments and build its query, dropping ``None``; raise before any request.

    ``additional_query_params`` are added as given (for parameters this client does not know).
    """
    for name, value in (("latest", latest), ("oldest", oldest), ("limit", limit)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise TypeError(
                f"{name} must be an int (Unix seconds for oldest/latest), got {type(value).__name__}"
            )
    if oldest is not None and oldest < 0:
        raise ValueError(f"oldest must be Unix seconds >= 0, got {oldest}")
    if latest is not None and latest < 0:
        raise ValueError(f"latest must be Unix seconds >= 0, got {latest}")
    if oldest is not None and latest is not None and oldest > latest:
        raise ValueError(f"oldest {oldest} is after latest {latest}: both bounds are inclusive Unix seconds")
    if limit is not None and not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    for name, text in (("actor", actor), ("entity", entity), ("cursor", cursor)):
        if text is not None and (not isinstance(text, str) or not text.strip()):
            raise TypeError(f"{name} must be a non-empty string, got {text!r}")
    params: dict[str, Any] = {
        "latest": latest,
        "oldest": oldest,
        "limit": limit,
        "action": join_actions(action) if action is not None else None,
        "actor": actor,
        "entity": entity,
        "cursor": cursor,
    }
    params.update(additional_query_params or {})
    return {k: v for k, v in params.items() if v is not None}


def join_actions(action: str | Iterable[str]) -> str:
    """Comma-join action names (a string may already be comma-separated); at most 30, none empty."""
    if isinstance(action, str):
        names = action.split(",")
    elif isinstance(action, Iterable):
        names = list(action)
        for name in names:
            if not isinstance(name, str):
                raise TypeError(f"action names must be strings, got {name!r}")
    else:
        raise TypeError(f"action must be a name or a list of names, got {type(action).__name__}")
    names = [n.strip() for n in names]
    if not names or any(not n for n in names):
        raise ValueError(f"action has an empty name in {action!r}: give names like 'user_login'")
    if len(names) > MAX_ACTIONS:
        raise ValueError(
            f"action lists {len(names)} names but the API takes at most {MAX_ACTIONS}: split the "
            "query into several tasks, or leave action unset and filter after landing"
        )
    return ",".join(names)


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


__all__ = ["AsyncAuditLogsClient", "build_logs_params", "get_user_agent", "is_loopback_host", "join_actions"]
