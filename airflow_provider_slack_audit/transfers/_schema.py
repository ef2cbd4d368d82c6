"""The warehouse table's columns and how one landed Audit Logs entry becomes one row.

The table is flat so analysts can answer "who exported data last week" without JSON functions: every
column but ``details``, ``anomaly_reasons`` and ``raw`` is a scalar taken from a fixed place in the
entry. Anomaly events (``action = 'anomaly'``) also get their signal, which Slack puts in
``details``, as columns: the reasons (a JSON array), the previous IP address and user agent, and
``action_timestamp`` as a timestamp (Slack sends milliseconds or microseconds). ``raw`` keeps the
entry exactly as landed, so fields this mapping does not know (Slack adds some over time) are never
lost and can be re-flattened later by reloading the window.

Each landed line is decoded once, into small msgspec structs that skip unknown fields. The fast path
types every column as text (``str | None``) and knows the entity types Slack documents, so a row is
the decoded values as they are; a line it does not fit (a number where text was expected, an entity
type Slack invented since) is decoded again by the lenient path, which takes any scalar as its JSON
text and decodes the entity into a dict, because its target sits under a key named after its type
(``entity.file``, ``entity.channel``, ...). Both paths give the same row for a line both can read.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from typing import Any, Final, Generic, TypeVar

import msgspec


class ColumnKind(enum.Enum):
    """What a column holds; each SQL dialect maps a kind to its own type."""

    KEY = "key"  # the entry id: the primary key
    TIMESTAMP = "timestamp"  # date_create and anomaly_action_timestamp, always UTC
    TEXT = "text"
    JSON = "json"  # JSON to query: details and the anomaly reasons
    RAW = "raw"  # the entry's JSON text as landed (exact on PostgreSQL, MariaDB and SQLite)


#: The kinds whose values are JSON text.
JSON_KINDS: Final = (ColumnKind.JSON, ColumnKind.RAW)


#: Column name -> kind, in table order. Rows built by :class:`RowBuilder` follow this order.
COLUMNS: Final[dict[str, ColumnKind]] = {
    "id": ColumnKind.KEY,
    "date_create": ColumnKind.TIMESTAMP,
    "action": ColumnKind.TEXT,
    "actor_type": ColumnKind.TEXT,
    "actor_user_id": ColumnKind.TEXT,
    "actor_user_name": ColumnKind.TEXT,
    "actor_user_email": ColumnKind.TEXT,
    "actor_user_team": ColumnKind.TEXT,
    "entity_type": ColumnKind.TEXT,
    "entity_id": ColumnKind.TEXT,
    "entity_name": ColumnKind.TEXT,
    "location_type": ColumnKind.TEXT,
    "location_id": ColumnKind.TEXT,
    "location_name": ColumnKind.TEXT,
    "location_domain": ColumnKind.TEXT,
    "ua": ColumnKind.TEXT,
    "ip_address": ColumnKind.TEXT,
    "session_id": ColumnKind.TEXT,
    "app_id": ColumnKind.TEXT,
    "app_name": ColumnKind.TEXT,
    "details": ColumnKind.JSON,
    "anomaly_reasons": ColumnKind.JSON,
    "anomaly_previous_ip_address": ColumnKind.TEXT,
    "anomaly_previous_ua": ColumnKind.TEXT,
    "anomaly_action_timestamp": ColumnKind.TIMESTAMP,
    "raw": ColumnKind.RAW,
}
COLUMN_NAMES: Final[tuple[str, ...]] = tuple(COLUMNS)
#: The columns an upsert writes over: every one but the key.
VALUE_COLUMNS: Final = COLUMN_NAMES[1:]
#: Columns that may never be NULL: an entry without them is not an audit event.
REQUIRED_COLUMNS: Final[frozenset[str]] = frozenset({"id", "date_create", "action", "raw"})
#: Columns added after the table's first release: a load adds them to an older table (all nullable).
ADDED_COLUMNS: Final[tuple[str, ...]] = (
    "anomaly_reasons",
    "anomaly_previous_ip_address",
    "anomaly_previous_ua",
    "anomaly_action_timestamp",
)
#: Columns indexed for the two questions users ask first: "when" and "what".
INDEXED_COLUMNS: Final[tuple[str, ...]] = ("date_create", "action")

#: One table row: values in :data:`COLUMN_NAMES` order.
Row = tuple[Any, ...]


#: What PostgreSQL text and JSONB cannot hold, and the escape that replaces it there (see NUL_ESCAPE).
NUL: Final = "\x00"
#: U+0000 is stored in PostgreSQL as these six characters (backslash, u, 0, 0, 0, 0): in the flat
#: columns, and inside ``raw`` and ``details``, whose JSON escape for U+0000 becomes an escaped
#: backslash followed by ``u0000``. The landed file keeps the original bytes.
NUL_ESCAPE: Final = "\\u0000"
_JSON_NUL: Final = b"\\u0000"
# A JSON "\u0000" escape that is not itself an escaped backslash followed by "u0000".
_JSON_NUL_ESCAPE: Final = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")
_MICROS: Final = 1_000_000
_NO_ANOMALY: Final = (None, None, None, None)


class InvalidEntryError(ValueError):
    """A landed line is not an Audit Logs entry (not JSON, or without id/date_create/action)."""


# One declaration of each part of an entry serves both paths (see the module docstring): scalars
# ``S`` are ``str`` on the fast path, ``Any`` on the lenient one; the entity ``E`` is _TextEntity or
# a dict. Only the three fields that make an entry an entry are strict.
S = TypeVar("S")
E = TypeVar("E")


class _User(msgspec.Struct, Generic[S], gc=False):
    id: S | None = None
    name: S | None = None
    email: S | None = None
    team: S | None = None


class _Actor(msgspec.Struct, Generic[S], gc=False):
    type: S | None = None
    user: _User[S] | None = None


class _Location(msgspec.Struct, Generic[S], gc=False):
    type: S | None = None
    id: S | None = None
    name: S | None = None
    domain: S | None = None


class _App(msgspec.Struct, Generic[S], gc=False):
    id: S | None = None
    name: S | None = None


class _Context(msgspec.Struct, Generic[S], gc=False):
    location: _Location[S] | None = None
    ua: S | None = None
    ip_address: S | None = None
    session_id: S | int | None = None  # Slack sends a string or a number
    app: _App[S] | None = None


class _Entry(msgspec.Struct, Generic[S, E], gc=False):
    id: str
    date_create: int
    action: str
    actor: _Actor[S] | None = None
    entity: E | None = None
    context: _Context[S] | None = None
    # Raw keeps details' exact JSON text without building Python objects; absent -> empty Raw.
    details: msgspec.Raw = msgspec.Raw()


class _AnomalyDetails(msgspec.Struct, gc=False):
    reason: Any = None
    previous_ip_address: Any = None
    previous_ua: Any = None
    action_timestamp: Any = None


class _TextTarget(msgspec.Struct, gc=False):
    id: str | None = None
    name: str | None = None


class _TextEntity(msgspec.Struct, gc=False):
    type: str | None = None
    user: _TextTarget | None = None
    channel: _TextTarget | None = None
    file: _TextTarget | None = None
    app: _TextTarget | None = None
    workspace: _TextTarget | None = None
    enterprise: _TextTarget | None = None
    usergroup: _TextTarget | None = None
    message: _TextTarget | None = None
    workflow: _TextTarget | None = None
    barrier: _TextTarget | None = None
    role: _TextTarget | None = None
    huddle: _TextTarget | None = None
    canvas: _TextTarget | None = None


#: The entity types the fast path knows: the fields of _TextEntity holding a target.
_TEXT_ENTITY_TYPES: Final = frozenset(_TextEntity.__struct_fields__) - {"type"}
_TextEntry = _Entry[str, _TextEntity]
_LenientEntry = _Entry[Any, dict[str, Any]]


class _NotText(Exception):
    """The line does not fit the fast path; the lenient path reads it."""


_decode_text_entry = msgspec.json.Decoder(_TextEntry).decode
_decode_entry = msgspec.json.Decoder(_LenientEntry).decode
_decode_anomaly = msgspec.json.Decoder(_AnomalyDetails).decode
_encode_json = msgspec.json.encode
_EMPTY_ACTOR, _EMPTY_USER, _EMPTY_CONTEXT = _Actor[Any](), _User[Any](), _Context[Any]()
_EMPTY_LOCATION, _EMPTY_APP, _EMPTY_TARGET = _Location[Any](), _App[Any](), _TextTarget()


def _text(value: Any) -> str | None:
    """A scalar column value: strings as they are, anything else non-null as its JSON text."""
    if value is None or isinstance(value, str):
        return value
    return _encode_json(value).decode()


def _json_text(raw: msgspec.Raw) -> str | None:
    """``details`` as JSON text; absent and JSON ``null`` both become SQL NULL."""
    data = bytes(raw)
    return data.decode() if data and data != b"null" else None


def _entity_target(entity: dict[str, Any] | None) -> tuple[str | None, dict[str, Any]]:
    """The entity's type and the object it points at (``entity[entity["type"]]``)."""
    if not entity:
        return None, {}
    entity_type = entity.get("type")
    target = entity.get(entity_type) if isinstance(entity_type, str) else None
    return _text(entity_type), target if isinstance(target, dict) else {}


def action_timestamp_micros(value: Any) -> int | None:
    """An anomaly's ``action_timestamp`` as Unix microseconds, whatever unit Slack sent it in.

    Slack documents milliseconds and microseconds (and seconds would not surprise): the magnitude
    tells them apart for any date after 1973, so ``< 1e11`` is seconds, ``< 1e14`` milliseconds,
    anything larger microseconds. Not a number (or a numeric string) -> None, never a failed load.
    """
    if isinstance(value, str):
        try:
            value = float(value) if "." in value else int(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value < 0:
        return None
    if value < 1e11:
        return round(value * _MICROS)
    if value < 1e14:
        return round(value * 1_000)
    return round(value) if value < 1e17 else None


def _escape_json_nul(text: str) -> str:
    return _JSON_NUL_ESCAPE.sub(lambda match: match.group(1) + "\\\\u0000", text)


def _escape_row_nul(row: Row) -> Row:
    """The row with U+0000 escaped for PostgreSQL: flat text values and JSON texts (details, raw)."""
    escaped = []
    for name, value in zip(COLUMN_NAMES, row, strict=True):
        if isinstance(value, str):
            if COLUMNS[name] in JSON_KINDS:
                value = _escape_json_nul(value)
            value = value.replace(NUL, NUL_ESCAPE)
        escaped.append(value)
    return tuple(escaped)


class RowBuilder:
    """Turns landed lines into rows, with timestamps in the representation a dialect wants.

    :param timestamp: converts Unix microseconds (UTC) into the value bound for a timestamp column,
        e.g. an ISO-8601 string or a ``datetime``.
    :param escape_nul: replace U+0000 by :data:`NUL_ESCAPE` (PostgreSQL cannot store it).
    """

    def __init__(self, timestamp: Callable[[int], Any], *, escape_nul: bool = False) -> None:
        self._timestamp = timestamp
        self._escape_nul = escape_nul

    def build(self, line: bytes) -> Row:
        """The row for one landed line; raises :class:`InvalidEntryError` when it is not an entry."""
        try:
            raw = line.decode()
            try:
                row = self._text_row(_decode_text_entry(line), raw)
            except (msgspec.DecodeError, _NotText):  # ValidationError is a DecodeError
                row = self._row(_decode_entry(line), raw)
        except (msgspec.DecodeError, UnicodeDecodeError) as error:
            raise InvalidEntryError(f"not an Audit Logs entry ({error}): {line[:200]!r}") from error
        # JSON text holds U+0000 only as the escape \u0000 (a raw NUL byte is not valid JSON).
        if self._escape_nul and _JSON_NUL in line:
            return _escape_row_nul(row)
        return row

    def _anomaly(self, entry: _Entry[Any, Any]) -> tuple[Any, Any, Any, Any]:
        """The anomaly columns: all NULL unless the entry is an anomaly event with details."""
        if entry.action != "anomaly" or not bytes(entry.details):
            return None, None, None, None
        try:
            details = _decode_anomaly(entry.details)
        except (msgspec.DecodeError, msgspec.ValidationError):  # details that are not an object
            return None, None, None, None
        reasons = details.reason
        if reasons is not None and not isinstance(reasons, list):
            reasons = [reasons]
        micros = action_timestamp_micros(details.action_timestamp)
        return (
            None if reasons is None else _encode_json(reasons).decode(),
            _text(details.previous_ip_address),
            _text(details.previous_ua),
            None if micros is None else self._timestamp(micros),
        )

    def _text_row(self, entry: _TextEntry, raw: str) -> Row:
        """The row of an entry whose columns are all text: the decoded values as they are."""
        actor = entry.actor or _EMPTY_ACTOR
        user = actor.user or _EMPTY_USER
        entity = entry.entity
        entity_type = None if entity is None else entity.type
        if entity_type is None:
            target = _EMPTY_TARGET
        elif entity_type in _TEXT_ENTITY_TYPES:
            target = getattr(entity, entity_type) or _EMPTY_TARGET
        else:
            raise _NotText(entity_type)
        context = entry.context or _EMPTY_CONTEXT
        location = context.location or _EMPTY_LOCATION
        app = context.app or _EMPTY_APP
        session_id = context.session_id
        details = entry.details
        return (
            entry.id,
            self._timestamp(entry.date_create * _MICROS),
            entry.action,
            actor.type,
            user.id,
            user.name,
            user.email,
            user.team,
            entity_type,
            target.id,
            target.name,
            location.type,
            location.id,
            location.name,
            location.domain,
            context.ua,
            context.ip_address,
            session_id if session_id is None or isinstance(session_id, str) else str(session_id),
            app.id,
            app.name,
            _json_text(details),
            *(self._anomaly(entry) if entry.action == "anomaly" else _NO_ANOMALY),
            raw,
        )

    def _row(self, entry: _LenientEntry, raw: str) -> Row:
        actor = entry.actor or _EMPTY_ACTOR
        user = actor.user or _EMPTY_USER
        entity_type, target = _entity_target(entry.entity)
        context = entry.context or _EMPTY_CONTEXT
        location = context.location or _EMPTY_LOCATION
        app = context.app or _EMPTY_APP
        return (
            entry.id,
            self._timestamp(entry.date_create * _MICROS),
            entry.action,
            _text(actor.type),
            _text(user.id),
            _text(user.name),
            _text(user.email),
            _text(user.team),
            entity_type,
            _text(target.get("id")),
            _text(target.get("name")),
            _text(location.type),
            _text(location.id),
            _text(location.name),
            _text(location.domain),
            _text(context.ua),
            _text(context.ip_address),
            _text(context.session_id),
            _text(app.id),
            _text(app.name),
            _json_text(entry.details),
            *self._anomaly(entry),
            raw,
        )


__all__ = [
    "ADDED_COLUMNS",
    "COLUMNS",
    "COLUMN_NAMES",
    "INDEXED_COLUMNS",
    "JSON_KINDS",
    "NUL_ESCAPE",
    "REQUIRED_COLUMNS",
    "VALUE_COLUMNS",
    "ColumnKind",
    "InvalidEntryError",
    "Row",
    "RowBuilder",
    "action_timestamp_micros",
]
