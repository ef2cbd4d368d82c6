"""Moved: planning to ``landing.plan``, grid arithmetic to ``windows``, file names to ``landing.layout``."""

from .errors import DestinationConflictError  # merge shim
from .landing.layout import Compression, data_file_interval  # merge shim
from .landing.plan import (  # merge shim
    DestinationLayout,
    describe_query,
    duration,
    filtered_label,
    partitions_touched,
    plan_intervals,
    timedelta_literal,
)
from .windows import cell_start, crosses_cells  # merge shim

__all__ = [
    "Compression",
    "DestinationConflictError",
    "DestinationLayout",
    "cell_start",
    "crosses_cells",
    "data_file_interval",
    "describe_query",
    "duration",
    "filtered_label",
    "partitions_touched",
    "plan_intervals",
    "timedelta_literal",
]
