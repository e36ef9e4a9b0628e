"""Placeholders: the message a repair puts at the id of a message that cannot be loaded.

A record that does not parse (or is a symlink or a foreign hard link, or is missing from the
middle of the ids) is moved to quarantine, and a placeholder takes its id, so every intact
message after it stays in the conversation and the ids stay dense. A placeholder is an
ordinary stored message, loadable by mooring and by Strands, whose text says what happened:
``[mooring: message 7 could not be read and was moved to quarantine]``.

Its role keeps the conversation valid for a model:

* after an assistant message that calls tools, it is the user message answering them: one
  ``toolResult`` per ``toolUse``, status ``error``, with the note as its text;
* before a user message holding ``toolResult``\\ s (the lost message was the call), it is an
  assistant message with the note and one ``toolUse`` per result, named
  :data:`LOST_TOOL_NAME` with empty input (the real name and input were in the lost bytes),
  so the intact results still answer a call and no loader drops them;
* otherwise it alternates with the message before it (``user`` at id 0).

The stored record carries ``"mooring_placeholder": {"reason": ...}`` beside the Strands
fields (Strands ignores unknown keys). Nothing here touches a store: the verifier plans the
placeholders, and the store's inspector writes them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from mooring.errors import CorruptRecordError
from mooring.session._findings import UNREADABLE_KINDS, Problem, Repair, StoreInspector
from mooring.session.records import MessageRecord
from mooring.session.repository import SessionRepository
from mooring.types import ContentBlock, Message, Role, tool_result_ids, tool_uses

__all__ = [
    "LOST_TOOL_NAME",
    "PLACEHOLDER_KEY",
    "Placeholder",
    "describe_fixes",
    "fill_placeholders",
    "plan_placeholders",
    "unloadable",
]

PLACEHOLDER_KEY = "mooring_placeholder"
LOST_TOOL_NAME = "unreadable_tool_call"


@dataclass(frozen=True)
class Placeholder:
    """The message planned for ``message_id``, and a one-line summary of it for reports."""

    message_id: int
    message: Message
    summary: str

    def record(self, reason: str) -> MessageRecord:
        return MessageRecord(
            message_id=self.message_id, message=self.message, extra={PLACEHOLDER_KEY: {"reason": reason}}
        )


def note(message_id: int, missing: bool) -> str:
    if missing:
        return f"[mooring: message {message_id} was missing from the store]"
    return f"[mooring: message {message_id} could not be read and was moved to quarantine]"


def plan_placeholders(
    bad: Iterable[int], message_at: Callable[[int], Message | None], *, missing: Iterable[int] = ()
) -> list[Placeholder]:
    """One placeholder per id of ``bad`` (ascending). ``message_at`` gives an intact
    message by id (None when there is none); ``missing`` are the bad ids that had no file."""
    bad_ids = sorted(set(bad))
    gone = set(missing)
    planned: dict[int, Message] = {}
    out = []
    for message_id in bad_ids:
        previous = planned.get(message_id - 1) or (message_at(message_id - 1) if message_id > 0 else None)
        following = None if message_id + 1 in planned or message_id + 1 in bad_ids else message_at(message_id + 1)
        text = note(message_id, message_id in gone)
        message, summary = _shape(text, previous, following)
        planned[message_id] = message
        out.append(Placeholder(message_id=message_id, message=message, summary=summary))
    return out


def _shape(text: str, previous: Message | None, following: Message | None) -> tuple[Message, str]:
    asked = (
        [u["toolUseId"] for u in tool_uses(previous)]
        if previous is not None and previous["role"] == "assistant"
        else []
    )
    answered = tool_result_ids(following) if following is not None and following["role"] == "user" else []
    if asked:
        results: list[ContentBlock] = [
            {"toolResult": {"toolUseId": use_id, "status": "error", "content": [{"text": text}]}} for use_id in asked
        ]
        return {"role": "user", "content": results}, f"a user message with error toolResults for {_ids(asked)}"
    if answered and (previous is None or previous["role"] == "user"):
        calls: list[ContentBlock] = [
            {"toolUse": {"toolUseId": use_id, "name": LOST_TOOL_NAME, "input": {}}} for use_id in answered
        ]
        content: list[ContentBlock] = [{"text": text}, *calls]
        return {"role": "assistant", "content": content}, (
            f"an assistant message with toolUse {_ids(answered)} ({LOST_TOOL_NAME}) for the toolResults after it"
        )
    role: Role = "assistant" if previous is not None and previous["role"] == "user" else "user"
    return {"role": role, "content": [{"text": text}]}, f"a text-only {role} message"


def _ids(ids: list[str]) -> str:
    return ", ".join(f"[{i}]" for i in ids)


def unloadable(problems: Iterable[Problem]) -> dict[int, Problem]:
    """The first error per message id that means the message cannot be loaded."""
    found: dict[int, Problem] = {}
    for p in problems:
        if p.severity == "error" and p.kind in UNREADABLE_KINDS and p.message_id is not None:
            found.setdefault(p.message_id, p)
    return found


def _lookup(records: dict[int, MessageRecord]) -> Callable[[int], Message | None]:
    def message_at(message_id: int) -> Message | None:
        record = records.get(message_id)
        return record.to_message(copy_message=False) if record is not None else None

    return message_at


def describe_fixes(
    problems: list[Problem], records: dict[int, MessageRecord], missing: list[int], *, repairable: bool
) -> None:
    """Set ``fix`` on each of one agent's ``problems`` about an unloadable or missing message:
    what a repair would put in its place (``records``: the readable messages)."""
    bad = unloadable(problems)
    if not repairable:
        for p in bad.values():
            p.fix = "none on this backend: there is nowhere to keep the record aside, so it is left as it is"
        return
    planned = {ph.message_id: ph for ph in plan_placeholders({*bad, *missing}, _lookup(records), missing=missing)}
    gone = set(missing)
    for p in problems:
        if p.message_id is not None and bad.get(p.message_id) is p:
            summary = planned[p.message_id].summary
            p.fix = f"move the file to quarantine and put a placeholder ({summary}) at message {p.message_id}"
        elif p.kind == "id-gap" and p.message_id is not None:
            span: list[int] = []
            while p.message_id + len(span) in gone:
                span.append(p.message_id + len(span))
            p.fix = "put a placeholder at " + "; ".join(f"message {i} ({planned[i].summary})" for i in span)


async def fill_placeholders(
    repository: SessionRepository,
    inspector: StoreInspector,
    location_of: Callable[[int], str],
    problems: list[Problem],
) -> list[Repair]:
    """Give each unloadable or missing message of one agent (``problems`` are that agent's) a
    placeholder at its id; the caller holds the agent's invocation lease."""
    bad = unloadable(problems)
    if not problems:
        return []
    session_id, agent_id = problems[0].session_id, problems[0].agent_id
    assert agent_id is not None
    present = await inspector.message_ids(session_id, agent_id)
    top = max(present) + 1 if present else 0
    missing = sorted(set(range(top)) - present)
    if not bad and not missing:
        return []
    lost = {*bad, *missing}
    wanted = {n for i in lost for n in (i - 1, i + 1) if 0 <= n < top} - lost
    neighbours: dict[int, MessageRecord] = {}
    for message_id in sorted(wanted):
        try:
            for record in await repository.read_messages(session_id, agent_id, message_id, message_id + 1):
                neighbours[record.message_id] = record
        except CorruptRecordError:
            continue  # went bad after the check: the next verify reports it
    repairs: list[Repair] = []
    for placeholder in plan_placeholders(lost, _lookup(neighbours), missing=missing):
        problem = bad.get(placeholder.message_id)
        reason = problem.detail if problem is not None else "the message was missing between others"
        record = placeholder.record(reason)
        where = location_of(placeholder.message_id)
        repairs.extend(await inspector.put_placeholder(where, record, reason, placeholder.summary))
    return repairs
