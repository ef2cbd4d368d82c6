"""The response of an Audit Logs call: raw bytes kept, every view decoded lazily and at most once."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cached_property
from typing import Any, NamedTuple

import msgspec

from .blocking import yield_to_loop
from .errors import InvalidEntryApiError, SlackAuditLogsApiError, hint
from .logs import LogsResponse


class RawEntry(msgspec.Struct, frozen=True, gc=False):
    """One audit entry as the API sent it, with the two fields the landing path needs decoded.

    ``gc=False``: entries the cyclic GC tracks (as tuples would be) trigger full collections, each
    walking every object of the Airflow process. An entry holds a str, an int and bytes, so it can
    never be part of a reference cycle.
    """

    id: str
    date_create: int
    raw: msgspec.Raw  # the entry's exact bytes (supports the buffer protocol: b"\n".join works)


class RawPage(NamedTuple):
    entries: list[RawEntry]
    next_cursor: str  # "" on the last page


class _Metadata(msgspec.Struct):
    next_cursor: str = ""


class _Page(msgspec.Struct):
    entries: list[msgspec.Raw]
    response_metadata: _Metadata | None = None
    ok: Any = None  # a top-level `"ok": false` makes a page an error (see validate)


class _Slice(msgspec.Struct, forbid_unknown_fields=True):
    """A slice of a page cut before its end: entries, and nothing else (see _decode_in_slices)."""

    entries: list[msgspec.Raw]


class EntryKey(msgspec.Struct, gc=False):
    """An entry's id and second: all the landing needs to route, deduplicate and verify it."""

    id: str
    date_create: int


class _PageKeys(msgspec.Struct, gc=False):
    entries: list[EntryKey]


class _OkProbe(msgspec.Struct):
    ok: Any = None


_ok_decoder = msgspec.json.Decoder(_OkProbe)
_page_decoder = msgspec.json.Decoder(_Page)
_slice_decoder = msgspec.json.Decoder(_Slice)
_key_decoder = msgspec.json.Decoder(EntryKey)
_keys_decoder = msgspec.json.Decoder(_PageKeys)
_any_decoder = msgspec.json.Decoder()


class AuditLogsResponse:
    """An HTTP response of the Audit Logs API, compatible with slack_sdk's ``AuditLogsResponse``.

    ``content`` holds the bytes as received. ``raw_body`` (text), ``body`` (a dict when the body is a
    JSON object, else ``None``), ``typed_body`` (a :class:`LogsResponse`, never raising) and
    :meth:`raw_page` (the fast landing view) are each computed on first use.
    """

    url: str
    status_code: int
    headers: Mapping[str, Any]
    content: bytes
    #: HTTP requests sent to obtain this response (1 + retries), and seconds waited for it
    #: (retry back-off and rate-limit pacing); set by the client, figures for the caller to add up.
    requests: int = 1
    wait_seconds: float = 0.0
    #: 429 answers among those requests.
    rate_limited: int = 0
    _decoded: RawPage | None = None  # raw_page(), once decoded

    def __init__(
        self,
        *,
        url: str,
        status_code: int,
        raw_body: str | bytes | None,
        headers: Mapping[str, Any],
    ) -> None:
        self.url = url
        self.status_code = status_code
        self.headers = headers
        self.content = raw_body.encode("utf-8") if isinstance(raw_body, str) else bytes(raw_body or b"")

    def __repr__(self) -> str:
        return f"<AuditLogsResponse {self.status_code} {self.url} ({len(self.content)} bytes)>"

    @cached_property
    def raw_body(self) -> str | None:
        """The body as text (``None`` when empty), like slack_sdk's ``raw_body``."""
        return self.content.decode("utf-8", errors="replace") if self.content else None

    @cached_property
    def body(self) -> dict[str, Any] | None:
        """The body parsed as JSON when it is a JSON object; ``None`` otherwise (empty, HTML, garbled)."""
        if not self.content.lstrip().startswith(b"{"):
            return None
        try:
            value = _any_decoder.decode(self.content)
        except msgspec.DecodeError:
            return None
        return value if isinstance(value, dict) else None

    @property
    def typed_body(self) -> LogsResponse | None:
        """The body as a :class:`LogsResponse`; errors, schemas and actions give a model too.

        ``None`` only when the body is not a JSON object. slack_sdk raises here on any body
        without ``entries``.
        """
        body = self.body
        return None if body is None else LogsResponse(**body)

    @property
    def ok(self) -> bool:
        """True for a 2xx response. (Success bodies of this API carry no ``ok`` field.)"""
        return 200 <= self.status_code < 300

    @property
    def error(self) -> str | None:
        """Slack's error code from an error body, when there is one."""
        body = self.body
        code = body.get("error") if body is not None else None
        return code if isinstance(code, str) else None

    def validate(self) -> AuditLogsResponse:
        """Return self for a 2xx success; raise :class:`SlackAuditLogsApiError` otherwise.

        A 2xx body with ``ok: false`` (a proxy or gateway answering in the API's place) is an error
        too, never an empty page: a documented permanent code stays permanent, any other code is
        transient (see :func:`~.errors.classify`).
        """
        if self.ok and not self._says_not_ok:
            return self
        code = self.error
        advice = hint(code)
        what = f"error {code!r}" if code else "no Slack error code (body is not a JSON error)"
        status = f"HTTP {self.status_code}" + (" (ok: false)" if self.ok else "")
        message = f"Audit Logs API returned {status} with {what} for {request_path(self.url)}"
        raise SlackAuditLogsApiError(f"{message}: {advice}" if advice else message, self, error=code)

    @property
    def _says_not_ok(self) -> bool:
        # Success bodies carry no `ok`; only a body that says `"ok": false` is an error. The probe
        # struct skips every other field without building objects, so a big page costs one scan.
        # The search goes block by block (blocks overlap by the needle's length - 1), so no single
        # C call holds the GIL, and the event loop thread, for the whole of a large body.
        content = self.content
        if not any(
            content.find(b'"ok"', start, start + _SLICE_BYTES + 3) >= 0
            for start in range(0, len(content), _SLICE_BYTES)
        ):
            return False
        try:
            return _ok_decoder.decode(self.content).ok is False
        except msgspec.DecodeError:
            return False

    def raw_page(self) -> RawPage:
        """The page's entries as raw bytes plus their ``id`` and ``date_create``, and the next cursor.

        Only the envelope and two keys per entry are decoded: moving an entry costs a slice, not
        a dict. A 2xx body that is not a page raises a transient ``invalid_response`` error (a
        retry may get a good body; a committed interval must never hold a garbled one).
        """
        # Cached by hand, not with functools.cached_property: before Python 3.12 that holds one
        # lock for every instance while computing, and the decode hands the GIL to the event loop
        # between its slices; a loop reading another response's page would wait on that lock.
        # Two threads decoding one body at once get equal pages, and one of them is kept.
        page = self._decoded
        if page is None:
            page = self._decoded = self._decode_page()
        return page

    @property
    def next_cursor(self) -> str:
        """The cursor of the next page, ``""`` on the last one."""
        return self.raw_page().next_cursor

    def _decode_page(self) -> RawPage:
        if not self.ok:
            self.validate()  # raises
        # The decode reads the top-level "ok" too, so a page costs no separate scan for it.
        try:
            raws, keys, next_cursor, ok = _decode_in_slices(self.content)
        except msgspec.DecodeError:
            self.validate()  # an `ok: false` body is not a page: its error, not "not a page"
            # A slice cut through something (or the body is bad): one pass names the problem.
            try:
                page = _page_decoder.decode(self.content)
            except msgspec.DecodeError as e:
                raise (
                    self._unicode_error() or self._invalid(f"the body is not an Audit Logs page ({e})")
                ) from None
            try:
                keys = _keys_decoder.decode(self.content).entries
            except msgspec.DecodeError:
                raise self._bad_entry(page.entries) from None
            raws, ok = page.entries, page.ok
            next_cursor = page.response_metadata.next_cursor if page.response_metadata is not None else ""
        if ok is False:
            self.validate()  # raises: a page that says `"ok": false` is an error, never data
        if len(keys) != len(raws):  # two decodes of the same slices: never, unless msgspec errs
            raise self._invalid(f"its {len(raws)} entries decoded to {len(keys)} keys")
        entries: list[RawEntry] = []
        for start in range(0, len(raws), _ENTRIES_PER_SLICE):
            stop = start + _ENTRIES_PER_SLICE
            entries += [
                RawEntry(key.id, key.date_create, raw)
                for key, raw in zip(keys[start:stop], raws[start:stop], strict=True)
            ]
            yield_to_loop()
        return RawPage(entries, next_cursor)

    def _bad_entry(self, raws: list[msgspec.Raw]) -> SlackAuditLogsApiError:
        """The error naming the first entry without a valid id/date_create (a slow path, on failure only)."""
        for position, raw in enumerate(raws):
            try:
                _key_decoder.decode(raw)
            except msgspec.DecodeError as e:
                return self._invalid(f"entry {position} of the page has no valid id/date_create ({e})")
        return self._invalid("an entry of the page has no valid id/date_create")

    def _unicode_error(self) -> InvalidEntryApiError | None:
        """The permanent error for a page that is JSON but not Unicode (an escaped lone surrogate,
        which msgspec refuses and the stdlib accepts), naming the first such entry; else ``None``.
        A slow path, taken only when the page failed to decode."""
        try:
            page = json.loads(self.content)
        except ValueError:
            return None
        entries = page.get("entries") if isinstance(page, dict) else None
        for position, entry in enumerate(entries if isinstance(entries, list) else ()):
            try:
                json.dumps(entry, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError:
                fields = entry if isinstance(entry, dict) else {}
                entry_id, date_create = fields.get("id"), fields.get("date_create")
                entry_id = entry_id if isinstance(entry_id, str) else None
                date_create = date_create if type(date_create) is int else None
                return InvalidEntryApiError(
                    f"Audit Logs API returned HTTP {self.status_code} for {request_path(self.url)} with "
                    f"entry {position} of the page (id {entry_id}, date_create {date_create}) holding an "
                    f"escaped lone surrogate: {hint('invalid_entry')}",
                    self,
                    position=position,
                    entry_id=entry_id,
                    date_create=date_create,
                )
        return None

    def _invalid(self, detail: str) -> SlackAuditLogsApiError:
        return SlackAuditLogsApiError(
            f"Audit Logs API returned HTTP {self.status_code} for {request_path(self.url)} but {detail}: "
            f"{hint('invalid_response')}; retry later",
            self,
            error="invalid_response",
        )


# One C decode call over a whole page would hold the GIL, and the event loop's thread, throughout.
_SLICE_BYTES = 1 << 18
_ENTRY_SEPARATOR = b"},{"
_ENTRIES_OPEN = b'{"entries":['
_CUT_ATTEMPTS = 16
_ENTRIES_PER_SLICE = 1000  # RawEntry objects made between two hand-overs to the event loop


def _decode_in_slices(content: bytes) -> tuple[list[msgspec.Raw], list[EntryKey], str, Any]:
    """The page's raw entries, their keys, the next cursor and its top-level ``ok`` (``None`` when
    absent), decoded 256 KiB at a time.

    Each slice is made a complete page document of its own: the body cut after an entry's ``}``
    (at a ``},{``, found with one ``find``), closed with ``]}``, the next slice reopened with
    ``{"entries":[``. A cut that is not between two entries (inside a string or a nested value)
    makes a slice invalid JSON, so its decode fails and the next ``},{`` is tried (then the caller
    decodes the body in one pass): a result is only ever returned for a correct split. Run in a
    worker thread, the short calls let the event loop take the GIL between slices.

    A cut past the end of the entries, between two objects of a later top-level array, would make
    valid slices too, and that array's objects would pass for entries. So slicing starts inside the
    entries array, and every slice but the last must hold entries and nothing else (``_Slice``
    forbids other keys): each cut that passes ends in the entries, so the next slice starts in them
    too. Keys before the entries (a body need not open with them) are decoded on their own first.
    """
    raws: list[msgspec.Raw] = []
    keys: list[EntryKey] = []
    start, prefix, head = 0, b"", _Page(entries=[])
    if len(content) > 2 * _SLICE_BYTES and not content.startswith(_ENTRIES_OPEN):
        start, head = _entries_start(content)
        prefix = _ENTRIES_OPEN
    view = memoryview(content)
    while True:
        cut = -1
        if len(content) - start > 2 * _SLICE_BYTES:
            cut = content.find(_ENTRY_SEPARATOR, start + _SLICE_BYTES)
        page: _Page | _Slice | None = None
        piece = b""
        for _attempt in range(_CUT_ATTEMPTS):
            # One copy per slice (a join of memoryview parts), not one per concatenation.
            piece = b"".join((prefix, view[start:]) if cut < 0 else (prefix, view[start : cut + 1], b"]}"))
            try:
                page = _page_decoder.decode(piece) if cut < 0 else _slice_decoder.decode(piece)
                break
            except msgspec.DecodeError:
                if cut < 0:
                    raise
                # The cut fell inside an entry (a string or nested value holding "},{"), or past
                # the entries: try the next (the last slice is the rest, whatever follows them).
                cut = content.find(_ENTRY_SEPARATOR, cut + 1)
        if page is None:
            raise msgspec.DecodeError("no entry boundary found to slice the page at")
        raws += page.entries
        keys += _keys_decoder.decode(piece).entries
        yield_to_loop()
        if isinstance(page, _Page):  # the last slice: the only one with keys besides the entries
            # A key after the entries wins over the same key before them, as in a one-pass decode.
            metadata = page.response_metadata or head.response_metadata
            ok = page.ok if page.ok is not None else head.ok
            return raws, keys, metadata.next_cursor if metadata is not None else "", ok
        start, prefix = cut + 2, _ENTRIES_OPEN


_ENTRIES_KEY = b'"entries":['


def _entries_start(content: bytes) -> tuple[int, _Page]:
    """Where the top-level entries array's first element starts, and the keys before it (as a
    page without entries), for a body that does not open with its entries.

    ``"entries":[`` outside a string is a key; it is the top-level one exactly when what comes
    before it, closed by ``"entries":[]}``, is a JSON object (every earlier value complete).
    """
    position = content.find(_ENTRIES_KEY)
    for _attempt in range(_CUT_ATTEMPTS):
        if position < 0:
            break
        try:
            head = _page_decoder.decode(content[:position] + _ENTRIES_KEY + b"]}")
        except msgspec.DecodeError:
            position = content.find(_ENTRIES_KEY, position + 1)
            continue
        return position + len(_ENTRIES_KEY), head
    raise msgspec.DecodeError("no top-level entries array found to slice the page at")


def request_path(url: str) -> str:
    """The URL without its query, for messages (cursors and filters make them long and add nothing)."""
    return url.split("?", 1)[0]


__all__ = ["AuditLogsResponse", "EntryKey", "RawEntry", "RawPage", "request_path"]
