"""The one place that knows which Airflow runs: every name that moved between 2.11 and 3.3 comes from here.

Everything else in the provider (and its example DAGs and tests) imports Airflow names from this module,
so supporting another Airflow line means changing this file only. Names come through
apache-airflow-providers-common-compat's shims where it has them (they resolve the Airflow 3
``airflow.sdk`` path first and fall back to the Airflow 2 one); the few it lacks on some line are
resolved here the same way, newest location first.

Importing this module costs next to nothing: the version flags and the trigger base classes are all it
loads. Every other name resolves on first use (``from ... import X`` included), because a triggerer
imports a trigger's module on its event loop, and every module of the provider imports this one.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from airflow import __version__ as AIRFLOW_VERSION
from airflow.triggers.base import BaseTrigger, StartTriggerArgs, TriggerEvent
from packaging.version import Version

if TYPE_CHECKING:
    # What the type checker sees; at run time the same names resolve on first use (``_LAZY`` below).
    from airflow.providers.common.compat.connection import get_async_connection
    from airflow.providers.common.compat.sdk import (
        DAG,
        AirflowException,
        AirflowFailException,
        AirflowNotFoundException,
        Asset,
        BaseHook,
        BaseOperator,
        Connection,
        Context,
        ObjectStoragePath,
        Param,
        TaskDeferred,
        conf,
        redact,
        task,
    )
    from airflow.providers.common.sql.hooks.sql import DbApiHook

    try:
        from airflow.sdk import CronDataIntervalTimetable, DeltaDataIntervalTimetable
    except ImportError:
        from airflow.timetables.interval import (  # type: ignore[assignment,no-redef,unused-ignore]
            CronDataIntervalTimetable,
            DeltaDataIntervalTimetable,
        )
    try:
        from airflow.sdk.io import attach
    except ImportError:
        from airflow.io.store import attach  # type: ignore[no-redef,unused-ignore]
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:
        from airflow.utils.log.secrets_masker import mask_secret  # type: ignore[no-redef,unused-ignore]
    try:
        from airflow.sdk.execution_time.context import OutletEventAccessors
    except ImportError:
        from airflow.utils.context import OutletEventAccessors  # type: ignore[attr-defined,no-redef,unused-ignore]
    try:
        from airflow.sdk.definitions.callback import AsyncCallback
    except ImportError:
        try:
            from airflow.sdk.definitions.deadline import AsyncCallback  # type: ignore[attr-defined,no-redef,unused-ignore]
        except ImportError:
            AsyncCallback = None  # type: ignore[assignment,misc,unused-ignore]
    try:
        from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference
    except ImportError:
        DeadlineAlert = DeadlineReference = None  # type: ignore[assignment,misc,unused-ignore]
    try:
        from airflow.sdk import CronPartitionTimetable, PartitionedAssetTimetable
    except ImportError:
        CronPartitionTimetable = PartitionedAssetTimetable = None  # type: ignore[assignment,misc,unused-ignore]

    #: The task can attach a partition key to its asset event itself (3.3+).
    TASK_PARTITION_KEYS: bool
    #: Runs, and so their asset events, can carry a partition key (3.2+).
    PARTITIONED_RUNS: bool

_BASE_VERSION = Version(Version(AIRFLOW_VERSION).base_version)

AIRFLOW_V_3_0_PLUS: bool = Version("3.0.0") <= _BASE_VERSION
AIRFLOW_V_3_1_PLUS: bool = Version("3.1.0") <= _BASE_VERSION
AIRFLOW_V_3_2_PLUS: bool = Version("3.2.0") <= _BASE_VERSION
AIRFLOW_V_3_3_PLUS: bool = Version("3.3.0") <= _BASE_VERSION

#: ``retry_exponential_backoff`` that doubles the delay on each try: a multiplier from 3.2, a flag
#: (True doubles) before it; the example DAGs pass this so they back off the same on every line.
DOUBLING_RETRY_BACKOFF: float | bool = 2.0 if AIRFLOW_V_3_2_PLUS else True

#: Triggerer queues (3.2+): a deferred task's trigger is stored with a queue, and a triggerer started
#: with ``--queues`` runs only the triggers of those queues (with ``[triggerer] queues_enabled``).
TRIGGERER_QUEUES: bool = hasattr(BaseTrigger, "supports_triggerer_queue")

_COMPAT_SDK = "airflow.providers.common.compat.sdk"
_MISSING = object()

#: Where each lazily resolved name lives, newest location first (``module:attribute``); the first
#: that imports wins. A name whose last entry is ``None`` is None on the lines that lack it.
_LAZY: dict[str, tuple[str | None, ...]] = {
    **{
        name: (f"{_COMPAT_SDK}:{name}",)
        for name in (
            "DAG",
            "AirflowException",
            "AirflowFailException",
            "AirflowNotFoundException",
            "Asset",
            "BaseHook",
            "BaseOperator",
            "Connection",
            "Context",
            "ObjectStoragePath",
            "Param",
            "TaskDeferred",
            "conf",
            "redact",
            "task",
        )
    },
    "get_async_connection": ("airflow.providers.common.compat.connection:get_async_connection",),
    # common.sql (SQLAlchemy, sqlparse) only for the warehouse transfers.
    "DbApiHook": ("airflow.providers.common.sql.hooks.sql:DbApiHook",),
    # CronDataIntervalTimetable: in airflow.sdk from 3.2; airflow.timetables.interval on every line.
    "CronDataIntervalTimetable": (
        "airflow.sdk:CronDataIntervalTimetable",
        "airflow.timetables.interval:CronDataIntervalTimetable",
    ),
    "DeltaDataIntervalTimetable": (
        "airflow.sdk:DeltaDataIntervalTimetable",
        "airflow.timetables.interval:DeltaDataIntervalTimetable",
    ),
    # attach: registers a filesystem for a scheme (memory:// in tests, a custom store in deployments).
    "attach": ("airflow.sdk.io:attach", "airflow.io.store:attach"),
    # Secret masking. 3.x: the Task SDK's masker; 2.x: airflow.utils.log's.
    "mask_secret": ("airflow.sdk.log:mask_secret", "airflow.utils.log.secrets_masker:mask_secret"),
    # OutletEventAccessors: the type of the context's ``outlet_events`` (tests build one directly).
    "OutletEventAccessors": (
        "airflow.sdk.execution_time.context:OutletEventAccessors",
        "airflow.utils.context:OutletEventAccessors",
    ),
    # Deadline alerts arrived in Airflow 3.1 (AsyncCallback in airflow.sdk.definitions.deadline there,
    # in .callback from 3.2); None on earlier lines (see airflow_provider_slack_audit.alerting).
    "AsyncCallback": (
        "airflow.sdk.definitions.callback:AsyncCallback",
        "airflow.sdk.definitions.deadline:AsyncCallback",
        None,
    ),
    "DeadlineAlert": ("airflow.sdk.definitions.deadline:DeadlineAlert", None),
    "DeadlineReference": ("airflow.sdk.definitions.deadline:DeadlineReference", None),
    # Partition timetables (3.2+): runs, and so their asset events, carry a partition key. None before.
    "CronPartitionTimetable": ("airflow.sdk:CronPartitionTimetable", None),
    "PartitionedAssetTimetable": ("airflow.sdk:PartitionedAssetTimetable", None),
    # Private: the newer helpers the functions below prefer where the line has them.
    # common-compat >= 1.23 (not the last releases for Python 3.10).
    "_extra_reader": ("airflow.providers.common.compat.connection:get_async_extra_dejson", None),
    # Airflow 3.3+: masks through the supervisor with an async send, safe on a triggerer's event loop.
    "_native_amask_secret": ("airflow.sdk.log:amask_secret", None),
    # Partitioned asset events: 3.3 lets the task attach a key of its own to each event.
    "_OutletEventAccessor": ("airflow.sdk.execution_time.context:OutletEventAccessor", None),
}

#: Flags computed from lazily resolved names, on first use.
_DERIVED: dict[str, Callable[[], Any]] = {
    "TASK_PARTITION_KEYS": lambda: hasattr(_resolve("_OutletEventAccessor"), "add_partitions"),
    "PARTITIONED_RUNS": lambda: _resolve("CronPartitionTimetable") is not None,
}


def _import_from(location: str) -> Any:
    """The attribute ``module:attribute`` names, or ``_MISSING`` when this line does not have it."""
    module_name, _, attribute = location.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attribute, _MISSING)
    except ImportError:  # the module, or a lazy attribute of it (airflow.sdk's), is not on this line
        return _MISSING


def _resolve(name: str) -> Any:
    """Resolve a lazy name once (newest location first) and keep it as a module global."""
    if name in globals():
        return globals()[name]
    if name in _DERIVED:
        value = _DERIVED[name]()
    else:
        value = _MISSING
        for location in _LAZY[name]:
            value = None if location is None else _import_from(location)
            if value is not _MISSING:
                break
        if value is _MISSING:
            raise ImportError(f"{name} is not importable on Airflow {AIRFLOW_VERSION} (tried {_LAZY[name]})")
    globals()[name] = value
    return value


def __getattr__(name: str) -> Any:
    if name in _LAZY or name in _DERIVED:
        return _resolve(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *_DERIVED})


def storage_conn_id(path: ObjectStoragePath) -> str | None:
    """The connection id an ObjectStoragePath carries (an attribute on 3.x, a storage option on 2.x)."""
    conn_id = getattr(path, "conn_id", None) or path.storage_options.get("conn_id")
    return str(conn_id) if conn_id else None


async def amask_secret(secret: str) -> None:
    """Register ``secret`` with the masker without blocking the event loop (a trigger's).

    Before 3.3 the only masker call is synchronous and, on a 3.x triggerer, talks to the supervisor:
    run it in a thread, as common-compat's ``get_async_connection`` does for the connection itself.
    """
    native: Callable[[str], Awaitable[None]] | None = _resolve("_native_amask_secret")
    if native is not None:
        await native(secret)
    else:
        await asyncio.to_thread(_resolve("mask_secret"), secret)


async def get_async_extra_dejson(conn: Connection) -> dict[str, Any]:
    """The connection's extra as a dict, read without blocking the loop on a synchronous masker.

    common-compat's helper where it has one (>= 1.23, which awaits ``aextra_dejson`` on 3.3.2+);
    the releases for Python 3.10 lack it, and the Airflow lines they serve lack ``aextra_dejson``
    too, so the synchronous ``extra_dejson`` runs in a thread, off the loop.
    """
    reader: Callable[[Connection], Awaitable[dict[str, Any]]] | None = _resolve("_extra_reader")
    if reader is not None:
        return await reader(conn)
    return await asyncio.to_thread(lambda: dict(conn.extra_dejson))


def coerce_to_core_timetable(timetable: Any) -> Any:
    """The core twin of a DAG's timetable, which computes a manual run's data interval.

    Airflow 3.3 hands the worker a Task SDK timetable definition; earlier lines hand it the core
    timetable itself. Imported late: the serialization module is heavy and only a manual run needs it.
    """
    try:
        from airflow.serialization.encoders import coerce_to_core_timetable as coerce
    except ImportError:
        return timetable
    return coerce(timetable)


def add_partition_key(outlet_event: Any, key: str) -> None:
    """Attach ``key`` to one outlet asset event (3.3+; callers check :data:`TASK_PARTITION_KEYS`)."""
    outlet_event.add_partitions(key)


def run_partition_key(context: Context) -> str | None:
    """The partition key of the task's run: a partition timetable's or a backfill's run has one (3.2+)."""
    key = context.get("partition_key") or getattr(context.get("dag_run"), "partition_key", None)
    return str(key) if key else None


def triggerer_queues_enabled() -> bool:
    """``[triggerer] queues_enabled``: without it Airflow stores every trigger without a queue."""
    return bool(_resolve("conf").getboolean("triggerer", "queues_enabled", fallback=False))


@functools.cache
def start_from_trigger_supported() -> bool:
    """Does the scheduler start ``start_from_trigger`` tasks on the triggerer, templates rendered there?

    2.10-2.11 started them with templates rendered by the scheduler; 3.0-3.2 switched the feature off
    (the scheduler ignores the flag and runs the task on a worker); 3.3 switched it back on, with the
    triggerer rendering the template fields. What 3.3 added to core is what tells them apart: the task
    instance's ``start_trigger_args`` property, read by the scheduler's ``defer_task``.
    """
    try:
        from airflow.models.taskinstance import TaskInstance
    except ImportError:  # a worker with the Task SDK only: no way to know, so do not rely on it
        return False
    return AIRFLOW_V_3_0_PLUS and isinstance(getattr(TaskInstance, "start_trigger_args", None), property)


__all__ = [
    "AIRFLOW_VERSION",
    "AIRFLOW_V_3_0_PLUS",
    "AIRFLOW_V_3_1_PLUS",
    "AIRFLOW_V_3_2_PLUS",
    "AIRFLOW_V_3_3_PLUS",
    "DAG",
    "DOUBLING_RETRY_BACKOFF",
    "PARTITIONED_RUNS",
    "TASK_PARTITION_KEYS",
    "TRIGGERER_QUEUES",
    "AirflowException",
    "AirflowFailException",
    "AirflowNotFoundException",
    "Asset",
    "AsyncCallback",
    "BaseHook",
    "BaseOperator",
    "BaseTrigger",
    "Connection",
    "Context",
    "CronDataIntervalTimetable",
    "CronPartitionTimetable",
    "DbApiHook",
    "DeadlineAlert",
    "DeadlineReference",
    "DeltaDataIntervalTimetable",
    "ObjectStoragePath",
    "OutletEventAccessors",
    "Param",
    "PartitionedAssetTimetable",
    "StartTriggerArgs",
    "TaskDeferred",
    "TriggerEvent",
    "add_partition_key",
    "amask_secret",
    "attach",
    "coerce_to_core_timetable",
    "conf",
    "get_async_connection",
    "get_async_extra_dejson",
    "mask_secret",
    "redact",
    "run_partition_key",
    "start_from_trigger_supported",
    "storage_conn_id",
    "task",
    "triggerer_queues_enabled",
]
