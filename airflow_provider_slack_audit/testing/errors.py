"""The API's error answers, as the fake server sends them."""

from __future__ import annotations

import msgspec
from aiohttp import web

#: The HTTP status the API answers each error code with.
ERROR_STATUS: dict[str, int] = {
    "invalid_arguments": 400,
    "invalid_range": 400,
    "invalid_cursor": 400,
    "invalid_action": 400,
    "invalid_workspace": 400,
    "missing_authentication": 401,
    "invalid_authentication": 401,
    "feature_not_enabled": 403,
    "team_not_authorized": 403,
    "user_not_authorized": 403,
    "bad_endpoint": 404,
    "method_not_allowed": 405,
    "rate_limited": 429,
    "internal_error": 500,
    "bad_gateway": 502,
    "service_unavailable": 503,
    "gateway_timeout": 504,
}

#: The codes a token can be configured to be refused with (see ``denied_tokens``).
DENIAL_CODES = frozenset(
    {"feature_not_enabled", "team_not_authorized", "user_not_authorized", "invalid_workspace"}
)


class ApiError(Exception):
    """An error answer of the API: its code, and for ``rate_limited`` the ``Retry-After`` value."""

    def __init__(self, code: str, *, retry_after: int | str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.retry_after = retry_after

    def response(self) -> web.Response:
        """The API's error answer: ``{"ok": false, "error": code}`` with the code's status."""
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else None
        return web.Response(
            status=ERROR_STATUS[self.code],
            body=msgspec.json.encode({"ok": False, "error": self.code}),
            content_type="application/json",
            headers=headers,
        )


__all__ = ["DENIAL_CODES", "ERROR_STATUS", "ApiError"]
