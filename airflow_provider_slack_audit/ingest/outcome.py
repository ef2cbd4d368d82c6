"""The outcome of one ingest: what the trigger reports and the operator turns into XCom or an error.

An outcome is a small, secret-free, JSON-serializable dict, because the trigger's copy becomes the
task's ``next_kwargs`` (stored in the metadata DB)::

    {"status": "success", "summary": {...}}                     # IngestSummary.to_json()
    {"status": "error", "kind": "transient" | "permanent" | "cursor",
     "error": "<Slack's code or the exception's class>", "message": "<secret-free text>"}

An error's kind comes from :func:`~.errors.kind_of` (each error states its own); which kinds are
retried is decided here and nowhere else (:func:`is_retryable`): ``transient``, and ``cursor``, which
reaches an outcome only when a cursor kept expiring on every re-read (a server in trouble, not a bad
request).

The caller passes Airflow's secrets masker as ``redact``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from airflow_provider_slack_audit.client.errors import SlackAuditLogsApiError, hint
from airflow_provider_slack_audit.ingest.pipeline import ingest_window

from .errors import kind_of
from .spec import IngestSpec
from .stream import IngestClient

# An outcome becomes the task's next_kwargs, stored in the metadata DB: a message is for a human.
MAX_MESSAGE_CHARS = 2000
RETRYABLE_KINDS = frozenset({"transient", "cursor"})

ClientFactory = Callable[[], Awaitable[IngestClient]]
Redact = Callable[[str], object]


async def run_ingest(get_client: ClientFactory, spec: Mapping[str, Any], *, redact: Redact) -> dict[str, Any]:
    """Land the window ``spec`` (an ``IngestSpec.to_json()``) describes; return the outcome.

    The one path of the trigger and of the operator's non-deferrable mode. Every ``Exception``
    becomes an error outcome; ``asyncio.CancelledError`` (a ``BaseException``) still propagates.
    """
    try:
        ingest_spec = IngestSpec.from_json(spec)
        client = await get_client()
        summary = await ingest_window(client, ingest_spec)
    except Exception as exc:
        return failure_outcome(exc, redact=redact)
    return {"status": "success", "summary": summary.to_json()}


def failure_outcome(exc: BaseException, *, redact: Redact) -> dict[str, Any]:
    """Describe a failure as a small, secret-free outcome: its kind, code and message."""
    error = exc.error if isinstance(exc, SlackAuditLogsApiError) and exc.error else type(exc).__name__
    return {
        "status": "error",
        "kind": kind_of(exc),
        "error": error,
        "message": _secret_free_message(exc, redact),
    }


def is_success(outcome: Mapping[str, Any]) -> bool:
    return outcome.get("status") == "success"


def is_retryable(outcome: Mapping[str, Any]) -> bool:
    """Whether another try may succeed: a transient error, or a cursor that kept expiring."""
    return outcome.get("kind") in RETRYABLE_KINDS


def describe_failure(outcome: Mapping[str, Any]) -> str:
    """The task's error message for a failed outcome: what happened and what happens next."""
    kind = outcome.get("kind") or "unknown"
    error = outcome.get("error") or "unknown_error"
    message = outcome.get("message") or "(no message)"
    if is_retryable(outcome):
        return (
            f"Slack audit ingest hit a transient error ({error}): {message}. Airflow retries the task "
            "if it has retries left, and the next try skips the intervals already committed. If this "
            "keeps happening, raise the connection's max_retry_wait or the task's retries."
        )
    return (
        f"Slack audit ingest failed with a {kind} error ({error}): {message}. Not retrying, since "
        "another try would fail the same way: fix the cause, then clear the task."
    )


def _secret_free_message(exc: BaseException, redact: Redact) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, SlackAuditLogsApiError) and exc.error and hint(exc.error) not in text:
        text = f"{text}: {hint(exc.error)}"
    # The token was registered with the secrets masker when the hook read it; redact() is the
    # defence in depth for a library that echoes a header or URL into an exception.
    redacted = str(redact(text))
    if len(redacted) > MAX_MESSAGE_CHARS:
        redacted = redacted[: MAX_MESSAGE_CHARS - 1] + "…"
    return redacted


__all__ = [
    "ClientFactory",
    "describe_failure",
    "failure_outcome",
    "is_retryable",
    "is_success",
    "run_ingest",
]
