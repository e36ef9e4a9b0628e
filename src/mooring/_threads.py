"""One process-wide thread pool for blocking storage calls.

``asyncio.to_thread`` uses the running loop's default executor, and the synchronous
``agent(prompt)`` runs every invocation on a fresh loop: its pool would be created and torn
down (threads started and joined) on every call. Storage calls go through this shared pool
instead, whose threads outlive the loops.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from typing_extensions import ParamSpec

P = ParamSpec("P")
T = TypeVar("T")

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=min(32, (os.cpu_count() or 1) + 4), thread_name_prefix="mooring-io")
        return _pool


def _forget_after_fork() -> None:
    # A forked child has none of the parent's worker threads; a pool that thinks it has idle
    # workers would never run anything. Start over with a fresh lock and pool.
    global _pool, _lock
    _pool = None
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


async def run_blocking(func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``func(*args, **kwargs)`` in the shared pool (context variables included) and await it."""
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, func, *args, **kwargs)
    return await loop.run_in_executor(_executor(), call)
