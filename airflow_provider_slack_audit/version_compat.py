"""The one place that imports Airflow names which moved between Airflow versions.

Everything else in the provider imports Airflow names from here, so supporting another Airflow line
means changing this file only. common-compat's shims resolve the Airflow 3 (``airflow.sdk``) paths
first and fall back to the Airflow 2 ones.
"""

from __future__ import annotations

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

# isort: split
# The warehouse transfer loads through any common-sql DbApiHook (same path on Airflow 2 and 3).
from airflow.providers.common.sql.hooks.sql import DbApiHook

__all__ = [
    "AirflowException",
    "AirflowFailException",
    "AirflowNotFoundException",
    "Asset",
    "BaseHook",
    "BaseOperator",
    "BaseTrigger",
    "Connection",
    "Context",
    "DbApiHook",
    "ObjectStoragePath",
    "TaskDeferred",
    "TriggerEvent",
    "amask_secret",
    "conf",
    "mask_secret",
    "redact",
]
