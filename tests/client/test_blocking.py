"""Blocking work off the event loop: one thread per stream, and hand-overs back to the loop."""

from __future__ import annotations

import asyncio
import itertools
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from airflow_provider_slack_audit.client.blocking import (
    MAX_YIELD_SECONDS,
    SLICE_SECONDS,
    one_thread,
    run_blocking,
    yield_to_loop,
)


def _spin(seconds: float) -> None:
    """Busy Python that never releases the GIL of its own accord."""
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass


@pytest.fixture
def gil_moves_only_when_released() -> Iterator[None]:
    """A switch interval longer than any test: a thread keeps the GIL until it blocks."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(30.0)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


async def test_blocking_work_hands_the_loop_over_between_its_slices(
    gil_moves_only_when_released: None,
) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    def work() -> list[int]:
        seen = []
        for _slice in range(10):
            _spin(2 * SLICE_SECONDS)
            seen.append(ticks)
            yield_to_loop()
        return seen

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    try:
        seen = await run_blocking(work)
    finally:
        task.cancel()
    # Each hand-over let the loop run its ready callbacks: the ticker moved between every two slices.
    assert all(later > earlier for earlier, later in itertools.pairwise(seen)), seen


async def test_a_loop_that_does_not_answer_delays_a_slice_by_a_bounded_wait() -> None:
    done = threading.Event()

    def work() -> None:
        for _slice in range(3):
            _spin(2 * SLICE_SECONDS)
            yield_to_loop()
        done.set()

    future = asyncio.ensure_future(run_blocking(work))
    await asyncio.sleep(0.01)  # the work is running
    time.sleep(10 * MAX_YIELD_SECONDS)  # noqa: ASYNC251 (the loop is held on purpose: no hand-over is answered)
    assert done.is_set(), "the work waited for a loop that could not answer"
    await future


async def test_outside_the_work_thread_yield_to_loop_returns_at_once() -> None:
    started = time.perf_counter()
    _spin(2 * SLICE_SECONDS)
    yield_to_loop()  # on the loop's own thread: waiting for the loop would stall it
    assert time.perf_counter() - started < MAX_YIELD_SECONDS


async def test_one_thread_runs_a_streams_work_in_order_in_one_thread() -> None:
    order: list[int] = []

    def step(n: int) -> int:
        order.append(n)
        return threading.get_ident()

    with one_thread("test-stream"):
        threads = await asyncio.gather(*(run_blocking(step, n) for n in range(5)))
    assert order == [0, 1, 2, 3, 4]
    assert len(set(threads)) == 1
    assert threads[0] != threading.get_ident()


async def test_work_sees_the_callers_context() -> None:
    import contextvars

    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    var.set("the caller's")
    assert await run_blocking(var.get) == "the caller's"
