"""The ``logs`` query: its arguments checked before any request, and why a paginated read of it
always ends (the most pages its window can hold; pages that do not move older are counted)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import compress
from operator import attrgetter
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from typing_extensions import Unpack

from .errors import SlackAuditLogsApiError, hint
from .response import AuditLogsResponse

MAX_LIMIT = 9999
MAX_ACTIONS = 30
"""The API's limit on the names of one ``action`` filter."""


class LogsQuery(TypedDict, total=False):
    """The ``logs`` query's arguments, each optional (``None`` is left out of the request).

    ``additional_query_params`` are added as given (for parameters this client does not know).
    """

    latest: int | None
    oldest: int | None
    limit: int | None
    action: str | Iterable[str] | None
    actor: str | None
    entity: str | None
    additional_query_params: Mapping[str, Any] | None


def build_logs_params(*, cursor: str | None = None, **query: Unpack[LogsQuery]) -> dict[str, Any]:
    """Check ``logs`` arguments and build its query, dropping ``None``; raise before any request."""
    unknown = sorted(query.keys() - LogsQuery.__annotations__.keys())
    if unknown:
        raise TypeError(f"logs got unexpected keyword arguments: {', '.join(unknown)}")
    latest, oldest, limit = query.get("latest"), query.get("oldest"), query.get("limit")
    action, actor, entity = query.get("action"), query.get("actor"), query.get("entity")
    for name, value in (("latest", latest), ("oldest", oldest), ("limit", limit)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise TypeError(
                f"{name} must be an int (Unix seconds for oldest/latest), got {type(value).__name__}"
            )
    for name, bound in (("oldest", oldest), ("latest", latest)):
        if bound is not None and bound < 0:
            raise ValueError(f"{name} must be Unix seconds >= 0, got {bound}")
    if oldest is not None and latest is not None and oldest > latest:
        raise ValueError(f"oldest {oldest} is after latest {latest}: both bounds are inclusive Unix seconds")
    if limit is not None and not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    for name, text in (("actor", actor), ("entity", entity), ("cursor", cursor)):
        if text is not None and (not isinstance(text, str) or not text.strip()):
            raise TypeError(f"{name} must be a non-empty string, got {text!r}")
    params: dict[str, Any] = {
        "latest": latest,
        "oldest": oldest,
        "limit": limit,
        "action": join_actions(action) if action is not None else None,
        "actor": actor,
        "entity": entity,
        "cursor": cursor,
    }
    params.update(query.get("additional_query_params") or {})
    return {k: v for k, v in params.items() if v is not None}


def action_names(action: str | Iterable[str]) -> list[str]:
    """The names of an ``action`` filter, stripped, none empty.

    A string is a comma-separated list (``"user_login, user_logout"``); any other iterable holds one
    name per item, so a comma inside an item is refused: the API would read it as two names, past
    the :data:`MAX_ACTIONS` check.
    """
    if isinstance(action, str):
        names = action.split(",")
    elif isinstance(action, Iterable) and not isinstance(action, bytes | Mapping):
        names = []
        for name in action:
            if not isinstance(name, str):
                raise TypeError(f"action names must be strings, got {name!r} in {action!r}")
            if "," in name:
                raise ValueError(
                    f"action name {name!r} contains a comma, which the API reads as a separator; "
                    f"pass each name as its own item, e.g. {[n.strip() for n in name.split(',')]!r}"
                )
            names.append(name)
    else:
        raise TypeError(f"action must be a name or a list of names, got {type(action).__name__} {action!r}")
    names = [name.strip() for name in names]
    if not names or not all(names):
        raise ValueError(
            f"action {action!r} has an empty name; give names like 'user_login', or leave action unset "
            f"to land every action"
        )
    return names


def join_actions(action: str | Iterable[str]) -> str:
    """Comma-join action names as the API receives them: at most :data:`MAX_ACTIONS`."""
    names = action_names(action)
    if len(names) > MAX_ACTIONS:
        raise ValueError(
            f"action lists {len(names)} names but the API takes at most {MAX_ACTIONS}: split the "
            "query into several tasks, or leave action unset and filter after landing"
        )
    return ",".join(names)


def query_string_params(query_params: Mapping[str, Any] | None) -> dict[str, str]:
    """Query parameters as the strings sent: booleans as ``true``/``false``, lists comma-joined."""
    return {k: _query_value(v) for k, v in (query_params or {}).items() if v is not None}


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def page_cap(oldest: int | None, latest: int | None) -> int | None:
    """The most pages a complete read of ``[oldest, latest]`` can take, or ``None`` if unbounded.

    A page never ends inside a second (``limit`` is optimistic), so each page but the last moves
    at least one second older: a window of N seconds holds at most N + 1 pages.
    """
    if oldest is None or latest is None:
        return None
    return max(0, latest - oldest + 1) + 1


#: Pages in a row that do not move older before :meth:`AsyncAuditLogsClient.pages` gives up.
MAX_STALLED_PAGES = 3

_date_create = attrgetter("date_create")
_id = attrgetter("id")


class PageProgress:
    """Whether each page moves the read older; counts the pages in a row that do not.

    The frontier is the oldest second read so far and the ids read at it (bounded by one second's
    entries). A page moves on when it reaches past the frontier: an entry older than it, or a new
    id at it. Repeated pages, a cursor handed back, or two cursors in turn never do.
    """

    def __init__(self) -> None:
        self.stalled = 0
        self._second: int | None = None
        self._ids: set[str] = set()

    def record(self, cursor: str | None, next_cursor: str, response: AuditLogsResponse) -> int:
        moved = False
        entries = response.raw_page().entries
        if entries:
            # The page's oldest second and the ids at it, whatever the order of its entries.
            seconds = list(map(_date_create, entries))
            low = min(seconds)
            at_low = set(compress(map(_id, entries), map(low.__eq__, seconds)))
            if self._second is None or low < self._second:
                self._second, self._ids, moved = low, at_low, True
            elif low == self._second and not at_low <= self._ids:
                self._ids |= at_low
                moved = True
        self.stalled = 0 if moved and next_cursor != cursor else self.stalled + 1
        return self.stalled


def paging_error(code: str, detail: str) -> SlackAuditLogsApiError:
    """The transient error that ends a read that would not end by itself."""
    return SlackAuditLogsApiError(
        f"Audit Logs pagination stopped: {detail}: {hint(code)}", error=code, kind="transient"
    )


def page_problem(response: AuditLogsResponse) -> SlackAuditLogsApiError | None:
    """Why a 2xx answer is not a good page (garbled, or `ok: false`), or ``None``."""
    try:
        response.raw_page()
    except SlackAuditLogsApiError as problem:
        return problem
    return None
