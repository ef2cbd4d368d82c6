"""How a request reaches the API: its User-Agent, the proxy, no redirect, no secret in clear or in logs.

The token is never sent over plain http to a host other than loopback, and a plain-http proxy on
another host is refused when its credentials (or a plain-http request) would travel through it.
``NO_PROXY`` applies to proxies taken from the environment, as with aiohttp's ``trust_env``.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import platform
import sys
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit, urlunsplit
from urllib.request import proxy_bypass

from aiohttp import BasicAuth

from .errors import SlackAuditLogsApiError, SlackAuditLogsConfigError, hint
from .redaction import redact_url
from .response import AuditLogsResponse, request_path


def get_user_agent(prefix: str | None = None, suffix: str | None = None) -> str:
    """``[prefix ]Python/X.Y.Z airflow-provider-slack-audit/V System/Release[ suffix]``."""
    from airflow_provider_slack_audit import __version__

    python = f"Python/{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    system = f"{platform.system()}/{platform.release()}"
    return " ".join(
        filter(None, (prefix, python, f"airflow-provider-slack-audit/{__version__}", system, suffix))
    )


def load_http_proxy_from_env(logger: logging.Logger) -> str | None:
    """The proxy from HTTPS_PROXY, https_proxy, HTTP_PROXY or http_proxy; an empty value unsets it."""
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        value = os.environ.get(name)
        if value is not None:
            if not value.strip():
                return None
            logger.debug("Using the proxy from the %s environment variable", name)
            return value
    return None


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_transport(url: str, *, allow_insecure_http: bool) -> None:
    """``url`` is https, or plain http to loopback (or the caller opted in)."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return
    if parts.scheme != "http":
        raise ValueError(f"base_url must be an https:// URL, got scheme {parts.scheme!r} in {url!r}")
    if not allow_insecure_http and not is_loopback_host(parts.hostname):
        raise ValueError(
            f"refusing to send the token over plain http to {parts.hostname!r}: use https, or pass "
            "allow_insecure_http=True if you really mean it (plain http is allowed for loopback hosts)"
        )


def check_proxy(proxy: str | None, *, base_url: str, allow_insecure_http: bool) -> None:
    """The proxy is a URL, and no secret crosses the network in clear on the way to it."""
    if not proxy:
        return
    shown = redact_url(proxy)
    try:
        parts = urlsplit(proxy)
        host = parts.hostname
    except ValueError:
        raise SlackAuditLogsConfigError(f"proxy is not a URL: {shown!r}", field="proxy") from None
    if parts.scheme not in ("http", "https") or not host:
        raise SlackAuditLogsConfigError(
            f"proxy must be an http:// or https:// URL with a host, got {shown!r}", field="proxy"
        )
    if parts.scheme != "http" or allow_insecure_http or is_loopback_host(host):
        return
    # Through a plain-http proxy an https request travels in a CONNECT tunnel (TLS end to end),
    # so the token stays encrypted; what would cross in clear is the proxy's own credentials,
    # or the whole request when the API URL itself is plain http.
    carries = []
    if parts.username is not None or parts.password is not None:
        carries.append("the proxy's credentials")
    if urlsplit(base_url).scheme == "http":
        carries.append("the token (the base_url is plain http)")
    if carries:
        raise SlackAuditLogsConfigError(
            f"refusing plain http to the proxy {shown}: {' and '.join(carries)} would cross the "
            "network in clear. Use an https:// proxy, or pass allow_insecure_http=True if you "
            "really mean it (plain http is allowed for loopback proxies)",
            field="proxy",
        )


def proxy_for(url: str, proxy: str | None, *, from_env: bool) -> tuple[str | None, BasicAuth | None]:
    """The proxy for ``url`` without its credentials, and those as basic auth.

    NO_PROXY/no_proxy exempts hosts from a proxy taken from the environment (``from_env``), by
    urllib's rules, the ones aiohttp's trust_env uses.
    """
    if not proxy:
        return None, None
    target = urlsplit(url)
    host = target.hostname
    if from_env and host and proxy_bypass(host if target.port is None else f"{host}:{target.port}"):
        return None, None
    parts = urlsplit(proxy)
    if parts.username is None and parts.password is None:
        return proxy, None
    netloc = parts.netloc.rpartition("@")[2]
    bare = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return bare, BasicAuth(unquote(parts.username or ""), unquote(parts.password or ""))


def url_password(url: str) -> str | None:
    """The password a URL carries (a proxy's), decoded, or ``None``."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


def redirect_error(response: AuditLogsResponse) -> SlackAuditLogsApiError:
    """The permanent error for a 3xx: the API never redirects, so a redirect is never followed."""
    location = str(response.headers.get("Location", "")).split("?", 1)[0]
    target = f" to {redact_url(location)!r}" if location else ""
    return SlackAuditLogsApiError(
        f"Audit Logs API request to {request_path(response.url)} was answered with HTTP "
        f"{response.status_code}, a redirect{target}; it was not followed: {hint('redirected')}",
        response,
        error="redirected",
        kind="permanent",
    )


def log_request(
    logger: logging.Logger, verb: str, url: str, params: Mapping[str, str], headers: Mapping[str, str]
) -> None:
    """A DEBUG line per request; the Authorization header is never shown."""
    if logger.isEnabledFor(logging.DEBUG):
        shown = {k: "(redacted)" if k.lower() == "authorization" else v for k, v in headers.items()}
        logger.debug("Sending %s %s params=%s headers=%s", verb, url, dict(params), shown)


def log_response(logger: logging.Logger, response: AuditLogsResponse) -> None:
    """A DEBUG line per response: bodies hold audit data (emails, IPs), so only error bodies in full."""
    if logger.isEnabledFor(logging.DEBUG):
        body = response.raw_body if not response.ok else f"({len(response.content)} bytes)"
        logger.debug("Received HTTP %s from %s: %s", response.status_code, request_path(response.url), body)
