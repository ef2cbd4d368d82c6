"""The hook: turns an Airflow connection into an Audit Logs client.

The token lives only in ``Connection.password``; there is deliberately no ``token=`` argument, so a
token can never end up in a DAG file, a rendered template or trigger kwargs.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_slack_audit import CONNECTION_FIELDS, CONNECTION_UI_FIELD_BEHAVIOUR
from airflow_provider_slack_audit.client import (
    AsyncAuditLogsClient,
    SlackAuditLogsApiError,
    default_retry_handlers,
)
from airflow_provider_slack_audit.client.errors import SlackAuditLogsConfigError, hint
from airflow_provider_slack_audit.client.ratelimit import Priority
from airflow_provider_slack_audit.client.redaction import redact_text, redact_url
from airflow_provider_slack_audit.client.transport import url_password
from airflow_provider_slack_audit.version_compat import (
    BaseHook,
    Connection,
    amask_secret,
    get_async_connection,
    get_async_extra_dejson,
    mask_secret,
)


def _default(field: str) -> Any:
    """The default a connection form field declares (the form and the hook cannot disagree)."""
    return CONNECTION_FIELDS[field]["schema"].get("default")


#: The ranges the hook accepts, checked when the connection is read. Slack allows about 50
#: requests/minute per org; the upper bound leaves room for test servers.
TIMEOUT_RANGE = (1, 600)
MAX_RETRY_WAIT_RANGE = (0.0, 3600.0)
REQUESTS_PER_MINUTE_RANGE = (0.1, 6000.0)


@dataclass(frozen=True)
class ClientOptions:
    """The client settings a connection's extra holds, parsed and checked.

    Extras arrive as JSON numbers from an ``AIRFLOW_CONN_*`` JSON variable but as strings from some
    secrets backends and older UIs, so every field accepts both. A value out of its range raises
    :class:`SlackAuditLogsConfigError` (permanent: a retry cannot fix a setting) naming the
    connection, the field, the value and the allowed range.
    """

    base_url: str = _default("base_url")
    timeout: int = _default("timeout")
    proxy: str | None = None
    max_retry_wait: float = _default("max_retry_wait")
    requests_per_minute: float | None = None
    allow_insecure_http: bool = _default("allow_insecure_http")

    @classmethod
    def from_extra(cls, extra: dict[str, Any], conn_id: str) -> ClientOptions:
        """Parse a connection's extra; a bad value names the connection, the field and the fix."""
        reader = _ExtraReader(extra, conn_id)
        return cls(
            base_url=reader.url("base_url", what="the API's base URL") or cls.base_url,
            timeout=reader.whole_seconds("timeout", TIMEOUT_RANGE, default=cls.timeout),
            proxy=reader.url("proxy", what="a proxy URL"),
            max_retry_wait=reader.seconds("max_retry_wait", MAX_RETRY_WAIT_RANGE, default=cls.max_retry_wait),
            requests_per_minute=reader.optional_rate("requests_per_minute", REQUESTS_PER_MINUTE_RANGE),
            allow_insecure_http=reader.boolean("allow_insecure_http", default=cls.allow_insecure_http),
        )


class _ExtraReader:
    """Typed access to a connection's extra, accepting plain and ``extra__slack_audit__`` keys.

    The prefixed form is what Airflow's pre-3 connection form saved; reading it too means a
    connection created there keeps working.
    """

    def __init__(self, extra: dict[str, Any], conn_id: str) -> None:
        self._extra = extra
        self._conn_id = conn_id

    def _raw(self, field: str) -> Any:
        value = self._extra.get(field)
        if value is None or value == "":
            value = self._extra.get(f"extra__{SlackAuditLogsHook.conn_type}__{field}")
        return None if value == "" else value

    def _invalid(self, field: str, value: Any, expected: str) -> SlackAuditLogsConfigError:
        shown = redact_url(value) if isinstance(value, str) else value
        return SlackAuditLogsConfigError(
            f"Connection {self._conn_id!r}: extra {field!r} must be {expected}, got {shown!r}. "
            "Fix it in the connection (Admin > Connections, or the AIRFLOW_CONN_* JSON).",
            field=field,
        )

    def string(self, field: str) -> str | None:
        value = self._raw(field)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self._invalid(field, value, "a string")
        return value.strip() or None

    def url(self, field: str, *, what: str) -> str | None:
        """An absolute http(s) URL with a host and no query or fragment."""
        value = self.string(field)
        if value is None:
            return None
        expected = f"{what}: an absolute http:// or https:// URL with a host and no query or fragment"
        try:
            parts = urlsplit(value)
            host = parts.hostname
            parts.port  # noqa: B018 - a port that is not a number raises here
        except ValueError:
            raise self._invalid(field, value, expected) from None
        # "?" and "#" also catch an empty query or fragment, which urlsplit drops.
        if parts.scheme.lower() not in ("http", "https") or not host or "?" in value or "#" in value:
            raise self._invalid(field, value, expected)
        return value

    def _number(
        self, field: str, bounds: tuple[float, float], expected: str, whole: bool = False
    ) -> float | None:
        """The field as a number within ``bounds`` (a whole one if ``whole``), or None when unset."""
        value = self._raw(field)
        if value is None:
            return None
        if isinstance(value, bool):  # bool is an int subclass; True seconds is a typo, not a number
            raise self._invalid(field, value, expected)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise self._invalid(field, value, expected) from None
        low, high = bounds
        if not math.isfinite(number) or (whole and not number.is_integer()) or not low <= number <= high:
            raise self._invalid(field, value, expected)
        return number

    def whole_seconds(self, field: str, bounds: tuple[int, int], *, default: int) -> int:
        expected = f"a whole number of seconds between {bounds[0]} and {bounds[1]}"
        number = self._number(field, bounds, expected, whole=True)
        return default if number is None else int(number)

    def seconds(self, field: str, bounds: tuple[float, float], *, default: float) -> float:
        number = self._number(field, bounds, f"a number of seconds between {bounds[0]:g} and {bounds[1]:g}")
        return default if number is None else number

    def optional_rate(self, field: str, bounds: tuple[float, float]) -> float | None:
        expected = f"a number between {bounds[0]:g} and {bounds[1]:g} (or empty for no client-side pacing)"
        return self._number(field, bounds, expected)

    def boolean(self, field: str, *, default: bool) -> bool:
        value = self._raw(field)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
            return value.strip().lower() == "true"
        raise self._invalid(field, value, "true or false")


class SlackAuditLogsHook(BaseHook):
    """Build :class:`AsyncAuditLogsClient` instances from a ``slack_audit`` connection.

    The connection's password is an org owner's user token (``xoxp-…``) with the ``auditlogs:read``
    scope; its extra may set ``base_url``, ``timeout``, ``proxy``, ``max_retry_wait`` (the one
    budget of seconds a request may spend waiting in all: 429s, 5xx, dropped connections, garbled
    pages and rate pacing), ``requests_per_minute`` and ``allow_insecure_http``, each checked
    against its range when the connection is read.

    :param slack_audit_conn_id: the connection to read.
    """

    conn_name_attr = "slack_audit_conn_id"
    default_conn_name = "slack_audit_default"
    conn_type = "slack_audit"
    hook_name = "Slack Audit Logs"

    def __init__(self, slack_audit_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.slack_audit_conn_id = slack_audit_conn_id
        self._secrets: list[str] = []

    async def get_async_client(self, priority: Priority = "live") -> AsyncAuditLogsClient:
        """A client built with Airflow's async connection API: safe on a triggerer's event loop.

        common-compat picks the right path per Airflow line (``aget_connection`` where it masks
        asynchronously, else the synchronous lookup in a thread), so the loop never blocks.
        ``priority``: ``live`` or ``backfill`` (see :func:`~.client.ratelimit.infer_priority`).
        """
        conn = await get_async_connection(self.slack_audit_conn_id, hook=self)
        token = self._token(conn)
        await amask_secret(token)
        options = ClientOptions.from_extra(await get_async_extra_dejson(conn), conn.conn_id)
        for secret in _proxy_secrets(options):
            await amask_secret(secret)
        return self._build_client(token, options, priority)

    def get_client(self, priority: Priority = "live") -> AsyncAuditLogsClient:
        """A client built with the synchronous connection API, for worker code outside an event loop."""
        conn = self.get_connection(self.slack_audit_conn_id)
        token = self._token(conn)
        mask_secret(token)
        options = ClientOptions.from_extra(conn.extra_dejson, conn.conn_id)
        for secret in _proxy_secrets(options):
            mask_secret(secret)
        return self._build_client(token, options, priority)

    def get_conn(self) -> AsyncAuditLogsClient:
        """Airflow's generic accessor; the same as :meth:`get_client`."""
        return self.get_client()

    def test_connection(self) -> tuple[bool, str]:
        """Make one authenticated request (``logs?limit=1``) and report Slack's verdict.

        Airflow calls this from the connection form's Test button, in a worker thread of the API
        server, so running a private event loop here is safe.
        """
        try:
            client = self.get_client()
            asyncio.run(client.logs(limit=1)).validate()
        except SlackAuditLogsApiError as exc:
            reason = f"{exc.error or exc.status_code}: {hint(exc.error) or exc.message}"
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
        else:
            return True, "Authenticated: the token can read the org's audit logs."
        # The result shows in the UI: the token and a proxy's password are taken out.
        return False, redact_text(reason, self._secrets)

    def _token(self, conn: Connection) -> str:
        token = conn.password
        if not token or not token.strip():
            raise SlackAuditLogsConfigError(
                f"Connection {conn.conn_id!r} has no password: set it to an org owner's user token "
                "(xoxp-…) with the auditlogs:read scope.",
                field="password",
            )
        self._secrets = [str(token.strip())]
        return str(token.strip())

    def _build_client(self, token: str, options: ClientOptions, priority: Priority) -> AsyncAuditLogsClient:
        self._secrets = [token, *_proxy_secrets(options)]
        return AsyncAuditLogsClient(
            token,
            timeout=options.timeout,
            proxy=options.proxy,
            base_url=options.base_url,
            retry_handlers=default_retry_handlers(max_wait_seconds=options.max_retry_wait),
            requests_per_minute=options.requests_per_minute,
            allow_insecure_http=options.allow_insecure_http,
            max_retry_wait=options.max_retry_wait,
            priority=priority,
        )

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The form's hidden fields, labels and placeholders, from the one declaration of the form."""
        behaviour = CONNECTION_UI_FIELD_BEHAVIOUR
        return {
            "hidden_fields": list(behaviour["hidden-fields"]),
            "relabeling": dict(behaviour["relabeling"]),
            "placeholders": dict(behaviour["placeholders"]),
        }

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The extra fields as WTForms widgets, for the UIs that ask the hook (Airflow before 3.2).

        Newer UIs render the same declaration from ``get_provider_info()``. The imports are local:
        only the UIs that call this bring FAB and WTForms.
        """
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import BooleanField, StringField

        widgets: dict[str, Any] = {}
        for name, field in CONNECTION_FIELDS.items():
            label = lazy_gettext(field["label"])
            description = field.get("description", "")
            if "boolean" in field["schema"]["type"]:
                widgets[name] = BooleanField(
                    label, description=description, default=field["schema"].get("default", False)
                )
            else:
                # Numbers travel as text too: the older form's IntegerField rejects "0.5" and the hook
                # parses both forms anyway.
                widgets[name] = StringField(label, description=description, widget=BS3TextFieldWidget())
        return widgets


def _proxy_secrets(options: ClientOptions) -> list[str]:
    """The password of the proxy URL, if it has one (masked like the token), as written in the URL
    and percent-decoded (as it is sent, and as the client scrubs it from errors)."""
    if not options.proxy:
        return []
    forms = (urlsplit(options.proxy).password, url_password(options.proxy))
    return list(dict.fromkeys(form for form in forms if form))
