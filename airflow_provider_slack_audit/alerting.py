"""Be told when a window has not landed by a deadline, on every supported Airflow line.

``landing_deadline(...)`` returns keyword arguments for ``DAG(...)``:

- Airflow 3.1+: a ``DeadlineAlert`` measured from the run's logical date (the start of its data interval
  under a data-interval timetable), so the alert fires when the run has not finished ``grace`` after the
  interval ended, whether the run is slow, failed or stuck in a queue. The callback runs on the triggerer.
- Earlier lines have no deadline alerts: the task's ``execution_timeout`` (which also bounds the deferral)
  fails a run that takes too long, and the same callback is called from ``on_failure_callback``.

Only this module knows the difference (through ``version_compat``); DAG files call ``landing_deadline``.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any

from airflow_provider_slack_audit.version_compat import AsyncCallback, DeadlineAlert, DeadlineReference

log = logging.getLogger(__name__)

MissedLandingCallback = Callable[..., Coroutine[Any, Any, None]]


async def log_missed_landing(**kwargs: Any) -> None:
    """The default alert: one ERROR line naming the DAG and run (point ``callback`` at a pager instead).

    Airflow passes ``context``: on a deadline, ``{"dag_run": <the run as the REST API shows it>,
    "deadline": {...}}``; from ``on_failure_callback`` (lines without deadline alerts), the task's context.
    """
    context = kwargs.get("context") or {}
    dag_run = context.get("dag_run") if isinstance(context, dict) else None
    deadline = context.get("deadline") if isinstance(context, dict) else None
    log.error(
        "Slack audit window not landed in time (%s): dag %s, run %s, deadline %s",
        kwargs.get("description", "no description"),
        _field(dag_run, "dag_id"),
        _field(dag_run, "run_id") or _field(dag_run, "dag_run_id"),
        _field(deadline, "deadline_time"),
    )


def landing_deadline(
    *,
    period: timedelta,
    grace: timedelta,
    callback: MissedLandingCallback | str = log_missed_landing,
    kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``DAG(...)`` arguments that call ``callback`` when a run has not landed ``grace`` after its interval.

    :param period: the length of the DAG's data interval (one day for a daily DAG): the deadline is
        ``logical date + period + grace``, i.e. ``grace`` after the interval's end.
    :param grace: how long after the interval's end the window must be landed.
    :param callback: an ``async`` callable importable by the triggerer (a module-level function of an
        installed package, not of a DAG file), or its dotted path; called with ``kwargs`` and ``context``.
    :param kwargs: extra keyword arguments for the callback (JSON-serializable).
    """
    if period <= timedelta(0) or grace < timedelta(0):
        raise ValueError(f"period must be positive and grace not negative, got {period} and {grace}")
    description = f"landed later than {grace} after its data interval ended"
    callback_kwargs = {"description": description, **(kwargs or {})}
    if DeadlineAlert is not None:
        alert: dict[str, Any] = {
            "reference": DeadlineReference.DAGRUN_LOGICAL_DATE,
            "interval": period + grace,
            "callback": AsyncCallback(callback, kwargs=callback_kwargs),
        }
        # Deadline alerts are named from Airflow 3.3 on; 3.1 and 3.2 take no name.
        if "name" in inspect.signature(DeadlineAlert).parameters:
            alert["name"] = "slack_audit_landing_deadline"
        return {"deadline": DeadlineAlert(**alert)}
    return {"on_failure_callback": _failure_callback(callback, callback_kwargs)}


def _failure_callback(callback: MissedLandingCallback | str, kwargs: dict[str, Any]) -> Callable[..., None]:
    """A sync ``on_failure_callback`` running the async ``callback`` (lines without deadline alerts)."""
    import asyncio
    import pkgutil

    def on_failure(context: Any) -> None:
        target = pkgutil.resolve_name(callback) if isinstance(callback, str) else callback
        asyncio.run(target(context=context, **kwargs))

    return on_failure


def _field(obj: Any, name: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)
