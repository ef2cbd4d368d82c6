"""Keep secrets (the token, a proxy's password) out of URLs, messages and the exceptions aiohttp raises.

aiohttp attaches the request to its errors: ``ClientResponseError.request_info`` holds every
header (``Authorization: Bearer xoxp-…`` included) and ``history`` the responses of followed
redirects; ``ClientConnectorError`` keeps the connection key, whose ``proxy`` URL and
``proxy_auth`` hold a proxy's credentials. :func:`scrub_exception` rewrites those in place before
an exception leaves the client, so the exception keeps its type (retry handlers and callers
match on it) but no longer carries a secret in its ``str``, ``repr``, ``args`` or attributes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from aiohttp import RequestInfo
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

REDACTED = "(redacted)"
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


def redact_url(url: str) -> str:
    """``url`` with the password of its userinfo replaced (``http://u:(redacted)@host:3128``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    if parts.password is None and "@" not in parts.netloc:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    userinfo = f"{user}:{REDACTED}" if parts.password is not None else user
    return urlunsplit((parts.scheme, f"{userinfo}@{host}", parts.path, parts.query, parts.fragment))


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every non-empty secret replaced by ``(redacted)``."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def scrub_exception(exc: BaseException, secrets: Iterable[str]) -> None:
    """Remove secrets from ``exc`` and the exceptions it chains to (``__cause__``/``__context__``)."""
    secret_list = [s for s in secrets if s]
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        _scrub_one(current, secret_list)
        stack.extend(e for e in (current.__cause__, current.__context__) if e is not None)


def contains_secret(exc: BaseException, secrets: Iterable[str]) -> bool:
    """Whether a secret still shows in ``exc``'s str, repr, args or attributes."""
    views = [str(exc), repr(exc), repr(exc.args)]
    views.extend(repr(value) for value in vars(exc).values())
    return any(secret in view for secret in secrets if secret for view in views)


def _scrub_one(exc: BaseException, secrets: list[str]) -> None:
    attributes = vars(exc)
    for name, value in list(attributes.items()):
        if name == "history" or name == "_history":
            attributes[name] = ()
        else:
            attributes[name] = _scrub_value(value, secrets)
    exc.args = tuple(_scrub_value(arg, secrets) for arg in exc.args)


def _scrub_value(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, RequestInfo):
        return _scrub_request_info(value, secrets)
    if isinstance(value, str):
        return redact_text(value, secrets)
    if isinstance(value, URL) and (value.user is not None or value.password is not None):
        return value.with_user(None)
    if type(value).__name__ == "ConnectionKey" and hasattr(value, "proxy_auth"):
        return _scrub_connection_key(value)
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(_scrub_value(item, secrets) for item in value)
    return value


def _scrub_request_info(info: RequestInfo, secrets: list[str]) -> RequestInfo:
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in info.headers.items():
        headers.add(name, REDACTED if name.lower() in _SECRET_HEADERS else redact_text(value, secrets))
    return RequestInfo(info.url, info.method, CIMultiDictProxy(headers), info.real_url)


def _scrub_connection_key(key: Any) -> Any:
    proxy = key.proxy
    if proxy is not None and (proxy.user is not None or proxy.password is not None):
        proxy = proxy.with_user(None)
    changes = {"proxy": proxy, "proxy_auth": None}
    if dataclasses.is_dataclass(key) and not isinstance(key, type):
        return dataclasses.replace(key, **changes)
    return key._replace(**changes)


__all__ = ["REDACTED", "contains_secret", "redact_text", "redact_url", "scrub_exception"]
