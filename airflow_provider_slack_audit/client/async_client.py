"""Async client of the Slack Audit Logs API, a drop-in for slack_sdk's ``AsyncAuditLogsClient``.

Same constructor, attributes and methods (``schemas``, ``actions``, ``logs``, ``api_call``), so code
written for slack_sdk runs on it. What it does differently for bulk export (handlers asked about every
failure, one wait budget per request, :meth:`pages`, redirects refused, lazy decoding, arguments
checked before any request) is tabled in docs/client.md, "What differs from slack_sdk". No exception
leaving the client carries the token or a proxy's password (see :mod:`.redaction`), and no secret
crosses the network in clear (see :mod:`.transport`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from ssl import SSLContext
from typing import TYPE_CHECKING, Any, NamedTuple

import aiohttp
import msgspec
from aiohttp import BasicAuth, ClientSession

from .blocking import run_blocking
from .errors import SlackAuditLogsApiError, SlackAuditLogsConfigError, classify_exception, hint
from .query import (
    MAX_LIMIT,
    MAX_STALLED_PAGES,
    LogsQuery,
    PageProgress,
    build_logs_params,
    page_cap,
    page_problem,
    paging_error,
    query_string_params,
)
from .ratelimit import PRIORITIES, Priority, RateLimiter, WaitExceedsBudget, shared_rate_limiter
from .redaction import contains_secret, redact_text, redact_url, scrub_exception
from .response import AuditLogsResponse, request_path
from .retry import (
    MAX_GARBLED_PAGE_RETRIES,
    AsyncRetryHandler,
    AsyncRetryHandlerProtocol,
    HttpRequest,
    HttpResponse,
    RetryBudget,
    RetryState,
    Sleep,
    default_retry_handlers,
    retry_after_seconds,
)
from .transport import (
    check_proxy,
    check_transport,
    get_user_agent,
    load_http_proxy_from_env,
    log_request,
    log_response,
    proxy_for,
    redirect_error,
    url_password,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

# A runaway handler list must not loop forever (slack_sdk has the same cap).
MAX_ATTEMPTS = 100
#: The default of ``max_retry_wait``: seconds one request may wait in all.
DEFAULT_MAX_RETRY_WAIT = 300.0


class _Request(NamedTuple):
    http_verb: str
    url: str
    params: dict[str, str]
    data: bytes | None
    headers: dict[str, str]
    retry_request: HttpRequest


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
        allow_insecure_http: allow sending the token over plain http to a non-loopback host (or
            through a plain-http proxy on one).
        max_retry_wait: seconds one request may spend waiting in all (back-offs, Retry-After,
            rate pacing); the one budget every handler draws from.
        sleep: the coroutine retry waits use (default: :func:`.retry.default_sleep`, looked up at
            each wait); ``clock``: the monotonic clock that measures foreign handlers' waits.
        priority: ``live`` (default) or ``backfill``: in the shared limiter live requests go first
            (see :func:`.ratelimit.infer_priority`).
    """

    BASE_URL = "https://api.slack.com/audit/v1/"

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
        max_retry_wait: float = DEFAULT_MAX_RETRY_WAIT,
        sleep: Sleep | None = None,
        clock: Callable[[], float] = time.monotonic,
        priority: Priority = "live",
    ) -> None:
        if not isinstance(token, str) or not token.strip():
            raise ValueError("token is empty: pass an org owner's user token (xoxp-...)")
        if priority not in PRIORITIES:
            raise SlackAuditLogsConfigError(
                f"priority must be one of {', '.join(PRIORITIES)}, got {priority!r}", field="priority"
            )
        if isinstance(max_retry_wait, bool) or not (
            isinstance(max_retry_wait, int | float) and 0 <= max_retry_wait < math.inf
        ):
            raise SlackAuditLogsConfigError(
                f"max_retry_wait must be a number of seconds >= 0, got {max_retry_wait!r}",
                field="max_retry_wait",
            )
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
        self.retry_handlers: list[AsyncRetryHandlerProtocol] = (
            list(retry_handlers) if retry_handlers is not None else list(default_retry_handlers())
        )
        self.allow_insecure_http = allow_insecure_http
        self.max_retry_wait = float(max_retry_wait)
        self.sleep = sleep
        self.clock = clock
        self.priority: Priority = priority
        # For callers' logs and benchmarks (waits: rate limiter slots and retry back-offs).
        self.request_count = 0
        self.wait_seconds = 0.0
        self.rate_limiter: RateLimiter | None = (
            shared_rate_limiter(self.base_url, token, requests_per_minute) if requests_per_minute else None
        )
        # A proxy from the environment honours NO_PROXY, as aiohttp's trust_env does; one passed
        # explicitly is used for every request.
        self._proxy_from_env = self.proxy is None or not self.proxy.strip()
        if self._proxy_from_env:
            self.proxy = load_http_proxy_from_env(self.logger)
        self._check_transport(self.base_url)

    def __repr__(self) -> str:
        # The default repr would be harmless, but a repr is where secrets leak first.
        proxy = f" proxy={redact_url(self.proxy)!r}" if self.proxy else ""
        return f"<AsyncAuditLogsClient base_url={self.base_url!r}{proxy}>"

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
        cursor: str | None = None,
        headers: dict[str, str] | None = None,
        **query: Unpack[LogsQuery],
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
        params = build_logs_params(cursor=cursor, **query)
        return await self.api_call(path="logs", query_params=params, headers=headers)

    async def pages(
        self,
        *,
        headers: dict[str, str] | None = None,
        max_pages: int | None = None,
        **query: Unpack[LogsQuery],
    ) -> AsyncIterator[AuditLogsResponse]:
        """Every page of a query (the arguments of :meth:`logs` but ``cursor``), following
        ``next_cursor`` until it is ``""``.

        Each request resends oldest, latest, limit and every filter with the cursor. Each yielded
        response is a 2xx page; a failure after retries raises :class:`SlackAuditLogsApiError`
        (``kind == "cursor"`` for an expired cursor: restart the query), and a page with a garbled
        body raises a transient ``invalid_response`` error. Use ``response.raw_page()`` for the
        entries' raw bytes, or ``response.typed_body`` for models.

        The iteration always ends: :data:`MAX_STALLED_PAGES` pages in a row that do not move the
        read older (the same cursor again, or no entry older than, or new at, the oldest second
        read so far) raise a transient ``pagination_stalled`` error, and more
        than ``max_pages`` pages (default :func:`page_cap` of oldest/latest) a transient
        ``too_many_pages`` one.
        """
        if max_pages is not None and (isinstance(max_pages, bool) or not isinstance(max_pages, int)):
            raise TypeError(f"max_pages must be an int, got {type(max_pages).__name__}")
        if max_pages is not None and max_pages < 1:
            raise ValueError(f"max_pages must be >= 1, got {max_pages}")
        base = build_logs_params(cursor=None, **query)  # a bad argument fails before any request
        oldest, latest = query.get("oldest"), query.get("latest")
        cap = max_pages if max_pages is not None else page_cap(oldest, latest)
        cursor: str | None = None
        progress = PageProgress()
        pages = 0
        # Without a caller's session, one session (one kept-alive connection) serves every page of
        # the iteration: a new connection per page costs a TLS handshake each against Slack.
        async with self._session() as session:
            while True:
                params = dict(base) if cursor is None else {**base, "cursor": cursor}
                response = await self._send_with_retries(
                    session, self._request("GET", "logs", params, None, headers), page=True
                )
                next_cursor = response.next_cursor  # validates status and body
                pages += 1
                stalled = await run_blocking(progress.record, cursor, next_cursor, response)
                yield response
                if not next_cursor:
                    return
                if stalled >= MAX_STALLED_PAGES:
                    raise paging_error(
                        "pagination_stalled",
                        f"{stalled} pages in a row did not move older (the same cursor, or no entry "
                        "older than, or new at, the oldest second read so far)",
                    )
                if cap is not None and pages >= cap:
                    raise paging_error(
                        "too_many_pages",
                        f"the query [{oldest}, {latest}] returned {pages} pages and still had a next "
                        f"cursor, more than its window can hold ({cap})",
                    )
                cursor = next_cursor

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
        propagates as aiohttp raised it, scrubbed of the token. Two exceptions: a redirect (3xx)
        raises a permanent ``redirected`` error (it is never followed), and a request that cannot
        get a rate-limiter slot within its budget raises a transient ``retry_budget_exhausted``.
        """
        request = self._request(http_verb, path, query_params, body_params, headers)
        async with self._session() as session:
            return await self._send_with_retries(session, request, page=False)

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncIterator[ClientSession]:
        """The caller's session while it is open (left open), else one of our own, closed after."""
        if self.session is not None and not self.session.closed:
            yield self.session
            return
        session = self._new_session()
        try:
            yield session
        finally:
            await session.close()

    def _request(
        self,
        http_verb: str,
        path: str,
        query_params: dict[str, Any] | None,
        body_params: dict[str, Any] | None,
        headers: dict[str, str] | None,
    ) -> _Request:
        url = f"{self.base_url}{path.lstrip('/')}"
        self._check_transport(url)
        request_headers = {
            "Content-Type": "application/json;charset=utf-8",
            "Authorization": f"Bearer {self.token}",
            **self.default_headers,
            **(headers or {}),
        }
        data = msgspec.json.encode(body_params) if body_params is not None else None
        retry_request = HttpRequest(
            method=http_verb, url=url, headers=request_headers, body_params=body_params, data=data
        )
        return _Request(
            http_verb, url, query_string_params(query_params), data, request_headers, retry_request
        )

    async def _send_with_retries(
        self, session: ClientSession, request: _Request, *, page: bool
    ) -> AuditLogsResponse:
        """Send ``request`` on ``session``, retried as the handlers decide.

        ``page``: a 2xx answer must also be a good page; a garbled one is offered to the handlers.
        """
        http_verb, url, params, _, headers, retry_request = request
        budget = RetryBudget(self.max_retry_wait)
        state = RetryState(custom_values={}, budget=budget, sleep=self.sleep)
        requests, limited = 0, 0
        for _attempt in range(MAX_ATTEMPTS):
            state.next_attempt_requested = False
            await self._pace(budget, url)
            self.request_count += 1
            requests += 1
            log_request(self.logger, http_verb, url, params, headers)
            try:
                response = await self._send(session, request)
            except Exception as error:
                scrub_exception(error, self._secrets())
                if not await self._ask_handlers(state, retry_request, None, error):
                    self._raise_clean(error)
                continue
            log_response(self.logger, response)
            limited += response.status_code == 429
            response.requests, response.rate_limited = requests, limited
            response.wait_seconds = budget.spent
            if 300 <= response.status_code < 400:
                raise redirect_error(response)
            # Decoding a large page runs in a thread, so the event loop (every trigger of a triggerer
            # shares it) is never held for long; raw_page() keeps the result for the caller.
            problem = await run_blocking(page_problem, response) if page and response.ok else None
            if response.ok and problem is None:
                if self.rate_limiter is not None:
                    self.rate_limiter.succeeded()
                return response
            if response.status_code == 429 and not self._may_wait_for(response, budget):
                return response
            if problem is not None and problem.kind != "transient":
                return response  # a 2xx `ok: false` with a permanent code: the caller's validate() raises
            view = HttpResponse(
                status_code=response.status_code,
                headers={k: str(v) for k, v in response.headers.items()},
                body=response.body,
                data=response.content,
            )
            if not await self._ask_handlers(state, retry_request, view, problem):
                return response
        raise RuntimeError(
            f"gave up after {MAX_ATTEMPTS} attempts of {http_verb} {url}: check the retry handlers"
        )

    async def _pace(self, budget: RetryBudget, url: str) -> None:
        """Wait for the shared limiter's slot, drawing from the request's budget."""
        if self.rate_limiter is None:
            return
        try:
            paced = await self.rate_limiter.acquire(self.priority, max_wait=budget.remaining)
        except WaitExceedsBudget as exceeded:
            raise SlackAuditLogsApiError(
                f"Audit Logs API request to {request_path(url)} not sent: {exceeded}: "
                f"{hint('retry_budget_exhausted')}",
                error="retry_budget_exhausted",
                kind="transient",
            ) from None
        budget.charge(paced)
        self.wait_seconds += paced

    def _may_wait_for(self, response: AuditLogsResponse, budget: RetryBudget) -> bool:
        """Tell the limiter about a 429; whether its Retry-After still fits the request's budget.

        The shared pause is capped (``MAX_SHARED_PAUSE``): one huge Retry-After fails this request
        at once (transient: Airflow's retry comes back later) and holds the org's other ingests
        in this process no longer than the cap.
        """
        retry_after = retry_after_seconds(response.headers)
        if self.rate_limiter is not None:
            self.rate_limiter.rate_limited()
            self.rate_limiter.pause(retry_after if retry_after is not None else 1.0)
        if retry_after is not None and not budget.allows(retry_after):
            self.logger.warning(
                "HTTP 429 from %s asks to wait %s s but the request has %.1f s of its retry budget "
                "(max_retry_wait) left: failing it now",
                request_path(response.url),
                retry_after,
                budget.remaining,
            )
            return False
        return True

    async def _ask_handlers(
        self,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None,
        error: Exception | None,
    ) -> bool:
        """Let the first handler that accepts prepare the next attempt; whether one did.

        Our handlers charge their planned waits to ``state.budget``; a foreign one (slack_sdk's) is
        charged the time it took, and is no longer asked once the budget is spent.
        """
        budget = state.budget
        assert budget is not None
        for handler in self.retry_handlers:
            if budget.remaining <= 0 and not isinstance(handler, AsyncRetryHandler):
                continue
            if await handler.can_retry_async(state=state, request=request, response=response, error=error):
                what = f"HTTP {response.status_code}" if response is not None else type(error).__name__
                if error is not None and response is not None:
                    what = f"HTTP {response.status_code} ({getattr(error, 'error', None) or 'bad body'})"
                self.logger.info(
                    "Retrying %s %s after %s (%s)",
                    request.method,
                    request_path(request.url),
                    what,
                    type(handler).__name__,
                )
                spent, started = budget.spent, self.clock()
                await handler.prepare_for_next_attempt_async(
                    state=state, request=request, response=response, error=error
                )
                if budget.spent == spent:  # a foreign handler: charge what it slept
                    budget.charge(self.clock() - started)
                self.wait_seconds += budget.spent - spent
                return state.next_attempt_requested
        return False

    def _secrets(self) -> list[str]:
        password = url_password(self.proxy) if self.proxy else None
        return [self.token, password] if password else [self.token]

    def _raise_clean(self, error: Exception) -> None:
        """Re-raise ``error`` (already scrubbed); if a secret survived, raise a clean copy instead."""
        secrets = self._secrets()
        if not contains_secret(error, secrets):
            raise error
        kind = classify_exception(error) or "transient"
        raise SlackAuditLogsApiError(
            f"{type(error).__name__}: {redact_text(str(error), secrets)}", kind=kind
        ) from None

    async def _send(self, session: ClientSession, request: _Request) -> AuditLogsResponse:
        proxy, proxy_auth = proxy_for(request.url, self.proxy, from_env=self._proxy_from_env)
        async with session.request(
            request.http_verb,
            request.url,
            params=request.params,
            data=request.data,
            headers=request.headers,
            ssl=self.ssl if self.ssl is not None else True,
            proxy=proxy,
            proxy_auth=proxy_auth,
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            allow_redirects=False,
        ) as res:
            body = await res.read()
            return AuditLogsResponse(
                url=str(res.url), status_code=res.status, raw_body=body, headers=res.headers
            )

    def _new_session(self) -> ClientSession:
        return aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            auth=self.auth,
            trust_env=self.trust_env_in_session,
        )

    def _check_transport(self, url: str) -> None:
        check_transport(url, allow_insecure_http=self.allow_insecure_http)
        check_proxy(self.proxy, base_url=self.base_url, allow_insecure_http=self.allow_insecure_http)


# MAX_LIMIT and MAX_GARBLED_PAGE_RETRIES stay importable from here, where callers found them.
__all__ = ["DEFAULT_MAX_RETRY_WAIT", "MAX_GARBLED_PAGE_RETRIES", "MAX_LIMIT", "AsyncAuditLogsClient"]
