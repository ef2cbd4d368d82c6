"""Retry handlers with slack_sdk's protocol, consulted for every non-2xx response and every exception.

A handler has two coroutines, ``can_retry_async`` and ``prepare_for_next_attempt_async``, called
with keyword arguments ``state``, ``request``, ``response`` and ``error``; policies compose by
listing them and the client asks each in turn. slack_sdk's own handler objects
(``slack_sdk.http_retry.async_handler.AsyncRetryHandler`` and subclasses) fit this protocol and
work unchanged: the client only calls those two methods and reads nothing else from them.

The built-in handlers add what a long backfill needs: jittered waits, 5xx retries, timeouts
counted as connection errors, and a total-wait budget per call so a broken API fails the task
(which Airflow retries later) instead of hanging it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import aiohttp

# Indirection so tests can record waits instead of sleeping.
_sleep = asyncio.sleep


class RetryState:
    """Shared by the handlers during one call; the same attributes as slack_sdk's ``RetryState``."""

    next_attempt_requested: bool
    current_attempt: int  # zero-origin
    custom_values: dict[str, Any] | None

    def __init__(self, *, current_attempt: int = 0, custom_values: dict[str, Any] | None = None) -> None:
        self.next_attempt_requested = False
        self.current_attempt = current_attempt
        self.custom_values = custom_values

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


class AsyncRetryHandlerProtocol(Protocol):
    """What the client needs of a handler (slack_sdk's handlers satisfy it)."""

    async def can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool: ...

    async def prepare_for_next_attempt_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None: ...


class RetryIntervalCalculator:
    def calculate_sleep_duration(self, current_attempt: int) -> float:
        raise NotImplementedError


class FixedValueRetryIntervalCalculator(RetryIntervalCalculator):
    def __init__(self, fixed_interval: float = 0.5) -> None:
        self.fixed_interval = fixed_interval

    def calculate_sleep_duration(self, current_attempt: int) -> float:
        return self.fixed_interval


class BackoffRetryIntervalCalculator(RetryIntervalCalculator):
    """``backoff_factor * 2**attempt``, capped, plus up to ``jitter`` seconds of random spread.

    The jitter keeps the workers of a backfill from retrying in lockstep against an org-wide limit.
    """

    def __init__(self, backoff_factor: float = 0.5, max_interval: float = 60.0, jitter: float = 1.0) -> None:
        self.backoff_factor = backoff_factor
        self.max_interval = max_interval
        self.jitter = jitter

    def calculate_sleep_duration(self, current_attempt: int) -> float:
        interval = min(self.max_interval, self.backoff_factor * 2.0**current_attempt)
        return interval + random.uniform(0, self.jitter)


class AsyncRetryHandler:
    """Base of the built-in handlers: a retry count and a total-wait budget, both per call.

    Each handler counts its own retries and waits (in ``state.custom_values``), so a 429 storm does
    not use up the retries meant for dropped connections.
    """

    def __init__(
        self,
        max_retry_count: int = 1,
        interval_calculator: RetryIntervalCalculator | None = None,
        max_wait_seconds: float = 300.0,
    ) -> None:
        if max_retry_count < 0:
            raise ValueError(f"max_retry_count must be >= 0, got {max_retry_count}")
        if max_wait_seconds < 0:
            raise ValueError(f"max_wait_seconds must be >= 0, got {max_wait_seconds}")
        self.max_retry_count = max_retry_count
        self.interval_calculator = interval_calculator or BackoffRetryIntervalCalculator()
        self.max_wait_seconds = max_wait_seconds

    async def can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        retries, _ = self._spent(state)
        if retries >= self.max_retry_count:
            return False
        if not self._can_retry(response=response, error=error):
            return False
        return self._spent(state)[1] + self._wait(state, response) <= self.max_wait_seconds

    async def prepare_for_next_attempt_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        duration = self._wait(state, response)
        retries, waited = self._spent(state)
        self._record(state, retries + 1, waited + duration)
        state.next_attempt_requested = True
        await _sleep(duration)
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

    def __init__(
        self,
        max_retry_count: int = 5,
        interval_calculator: RetryIntervalCalculator | None = None,
        max_wait_seconds: float = 300.0,
        error_types: Sequence[type[BaseException]] = CONNECTION_ERRORS,
    ) -> None:
        super().__init__(max_retry_count, interval_calculator, max_wait_seconds)
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


class AsyncServerErrorRetryHandler(AsyncRetryHandler):
    """Retries 500/502/503/504 with exponential backoff and jitter (slack_sdk: 500 and 503 only)."""

    def __init__(
        self,
        max_retry_count: int = 5,
        interval_calculator: RetryIntervalCalculator | None = None,
        max_wait_seconds: float = 300.0,
        statuses: Sequence[int] = (500, 502, 503, 504),
    ) -> None:
        super().__init__(max_retry_count, interval_calculator, max_wait_seconds)
        self.statuses = frozenset(statuses)

    def _can_retry(self, *, response: HttpResponse | None, error: Exception | None) -> bool:
        return response is not None and response.status_code in self.statuses


def retry_after_seconds(headers: Mapping[str, Any]) -> float | None:
    """``Retry-After`` as seconds (case-insensitive lookup; a list value takes its first element)."""
    for name, value in headers.items():
        if name.lower() == "retry-after":
            text = value[0] if isinstance(value, list) and value else value
            try:
                return max(0.0, float(str(text).strip()))
            except ValueError:
                return None
    return None


def default_retry_handlers(max_wait_seconds: float = 300.0) -> list[AsyncRetryHandler]:
    """Connection errors, 429s and 5xx, each within ``max_wait_seconds`` of waiting per call."""
    return [
        AsyncConnectionErrorRetryHandler(max_wait_seconds=max_wait_seconds),
        AsyncRateLimitErrorRetryHandler(max_wait_seconds=max_wait_seconds),
        AsyncServerErrorRetryHandler(max_wait_seconds=max_wait_seconds),
    ]


def async_default_handlers() -> list[AsyncRetryHandler]:
    """slack_sdk's name for the default list; ours also retries 429s and 5xx."""
    return default_retry_handlers()


__all__ = [
    "CONNECTION_ERRORS",
    "AsyncConnectionErrorRetryHandler",
    "AsyncRateLimitErrorRetryHandler",
    "AsyncRetryHandler",
    "AsyncRetryHandlerProtocol",
    "AsyncServerErrorRetryHandler",
    "BackoffRetryIntervalCalculator",
    "FixedValueRetryIntervalCalculator",
    "HttpRequest",
    "HttpResponse",
    "RetryIntervalCalculator",
    "RetryState",
    "async_default_handlers",
    "default_retry_handlers",
    "retry_after_seconds",
]
