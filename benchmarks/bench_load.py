"""Benchmark the warehouse load: one landed window into PostgreSQL by SlackAuditLogsToSqlOperator.

    make bench-load                                   # 100,000 events, 3 rounds
    python benchmarks/bench_load.py --events 20000 --rounds 1
    python benchmarks/bench_load.py --profile load.prof   # plus a cProfile of one more load

The window is landed once, the way the landing operator lands it: the fake Audit Logs server (in
its own process) serves N events of one past day and ``ingest_window`` writes them as four 6-hour
gzip files and a manifest in a temp dir. The script then starts its own PostgreSQL (the Debian
binaries under /usr/lib/postgresql/*/bin) on 127.0.0.1 on a free port, fsync off as in the tests,
and stops it at the end.

Each round loads the window into a new table, in a fresh process, through the operator's
``execute`` (an ``AIRFLOW_CONN_*`` connection, as in production), and reports:

- rows/s: rows over the wall time of ``execute`` (manifest check, table creation, the load);
- CPU s: ``time.process_time()`` of the loading process over the same span, less noisy than the
  wall time on a shared machine (the server's work is not in it);
- the split: time inside ``write_batch`` (the database: the COPY, or staging and the upsert once
  ids repeat) and inside ``RowBuilder.build`` (decoding landed lines into rows; timing each call
  adds about 0.1 s). The PostgreSQL load writes one batch while it builds the next, so the two
  can add up to more than the wall time; reading and verifying the files is the rest;
- peak RSS growth: the loading process's peak resident set during the load minus its size before.

The report is the median of each figure over the rounds; the exit code is 1 when a round loaded
the wrong number of rows (a missed speed target is reported, not failed: timings on a shared machine
are not a test).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

# Run as a script (`python benchmarks/bench_load.py`): the helper modules sit next to it, and the
# PostgreSQL start-up is the tests' (tests/support, imported as `support`).
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _server import TOKEN, fake_server

from support.postgres import PostgresError, postgres_cluster

DEFAULT_EVENTS = 100_000
DEFAULT_ROUNDS = 3
TARGET_ROWS_PER_S = 25_000
# A past UTC day: the window is settled, and the landed data is the same on every run.
BENCH_DAY = datetime(2025, 1, 6, tzinfo=timezone.utc)
CONN_ID = "bench_warehouse"
_MB = 1 << 20
FIGURES = ("rows_per_s", "seconds", "cpu_seconds", "database_seconds", "build_seconds", "rss_growth_mb")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_load.py", description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=DEFAULT_EVENTS, help="events in the window")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help="loads; medians are reported")
    parser.add_argument("--batch-size", type=int, default=None, help="the operator's batch_size")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    parser.add_argument("--profile", type=Path, help="run one more load under cProfile, stats to this file")
    # Internal: one load in this process, figures as JSON on stdout.
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--manifest", help=argparse.SUPPRESS)
    parser.add_argument("--table", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# -- landing ----------------------------------------------------------------------------------------
def land(events: int, destination: Path) -> tuple[str, int]:
    """Land one day of ``events`` from the fake server; returns (manifest URL, events landed)."""
    from airflow_provider_slack_audit.client import AsyncAuditLogsClient
    from airflow_provider_slack_audit.ingest.pipeline import ingest_window
    from airflow_provider_slack_audit.ingest.spec import IngestSpec
    from airflow_provider_slack_audit.ingest.windows import Window

    logging.getLogger("airflow_provider_slack_audit").setLevel(logging.WARNING)  # one line per interval
    window = Window(BENCH_DAY, BENCH_DAY + timedelta(days=1))
    spec = IngestSpec(
        window=window,
        interval=timedelta(hours=6),
        destination=destination.as_uri(),
        settle_lag=timedelta(0),
    )
    with fake_server(events=events, seed=14, start=window.start, end=window.end) as base_url:
        summary = asyncio.run(ingest_window(AsyncAuditLogsClient(TOKEN, base_url=base_url), spec))
    return summary.manifest, summary.events


# -- PostgreSQL -------------------------------------------------------------------------------------
@contextmanager
def postgres_server() -> Iterator[dict[str, Any]]:
    """The tests' throwaway PostgreSQL (support.postgres); yields an Airflow connection to it."""
    try:
        with postgres_cluster(prefix="bench-load-pg-") as cluster:
            yield cluster.connection()
    except PostgresError as error:
        raise SystemExit(str(error)) from error


# -- one load (the child) ---------------------------------------------------------------------------
def _rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / _MB


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux >= 4.0) so the peak is the load's, not the imports'."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_once(manifest: str, table: str, batch_size: int | None, profile: Path | None) -> dict[str, Any]:
    """Load the window into ``table`` through the operator, timing the database part apart."""
    from airflow_provider_slack_audit.transfers import _dialects, _schema
    from airflow_provider_slack_audit.transfers.slack_audit_to_sql import SlackAuditLogsToSqlOperator

    database = {"seconds": 0.0, "batches": 0}
    building = {"seconds": 0.0}
    write_batch, build = _dialects.PostgresDialect.write_batch, _schema.RowBuilder.build

    def timed_write_batch(self: Any, connection: Any, rows: Any) -> Any:
        started = time.perf_counter()
        try:
            return write_batch(self, connection, rows)
        finally:
            database["seconds"] += time.perf_counter() - started
            database["batches"] += 1

    def timed_build(self: Any, line: bytes) -> Any:
        started = time.perf_counter()
        try:
            return build(self, line)
        finally:
            building["seconds"] += time.perf_counter() - started

    _dialects.PostgresDialect.write_batch = timed_write_batch  # type: ignore[method-assign]
    _schema.RowBuilder.build = timed_build  # type: ignore[method-assign]
    options: dict[str, Any] = {} if batch_size is None else {"batch_size": batch_size}
    operator = SlackAuditLogsToSqlOperator(
        task_id="load", source=manifest, conn_id=CONN_ID, table=table, **options
    )
    collecting = {"seconds": 0.0, "started": 0.0, "collections": 0}

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            collecting["started"] = time.perf_counter()
        else:
            collecting["seconds"] += time.perf_counter() - collecting["started"]
            collecting["collections"] += 1

    gc.callbacks.append(on_gc)
    # Import what a task process imports once (the database's hook, Airflow's object-store
    # filesystems: about 1.5 s here) before the clock starts: it is not the load's speed. Reading
    # the manifest alone does not register the filesystems: the first `.fs` of a path does (the
    # data files are opened through it), importing every provider's filesystem module (~0.8 s).
    from airflow_provider_slack_audit.ingest.landing import read_manifest
    from airflow_provider_slack_audit.version_compat import BaseHook, ObjectStoragePath

    BaseHook.get_connection(CONN_ID).get_hook()  # type: ignore[no-untyped-call]
    read_manifest(manifest)
    _ = ObjectStoragePath(manifest).fs
    if profile is not None:  # cProfile sees one thread: write batches in this one
        _dialects.PostgresDialect.writes_in_background = False
    rss_before, peak_reset = _rss_mb(), _reset_peak_rss()
    cpu_started, started = time.process_time(), time.perf_counter()
    if profile is not None:
        import cProfile

        profiler = cProfile.Profile()
        result = profiler.runcall(operator.execute, context={})
        profiler.dump_stats(profile)
    else:
        result = operator.execute(context={})
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    gc.callbacks.remove(on_gc)
    return {
        "rows": result["rows"],
        "inserted": result["inserted"],
        "rows_per_s": result["rows"] / seconds,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "database_seconds": database["seconds"],
        "build_seconds": building["seconds"],
        "gc_seconds": collecting["seconds"],
        "gc_collections": collecting["collections"],
        "batches": database["batches"],
        "rss_growth_mb": max(0.0, _peak_rss_mb() - rss_before) if peak_reset else None,
    }


def run_child(manifest: str, table: str, batch_size: int | None, connection: dict[str, Any],
              profile: Path | None = None) -> dict[str, Any]:  # fmt: skip
    command = [sys.executable, __file__, "--child", "--manifest", manifest, "--table", table]
    if batch_size is not None:
        command += ["--batch-size", str(batch_size)]
    if profile is not None:
        command += ["--profile", str(profile)]
    env = {**os.environ, f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps(connection)}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the load failed:\n{done.stdout}\n{done.stderr}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


# -- report -----------------------------------------------------------------------------------------
def _median(rounds: list[dict[str, Any]], name: str) -> float | None:
    values = [figures[name] for figures in rounds if figures[name] is not None]
    return statistics.median(values) if values else None


def report(events: int, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    medians = {name: _median(rounds, name) for name in FIGURES}
    load = os.getloadavg()
    print(f"\n## Warehouse load: {events:,} events into PostgreSQL, median of {len(rounds)} round(s)\n")
    print(f"host: {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end\n")
    print("| round | rows/s | wall s | CPU s (loader) | database s | row building s | peak RSS growth MB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for number, figures in enumerate([*rounds, medians], start=1):
        label = "median" if number > len(rounds) else str(number)
        growth = figures["rss_growth_mb"]
        print(
            f"| {label} | {figures['rows_per_s']:,.0f} | {figures['seconds']:.2f} "
            f"| {figures['cpu_seconds']:.2f} "
            f"| {figures['database_seconds']:.2f} | {figures['build_seconds']:.2f} "
            f"| {'n/a' if growth is None else f'{growth:.1f}'} |"
        )
    rows_per_s = medians["rows_per_s"] or 0.0
    verdict = "met" if rows_per_s >= TARGET_ROWS_PER_S else "MISSED"
    print(f"\ntarget >= {TARGET_ROWS_PER_S:,} rows/s: {verdict} ({rows_per_s:,.0f} rows/s)")
    if medians["cpu_seconds"]:
        print(f"loader CPU: {events / medians['cpu_seconds']:,.0f} rows per CPU second")
    return {"events": events, "rounds": rounds, "median": medians, "load_average": load}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(load_once(args.manifest, args.table, args.batch_size, args.profile)))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-load-") as workdir:
        started = time.monotonic()
        manifest, landed = land(args.events, Path(workdir) / "landing")
        print(f"landed {landed:,} events in {time.monotonic() - started:.1f} s: {manifest}", file=sys.stderr)
        rounds = []
        with postgres_server() as connection:
            for number in range(1, args.rounds + 1):
                figures = run_child(manifest, f"bench_load_{number}", args.batch_size, connection)
                print(f"round {number}: {figures['rows_per_s']:,.0f} rows/s", file=sys.stderr)
                rounds.append(figures)
            if args.profile is not None:
                run_child(manifest, "bench_load_profiled", args.batch_size, connection, args.profile)
                print(f"profile of one more load: {args.profile}", file=sys.stderr)
        summary = report(landed, rounds)
    if args.json is not None:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0 if all(figures["rows"] == landed == figures["inserted"] for figures in rounds) else 1


if __name__ == "__main__":
    sys.exit(main())
