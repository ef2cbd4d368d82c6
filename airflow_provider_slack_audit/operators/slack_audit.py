"""The operator: land every audit event of a window (by default the run's data interval) exactly once.

``execute`` resolves and validates the window, then either defers to
:class:`~airflow_provider_slack_audit.triggers.slack_audit.SlackAuditLogsTrigger` (the default) or runs
the same ingest in the worker. Both end in :meth:`SlackAuditLogsOperator.execute_complete`, which turns
the outcome into a small XCom summary or the exception that tells Airflow whether to retry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from airflow_provider_slack_audit._lineage import operator_lineage
from airflow_provider_slack_audit.hooks.slack_audit import ClientOptions, SlackAuditLogsHook
from airflow_provider_slack_audit.ingest.outcome import describe_failure, is_retryable, is_success, run_ingest
from airflow_provider_slack_audit.ingest.pipeline import IngestSpec, check_destination_fits
from airflow_provider_slack_audit.ingest.validation import (
    check_destination,
    normalize_actions,
    storage_path_url,
)
from airflow_provider_slack_audit.ingest.windows import Window, parse_datetime
from airflow_provider_slack_audit.triggers.slack_audit import SlackAuditLogsTrigger
from airflow_provider_slack_audit.version_compat import (
    AirflowException,
    AirflowFailException,
    Asset,
    BaseOperator,
    Context,
    ObjectStoragePath,
    coerce_to_core_timetable,
    conf,
    redact,
    storage_conn_id,
)

_EMPTY_DATA_INTERVAL_FIX = (
    "This happens with a cron string schedule such as '@daily', which Airflow 3 runs with "
    "CronTriggerTimetable. Schedule the DAG with a data-interval timetable, e.g. "
    "schedule=CronDataIntervalTimetable('0 0 * * *', timezone='UTC') or "
    "DeltaDataIntervalTimetable(timedelta(days=1)), or pass explicit oldest/latest."
)


def default_deferrable() -> bool:
    """``[operators] default_deferrable``, read when an operator is built, as the Apache providers do.

    Read at construction (not at import), so airflow.cfg, the environment and a test's
    ``conf_vars`` all apply. Airflow ships the setting as false; ``fallback=True`` only applies where
    the option is missing altogether.
    """
    return bool(conf.getboolean("operators", "default_deferrable", fallback=True))


class SlackAuditLogsOperator(BaseOperator):
    """Land the Slack audit events of ``[oldest, latest)`` under ``destination``, one file per interval.

    Each interval is committed on its own, so a retry, a rerun or a restarted triggerer skips what is
    already landed; with ``reconcile=True`` a rerun re-reads the window and adds the events Slack
    recorded late (rewriting only the intervals that grew); with ``overwrite=True`` it rewrites every
    interval.
    The task returns a small summary (window, intervals landed and skipped, events, pages, bytes,
    manifest path) and emits an asset event for ``destination`` carrying the manifest and window.

    :param destination: base URL (or ``ObjectStoragePath``) to land under, e.g.
        ``s3://aws_default@bucket/slack_audit`` or ``file:///data/slack_audit``. (templated)
    :param slack_audit_conn_id: the ``slack_audit`` connection holding the org owner token.
    :param oldest: start of the window, inclusive: an aware datetime or an ISO-8601 string.
        Default: the run's ``data_interval_start``. (templated)
    :param latest: end of the window, exclusive. Default: the run's ``data_interval_end``. (templated)
    :param destination_conn_id: connection for the destination storage, when the URL names none.
    :param interval: length of each landed (and committed) piece of the window.
    :param action: an action name or a list of up to 30 names to keep; default all.
    :param actor: keep only events of this user id.
    :param entity: keep only events on this entity id.
    :param settle_lag: how long after an interval's end to wait before reading it, so events Slack
        records late are not missed.
    :param compression: ``"gzip"`` (default) or ``None`` for plain ``.jsonl``.
    :param overwrite: rewrite committed intervals instead of skipping them; ``True``/``False`` or the
        rendered strings ``"True"``/``"False"``. (templated)
    :param reconcile: re-read committed intervals (one query per window) and rewrite only those whose
        id set grew, keeping every id their files held; the others are not touched. The manifest
        records each rewritten interval's late events and their lateness. ``True``/``False`` or the
        rendered strings. (templated)
    :param replace_destructively: with ``overwrite``, replace an interval even when the new read lacks
        ids its landed file holds (events lost from the API: retention, an incident, a narrower token
        scope). Without it such a rewrite fails permanently and the landed file and marker stay.
    :param silence_fraction: flag a window with fewer events than this share of the trailing median
        of earlier windows under the destination (an empty window is always flagged); default 0.5.
    :param silence_lookback: how many earlier windows the median is taken over; default 7.
    :param fail_on_silence: fail the task (without retrying) when the window is flagged as silent; the
        landed files stay committed.
    :param api_snapshot: land the ``actions`` and ``schemas`` endpoints once a day under
        ``<destination>/_registry/`` (2 more requests a day); default true.
    :param retention: write-once retention, e.g. ``timedelta(days=2557)``: data files, commit markers,
        manifests and ledger entries are written under S3 Object Lock (COMPLIANCE mode) until their
        write time plus ``retention``. Needs an ``s3://`` destination whose bucket has Object Lock
        enabled; refused before any request otherwise. Default: none.
    :param deferrable: wait on the triggerer instead of holding a worker slot. Default: the
        deployment's ``[operators] default_deferrable`` (see :func:`default_deferrable`).
    """

    template_fields: Sequence[str] = ("oldest", "latest", "destination", "overwrite", "reconcile")
    ui_color = "#ecb22e"

    def __init__(
        self,
        *,
        destination: str | ObjectStoragePath,
        slack_audit_conn_id: str = SlackAuditLogsHook.default_conn_name,
        oldest: datetime | str | None = None,
        latest: datetime | str | None = None,
        destination_conn_id: str | None = None,
        interval: timedelta = timedelta(hours=1),
        action: str | Sequence[str] | None = None,
        actor: str | None = None,
        entity: str | None = None,
        settle_lag: timedelta = timedelta(minutes=5),
        compression: Literal["gzip"] | None = "gzip",
        overwrite: bool | str = False,
        replace_destructively: bool = False,
        reconcile: bool | str = False,
        silence_fraction: float = 0.5,
        silence_lookback: int = 7,
        fail_on_silence: bool = False,
        api_snapshot: bool = True,
        retention: timedelta | None = None,
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        if "outlets" not in kwargs:
            kwargs["outlets"] = _default_outlets(destination)
        super().__init__(**kwargs)
        self.destination = destination
        self.slack_audit_conn_id = slack_audit_conn_id
        self.oldest = oldest
        self.latest = latest
        self.destination_conn_id = destination_conn_id
        self.interval = interval
        self.action = action
        self.actor = actor
        self.entity = entity
        self.settle_lag = settle_lag
        self.compression = compression
        self.overwrite = overwrite
        self.replace_destructively = replace_destructively
        self.reconcile = reconcile
        self.silence_fraction, self.silence_lookback = silence_fraction, silence_lookback
        self.fail_on_silence, self.api_snapshot = fail_on_silence, api_snapshot
        self.retention = retention
        self.deferrable = default_deferrable() if deferrable is None else deferrable

    def execute(self, context: Context) -> dict[str, Any]:
        spec = self.build_spec(context)
        self.log.info(
            "Landing Slack audit events of [%s, %s) in %s intervals under %s",
            spec.window.start.isoformat(),
            spec.window.end.isoformat(),
            self.interval,
            spec.destination,
        )
        if self.deferrable:
            self._check_local_destination(spec)
            self.defer(
                trigger=SlackAuditLogsTrigger(
                    slack_audit_conn_id=self.slack_audit_conn_id, spec=spec.to_json()
                ),
                method_name="execute_complete",
                timeout=self.execution_timeout,
            )
        hook = SlackAuditLogsHook(slack_audit_conn_id=self.slack_audit_conn_id)
        # The sync connection API runs in a thread, never on the loop; the ingest is the very coroutine
        # the trigger runs, so both modes land, summarize and fail the same way.
        outcome = asyncio.run(
            run_ingest(
                lambda: asyncio.to_thread(hook.get_client, spec.priority(datetime.now(timezone.utc))),
                spec.to_json(),
                redact=redact,
            )
        )
        return self.execute_complete(context, outcome)

    def _check_local_destination(self, spec: IngestSpec) -> None:
        """Refuse, before deferring, a run that does not fit its local destination (one destination,
        one truth: see ``ingest.destination_check``). Cheap locally; an object store is checked by the
        trigger, before its first request, rather than from the worker."""
        if not spec.destination.startswith(("file:", "local:")):
            return
        try:
            check_destination_fits(spec, record=False)
        except (ValueError, TypeError) as exc:  # DestinationConflictError, a damaged descriptor
            raise AirflowFailException(f"Task {self.task_id!r} cannot land here: {exc}") from exc
        except Exception as exc:  # storage or connection trouble: the trigger meets it again, with its kind
            self.log.warning("Could not check the destination before deferring: %s", exc)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Return the summary of a landed window, or raise what tells Airflow whether to retry.

        ``event`` is the trigger event's payload: the ingest's outcome (``ingest.outcome``). A
        retryable failure (transient, or a cursor that kept expiring) raises ``AirflowException``
        (the task's retries apply, and the next try skips committed intervals); anything else raises
        ``AirflowFailException``, because another try would fail the same way.
        """
        if not is_success(event):
            failure = AirflowException if is_retryable(event) else AirflowFailException
            raise failure(describe_failure(event))
        summary: dict[str, Any] = event["summary"]
        self._landed_summary = summary  # for get_openlineage_facets_on_complete, in this same process
        self._record_asset_events(context, summary)
        self.log.info(
            "Landed window %s: %s intervals landed, %s skipped, %s events, %s pages, %s bytes; manifest %s",
            summary.get("window"),
            summary.get("intervals_landed"),
            summary.get("intervals_skipped"),
            summary.get("events"),
            summary.get("pages"),
            summary.get("bytes"),
            summary.get("manifest"),
        )
        raise_on_silence(summary, self.fail_on_silence)
        return summary

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: input the org's audit log, output the destination, facets from the outcome.

        Called by the OpenLineage listener after ``execute_complete``, in the process that ran it (on
        the deferred path, the resumed task), so lineage describes what the ingest did. None without
        the OpenLineage provider. See :mod:`airflow_provider_slack_audit._lineage`.
        """
        summary = getattr(self, "_landed_summary", None)
        if summary is None:
            return None
        conn = SlackAuditLogsHook.get_connection(self.slack_audit_conn_id)
        return operator_lineage(
            summary,
            base_url=ClientOptions.from_extra(conn.extra_dejson, self.slack_audit_conn_id).base_url,
            destination=self._destination()[0],
            filters={"action": normalize_actions(self.action), "actor": self.actor, "entity": self.entity},
        )

    def build_spec(self, context: Context) -> IngestSpec:
        """Resolve the rendered arguments into a validated spec, before any request is made.

        Every problem found here is a configuration error no retry can fix, so it fails the task
        without retrying.
        """
        try:
            destination, destination_conn_id = self._destination()
            spec = IngestSpec(
                window=self._window(context),
                interval=self.interval,
                destination=destination,
                destination_conn_id=destination_conn_id,
                action=normalize_actions(self.action),
                actor=self.actor,
                entity=self.entity,
                compression=self.compression,
                settle_lag=self.settle_lag,
                overwrite=_as_bool(self.overwrite, "overwrite"),
                replace_destructively=self.replace_destructively,
                reconcile=_as_bool(self.reconcile, "reconcile"),
                silence_fraction=self.silence_fraction,
                silence_lookback=self.silence_lookback,
                fail_on_silence=self.fail_on_silence,
                api_snapshot=self.api_snapshot,
                retention=self.retention,
            )
            spec.validate()
        except (ValueError, TypeError) as exc:
            raise AirflowFailException(f"Invalid arguments for task {self.task_id!r}: {exc}") from exc
        return spec

    def _window(self, context: Context) -> Window:
        """The window to land: ``oldest``/``latest`` where given, else the run's data interval.

        A blank rendered bound (e.g. ``"{{ params.oldest or '' }}"`` with the param unset) counts as not
        given. A run without a data interval (a manual run without a logical date, Airflow 3's default)
        lands the latest data interval of its DAG's timetable completed when the run was triggered.
        """
        oldest, latest = _given(self.oldest), _given(self.latest)
        start = oldest if oldest is not None else context.get("data_interval_start")
        end = latest if latest is not None else context.get("data_interval_end")
        if oldest is None or latest is None:
            _warn_if_logical_date_outside(context, start, end, self.log)
        if start is None or end is None:
            inferred = _latest_completed_interval(context)
            if inferred is None:
                raise ValueError(_NO_WINDOW_FIX.format(run=_run_label(context)))
            start = oldest if oldest is not None else inferred[0]
            end = latest if latest is not None else inferred[1]
            self.log.info(
                "The run has no data interval (a manual run without a logical date): landing the latest "
                "completed interval of the DAG's timetable, [%s, %s)",
                inferred[0].isoformat(),
                inferred[1].isoformat(),
            )
        if oldest is None and latest is None and start == end:
            raise ValueError(
                f"the run's data interval [{start}, {end}) is empty, so there is no window to land. "
                f"{_EMPTY_DATA_INTERVAL_FIX}"
            )
        return Window(parse_datetime(start, "oldest"), parse_datetime(end, "latest"))

    def _destination(self) -> tuple[str, str | None]:
        """The destination URL and its storage connection id (the argument wins over the path's)."""
        destination = self.destination
        if isinstance(destination, ObjectStoragePath):
            url = check_destination(storage_path_url(destination))
            return url, self.destination_conn_id or storage_conn_id(destination)
        return check_destination(destination), self.destination_conn_id

    def _record_asset_events(self, context: Context, summary: dict[str, Any]) -> None:
        """Attach the manifest and window to the outlet asset events, for data-aware DAGs downstream."""
        outlet_events = context.get("outlet_events")
        if outlet_events is None:
            return
        extra = {"manifest": summary.get("manifest"), "window": summary.get("window")}
        extra.update(
            {key: summary[key] for key in ("drift", "silence", "ledger") if summary.get(key) is not None}
        )
        for outlet in self.outlets:
            if isinstance(outlet, Asset):
                outlet_events[outlet].extra.update(extra)


_NO_WINDOW_FIX = (
    "{run} has no data interval (a manual run without a logical date) and its DAG's timetable has none "
    "to infer (schedule=None?), so there is no window to land: pass oldest and latest to the operator "
    "(ISO-8601 with a time zone, e.g. oldest='2026-01-04T00:00:00Z', latest='2026-01-05T00:00:00Z'; "
    'both are templated, so a DAG can take them as params: oldest="{{{{ params.oldest }}}}" and '
    '`airflow dags trigger DAG_ID --conf \'{{"oldest": "2026-01-04T00:00:00Z", '
    '"latest": "2026-01-05T00:00:00Z"}}\'`), or schedule the DAG with a data-interval timetable '
    "such as CronDataIntervalTimetable('0 0 * * *', timezone='UTC')"
)


def _given(bound: datetime | str | None) -> datetime | str | None:
    """A window bound as given, or None when not given (None, or a template that rendered blank)."""
    if isinstance(bound, str) and not bound.strip():
        return None
    return bound


def _latest_completed_interval(context: Context) -> tuple[datetime, datetime] | None:
    """The data interval of the DAG's timetable that had ended when the run was triggered, if any.

    It is what Airflow itself would give a manual run of this DAG triggered at that time with a logical
    date (``infer_manual_data_interval``). None when the timetable has no interval to offer: a
    ``schedule=None`` DAG's is empty.
    """
    dag, dag_run = context.get("dag"), context.get("dag_run")
    run_after = getattr(dag_run, "run_after", None)
    timetable = getattr(dag, "timetable", None)
    if run_after is None or timetable is None:
        return None
    infer = getattr(coerce_to_core_timetable(timetable), "infer_manual_data_interval", None)
    if infer is None:
        return None
    interval = infer(run_after=run_after)
    if interval is None or interval.start >= interval.end:
        return None
    return interval.start, interval.end


def _warn_if_logical_date_outside(
    context: Context, start: datetime | str | None, end: datetime | str | None, log: Any
) -> None:
    """Warn when a manual run's logical date lies outside the data interval it is about to land.

    Airflow 3's ``airflow dags trigger --logical-date`` derives a manual run's data interval from the
    time it was triggered, not from the logical date, so the date a user typed says nothing about the
    day that lands. Explicit oldest/latest are the way to choose a window.
    """
    logical_date = context.get("logical_date")
    if logical_date is None or not isinstance(start, datetime) or not isinstance(end, datetime):
        return
    # A logical date up to one interval past the end is a manual run's usual "now" (`airflow dags test`).
    if start <= logical_date <= end + (end - start):
        return
    log.warning(
        "This run's logical date %s lies outside its data interval [%s, %s): Airflow derived the data "
        "interval of this manual run from the time it was triggered. Landing [%s, %s). To land a chosen "
        "window, pass oldest and latest (the daily example DAG takes them as params).",
        logical_date.isoformat(),
        start.isoformat(),
        end.isoformat(),
        start.isoformat(),
        end.isoformat(),
    )


def _run_label(context: Context) -> str:
    run_id = getattr(context.get("dag_run"), "run_id", None)
    return f"run {run_id!r}" if run_id else "this run"


def raise_on_silence(summary: dict[str, Any], fail_on_silence: bool) -> None:
    """With ``fail_on_silence``, a window flagged as silent fails the task (its files stay committed)."""
    silence = summary.get("silence") or {}
    if fail_on_silence and silence.get("flagged"):
        raise AirflowFailException(
            f"Window {summary.get('window')} is silent ({silence.get('reason')}): {silence.get('message')}. "
            "Its files are landed and committed; fail_on_silence=True turned the warning into a failure. "
            "Check the token's scopes and the org's activity, then clear the task (or set "
            "fail_on_silence=False)."
        )


def _default_outlets(destination: str | ObjectStoragePath) -> list[Asset]:
    """The destination as an Asset, when it is known when the DAG is parsed (not a template).

    A destination that is no valid URL gets no asset here: ``execute`` refuses it with the fix.
    """
    url = storage_path_url(destination) if isinstance(destination, ObjectStoragePath) else str(destination)
    if not url.strip() or "{{" in url or "{%" in url:
        return []
    try:
        return [Asset(_asset_uri(check_destination(url)))]
    except (TypeError, ValueError):
        return []


def _asset_uri(url: str) -> str:
    """The destination URL without a connection id: the data's identity does not depend on who reads it."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _as_bool(value: bool | str, name: str) -> bool:
    """A flag given as a bool or as a rendered template ("True", "false", ...)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    raise ValueError(f"{name} must be True or False (or the string 'True'/'False'), got {value!r}")
