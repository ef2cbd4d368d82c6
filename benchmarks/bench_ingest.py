"""Benchmark the provider's landing path: throughput and CPU, the org's rate budget, a backfill.

    make bench                                        # every scenario at full size
    make bench BENCH_ARGS="--scenario backfill"       # one scenario alone (repeatable)
    python benchmarks/bench_ingest.py --quick         # 50,000 events, 1 round, a 2-day backfill
    python benchmarks/bench_ingest.py --events 200000 --rounds 5 --json bench.json --with-dag

The scenarios (``--scenario throughput|rate-budget|backfill``; all three by default):

1. Throughput. The server pre-renders N events of one day (bench mode, so it serves each page as
   one slice of memory). Each contender of ``_contenders.py`` reads that day in a fresh process
   (``--contender NAME``, an internal mode), timed inside the process from its first request to
   its last byte written, with its CPU time, its peak RSS and the RSS it started from. Rounds
   alternate the order of the contenders; the table shows the median of each figure over the rounds.
   The CPU guard: ours against slack_sdk in events/s, and the share of one core ours needs at the
   org's whole budget (~50 requests/min x 9,999 entries = ~8,300 events/s), from its CPU per event.
2. Rate budget (``_rate_budget.py``): four daily windows ingested concurrently in one process, as a
   triggerer runs a backfill, against an org-wide budget of R requests a minute.
3. Backfill (``_backfill.py``): the backfill example DAG on a real Airflow deployment (PostgreSQL,
   scheduler, DAG processor, triggerer, API server, LocalExecutor) over 60 days of a mid-size org.
4. Deferral cost (``--with-dag``, ``_deferral.py``): the daily example DAG on ``airflow dags test``
   for a 100,000-event day: deferrals per task run, wall time, ingest time.

The report is a Markdown table on stdout, and the same figures as JSON with ``--json PATH``. The
exit code is 1 when a contender did not see every event or a scenario lost data (targets that are
missed are reported, not failed: timings on a shared machine are not a test).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

# Run as a script (`python benchmarks/bench_ingest.py`): the helper modules sit next to it.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _backfill import BackfillPlan
from _contenders import CONTENDERS, DESCRIPTIONS, MAX_LIMIT, Job, measure
from _server import fake_server

DEFAULT_EVENTS = 1_000_000
QUICK_EVENTS = 50_000
QUICK_BACKFILL_DAYS = 2
QUICK_BACKFILL_EVENTS_PER_DAY = 2_000
DEFAULT_ROUNDS = 3
# A past UTC day: every window of the benchmark is settled, and figures are reproducible.
BENCH_DAY = datetime(2025, 1, 6, tzinfo=timezone.utc)
DAY_SECONDS = 86_400
SCENARIOS = ("throughput", "rate-budget", "backfill")
# The CPU guard: ours at least this many times slack_sdk's events/s (both with every event landed)...
MIN_SPEEDUP_VS_SLACK_SDK = 4.0
# ... and at most this share of one core at the org's whole budget: Slack allows ~50 requests a
# minute for the whole org, each page up to 9,999 entries, so an org yields at most ~8,300 events/s.
ORG_REQUESTS_PER_MINUTE = 50
ORG_EVENTS_PER_S = ORG_REQUESTS_PER_MINUTE * 9999 / 60
MAX_CORE_SHARE = 0.10
MEDIAN_FIGURES = (
    "events_per_s",
    "mb_per_s",
    "peak_rss_mb",
    "rss_growth_mb",
    "seconds",
    "rss_before_mb",
    "cpu_us_per_event",
)
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
# The loop-stall scenario lands a day of at most this many events (pages of 9,999, ~6.5 MB each).
LOOP_STALL_EVENTS = 300_000
MAX_LOOP_STALL_MS = 20.0
CONTENDER_TIMEOUT = 3600.0  # slack_sdk needs minutes for a million events on a slow machine


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench_ingest.py",
        description="Benchmark ingest_window against wire speed, a raw orjson loop and slack_sdk.",
    )
    parser.add_argument("--events", type=int, help=f"events in the window (default {DEFAULT_EVENTS:,})")
    parser.add_argument(
        "--rounds",
        type=int,
        help=f"rounds of every contender; medians are reported (default {DEFAULT_ROUNDS})",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_EVENTS:,} events and 1 round, a {QUICK_BACKFILL_DAYS}-day backfill (smoke run)",
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=SCENARIOS,
        dest="scenarios",
        help="run only this scenario (repeatable; default: all of them)",
    )
    parser.add_argument("--json", type=Path, dest="json_path", help="also write the figures to this file")
    parser.add_argument("--seed", type=int, default=1, help="seed of the fake server's events")
    parser.add_argument(
        "--contenders",
        nargs="+",
        choices=sorted(CONTENDERS),
        default=list(CONTENDERS),
        help="contenders to run (default: all)",
    )
    parser.add_argument(
        "--workdir", type=Path, help="where contenders write their files (default: the system temp dir)"
    )
    budget = parser.add_argument_group("rate budget scenario")
    budget.add_argument("--skip-rate-budget", action="store_true", help="do not run the rate-budget scenario")
    budget.add_argument(
        "--rate-budget-rpm", type=float, default=600.0, help="org-wide requests per minute R (default 600)"
    )
    budget.add_argument(
        "--rate-budget-burst",
        type=int,
        default=3,
        help="requests the server lets through back to back after a pause (default 3)",
    )
    budget.add_argument(
        "--rate-budget-seconds",
        type=float,
        help="size the scenario to take about this long at R requests a minute (default 40, --quick 10)",
    )
    parser.add_argument(
        "--skip-layouts",
        action="store_true",
        help="skip the requests-per-layout, small-org and loop-stall scenarios",
    )
    backfill = parser.add_argument_group("backfill scenario (a real Airflow deployment)")
    backfill.add_argument(
        "--backfill-days", type=int, help=f"days backfilled (default {BackfillPlan.days}, --quick 2)"
    )
    backfill.add_argument(
        "--backfill-events-per-day",
        type=int,
        help=f"the org's events a day (default {BackfillPlan.events_per_day:,}, --quick 2,000)",
    )
    backfill.add_argument(
        "--backfill-rpm",
        type=float,
        default=BackfillPlan.requests_per_minute,
        help="the org's budget in requests/min, also the connection's requests_per_minute (default 120)",
    )
    backfill.add_argument(
        "--backfill-burst", type=int, default=BackfillPlan.burst, help="the server's burst (default 3)"
    )
    backfill.add_argument(
        "--backfill-skip-scheduling",
        action="store_true",
        help="skip the empty-org backfill that measures the scheduling bound",
    )
    dag = parser.add_argument_group("deferral cost scenario")
    dag.add_argument(
        "--with-dag", action="store_true", help="run the daily example DAG with `airflow dags test`"
    )
    dag.add_argument(
        "--dag-events", type=int, default=100_000, help="events of the DAG run's day (default 100000)"
    )
    internal = parser.add_argument_group("internal: one contender in this process (used by the harness)")
    internal.add_argument("--contender", choices=sorted(CONTENDERS), help=argparse.SUPPRESS)
    internal.add_argument("--base-url", help=argparse.SUPPRESS)
    internal.add_argument("--oldest", type=int, help=argparse.SUPPRESS)
    internal.add_argument("--latest", type=int, help=argparse.SUPPRESS)
    internal.add_argument("--dest", type=Path, help=argparse.SUPPRESS)
    internal.add_argument("--json-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.events is None:
        args.events = QUICK_EVENTS if args.quick else DEFAULT_EVENTS
    if args.rounds is None:
        args.rounds = 1 if args.quick else DEFAULT_ROUNDS
    if args.rate_budget_seconds is None:
        args.rate_budget_seconds = 10.0 if args.quick else 40.0
    if args.events < 1 or args.rounds < 1:
        parser.error("--events and --rounds must be at least 1")
    args.scenarios = set(args.scenarios or SCENARIOS)
    if args.skip_rate_budget:
        args.scenarios.discard("rate-budget")
    if args.backfill_days is None:
        args.backfill_days = QUICK_BACKFILL_DAYS if args.quick else BackfillPlan.days
    if args.backfill_events_per_day is None:
        quick_events = QUICK_BACKFILL_EVENTS_PER_DAY
        args.backfill_events_per_day = quick_events if args.quick else BackfillPlan.events_per_day
    try:
        args.backfill_plan = BackfillPlan(
            days=args.backfill_days,
            events_per_day=args.backfill_events_per_day,
            requests_per_minute=args.backfill_rpm,
            burst=args.backfill_burst,
            seed=args.seed,
            measure_scheduling=not args.backfill_skip_scheduling,
        )
    except ValueError as error:
        parser.error(str(error))
    return args


# -- throughput ---------------------------------------------------------------------------------------


def run_contender_here(args: argparse.Namespace) -> int:
    """Internal mode: run one contender in this process and write its figures to ``--json-out``."""
    needed = ("base_url", "oldest", "latest", "dest", "json_out")
    missing = ["--" + flag.replace("_", "-") for flag in needed if getattr(args, flag) is None]
    if missing:
        raise SystemExit(f"--contender also needs {', '.join(missing)}")
    job = Job(base_url=args.base_url, oldest=args.oldest, latest=args.latest, destination=args.dest)
    args.json_out.write_text(json.dumps(measure(args.contender, job)))
    return 0


def run_contender_process(name: str, base_url: str, workdir: Path) -> dict[str, Any]:
    """Run one contender in a fresh interpreter (so the peak RSS is its own) and read its figures."""
    destination = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=workdir))
    figures = workdir / f"{name}.json"
    log = workdir / f"{name}.log"
    oldest = int(BENCH_DAY.timestamp())
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--contender",
        name,
        "--base-url",
        base_url,
        "--oldest",
        str(oldest),
        "--latest",
        str(oldest + DAY_SECONDS - 1),
        "--dest",
        str(destination),
        "--json-out",
        str(figures),
    ]
    try:
        with open(log, "wb") as output:
            completed = subprocess.run(
                command, stdout=output, stderr=subprocess.STDOUT, timeout=CONTENDER_TIMEOUT, check=False
            )
        if completed.returncode != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
            raise RuntimeError(f"contender {name} exited with code {completed.returncode}:\n{tail}")
        result: dict[str, Any] = json.loads(figures.read_text())
        return result
    finally:
        # A million events are ~1 GB per contender: free the disk before the next one runs.
        shutil.rmtree(destination, ignore_errors=True)


def run_throughput(args: argparse.Namespace, workdir: Path) -> dict[str, list[dict[str, Any]]]:
    """Every contender, every round, in alternating order; returns each contender's per-round figures."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in args.contenders}
    start = BENCH_DAY
    end = datetime.fromtimestamp(start.timestamp() + DAY_SECONDS, tz=timezone.utc)
    _progress(f"Starting the fake server with {args.events:,} pre-rendered events ...")
    with fake_server(events=args.events, seed=args.seed, start=start, end=end) as base_url:
        for round_number in range(args.rounds):
            # Reverse every other round, so no contender always runs first (cold) or last (warm).
            order = args.contenders if round_number % 2 == 0 else list(reversed(args.contenders))
            for name in order:
                result = run_contender_process(name, base_url, workdir)
                runs[name].append(result)
                _progress(
                    f"round {round_number + 1}/{args.rounds} {name:<10} {result['events']:>10,} events "
                    f"{result['seconds']:8.2f} s {result['events_per_s']:>12,.0f} events/s"
                )
        if not args.skip_layouts:
            from _layouts import requests_per_layout

            _progress("Requests per window for each file layout ...")
            args.layouts = requests_per_layout(base_url, start, args.events, workdir)
    return runs


def summarize(runs: dict[str, list[dict[str, Any]]], events: int) -> dict[str, dict[str, Any]]:
    """The median of each figure over the rounds, plus whether every round saw every event."""
    summary: dict[str, dict[str, Any]] = {}
    for name, rounds in runs.items():
        medians = {figure: statistics.median(run[figure] for run in rounds) for figure in MEDIAN_FIGURES}
        summary[name] = {
            "description": DESCRIPTIONS[name],
            **medians,
            "events": min(run["events"] for run in rounds),
            "requests": max(run["requests"] for run in rounds),
            "body_bytes": max(run["body_bytes"] for run in rounds),
            "complete": all(run["events"] == events for run in rounds),
            "rounds": rounds,
        }
    return summary


def ratios(contenders: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """events/s of each contender over that of slack_sdk, raw and wire (those that ran).

    The median of the per-round ratios: contenders of one round run minutes apart at most, so a
    shared machine getting busier between rounds moves both sides of a ratio together.
    """
    bases = [base for base in ("slack_sdk", "raw", "wire") if base in contenders]
    return {
        name: {f"vs_{base}": _median_ratio(contenders[name], contenders[base]) for base in bases}
        for name in contenders
    }


def _median_ratio(contender: dict[str, Any], base: dict[str, Any]) -> float:
    pairs = zip(contender["rounds"], base["rounds"], strict=True)
    return statistics.median(float(mine["events_per_s"] / theirs["events_per_s"]) for mine, theirs in pairs)


# -- targets and report ------------------------------------------------------------------------------


def core_share(figures: dict[str, Any]) -> float:
    """The share of one core a contender needs to keep up with the org's whole budget."""
    return float(figures["cpu_us_per_event"]) * 1e-6 * ORG_EVENTS_PER_S


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets, each with the measured value and whether it is met."""
    contenders = report.get("contenders", {})
    found: list[dict[str, Any]] = []

    def target(what: str, value: float, met: bool) -> None:
        found.append({"target": what, "value": value, "met": met})

    if "ours" in contenders and "slack_sdk" in contenders:
        value = report["ratios"]["ours"]["vs_slack_sdk"]
        goal = MIN_SPEEDUP_VS_SLACK_SDK
        target(f"ours events/s >= {goal:.0f}x slack_sdk", value, value >= goal)
    if "ours" in contenders:
        share = core_share(contenders["ours"])
        target(
            f"ours CPU at the org's whole budget ({ORG_EVENTS_PER_S:,.0f} events/s) <= "
            f"{MAX_CORE_SHARE:.0%} of a core",
            share,
            share <= MAX_CORE_SHARE,
        )
        growth = contenders["ours"]["rss_growth_mb"]
        at = "" if report["events"] >= DEFAULT_EVENTS else f" (measured at {report['events']:,} events)"
        target(f"ours RSS growth <= 100 MB at 1M events{at}", growth, growth <= 100)
        # The API's limit is optimistic (a page never splits a second), so the pages can number a
        # little fewer than ceil(N/9999): the floor is what the wire loop needed, not that formula.
        requests, optimal = contenders["ours"]["requests"], report["optimal_requests"]
        if "wire" in contenders:
            least = contenders["wire"]["requests"]
            target(
                f"ours requests <= ceil(N/{MAX_LIMIT}) = {optimal} and == wire's {least}",
                requests,
                requests <= optimal and requests == least,
            )
        else:
            target(f"ours requests <= ceil(N/{MAX_LIMIT}) = {optimal}", requests, requests <= optimal)
    if "ours" in contenders and "ours_1h" in contenders:
        value = _median_ratio(contenders["ours_1h"], contenders["ours"])
        target("ours_1h (24 files) events/s within 10% of ours (1 file)", value, value >= 0.9)
        same = contenders["ours_1h"]["requests"] == contenders["ours"]["requests"]
        target("ours_1h requests == ours requests", contenders["ours_1h"]["requests"], same)
    for row in report.get("layouts", []):
        target(
            f"{row['layout']}: requests <= ceil(N/{MAX_LIMIT}) + 1 = {row['minimum'] + 1}",
            row["requests"],
            row["requests"] <= row["minimum"] + 1,
        )
    stall = report.get("loop_stall")
    if stall:
        target(
            f"largest event-loop stall <= {MAX_LOOP_STALL_MS:.0f} ms (median of 3)",
            stall["max_ms"],
            stall["max_ms"] <= MAX_LOOP_STALL_MS,
        )
    budget = report.get("rate_budget")
    if budget:
        target("rate budget used >= 0.9", budget["budget_fraction"], budget["budget_fraction"] >= 0.9)
    deferral = report.get("deferral")
    if deferral and deferral.get("status") == "ran":
        per_run = deferral["deferrals"] / deferral["task_tries"]
        target("deferrals per task run == 1", per_run, per_run == 1)
    if "backfill" in report:
        found += report["backfill"]["targets"]
    return found


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: the throughput table, the scenarios, then the targets."""
    lines = _throughput_lines(report) if "contenders" in report else []
    if "rate_budget" in report:
        lines += ["", _budget_line(report["rate_budget"])]
    if "backfill" in report:
        from _backfill import backfill_lines

        lines += ["", *backfill_lines(report["backfill"])]
    if "deferral" in report:
        lines += ["", _deferral_line(report["deferral"])]
    lines += ["", "| target | measured | met |", "|---|---:|---|"]
    for target in report["targets"]:
        value = target["value"]
        shown = f"{value:.2f}" if isinstance(value, float) else str(value)
        lines.append(f"| {target['target']} | {shown} | {'yes' if target['met'] else '**no**'} |")
    return "\n".join(lines).lstrip("\n")


def _throughput_lines(report: dict[str, Any]) -> list[str]:
    lines = [
        f"Throughput: {report['events']:,} events ({_body_mb(report)} MB of JSON) in one day, pages of "
        f"{MAX_LIMIT}; each contender in its own process; medians of {report['rounds']} round(s) "
        "(the x columns: medians of the per-round ratios).",
        "",
        "| contender | what it does | events/s | CPU µs/event "
        f"| core share at {ORG_EVENTS_PER_S:,.0f} events/s | peak RSS MB "
        "| RSS growth MB | requests (ceil N/9999) | x slack_sdk | x raw | x wire |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, figures in report["contenders"].items():
        missed = "" if figures["complete"] else " **(missed events)**"
        versus = report["ratios"][name]
        lines.append(
            f"| {name}{missed} | {figures['description']} | {figures['events_per_s']:,.0f} "
            f"| {figures['cpu_us_per_event']:.1f} | {core_share(figures):.1%} "
            f"| {figures['peak_rss_mb']:,.0f} | {figures['rss_growth_mb']:,.0f} "
            f"| {figures['requests']} ({report['optimal_requests']}) | {_times(versus, 'vs_slack_sdk')} "
            f"| {_times(versus, 'vs_raw')} | {_times(versus, 'vs_wire')} |"
        )
    if "layouts" in report:
        lines += ["", "| layout | files | events | requests | ceil(N/9999) |", "|---|---:|---:|---:|---:|"]
        lines += [
            f"| {row['layout']} | {row['files']} | {row['events']:,} | {row['requests']} | {row['minimum']} |"
            for row in report["layouts"]
        ]
    if "loop_stall" in report:
        stall = report["loop_stall"]
        lines += [
            "",
            f"Event-loop stall while landing a day of {stall['events']:,} events (1 h files, pages of "
            f"{MAX_LIMIT}), a probe waking every 1 ms: largest {stall['max_ms']:.1f} ms, p99 "
            f"{stall['p99_ms']:.1f} ms (medians of 3 runs; largest per run {stall['max_ms_rounds']}).",
        ]
        cold = stall.get("first_trigger")
        if cold:
            lines += [
                "",
                "A triggerer's first landing trigger, cold (a fresh interpreter with what a triggerer has "
                f"loaded; the class imported on the loop): import {cold['import_ms']:.1f} ms "
                f"({cold['import_cpu_ms']:.1f} ms CPU), largest stall from the import to the trigger's "
                f"event {cold['max_ms']:.1f} ms (medians of 3; largest per run {cold['max_ms_rounds']}).",
            ]
    return lines


def _budget_line(budget: dict[str, Any]) -> str:
    return (
        f"Rate budget: {budget['windows']} daily windows (1 h intervals, pages of {budget['page_limit']}) "
        f"ingested concurrently in one process against an org-wide budget of "
        f"{budget['requests_per_minute']:.0f} requests/minute (server burst {budget['server_burst']}): "
        f"{budget['accepted_requests']} requests answered in {budget['seconds']:.1f} s = "
        f"{budget['budget_fraction']:.1%} of R x minutes (the server's burst allowance can lift it over "
        f"100%), {budget['rate_limited']} answered 429, "
        f"{budget['windows_complete']}/{budget['windows']} windows complete "
        f"({budget['landed_events']:,} events, ids checked against the server's)."
    )


def _deferral_line(deferral: dict[str, Any]) -> str:
    if deferral.get("status") != "ran":
        return f"Deferral cost: not measured ({deferral.get('reason', 'skipped')})."
    return (
        f"Deferral cost: `airflow dags test {deferral['dag_id']}` for a {deferral['events']:,}-event day: "
        f"{deferral['deferrals']} deferral(s) in {deferral['task_tries']} task try(ies), "
        f"{deferral['wall_seconds']:.1f} s wall = {deferral['ingest_seconds']:.1f} s ingest + "
        f"{deferral['airflow_overhead_seconds']:.1f} s Airflow overhead (CLI start, DAG parsing, task start, "
        f"deferral and resume)."
    )


def _times(versus: dict[str, float], key: str) -> str:
    return f"{versus[key]:.2f}" if key in versus else "n/a"


def _body_mb(report: dict[str, Any]) -> str:
    sizes = [figures["body_bytes"] for figures in report["contenders"].values()]
    return f"{max(sizes) / 1e6:,.0f}" if sizes else "?"


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


# -- main ----------------------------------------------------------------------------------------------


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """All scenarios; returns the report (figures, ratios, targets) that the table and the JSON show."""
    from _deferral import run_deferral
    from _rate_budget import RateBudgetPlan, run_rate_budget

    report: dict[str, Any] = {
        "scenarios": sorted(args.scenarios),
        "machine": _machine(),
        "command": " ".join(["python benchmarks/bench_ingest.py", *sys.argv[1:]]),
    }
    if "throughput" in args.scenarios:
        report.update(
            {
                "events": args.events,
                "optimal_requests": math.ceil(args.events / MAX_LIMIT),
                "rounds": args.rounds,
                "window": {"start": BENCH_DAY.isoformat(), "seconds": DAY_SECONDS},
                "org_events_per_s": ORG_EVENTS_PER_S,
            }
        )
        with tempfile.TemporaryDirectory(prefix="bench-ingest-", dir=args.workdir) as workdir:
            runs = run_throughput(args, Path(workdir))
            if not args.skip_layouts:
                from _layouts import small_org_day

                _progress("A small org's day (5,000 events, 1 h files) ...")
                report["layouts"] = [*args.layouts, small_org_day(BENCH_DAY, args.seed, Path(workdir))]
                report["loop_stall"] = run_loop_stall(args)
        report["contenders"] = summarize(runs, args.events)
        report["ratios"] = ratios(report["contenders"])
    if "rate-budget" in args.scenarios:
        _progress(f"Rate budget: {args.rate_budget_rpm:.0f} requests/minute, 4 concurrent windows ...")
        plan = RateBudgetPlan(
            requests_per_minute=args.rate_budget_rpm,
            burst=args.rate_budget_burst,
            windows=4,
            seconds=args.rate_budget_seconds,
            seed=args.seed,
            first_day=BENCH_DAY,
        )
        report["rate_budget"] = run_rate_budget(plan)
    if "backfill" in args.scenarios:
        from _backfill import run_backfill

        report["backfill"] = run_backfill(args.backfill_plan, args.workdir)
    if args.with_dag:
        _progress(f"Deferral cost: the daily DAG for a {args.dag_events:,}-event day ...")
        report["deferral"] = run_deferral(events=args.dag_events, seed=args.seed)
    report["targets"] = targets(report)
    return report


def run_loop_stall(args: argparse.Namespace) -> dict[str, Any]:
    """The event loop's largest stall while ingest_window lands a day (a loop-lag probe beside it).

    Warm (the rounds after a warm-up, in this process) and cold: a triggerer's first trigger in a
    fresh interpreter, its class imported on the loop as Airflow does, the landing path not loaded.
    """
    from _loop_stall import measure, measure_first_trigger

    events = min(args.events, LOOP_STALL_EVENTS)
    _progress(f"Loop stall: a day of {events:,} events, 1 h files, probed every 1 ms ...")
    start = BENCH_DAY
    end = datetime.fromtimestamp(start.timestamp() + DAY_SECONDS, tz=timezone.utc)
    oldest = int(start.timestamp())
    with (
        fake_server(events=events, seed=args.seed, start=start, end=end) as base_url,
        tempfile.TemporaryDirectory(prefix="bench-stall-", dir=args.workdir) as workdir,
    ):
        measure(base_url, oldest, oldest + DAY_SECONDS - 1, Path(workdir) / "warmup")
        rounds = [
            measure(base_url, oldest, oldest + DAY_SECONDS - 1, Path(workdir) / f"r{i}") for i in range(3)
        ]
        _progress("Loop stall: a triggerer's first trigger, cold (3 fresh interpreters) ...")
        cold = [
            measure_first_trigger(base_url, oldest, oldest + DAY_SECONDS - 1, Path(workdir) / f"c{i}")
            for i in range(3)
        ]
    return {
        "events": events,
        "max_ms": statistics.median(r.max_ms for r in rounds),
        "p99_ms": statistics.median(r.p99_ms for r in rounds),
        "max_ms_rounds": [round(r.max_ms, 1) for r in rounds],
        "complete": all(r.events == events for r in rounds),
        "first_trigger": {
            "max_ms": statistics.median(r.max_ms for r in cold),
            "import_ms": statistics.median(r.import_ms for r in cold),
            "import_cpu_ms": statistics.median(r.import_cpu_ms for r in cold),
            "max_ms_rounds": [round(r.max_ms, 1) for r in cold],
            "landed": all(r.status == "success" for r in cold),
        },
    }


def lost_data(report: dict[str, Any]) -> list[str]:
    """What the run found missing: a contender short of events, an incomplete window."""
    problems = [
        f"{name} saw {figures['events']:,} of {report['events']:,} events"
        for name, figures in report.get("contenders", {}).items()
        if not figures["complete"]
    ]
    budget = report.get("rate_budget")
    if budget and not budget["all_complete"]:
        problems.append(f"rate budget: {budget['windows_complete']} of {budget['windows']} windows complete")
    backfill = report.get("backfill")
    if backfill:
        landing = backfill["landing"]
        if landing["lost"] or landing["duplicated"] or landing["unexpected"]:
            problems.append(
                f"backfill: {landing['lost']} ids lost, {landing['duplicated']} duplicated, "
                f"{landing['unexpected']} unexpected"
            )
        if backfill["runs_succeeded"] != backfill["runs"]:
            problems.append(f"backfill: {backfill['runs_succeeded']} of {backfill['runs']} runs succeeded")
    cold = report.get("loop_stall", {}).get("first_trigger")
    if cold and not cold["landed"]:
        problems.append("loop stall: a cold first trigger did not land its window")
    deferral = report.get("deferral")
    if deferral and deferral.get("status") == "ran" and not deferral["complete"]:
        problems.append(f"deferral: the DAG landed {deferral['landed_events']:,} of {deferral['events']:,}")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.contender:
        return run_contender_here(args)
    # Everything here talks to 127.0.0.1. The provider's client (like slack_sdk's) takes a proxy from
    # HTTPS_PROXY & co., which would route the loopback traffic away: drop them for this process and
    # the processes it starts.
    for name in PROXY_VARIABLES:
        os.environ.pop(name, None)
    # The in-process scenarios: one INFO line per interval is right for an on-call engineer, and
    # noise in a benchmark report. Set here, for the bench process only: a module that set it at
    # import would silence the provider's logs in whatever process imports it (a test run).
    logging.getLogger("airflow_provider_slack_audit").setLevel(logging.WARNING)
    report = run_benchmark(args)
    print(markdown(report))
    if args.json_path is not None:
        args.json_path.write_text(json.dumps(report, indent=2) + "\n")
    problems = lost_data(report)
    for problem in problems:
        print(f"ERROR: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
