"""Retry handlers with slack_sdk's protocol, consulted for every non-2xx response and every exception.

A handler has two coroutines, ``can_retry_async`` and ``prepare_for_next_attempt_async``, called
with keyword arguments ``state``, ``request``, ``response`` and ``error``; policies compose by
listing them and the client asks each in turn. slack_sdk's own handler objects
(``slack_sdk.http_retry.async_handler.AsyncRetryHandler`` and subclasses) fit this protocol and
work unchanged: the client only calls those two methods and reads nothing else from them.

The built-in handlers add what a long backfill needs: jittered waits, 5xx retries, timeouts
counted as connection errors, garbled 2xx bodies asked for again, and ONE wait budget per request
(:class:`RetryBudget`, carried by the :class:`RetryState`): every back-off of every handler and
every pause of the rate limiter draws from it, so a broken API fails the task (which Airflow
retries later) instead of hanging it. A foreign handler (slack_sdk's) is charged what it slept.

Waits go through the state's ``sleep`` (the client's ``sleep=`` argument), or
:func:`default_sleep` — tests install an instant one with :func:`set_default_sleep`.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Protocol, TypedDict

import aiohttp

from .errors import SlackAuditLogsApiError

if TYPE_CHECKING:
    from typing_extensions import NotRequired, Unpack

#: A coroutine function that waits ``seconds`` (``asyncio.sleep`` or a test's stand-in).
Sleep = Callable[[float], Awaitable[None]]

_default_sleep: Sleep = asyncio.sleep


def default_sleep() -> Sleep:
    """The sleep of clients built without ``sleep=``: ``asyncio.sleep`` unless a test replaced it."""
    return _default_sleep


def set_default_sleep(sleep: Sleep | None) -> Sleep:
    """Make ``sleep`` (``None``: ``asyncio.sleep``) the wait of clients built without ``sleep=``.

    Returns the previous one so a fixture can put it back. For tests: clients deep inside a
    pipeline or a trigger then retry instantly, with no private function patched.
    """
    global _default_sleep
    previous, _default_sleep = _default_sleep, sleep if sleep is not None else asyncio.sleep
    return previous


class RetryBudget:
    """The seconds one request may spend waiting, in all: back-offs, Retry-After and rate pacing.

    One budget per request (one :meth:`AsyncAuditLogsClient.api_call`, or one page of
    :meth:`~AsyncAuditLogsClient.pages` including its garbled-body retries), shared by every
    handler, so a request never waits more than ``max_wait`` seconds however its failures mix.
    """

    def __init__(self, max_wait: float) -> None:
        if not max_wait >= 0:
            raise ValueError(f"max_wait must be >= 0 seconds, got {max_wait!r}")
        self.max_wait = float(max_wait)
        self.spent = 0.0

    @property
    def remaining(self) -> float:
        return max(0.0, self.max_wait - self.spent)

    def allows(self, seconds: float) -> bool:
        """Whether a wait of ``seconds`` still fits."""
        return seconds <= self.remaining

    def charge(self, seconds: float) -> None:
        self.spent += max(0.0, seconds)


@dataclass(kw_only=True)
class RetryState:
    """Shared by the handlers during one call; slack_sdk's ``RetryState`` attributes plus two.

    ``budget`` is the request's :class:`RetryBudget` (``None``: unlimited) and ``sleep`` the wait
    to use (``None``: :func:`default_sleep`). slack_sdk's handlers ignore both.
    """

    current_attempt: int = 0  # zero-origin
    custom_values: dict[str, Any] | None = None
    budget: RetryBudget | None = None
    sleep: Sleep | None = None
    next_attempt_requested: bool = field(default=False, init=False)

    def increment_current_attempt(self) -> int:
        self.current_attempt += 1
        return self.current_attempt


class HttpRequest:
    """The request a handler sees, shaped like slack_sdk's ``HttpRequest`` (headers: dict of lists).

    The Authorization header is replaced by ``(redacted)``: handlers have no use for the token and
    a handler that logs its request must not leak it.
    """

    def __init__(
        self,
        *,
        method: str,
        url: str,
        headers: Mapping[str, str | list[str]],
        body_params: dict[str, Any] | None = None,
        data: bytes | None = None,
    ) -> None:
        self.method = method
        self.url = url
        self.headers: dict[str, list[str]] = {
            k: ["(redacted)"] if k.lower() == "authorization" else (v if isinstance(v, list) else [v])
            for k, v in headers.items()
        }
        self.body_params = body_params
        self.data = data


class HttpResponse:
    """The response a handler sees, shaped like slack_sdk's ``HttpResponse`` (headers: dict of lists)."""

    def __init__(
        self,
        *,
        status_code: int | str,
        headers: Mapping[str, str | list[str]],
        body: dict[str, Any] | None = None,
        data: bytes | None = None,
    ) -> None:
        self.status_code = int(status_code)
        self.headers: dict[str, list[str]] = {}
        for k, v in headers.items():
            self.headers.setdefault(k, []).extend(v if isinstance(v, list) else [v])
        self.body = body
        self.data = data


class RetryCall(TypedDict):
    """The keyword arguments of both handler methods, as slack_sdk passes them."""

    state: RetryState
    request: HttpRequest
    response: NotRequired[HttpResponse | None]
    error: NotRequired[Exception | None]


class AsyncRetryHandlerProtocol(Protocol):
    """What the client needs of a handler (slack_sdk's handlers satisfy it)."""

    async def can_retry_async(self, **call: Unpack[RetryCall]) -> bool: ...

    async def prepare_for_next_attempt_async(self, **call: Unpack[RetryCall]) -> None: ...


class RetryIntervalCalculator:
    def calculate_sleep_duration(self, current_attempt: int) -> float:
        raise NotImplementedError


@dataclass(eq=False)
class FixedValueRetryIntervalCalculator(RetryIntervalCalculator):
    fixed_interval: float = 0.5

    def calculate_sleep_duration(self, current_attempt: int) -> float:
        return self.fixed_interval


@dataclass(eq=False)
class BackoffRetryIntervalCalculator(RetryIntervalCalculator):
    """``backoff_factor * 2**attempt``, capped, plus up to ``jitter`` seconds of random spread.

    The jitter keeps the workers of a backfill from retrying in lockstep against an org-wide limit.
    """

    backoff_factor: float = 0.5
    max_interval: float = 60.0
    jitter: float = 1.0

    def calculate_sleep_duration(self, current_attempt: int) -> float:
        interval = min(self.max_interval, self.backoff_factor * 2.0**current_attempt)
        return interval + random.uniform(0, self.jitter)


class AsyncRetryHandler:
    """Base of the built-in handlers: a retry count per handler, waits drawn from the request's budget.

    Each handler counts its own retries (in ``state.custom_values``), so a 429 storm does not use
    up the retries meant for dropped connections. Waits draw from ``state.budget``, the one budget
    of the request; ``max_wait_seconds`` additionally caps this handler's own share of it.
    """

    #: What a handler built without ``max_retry_count`` or ``interval_calculator`` uses.
    default_retry_count = 1
    default_interval_calculator: RetryIntervalCalculator = BackoffRetryIntervalCalculator()

    def __init__(
        self,
        max_retry_count: int | None = None,
        interval_calculator: RetryIntervalCalculator | None = None,
        max_wait_seconds: float = 300.0,
    ) -> None:
        if max_retry_count is None:
            max_retry_count = self.default_retry_count
        if max_retry_count < 0:
            raise ValueError(f"max_retry_count must be >= 0, got {max_retry_count}")
        if max_wait_seconds < 0:
            raise ValueError(f"max_wait_seconds must be >= 0, got {max_wait_seconds}")
        self.max_retry_count = max_retry_count
        self.interval_calculator = interval_calculator or self.default_interval_calculator
        self.max_wait_seconds = max_wait_seconds

    async def can_retry_async(self, **call: Unpack[RetryCall]) -> bool:
        state, response = call["state"], call.get("response")
        retries, waited = self._spent(state)
        if retries >= self.max_retry_count or not self._can_retry(response=response, error=call.get("error")):
            return False
        wait = self._wait(state, response)
        if state.budget is not None and not state.budget.allows(wait):
            return False
        return waited + wait <= self.max_wait_seconds

    async def prepare_for_next_attempt_async(self, **call: Unpack[RetryCall]) -> None:
        state, response = call["state"], call.get("response")
        duration = self._wait(state, response)
        retries, waited = self._spent(state)
        self._record(state, retries + 1, waited + duration)
        state.next_attempt_requested = True
        if state.budget is not None:
            state.budget.charge(duration)
        await (state.sleep or default_sleep())(duration)
        state.increment_current_attempt()

    def _can_retry(self, *, response: HttpResponse | None, error: Exception | None) -> bool:
        raise NotImplementedError

    def _wait(self, state: RetryState, response: HttpResponse | None) -> float:
        # The planned wait is computed once per attempt so the budget check and the sleep agree.
        values = _values(state)
        key = f"{type(self).__name__}@{id(self)}:planned"
        planned = values.get(key)
        if planned is None or planned[0] != state.current_attempt:
            retries, _ = self._spent(state)
            planned = (state.current_attempt, self._compute_wait(retries, response))
            values[key] = planned
        return float(planned[1])

    def _compute_wait(self, retries: int, response: HttpResponse | None) -> float:
        return self.interval_calculator.calculate_sleep_duration(retries)

    def _spent(self, state: RetryState) -> tuple[int, float]:
        retries, waited = _values(state).get(f"{type(self).__name__}@{id(self)}", (0, 0.0))
        return int(retries), float(waited)

    def _record(self, state: RetryState, retries: int, waited: float) -> None:
        _values(state)[f"{type(self).__name__}@{id(self)}"] = (retries, waited)


def _values(state: RetryState) -> dict[str, Any]:
    if state.custom_values is None:
        state.custom_values = {}
    return state.custom_values


CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectionError,  # refused, reset, server disconnected, ServerTimeoutError
    aiohttp.ClientPayloadError,  # the body was cut short
    asyncio.TimeoutError,
    TimeoutError,
    ConnectionError,
)


class AsyncConnectionErrorRetryHandler(AsyncRetryHandler):
    """Retries dropped, reset and refused connections, truncated bodies and timeouts."""

    default_retry_count = 5
    error_types = CONNECTION_ERRORS

    def __init__(
        self, *args: Any, error_types: Sequence[type[BaseException]] | None = None, **kwargs: Any
    ) -> None:
        """``error_types`` as slack_sdk's handler takes it: the exceptions retried (default ours)."""
        super().__init__(*args, **kwargs)
        if error_types is not None:
            self.error_types = tuple(error_types)

    def _can_retry(self, *, response: HttpResponse | None, error: Exception | None) -> bool:
        return error is not None and isinstance(error, self.error_types)


class AsyncRateLimitErrorRetryHandler(AsyncRetryHandler):
    """Retries 429s after the server's ``Retry-After`` seconds plus jitter.

    The limit is org-wide, so every client of the org waits too (see ``ratelimit``); the jitter
    spreads their restarts.
    """

    def __init__(
        self,
        max_retry_count: int = 20,
        max_wait_seconds: float = 600.0,
        jitter: float = 1.0,
        default_retry_after: float = 1.0,
    ) -> None:
        super().__init__(
            max_retry_count, FixedValueRetryIntervalCalculator(default_retry_after), max_wait_seconds
        )
        self.jitter = jitter

    def _can_retry(self, *, response: HttpResponse | None, error: Exception | None) -> bool:
        return response is not None and response.status_code == 429

    def _compute_wait(self, retries: int, response: HttpResponse | None) -> float:
        retry_after = retry_after_seconds(response.headers) if response is not None else None
        base = (
            retry_after if retry_after is not None else self.interval_calculator.calculate_sleep_duration(0)
        )
        return base + random.uniform(0, self.jitter)

    def _wait(self, state: RetryState, response: HttpResponse | None) -> float:
        wait = super()._wait(state, response)
        retry_after = retry_after_seconds(response.headers) if response is not None else None
        if state.budget is not None and retry_after is not None and state.budget.allows(retry_after):
            # The jitter alone never turns a Retry-After that fits the budget into a failure.
            return min(wait, state.budget.remaining)
        return wait


class AsyncServerErrorRetryHandler(AsyncRetryHandler):
    """Retries 500/502/503/504 with exponential backoff and jitter (slack_sdk: 500 and 503 only)."""

    default_retry_count = 5
    statuses = frozenset({500, 502, 503, 504})

    def _can_retry(self, *, response: HttpResponse | None, error: Exception | None) -> bool:
        return response is not None and response.status_code in self.statuses


#: How often the default handlers ask again for a garbled 2xx page (after 0.5 s, 1 s, 2 s).
MAX_GARBLED_PAGE_RETRIES = 3


class AsyncInvalidResponseRetryHandler(AsyncRetryHandler):
    """Asks again for a 2xx answer whose body is not a page (a proxy's HTML, an empty or cut body).

    Such a body says nothing about the query, so the same request is the cheapest repair. The
    client offers these to the handlers as ``error`` (a transient :class:`SlackAuditLogsApiError`)
    with the 2xx ``response``; slack_sdk's handlers never retry them.
    """

    default_retry_count = MAX_GARBLED_PAGE_RETRIES
    default_interval_calculator = BackoffRetryIntervalCalculator(backoff_factor=0.5, jitter=0.0)

    def _can_retry(self, *, response: HttpResponse | None, error: Exception | None) -> bool:
        return (
            isinstance(error, SlackAuditLogsApiError)
            and error.kind == "transient"
            and response is not None
            and 200 <= response.status_code < 300
        )


def retry_after_seconds(headers: Mapping[str, Any], *, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP-date (seconds from ``now``, Unix time).

    Case-insensitive lookup; a list value takes its first element. ``inf`` stays infinite (it can
    never fit a budget); a value that is neither a number nor a date gives ``None``.
    """
    for name, value in headers.items():
        if name.lower() == "retry-after":
            text = str(value[0] if isinstance(value, list) and value else value).strip()
            try:
                seconds = float(text)
            except ValueError:
                return _seconds_until(text, time.time() if now is None else now)
            return None if math.isnan(seconds) else max(0.0, seconds)
    return None


def _seconds_until(http_date: str, now: float) -> float | None:
    try:
        when = parsedate_to_datetime(http_date)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        return None
    return max(0.0, when.timestamp() - now)


def default_retry_handlers(max_wait_seconds: float = 300.0) -> list[AsyncRetryHandler]:
    """Connection errors, 429s, 5xx and garbled 2xx bodies.

    ``max_wait_seconds`` caps each handler's share; the client's ``max_retry_wait`` is the one
    budget of the whole request that all of them draw from.
    """
    return [
        AsyncConnectionErrorRetryHandler(max_wait_seconds=max_wait_seconds),
        AsyncRateLimitErrorRetryHandler(max_wait_seconds=max_wait_seconds),
        AsyncServerErrorRetryHandler(max_wait_seconds=max_wait_seconds),
        AsyncInvalidResponseRetryHandler(max_wait_seconds=max_wait_seconds),
    ]


def async_default_handlers() -> list[AsyncRetryHandler]:
    """slack_sdk's name for the default list; ours also retries 429s and 5xx."""
    return default_retry_handlers()


__all__ = [
    "CONNECTION_ERRORS",
    "MAX_GARBLED_PAGE_RETRIES",
    "AsyncConnectionErrorRetryHandler",
    "AsyncInvalidResponseRetryHandler",
    "AsyncRateLimitErrorRetryHandler",
    "AsyncRetryHandler",
    "AsyncRetryHandlerProtocol",
    "AsyncServerErrorRetryHandler",
    "BackoffRetryIntervalCalculator",
    "FixedValueRetryIntervalCalculator",
    "HttpRequest",
    "HttpResponse",
    "RetryBudget",
    "RetryCall",
    "RetryIntervalCalculator",
    "RetryState",
    "Sleep",
    "async_default_handlers",
    "default_retry_handlers",
    "default_sleep",
    "retry_after_seconds",
    "set_default_sleep",
]
