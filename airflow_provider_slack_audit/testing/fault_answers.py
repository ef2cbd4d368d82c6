"""How each fault of a :class:`~.faults.FaultPlan` looks on the wire: the answers that replace the
API's answer, and the ones that damage it (cut short, ids removed)."""

from __future__ import annotations

import math
import time
from email.utils import formatdate

import msgspec
from aiohttp import web

from .errors import ApiError
from .faults import FaultKind

#: The API error code each server-error fault answers with.
HTTP_FAULT_CODES: dict[str, str] = {
    "http_500": "internal_error",
    "http_502": "bad_gateway",
    "http_503": "service_unavailable",
    "http_504": "gateway_timeout",
}
HTML_ERROR_PAGE = (
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
    return web.Response(
        status=429,
        body=msgspec.json.encode({"ok": False, "error": "rate_limited"}),
        content_type="application/json",
        headers={"Retry-After": value},
    )


def close_connection(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.close()


def replacing_answer(request: web.Request, fault: FaultKind) -> web.Response:
    """The answer of a fault that replaces the API's answer entirely."""
    if fault in HTTP_FAULT_CODES:
        return ApiError(HTTP_FAULT_CODES[fault]).response()
    if fault == "invalid_cursor":
        return ApiError("invalid_cursor").response()
    if fault in ("html_200", "html_502"):
        return web.Response(status=int(fault[-3:]), body=HTML_ERROR_PAGE, content_type="text/html")
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
    close_connection(request)
    return stream
