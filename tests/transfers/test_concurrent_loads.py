"""Concurrent loads into one table always succeed, first loads (which create the table) included.

Each load runs in its own process (its own connection, as Airflow workers have), all released at
once by a barrier so they race on the creation of a table that does not exist yet. Before the
creation lock, PostgreSQL failed about 1 in 16 such races with ``UniqueViolation`` on
``pg_type_typname_nsp_index``.
"""

from __future__ import annotations

import multiprocessing
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_slack_audit.ingest.windows import Window

from support.audit_entries import DAY, bulk_lines, land_window
from support.warehouses import Warehouse

PROCESSES = 4
ROUNDS = 3
EVENTS_PER_WINDOW = 50


def _load_when_released(barrier: Any, env: dict[str, str], manifest: str, conn_id: str, table: str) -> str:
    """Runs in a child process: wait for the others, then load; returns "ok" or the error."""
    os.environ.update(env)
    from airflow_provider_slack_audit.transfers.slack_audit_to_sql import SlackAuditLogsToSqlOperator

    operator = SlackAuditLogsToSqlOperator(task_id="load", source=manifest, conn_id=conn_id, table=table)
    barrier.wait(timeout=60)
    try:
        operator.execute(context={})
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return "ok"


@pytest.mark.slow
def test_concurrent_first_loads_of_different_windows_all_succeed(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    windows = [Window(DAY + timedelta(days=n), DAY + timedelta(days=n + 1)) for n in range(PROCESSES)]
    manifests = [
        land_window(tmp_path / f"w{n}", bulk_lines(EVENTS_PER_WINDOW, seed=n, day=n), window=window)
        for n, window in enumerate(windows)
    ]
    env = {key: value for key, value in os.environ.items() if key.startswith(("AIRFLOW_", "CI"))}
    context = multiprocessing.get_context("spawn")
    with context.Pool(PROCESSES) as pool, context.Manager() as manager:
        for round_number in range(ROUNDS):
            table = f"{warehouse.table}_r{round_number}"  # a new table each round: a first load
            barrier = manager.Barrier(PROCESSES)
            outcomes = pool.starmap(
                _load_when_released,
                [(barrier, env, manifest, warehouse.conn_id, table) for manifest in manifests],
            )
            try:
                assert outcomes == ["ok"] * PROCESSES, outcomes
                loaded = Warehouse(warehouse.kind, warehouse.conn_id, table).count()
                assert loaded == PROCESSES * EVENTS_PER_WINDOW
            finally:
                warehouse.drop(table)
