"""Where the blocking work of a page (decoding, checking, writing) runs, off the event loop.

By default in asyncio's executor (as ``asyncio.to_thread`` would). Inside :func:`one_thread`, in one thread
of its own, in the order it was submitted: a stream of pages keeps its large, short-lived buffers
(a body, its decoded slices, a batch's lines) in one thread: glibc gives every thread that
allocates an arena of its own and keeps memory freed there resident (docs/performance.md, Memory).

A context variable carries the choice, so the client (which imports no Airflow and knows nothing
of streams) and the pipeline share the thread without passing it around: work submitted from the
task that entered :func:`one_thread` (an async generator of pages consumed there included) runs
in that thread.

Off the loop is not enough to keep the loop free: a thread busy with Python or with C calls that
hold the GIL makes the event loop's thread wait for the GIL after every system call it makes
(``epoll_wait``, ``recv``, ``send``), up to the switch interval each time. The work therefore calls
:func:`yield_to_loop` between its slices: after :data:`SLICE_SECONDS` of work it hands the GIL to
the loop and waits (briefly, at most :data:`MAX_YIELD_SECONDS`) until the loop has run the
callbacks that were ready. Outside :func:`run_blocking`'s thread it does nothing; a loop that is
not running, or did not answer once, is not waited for again by that call.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

_T = TypeVar("_T")
_executor: contextvars.ContextVar[Executor | None] = contextvars.ContextVar(
    "slack_audit_blocking_executor", default=None
)

SLICE_SECONDS = 0.002
"""Work between two hand-overs to the event loop, at most (give or take one slice of the work)."""
MAX_YIELD_SECONDS = 0.05
"""How long a hand-over waits for the loop at most (a loop that is stopping never answers)."""


class _Gate:
    """One :func:`run_blocking` call's hand-overs to the loop it was submitted from (used by the
    one thread that runs the call)."""

    __slots__ = ("_answering", "_loop", "_since")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._since = 0.0
        self._answering = True

    def start(self) -> None:
        """The call starts running (its time waiting in a queue is not work)."""
        self._since = time.perf_counter()

    def pause(self) -> None:
        if not self._answering or time.perf_counter() - self._since < SLICE_SECONDS:
            return
        if not self._loop.is_running():  # stopping, or closed: nobody to hand over to
            self._answering = False
            return
        resumed = threading.Event()  # one per hand-over: a late answer to an earlier one wakes nobody
        try:
            self._loop.call_soon_threadsafe(resumed.set)
        except RuntimeError:  # closed in the meantime
            self._answering = False
            return
        if not resumed.wait(MAX_YIELD_SECONDS):
            self._answering = False  # a loop held by something else: the call finishes without waiting
        self._since = time.perf_counter()


def _run_gated(gate: _Gate, func: Callable[..., _T], args: tuple[object, ...]) -> _T:
    _gate.set(gate)
    gate.start()
    return func(*args)


_gate: contextvars.ContextVar[_Gate | None] = contextvars.ContextVar("slack_audit_loop_gate", default=None)


def yield_to_loop() -> None:
    """Between two slices of blocking work: let the event loop run if this work has held it long.

    A no-op unless called in :func:`run_blocking`'s thread (never on the loop's own thread).
    """
    gate = _gate.get()
    if gate is not None:
        gate.pause()


async def run_blocking(func: Callable[..., _T], /, *args: object) -> _T:
    """``func(*args)`` in the thread of the enclosing :func:`one_thread`, else in asyncio's executor.

    Either way ``func`` runs in a copy of the caller's context, in which :func:`yield_to_loop`
    hands over to the caller's loop.
    """
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, _run_gated, _Gate(loop), func, args)
    return await loop.run_in_executor(_executor.get(), call)


@contextmanager
def one_thread(name: str) -> Iterator[None]:
    """Run the blocking work submitted through :func:`run_blocking` in this block in one thread.

    The thread ends when the block does; work still running then (a cancelled caller stopped
    waiting for it) finishes first, and nothing new is accepted.
    """
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
    token = _executor.set(executor)
    try:
        yield
    finally:
        _executor.reset(token)
        executor.shutdown(wait=False)


__all__ = ["MAX_YIELD_SECONDS", "SLICE_SECONDS", "one_thread", "run_blocking", "yield_to_loop"]
