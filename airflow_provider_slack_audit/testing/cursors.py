"""Opaque, signed, stateless cursors of the fake server."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct

from .errors import ApiError


class CursorCodec:
    """Opaque cursors: the position of the next entry, signed so a forged or altered one is refused.

    A cursor is ``base64url(version, date_create, index, nonce, HMAC)``. It carries no query: the
    query of each request applies as sent, and the page starts at the cursor's position. The nonce
    is 0 except in the ``fresh_cursor`` fault, which makes a cursor to the same position look new.
    """

    _LAYOUT = struct.Struct(">BqII")
    _VERSION = 1
    _MAC_BYTES = 12

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def encode(self, date_create: int, index: int, *, nonce: int = 0) -> str:
        """The cursor pointing at the entry ``index`` (which happened at ``date_create``)."""
        payload = self._LAYOUT.pack(self._VERSION, date_create, index, nonce & 0xFFFFFFFF)
        return base64.urlsafe_b64encode(payload + self._mac(payload)).rstrip(b"=").decode()

    def decode(self, cursor: str) -> tuple[int, int]:
        """Return ``(date_create, index)``; raise ``ApiError("invalid_cursor")`` unless we signed it."""
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except ValueError:
            raise ApiError("invalid_cursor") from None
        payload, mac = raw[: self._LAYOUT.size], raw[self._LAYOUT.size :]
        if len(raw) != self._LAYOUT.size + self._MAC_BYTES or not hmac.compare_digest(
            mac, self._mac(payload)
        ):
            raise ApiError("invalid_cursor")
        version, date_create, index, _nonce = self._LAYOUT.unpack(payload)
        if version != self._VERSION:
            raise ApiError("invalid_cursor")
        return date_create, index

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()[: self._MAC_BYTES]


__all__ = ["CursorCodec"]
