"""SlackAuditLogsHook: connection in, configured client out, the token kept secret."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from typing import Any

import airflow
import jsonschema
import pytest
from aioresponses import aioresponses

from airflow_provider_slack_audit import CONNECTION_FIELDS, get_provider_info
from airflow_provider_slack_audit.client.errors import SlackAuditLogsConfigError
from airflow_provider_slack_audit.hooks.slack_audit import ClientOptions, SlackAuditLogsHook
from airflow_provider_slack_audit.version_compat import redact

TOKEN = "xoxp-hook-test-token-1234"
BASE_URL = "http://127.0.0.1:8999/audit/v1/"
LOGS_URL = re.compile(r"^http://127\.0\.0\.1:8999/audit/v1/logs\b.*")


def test_hook_declares_the_names_airflow_looks_up() -> None:
    assert SlackAuditLogsHook.conn_name_attr == "slack_audit_conn_id"
    assert SlackAuditLogsHook.default_conn_name == "slack_audit_default"
    assert SlackAuditLogsHook.conn_type == "slack_audit"
    assert SlackAuditLogsHook.hook_name == "Slack Audit Logs"


def test_get_client_configures_the_client_from_the_env_connection(
    slack_audit_connection: Callable[..., None],
) -> None:
    slack_audit_connection(
        BASE_URL, password=TOKEN, timeout=7, max_retry_wait=2.5, proxy="http://127.0.0.1:3128"
    )

    client = SlackAuditLogsHook().get_client()

    assert client.token == TOKEN
    assert client.base_url == BASE_URL
    assert client.timeout == 7
    assert client.proxy == "http://127.0.0.1:3128"
    assert {handler.max_wait_seconds for handler in client.retry_handlers} == {2.5}


async def test_get_async_client_reads_the_same_connection(
    slack_audit_connection: Callable[..., None],
) -> None:
    slack_audit_connection(BASE_URL, password=TOKEN, conn_id="audit_async", timeout=9)

    client = await SlackAuditLogsHook(slack_audit_conn_id="audit_async").get_async_client()

    assert (client.token, client.base_url, client.timeout) == (TOKEN, BASE_URL, 9)


def test_connection_without_extras_uses_the_declared_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_SLACK_AUDIT_DEFAULT", json.dumps({"conn_type": "slack_audit", "password": TOKEN})
    )

    client = SlackAuditLogsHook().get_client()

    assert client.base_url == CONNECTION_FIELDS["base_url"]["schema"]["default"]
    assert client.timeout == CONNECTION_FIELDS["timeout"]["schema"]["default"]
    assert client.rate_limiter is None


def test_extras_given_as_strings_are_parsed() -> None:
    options = ClientOptions.from_extra(
        {
            "timeout": "12",
            "max_retry_wait": "0.5",
            "requests_per_minute": "40",
            "allow_insecure_http": "True",
        },
        "c",
    )

    assert (options.timeout, options.max_retry_wait, options.requests_per_minute) == (12, 0.5, 40.0)
    assert options.allow_insecure_http is True


def test_extras_saved_with_the_legacy_form_prefix_are_read() -> None:
    options = ClientOptions.from_extra(
        {"extra__slack_audit__base_url": BASE_URL, "extra__slack_audit__timeout": 3}, "c"
    )

    assert (options.base_url, options.timeout) == (BASE_URL, 3)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timeout", "soon"),
        ("timeout", 0),
        ("timeout", 1.5),
        ("max_retry_wait", -1),
        ("requests_per_minute", 0),
        ("allow_insecure_http", "yes"),
        ("base_url", 42),
    ],
)
def test_bad_extra_names_the_connection_and_the_field(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=rf"Connection 'my_conn': extra '{field}' must be") as excinfo:
        ClientOptions.from_extra({field: value}, "my_conn")

    assert repr(value) in str(excinfo.value)


def test_missing_password_says_which_token_to_set(slack_audit_connection: Callable[..., None]) -> None:
    slack_audit_connection(BASE_URL, password=None)

    with pytest.raises(ValueError, match=r"'slack_audit_default' has no password.*xoxp.*auditlogs:read"):
        SlackAuditLogsHook().get_client()


async def test_missing_password_fails_the_async_path_the_same_way(
    slack_audit_connection: Callable[..., None],
) -> None:
    slack_audit_connection(BASE_URL, password=" ")

    with pytest.raises(ValueError, match="has no password"):
        await SlackAuditLogsHook().get_async_client()


def test_token_is_registered_with_the_secrets_masker(slack_audit_connection: Callable[..., None]) -> None:
    token = "xoxp-masked-by-the-hook-5678"
    slack_audit_connection(BASE_URL, password=token)

    SlackAuditLogsHook().get_client()

    assert token not in str(redact(f"Authorization: Bearer {token}"))


def test_a_percent_encoded_proxy_password_is_masked_as_written_and_as_sent(
    slack_audit_connection: Callable[..., None],
) -> None:
    slack_audit_connection(
        BASE_URL, password=TOKEN, proxy="https://loader:s3cr%40t-pr0xy@proxy.internal:3128"
    )

    SlackAuditLogsHook().get_client()

    for form in ("s3cr%40t-pr0xy", "s3cr@t-pr0xy"):  # in the URL, and what the proxy receives
        assert form not in str(redact(f"proxy auth {form}"))


def test_plain_http_to_a_remote_host_needs_allow_insecure_http(
    slack_audit_connection: Callable[..., None],
) -> None:
    slack_audit_connection("http://audit.example.internal/audit/v1/", password=TOKEN)
    with pytest.raises(ValueError, match="plain http"):
        SlackAuditLogsHook().get_client()

    slack_audit_connection(
        "http://audit.example.internal/audit/v1/", password=TOKEN, allow_insecure_http=True
    )
    assert SlackAuditLogsHook().get_client().allow_insecure_http is True


def test_test_connection_succeeds_when_the_token_can_read_logs(
    slack_audit_connection: Callable[..., None],
) -> None:
    slack_audit_connection(BASE_URL, password=TOKEN)
    with aioresponses() as mocked:
        mocked.get(LOGS_URL, status=200, payload={"entries": [], "response_metadata": {"next_cursor": ""}})

        ok, message = SlackAuditLogsHook().test_connection()

        ((_, (request,)),) = mocked.requests.items()
    assert (ok, message) == (True, "Authenticated: the token can read the org's audit logs.")
    assert request.kwargs["params"]["limit"] == "1"
    assert request.kwargs["headers"]["Authorization"] == f"Bearer {TOKEN}"


def test_test_connection_reports_slacks_error_code_and_the_fix(
    slack_audit_connection: Callable[..., None],
) -> None:
    slack_audit_connection(BASE_URL, password=TOKEN)
    with aioresponses() as mocked:
        mocked.get(LOGS_URL, status=403, payload={"ok": False, "error": "user_not_authorized"})

        ok, message = SlackAuditLogsHook().test_connection()

    assert ok is False
    assert message.startswith("user_not_authorized: ")
    assert "org owner" in message
    assert TOKEN not in message


def test_test_connection_reports_an_unreachable_server(slack_audit_connection: Callable[..., None]) -> None:
    slack_audit_connection(BASE_URL, password=TOKEN, max_retry_wait=0)
    with aioresponses() as mocked:
        mocked.get(LOGS_URL, exception=ConnectionRefusedError("connection refused"))

        ok, message = SlackAuditLogsHook().test_connection()

    assert (ok, message) == (False, "ConnectionRefusedError: connection refused")


def test_test_connection_reports_a_missing_password(slack_audit_connection: Callable[..., None]) -> None:
    slack_audit_connection(BASE_URL, password=None)

    ok, message = SlackAuditLogsHook().test_connection()

    assert ok is False
    assert "has no password" in message


def test_provider_info_matches_airflows_schema() -> None:
    schema_path = Path(airflow.__file__).parent / "provider_info.schema.json"

    jsonschema.validate(get_provider_info(), json.loads(schema_path.read_text()))


def test_provider_info_registers_the_hook_and_its_connection_form() -> None:
    (connection_type,) = get_provider_info()["connection-types"]
    module_name, _, class_name = connection_type["hook-class-name"].rpartition(".")

    assert getattr(import_module(module_name), class_name) is SlackAuditLogsHook
    assert connection_type["connection-type"] == SlackAuditLogsHook.conn_type
    assert connection_type["hook-name"] == SlackAuditLogsHook.hook_name
    assert set(connection_type["conn-fields"]) == set(ClientOptions.__dataclass_fields__)
    behaviour = connection_type["ui-field-behaviour"]
    assert behaviour["relabeling"] == {"password": "Org owner token (xoxp-…)"}
    assert {"host", "login", "port", "schema"} <= set(behaviour["hidden-fields"])


def test_provider_info_lists_modules_that_import() -> None:
    info = get_provider_info()

    for section in ("hooks", "triggers", "operators"):
        for entry in info[section]:
            for module in entry["python-modules"]:
                import_module(module)
    for entry in info["transfers"]:
        import_module(entry["python-module"])


def test_provider_info_registers_every_warehouse_transfer() -> None:
    targets = {
        entry["target-integration-name"]: entry["python-module"] for entry in get_provider_info()["transfers"]
    }

    assert targets == {
        "Common SQL": "airflow_provider_slack_audit.transfers.slack_audit_to_sql",
        "Snowflake": "airflow_provider_slack_audit.transfers.slack_audit_to_snowflake",
        "Google BigQuery": "airflow_provider_slack_audit.transfers.slack_audit_to_bigquery",
    }


def test_ui_field_behaviour_is_the_declared_one_in_the_pre_3_2_shape() -> None:
    behaviour = SlackAuditLogsHook.get_ui_field_behaviour()
    declared = get_provider_info()["connection-types"][0]["ui-field-behaviour"]

    assert behaviour == {
        "hidden_fields": declared["hidden-fields"],
        "relabeling": declared["relabeling"],
        "placeholders": declared["placeholders"],
    }


def test_connection_form_widgets_cover_every_extra() -> None:
    pytest.importorskip("wtforms", reason="Airflow 3 does not install the Flask UI's WTForms")
    pytest.importorskip("flask_appbuilder", reason="Airflow 3 does not install Flask-AppBuilder")

    assert set(SlackAuditLogsHook.get_connection_form_widgets()) == set(CONNECTION_FIELDS)


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("requests_per_minute", 1e-9, "between 0.1 and 6000"),
        ("requests_per_minute", 1e9, "between 0.1 and 6000"),
        ("timeout", 1e9, "between 1 and 600"),
        ("max_retry_wait", 1e9, "between 0 and 3600"),
        ("base_url", "https://api.slack.com/audit/v1/?team=T1", "no query or fragment"),
        ("base_url", "https://api.slack.com/audit/v1/#logs", "no query or fragment"),
        ("base_url", "https:///audit/v1/", "with a host"),
        ("base_url", "api.slack.com/audit/v1/", "absolute http:// or https:// URL"),
        ("proxy", "proxy.internal:3128", "a proxy URL"),
        ("proxy", "socks5://127.0.0.1:1080", "a proxy URL"),
        ("proxy", "http://127.0.0.1:port", "a proxy URL"),
    ],
)
def test_extras_out_of_range_are_refused_naming_the_field_the_value_and_the_range(
    field: str, value: Any, allowed: str
) -> None:
    from airflow_provider_slack_audit.client import classify_exception

    with pytest.raises(SlackAuditLogsConfigError) as excinfo:
        ClientOptions.from_extra({field: value}, "my_conn")

    message = str(excinfo.value)
    assert f"extra '{field}' must be" in message
    assert allowed in message
    assert repr(value) in message
    assert classify_exception(excinfo.value) == "permanent"


async def test_a_bad_extra_fails_the_trigger_path_as_permanent_before_any_request(
    slack_audit_connection: Callable[..., None],
) -> None:
    from airflow_provider_slack_audit.triggers.slack_audit import SlackAuditLogsTrigger

    slack_audit_connection(BASE_URL, password=TOKEN, requests_per_minute=1e-9)
    spec = {
        "window": {"start": "2026-01-04T00:00:00+00:00", "end": "2026-01-05T00:00:00+00:00"},
        "interval_seconds": 3600,
        "destination": "file:///tmp/slack_audit_bad_extra",
    }
    with aioresponses() as mocked:
        (event,) = [event async for event in SlackAuditLogsTrigger("slack_audit_default", spec).run()]
        assert not mocked.requests
    assert event.payload["kind"] == "permanent"
    assert "requests_per_minute" in event.payload["message"]


def test_a_proxy_password_in_a_bad_extra_is_not_echoed() -> None:
    with pytest.raises(SlackAuditLogsConfigError) as excinfo:
        ClientOptions.from_extra({"proxy": "ftp://user:hunter2-secret@proxy.internal"}, "c")
    assert "hunter2-secret" not in str(excinfo.value)


@pytest.mark.parametrize("priority", ["live", "backfill"])
async def test_the_hook_builds_clients_of_either_priority(
    slack_audit_connection: Callable[..., None], priority: Any
) -> None:
    slack_audit_connection(BASE_URL, password=TOKEN, max_retry_wait=12)
    sync_client = SlackAuditLogsHook().get_client(priority=priority)
    async_client = await SlackAuditLogsHook().get_async_client(priority=priority)
    assert sync_client.priority == async_client.priority == priority
    assert sync_client.max_retry_wait == 12


@pytest.mark.parametrize("port", ["9", "notaport"])
def test_test_connection_never_shows_the_proxys_password(
    slack_audit_connection: Callable[..., None], port: str
) -> None:
    password = "proxy-pass-0451"
    proxy = f"http://user:{password}@127.0.0.1:{port}"
    slack_audit_connection(BASE_URL, password=TOKEN, proxy=proxy, max_retry_wait=0)

    ok, message = SlackAuditLogsHook().test_connection()

    assert ok is False
    assert password not in message
