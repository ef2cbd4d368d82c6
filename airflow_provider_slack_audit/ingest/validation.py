"""Merge shim: the argument checks live in :mod:`.spec` (``check_destination`` is ``parse_destination_url``,
``check_window`` is ``check_window_bounds``)."""

from .spec import MAX_ACTIONS, MAX_FUTURE, normalize_actions, storage_path_url  # merge shim
from .spec import check_window_bounds as check_window  # merge shim
from .spec import parse_destination_url as check_destination  # merge shim

__all__ = [
    "MAX_ACTIONS",
    "MAX_FUTURE",
    "check_destination",
    "check_window",
    "normalize_actions",
    "storage_path_url",
]
