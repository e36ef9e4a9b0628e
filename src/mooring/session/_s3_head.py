"""Finding the message head on S3 without listing: check the hint, gallop only when it is wrong.

Message ids are dense from 0, so the head (next free id) is the first missing key. Listing
would cost one request per 1,000 keys of history and cannot start at an offset (ids are not
zero-padded, so key order is not numeric order); probing by name costs 2 requests when the
hint is right and about 2·log2(distance) when it is not.
"""

from __future__ import annotations

from collections.abc import Callable

from mooring.session._s3_io import S3Io


def find_head(io: S3Io, key_of: Callable[[int], str], hint: int | None) -> int:
    """The first missing id, probing ``hint`` (absent) and ``hint - 1`` (present) first."""

    def has(i: int) -> bool:
        return io.exists(key_of(i))

    start = max(hint or 0, 0)
    if start == 0:
        return _gallop_up(has, 0) if has(0) else 0
    below, at = io.map(has, [start - 1, start])
    if at:
        return _gallop_up(has, start)
    if below:
        return start
    return _gallop_down(has, start - 1)


def _gallop_up(has: Callable[[int], bool], low: int) -> int:
    step = 1  # ``low`` exists
    while has(low + step):
        low += step
        step *= 2
    return _bisect(has, low, low + step)


def _gallop_down(has: Callable[[int], bool], high: int) -> int:
    low, step = -1, 1  # ``high`` is missing
    while high - step >= 0:
        if has(high - step):
            low = high - step
            break
        high -= step
        step *= 2
    return _bisect(has, low, high)


def _bisect(has: Callable[[int], bool], low: int, high: int) -> int:
    while high - low > 1:  # ``low`` exists (or is -1), ``high`` is missing
        mid = (low + high) // 2
        if has(mid):
            low = mid
        else:
            high = mid
    return low + 1
