"""What the contract suites share: ids, records, fresh event loops, waiting for a condition."""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import pytest

from mooring._ids import MAX_ID_BYTES
from mooring.session.ops import all_session_ids
from mooring.session.records import AgentRecord, MessageRecord, SessionRecord
from mooring.session.repository import SessionRepository

F = TypeVar("F", bound=Callable[..., Coroutine[Any, Any, None]])

BAD_IDS = ["", ".", "..", "a/b", "a\\b", "nul\x00byte", "line\nbreak", "x" * 257]


def _on_fresh_loop(fn: F) -> Callable[..., None]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))

    return wrapper


def _sid() -> str:
    return f"contract-{uuid.uuid4().hex[:12]}"


def _long_id(kind: str, unit: str, extra: int = 0) -> str:
    """A unique id of exactly ``MAX_ID_BYTES[kind] + extra`` UTF-8 bytes, mostly ``unit``s."""
    head = uuid.uuid4().hex[:12] + "-"
    size = MAX_ID_BYTES[kind] + extra - len(head)
    width = len(unit.encode("utf-8"))
    return head + unit * (size // width) + "x" * (size % width)


# ASCII, Arabic (2 bytes each in UTF-8), CJK (3 bytes) and emoji (4 bytes).
ID_UNITS = {"ascii": "s", "arabic": "\u0639", "cjk": "\u6f22", "emoji": "\U0001f600"}


def _msg(i: int, text: str | None = None, role: str = "user") -> MessageRecord:
    return MessageRecord(message_id=i, message={"role": role, "content": [{"text": text or f"message {i}"}]})  # type: ignore[typeddict-item]


async def _session_with_agent(repo: SessionRepository, agent_id: str = "agent") -> str:
    sid = _sid()
    await repo.create_session(SessionRecord(session_id=sid))
    await repo.create_agent(sid, AgentRecord(agent_id=agent_id))
    return sid


async def _listed(repo: SessionRepository) -> set[str]:
    return set(await all_session_ids(repo, page_size=100))


async def _eventually(condition: Callable[[], Awaitable[bool]], what: str, *, timeout: float, poll: float) -> None:
    """Wait until ``condition()`` holds; fail naming ``what`` if it still does not after ``timeout``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"{what} (still not true after {timeout:.0f}s)")
        await asyncio.sleep(poll)


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


# (head before the append, ids appended): none of them starts at the head and stays contiguous.
NON_CONTIGUOUS_APPENDS = {
    "gap-in-the-first-batch": (0, [0, 2]),
    "gap-inside-the-batch": (2, [2, 4]),
    "gap-late-in-the-batch": (2, [2, 3, 5]),
    "repeated-id": (2, [2, 2]),
    "going-back": (2, [2, 1]),
    "gap-after-the-head": (2, [3]),
}


def _ttl_waits(session_ttl: float) -> dict[str, float]:
    # Polling often keeps the last write close to each check; the deadline is only a backstop.
    return {"timeout": 30 + 10 * session_ttl, "poll": session_ttl / 10}
