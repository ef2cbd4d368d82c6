"""The backfill scenario: the backfill example DAG on a real Airflow deployment (issue 25, item 4).

A throwaway PostgreSQL and an Airflow 3 deployment (scheduler, DAG processor, triggerer, API
server, LocalExecutor; ``tests/support/airflow_deployment.py``) run ``slack_audit_backfill`` as its
users do: the DAG's catch-up from ``SLACK_AUDIT_BACKFILL_START`` (``days`` days before today) to
yesterday, ``max_active_runs=4``, its tasks in the ``slack_audit_api`` pool of 4 slots that counts
deferred tasks. The fake server (in a thread of this process, so its request log is at hand) holds
``events_per_day`` events a day and lets R requests a minute through for the whole org.

Two phases, each on a fresh copy of one migrated metadata DB:

1. The same backfill against an empty org: its wall time is the scheduling bound (what Airflow's
   per-run work costs with four runs at a time and nothing to fetch).
2. The backfill of the real org, while the triggerer's process tree is sampled (RSS, CPU) and a
   probe trigger on the same triggerer measures how late its event loop wakes up.

Before the backfill, the probe loads the landing path on the triggerer as a process's first landing
trigger does (imports, Airflow's filesystem registry), so that one-time cost (RSS, loop stall) is
reported apart from what the windows cost.

Reported: wall time against max(budget bound, scheduling bound), 429 share, requests per window
against ceil(N/9999), the triggerer's RSS (cold, with the landing path loaded, peak) and CPU, the
largest loop stall, and every id read back from the landing (lost, duplicated, unexpected).
"""

from __future__ import annotations

import bisect
import gzip
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec

REPO = Path(__file__).resolve().parent.parent
# The deployment harness is shared with the system tests (tests/support, imported as `support`).
sys.path.insert(0, str(REPO / "tests"))

from support.airflow_deployment import (  # noqa: E402
    LOOP_PROBE_DAG_ID,
    AirflowDeployment,
    PostgresMetadata,
    ProcessSampler,
    RunState,
    airflow_deployment,
)
from support.postgres import PostgresCluster, postgres_cluster  # noqa: E402

DAG_FILE = REPO / "example_dags" / "slack_audit_backfill.py"
DAG_ID = "slack_audit_backfill"
POOL = "slack_audit_api"
TEMPLATE_DATABASE = "template_airflow"  # migrated once, copied for each phase
MAX_ACTIVE_RUNS = 4  # the DAG's, and the pool's slots its docstring asks for
MAX_LIMIT = 9999
DAY = 86_400
TOKEN = "xoxp-test"  # noqa: S105 (the fake server's default token, not a secret)
MAX_LOOP_STALL_MS = 20.0
# ~50 requests/min for the whole org x 9,999 entries a page: the most events/s an org can yield.
ORG_EVENTS_PER_S = 50 * 9999 / 60
IDLE_SECONDS = 10.0  # the triggerer sampled with only the probe running, before the backfill starts
COLD_SECONDS = 5.0  # ... and before that, before the landing path was loaded on it


class _Id(msgspec.Struct):
    id: str


_id_decoder = msgspec.json.Decoder(_Id)


@dataclass(frozen=True)
class BackfillPlan:
    """The scenario's size: ``days`` daily windows of ``events_per_day`` events at R requests/min."""

    days: int = 60
    events_per_day: int = 50_000
    requests_per_minute: float = 120.0
    burst: int = 3
    seed: int = 1
    timeout: float = 4 * 3600.0
    measure_scheduling: bool = True

    def __post_init__(self) -> None:
        if self.days < 1 or self.events_per_day < 0 or self.requests_per_minute <= 0 or self.burst < 1:
            raise ValueError(
                f"the backfill needs days >= 1, events_per_day >= 0, requests_per_minute > 0 and burst >= 1, "
                f"got {self.days}, {self.events_per_day}, {self.requests_per_minute}, {self.burst}"
            )

    def span(self, today: datetime) -> tuple[datetime, datetime]:
        """The backfilled days: the catch-up from ``days`` days ago up to yesterday (today excluded)."""
        return today - timedelta(days=self.days), today


def run_backfill(plan: BackfillPlan, workdir: Path | None = None) -> dict[str, Any]:
    """Both phases on one PostgreSQL; the scenario's figures (see the module docstring)."""
    today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    first, end = plan.span(today)
    report: dict[str, Any] = {
        "plan": asdict(plan),
        "span": [first.isoformat(), end.isoformat()],
        "loadavg_at_start": list(os.getloadavg()),
    }
    with (
        tempfile.TemporaryDirectory(prefix="bench-backfill-", dir=workdir) as root_name,
        postgres_cluster() as cluster,
    ):
        root = Path(root_name)
        _progress("Backfill: migrating a PostgreSQL metadata DB ...")
        template_db = PostgresMetadata(cluster, TEMPLATE_DATABASE)
        template_db.create(template=None)
        template = AirflowDeployment(root / "template", [DAG_FILE], metadata=template_db)
        template.migrate()
        template.set_pool(POOL, MAX_ACTIVE_RUNS)
        if plan.measure_scheduling:
            _progress(f"Backfill: {plan.days} days of an empty org (the scheduling bound) ...")
            report["scheduling"] = _empty_org_phase(plan, cluster, root, first, end)
        _progress(
            f"Backfill: {plan.days} days x {plan.events_per_day:,} events at "
            f"{plan.requests_per_minute:.0f} requests/min ..."
        )
        report.update(_org_phase(plan, cluster, root, first, end))
    report["loadavg_at_end"] = list(os.getloadavg())
    report["targets"] = backfill_targets(report)
    return report


def _empty_org_phase(
    plan: BackfillPlan, cluster: PostgresCluster, root: Path, first: datetime, end: datetime
) -> dict[str, Any]:
    with (
        _server(plan, first, end, events=0) as server,
        _deployment(
            cluster,
            "airflow_empty",
            root / "empty",
            _env(plan, server.base_url, root / "landing-empty", first),
        ) as deployment,
    ):
        deployment.wait_for_dags([DAG_ID])
        started = time.time()
        deployment.unpause(DAG_ID)
        runs = deployment.wait_for_runs(DAG_ID, plan.days, timeout=plan.timeout)
        finished = time.time()
    return {
        "wall_seconds": finished - started,
        "runs": len(runs),
        "runs_succeeded": sum(run.state == "success" for run in runs),
        "run_seconds_median": _median_run_seconds(runs),
        "requests": len(server.logs_requests()),
    }


def _org_phase(
    plan: BackfillPlan, cluster: PostgresCluster, root: Path, first: datetime, end: datetime
) -> dict[str, Any]:
    landing = root / "landing"
    timeline: list[tuple[float, int, int]] = []
    events = plan.days * plan.events_per_day
    with (
        _server(plan, first, end, events=events) as server,
        _deployment(
            cluster, "airflow_backfill", root / "backfill", _env(plan, server.base_url, landing, first)
        ) as deployment,
    ):
        deployment.wait_for_dags([DAG_ID, LOOP_PROBE_DAG_ID])
        with ProcessSampler(deployment.pid("triggerer")) as sampler:
            deployment.start_loop_probe()
            cold_start = time.time()
            time.sleep(COLD_SECONDS)
            # A process's first landing trigger loads the landing path once: measured on its own.
            warm_start = time.time()
            warmed = deployment.warm_triggerer(landing.as_uri())
            idle_start = max(time.time(), warmed + 1)
            time.sleep(IDLE_SECONDS)
            started = time.time()
            deployment.unpause(DAG_ID)

            def record() -> None:
                states = deployment.task_states(DAG_ID)
                timeline.append((time.time(), states.get("deferred", 0), states.get("success", 0)))

            runs = deployment.wait_for_runs(DAG_ID, plan.days, timeout=plan.timeout, on_tick=record)
            finished = time.time()
            deployment.stop_loop_probe()
        stalls = deployment.loop_probe_samples()
        requests = server.logs_requests()
        oldest, latest = int(first.timestamp()), int(end.timestamp()) - 1
        expected = server.expected_ids(oldest, latest)
        window_events = [
            len(server.expected_ids(oldest + day * DAY, oldest + (day + 1) * DAY - 1))
            for day in range(plan.days)
        ]
    figures: dict[str, Any] = {
        "wall_seconds": finished - started,
        "runs": len(runs),
        "runs_succeeded": sum(run.state == "success" for run in runs),
        "events": len(expected),
        "peak_deferred": max((deferred for _, deferred, _ in timeline), default=0),
        "run_seconds_median": _median_run_seconds(runs),
        # (seconds since the backfill started, tasks deferred, tasks succeeded), once a poll.
        "timeline": [(round(at - started, 1), deferred, done) for at, deferred, done in timeline],
    }
    figures.update(_request_figures(plan, requests, oldest, window_events, finished - started))
    figures["triggerer"] = _triggerer_figures(sampler, idle_start, started, finished, figures)
    figures["triggerer"]["rss_cold_mb"] = statistics.median(
        sample.rss_mb for sample in sampler.between(cold_start, warm_start)
    )
    figures["loop_stall"] = _stall_figures(stalls, idle_start, started, finished, timeline)
    figures["loop_stall"]["first_trigger_ms"] = max(
        (lateness for second, lateness in stalls if warm_start - 1 <= second <= warmed + 1), default=None
    )
    figures["landing"] = read_back(landing, expected)
    return figures


def _median_run_seconds(runs: list[RunState]) -> float | None:
    durations = [run.end - run.start for run in runs if run.start is not None and run.end is not None]
    return statistics.median(durations) if durations else None


def _request_figures(
    plan: BackfillPlan, requests: list[Any], oldest: int, window_events: list[int], wall: float
) -> dict[str, Any]:
    accepted = [request for request in requests if request.status == 200]
    rate_limited = sum(request.status == 429 for request in requests)
    per_window: Counter[int] = Counter()
    for request in accepted:
        per_window[(int(request.query["oldest"]) - oldest) // DAY] += 1
    windows = [
        {
            "day": day,
            "events": events,
            "requests": per_window[day],
            "minimum": max(1, math.ceil(events / MAX_LIMIT)),
        }
        for day, events in enumerate(window_events)
    ]
    return {
        "requests": len(requests),
        "accepted_requests": len(accepted),
        "rate_limited": rate_limited,
        "rate_limited_share": rate_limited / len(requests) if requests else 0.0,
        "budget_bound_seconds": len(accepted) / plan.requests_per_minute * 60,
        "budget_used": len(accepted) / (plan.requests_per_minute * wall / 60),
        "windows": windows,
        "windows_over_minimum": sum(row["requests"] > row["minimum"] for row in windows),
        "most_requests_over_minimum": max((row["requests"] - row["minimum"] for row in windows), default=0),
    }


def _triggerer_figures(
    sampler: ProcessSampler, idle_start: float, started: float, finished: float, figures: dict[str, Any]
) -> dict[str, Any]:
    idle = sampler.between(idle_start, started)
    busy = sampler.between(started, finished)
    if not idle or not busy:
        return {"sampled": False}
    baseline = statistics.median(sample.rss_mb for sample in idle)
    peak = max(sample.rss_mb for sample in busy)
    idle_cpu_rate = (idle[-1].cpu_seconds - idle[0].cpu_seconds) / max(idle[-1].time - idle[0].time, 1e-9)
    cpu = busy[-1].cpu_seconds - idle[-1].cpu_seconds
    landing_cpu = max(cpu - idle_cpu_rate * (busy[-1].time - idle[-1].time), 0.0)
    events = figures["events"]
    concurrent = max(figures["peak_deferred"], 1)
    return {
        "sampled": True,
        "rss_baseline_mb": baseline,
        "rss_peak_mb": peak,
        "rss_growth_mb": peak - baseline,
        "rss_growth_per_window_mb": (peak - baseline) / concurrent,
        "cpu_seconds": cpu,
        "idle_cpu_per_second": idle_cpu_rate,
        "landing_cpu_seconds": landing_cpu,
        "cpu_us_per_event": landing_cpu / events * 1e6 if events else None,
        "core_share_at_org_budget": landing_cpu / events * ORG_EVENTS_PER_S if events else None,
    }


def _stall_figures(
    stalls: list[tuple[float, float]],
    idle_start: float,
    started: float,
    finished: float,
    deferred: list[tuple[float, int, int]],
) -> dict[str, Any]:
    """The probe's lateness while the backfill ran, after its first window landed, and with none deferred.

    The first windows a triggerer process lands pay its one-time costs (imports, the filesystem
    registry); from the first landed window on, the figure is what every later window costs. The
    seconds when no window was deferred (between runs) measure the machine, not the landing: on a
    loaded machine the OS alone makes the probe late. ``deferred`` holds the polls of the backfill:
    (Unix second, tasks deferred, tasks succeeded).
    """
    first_landed = next((at for at, _, done in deferred if done), None)
    polls = [at for at, _, _ in deferred]

    def windows_at(second: float) -> int:
        index = bisect.bisect_right(polls, second) - 1
        return deferred[index][1] if index >= 0 else 0

    idle = [lateness for second, lateness in stalls if idle_start <= second < started]
    timeline = [(second - started, lateness) for second, lateness in stalls if started <= second <= finished]
    busy = sorted(lateness for _, lateness in timeline)
    warm = sorted(
        lateness
        for second, lateness in stalls
        if first_landed is not None and first_landed <= second <= finished
    )
    quiet = sorted(
        lateness for second, lateness in stalls if started <= second <= finished and windows_at(second) == 0
    )
    return {
        "seconds_probed": len(busy),
        "max_ms": busy[-1] if busy else None,
        "p99_of_seconds_ms": busy[int(len(busy) * 0.99)] if busy else None,
        "seconds_over_limit": sum(lateness > MAX_LOOP_STALL_MS for lateness in busy),
        "idle_max_ms": max(idle) if idle else None,
        "warm_max_ms": warm[-1] if warm else None,
        "warm_p99_of_seconds_ms": warm[int(len(warm) * 0.99)] if warm else None,
        "warm_seconds_over_limit": sum(lateness > MAX_LOOP_STALL_MS for lateness in warm),
        "warm_seconds_probed": len(warm),
        "no_window_max_ms": quiet[-1] if quiet else None,
        "no_window_seconds_over_limit": sum(lateness > MAX_LOOP_STALL_MS for lateness in quiet),
        "no_window_seconds_probed": len(quiet),
        # (seconds since the backfill started, largest lateness in that second): where the stalls are.
        "timeline": [(round(offset, 1), lateness) for offset, lateness in timeline],
    }


def read_back(landing: Path, expected: set[str]) -> dict[str, int]:
    """Every id in the landed data files, counted: lost, duplicated and unexpected ids (the oracle's)."""
    counts: Counter[str] = Counter()
    files = 0
    for path in sorted(landing.rglob("*")):
        if path.name.endswith(".jsonl.gz"):
            opener: Any = gzip.open
        elif path.name.endswith(".jsonl"):
            opener = open
        else:
            continue
        files += 1
        with opener(path, "rb") as lines:
            counts.update(_id_decoder.decode(line).id for line in lines)
    return {
        "files": files,
        "ids": sum(counts.values()),
        "lost": len(expected - counts.keys()),
        "duplicated": sum(count - 1 for count in counts.values()),
        "unexpected": len(counts.keys() - expected),
    }


def backfill_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets for the backfill, each with the measured value and whether it is met."""
    found: list[dict[str, Any]] = []

    def target(what: str, value: float | None, met: bool) -> None:
        found.append({"target": what, "value": value, "met": met})

    scheduling = report.get("scheduling", {}).get("wall_seconds", 0.0)
    bound = max(report["budget_bound_seconds"], scheduling)
    wall = report["wall_seconds"]
    target("backfill wall <= 1.15 x max(budget bound, scheduling bound)", wall / bound, wall <= 1.15 * bound)
    share = report["rate_limited_share"]
    target("backfill 429s <= 2% of requests", share, share <= 0.02)
    stall = report["loop_stall"]["max_ms"]
    target(
        f"triggerer loop stall <= {MAX_LOOP_STALL_MS:.0f} ms",
        stall,
        stall is not None and stall <= MAX_LOOP_STALL_MS,
    )
    triggerer = report["triggerer"]
    if triggerer.get("sampled"):
        growth = triggerer["rss_growth_per_window_mb"]
        target("triggerer RSS growth <= 40 MB per concurrent window", growth, growth <= 40.0)
    excess = report["most_requests_over_minimum"]
    target("requests per window <= ceil(N/9999) + 1", excess, excess <= 1)
    landing = report["landing"]
    target("ids lost", landing["lost"], landing["lost"] == 0)
    target("ids duplicated", landing["duplicated"], landing["duplicated"] == 0)
    return found


def backfill_lines(report: dict[str, Any]) -> list[str]:
    """The scenario's paragraph of the Markdown report."""
    plan, triggerer, stall = report["plan"], report["triggerer"], report["loop_stall"]
    landing, scheduling = report["landing"], report.get("scheduling")
    first, end = (instant[:10] for instant in report["span"])
    lines = [
        "Backfill on a real deployment (Airflow scheduler, DAG processor, triggerer, API server, "
        f"LocalExecutor, PostgreSQL): `{DAG_ID}` over {plan['days']} days ({first} to {end}), "
        f"{report['events']:,} events, at an org budget of {plan['requests_per_minute']:.0f} requests/min "
        f"(server burst {plan['burst']}); load average {_load(report)}.",
        "",
        "| figure | measured |",
        "|---|---:|",
        f"| wall time | {report['wall_seconds']:.0f} s ({report['runs_succeeded']}/{report['runs']} runs "
        f"succeeded; a run: median {_seconds(report['run_seconds_median'])}) |",
        f"| budget bound (accepted requests / budget) | {report['budget_bound_seconds']:.0f} s "
        f"({report['accepted_requests']} requests, {report['budget_used']:.0%} of the budget used) |",
    ]
    if scheduling:
        lines.append(
            f"| scheduling bound (the same backfill of an empty org) | {scheduling['wall_seconds']:.0f} s "
            f"(a run: median {_seconds(scheduling['run_seconds_median'])}) |"
        )
    lines += [
        f"| 429 answers | {report['rate_limited']} of {report['requests']} "
        f"({report['rate_limited_share']:.1%}) |",
        f"| windows over ceil(N/9999) | {report['windows_over_minimum']} of {len(report['windows'])} "
        f"(at most +{report['most_requests_over_minimum']}) |",
        f"| windows deferred at once | {report['peak_deferred']} |",
    ]
    if triggerer.get("sampled"):
        lines += [
            f"| triggerer RSS (process tree) | {triggerer['rss_cold_mb']:.0f} MB cold; "
            f"{triggerer['rss_baseline_mb']:.0f} MB with the landing path loaded (once a process: "
            f"+{triggerer['rss_baseline_mb'] - triggerer['rss_cold_mb']:.0f} MB); peak "
            f"{triggerer['rss_peak_mb']:.0f} MB (+{triggerer['rss_growth_mb']:.0f} MB, "
            f"{triggerer['rss_growth_per_window_mb']:.0f} MB per concurrent window) |",
            f"| triggerer CPU | {triggerer['cpu_seconds']:.1f} s, "
            f"{triggerer['landing_cpu_seconds']:.1f} s above idle ({_per_event(triggerer)}) |",
        ]
    lines += [
        f"| largest loop stall (probe trigger, 1 ms sleeps) | {_ms(stall['max_ms'])} (p99 of seconds "
        f"{_ms(stall['p99_of_seconds_ms'])}, {stall['seconds_over_limit']} of "
        f"{stall['seconds_probed']} seconds over {MAX_LOOP_STALL_MS:.0f} ms; "
        f"idle {_ms(stall['idle_max_ms'])}) |",
        f"| loop stall of loading the landing path (once a process: imports, filesystem registry) | "
        f"{_ms(stall['first_trigger_ms'])} |",
        f"| largest loop stall once the first window had landed | {_ms(stall['warm_max_ms'])} "
        f"({stall['warm_seconds_over_limit']} of {stall['warm_seconds_probed']} seconds over "
        f"{MAX_LOOP_STALL_MS:.0f} ms) |",
        "| largest loop stall with no window deferred (the machine's own) | "
        f"{_ms(stall['no_window_max_ms'])} "
        f"({stall['no_window_seconds_over_limit']} of {stall['no_window_seconds_probed']} seconds over "
        f"{MAX_LOOP_STALL_MS:.0f} ms) |",
        f"| landing read back | {landing['ids']:,} ids in {landing['files']} files: {landing['lost']} lost, "
        f"{landing['duplicated']} duplicated, {landing['unexpected']} unexpected |",
    ]
    return lines


def _per_event(triggerer: dict[str, Any]) -> str:
    per_event = triggerer["cpu_us_per_event"]
    if per_event is None:
        return "no events"
    share = triggerer["core_share_at_org_budget"]
    return f"{per_event:.1f} µs per event: {share:.0%} of a core at {ORG_EVENTS_PER_S:,.0f} events/s"


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} s"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"


def _load(report: dict[str, Any]) -> str:
    start, end = report["loadavg_at_start"], report.get("loadavg_at_end", report["loadavg_at_start"])
    return f"{start[0]:.1f} at the start, {end[0]:.1f} at the end"


def _env(plan: BackfillPlan, base_url: str, landing: Path, first: datetime) -> dict[str, str]:
    landing.mkdir(parents=True, exist_ok=True)
    connection = {
        "conn_type": "slack_audit",
        "password": TOKEN,
        "extra": {"base_url": base_url, "requests_per_minute": plan.requests_per_minute},
    }
    return {
        "AIRFLOW_CONN_SLACK_AUDIT_DEFAULT": json.dumps(connection),
        "SLACK_AUDIT_BASE_PATH": landing.as_uri(),
        "SLACK_AUDIT_BACKFILL_START": first.date().isoformat(),
        # A failed try is retried after seconds, not the DAG's minute: a benchmark reports, it does not wait.
        "SLACK_AUDIT_RETRY_DELAY_SECONDS": "5",
    }


def _deployment(
    cluster: PostgresCluster, database: str, home: Path, env: dict[str, str]
) -> AbstractContextManager[AirflowDeployment]:
    """A deployment of the backfill DAG on a fresh copy of the migrated template database."""
    return airflow_deployment(
        home,
        [DAG_FILE],
        env,
        metadata=PostgresMetadata(cluster, database),
        template=TEMPLATE_DATABASE,
        loop_probe=True,
    )


@contextmanager
def _server(plan: BackfillPlan, first: datetime, end: datetime, *, events: int) -> Iterator[Any]:
    """The fake org in a thread of this process, its request log at hand; org-wide R requests a minute."""
    from airflow_provider_slack_audit.testing import FakeAuditLogsServer

    server = FakeAuditLogsServer(
        events=events,
        seed=plan.seed,
        start=first,
        end=end,
        requests_per_minute=plan.requests_per_minute,
        rate_limit_burst=plan.burst,
    )
    server.start_in_thread()
    try:
        yield server
    finally:
        server.stop()


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
