"""Cyclic garbage collection paused while many stored records are decoded.

Decoding a long history allocates millions of dicts, lists and strings that all survive.
Every allocation-triggered collection then walks the growing young generations and, now and
then, the whole heap: a 50,000-message restore spent half its time in the collector and grew
faster than the data. None of these objects can form a garbage cycle while they are built, so
the collector has nothing to find; it is paused for the decode and resumed right after (the
next collection sees the new objects once).

Only CPU-bound decoding runs paused, never a wait on the network, so a long remote read does
not hold the collector off for other work in the process. Pauses nest and may overlap across
threads: the collector resumes when the last one ends, and only if it was enabled when the
first one began (an application that disabled it keeps it disabled).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# Below this many records a pause saves nothing measurable.
PAUSE_FROM = 256

_lock = threading.Lock()
_depth = 0
_resume = False


@contextmanager
def collection_paused(count: int = PAUSE_FROM) -> Iterator[None]:
    """Pause the cyclic collector while ``count`` records are decoded (not for a few)."""
    global _depth, _resume
    if count < PAUSE_FROM:
        yield
        return
    with _lock:
        if _depth == 0:
            _resume = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _resume:
                gc.enable()
