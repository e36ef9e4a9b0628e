"""An in-memory reference repository: the executable meaning of the contract."""

from __future__ import annotations

import asyncio
import copy
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from typing_extensions import Self

from mooring._ids import validate_id
from mooring.errors import ConflictError, LeaseLostError, LeaseTimeoutError, SessionNotFoundError
from mooring.session.records import (
    AgentRecord,
    MessageRecord,
    MultiAgentRecord,
    SessionPage,
    SessionRecord,
    check_append,
    now_iso,
    page_sessions,
    version_conflict,
)
from mooring.session.repository import Capability, Lease, SessionRepository


@dataclass
class _Agent:
    record: AgentRecord
    messages: list[MessageRecord] = field(default_factory=list)


@dataclass
class _Session:
    record: SessionRecord
    agents: dict[str, _Agent] = field(default_factory=dict)
    multi_agents: dict[str, MultiAgentRecord] = field(default_factory=dict)


class InMemorySessionRepository(SessionRepository):
    """Keeps everything in process memory; safe to share between threads and event loops."""

    capabilities: ClassVar[frozenset[Capability]] = frozenset({"lease_expiry"})

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._sessions: dict[str, _Session] = {}
        self._leases: dict[tuple[str, str], tuple[str, float]] = {}

    @classmethod
    def from_url(cls, url: str) -> Self:
        """``memory:``: a fresh, empty store private to this object."""
        return cls()

    def _session(self, session_id: str) -> _Session:
        found = self._sessions.get(session_id)
        if found is None:
            raise SessionNotFoundError(f"session {session_id!r} does not exist")
        return found

    def _agent(self, session_id: str, agent_id: str) -> _Agent:
        found = self._session(session_id).agents.get(agent_id)
        if found is None:
            raise SessionNotFoundError(f"agent {agent_id!r} does not exist in session {session_id!r}")
        return found

    async def create_session(self, session: SessionRecord) -> SessionRecord:
        validate_id(session.session_id, "session_id")
        with self._lock:
            if session.session_id in self._sessions:
                raise ConflictError(f"session {session.session_id!r} already exists")
            self._sessions[session.session_id] = _Session(copy.deepcopy(session))
            return copy.deepcopy(session)

    async def read_session(self, session_id: str) -> SessionRecord | None:
        validate_id(session_id, "session_id")
        with self._lock:
            found = self._sessions.get(session_id)
            return copy.deepcopy(found.record) if found else None

    async def list_sessions(self, *, cursor: str | None = None, limit: int = 100) -> SessionPage:
        with self._lock:
            records = [copy.deepcopy(s.record) for s in self._sessions.values()]
        return page_sessions(records, cursor=cursor, limit=limit)

    async def delete_session(self, session_id: str) -> bool:
        validate_id(session_id, "session_id")
        with self._lock:
            return self._sessions.pop(session_id, None) is not None

    async def list_agents(self, session_id: str) -> list[str]:
        validate_id(session_id, "session_id")
        with self._lock:
            return sorted(self._session(session_id).agents)

    async def create_agent(self, session_id: str, agent: AgentRecord) -> AgentRecord:
        validate_id(session_id, "session_id")
        validate_id(agent.agent_id, "agent_id")
        with self._lock:
            session = self._session(session_id)
            if agent.agent_id in session.agents:
                raise ConflictError(f"agent {agent.agent_id!r} already exists in session {session_id!r}", version=1)
            stored = agent.copy()
            stored.version = 1
            session.agents[agent.agent_id] = _Agent(stored)
            return stored.copy()

    async def read_agent(self, session_id: str, agent_id: str) -> AgentRecord | None:
        validate_id(session_id, "session_id")
        validate_id(agent_id, "agent_id")
        with self._lock:
            session = self._sessions.get(session_id)
            found = session.agents.get(agent_id) if session else None
            return found.record.copy() if found else None

    async def update_agent(self, session_id: str, agent: AgentRecord, *, expected_version: int) -> AgentRecord:
        validate_id(session_id, "session_id")
        with self._lock:
            session = self._session(session_id)
            found = session.agents.get(agent.agent_id)
            stored_version = found.record.version if found else 0
            if found is None or stored_version != expected_version:
                raise version_conflict(f"agent {agent.agent_id!r}", stored_version, expected_version)
            new = agent.successor(expected_version, found.record.created_at)
            found.record = new
            return new.copy()

    async def append_messages(self, session_id: str, agent_id: str, messages: Sequence[MessageRecord]) -> int:
        with self._lock:
            agent = self._agent(session_id, agent_id)
            head = len(agent.messages)
            if not messages:
                return head
            check_append(session_id, agent_id, messages, head)
            agent.messages.extend(copy.deepcopy(list(messages)))
            return len(agent.messages)

    async def read_messages(
        self, session_id: str, agent_id: str, start: int = 0, end: int | None = None
    ) -> list[MessageRecord]:
        with self._lock:
            session = self._sessions.get(session_id)
            found = session.agents.get(agent_id) if session else None
            if found is None:
                return []
            stop = len(found.messages) if end is None else min(end, len(found.messages))
            return copy.deepcopy(found.messages[max(start, 0) : stop])

    async def message_head(self, session_id: str, agent_id: str, *, hint: int | None = None) -> int:
        with self._lock:
            session = self._sessions.get(session_id)
            found = session.agents.get(agent_id) if session else None
            return len(found.messages) if found else 0

    async def update_message(self, session_id: str, agent_id: str, message: MessageRecord) -> None:
        with self._lock:
            agent = self._agent(session_id, agent_id)
            if not 0 <= message.message_id < len(agent.messages):
                raise SessionNotFoundError(f"message {message.message_id} does not exist for agent {agent_id!r}")
            new = copy.deepcopy(message)
            new.created_at = agent.messages[message.message_id].created_at
            new.updated_at = now_iso()
            agent.messages[message.message_id] = new

    async def truncate_messages(self, session_id: str, agent_id: str, new_head: int, *, expected_head: int) -> None:
        with self._lock:
            agent = self._agent(session_id, agent_id)
            if len(agent.messages) != expected_head:
                raise ConflictError(f"head is {len(agent.messages)}, not {expected_head}", head=len(agent.messages))
            del agent.messages[max(new_head, 0) :]

    async def create_multi_agent(self, session_id: str, record: MultiAgentRecord) -> MultiAgentRecord:
        validate_id(record.multi_agent_id, "multi_agent_id")
        with self._lock:
            session = self._session(session_id)
            if record.multi_agent_id in session.multi_agents:
                raise ConflictError(f"multi-agent {record.multi_agent_id!r} already exists", version=1)
            stored = copy.deepcopy(record)
            stored.version = 1
            session.multi_agents[record.multi_agent_id] = stored
            return copy.deepcopy(stored)

    async def read_multi_agent(self, session_id: str, multi_agent_id: str) -> MultiAgentRecord | None:
        with self._lock:
            session = self._sessions.get(session_id)
            found = session.multi_agents.get(multi_agent_id) if session else None
            return copy.deepcopy(found) if found else None

    async def list_multi_agents(self, session_id: str) -> list[str]:
        validate_id(session_id, "session_id")
        with self._lock:
            return sorted(self._session(session_id).multi_agents)

    async def update_multi_agent(
        self, session_id: str, record: MultiAgentRecord, *, expected_version: int
    ) -> MultiAgentRecord:
        with self._lock:
            session = self._session(session_id)
            found = session.multi_agents.get(record.multi_agent_id)
            stored_version = found.version if found else 0
            if found is None or stored_version != expected_version:
                raise version_conflict(f"multi-agent {record.multi_agent_id!r}", stored_version, expected_version)
            new = record.successor(expected_version, found.created_at)
            session.multi_agents[record.multi_agent_id] = new
            return copy.deepcopy(new)

    def _try_lease(self, key: tuple[str, str], ttl: float) -> Lease | None:
        with self._lock:
            held = self._leases.get(key)
            now = time.time()
            if held is not None and held[1] > now:
                return None
            token = uuid.uuid4().hex
            self._leases[key] = (token, now + ttl)
            return Lease(session_id=key[0], agent_id=key[1], token=token, expires_at=now + ttl)

    async def acquire_lease(self, session_id: str, agent_id: str, *, ttl: float, wait: float) -> Lease:
        key = (validate_id(session_id, "session_id"), validate_id(agent_id, "agent_id"))
        deadline = time.monotonic() + max(wait, 0.0)
        delay = 0.002
        while True:
            lease = self._try_lease(key, ttl)
            if lease is not None:
                return lease
            if time.monotonic() >= deadline:
                raise LeaseTimeoutError(
                    f"session {session_id!r}, agent {agent_id!r} is busy: another invocation holds its lease"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    async def renew_lease(self, lease: Lease, *, ttl: float) -> Lease:
        key = (lease.session_id, lease.agent_id)
        with self._lock:
            held = self._leases.get(key)
            if held is None or held[0] != lease.token:
                raise LeaseLostError(f"lease on session {lease.session_id!r}, agent {lease.agent_id!r} was lost")
            expires = time.time() + ttl
            self._leases[key] = (lease.token, expires)
            return Lease(session_id=lease.session_id, agent_id=lease.agent_id, token=lease.token, expires_at=expires)

    async def release_lease(self, lease: Lease) -> None:
        key = (lease.session_id, lease.agent_id)
        with self._lock:
            held = self._leases.get(key)
            if held is not None and held[0] == lease.token:
                del self._leases[key]
