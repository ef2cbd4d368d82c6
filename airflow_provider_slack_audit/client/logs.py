"""Typed views of Audit Logs bodies, shaped like slack_sdk's ``slack_sdk.audit_logs.v1.logs``.

Every model takes keyword arguments, turns nested dicts into models, and keeps keys it does not
know in ``unknown_fields``: Slack adds fields over time, and a new field must never break a reader.
Every field is optional, so any body (an error, ``schemas``, ``actions``) builds a model.

These models are for people reading entries. The landing path never builds them: it moves each
entry's raw bytes (see :meth:`AuditLogsResponse.raw_page`).
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar


class _Model:
    """Base: declared fields are attributes (``None`` when absent); the rest go to ``unknown_fields``.

    A model's fields are its annotations, in order (``to_dict`` gives them in that order).
    """

    _fields: ClassVar[tuple[str, ...]] = ()
    # field name -> model class, for nested objects (a list of dicts becomes a list of models)
    _nested: ClassVar[dict[str, type[_Model]]] = {}

    unknown_fields: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._fields = tuple(inspect.get_annotations(cls))

    def __init__(self, **kwargs: Any) -> None:
        for name in self._fields:
            value = kwargs.pop(name, None)
            model = self._nested.get(name)
            if model is not None:
                value = _build(model, value)
            setattr(self, name, value)
        self.unknown_fields = kwargs

    def to_dict(self) -> dict[str, Any]:
        """The body this model was built from: declared fields that were set, then unknown ones."""
        out: dict[str, Any] = {}
        for name in self._fields:
            value = getattr(self, name)
            if value is not None:
                out[name] = _unbuild(value)
        out.update(self.unknown_fields)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_dict()!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Model) and type(self) is type(other) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


def _build(model: type[_Model], value: Any) -> Any:
    if isinstance(value, dict):
        return model(**value)
    if isinstance(value, list):
        return [model(**v) if isinstance(v, dict) else v for v in value]
    return value


def _unbuild(value: Any) -> Any:
    if isinstance(value, _Model):
        return value.to_dict()
    if isinstance(value, list):
        return [_unbuild(v) for v in value]
    return value


class App(_Model):
    id: str | None
    name: str | None
    is_distributed: bool | None
    is_directory_approved: bool | None
    is_workflow_app: bool | None
    scopes: list[str] | None


class User(_Model):
    id: str | None
    name: str | None
    email: str | None
    team: str | None


class Actor(_Model):
    _nested = {"user": User}
    type: str | None
    user: User | None


class Location(_Model):
    """A workspace or the enterprise, as found in ``context.location`` and in entities."""

    type: str | None
    id: str | None
    name: str | None
    domain: str | None


class Context(_Model):
    _nested = {"location": Location, "app": App}
    location: Location | None
    ua: str | None
    ip_address: str | None
    session_id: str | None
    app: App | None


class Channel(_Model):
    id: str | None
    privacy: str | None
    name: str | None
    is_shared: bool | None
    is_org_shared: bool | None
    teams_shared_with: list[str] | None
    is_trusted: bool | None


class File(_Model):
    id: str | None
    name: str | None
    filetype: str | None
    title: str | None


class Usergroup(_Model):
    id: str | None
    name: str | None


class Message(_Model):
    channel: str | None
    timestamp: str | None


class Workflow(_Model):
    id: str | None
    name: str | None


class Role(_Model):
    id: str | None
    name: str | None
    type: str | None


class Details(_Model):
    """``details`` differs by action (over a hundred shapes); every key is kept as an attribute.

    Known keys are not declared: ``details.new_value`` works for any key the entry has, ``None``
    for one it lacks, and ``to_dict()`` gives the original object back.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        self.__dict__.update(kwargs)
        self.unknown_fields = {}

    def __getattr__(self, name: str) -> Any:
        # only called for missing attributes: an absent detail reads as None, like declared fields
        if name.startswith("__"):
            raise AttributeError(name)
        return None

    def to_dict(self) -> dict[str, Any]:
        return {k: _unbuild(v) for k, v in self.__dict__.items() if k != "unknown_fields"}


class Entity(_Model):
    """The target of an action; ``type`` names which of the other fields holds it."""

    _nested = {
        "user": User,
        "workspace": Location,
        "enterprise": Location,
        "channel": Channel,
        "file": File,
        "app": App,
        "message": Message,
        "usergroup": Usergroup,
        "workflow": Workflow,
        "role": Role,
    }
    type: str | None
    user: User | None
    workspace: Location | None
    enterprise: Location | None
    channel: Channel | None
    file: File | None
    app: App | None
    message: Message | None
    usergroup: Usergroup | None
    workflow: Workflow | None
    role: Role | None

    @property
    def target(self) -> Any:
        """The object the entity's ``type`` points at (also for types this model does not declare)."""
        if self.type is None:
            return None
        if self.type in self._fields:
            return getattr(self, self.type)
        return self.unknown_fields.get(self.type)


class Entry(_Model):
    _nested = {"actor": Actor, "entity": Entity, "context": Context, "details": Details}
    id: str | None
    date_create: int | None
    action: str | None
    actor: Actor | None
    entity: Entity | None
    context: Context | None
    details: Details | None


class ResponseMetadata(_Model):
    next_cursor: str | None


class LogsResponse(_Model):
    """Any Audit Logs body: a page of ``entries``, an error (``ok``/``error``), schemas or actions."""

    _nested = {"entries": Entry, "response_metadata": ResponseMetadata}
    entries: list[Entry] | None
    response_metadata: ResponseMetadata | None
    ok: bool | None
    error: str | None
    needed: str | None
    provided: str | None
