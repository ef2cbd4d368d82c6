"""Which Google API errors a BigQuery load leaves to Airflow's retries, and which fail the task.

The errors are the ones google-cloud-bigquery raises: an HTTP error of the REST API (status and
reason), a failed job's error result (mapped to an exception by its reason), or no answer at all.
"""

from __future__ import annotations

import pytest

from airflow_provider_slack_audit.transfers._errors import is_transient

exceptions = pytest.importorskip("google.api_core.exceptions")
job_base = pytest.importorskip("google.cloud.bigquery.job.base")


def api_error(status: int, reason: str, message: str = "boom") -> BaseException:
    error: BaseException = exceptions.from_http_status(status, message, errors=[{"reason": reason}])
    return error


def job_error(reason: str, message: str = "boom") -> BaseException:
    """The exception a finished job with this error result raises from ``job.result()``."""
    error: BaseException = job_base._error_result_to_exception({"reason": reason, "message": message})
    return error


@pytest.mark.parametrize(
    ("status", "reason"),
    [(403, "accessDenied"), (404, "notFound"), (400, "invalidQuery"), (400, "invalid"), (409, "duplicate")],
)
def test_a_missing_privilege_table_or_a_bad_statement_is_permanent(status: int, reason: str) -> None:
    assert not is_transient(api_error(status, reason))
    assert not is_transient(job_error(reason))


@pytest.mark.parametrize(
    ("status", "reason"),
    [(500, "backendError"), (503, "backendError"), (403, "rateLimitExceeded"), (429, "rateLimitExceeded"),
     (500, "internalError"), (502, "")],
)  # fmt: skip
def test_a_busy_or_failing_backend_is_transient(status: int, reason: str) -> None:
    assert is_transient(api_error(status, reason))


@pytest.mark.parametrize("reason", ["backendError", "rateLimitExceeded", "internalError"])
def test_a_job_failing_for_a_reason_a_retry_fixes_is_transient(reason: str) -> None:
    assert is_transient(job_error(reason))


def test_a_merge_meeting_another_on_the_same_table_is_transient() -> None:
    message = "Could not serialize access to table p:d.t due to concurrent update"

    assert is_transient(job_error("invalidQuery", message))


def test_a_lost_connection_is_transient() -> None:
    import requests
    from google.auth.exceptions import TransportError

    assert is_transient(requests.exceptions.ConnectionError("Connection refused"))
    assert is_transient(requests.exceptions.ReadTimeout("read timed out"))
    assert is_transient(TransportError("connection reset"))
    assert not is_transient(requests.exceptions.InvalidURL("bad url"))
