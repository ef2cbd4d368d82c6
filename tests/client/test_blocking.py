"""Blocking work off the event loop: one thread per stream, and hand-overs back to the loop."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from airflow_provider_slack_audit.client.blocking import (
    MAX_YIELD_SECONDS,
    SLICE_SECONDS,
    _Gate,
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
        with contextlib.suppress(asyncio.CancelledError):
            await task
    # Each hand-over let the loop run its ready callbacks: the ticker moved between every two slices.
    assert all(later > earlier for earlier, later in itertools.pairwise(seen)), seen


async def test_a_loop_that_does_not_answer_is_waited_for_once() -> None:
    done = threading.Event()

    def work() -> None:
        for _slice in range(20):
            _spin(2 * SLICE_SECONDS)
            yield_to_loop()
        done.set()

    future = asyncio.ensure_future(run_blocking(work))
    await asyncio.sleep(0.01)  # the work is running
    # The loop is held: no hand-over is answered. 20 slices of 4 ms take ~0.13 s with one bounded
    # wait; waiting at every slice would take over 1 s.
    time.sleep(0.5)  # noqa: ASYNC251 (the loop is held on purpose)
    assert done.is_set(), "the work waited for a loop that could not answer, slice after slice"
    await future


def test_a_gate_whose_loop_is_not_running_never_waits() -> None:
    loop = asyncio.new_event_loop()
    try:
        gate = _Gate(loop)
        gate.start()
        _spin(2 * SLICE_SECONDS)
        started = time.perf_counter()
        gate.pause()
        assert time.perf_counter() - started < MAX_YIELD_SECONDS / 2
    finally:
        loop.close()
    _spin(2 * SLICE_SECONDS)
    gate.pause()  # closed: still no wait, no error


async def test_time_queued_behind_other_work_is_not_counted_as_work() -> None:
    """The clock of a call starts when the thread starts it: a call queued behind a long one does
    not hand over (and wait for a busy loop) before doing any work."""
    pauses: list[float] = []

    def long() -> None:
        _spin(5 * SLICE_SECONDS)

    def short() -> None:
        started = time.perf_counter()
        yield_to_loop()
        pauses.append(time.perf_counter() - started)

    with one_thread("test-queue"):
        both = asyncio.ensure_future(asyncio.gather(run_blocking(long), run_blocking(short)))
        await asyncio.sleep(0)  # both submitted
        time.sleep(0.2)  # noqa: ASYNC251 (the loop is busy while both run: a hand-over would wait)
        await both
    assert pauses[0] < MAX_YIELD_SECONDS / 2, pauses


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
