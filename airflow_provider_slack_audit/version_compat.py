"""The one place that imports Airflow names which moved between Airflow versions.

Everything else in the provider imports Airflow names from here, so supporting another Airflow line
means changing this file only. common-compat's shims resolve the Airflow 3 (``airflow.sdk``) paths
first and fall back to the Airflow 2 ones.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowNotFoundException,
    Asset,
    BaseHook,
    BaseOperator,
    Connection,
    Context,
    ObjectStoragePath,
    TaskDeferred,
    conf,
    mask_secret,
    redact,
)

# Airflow 3.1+: masks through the supervisor with asend(), safe on an event loop (a trigger) where the
# synchronous mask_secret could raise DeadlockImminentError. Airflow 2 would alias mask_secret here.
from airflow.sdk.log import amask_secret
from airflow.triggers.base import BaseTrigger, TriggerEvent

# The window of a manual run without a data interval comes from the DAG's timetable. Where the worker's
# timetable is a Task SDK definition (Airflow 3.3) its core twin computes intervals; on lines without
# coerce_to_core_timetable, the DAG's timetable is the core one already.
try:
    from airflow.serialization.encoders import coerce_to_core_timetable
except ImportError:

    def coerce_to_core_timetable(obj: Any) -> Any:  # type: ignore[no-redef]
        return obj


# Deadline alerts arrived in Airflow 3.1; None on earlier lines (see airflow_provider_slack_audit.alerting).
try:
    from airflow.sdk.definitions.callback import AsyncCallback
    from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference
except ImportError:
    AsyncCallback = DeadlineAlert = DeadlineReference = None  # type: ignore[assignment,misc]


__all__ = [
    "AirflowException",
    "AirflowFailException",
    "AirflowNotFoundException",
    "Asset",
    "AsyncCallback",  # issue 13: deadline alerts (3.1+)
    "BaseHook",
    "BaseOperator",
    "BaseTrigger",
    "Connection",
    "Context",
    "DeadlineAlert",  # issue 13 (3.1+)
    "DeadlineReference",  # issue 13 (3.1+)
    "ObjectStoragePath",
    "TaskDeferred",
    "TriggerEvent",
    "amask_secret",
    "coerce_to_core_timetable",  # issue 13: the window of a manual run without a data interval
    "conf",
    "mask_secret",
    "redact",
]
