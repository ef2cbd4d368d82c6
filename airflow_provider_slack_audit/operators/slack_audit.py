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
from airflow_provider_slack_audit._partitions import window_partition_key
from airflow_provider_slack_audit._task_spec import (
    _microseconds,
    _start_value,
    start_spec,
)
from airflow_provider_slack_audit.hooks.slack_audit import ClientOptions, SlackAuditLogsHook
from airflow_provider_slack_audit.ingest.outcome import describe_failure, is_retryable, is_success, run_ingest
from airflow_provider_slack_audit.ingest.spec import (
    IngestSpec,
    check_destination_fits,
    normalize_actions,
    parse_destination_url,
    storage_path_url,
)
from airflow_provider_slack_audit.ingest.windows import Window
from airflow_provider_slack_audit.triggers.slack_audit import SlackAuditLogsTrigger
from airflow_provider_slack_audit.version_compat import (
    TASK_PARTITION_KEYS,
    TRIGGERER_QUEUES,
    AirflowException,
    AirflowFailException,
    Asset,
    BaseOperator,
    Context,
    ObjectStoragePath,
    StartTriggerArgs,
    add_partition_key,
    conf,
    redact,
    run_partition_key,
    start_from_trigger_supported,
    storage_conn_id,
    triggerer_queues_enabled,
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
    :param start_from_trigger: start the task directly on the triggerer, with no worker process until
        the window has landed (Airflow 3.3+, which renders the templated arguments there). Default:
        whenever the arguments allow it: deferrable, no ``trigger_queue``, not mapped. ``False`` defers
        from a worker as on older lines; ``True`` where it cannot apply is refused.
    :param trigger_queue: run the landing trigger on the triggerers started with this queue
        (``airflow triggerer --queues``; Airflow 3.2+ with ``[triggerer] queues_enabled``), whatever
        the task's ``queue``. Default: Airflow's routing, which sends the trigger to the task's
        ``queue`` when queues are enabled.
    :param partitioned: give the asset event the window's partition key (see
        :mod:`~airflow_provider_slack_audit._partitions`), so partition-aware DAGs consume
        it. Default: when the run has a partition key (a partition timetable's or a partition
        backfill's run); ``True`` always (Airflow 3.3+); ``False`` never. A partitioned event only
        triggers partition-aware DAGs, an unpartitioned one only the others: Airflow's rule.
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
        trigger_queue: str | None = None,
        partitioned: bool | None = None,
        start_from_trigger: bool | None = None,
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
        self.trigger_queue = _checked_trigger_queue(trigger_queue)
        if partitioned and not TASK_PARTITION_KEYS:
            raise ValueError(
                "partitioned=True needs Airflow 3.3 or later, where a task sets its asset event's "
                "partition key; on 3.2 schedule the landing DAG with CronPartitionTimetable('0 0 * * *', "
                "timezone='UTC', key_format='%Y-%m-%d', run_offset=-1): its runs, and so their asset "
                "events, carry the day's key"
            )
        self.partitioned = partitioned
        self._set_start_from_trigger(start_from_trigger)

    def _set_start_from_trigger(self, wanted: bool | None) -> None:
        """Start on the triggerer when the arguments allow it (3.3+), else defer from a worker."""
        blockers = []
        if not self.deferrable:
            blockers.append("deferrable=False runs the ingest in the worker")
        if self.trigger_queue is not None:
            blockers.append(
                "trigger_queue is set, and Airflow creates a trigger that starts a task without a queue"
            )
        if not start_from_trigger_supported():
            blockers.append("this Airflow does not start tasks on the triggerer (3.3 or later does)")
        if wanted and blockers:
            raise ValueError(f"start_from_trigger=True cannot apply: {'; '.join(blockers)}")
        if wanted is False or blockers:
            self.start_from_trigger = False
            return
        self.start_from_trigger = True
        self.start_trigger_args = StartTriggerArgs(
            trigger_cls=f"{SlackAuditLogsTrigger.__module__}.{SlackAuditLogsTrigger.__qualname__}",
            trigger_kwargs=SlackAuditLogsTrigger.start_kwargs(
                slack_audit_conn_id=self.slack_audit_conn_id,
                # The fields the spec needs; a subclass's own template fields stay with the task.
                templated={
                    field: _start_value(getattr(self, field))
                    for field in SlackAuditLogsTrigger.start_templated_fields
                },
                arguments=self._start_arguments(),
            ),
            next_method="execute_complete",
            next_kwargs=None,
            timeout=self.execution_timeout,
        )

    def _start_arguments(self) -> dict[str, Any]:
        """The untemplated arguments the trigger needs to build the spec, as plain JSON.

        Durations are whole microseconds, so any ``timedelta`` round-trips exactly.
        """
        conn_id = self.destination_conn_id
        if isinstance(self.destination, ObjectStoragePath):  # the argument wins over the path's
            conn_id = conn_id or storage_conn_id(self.destination)
        return {
            "destination_conn_id": conn_id,
            "interval": _microseconds(self.interval),
            # Checked with the others in start_spec, so a bad value fails the task, not the DAG file.
            "action": self.action if self.action is None or isinstance(self.action, str) else [*self.action],
            "actor": self.actor,
            "entity": self.entity,
            "compression": self.compression,
            "settle_lag": _microseconds(self.settle_lag),
            "replace_destructively": self.replace_destructively,
            "silence_fraction": self.silence_fraction,
            "silence_lookback": self.silence_lookback,
            "fail_on_silence": self.fail_on_silence,
            "api_snapshot": self.api_snapshot,
            "retention": _microseconds(self.retention),
        }

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
            self._route_trigger()
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

    def _route_trigger(self) -> None:
        """Send the trigger to ``trigger_queue``'s triggerers: Airflow files it under the task's queue."""
        if self.trigger_queue is None:
            return
        if not triggerer_queues_enabled():
            raise AirflowFailException(
                f"Task {self.task_id!r} has trigger_queue={self.trigger_queue!r}, but [triggerer] "
                "queues_enabled is off, so Airflow would give the trigger no queue and any triggerer "
                "could run it: set AIRFLOW__TRIGGERER__QUEUES_ENABLED=True on the workers and "
                f"triggerers, and start the dedicated ones with `airflow triggerer --queues "
                f"{self.trigger_queue}`"
            )
        # The Task SDK reads the queue of the deferring task when it files the trigger; the task has
        # already been placed on its worker, so this changes where the trigger runs and nothing else.
        self.queue = self.trigger_queue

    def _check_local_destination(self, spec: IngestSpec) -> None:
        """Refuse, before deferring, a run that does not fit its local destination (one destination,
        one truth: see ``ingest.landing.plan``). Cheap locally; an object store is checked by the
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
            destination=self._destination_url(),
            filters={"action": normalize_actions(self.action), "actor": self.actor, "entity": self.entity},
        )

    def build_spec(self, context: Context) -> IngestSpec:
        """Resolve the rendered arguments into a validated spec, before any request is made.

        Every problem found here is a configuration error no retry can fix, so it fails the task
        without retrying. A task started on the triggerer builds the same spec there, from the same
        arguments (:func:`start_spec`).
        """
        try:
            templated = {name: getattr(self, name) for name in SlackAuditLogsTrigger.start_templated_fields}
            templated["destination"] = self._destination_url()
            return start_spec(templated, self._start_arguments(), context, self.log)
        except (ValueError, TypeError) as exc:
            raise AirflowFailException(f"Invalid arguments for task {self.task_id!r}: {exc}") from exc

    def _destination_url(self) -> str:
        """The destination as a checked URL, whether given as a string or an ``ObjectStoragePath``."""
        return parse_destination_url(_start_value(self.destination))

    def _record_asset_events(self, context: Context, summary: dict[str, Any]) -> None:
        """Attach the manifest and window to the outlet asset events, for data-aware DAGs downstream.

        A partitioned event also carries the window's partition key, in the event (3.3+) and in its
        extra (for consumers on lines whose triggering events do not show the key).
        """
        outlet_events = context.get("outlet_events")
        if outlet_events is None:
            return
        extra = {"manifest": summary.get("manifest"), "window": summary.get("window")}
        extra.update(
            {key: summary[key] for key in ("drift", "silence", "ledger") if summary.get(key) is not None}
        )
        partition_key = self._partition_key(context, summary)
        if partition_key is not None:
            extra["partition_key"] = partition_key
        for outlet in self.outlets:
            if isinstance(outlet, Asset):
                event = outlet_events[outlet]
                event.extra.update(extra)
                if partition_key is not None and TASK_PARTITION_KEYS:
                    add_partition_key(event, partition_key)

    def _partition_key(self, context: Context, summary: dict[str, Any]) -> str | None:
        """The landed window's partition key, when the event is to be partitioned; else None."""
        run_key = run_partition_key(context)
        if not (self.partitioned if self.partitioned is not None else run_key is not None):
            return None
        key = window_partition_key(Window.from_json(summary["window"]))
        if run_key is not None and run_key != key:
            # 3.3 files the event under the window's key; 3.2 under the run's, whatever the task says.
            self.log.warning(
                "The run's partition key %r is not the landed window's, %r (explicit oldest/latest?): "
                "the asset event carries %r",
                run_key,
                key,
                key if TASK_PARTITION_KEYS else run_key,
            )
        return key


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
        return [Asset(_asset_uri(parse_destination_url(url)))]
    except (TypeError, ValueError):
        return []


def _asset_uri(url: str) -> str:
    """The destination URL without a connection id: the data's identity does not depend on who reads it."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _checked_trigger_queue(queue: str | None) -> str | None:
    """``trigger_queue`` as given, refused on lines without triggerer queues or when blank."""
    if queue is None:
        return None
    if not isinstance(queue, str) or not queue.strip():
        raise ValueError(f"trigger_queue must be a queue name such as 'slack_audit', got {queue!r}")
    if not TRIGGERER_QUEUES:
        raise ValueError(
            f"trigger_queue={queue!r} needs Airflow 3.2 or later (triggerer queues); on this Airflow "
            "every triggerer runs every trigger: drop trigger_queue"
        )
    return queue.strip()
