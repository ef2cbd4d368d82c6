"""Smoke test of the benchmark harness: tiny sizes, the report's shape and completeness, no timings.

One run of ``benchmarks/bench_ingest.py`` (5,000 events, one round, a few seconds of the rate-budget
scenario) feeds the tests of the report; the pure report functions are checked on made-up figures.
"""

from __future__ import annotations

import math
import subprocess
from types import ModuleType
from typing import Any

import pytest

from support.bench import load_benchmark, run_bench

EVENTS = 5_000
ISSUE_CONTENDERS = ("wire", "raw", "slack_sdk", "ours", "ours_gzip")
FIGURES = ("events_per_s", "mb_per_s", "peak_rss_mb", "rss_growth_mb", "requests")

BenchRun = tuple[subprocess.CompletedProcess[str], dict[str, Any]]


@pytest.fixture(scope="module")
def bench_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Run the harness once, as `make bench` does, at sizes that keep the test suite fast."""
    return run_bench(
        tmp_path_factory.mktemp("bench"),
        "--events",
        str(EVENTS),
        "--rounds",
        "1",
        "--rate-budget-seconds",
        "3",
        # The backfill scenario (a real deployment) has its own smoke test: test_bench_backfill.py.
        "--scenario",
        "throughput",
        "--scenario",
        "rate-budget",
        timeout=300,
    )


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    """The harness imported as a module, for its report functions."""
    return load_benchmark("bench_ingest")


@pytest.mark.slow  # one run of the harness: ~30 s
def test_report_has_the_shape_the_issue_asks_for(bench_run: BenchRun) -> None:
    _, report = bench_run
    assert report["events"] == EVENTS
    assert report["optimal_requests"] == math.ceil(EVENTS / 9999)
    for name in ISSUE_CONTENDERS:
        figures = report["contenders"][name]
        assert all(isinstance(figures[figure], (int, float)) for figure in FIGURES), figures


@pytest.mark.slow  # one run of the harness: ~30 s
def test_every_contender_saw_every_event(bench_run: BenchRun) -> None:
    _, report = bench_run
    assert {name: figures["events"] for name, figures in report["contenders"].items()} == {
        name: EVENTS for name in report["contenders"]
    }


@pytest.mark.slow  # one run of the harness: ~30 s
def test_requests_are_counted_on_the_wire(bench_run: BenchRun) -> None:
    _, report = bench_run
    contenders = report["contenders"]
    assert contenders["ours"]["requests"] == contenders["wire"]["requests"] <= report["optimal_requests"]
    # One request stream per window: 24 hourly files cost what one file costs.
    assert contenders["ours_1h"]["requests"] == contenders["ours"]["requests"]
    assert all(row["requests"] <= row["minimum"] + 1 for row in report["layouts"])


@pytest.mark.slow  # one run of the harness: ~30 s
def test_printed_table_has_a_row_per_contender(bench_run: BenchRun) -> None:
    completed, report = bench_run
    rows = [line for line in completed.stdout.splitlines() if line.startswith("| ")]
    assert {row.split("|")[1].strip() for row in rows} >= set(report["contenders"])


@pytest.mark.slow  # one run of the harness: ~30 s
def test_rate_budget_lands_every_window_completely(bench_run: BenchRun) -> None:
    _, report = bench_run
    budget = report["rate_budget"]
    assert budget["all_complete"] is True
    assert budget["windows_complete"] == budget["windows"] == 4
    assert budget["accepted_requests"] >= budget["pages"]


def test_summary_takes_the_median_of_the_rounds(bench: ModuleType) -> None:
    rounds = [_figures(events_per_s=rate) for rate in (30.0, 10.0, 20.0)]
    summary = bench.summarize({"ours": rounds}, events=100)
    assert summary["ours"]["events_per_s"] == 20.0
    assert summary["ours"]["complete"] is True


def test_ratios_are_the_median_of_the_per_round_ratios(bench: ModuleType) -> None:
    # Round 2 ran on a busier machine: both contenders slowed down, their ratio did not.
    contenders = bench.summarize(
        {
            "slack_sdk": [_figures(events_per_s=rate) for rate in (10.0, 5.0, 10.0)],
            "ours": [_figures(events_per_s=rate) for rate in (60.0, 30.0, 80.0)],
        },
        events=100,
    )
    assert bench.ratios(contenders)["ours"]["vs_slack_sdk"] == 6.0


def test_a_contender_short_of_events_is_reported_as_lost_data(bench: ModuleType) -> None:
    summary = bench.summarize({"raw": [_figures(events=99)]}, events=100)
    report = {"events": 100, "contenders": summary}
    assert bench.lost_data(report) == ["raw saw 99 of 100 events"]


def _cpu_guard(ours: dict[str, Any], slack_sdk: dict[str, Any], bench: ModuleType) -> dict[str, Any]:
    contenders = bench.summarize({"slack_sdk": [slack_sdk], "ours": [ours]}, events=100)
    return {target["target"]: target for target in bench.targets(_report(contenders, bench))}


def _report(contenders: dict[str, Any], bench: ModuleType) -> dict[str, Any]:
    return {
        "events": 100,
        "optimal_requests": 1,
        "contenders": contenders,
        "ratios": bench.ratios(contenders),
    }


SPEED = "ours events/s >= 4x slack_sdk"
CORE_SHARE = "ours CPU at the org's whole budget (8,332 events/s) <= 10% of a core"


def test_a_missed_speed_target_is_reported_as_not_met(bench: ModuleType) -> None:
    found = _cpu_guard(_figures(events_per_s=35.0), _figures(events_per_s=10.0), bench)
    assert found[SPEED]["value"] == 3.5
    assert found[SPEED]["met"] is False


def test_the_cpu_guard_is_met_at_4x_and_a_tenth_of_a_core(bench: ModuleType) -> None:
    # 10 µs of CPU per event x 8,332 events/s = 8.3% of a core.
    found = _cpu_guard(_figures(events_per_s=40.0, cpu_us_per_event=10.0), _figures(events_per_s=10.0), bench)
    assert found[SPEED]["met"] is True
    assert found[CORE_SHARE]["value"] == pytest.approx(0.0833, abs=1e-4)
    assert found[CORE_SHARE]["met"] is True


def test_a_landing_path_needing_over_a_tenth_of_a_core_misses_the_cpu_guard(bench: ModuleType) -> None:
    found = _cpu_guard(_figures(events_per_s=40.0, cpu_us_per_event=13.0), _figures(events_per_s=10.0), bench)
    assert found[CORE_SHARE]["met"] is False


def test_the_retired_ratio_targets_are_gone(bench: ModuleType) -> None:
    contenders = bench.summarize(
        {name: [_figures()] for name in ("wire", "raw", "slack_sdk", "ours", "ours_gzip")}, events=100
    )
    names = [target["target"] for target in bench.targets(_report(contenders, bench))]
    assert not [name for name in names if "x raw" in name or "x wire" in name or "ours_gzip" in name]
    assert [name for name in names if "slack_sdk" in name] == [SPEED]


def _figures(
    *, events: int = 100, events_per_s: float = 1.0, cpu_us_per_event: float = 9.0
) -> dict[str, Any]:
    return {
        "cpu_us_per_event": cpu_us_per_event,
        "events": events,
        "seconds": events / events_per_s,
        "requests": 1,
        "body_bytes": 1000,
        "events_per_s": events_per_s,
        "mb_per_s": 1.0,
        "rss_before_mb": 50.0,
        "peak_rss_mb": 60.0,
        "rss_growth_mb": 10.0,
    }


def test_without_the_wire_contender_ours_requests_are_held_to_the_formula_alone(bench: ModuleType) -> None:
    # The API's limit is optimistic: a window can need fewer pages than ceil(N/9999), never more.
    for requests, met in ((1, True), (2, False)):
        contenders = bench.summarize({"ours": [{**_figures(), "requests": requests}]}, events=100)
        found = {target["target"]: target["met"] for target in bench.targets(_report(contenders, bench))}
        assert found["ours requests <= ceil(N/9999) = 1"] is met
