"""Async client of the Slack Audit Logs API, compatible with slack_sdk's ``AsyncAuditLogsClient``.

This package does not import Airflow: it can be used on its own.
"""

from __future__ import annotations

from .async_client import AsyncAuditLogsClient
from .errors import (
    ErrorKind,
    InvalidEntryApiError,
    SlackAuditLogsApiError,
    SlackAuditLogsConfigError,
    classify,
    classify_exception,
)
from .logs import (
    Actor,
    App,
    Channel,
    Context,
    Details,
    Entity,
    Entry,
    File,
    Location,
    LogsResponse,
    Message,
    ResponseMetadata,
    Role,
    User,
    Usergroup,
    Workflow,
)
from .query import build_logs_params, page_cap
from .ratelimit import Priority, RateLimiter, infer_priority, shared_rate_limiter
from .response import AuditLogsResponse, RawEntry, RawPage
from .retry import (
    AsyncConnectionErrorRetryHandler,
    AsyncInvalidResponseRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncRetryHandler,
    AsyncServerErrorRetryHandler,
    BackoffRetryIntervalCalculator,
    FixedValueRetryIntervalCalculator,
    HttpRequest,
    HttpResponse,
    RetryBudget,
    RetryIntervalCalculator,
    RetryState,
    async_default_handlers,
    default_retry_handlers,
    set_default_sleep,
)
from .transport import get_user_agent

__all__ = [
    "Actor",
    "App",
    "AsyncAuditLogsClient",
    "AsyncConnectionErrorRetryHandler",
    "AsyncInvalidResponseRetryHandler",
    "AsyncRateLimitErrorRetryHandler",
    "AsyncRetryHandler",
    "AsyncServerErrorRetryHandler",
    "AuditLogsResponse",
    "BackoffRetryIntervalCalculator",
    "Channel",
    "Context",
    "Details",
    "Entity",
    "Entry",
    "ErrorKind",
    "File",
    "FixedValueRetryIntervalCalculator",
    "HttpRequest",
    "HttpResponse",
    "InvalidEntryApiError",
    "Location",
    "LogsResponse",
    "Message",
    "Priority",
    "RateLimiter",
    "RawEntry",
    "RawPage",
    "ResponseMetadata",
    "RetryBudget",
    "RetryIntervalCalculator",
    "RetryState",
    "Role",
    "SlackAuditLogsApiError",
    "SlackAuditLogsConfigError",
    "User",
    "Usergroup",
    "Workflow",
    "async_default_handlers",
    "build_logs_params",
    "classify",
    "classify_exception",
    "default_retry_handlers",
    "get_user_agent",
    "infer_priority",
    "page_cap",
    "set_default_sleep",
    "shared_rate_limiter",
]
