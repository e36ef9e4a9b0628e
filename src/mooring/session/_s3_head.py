"""Finding the message head on S3 without listing: check the hint, gallop only when it is wrong.

Message ids are dense from 0, so the head (next free id) is the first missing key. Listing
would cost one request per 1,000 keys of history and cannot start at an offset (ids are not
zero-padded, so key order is not numeric order); probing by name costs 2 requests when the
hint is right and about 2·log2(distance) when it is not.
"""

from __future__ import annotations

from collections.abc import Callable

from mooring.session._head import gallop_down, gallop_up
from mooring.session._s3_io import S3Io


def find_head(io: S3Io, key_of: Callable[[int], str], hint: int | None) -> int:
    """The first missing id, probing ``hint`` (absent) and ``hint - 1`` (present) first."""

    def has(i: int) -> bool:
        return io.exists(key_of(i))

    start = max(hint or 0, 0)
    if start == 0:
        return gallop_up(has, 0) if has(0) else 0
    below, at = io.map(has, [start - 1, start])
    if at:
        return gallop_up(has, start)
    if below:
        return start
    return gallop_down(has, start - 1)
