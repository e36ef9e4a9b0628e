"""Derived session operations, written once on top of the :class:`SessionRepository` primitives.

Nothing here is backend specific: fork, copy, export/import and undo only use the contract
(conditional appends, compare-and-set records, the invocation lease), so they work the same
on every store, including between two different ones::

    from mooring.session import open_repository
    from mooring.session.ops import copy_session

    report = await copy_session(open_repository("./sessions"), "user-42", open_repository("sqlite:///s.db"))

Copying is idempotent and resumable: messages are append-only, so the destination's head
says how far an earlier run got; only the missing tail is appended (after checking that the
last message already there is the source's), and the agent record is written with
compare-and-set.

The export format lives in :mod:`mooring.session.export`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from mooring._ids import validate_id
from mooring.errors import ConfigurationError, ConflictError, CorruptRecordError, SessionNotFoundError
from mooring.session.records import (
    AgentRecord,
    MessageRecord,
    MultiAgentRecord,
    SessionRecord,
    now_iso,
)
from mooring.session.repository import Lease, SessionRepository
from mooring.types import tool_result_ids

_BATCH = 100
_CAS_ATTEMPTS = 8


class SessionSource(Protocol):
    """The read side of the contract; every :class:`SessionRepository` is one."""

    async def read_session(self, session_id: str) -> SessionRecord | None: ...

    async def list_agents(self, session_id: str) -> list[str]: ...

    async def read_agent(self, session_id: str, agent_id: str) -> AgentRecord | None: ...

    async def message_head(self, session_id: str, agent_id: str, *, hint: int | None = None) -> int: ...

    async def read_messages(
        self, session_id: str, agent_id: str, start: int = 0, end: int | None = None
    ) -> list[MessageRecord]: ...

    async def read_multi_agent(self, session_id: str, multi_agent_id: str) -> MultiAgentRecord | None: ...

    async def list_multi_agents(self, session_id: str) -> list[str]: ...


ProgressCallback = Callable[[int], None]


@dataclass(kw_only=True)
class CopyReport:
    """What :func:`copy_session` (and fork/import) did for one session."""

    session_id: str
    target_id: str
    created: bool = False
    agents: int = 0
    messages_copied: int = 0
    messages_present: int = 0
    agent_records_written: int = 0
    multi_agents_written: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(kw_only=True)
class UndoResult:
    """What :func:`undo_last_turn` removed: messages ``new_head .. old_head - 1``."""

    old_head: int
    new_head: int

    @property
    def removed(self) -> int:
        return self.old_head - self.new_head


def describe(store: object) -> str:
    """A store's short description for messages (``describe()`` when it has one)."""
    method = getattr(store, "describe", None)
    return str(method()) if callable(method) else type(store).__name__


# -- multi-agent listing ----------------------------------------------------------------------


async def all_session_ids(source: SessionRepository, *, page_size: int = 500) -> list[str]:
    """Every session id in the store, newest first, read page by page."""
    session_ids: list[str] = []
    cursor: str | None = None
    while True:
        page = await source.list_sessions(cursor=cursor, limit=page_size)
        session_ids.extend(s.session_id for s in page.sessions)
        cursor = page.next_cursor
        if cursor is None:
            return session_ids


async def list_multi_agent_ids(source: SessionSource, session_id: str) -> list[str]:
    """Ids of the session's multi-agent records."""
    return sorted(await source.list_multi_agents(session_id))


async def count_messages(source: SessionSource, session_id: str) -> int:
    """Messages stored in a session, over all its agents (for progress bars)."""
    total = 0
    for agent_id in await source.list_agents(session_id):
        try:
            record = await source.read_agent(session_id, agent_id)
        except CorruptRecordError:
            record = None
        hint = record.next_message_id if record is not None and record.next_message_id else None
        total += await source.message_head(session_id, agent_id, hint=hint)
    return total


async def copy_session(
    source: SessionSource,
    session_id: str,
    target: SessionRepository,
    target_id: str | None = None,
    *,
    new_only: bool = False,
    lease_wait: float | None = None,
    on_messages: ProgressCallback | None = None,
    batch_size: int = _BATCH,
) -> CopyReport:
    """Copy one session (every agent, message and multi-agent record) into ``target``.

    Re-running after an interruption finishes the job; re-running after success changes
    nothing. Raises ``ConflictError`` when the destination diverged from the source (it holds
    other messages at the same ids), and never overwrites a message.

    Args:
        target_id: the session id at the destination (default: the same id).
        new_only: refuse (``ConflictError``) when the destination session already exists.
        lease_wait: when set, hold each source agent's invocation lease (waiting up to this
            long) while copying it, so the copy is a coherent snapshot of a live session.
        on_messages: called with the number of messages handled after each batch.
    """
    target_id = validate_id(target_id if target_id is not None else session_id, "session_id")
    if batch_size < 1:
        raise ConfigurationError(f"batch_size must be at least 1, got {batch_size}")
    report = CopyReport(session_id=session_id, target_id=target_id)
    await _copy_into(
        report,
        source,
        target,
        new_only=new_only,
        lease_wait=lease_wait,
        on_messages=on_messages,
        batch_size=batch_size,
    )
    return report


async def _copy_into(
    report: CopyReport,
    source: SessionSource,
    target: SessionRepository,
    *,
    new_only: bool,
    lease_wait: float | None = None,
    on_messages: ProgressCallback | None = None,
    batch_size: int = _BATCH,
    restamp: bool = False,
) -> None:
    session_id, target_id = report.session_id, report.target_id
    session = await source.read_session(session_id)
    if session is None:
        raise SessionNotFoundError(f"session {session_id!r} does not exist in {describe(source)}")
    exists_msg = f"session {target_id!r} already exists in {target.describe()}"
    if await target.read_session(target_id) is not None:
        if new_only:
            raise ConflictError(exists_msg)
    else:
        try:
            stamp = now_iso() if restamp else None
            await target.create_session(
                SessionRecord(
                    session_id=target_id,
                    session_type=session.session_type,
                    created_at=stamp or session.created_at,
                    updated_at=stamp or session.updated_at,
                    extra=dict(session.extra),
                )
            )
            report.created = True
        except ConflictError:
            if new_only:
                raise ConflictError(exists_msg) from None
    for agent_id in await source.list_agents(session_id):
        lease: Lease | None = None
        if lease_wait is not None and isinstance(source, SessionRepository):
            lease = await source.acquire_lease(session_id, agent_id, ttl=max(lease_wait, 30.0), wait=lease_wait)
        try:
            await _copy_agent(source, session_id, target, target_id, agent_id, report, on_messages, batch_size)
        finally:
            if lease is not None and isinstance(source, SessionRepository):
                await source.release_lease(lease)
    for multi_id in await list_multi_agent_ids(source, session_id):
        await _copy_multi_agent(source, session_id, target, target_id, multi_id, report)


async def _copy_agent(
    source: SessionSource,
    session_id: str,
    target: SessionRepository,
    target_id: str,
    agent_id: str,
    report: CopyReport,
    on_messages: ProgressCallback | None,
    batch_size: int,
) -> None:
    where = f"session {session_id!r}, agent {agent_id!r}"
    record = await source.read_agent(session_id, agent_id)
    if record is None:
        raise CorruptRecordError(f"{where}: the agent is listed but has no agent record in {describe(source)}")
    head = await source.message_head(session_id, agent_id, hint=record.next_message_id or None)
    report.agents += 1
    dest = await target.read_agent(target_id, agent_id)
    if dest is None:
        fresh = _agent_copy(record, next_message_id=0)
        try:
            dest = await target.create_agent(target_id, fresh)
        except ConflictError:
            dest = await target.read_agent(target_id, agent_id)
            if dest is None:
                raise
    present = await target.message_head(target_id, agent_id, hint=dest.next_message_id or None)
    if present > head:
        raise ConflictError(
            f"{where}: the destination holds {present} messages but the source only {head}; "
            "they diverged, nothing was overwritten",
            head=present,
        )
    if present > 0:
        # Appends are dense and in order, so if the last message already there is the
        # source's, everything before it is too (from this or an earlier, interrupted copy).
        theirs = await target.read_messages(target_id, agent_id, present - 1, present)
        ours = await source.read_messages(session_id, agent_id, present - 1, present)
        if len(theirs) != 1 or len(ours) != 1 or not _same_message(theirs[0], ours[0]):
            raise ConflictError(
                f"{where}: message {present - 1} differs between the source and the destination; "
                "they diverged, nothing was overwritten",
                head=present,
            )
    report.messages_present += present
    if on_messages is not None and present:
        on_messages(present)
    position = present
    while position < head:
        end = min(position + batch_size, head)
        batch = await source.read_messages(session_id, agent_id, position, end)
        _require_dense(batch, position, end, where)
        position = await target.append_messages(target_id, agent_id, batch)
        report.messages_copied += len(batch)
        if on_messages is not None:
            on_messages(len(batch))
    if await _write_agent_record(target, target_id, _agent_copy(record, next_message_id=head)):
        report.agent_records_written += 1


def _agent_copy(record: AgentRecord, *, next_message_id: int) -> AgentRecord:
    return AgentRecord(
        agent_id=record.agent_id,
        state=record.state,
        conversation_manager_state=record.conversation_manager_state,
        internal_state=record.internal_state,
        created_at=record.created_at,
        updated_at=record.updated_at,
        next_message_id=next_message_id,
        extra=dict(record.extra),
    )


def _same_agent(a: AgentRecord, b: AgentRecord) -> bool:
    return (
        a.state == b.state
        and a.conversation_manager_state == b.conversation_manager_state
        and a.internal_state == b.internal_state
        and a.extra == b.extra
        and a.next_message_id == b.next_message_id
    )


def _same_message(a: MessageRecord, b: MessageRecord) -> bool:
    return a.message == b.message and a.redact_message == b.redact_message


def _require_dense(batch: Sequence[MessageRecord], start: int, end: int, where: str) -> None:
    ids = [r.message_id for r in batch]
    if ids != list(range(start, end)):
        missing = sorted(set(range(start, end)) - set(ids))
        raise CorruptRecordError(
            f"{where}: message(s) {', '.join(map(str, missing[:10]))} missing from the source; "
            "run `mooring sessions verify` on it"
        )


async def _write_agent_record(target: SessionRepository, session_id: str, wanted: AgentRecord) -> bool:
    """Make the stored agent record match ``wanted`` by compare-and-set; False if it already did."""
    for _ in range(_CAS_ATTEMPTS):
        current = await target.read_agent(session_id, wanted.agent_id)
        if current is None:
            raise SessionNotFoundError(f"agent {wanted.agent_id!r} vanished from session {session_id!r}")
        if _same_agent(current, wanted):
            return False
        try:
            await target.update_agent(session_id, wanted, expected_version=current.version)
            return True
        except ConflictError:
            continue  # someone wrote in between: re-read and compare again
    raise ConflictError(
        f"session {session_id!r}, agent {wanted.agent_id!r}: the agent record kept changing during the copy"
    )


async def _copy_multi_agent(
    source: SessionSource, session_id: str, target: SessionRepository, target_id: str, multi_id: str, report: CopyReport
) -> None:
    record = await source.read_multi_agent(session_id, multi_id)
    if record is None:
        return
    current = await target.read_multi_agent(target_id, multi_id)
    if current is not None and current.state == record.state:
        return
    state = dict(record.state)
    # Compare-and-set both ways: a concurrent writer makes the copy fail loudly, never lose data.
    if current is None:
        new = MultiAgentRecord(
            multi_agent_id=multi_id, state=state, created_at=record.created_at, updated_at=record.updated_at
        )
        await target.create_multi_agent(target_id, new)
    else:
        new = MultiAgentRecord(multi_agent_id=multi_id, state=state)
        await target.update_multi_agent(target_id, new, expected_version=current.version)
    report.multi_agents_written += 1


async def fork_session(
    repository: SessionRepository, session_id: str, new_id: str, *, lease_wait: float = 30.0
) -> CopyReport:
    """Copy a session to a new id in the same store; ``ConflictError`` if ``new_id`` exists.

    Each agent's invocation lease is held while it is copied, so a turn running in another
    process is either wholly in the fork or not at all. A fork that fails half way is removed.
    """
    new_id = validate_id(new_id, "session_id")
    if new_id == session_id:
        raise ConfigurationError("the fork needs a session id different from the original's")
    report = CopyReport(session_id=session_id, target_id=new_id)
    try:
        # A fork is a new session: it sorts as the newest, not beside its original.
        await _copy_into(report, repository, repository, new_only=True, lease_wait=lease_wait, restamp=True)
    except BaseException:
        await _remove_if_created(repository, report)
        raise
    return report


async def _remove_if_created(repository: SessionRepository, report: CopyReport) -> None:
    # Only a session this operation created is removed; an existing one is never touched.
    if report.created:
        await repository.delete_session(report.target_id)


# -- export / import --------------------------------------------------------------------------


def is_prompt(record: MessageRecord) -> bool:
    """A user turn's opening message: a user message that carries no tool results."""
    message = record.to_message()
    return message["role"] == "user" and not tool_result_ids(message)


async def undo_last_turn(
    repository: SessionRepository,
    session_id: str,
    agent_id: str,
    *,
    lease_wait: float = 30.0,
    lease_ttl: float = 30.0,
) -> UndoResult:
    """Durably remove the last turn (the last prompt and everything after it).

    Runs under the (session, agent) invocation lease, truncates with the head it read as
    ``expected_head``, then moves the agent record's head hint (and the conversation
    manager's ``removed_message_count`` when it pointed past the new head) by compare-and-set.
    """
    lease = await repository.acquire_lease(session_id, agent_id, ttl=lease_ttl, wait=lease_wait)
    try:
        record = await repository.read_agent(session_id, agent_id)
        if record is None:
            raise SessionNotFoundError(f"agent {agent_id!r} does not exist in session {session_id!r}")
        head = await repository.message_head(session_id, agent_id, hint=record.next_message_id or None)
        prompt_id = await _last_prompt_id(repository, session_id, agent_id, head)
        if prompt_id is None:
            return UndoResult(old_head=head, new_head=head)
        await repository.truncate_messages(session_id, agent_id, prompt_id, expected_head=head)
        await set_head_hint(repository, session_id, agent_id, prompt_id)
        return UndoResult(old_head=head, new_head=prompt_id)
    finally:
        await repository.release_lease(lease)


async def _last_prompt_id(repository: SessionRepository, session_id: str, agent_id: str, head: int) -> int | None:
    step = 32
    high = head
    while high > 0:
        low = max(high - step, 0)
        for record in reversed(await repository.read_messages(session_id, agent_id, low, high)):
            if is_prompt(record):
                return record.message_id
        high = low
    return None


async def set_head_hint(repository: SessionRepository, session_id: str, agent_id: str, head: int) -> bool:
    """Point the agent record's ``next_message_id`` (and a too-large ``removed_message_count``)
    at ``head``, by compare-and-set; False when the record already agreed."""
    for _ in range(_CAS_ATTEMPTS):
        current = await repository.read_agent(session_id, agent_id)
        if current is None:
            raise SessionNotFoundError(f"agent {agent_id!r} does not exist in session {session_id!r}")
        wanted = current.copy()
        wanted.next_message_id = head
        removed = wanted.conversation_manager_state.get("removed_message_count")
        if isinstance(removed, int) and removed > head:
            wanted.conversation_manager_state["removed_message_count"] = head
        if _same_agent(current, wanted):
            return False
        try:
            await repository.update_agent(session_id, wanted, expected_version=current.version)
            return True
        except ConflictError:
            continue
    raise ConflictError(f"session {session_id!r}, agent {agent_id!r}: the agent record kept changing")
