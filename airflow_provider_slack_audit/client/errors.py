"""Errors of the Audit Logs API and how callers should react to them.

Every failure is sorted into one of three kinds, because that is the only decision a caller has
to make:

- ``permanent``: retrying cannot help (bad token, missing scope, plan without audit logs, a bad
  filter or range). Fail fast and tell the user what to fix.
- ``transient``: the same request may succeed later (429, 5xx, a dropped connection, a garbled
  body). Retry, within a budget.
- ``cursor``: the pagination cursor expired or was rejected. Re-read the interval from its start.
"""

from __future__ import annotations

import asyncio
from typing import Literal, Protocol

import aiohttp

ErrorKind = Literal["permanent", "transient", "cursor"]


class ErrorResponse(Protocol):
    """What an error keeps of the answer it came with (:class:`~.response.AuditLogsResponse` is one).

    A protocol, not the class: the response module raises these errors, so it imports this one.
    """

    url: str
    status_code: int
    content: bytes


# What to do about each documented error code; the message of the error carries it.
_HINTS: dict[str, str] = {
    "missing_authentication": "the request carried no token: set the connection's password to an org "
    "owner's user token (xoxp-...)",
    "invalid_authentication": "the token was rejected: check the connection's password is a valid, "
    "unrevoked org owner token (xoxp-...)",
    "not_authed": "the request carried no token: set the connection's password (xoxp-...)",
    "invalid_auth": "the token was rejected: check the connection's password (xoxp-...)",
    "feature_not_enabled": "audit logs need an Enterprise Grid org with the feature enabled",
    "team_not_authorized": "the token's team may not read audit logs: use a token of an org owner "
    "installed at the org level",
    "user_not_authorized": "the token's user is not an org owner or lacks the auditlogs:read scope",
    "invalid_action": "one of the action names is unknown: check them against the `actions` endpoint",
    "invalid_range": "oldest/latest are outside the data the org has (no data before 2018-03-01 or "
    "before the org enabled audit logs, and none in the future)",
    "invalid_workspace": "the workspace filter names no workspace of this org",
    "bad_endpoint": "the URL is not an Audit Logs endpoint: check the connection's base_url",
    "method_not_allowed": "the endpoint only accepts GET",
    "invalid_cursor": "the cursor expired or was altered: restart the query from its first page",
    "rate_limited": "the org-wide budget (about 50 requests/minute) is spent: wait for Retry-After",
    "ratelimited": "the org-wide budget (about 50 requests/minute) is spent: wait for Retry-After",
    "invalid_response": "the server answered with a body that is not an Audit Logs page",
    "invalid_entry": "an entry holds text that is not valid Unicode (an escaped lone surrogate); the "
    "API returns the same bytes on every retry: report the entry to Slack, or land the window "
    "without that interval",
    "redirected": "the Audit Logs API never redirects: check the connection's base_url and proxy (a "
    "redirect usually means a captive portal, a login page or a wrong host)",
    "pagination_stalled": "the API kept returning pages that do not move older (a server or proxy "
    "fault); the next try re-reads the interval",
    "too_many_pages": "the query returned more pages than its window can hold; the next try re-reads "
    "the interval",
    "retry_budget_exhausted": "the request used up its retry budget (max_retry_wait); Airflow's next "
    "try comes back later",
}

_PERMANENT_CODES = frozenset(
    {
        "missing_authentication",
        "invalid_authentication",
        "not_authed",
        "invalid_auth",
        "feature_not_enabled",
        "team_not_authorized",
        "user_not_authorized",
        "invalid_action",
        "invalid_range",
        "invalid_workspace",
        "bad_endpoint",
        "method_not_allowed",
        "invalid_entry",
    }
)
_TRANSIENT_CODES = frozenset(
    {
        "rate_limited",
        "ratelimited",
        "invalid_response",
        "pagination_stalled",
        "too_many_pages",
        "retry_budget_exhausted",
    }
)
_TRANSIENT_STATUSES = frozenset({408, 425, 429})


def classify(status_code: int | None, error: str | None) -> ErrorKind:
    """Sort an API failure by what a caller should do about it.

    The status wins for 5xx and 429 (a proxy's 502 may carry any body); the Slack error code decides
    for the rest; an unknown 4xx is permanent, because repeating a request the server refused
    only spends the org-wide rate budget. A 2xx body with ``ok: false`` (a gateway answering for
    the API) is an error too: a documented permanent code stays permanent, any other code is
    transient, because a gateway's complaint says nothing about the query.
    """
    if error == "invalid_cursor":
        return "cursor"
    if status_code is not None and (status_code >= 500 or status_code in _TRANSIENT_STATUSES):
        return "transient"
    if error in _TRANSIENT_CODES:
        return "transient"
    if status_code is not None and 200 <= status_code < 300 and error not in _PERMANENT_CODES:
        return "transient"
    return "permanent"


def hint(error: str | None) -> str:
    """What to do about an error code, or an empty string when there is no advice."""
    return _HINTS.get(error or "", "")


class SlackAuditLogsApiError(Exception):
    """A failed Audit Logs API call.

    Attributes:
        response: the response, when there was one (``None`` for errors raised before a request).
        status_code: the HTTP status, when there was a response.
        error: Slack's error code (``invalid_authentication``, ``rate_limited``, ...), or a code of
            ours (``invalid_response``) when the body was not what the API sends.
        kind: ``permanent``, ``transient`` or ``cursor``; see the module docstring.
    """

    def __init__(
        self,
        message: str,
        response: ErrorResponse | None = None,
        *,
        error: str | None = None,
        status_code: int | None = None,
        kind: ErrorKind | None = None,
    ) -> None:
        super().__init__(message)
        self.response = response
        self.status_code = status_code if status_code is not None else getattr(response, "status_code", None)
        self.error = error
        self.kind: ErrorKind = kind if kind is not None else classify(self.status_code, error)

    @property
    def message(self) -> str:
        return str(self.args[0])


class InvalidEntryApiError(SlackAuditLogsApiError):
    """A page that is valid JSON but holds an entry no strict UTF-8 landing can carry (permanent).

    JSON allows escapes of lone surrogates (``"\\ud800"``), which are not Unicode characters:
    they have no UTF-8 encoding, so the entry can be neither landed as strict UTF-8 nor repaired
    without changing it. ``position`` is the entry's index in the page; ``entry_id`` and
    ``date_create`` are the entry's own (``None`` when it lacks them).
    """

    def __init__(
        self,
        message: str,
        response: ErrorResponse | None = None,
        *,
        position: int,
        entry_id: str | None,
        date_create: int | None,
    ) -> None:
        super().__init__(message, response, error="invalid_entry")
        self.position = position
        self.entry_id = entry_id
        self.date_create = date_create


class SlackAuditLogsConfigError(ValueError):
    """A setting (a connection extra, a client argument) is invalid: always permanent.

    The message names the field, the value and what is allowed; retrying cannot fix it.
    """

    kind: ErrorKind = "permanent"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def classify_exception(exc: BaseException) -> ErrorKind | None:
    """The kind of an exception an Audit Logs call can raise, or ``None`` when it is not the client's.

    API errors carry their kind; configuration and argument errors (:class:`SlackAuditLogsConfigError`,
    ``ValueError``/``TypeError`` from a call's arguments) are permanent; network failures (aiohttp's
    errors, timeouts, a reset connection) are transient. Storage errors are not the client's to sort:
    :func:`airflow_provider_slack_audit.ingest.errors.kind_of` does, for everything a landing raises.
    """
    if isinstance(exc, SlackAuditLogsApiError):
        return exc.kind
    if isinstance(exc, aiohttp.ClientError | asyncio.TimeoutError | TimeoutError | ConnectionError):
        return "transient"
    if isinstance(exc, SlackAuditLogsConfigError | ValueError | TypeError):
        return "permanent"
    return None


__all__ = [
    "ErrorKind",
    "ErrorResponse",
    "InvalidEntryApiError",
    "SlackAuditLogsApiError",
    "SlackAuditLogsConfigError",
    "classify",
    "classify_exception",
    "hint",
]
