"""The one place that imports Airflow names which moved between Airflow versions.

Everything else in the provider imports Airflow names from here, so supporting another Airflow line
means changing this file only. common-compat's shims resolve the Airflow 3 (``airflow.sdk``) paths
first and fall back to the Airflow 2 ones.
"""

from __future__ import annotations

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    Asset,
    BaseHook,
    BaseOperator,
    Context,
    ObjectStoragePath,
    TaskDeferred,
    conf,
)
from airflow.triggers.base import BaseTrigger, TriggerEvent

__all__ = [
    "AirflowException",
    "AirflowFailException",
    "Asset",
    "BaseHook",
    "BaseOperator",
    "BaseTrigger",
    "Context",
    "ObjectStoragePath",
    "TaskDeferred",
    "TriggerEvent",
    "conf",
]
