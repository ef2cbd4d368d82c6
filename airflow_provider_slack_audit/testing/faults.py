"""Which ``logs`` requests the fake server answers wrongly, and how each fault looks on the wire:
the answers that replace the API's answer, and the ones that damage it (cut short, ids removed)."""

from __future__ import annotations

import math
import random
import time
from collections import Counter, deque
from collections.abc import Mapping
from email.utils import formatdate
from typing import Literal, get_args

import msgspec
from aiohttp import web

from .errors import ApiError

FaultKind = Literal[
    "http_500",
    "http_502",
    "http_503",
    "http_504",
    "drop",
    "slow",
    "truncated",
    "html_200",
    "html_502",
    "empty_200",
    "bad_entries",
    "missing_id",
    "invalid_cursor",
    # 429 with `Retry-After: <retry_after>` seconds, or as an HTTP-date that many seconds ahead.
    "http_429",
    "http_429_date",
    # 302 to another path of the server, or to the very same URL (a redirect loop).
    "redirect",
    "redirect_loop",
    # The right page, but its next cursor is a fresh one pointing where this page started.
    "fresh_cursor",
    # A gateway's 200 with `{"ok": false, "error": <ok_false_error>, "entries": []}`.
    "ok_false_200",
]
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)


class FaultPlan:
    """Which ``logs`` requests fail, and how: a scripted queue first, then seeded random rates.

    The script is a queue of the next ``logs`` requests' fates: ``push("http_503", count=3)`` makes
    the next three answer 503, ``push("invalid_cursor", after=2)`` lets two through first. ``rates`` (e.g.
    ``{"drop": 0.01}``) make every request fail with that probability, drawn from a seeded RNG so
    that a failing run can be replayed. Faults never move anything: the server is stateless, so a
    retried request gets exactly the page it would have got.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        rates: Mapping[str, float] | None = None,
        slow_seconds: float = 5.0,
        truncate_at: float = 0.5,
        retry_after: float = 1,
        ok_false_error: str = "service_unavailable",
    ) -> None:
        self._rng = random.Random(seed)
        # None in the script: that request is answered normally (see `after`).
        self._queue: deque[FaultKind | None] = deque()
        self._rates: dict[FaultKind, float] = {}
        for kind, rate in (rates or {}).items():
            self.set_rate(kind, rate)
        #: How long a ``slow`` answer waits before it is sent (make it exceed the client's timeout).
        self.slow_seconds = slow_seconds
        #: The share of a ``truncated`` body that is sent before the connection closes.
        self.truncate_at = truncate_at
        #: The seconds ``http_429``/``http_429_date`` ask to wait (``float("inf")`` allowed).
        self.retry_after = retry_after
        #: The code of an ``ok_false_200`` body.
        self.ok_false_error = ok_false_error
        #: How many faults of each kind were injected so far.
        self.injected: Counter[str] = Counter()

    def push(self, kind: str, count: int = 1, *, after: int = 0) -> None:
        """Script ``after`` normal answers, then ``count`` answers failing with ``kind``.

        The script runs after what is already scripted; with an empty script, ``after=2`` makes the
        third ``logs`` request from now fail.
        """
        if count < 1 or after < 0:
            raise ValueError(f"push needs count >= 1 and after >= 0, got count={count}, after={after}")
        self._queue.extend([None] * after + [_fault_kind(kind)] * count)

    def set_rate(self, kind: str, rate: float) -> None:
        """Make each ``logs`` request fail with ``kind`` with probability ``rate`` (0 turns it off)."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"the rate of {kind} is a probability: pass a value between 0 and 1, not {rate}")
        self._rates[_fault_kind(kind)] = rate
        if sum(self._rates.values()) > 1.0:
            raise ValueError(f"fault rates add up to more than 1: {self._rates}")

    def clear(self) -> None:
        """Drop the queued faults and the rates."""
        self._queue.clear()
        self._rates.clear()

    @property
    def pending(self) -> int:
        """How many scripted faults have not struck yet."""
        return sum(kind is not None for kind in self._queue)

    def next_fault(self) -> FaultKind | None:
        """The fault the next ``logs`` request suffers, or None for a normal answer."""
        # A scripted request (fault or normal answer) is never also subject to the random rates.
        kind = self._queue.popleft() if self._queue else self._draw()
        if kind is not None:
            self.injected[kind] += 1
        return kind

    def _draw(self) -> FaultKind | None:
        if not self._rates:
            return None
        draw = self._rng.random()
        for kind, rate in self._rates.items():
            if draw < rate:
                return kind
            draw -= rate
        return None


def _fault_kind(kind: str) -> FaultKind:
    for known in FAULT_KINDS:
        if kind == known:
            return known
    raise ValueError(f"unknown fault {kind!r}: use one of {', '.join(FAULT_KINDS)}")


#: The API error code each error fault answers with.
_ERROR_FAULT_CODES: dict[str, str] = {
    "http_500": "internal_error",
    "http_502": "bad_gateway",
    "http_503": "service_unavailable",
    "http_504": "gateway_timeout",
    "invalid_cursor": "invalid_cursor",
}
_HTML_ERROR_PAGE = (
    b"<!DOCTYPE html><html><head><title>Slack is having trouble</title></head>"
    b"<body><h1>Something went wrong</h1><p>Please try again in a few moments.</p></body></html>"
)


def rate_limited(retry_after: float, *, as_date: bool) -> web.Response:
    """A 429 asking to wait ``retry_after`` seconds, as a number or as an HTTP-date."""
    if as_date:
        value = formatdate(time.time() + retry_after, usegmt=True)
    elif math.isinf(retry_after):
        value = "inf"
    else:
        value = str(int(retry_after)) if float(retry_after).is_integer() else str(retry_after)
    return ApiError("rate_limited", retry_after=value).response()


def replacing_answer(request: web.Request, fault: FaultKind) -> web.Response:
    """The answer of a fault that replaces the API's answer entirely."""
    if fault in _ERROR_FAULT_CODES:
        return ApiError(_ERROR_FAULT_CODES[fault]).response()
    if fault in ("html_200", "html_502"):
        return web.Response(status=int(fault[-3:]), body=_HTML_ERROR_PAGE, content_type="text/html")
    if fault == "empty_200":
        return web.Response(status=200, body=b"", content_type="application/json")
    if fault == "bad_entries":
        body = b'{"entries":{"error":"not a list"},"response_metadata":{"next_cursor":""}}'
        return web.Response(status=200, body=body, content_type="application/json")
    if fault == "drop":
        # Abort (not close): nothing buffered may leave, and the response below is never sent.
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=200)
    raise AssertionError(f"fault {fault} is not a replacing fault")


def without_ids(response: web.Response) -> web.Response:
    """The same page with the ``id`` of every entry removed and no next cursor."""
    if response.status != 200 or not isinstance(response.body, bytes):
        return response
    page = msgspec.json.decode(response.body)
    for entry in page["entries"]:
        entry.pop("id", None)
    page["response_metadata"]["next_cursor"] = ""
    return web.Response(status=200, body=msgspec.json.encode(page), content_type="application/json")


async def send_truncated(
    request: web.Request, response: web.Response, truncate_at: float
) -> web.StreamResponse:
    """Send the answer's status and full Content-Length, then only part of the body, then close."""
    body = bytes(response.body) if isinstance(response.body, (bytes, bytearray, memoryview)) else b""
    stream = web.StreamResponse(status=response.status, headers={"Content-Type": response.content_type})
    stream.content_length = len(body)
    await stream.prepare(request)
    await stream.write(body[: int(len(body) * truncate_at)])
    if request.transport is not None:
        request.transport.close()
    return stream


__all__ = ["FAULT_KINDS", "FaultKind", "FaultPlan"]
