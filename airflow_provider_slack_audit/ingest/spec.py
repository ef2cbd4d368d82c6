"""What a run asks for (:class:`IngestSpec`), what it reports (:class:`IngestSummary`), and every check
of its arguments, made before any request and before the task defers.

The operator and :func:`~airflow_provider_slack_audit.ingest.pipeline.ingest_window` both call these
checks, so a task and a direct call refuse the same inputs with the same words:

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
* ``check_destination_fits`` then checks the spec against what is landed at the destination: one
  destination, one truth.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_slack_audit.client.async_client import MAX_LIMIT
from airflow_provider_slack_audit.client.query import MAX_ACTIONS, action_names
from airflow_provider_slack_audit.client.ratelimit import Priority, infer_priority
from airflow_provider_slack_audit.ingest.landing.plan import DestinationLayout

from .landing import Landing
from .landing.layout import COMPRESSIONS, Compression
from .retention import validate_retention
from .stores import check_store
from .windows import Interval, Window

__all__ = [
    "MAX_ACTIONS",
    "MAX_FUTURE",
    "IngestSpec",
    "IngestSummary",
    "check_destination_fits",
    "check_silence_settings",
    "check_window_bounds",
    "normalize_actions",
    "parse_destination_url",
    "storage_path_url",
]

MAX_FUTURE = timedelta(days=1)
"""How far past now a window may end: enough for a run ahead of its data, not for a typo in the year."""

# A window of a million one-second intervals is a typo, and would hold a million markers in memory.
MAX_INTERVALS = 100_000
# Each interval is one file; a longer one is a typo (and near timedelta.max, an overflow later).
MAX_INTERVAL = timedelta(days=366)
# Events reach the API within minutes; a longer lag parks the task for no benefit.
MAX_SETTLE_LAG = timedelta(days=1)
# The silence check's trailing median: a year of daily windows at most.
MAX_LOOKBACK = 366

_LOCAL_SCHEMES = frozenset({"file", "local"})
_UNSET_VALUES = frozenset({"none", "null"})
_DESTINATION_EXAMPLES = (
    "'s3://bucket/slack_audit', 's3://aws_conn@bucket/slack_audit' or 'file:///data/slack_audit'"
)


def normalize_actions(action: str | Iterable[str] | None) -> tuple[str, ...] | None:
    """The ``action`` filter in its one spelling (see ``client.query.action_names``):
    de-duplicated and sorted, at most :data:`MAX_ACTIONS` distinct names (what the API receives)."""
    if action is None:
        return None
    unique = tuple(sorted(set(action_names(action))))
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
    passes :func:`parse_destination_url` as the absolute URL it is.
    """
    url = str(path)
    if getattr(path, "protocol", None) == "" and url.startswith("/"):
        return f"file://{url}"
    return url


def parse_destination_url(url: object) -> str:
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


def check_window_bounds(window: Window, now: datetime | None = None) -> None:
    """Refuse a window with no whole second in it, or one ending more than a day after ``now``."""
    if window.is_empty:
        first_second = datetime.fromtimestamp(window.oldest, timezone.utc)
        raise ValueError(
            f"the window {window.span} holds no whole second, the "
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


def check_silence_settings(fraction: object, lookback: object) -> None:
    """Refuse a silence setting of the monitor (see ``ingest.monitor``), naming it."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
        raise ValueError(
            f"silence_fraction must be a number between 0 and 1, got {fraction!r}: a window with fewer "
            "events than this share of the trailing median is flagged (0.5 = half; 0 = only empty windows)"
        )
    if isinstance(lookback, bool) or not isinstance(lookback, int) or not 1 <= lookback <= MAX_LOOKBACK:
        raise ValueError(
            f"silence_lookback must be an int between 1 and {MAX_LOOKBACK}, got {lookback!r}: "
            "how many earlier windows the trailing median is taken over (e.g. 7)"
        )


@dataclass(frozen=True)
class IngestSpec:
    """Everything an ingest needs except the token: JSON-serializable, so triggers can carry it."""

    window: Window
    interval: timedelta = timedelta(hours=1)
    destination: str = ""
    destination_conn_id: str | None = None
    action: tuple[str, ...] | None = None
    actor: str | None = None
    entity: str | None = None
    compression: Compression = "gzip"
    settle_lag: timedelta = timedelta(minutes=5)
    limit: int = MAX_LIMIT
    overwrite: bool = False
    # A rewrite replaces an interval only when the new read holds every id the old file held;
    # this replaces it even when ids would vanish (evidence destroyed on purpose).
    replace_destructively: bool = False
    # Re-read committed intervals and rewrite only those whose id set grew (late events), keeping
    # every id the old file held; unchanged intervals are not touched.
    reconcile: bool = False
    # Silence and volume, drift's daily API snapshot (see ingest.monitor).
    silence_fraction: float = 0.5
    silence_lookback: int = 7
    fail_on_silence: bool = False
    api_snapshot: bool = False
    # Write-once retention: evidence files written under S3 Object Lock until now + retention.
    retention: timedelta | None = None

    def validate(self, now: datetime | None = None) -> None:
        """Raise ValueError/TypeError naming the bad argument and the fix; no request is made first."""
        if not isinstance(self.window, Window):
            raise TypeError(f"window must be a Window, got {type(self.window).__name__}")
        check_window_bounds(self.window, now)
        if not isinstance(self.interval, timedelta):
            raise TypeError(f"interval must be a timedelta such as timedelta(hours=1), got {self.interval!r}")
        if self.interval < timedelta(seconds=1):
            raise ValueError(
                f"interval {self.interval} is shorter than one second, the API's resolution; "
                "pass e.g. timedelta(hours=1)"
            )
        if self.interval > MAX_INTERVAL:
            raise ValueError(
                f"interval {self.interval} is longer than {MAX_INTERVAL.days} days; each interval is one "
                "file, so pass e.g. timedelta(hours=1) or timedelta(days=1)"
            )
        count = -(-(self.window.end - self.window.start) // self.interval)
        if count > MAX_INTERVALS:
            raise ValueError(
                f"the window {self.window.start.isoformat()} to {self.window.end.isoformat()} makes {count} "
                f"intervals of {self.interval}; use a longer interval (at most {MAX_INTERVALS} per window)"
            )
        parse_destination_url(self.destination)
        normalize_actions(self.action)
        for name in ("actor", "entity", "destination_conn_id"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise TypeError(f"{name} must be a non-empty string or None, got {value!r}")
        if self.compression not in COMPRESSIONS:
            raise ValueError(f"compression must be 'gzip' or None, got {self.compression!r}")
        if (
            not isinstance(self.settle_lag, timedelta)
            or not timedelta(0) <= self.settle_lag <= MAX_SETTLE_LAG
        ):
            raise ValueError(
                f"settle_lag must be a timedelta between 0 and {MAX_SETTLE_LAG}, got {self.settle_lag!r}; "
                "events reach the API within minutes, so the default of 5 minutes is usually right"
            )
        if (
            isinstance(self.limit, bool)
            or not isinstance(self.limit, int)
            or not 1 <= self.limit <= MAX_LIMIT
        ):
            raise ValueError(f"limit must be an int between 1 and {MAX_LIMIT}, got {self.limit!r}")
        for name in ("overwrite", "replace_destructively", "reconcile", "fail_on_silence", "api_snapshot"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.replace_destructively and not self.overwrite:
            raise ValueError(
                "replace_destructively=True only applies to a rewrite: pass overwrite=True with it "
                "(committed intervals are otherwise skipped, never replaced)"
            )
        if self.reconcile and self.overwrite:
            raise ValueError(
                "reconcile=True and overwrite=True are two rerun modes: reconcile adds late events and "
                "keeps every landed id, overwrite rewrites every interval; pass one of them"
            )
        check_silence_settings(self.silence_fraction, self.silence_lookback)
        validate_retention(self.retention, self.destination)

    def priority(self, now: datetime) -> Priority:
        """``backfill`` for a window that ended long ago, else ``live``: the shared limiter serves
        live requests first, so a long backfill never delays today's landing by more than a slot."""
        return infer_priority(self.window.end, now)

    def landing(self) -> Landing:
        return Landing(
            self.destination,
            compression=self.compression,
            conn_id=self.destination_conn_id,
            retention=self.retention,
        )

    @property
    def query(self) -> dict[str, Any]:
        """The filters, as recorded in markers and manifests (a marker of other filters is not ours)."""
        actions = normalize_actions(self.action)  # one spelling, so a reordered retry still skips
        return {
            "action": list(actions) if actions is not None else None,
            "actor": self.actor,
            "entity": self.entity,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "window": {"start": self.window.start.isoformat(), "end": self.window.end.isoformat()},
            "interval_seconds": self.interval.total_seconds(),
            "destination": self.destination,
            **self.query,
            "compression": self.compression,
            "settle_lag_seconds": self.settle_lag.total_seconds(),
            **{name: getattr(self, name) for name in _PLAIN_FIELDS},
            "retention_seconds": self.retention.total_seconds() if self.retention is not None else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> IngestSpec:
        """The spec :meth:`to_json` wrote; a key an older version did not write takes its default."""
        action, retention = data.get("action"), data.get("retention_seconds")
        return cls(
            window=Window.from_json(data["window"]),
            interval=timedelta(seconds=data["interval_seconds"]),
            destination=data["destination"],
            action=tuple(action) if action is not None else None,
            compression=data.get("compression"),
            settle_lag=timedelta(seconds=data.get("settle_lag_seconds", 300)),
            retention=timedelta(seconds=retention) if retention is not None else None,
            **{name: data[name] for name in _PLAIN_FIELDS if name in data},
        )


# The fields that travel in JSON as they are.
_PLAIN_FIELDS = (
    "destination_conn_id",
    "actor",
    "entity",
    "limit",
    "overwrite",
    "replace_destructively",
    "reconcile",
    "silence_fraction",
    "silence_lookback",
    "fail_on_silence",
    "api_snapshot",
)


@dataclass
class IngestSummary:
    """What a run landed: small, secret-free, JSON-serializable (it becomes the task's XCom)."""

    window: dict[str, Any]
    manifest: str = ""
    intervals_landed: int = 0
    intervals_skipped: int = 0
    events: int = 0  # events in the window's files, landed now or before
    events_landed: int = 0  # events fetched by this run
    pages: int = 0
    requests: int = 0
    rate_limited: int = 0  # 429 answers among the requests
    drained: bool = True  # every query this run read ended on an empty (or absent) next_cursor
    bytes: int = 0
    duplicates: int = 0
    out_of_range: int = 0
    cursor_restarts: int = 0
    queries: int = 0  # paginated logs queries: one per contiguous run of uncommitted intervals
    seconds: float = 0.0
    wait_seconds: float = 0.0
    drift: dict[str, Any] | None = None  # {new_actions, new_keys, new_listed_actions, baseline}
    silence: dict[str, Any] | None = None  # {flagged, reason, events, expected, ...}
    # reconcile=True: intervals rewritten with late events, the late events, and ids the API no
    # longer returns that the landed files keep.
    intervals_reconciled: int = 0
    late_events: int = 0
    vanished_kept: int = 0
    # reconcile=True or overwrite=True: landed ids the API now serves in another interval (they stay
    # where they landed first), and landed ids whose body Slack changed.
    moved: int = 0
    bodies_changed: int = 0
    # The destination's ledger head after this window's manifest: {seq, sha256}, an external anchor.
    ledger: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in self.__dict__.items()}


def check_destination_fits(
    spec: IngestSpec, *, record: bool = True, landing: Landing | None = None
) -> list[Interval]:
    """The intervals ``spec`` lands, once its layout and window are checked against the destination.

    Blocking storage I/O (the descriptor, a listing of the partitions the window touches), made
    before any request; the operator calls it before deferring too (``record=False``). Raises
    :class:`DestinationConflictError` when the run would put events in a second final file. With
    ``record``, a destination without a descriptor gets one (see ``landing.descriptor``).
    """
    landing = landing if landing is not None else spec.landing()
    layout = DestinationLayout(grid=spec.interval, compression=spec.compression, query=spec.query)
    return landing.prepare(spec.window, layout, record=record)
