"""Merge shim: drift, silence and the snapshot live in :mod:`.monitor`
(``check_window`` is ``observe_window``)."""

from .monitor import MIN_HISTORY, Drift, SnapshotClient, judge_silence, record_volume  # merge shim
from .monitor import observe_window as check_window  # merge shim

__all__ = [
    "MIN_HISTORY",
    "Drift",
    "SnapshotClient",
    "check_window",
    "judge_silence",
    "record_volume",
]
