"""Async client of the Slack Audit Logs API, compatible with slack_sdk's ``AsyncAuditLogsClient``.

This package does not import Airflow: it can be used on its own.
"""

from __future__ import annotations

from .async_client import AsyncAuditLogsClient, build_logs_params, get_user_agent
from .errors import ErrorKind, SlackAuditLogsApiError, classify, classify_exception
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
from .ratelimit import RateLimiter, shared_rate_limiter
from .response import AuditLogsResponse, RawEntry, RawPage
from .retry import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncRetryHandler,
    AsyncServerErrorRetryHandler,
    BackoffRetryIntervalCalculator,
    FixedValueRetryIntervalCalculator,
    HttpRequest,
    HttpResponse,
    RetryIntervalCalculator,
    RetryState,
    async_default_handlers,
    default_retry_handlers,
)

__all__ = [
    "Actor",
    "App",
    "AsyncAuditLogsClient",
    "AsyncConnectionErrorRetryHandler",
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
    "Location",
    "LogsResponse",
    "Message",
    "RateLimiter",
    "RawEntry",
    "RawPage",
    "ResponseMetadata",
    "RetryIntervalCalculator",
    "RetryState",
    "Role",
    "SlackAuditLogsApiError",
    "User",
    "Usergroup",
    "Workflow",
    "async_default_handlers",
    "build_logs_params",
    "classify",
    "classify_exception",
    "default_retry_handlers",
    "get_user_agent",
    "shared_rate_limiter",
]
