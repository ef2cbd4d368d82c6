"""Checks of what a run asks for, made before any request and before the task defers.

Pure functions, no Airflow: the operator and :class:`~airflow_provider_slack_audit.ingest.pipeline.IngestSpec`
call them, so a task and a direct ``ingest_window`` refuse the same inputs with the same words.

* Filters are one query however they are spelled: ``["b", "a", "a"]``, ``("a", "b")``, ``{"b", "a"}``
  and ``"a, b"`` all normalize to ``("a", "b")``. Markers and manifests record that form, so a retry
  that spells the same filter differently skips the intervals already committed.
* A destination is an absolute URL with a scheme. A value that renders to ``'None'``, an empty string,
  a relative path or ``file://relative/x`` would land in whatever directory the worker or triggerer
  happens to run in.
* A destination is on a store that keeps the landing contract (``ingest.stores``): local files, S3,
  GCS or Azure Blob Storage; any other store is refused, naming the supported ones.
* A window must hold a whole second (the API's resolution) and end at most a day from now: a window
  years ahead is a typo that would park the task, request-free, until its timeout.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_slack_audit.ingest.stores import check_store
from airflow_provider_slack_audit.ingest.windows import Window

__all__ = [
    "MAX_ACTIONS",
    "MAX_FUTURE",
    "check_destination",
    "check_window",
    "normalize_actions",
    "storage_path_url",
]

MAX_ACTIONS = 30
"""The API's limit on the names of one ``action`` filter."""

MAX_FUTURE = timedelta(days=1)
"""How far past now a window may end: enough for a run ahead of its data, not for a typo in the year."""

_LOCAL_SCHEMES = frozenset({"file", "local"})
_UNSET_VALUES = frozenset({"none", "null"})
_DESTINATION_EXAMPLES = (
    "'s3://bucket/slack_audit', 's3://aws_conn@bucket/slack_audit' or 'file:///data/slack_audit'"
)


def normalize_actions(action: str | Iterable[str] | None) -> tuple[str, ...] | None:
    """The ``action`` filter in its one spelling: names stripped, de-duplicated and sorted.

    A string is a comma-separated list (``"user_login, user_logout"``); any other iterable holds one
    name per item, so a comma inside an item is refused: the API would read it as two names, past
    the 30-name check. At most :data:`MAX_ACTIONS` distinct names (what the API receives).
    """
    if action is None:
        return None
    if isinstance(action, str):
        names = [name.strip() for name in action.split(",")]
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
            names.append(name.strip())
    else:
        raise TypeError(f"action must be a name or a list of names, got {type(action).__name__} {action!r}")
    if not names or any(not name for name in names):
        raise ValueError(
            f"action {action!r} has an empty name; give names like 'user_login', or leave action unset "
            f"to land every action"
        )
    unique = tuple(sorted(set(names)))
    if len(unique) > MAX_ACTIONS:
        raise ValueError(
            f"action lists {len(unique)} distinct names but the API takes at most {MAX_ACTIONS}: split the "
            f"names across several tasks with their own destinations, or leave action unset and filter "
            f"after landing"
        )
    return unique


def storage_path_url(path: Any) -> str:
    """The URL of an ``ObjectStoragePath``, keeping its connection id (``s3://conn@bucket/key``).

    A local path made without a scheme prints as a bare path (``/data``); it gets ``file://`` so it
    passes :func:`check_destination` as the absolute URL it is.
    """
    url = str(path)
    if getattr(path, "protocol", None) == "" and url.startswith("/"):
        return f"file://{url}"
    return url


def check_destination(url: object) -> str:
    """``url`` stripped, if it is an absolute URL on a supported store; else an error saying what to pass."""
    if not isinstance(url, str):
        raise TypeError(
            f"destination must be a URL string such as {_DESTINATION_EXAMPLES}, or an ObjectStoragePath; "
            f"got {type(url).__name__} {url!r}"
        )
    text = url.strip()
    if not text:
        raise ValueError(f"destination is empty: pass a URL such as {_DESTINATION_EXAMPLES}")
    if text.lower() in _UNSET_VALUES:
        raise ValueError(
            f"destination is {text!r}: a template or variable rendered to nothing (an unset Variable or "
            f"param?); pass a URL such as {_DESTINATION_EXAMPLES}"
        )
    scheme, separator, rest = text.partition("://")
    if not separator or not scheme.isascii() or not scheme.replace("+", "").replace("-", "").isalnum():
        absolute = text.startswith("/")
        hint = f"file://{text}" if absolute else f"file:///<absolute directory>/{text.lstrip('./')}"
        kind = "a path without a scheme" if absolute else "a relative path"
        raise ValueError(
            f"destination {text!r} is {kind}, which would land relative to the worker's or triggerer's "
            f"working directory; pass an absolute URL with a scheme, e.g. {hint!r} or 's3://bucket/prefix'"
        )
    parts = urlsplit(text)
    if scheme.lower() in _LOCAL_SCHEMES:
        # ObjectStoragePath prints a local path with a connection id as file://conn@/abs/path.
        if parts.netloc.rpartition("@")[2] or not parts.path.startswith("/"):
            raise ValueError(
                f"destination {text!r} is a relative path, which would land in the worker's or triggerer's "
                f"working directory; an absolute local URL has three slashes: pass "
                f"'{scheme}:///{rest.lstrip('/')}' for the directory /{rest.lstrip('/')}, or an object "
                f"store URL such as 's3://bucket/prefix'"
            )
    elif not rest.strip("/"):
        raise ValueError(
            f"destination {text!r} names no bucket or path; pass e.g. '{scheme}://bucket/slack_audit'"
        )
    check_store(scheme, text)
    return text


def check_window(window: Window, now: datetime | None = None) -> None:
    """Refuse a window with no whole second in it, or one ending more than a day after ``now``."""
    if window.is_empty:
        first_second = datetime.fromtimestamp(window.oldest, timezone.utc)
        raise ValueError(
            f"the window [{window.start.isoformat()}, {window.end.isoformat()}) holds no whole second, the "
            f"API's resolution, so it would land nothing: its first whole second is "
            f"{first_second.isoformat()}, and latest is exclusive; pass a latest after "
            f"{first_second.isoformat()}"
        )
    current = now if now is not None else datetime.now(timezone.utc)
    bound = current + MAX_FUTURE
    if window.end > bound:
        raise ValueError(
            f"latest {window.end.isoformat()} is more than a day in the future: latest may be at most "
            f"{bound.isoformat()} (now plus {MAX_FUTURE}); a typo in the year? A window ahead of the data "
            f"would only wait, so pass a latest up to that bound and land later windows in later runs"
        )
