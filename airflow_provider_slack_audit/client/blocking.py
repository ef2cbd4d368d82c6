"""Where the blocking work of a page (decoding, checking, writing) runs, off the event loop.

By default in asyncio's executor (``asyncio.to_thread``). Inside :func:`one_thread`, in one thread
of its own, in the order it was submitted: a stream of pages keeps its large, short-lived buffers
(a body, its decoded slices, a batch's lines) in one thread. glibc gives every thread that
allocates an arena of its own and keeps memory freed there resident, so a stream spread over
asyncio's pool of threads holds several arenas' worth of page buffers: a million-event window grew
the process by ~115 MB that way, and by ~65 MB in one thread, at the same speed.

A context variable carries the choice, so the client (which imports no Airflow and knows nothing
of streams) and the pipeline share the thread without passing it around: work submitted from the
task that entered :func:`one_thread` (an async generator of pages consumed there included) runs
in that thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

_T = TypeVar("_T")
_executor: contextvars.ContextVar[Executor | None] = contextvars.ContextVar(
    "slack_audit_blocking_executor", default=None
)


async def run_blocking(func: Callable[..., _T], /, *args: object) -> _T:
    """``func(*args)`` in the thread of the enclosing :func:`one_thread`, else in asyncio's executor."""
    executor = _executor.get()
    if executor is None:
        return await asyncio.to_thread(func, *args)
    call = functools.partial(contextvars.copy_context().run, func, *args)
    return await asyncio.get_running_loop().run_in_executor(executor, call)


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


__all__ = ["one_thread", "run_blocking"]
