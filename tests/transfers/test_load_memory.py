"""A large window loads with memory that does not grow with the window (SQLite and PostgreSQL).

Measured with tracemalloc around the operator's execute: it sees every Python allocation (lines,
decoded entries, rows, batches, COPY buffers), not the database drivers' C buffers, which are
bounded by one batch anyway. Measured here (Python 3.11, batch_size 5000): peaks of 22-26 MiB for
20,000 events and 24 MiB for 200,000 on both databases, for a window of 96 MiB of JSON. The peak is
one batch of rows plus one decompressed read chunk, whatever the window's size.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pytest

from airflow_provider_slack_audit.transfers.slack_audit_to_sql import SlackAuditLogsToSqlOperator

from support.audit_entries import bulk_lines, land_window
from support.warehouses import Warehouse

MiB = 1 << 20
PEAK_BOUND = 40 * MiB


class CountingLines:
    """Passes lines through, adding up their size: the window's uncompressed JSON."""

    def __init__(self, lines: Iterable[bytes]) -> None:
        self._lines = lines
        self.bytes = 0

    def __iter__(self) -> Iterator[bytes]:
        for line in self._lines:
            self.bytes += len(line) + 1
            yield line


def peak_memory_of_load(warehouse: Warehouse, manifest: str, table: str) -> tuple[int, int]:
    """(rows loaded, peak traced bytes) of one load into ``table``."""
    operator = SlackAuditLogsToSqlOperator(
        task_id="load", source=manifest, conn_id=warehouse.conn_id, table=table
    )
    tracemalloc.start()
    try:
        result = operator.execute(context={})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result["rows"], peak


@dataclass(frozen=True)
class LandedWindows:
    small: str  # manifest of a 20,000-event window
    large: str  # manifest of a 200,000-event window
    large_bytes: int  # the large window's uncompressed JSON


@pytest.fixture(scope="module")
def landed_windows(tmp_path_factory: pytest.TempPathFactory) -> LandedWindows:
    """Landed once for both databases: landing 220,000 events takes a while."""
    root = tmp_path_factory.mktemp("memory")
    large_lines = CountingLines(bulk_lines(200_000, seed=2))
    return LandedWindows(
        small=land_window(root / "small", bulk_lines(20_000, seed=1)),
        large=land_window(root / "large", large_lines),
        large_bytes=large_lines.bytes,
    )


# What could hold the window is the shared read-and-batch path; each dialect's write_batch sees one
# batch. SQLite (executemany) and PostgreSQL (COPY) cover it; MariaDB's executemany took 2 minutes
# of CI for the same answer.
@pytest.mark.slow
@pytest.mark.parametrize("warehouse", ["sqlite", "postgres"], indirect=True)
def test_a_200k_event_window_loads_with_flat_memory(
    warehouse: Warehouse, landed_windows: LandedWindows
) -> None:
    small_rows, small_peak = peak_memory_of_load(warehouse, landed_windows.small, f"{warehouse.table}_small")
    large_rows, large_peak = peak_memory_of_load(warehouse, landed_windows.large, warehouse.table)

    try:
        assert (small_rows, large_rows) == (20_000, 200_000)
        assert warehouse.count() == 200_000
        # A loader holding the window could not pass: the window is far larger than the bound.
        assert landed_windows.large_bytes > 2 * PEAK_BOUND
        assert large_peak < PEAK_BOUND, f"peak {large_peak / MiB:.1f} MiB"
        # Flat: ten times the events, (almost) the same peak.
        assert large_peak < 1.5 * small_peak, f"peaks {small_peak / MiB:.1f} / {large_peak / MiB:.1f} MiB"
    finally:
        if warehouse.kind == "postgres":
            warehouse.hook().run(f"DROP TABLE IF EXISTS {warehouse.table}_small")
