"""Finding the head of a dense id sequence (the first missing message id) from a hint.

Message ids are dense from 0, so the head is the first id whose record does not exist.
Starting from a hint, galloping then bisecting costs O(log distance) existence checks, and
two when the hint is right. Shared by the file and S3 backends; ``has(i)`` is theirs.
"""

from __future__ import annotations

from collections.abc import Callable


def find_head(has: Callable[[int], bool], hint: int | None) -> int:
    """The first ``i`` for which ``has(i)`` is false, probing around ``hint`` first."""
    start = max(hint or 0, 0)
    if has(start):
        return gallop_up(has, start)
    if start == 0 or has(start - 1):
        return start
    return gallop_down(has, start - 1)


def gallop_up(has: Callable[[int], bool], low: int) -> int:
    step = 1  # ``low`` exists
    while has(low + step):
        low += step
        step *= 2
    return bisect(has, low, low + step)


def gallop_down(has: Callable[[int], bool], high: int) -> int:
    low, step = -1, 1  # ``high`` is missing
    while high - step >= 0:
        if has(high - step):
            low = high - step
            break
        high -= step
        step *= 2
    return bisect(has, low, high)


def bisect(has: Callable[[int], bool], low: int, high: int) -> int:
    while high - low > 1:  # ``low`` exists (or is -1), ``high`` is missing
        mid = (low + high) // 2
        if has(mid):
            low = mid
        else:
            high = mid
    return low + 1
