"""An aiohttp.web server that behaves like the Slack Audit Logs API, for tests, demos and benchmarks.

The server follows the API facts of DESIGN.md: inclusive ``oldest``/``latest``, newest-first
entries, an optimistic ``limit`` that never splits a second, an opaque stateless cursor, success
bodies without ``ok`` and ``{"ok": false, "error": ...}`` errors with a non-2xx status. On top of
that it can misbehave on purpose — an org-wide rate limit, late-arriving events, expiring cursors
and a menu of transport and payload faults — and it records every request it receives (never the
token) so tests can assert on what a client actually sent.

It knows nothing of Airflow: the client, the pipeline and the benchmarks all talk to it over HTTP.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import count
from typing import TYPE_CHECKING, TypedDict

import msgspec
from aiohttp import web
from aiohttp.typedefs import Handler
from multidict import MultiMapping

from .bucket import TokenBucket
from .catalogue import ACTIONS_BODY, AUDIT_LOGS_EPOCH, SCHEMAS_BODY
from .cursors import CursorCodec
from .errors import DENIAL_CODES, ApiError
from .events import (
    EntryFilter,
    EventSet,
    RenderedEntries,
    UnknownActionError,
    default_span,
    to_unix_seconds,
)
from .faults import (
    FaultPlan,
    rate_limited,
    replacing_answer,
    send_truncated,
    without_ids,
)
from .site import LoopbackSite

if TYPE_CHECKING:
    from typing_extensions import Unpack

API_PREFIX = "/audit/v1/"
DEFAULT_LIMIT = 200
MAX_LIMIT = 9999
MAX_ACTIONS = 30


@dataclass
class RecordedRequest:
    """One request as the server saw it. The token is never stored: only whether one was sent."""

    method: str
    path: str
    query: dict[str, str]
    has_authorization: bool
    time: float
    #: The status sent; None when no answer was sent (a dropped connection, or still in progress).
    status: int | None = None
    #: The fault injected into this request, if any.
    fault: str | None = None


@dataclass(frozen=True)
class LogsQuery:
    """A validated ``logs`` query: inclusive bounds, page size, filters and the cursor's position."""

    oldest: int
    latest: int
    limit: int
    entry_filter: EntryFilter
    start_index: int = 0


class OracleFilters(TypedDict, total=False):
    """The filters of an oracle query: the ``logs`` filters, and ``visible_only`` (default true):
    leave out the late events not visible yet."""

    action: str | Sequence[str] | None
    actor: str | None
    entity: str | None
    visible_only: bool


@dataclass(frozen=True)
class Page:
    """The entries of one page (indexes in API order) and the index the next page starts at."""

    indexes: Sequence[int]
    next_index: int | None
    #: Makes a cursor to the same position look new (the ``fresh_cursor`` fault); 0 normally.
    nonce: int = 0


class FakeAuditLogsServer(LoopbackSite):
    """A local Slack Audit Logs API with deterministic data and scriptable failures.

    Use it as an async context manager (``async with FakeAuditLogsServer(events=1000, seed=1) as
    server``) or from synchronous code with :meth:`start_in_thread` / :meth:`stop`. It listens on
    127.0.0.1 only; :attr:`base_url` is the value for a client's ``base_url``. Its parameters, and
    what it answers where the API leaves a choice open, are in docs/testing.md ("The server's
    parameters").
    """

    def __init__(
        self,
        *,
        events: int = 1000,
        seed: int = 0,
        start: datetime | int | None = None,
        end: datetime | int | None = None,
        tokens: Iterable[str] = ("xoxp-test",),
        denied_tokens: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        enabled_at: datetime | int = AUDIT_LOGS_EPOCH,
        late_fraction: float = 0.0,
        late_delay: int = 0,
        requests_per_minute: float | None = None,
        rate_limit_burst: int | None = None,
        rate_limit_clock: Callable[[], float] = time.monotonic,
        faults: FaultPlan | None = None,
        expire_cursor_uses: Collection[int] = (),
        pre_render: bool = False,
        cursor_secret: bytes | None = None,
        event_set: EventSet | None = None,
    ) -> None:
        if event_set is None:
            default_start, default_end = default_span()
            event_set = EventSet.generate(
                events=events,
                seed=seed,
                start=default_start if start is None else start,
                end=default_end if end is None else end,
                late_fraction=late_fraction,
                late_delay=late_delay,
            )
        #: The events served; also what the ``expected_*`` oracles read.
        self.event_set = event_set
        self._tokens = frozenset(tokens)
        self._denied_tokens = dict(denied_tokens or {})
        unknown_denials = set(self._denied_tokens.values()) - DENIAL_CODES
        if unknown_denials:
            raise ValueError(
                f"denied_tokens codes must be among {sorted(DENIAL_CODES)}, got {unknown_denials}"
            )
        #: The server's "now" in Unix seconds; assign another callable to move time.
        self.clock = clock
        self.enabled_at = to_unix_seconds(enabled_at)
        self.faults = faults if faults is not None else FaultPlan(seed=seed)
        self._bucket: TokenBucket | None = None
        if requests_per_minute is not None:
            burst = rate_limit_burst or math.ceil(requests_per_minute)
            self._bucket = TokenBucket(requests_per_minute, burst, rate_limit_clock)
        self._expire_cursor_uses = frozenset(expire_cursor_uses)
        self._cursors = CursorCodec(cursor_secret if cursor_secret is not None else os.urandom(32))
        self._nonces = count(1)
        self._rendered: RenderedEntries | None = event_set.render_all() if pre_render else None
        self._requests: list[RecordedRequest] = []
        #: How many ``logs`` requests carried a cursor (``expire_cursor_uses`` counts these, from 1).
        self.cursor_uses = 0
        #: How many 429 answers were sent.
        self.rate_limited_count = 0
        self._base_url: str | None = None
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        """The aiohttp application (for embedding, e.g. in ``aiohttp.test_utils.TestServer``)."""
        app = web.Application(middlewares=[self._record_request])
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    async def start(self, port: int = 0, host: str = "127.0.0.1") -> str:
        """Start listening (``port=0``: an ephemeral port) and return :attr:`base_url`."""
        if self._runner is not None:
            raise RuntimeError("the server is already running: call close() before starting it again")
        # handler_cancellation: a client that gives up on a `slow` answer frees its handler (and
        # closing waits at most a second for such a handler).
        origin = await self._listen(self.make_app(), host, port, handler_cancellation=True)
        self._base_url = origin + API_PREFIX
        return self._base_url

    def start_in_thread(self, port: int = 0) -> str:
        """Run the server on its own event loop in a daemon thread; return :attr:`base_url`.

        For synchronous tests and tools (``airflow dags test`` runs its own loop). Call :meth:`stop`.
        """
        if self._thread is not None:
            raise RuntimeError("the server already runs in a thread: call stop() first")
        loop = asyncio.new_event_loop()
        started = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start(port))
            except BaseException as error:  # handed to the caller below
                failure.append(error)
            started.set()
            if not failure:
                loop.run_forever()
                loop.run_until_complete(self.close())
            loop.close()

        thread = threading.Thread(target=serve, name="fake-audit-logs-server", daemon=True)
        thread.start()
        started.wait()
        if failure:
            thread.join()
            raise failure[0]
        self._thread, self._thread_loop = thread, loop
        return self.base_url

    def stop(self) -> None:
        """Stop a server started with :meth:`start_in_thread` and wait for its thread to end."""
        if self._thread is None or self._thread_loop is None:
            return
        self._thread_loop.call_soon_threadsafe(self._thread_loop.stop)
        self._thread.join()
        self._thread = self._thread_loop = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/audit/v1/`` once started."""
        if self._base_url is None:
            raise RuntimeError("the server is not started: use `async with` or start()/start_in_thread()")
        return self._base_url

    # -- request log -----------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in arrival order."""
        return list(self._requests)

    def logs_requests(self) -> list[RecordedRequest]:
        """The requests to the ``logs`` endpoint, in arrival order."""
        return [request for request in self._requests if request.path == API_PREFIX + "logs"]

    def reset_log(self) -> None:
        """Forget the requests recorded so far (counters of faults and 429s are kept)."""
        self._requests.clear()

    # -- oracle ----------------------------------------------------------------------------------

    def expected_entries(self, oldest: int, latest: int, **filters: Unpack[OracleFilters]) -> list[bytes]:
        """The entries a complete read of ``[oldest, latest]`` (inclusive) returns, in API order."""
        return [self._entry_bytes(index) for index in self._expected_indexes(oldest, latest, **filters)]

    def expected_ids(self, oldest: int, latest: int, **filters: Unpack[OracleFilters]) -> set[str]:
        """The ids a complete read of ``[oldest, latest]`` (inclusive, same filters) returns."""
        indexes = self._expected_indexes(oldest, latest, **filters)
        return {self.event_set.entry_id(index) for index in indexes}

    def pending_ids(self, oldest: int, latest: int) -> set[str]:
        """The ids of late events in ``[oldest, latest]`` that exist but are not visible yet."""
        now = self.clock()
        events = self.event_set
        return {
            events.entry_id(index)
            for index in events.index_range(oldest, latest)
            if events.visible_at(index) > now
        }

    def _expected_indexes(self, oldest: int, latest: int, **filters: Unpack[OracleFilters]) -> list[int]:
        unknown = sorted(filters.keys() - OracleFilters.__annotations__.keys())
        if unknown:
            raise TypeError(f"unexpected keyword arguments: {', '.join(unknown)}")
        events = self.event_set
        entry_filter = events.compile_filter(
            filters.get("action"), filters.get("actor"), filters.get("entity")
        )
        now = self.clock() if filters.get("visible_only", True) else None
        return list(events.select(events.index_range(oldest, latest), entry_filter, now))

    def _entry_bytes(self, index: int) -> bytes:
        if self._rendered is not None:
            return bytes(self._rendered.entry(index))
        return self.event_set.render(index)

    # -- HTTP ------------------------------------------------------------------------------------

    @web.middleware
    async def _record_request(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Record every request, and once answered its status and fault (the token is never read)."""
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            has_authorization="Authorization" in request.headers,
            time=self.clock(),
        )
        self._requests.append(record)
        try:
            response = await handler(request)
        finally:
            # Also when the client gave up on a `slow` answer and the handler was cancelled.
            record.fault = request.get("fault")
        record.status = None if record.fault == "drop" else response.status
        return response

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        endpoint = request.path[len(API_PREFIX) :] if request.path.startswith(API_PREFIX) else None
        if endpoint not in ("logs", "schemas", "actions"):
            return ApiError("bad_endpoint").response()
        if request.method != "GET":
            return ApiError("method_not_allowed").response()
        if endpoint == "logs":
            return await self._logs(request)
        body = SCHEMAS_BODY if endpoint == "schemas" else ACTIONS_BODY
        return web.Response(body=body, content_type="application/json")

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        fault = self.faults.next_fault()
        request["fault"] = fault
        if fault in (None, "fresh_cursor"):
            return self._answer_logs(request, fresh_cursor=fault == "fresh_cursor")
        if fault == "slow":
            await asyncio.sleep(self.faults.slow_seconds)
        if fault in ("http_429", "http_429_date"):
            self.rate_limited_count += 1
            return rate_limited(self.faults.retry_after, as_date=fault == "http_429_date")
        if fault in ("redirect", "redirect_loop"):
            target = request.url if fault == "redirect_loop" else request.url.with_path(API_PREFIX + "moved")
            return web.Response(status=302, headers={"Location": str(target)})
        if fault == "ok_false_200":
            body = msgspec.json.encode({"ok": False, "error": self.faults.ok_false_error, "entries": []})
            return web.Response(status=200, body=body, content_type="application/json")
        if fault in ("slow", "truncated", "missing_id"):
            # These faults damage the real answer, so compute it (auth and rate limit included).
            response = self._answer_logs(request)
            if fault == "truncated":
                return await send_truncated(request, response, self.faults.truncate_at)
            return without_ids(response) if fault == "missing_id" else response
        return replacing_answer(request, fault)

    def _answer_logs(self, request: web.Request, *, fresh_cursor: bool = False) -> web.Response:
        """Answer a ``logs`` request the way the API does: a page, or an error.

        ``fresh_cursor``: the page's next cursor is a new one pointing where the page started.
        """
        try:
            self._authenticate(request.headers.get("Authorization"))
            self._take_rate_limit_token()
            query = self._parse_query(request.query)
            page = self._select_page(query)
        except ApiError as error:
            if error.code == "rate_limited":
                self.rate_limited_count += 1
            return error.response()
        if fresh_cursor and page.indexes:
            page = Page(page.indexes, page.indexes[0], nonce=next(self._nonces))
        return web.Response(body=self._page_body(page), content_type="application/json")

    def _authenticate(self, authorization: str | None) -> None:
        if not authorization:
            raise ApiError("missing_authentication")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError("invalid_authentication")
        token = token.strip()
        if token in self._denied_tokens:
            raise ApiError(self._denied_tokens[token])
        if token not in self._tokens:
            raise ApiError("invalid_authentication")

    def _take_rate_limit_token(self) -> None:
        if self._bucket is None:
            return
        retry_after = self._bucket.retry_after()
        if retry_after is not None:
            raise ApiError("rate_limited", retry_after=retry_after)

    def _parse_query(self, params: MultiMapping[str]) -> LogsQuery:
        """Validate the query string as the API does; raise :class:`ApiError` with its code."""
        now = self.clock()
        oldest = _int_param(params, "oldest", self.enabled_at, error="invalid_range")
        latest = _int_param(params, "latest", math.floor(now), error="invalid_range")
        # No data before the org enabled audit logs, and none from the future.
        if oldest > latest or oldest > now or latest < self.enabled_at:
            raise ApiError("invalid_range")
        limit = _int_param(params, "limit", DEFAULT_LIMIT, error="invalid_arguments")
        if limit < 1:
            raise ApiError("invalid_arguments")
        action = params.get("action") or None
        if action is not None and len(action.split(",")) > MAX_ACTIONS:
            raise ApiError("invalid_action")
        try:
            entry_filter = self.event_set.compile_filter(action, params.get("actor"), params.get("entity"))
        except UnknownActionError:
            raise ApiError("invalid_action") from None
        return LogsQuery(
            oldest=max(oldest, self.enabled_at),
            latest=latest,
            limit=min(limit, MAX_LIMIT),
            entry_filter=entry_filter,
            start_index=self._cursor_position(params.get("cursor")),
        )

    def _cursor_position(self, cursor: str | None) -> int:
        """The index a cursor points at (0 without one), counting uses for ``expire_cursor_uses``."""
        if not cursor:
            return 0
        self.cursor_uses += 1
        if self.cursor_uses in self._expire_cursor_uses:
            raise ApiError("invalid_cursor")
        date_create, index = self._cursors.decode(cursor)
        events = self.event_set
        if index >= len(events) or events.date_create(index) != date_create:
            raise ApiError("invalid_cursor")
        return index

    def _select_page(self, query: LogsQuery) -> Page:
        """The entries of the page starting at the query's position, and where the next one starts.

        ``limit`` is optimistic: once ``limit`` entries are taken, the page still takes every further
        entry of the last entry's second, so a page never ends in the middle of a second.
        """
        events = self.event_set
        window = events.index_range(query.oldest, query.latest)
        begin = max(window.start, query.start_index)
        if begin >= window.stop:
            return Page(range(0), None)
        now = self.clock()
        if query.entry_filter.selects_everything and now >= events.all_visible_at:
            # Every event in the window matches: the page is a slice, found by bisection.
            stop = min(events.second_end(min(begin + query.limit, window.stop) - 1), window.stop)
            return Page(range(begin, stop), stop if stop < window.stop else None)
        taken: list[int] = []
        for index in events.select(range(begin, window.stop), query.entry_filter, now):
            if len(taken) >= query.limit and events.date_create(index) != events.date_create(taken[-1]):
                return Page(taken, index)
            taken.append(index)
        return Page(taken, None)

    def _page_body(self, page: Page) -> bytes:
        if page.next_index is None:
            cursor = b""
        else:
            date_create = self.event_set.date_create(page.next_index)
            cursor = self._cursors.encode(date_create, page.next_index, nonce=page.nonce).encode()
        entries = self._entries_json(page.indexes)
        return b"".join((b'{"entries":[', entries, b'],"response_metadata":{"next_cursor":"', cursor, b'"}}'))

    def _entries_json(self, indexes: Sequence[int]) -> bytes | memoryview:
        """The page's entries, comma-separated. Pre-rendered contiguous pages are one zero-copy slice."""
        if not indexes:
            return b""
        if self._rendered is not None:
            if isinstance(indexes, range):
                return self._rendered.run(indexes.start, indexes.stop)
            return b",".join([self._rendered.entry(index) for index in indexes])
        render = self.event_set.render
        return b",".join([render(index) for index in indexes])


def _int_param(params: MultiMapping[str], name: str, default: int, *, error: str) -> int:
    """Read an integer query parameter; a value that is not an integer answers ``error``."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ApiError(error) from None


__all__ = [
    "API_PREFIX",
    "DEFAULT_LIMIT",
    "MAX_ACTIONS",
    "MAX_LIMIT",
    "FakeAuditLogsServer",
    "LogsQuery",
    "OracleFilters",
    "Page",
    "RecordedRequest",
]
