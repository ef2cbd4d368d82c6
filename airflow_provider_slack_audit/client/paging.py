"""Why a paginated read always ends: pages that do not move older are counted, and a read stops."""

from __future__ import annotations

from itertools import compress
from operator import attrgetter

from .errors import SlackAuditLogsApiError, hint
from .response import AuditLogsResponse

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
