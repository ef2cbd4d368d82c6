"""The warehouse table's columns and how one landed Audit Logs entry becomes one row.

The table is flat so analysts can answer "who exported data last week" without JSON functions: every
column but ``details`` and ``raw`` is a scalar taken from a fixed place in the entry. ``raw`` keeps the
entry exactly as landed, so fields this mapping does not know (Slack adds some over time) are never
lost and can be re-flattened later by reloading the window.

Each landed line is decoded once, into small msgspec structs that skip unknown fields; only the
entity is decoded into a dict, because its target sits under a key named after its type
(``entity.file``, ``entity.channel``, ... and types Slack has not invented yet).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, Final

import msgspec


class ColumnKind(enum.Enum):
    """What a column holds; each SQL dialect maps a kind to its own type."""

    KEY = "key"  # the entry id: the primary key
    TIMESTAMP = "timestamp"  # date_create, always UTC
    TEXT = "text"
    JSON = "json"  # JSON text: details and raw


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
    "raw": ColumnKind.JSON,
}
COLUMN_NAMES: Final[tuple[str, ...]] = tuple(COLUMNS)
#: Columns that may never be NULL: an entry without them is not an audit event.
REQUIRED_COLUMNS: Final[frozenset[str]] = frozenset({"id", "date_create", "action", "raw"})
#: Columns indexed for the two questions users ask first: "when" and "what".
INDEXED_COLUMNS: Final[tuple[str, ...]] = ("date_create", "action")

#: One table row: values in :data:`COLUMN_NAMES` order.
Row = tuple[Any, ...]


class InvalidEntryError(ValueError):
    """A landed line is not an Audit Logs entry (not JSON, or without id/date_create/action)."""


# The optional parts are typed ``Any`` and turned into text by ``_text``: a scalar of an unexpected
# type (Slack sends a number one day) must not fail an audit load. Only the three fields that make
# an entry an entry are strict.
class _User(msgspec.Struct):
    id: Any = None
    name: Any = None
    email: Any = None
    team: Any = None


class _Actor(msgspec.Struct):
    type: Any = None
    user: _User | None = None


class _Location(msgspec.Struct):
    type: Any = None
    id: Any = None
    name: Any = None
    domain: Any = None


class _App(msgspec.Struct):
    id: Any = None
    name: Any = None


class _Context(msgspec.Struct):
    location: _Location | None = None
    ua: Any = None
    ip_address: Any = None
    session_id: Any = None
    app: _App | None = None


class _Entry(msgspec.Struct):
    id: str
    date_create: int
    action: str
    actor: _Actor | None = None
    entity: dict[str, Any] | None = None
    context: _Context | None = None
    # Raw keeps details' exact JSON text without building Python objects; absent -> empty Raw.
    details: msgspec.Raw = msgspec.Raw()


_decode_entry = msgspec.json.Decoder(_Entry).decode
_encode_json = msgspec.json.encode
_EMPTY_USER, _EMPTY_LOCATION, _EMPTY_APP = _User(), _Location(), _App()


def _text(value: Any) -> str | None:
    """A scalar column value: strings as they are, anything else non-null as its JSON text."""
    if value is None or isinstance(value, str):
        return value
    return _encode_json(value).decode()


def _json_text(raw: msgspec.Raw) -> str | None:
    """``details`` as JSON text; absent and JSON ``null`` both become SQL NULL."""
    data = bytes(raw)
    if not data or data == b"null":
        return None
    return data.decode()


def _entity_target(entity: dict[str, Any] | None) -> tuple[str | None, dict[str, Any]]:
    """The entity's type and the object it points at (``entity[entity["type"]]``)."""
    if not entity:
        return None, {}
    entity_type = entity.get("type")
    target = entity.get(entity_type) if isinstance(entity_type, str) else None
    return _text(entity_type), target if isinstance(target, dict) else {}


class RowBuilder:
    """Turns landed lines into rows, with the timestamp in the representation a dialect wants.

    :param timestamp: converts ``date_create`` (Unix seconds, UTC) into the value bound for the
        ``date_create`` column, e.g. an ISO-8601 string or an aware ``datetime``.
    """

    def __init__(self, timestamp: Callable[[int], Any]) -> None:
        self._timestamp = timestamp

    def build(self, line: bytes) -> Row:
        """The row for one landed line; raises :class:`InvalidEntryError` when it is not an entry."""
        try:
            entry = _decode_entry(line)
            raw = line.decode()
        except (msgspec.DecodeError, UnicodeDecodeError) as error:
            raise InvalidEntryError(f"not an Audit Logs entry ({error}): {line[:200]!r}") from error
        actor = entry.actor or _Actor()
        user = actor.user or _EMPTY_USER
        entity_type, target = _entity_target(entry.entity)
        context = entry.context or _Context()
        location = context.location or _EMPTY_LOCATION
        app = context.app or _EMPTY_APP
        return (
            entry.id,
            self._timestamp(entry.date_create),
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
            raw,
        )


__all__ = [
    "COLUMNS",
    "COLUMN_NAMES",
    "INDEXED_COLUMNS",
    "REQUIRED_COLUMNS",
    "ColumnKind",
    "InvalidEntryError",
    "Row",
    "RowBuilder",
]
