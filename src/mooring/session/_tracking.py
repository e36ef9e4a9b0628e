"""What a session manager tracks per agent, and when the agent record need not be written.

The advisory fields are the head hint (``next_message_id``) and the conversation manager's
``removed_message_count``. The last message record of every append carries the count current
when it was written (``window_start``), so a restore finds the exact window from the messages
even when the agent record trails them, and a plain turn is one durable write: its messages.
The agent record is rewritten once the hint or the count trails by ``ADVISORY_LAG`` messages,
which bounds how many extra messages a restore (or a Strands reader, which only sees the agent
record) reads.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mooring.errors import CorruptRecordError
from mooring.session.records import ADVISORY_LAG, MessageRecord
from mooring.session.repository import Lease
from mooring.types import Message, tool_result_ids, tool_uses

if TYPE_CHECKING:
    from mooring.agent.agent import Agent


@dataclass
class Tracked:
    """What a session manager keeps about one attached agent between its writes."""

    agent: Agent
    next_id: int
    version: int
    internal_state: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    lease: Lease | None = None
    renewer: asyncio.Task[None] | None = None
    pending: list[Message] = field(default_factory=list)
    in_invocation: bool = False
    synced_cm_state: dict[str, Any] | None = None
    synced_head: int = -1
    #: (head, removed_message_count) that this process's last append left on its last message.
    carried: tuple[int, int] | None = None
    #: A write failed, so memory may hold messages the store does not: reload before the next turn.
    diverged: bool = False


def is_prompt(message: Message) -> bool:
    return message["role"] == "user" and not tool_result_ids(message)


def is_answer(message: Message) -> bool:
    """An assistant message that calls no tool: the last message of a turn."""
    return message["role"] == "assistant" and not tool_uses(message)


def check_dense(session_id: str, agent_id: str, records: list[MessageRecord], start: int, end: int) -> None:
    """``CorruptRecordError`` naming the first id missing from ``records`` (ids ``start..end-1``)."""
    expected = start
    for record in records:
        if record.message_id != expected:
            break
        expected += 1
    if expected != end:
        raise CorruptRecordError(
            f"session {session_id!r}, agent {agent_id!r}: message {expected} is missing "
            f"(expected every id from {start} to {end - 1})"
        )


def advisory_only(tracked: Tracked, cm_state: dict[str, Any]) -> bool:
    """True when the stored agent record may stay as it is: it differs from ``cm_state`` and
    the head only in the advisory fields, by less than ``ADVISORY_LAG``. The head hint is
    verified on every read; a changed ``removed_message_count`` is recovered from the last
    message, written by this process after the turn's trim."""
    stored = tracked.synced_cm_state
    if stored is None or not 0 <= tracked.next_id - tracked.synced_head < ADVISORY_LAG:
        return False
    if cm_state == stored:
        return True
    if tracked.carried is None or tracked.carried[0] != tracked.next_id:
        return False
    removed, synced_removed = cm_state.get("removed_message_count"), stored.get("removed_message_count")
    if not isinstance(removed, int) or not isinstance(synced_removed, int):
        return False
    if not 0 <= removed - synced_removed < ADVISORY_LAG:
        return False
    rest = {k: v for k, v in cm_state.items() if k != "removed_message_count"}
    return rest == {k: v for k, v in stored.items() if k != "removed_message_count"}
