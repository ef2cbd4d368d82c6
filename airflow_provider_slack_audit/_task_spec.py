"""The spec of a landing task, built from its rendered arguments and its run's context.

One builder for both places a landing starts: the operator on a worker, and the trigger of a task
started on the triggerer (Airflow 3.3+), which renders the templated fields itself. Below both, so
the trigger needs nothing of the operator. The arguments travel as plain JSON (durations as whole
microseconds) in the trigger's kwargs.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_slack_audit._partitions import partition_day_window
from airflow_provider_slack_audit.ingest.spec import (
    IngestSpec,
    normalize_actions,
    parse_destination_url,
    storage_path_url,
)
from airflow_provider_slack_audit.ingest.windows import Window, parse_datetime
from airflow_provider_slack_audit.version_compat import (
    Context,
    ObjectStoragePath,
    coerce_to_core_timetable,
    run_partition_key,
)

_EMPTY_DATA_INTERVAL_FIX = (
    "This happens with a cron string schedule such as '@daily', which Airflow 3 runs with "
    "CronTriggerTimetable. Schedule the DAG with a data-interval timetable, e.g. "
    "schedule=CronDataIntervalTimetable('0 0 * * *', timezone='UTC') or "
    "DeltaDataIntervalTimetable(timedelta(days=1)), or pass explicit oldest/latest."
)


def start_spec(
    templated: Mapping[str, Any], arguments: Mapping[str, Any], context: Context, log: Any
) -> IngestSpec:
    """The validated spec of a landing: its rendered templated fields, its other arguments, its run.

    The one place a spec is built, on the worker (``build_spec``) or, for a task started on the
    triggerer, in the trigger: ``arguments`` is the JSON form both share (durations in microseconds).
    Raises ValueError or TypeError, naming the argument, for anything no retry can fix.
    """
    spec = IngestSpec(
        window=resolve_window(templated.get("oldest"), templated.get("latest"), context, log),
        interval=_duration(arguments["interval"]),
        destination=parse_destination_url(str(templated["destination"])),
        destination_conn_id=arguments.get("destination_conn_id"),
        action=normalize_actions(arguments.get("action")),
        actor=arguments.get("actor"),
        entity=arguments.get("entity"),
        compression=arguments.get("compression"),
        settle_lag=_duration(arguments["settle_lag"]),
        overwrite=_as_bool(templated.get("overwrite", False), "overwrite"),
        replace_destructively=bool(arguments.get("replace_destructively")),
        reconcile=_as_bool(templated.get("reconcile", False), "reconcile"),
        silence_fraction=arguments["silence_fraction"],
        silence_lookback=arguments["silence_lookback"],
        fail_on_silence=bool(arguments.get("fail_on_silence")),
        api_snapshot=bool(arguments.get("api_snapshot", True)),
        retention=_duration(arguments.get("retention")),
    )
    spec.validate()
    return spec


def resolve_window(oldest: Any, latest: Any, context: Context, log: Any) -> Window:
    """The window to land: ``oldest``/``latest`` where given, else the run's data interval.

    A run a partition timetable made lands the UTC day its partition key names. A blank rendered
    bound (e.g. ``"{{ params.oldest or '' }}"`` with the param unset) counts as not given. A run
    without a data interval (a manual run without a logical date, Airflow 3's default) lands the
    latest data interval of its DAG's timetable completed when the run was triggered.
    """
    oldest, latest = _given(oldest), _given(latest)
    start = oldest if oldest is not None else context.get("data_interval_start")
    end = latest if latest is not None else context.get("data_interval_end")
    if oldest is None or latest is None:
        _warn_if_logical_date_outside(context, start, end, log)
    if (start is None or end is None) and (partition_key := run_partition_key(context)) is not None:
        # A partition timetable's run has a partition key and no data interval (Airflow 3.2+).
        partition = partition_day_window(partition_key)
        start = oldest if oldest is not None else partition.start
        end = latest if latest is not None else partition.end
    if start is None or end is None:
        inferred = _latest_completed_interval(context)
        if inferred is None:
            raise ValueError(_NO_WINDOW_FIX.format(run=_run_label(context)))
        start = oldest if oldest is not None else inferred[0]
        end = latest if latest is not None else inferred[1]
        log.info(
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


def _microseconds(duration: Any) -> Any:
    """A duration as ``{"microseconds": n}``: exact for every ``timedelta``, unlike float seconds.

    Anything else passes through as given, for :func:`start_spec` to refuse when the task runs.
    """
    if isinstance(duration, timedelta):
        return {"microseconds": duration // timedelta(microseconds=1)}
    return duration


def _duration(value: Any) -> Any:
    """Inverse of :func:`_microseconds`; anything else passes through to the spec's validation."""
    if isinstance(value, Mapping) and set(value) == {"microseconds"}:
        return timedelta(microseconds=value["microseconds"])
    return value


def _start_value(value: Any) -> Any:
    """A templated argument as the trigger's kwargs store it: plain JSON (a datetime as ISO-8601)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, ObjectStoragePath):
        return storage_path_url(value)
    return value


def _as_bool(value: bool | str, name: str) -> bool:
    """A flag given as a bool or as a rendered template ("True", "false", ...)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    raise ValueError(f"{name} must be True or False (or the string 'True'/'False'), got {value!r}")
