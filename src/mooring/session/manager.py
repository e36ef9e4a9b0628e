"""Session managers decide WHEN to persist; repositories decide HOW.

``RepositorySessionManager`` subscribes to an Agent's lifecycle events and keeps the store
and the agent in step, following the concurrency protocol:

- on ``AgentInitialized``: restore state, conversation-manager state and the window of
  messages after ``removed_message_count``, read by id up to the store's head;
- on ``BeforeInvocation``: take the (session, agent) lease, then catch up on messages and
  state that other processes stored since;
- on ``MessageAdded``: append conditionally at the head the manager expects. A user prompt
  is held back and written together with the model's answer (so a guardrail redaction is
  applied before the first write, a crash mid-call leaves no unanswered prompt behind, and
  a plain turn costs one append);
- on ``AfterInvocation``: write the agent record (compare-and-set, merging other processes'
  state keys) if it changed in more than its advisory fields (see ``_tracking``), then
  release the lease, also when the invocation failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from mooring._ids import validate_id
from mooring._json import find_unstorable
from mooring._sync import run_sync
from mooring.agent.hooks import (
    AfterInvocation,
    AgentInitialized,
    BeforeInvocation,
    HookRegistry,
    MessageAdded,
    RedactionRequested,
)
from mooring.errors import (
    ConfigurationError,
    ConflictError,
    CorruptRecordError,
    LeaseLostError,
    LeaseTimeoutError,
    SessionNotFoundError,
    UnstorableContentError,
)
from mooring.session._threaded import RENEWER_TASK_NAME
from mooring.session._tracking import Tracked, advisory_only, check_dense, is_answer, is_prompt
from mooring.session.records import (
    WINDOW_START,
    AgentRecord,
    MessageRecord,
    MultiAgentRecord,
    SessionRecord,
)
from mooring.session.repository import SessionRepository
from mooring.types import Message, tool_uses

if TYPE_CHECKING:
    from mooring.agent.agent import Agent

logger = logging.getLogger(__name__)

_MAX_CAS_ATTEMPTS = 16


class SessionManager(ABC):
    """A HookProvider that persists an Agent's conversation and state automatically."""

    session_id: str

    @abstractmethod
    def register_hooks(self, registry: HookRegistry) -> None: ...


class MultiAgentSource(Protocol):
    """What an orchestrator exposes to be persisted."""

    id: str

    def serialize_state(self) -> dict[str, Any]: ...

    def deserialize_state(self, state: dict[str, Any]) -> None: ...


class RepositorySessionManager(SessionManager):
    """Persists agents of one session into any :class:`SessionRepository`.

    Options:
        lease_wait: seconds to wait for another process's invocation on the same
            (session, agent) to finish before raising ``LeaseTimeoutError``.
        fail_fast: do not wait at all for a busy session.
        lease_ttl: lifetime of expiring leases (renewed while a turn runs).

    Example::

        manager = RepositorySessionManager("user-42", InMemorySessionRepository())
        agent = Agent(agent_id="assistant", session_manager=manager)
    """

    def __init__(
        self,
        session_id: str,
        repository: SessionRepository,
        *,
        lease_wait: float = 60.0,
        lease_ttl: float = 30.0,
        fail_fast: bool = False,
    ) -> None:
        self.session_id = validate_id(session_id, "session_id")
        if not isinstance(repository, SessionRepository):
            raise ConfigurationError(f"repository must be a SessionRepository, got {type(repository).__name__}")
        if lease_ttl <= 0 or lease_wait < 0:
            raise ConfigurationError("lease_ttl must be positive and lease_wait non-negative")
        self.repository = repository
        # A store that cannot hold U+0000 (PostgreSQL's JSONB) has it refused before any write.
        self._stores_nul = repository.stores_nul
        self.lease_wait = 0.0 if fail_fast else float(lease_wait)
        self.lease_ttl = float(lease_ttl)
        self._tracked: dict[str, Tracked] = {}
        self._multi_versions: dict[str, int] = {}
        self._session_ready = False

    def register_hooks(self, registry: HookRegistry) -> None:
        registry.add_callback(AgentInitialized, self._on_initialized)
        registry.add_callback(BeforeInvocation, self._on_before_invocation)
        registry.add_callback(MessageAdded, self._on_message_added)
        registry.add_callback(RedactionRequested, self._on_redaction)
        registry.add_callback(AfterInvocation, self._on_after_invocation)

    # -- session ------------------------------------------------------------------------------

    async def _ensure_session(self) -> None:
        if self._session_ready:
            return
        if await self.repository.read_session(self.session_id) is None:
            try:
                await self.repository.create_session(SessionRecord(session_id=self.session_id))
            except ConflictError:
                pass  # another process created it first: same outcome
        self._session_ready = True

    def _track(self, agent: Agent) -> Tracked:
        tracked = self._tracked.get(agent.agent_id)
        if tracked is None or tracked.agent is not agent:
            raise ConfigurationError(
                f"agent {agent.agent_id!r} is not attached to this session manager (session {self.session_id!r})"
            )
        return tracked

    # -- restore ------------------------------------------------------------------------------

    async def _on_initialized(self, event: AgentInitialized) -> None:
        agent = event.agent
        if not self._stores_nul:
            agent.state.refuse_nul(self.repository.describe())
        if agent.agent_id in self._tracked:
            raise ConfigurationError(
                f"an agent with agent_id {agent.agent_id!r} is already attached to the session manager for "
                f"session {self.session_id!r}; give each Agent its own agent_id"
            )
        record = await self._read_session_and_agent(agent.agent_id)
        if record is not None:
            self._session_ready = True  # an agent record implies its session
        else:
            await self._ensure_session()
            written = agent.state.snapshot()
            fresh = AgentRecord(
                agent_id=agent.agent_id,
                state=written.data,
                conversation_manager_state=agent.conversation_manager.get_state(),
            )
            try:
                stored = await self.repository.create_agent(self.session_id, fresh)
            except ConflictError:
                record = await self.repository.read_agent(self.session_id, agent.agent_id)
                if record is None:
                    raise
            else:
                tracked = Tracked(agent=agent, next_id=0, version=stored.version, synced_head=0)
                tracked.synced_cm_state = fresh.conversation_manager_state
                self._tracked[agent.agent_id] = tracked
                agent.state.set_change_listener(lambda: self._state_changed(tracked))
                agent.state.mark_synced(written)
                if agent.messages:
                    await self._append(tracked, list(agent.messages))
                logger.debug("session_id=<%s>, agent_id=<%s> | created agent", self.session_id, agent.agent_id)
                return
        tracked = Tracked(agent=agent, next_id=0, version=record.version)
        self._tracked[agent.agent_id] = tracked
        await self._restore(tracked, record)
        await self._repair_if_idle(tracked)
        agent.state.set_change_listener(lambda: self._state_changed(tracked))

    async def _read_session_and_agent(self, agent_id: str) -> AgentRecord | None:
        """The agent record, read together with the session record, whose only purpose here
        is to fail loudly (``CorruptRecordError``) when it is corrupt instead of restoring
        an agent from a session the listing and other readers cannot see."""
        if self._session_ready:
            return await self.repository.read_agent(self.session_id, agent_id)
        # Both at once: on a remote store the check costs no extra round trip.
        session, record = await asyncio.gather(
            self.repository.read_session(self.session_id),
            self.repository.read_agent(self.session_id, agent_id),
            return_exceptions=True,
        )
        if isinstance(session, BaseException):
            raise session
        if isinstance(record, BaseException):
            raise record
        if session is not None and session.session_id != self.session_id:
            raise CorruptRecordError(
                f"{self.repository.describe()}: the record of session {self.session_id!r} names session "
                f"{session.session_id!r}"
            )
        return record

    async def _restore(self, tracked: Tracked, record: AgentRecord, *, reload: bool = False) -> None:
        agent = tracked.agent
        if reload:
            # Values set since the last sync were never stored: keep them on top of the record.
            agent.state.merge_from(record.state)
        else:
            agent.state.load(record.state)
        prepend: list[Message] = []
        if record.conversation_manager_state:
            prepend = agent.conversation_manager.restore_from_session(record.conversation_manager_state) or []
        records, head = await self.repository.read_window(
            self.session_id,
            agent.agent_id,
            agent.conversation_manager.removed_message_count,
            head_hint=record.next_message_id,
        )
        start = min(agent.conversation_manager.removed_message_count, head)
        check_dense(self.session_id, agent.agent_id, records, start, head)
        carried: Any = records[-1].extra.get(WINDOW_START) if records else None
        if type(carried) is int and 0 <= carried <= head and record.next_message_id < head:
            # The last message was written after the agent record (whose advisory fields trail,
            # see ADVISORY_LAG) and knows the writer's window exactly.
            if carried >= start:
                records = records[carried - start :]
            else:
                records = await self._read_range(agent.agent_id, carried, start) + records
            start = carried
        agent.conversation_manager.removed_message_count = start
        if agent.messages and not reload:
            logger.warning(
                "session_id=<%s>, agent_id=<%s> | the stored conversation replaces the %d messages given to the Agent",
                self.session_id,
                agent.agent_id,
                len(agent.messages),
            )
        agent.messages = prepend + [r.to_message(copy_message=False) for r in records]
        tracked.next_id = head
        tracked.version = record.version
        tracked.internal_state = record.internal_state
        tracked.extra = record.extra
        tracked.synced_cm_state = record.conversation_manager_state
        tracked.synced_head = record.next_message_id
        tracked.carried = (head, start) if start == carried else None
        logger.debug(
            "session_id=<%s>, agent_id=<%s> | restored messages %d..%d",
            self.session_id,
            agent.agent_id,
            start,
            head,
        )

    async def _read_range(self, agent_id: str, start: int, end: int) -> list[MessageRecord]:
        if end <= start:
            return []
        records = await self.repository.read_messages(self.session_id, agent_id, start, end)
        check_dense(self.session_id, agent_id, records, start, end)
        return records

    async def _repair_if_idle(self, tracked: Tracked) -> None:
        """Close a turn a crashed process left open, if nobody is running a turn right now."""
        messages = tracked.agent.messages
        if not messages or (messages[-1]["role"] == "assistant" and not tool_uses(messages[-1])):
            return  # the stored conversation ends on an answer: nothing to repair
        try:
            lease = await self.repository.acquire_lease(
                self.session_id, tracked.agent.agent_id, ttl=self.lease_ttl, wait=0
            )
        except LeaseTimeoutError:
            return  # someone is mid-turn; the next invocation repairs after catching up
        try:
            await self._catch_up(tracked)
            await tracked.agent.repair_conversation_tail()
            await self._sync_agent(tracked)
        finally:
            await self.repository.release_lease(lease)

    # -- invocation ---------------------------------------------------------------------------

    async def _on_before_invocation(self, event: BeforeInvocation) -> None:
        tracked = self._track(event.agent)
        tracked.lease = await self.repository.acquire_lease(
            self.session_id, event.agent.agent_id, ttl=self.lease_ttl, wait=self.lease_wait
        )
        tracked.in_invocation = True
        try:
            if tracked.lease.expires_at is not None:
                tracked.renewer = asyncio.create_task(self._keep_renewing(tracked), name=RENEWER_TASK_NAME)
            await self._catch_up(tracked)
        except BaseException:
            await self._end_invocation(tracked)
            raise

    async def _keep_renewing(self, tracked: Tracked) -> None:
        while tracked.lease is not None:
            await asyncio.sleep(self.lease_ttl / 3)
            if tracked.lease is None:
                return
            try:
                tracked.lease = await self.repository.renew_lease(tracked.lease, ttl=self.lease_ttl)
            except LeaseLostError:
                logger.warning(
                    "session_id=<%s>, agent_id=<%s> | lost the invocation lease; the next write will fail",
                    self.session_id,
                    tracked.agent.agent_id,
                )
                return
            except Exception:
                logger.exception("lease renewal failed")

    async def _catch_up(self, tracked: Tracked) -> None:
        """Load the turns and state changes other processes stored since we last looked."""
        agent = tracked.agent
        head = await self.repository.message_head(self.session_id, agent.agent_id, hint=tracked.next_id)
        record = await self.repository.read_agent(self.session_id, agent.agent_id)
        if tracked.diverged and record is not None:
            # The last turn failed to store some messages: the store is the truth again.
            await self._restore(tracked, record, reload=True)
            tracked.diverged = False
            return
        if head < tracked.next_id:
            # History was cut back elsewhere (an undo): start again from the stored window.
            if record is not None:
                await self._restore(tracked, record, reload=True)
            return
        if (
            record is not None
            and record.version != tracked.version
            and record.conversation_manager_state != tracked.synced_cm_state
        ):
            # Another process moved the window (a summary, a trim, a new token count): adopt
            # its conversation-manager state rather than summarizing the same range again.
            await self._restore(tracked, record, reload=True)
            return
        if head > tracked.next_id:
            new = await self._read_range(agent.agent_id, tracked.next_id, head)
            agent.messages.extend(r.to_message(copy_message=False) for r in new)
            tracked.next_id = head
        if record is not None and record.version != tracked.version:
            agent.state.merge_from(record.state)
            tracked.version = record.version
            tracked.internal_state = record.internal_state

    async def _on_message_added(self, event: MessageAdded) -> None:
        tracked = self._track(event.agent)
        if tracked.in_invocation and (is_prompt(event.message) or is_answer(event.message)):
            # A prompt is held back until the answer comes, and the answer until the turn's trim
            # (so its record carries the window the turn ends with); both are refused now.
            self._check_storable(tracked, [event.message], tracked.next_id + len(tracked.pending))
            tracked.pending.append(event.message)
            return
        await self._append(tracked, [*tracked.pending, event.message])
        tracked.pending = []
        if event.agent.state.dirty_keys():
            await self._sync_agent(tracked)

    async def _on_redaction(self, event: RedactionRequested) -> None:
        tracked = self._track(event.agent)
        message = event.redacted
        if any(m is message for m in tracked.pending):
            return  # not written yet: it will be written in its redacted form only
        messages = event.agent.messages
        for index in range(len(messages) - 1, -1, -1):
            if messages[index] is message:
                message_id = tracked.next_id - (len(messages) - index)
                self._check_storable(tracked, [message], message_id)
                record = MessageRecord(message_id=message_id, message=message, redact_message=message)
                await self.repository.update_message(self.session_id, event.agent.agent_id, record)
                return

    async def _on_after_invocation(self, event: AfterInvocation) -> None:
        tracked = self._track(event.agent)
        try:
            # Written unless taken back (a prompt the model never answered): a held message the
            # trim removed from the front of the window still belongs to the conversation.
            removed = event.agent.conversation_manager.removed_message_count
            messages = event.agent.messages
            kept = [
                m
                for i, m in enumerate(tracked.pending)
                if tracked.next_id + i < removed or any(m is x for x in messages)
            ]
            tracked.pending = []
            if kept:
                await self._append(tracked, kept)
            await self._sync_agent(tracked)
        finally:
            await self._end_invocation(tracked)

    async def _end_invocation(self, tracked: Tracked) -> None:
        tracked.in_invocation = False
        tracked.pending = []
        renewer, tracked.renewer = tracked.renewer, None
        if renewer is not None:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await renewer
        lease, tracked.lease = tracked.lease, None
        if lease is not None:
            try:
                await self.repository.release_lease(lease)
            except Exception:
                # The store is unreachable; an expiring lease frees itself after lease_ttl, and the
                # error that matters (the failed turn) is already on its way to the caller.
                logger.warning(
                    "session_id=<%s>, agent_id=<%s> | could not release the invocation lease",
                    self.session_id,
                    tracked.agent.agent_id,
                    exc_info=True,
                )

    # -- writes -------------------------------------------------------------------------------

    def _check_storable(self, tracked: Tracked, messages: list[Message], first_id: int) -> None:
        """``UnstorableContentError`` naming the first message no backend could store.

        Called before a write, so a refused turn leaves nothing of itself in the store; the
        messages held back for it are dropped, and the next turn reloads what the store holds.
        """
        for offset, message in enumerate(messages):
            problem = find_unstorable(message, allow_nul=self._stores_nul)
            if problem is None:
                continue
            tracked.pending = []
            tracked.diverged = True
            raise UnstorableContentError(
                f"session {self.session_id!r}, agent {tracked.agent.agent_id!r}: message {first_id + offset} "
                f"({message.get('role', '?')}) cannot be stored, so nothing of the turn was written: {problem}"
            )

    async def _append(self, tracked: Tracked, messages: list[Message]) -> None:
        if not messages:
            return
        self._check_storable(tracked, messages, tracked.next_id)
        records = [MessageRecord(message_id=tracked.next_id + i, message=m) for i, m in enumerate(messages)]
        removed = tracked.agent.conversation_manager.removed_message_count
        records[-1].extra = {WINDOW_START: removed}
        try:
            tracked.next_id = await self.repository.append_messages(self.session_id, tracked.agent.agent_id, records)
            tracked.carried = (tracked.next_id, removed)
        except BaseException as exc:
            tracked.diverged = True
            if not isinstance(exc, ConflictError):
                raise
            raise ConflictError(
                f"session {self.session_id!r}, agent {tracked.agent.agent_id!r}: message id {tracked.next_id} was "
                f"taken by another writer (store head {exc.head}); this process no longer holds the session's "
                "lease, so its turn was not saved",
                head=exc.head,
            ) from exc

    def _state_changed(self, tracked: Tracked) -> None:
        """``agent.state`` changed: inside an invocation the change rides the turn's write;
        outside one it is written now, so nothing set between turns is lost at exit."""
        if tracked.in_invocation or self._tracked.get(tracked.agent.agent_id) is not tracked:
            return
        run_sync(self._write_state_through(tracked))

    async def _write_state_through(self, tracked: Tracked) -> None:
        """Store the pending state keys without the lease: compare-and-set on the agent record,
        merged by key, every other field of the record kept as stored (another process may be
        mid-turn and own the window, the head and the conversation-manager state)."""
        agent = tracked.agent
        for _ in range(_MAX_CAS_ATTEMPTS):
            if not agent.state.dirty_keys():
                return
            current = await self.repository.read_agent(self.session_id, agent.agent_id)
            if current is None:
                raise SessionNotFoundError(
                    f"session {self.session_id!r}, agent {agent.agent_id!r}: the agent record is gone "
                    "(the session was deleted?); the state change was not stored"
                )
            agent.state.merge_from(current.state)
            written = agent.state.snapshot()
            try:
                stored = await self.repository.update_agent(
                    self.session_id, replace(current, state=written.data), expected_version=current.version
                )
            except ConflictError:
                continue
            agent.state.mark_synced(written)
            tracked.version = stored.version
            tracked.internal_state = stored.internal_state
            return
        raise ConflictError(
            f"session {self.session_id!r}, agent {agent.agent_id!r}: the agent record kept changing; "
            f"gave up after {_MAX_CAS_ATTEMPTS} attempts"
        )

    async def _sync_agent(self, tracked: Tracked) -> None:
        """Write the agent record if anything in it changed, merging concurrent state updates."""
        agent = tracked.agent
        cm_state = agent.conversation_manager.get_state()
        if not agent.state.dirty_keys() and advisory_only(tracked, cm_state):
            return
        for _ in range(_MAX_CAS_ATTEMPTS):
            written = agent.state.snapshot()
            record = AgentRecord(
                agent_id=agent.agent_id,
                state=written.data,
                conversation_manager_state=cm_state,
                internal_state=tracked.internal_state,
                next_message_id=tracked.next_id,
                extra=tracked.extra,
            )
            try:
                stored = await self.repository.update_agent(self.session_id, record, expected_version=tracked.version)
            except ConflictError as exc:
                current = await self.repository.read_agent(self.session_id, agent.agent_id)
                if current is None:
                    raise
                if (
                    current.conversation_manager_state != tracked.synced_cm_state
                    and cm_state != tracked.synced_cm_state
                ):
                    # Both sides moved the conversation-manager state (a lease lost mid-turn):
                    # writing ours would put a second summary over the same range.
                    tracked.diverged = True
                    raise ConflictError(
                        f"session {self.session_id!r}, agent {agent.agent_id!r}: another process changed the "
                        "conversation manager's state during this turn; this turn's change was not stored",
                        version=current.version,
                    ) from exc
                agent.state.merge_from(current.state)
                tracked.version = current.version
                continue
            tracked.version = stored.version
            agent.state.mark_synced(written)
            tracked.synced_cm_state = cm_state
            tracked.synced_head = tracked.next_id
            return
        raise ConflictError(
            f"session {self.session_id!r}, agent {agent.agent_id!r}: the agent record kept changing; "
            f"gave up after {_MAX_CAS_ATTEMPTS} attempts"
        )

    # -- multi-agent --------------------------------------------------------------------------

    async def initialize_multi_agent(self, source: MultiAgentSource) -> None:
        """Restore an orchestrator's state, or store its initial state."""
        await self._ensure_session()
        record = await self.repository.read_multi_agent(self.session_id, source.id)
        if record is None:
            try:
                stored = await self.repository.create_multi_agent(
                    self.session_id,
                    MultiAgentRecord(multi_agent_id=source.id, state=source.serialize_state()),
                )
                self._multi_versions[source.id] = stored.version
                return
            except ConflictError:
                record = await self.repository.read_multi_agent(self.session_id, source.id)
                if record is None:
                    raise
        source.deserialize_state(record.state)
        self._multi_versions[source.id] = record.version

    async def sync_multi_agent(self, source: MultiAgentSource) -> None:
        """Store the orchestrator's state; ``ConflictError`` if another process changed it meanwhile."""
        version = self._multi_versions.get(source.id)
        if version is None:
            raise ConfigurationError(f"call initialize_multi_agent for {source.id!r} first")
        stored = await self.repository.update_multi_agent(
            self.session_id,
            MultiAgentRecord(multi_agent_id=source.id, state=source.serialize_state()),
            expected_version=version,
        )
        self._multi_versions[source.id] = stored.version
