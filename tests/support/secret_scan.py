"""A distinctive fake token, and searches for it in every form it could leak in."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator, Mapping
from types import FunctionType, MethodType, ModuleType
from typing import Any

# Random per test session, so no fixture, log line or file can hold it by coincidence.
TOKEN_SECRET_PART = secrets.token_hex(12)
TOKEN = f"xoxp-SECRET-{TOKEN_SECRET_PART}"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


#: The token as it could appear: verbatim, its random part alone (a truncated print), and base64
#: (a Basic-auth header, or a value some encrypting or encoding layer did not really hide).
SECRET_FORMS: tuple[str, ...] = (
    TOKEN,
    TOKEN_SECRET_PART,
    _b64(TOKEN),
    _b64(f"Bearer {TOKEN}"),
    base64.urlsafe_b64encode(TOKEN.encode()).decode(),
)


def leaks_in(text: str) -> list[str]:
    """The forms of the token that occur in ``text``."""
    return [form for form in SECRET_FORMS if form in text]


def leaks_in_bytes(data: bytes) -> list[str]:
    """The forms of the token that occur in ``data`` (raw bytes: files, a SQLite database)."""
    return [form for form in SECRET_FORMS if form.encode() in data]


_OPAQUE = (int, float, complex, bool, type(None), type, ModuleType, FunctionType, MethodType)


def reachable_texts(root: object, *, max_depth: int = 8) -> Iterator[str]:
    """Every string, bytes and repr reachable from ``root`` through attributes, args and containers.

    An exception travels further than its message: error trackers serialize its attributes, and a
    library may keep the request (and its headers) on it. Tracebacks are not followed: frame locals
    hold the client, and with it the token, by design.
    """
    seen: set[int] = set()
    stack: list[tuple[object, int]] = [(root, 0)]
    while stack:
        obj, depth = stack.pop()
        if id(obj) in seen or depth > max_depth or isinstance(obj, _OPAQUE):
            continue
        seen.add(id(obj))
        if isinstance(obj, str):
            yield obj
            continue
        if isinstance(obj, bytes | bytearray | memoryview):
            yield bytes(obj).decode("utf-8", errors="replace")
            continue
        yield repr(obj)
        stack.extend((child, depth + 1) for child in _children(obj))


def _children(obj: object) -> Iterator[Any]:
    if isinstance(obj, BaseException):
        yield from obj.args
        yield obj.__cause__
        yield obj.__context__
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            yield key
            yield value
    elif isinstance(obj, list | tuple | set | frozenset):
        yield from obj
    yield from getattr(obj, "__dict__", {}).values()
    for cls in type(obj).__mro__:
        slots = getattr(cls, "__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if hasattr(obj, name):
                yield getattr(obj, name)
