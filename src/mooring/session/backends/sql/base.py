"""Shared by the SQL backends: the threaded async base class, record decoding, paging, lease waits."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from abc import abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar, Generic, TypeVar

from mooring._ids import validate_id
from mooring._json import BYTES_MARKER
from mooring._threads import run_blocking
from mooring.errors import ConfigurationError, ConflictError, CorruptRecordError, LeaseTimeoutError
from mooring.session.records import (
    AgentRecord,
    MessageRecord,
    MultiAgentRecord,
    SessionPage,
    SessionRecord,
    decode_cursor,
    encode_cursor,
)
from mooring.session.repository import Capability, Lease, SessionRepository

T = TypeVar("T")
C = TypeVar("C")


def dump(data: Any) -> str:
    """Compact JSON text for a stored column."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def load(raw: Any, where: str) -> Any:
    """Decode a stored column: JSON text (SQLite) or an already decoded JSONB value (psycopg)."""
    if isinstance(raw, (str, bytes, bytearray)):
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CorruptRecordError(f"{where} is corrupt: not valid JSON ({exc})") from exc
    return raw


def session_where(store: str, session_id: str) -> str:
    return f"{store}: session {session_id!r}"


def agent_where(store: str, session_id: str, agent_id: str) -> str:
    return f"{store}: session {session_id!r}, agent {agent_id!r}"


def message_where(store: str, session_id: str, agent_id: str, message_id: int) -> str:
    return f"{store}: session {session_id!r}, agent {agent_id!r}, message {message_id}"


def multi_where(store: str, session_id: str, multi_agent_id: str) -> str:
    return f"{store}: session {session_id!r}, multi-agent {multi_agent_id!r}"


def decode_session(raw: Any, where: str) -> SessionRecord:
    return SessionRecord.from_dict(load(raw, where), where)


def decode_agent(raw: Any, version: int, where: str) -> AgentRecord:
    record = AgentRecord.from_dict(load(raw, where), where)
    record.version = int(version)  # the column is what compare-and-set checks
    return record


def decode_message(raw: Any, message_id: int, where: str) -> MessageRecord:
    # Most messages carry no bytes: when the text shows no marker, skip the decoding walk.
    has_bytes = not isinstance(raw, str) or BYTES_MARKER in raw
    return MessageRecord.from_dict(load(raw, where), where, expected_id=int(message_id), has_bytes=has_bytes)


def decode_multi(raw: Any, version: int, where: str) -> MultiAgentRecord:
    record = MultiAgentRecord.from_dict(load(raw, where), where)
    record.version = int(version)
    return record


def stored_created_at(raw: Any, where: str, fallback: str) -> str:
    """``created_at`` of a stored record, or ``fallback`` when the stored copy is unreadable
    (rewriting a corrupt message is how it gets repaired)."""
    try:
        data = load(raw, where)
    except CorruptRecordError:
        return fallback
    value = data.get("created_at") if isinstance(data, dict) else None
    return str(value) if value else fallback


def check_append(session_id: str, agent_id: str, messages: Sequence[MessageRecord], head: int) -> None:
    """``ConflictError(head=head)`` unless ``messages`` continue exactly at ``head``."""
    for offset, record in enumerate(messages):
        if record.message_id != head + offset:
            raise ConflictError(
                f"message id {record.message_id} is not the next free id {head + offset} "
                f"for agent {agent_id!r} in session {session_id!r}",
                head=head,
            )


def page_bounds(cursor: str | None, limit: int) -> tuple[str, str] | None:
    """Validate listing arguments before any I/O; the keyset position after ``cursor``."""
    if limit < 1:
        raise ConfigurationError(f"limit must be at least 1, got {limit}")
    return decode_cursor(cursor) if cursor is not None else None


def make_page(records: list[SessionRecord], limit: int) -> SessionPage:
    """One page from ``limit + 1`` rows fetched newest first (the extra row says "more")."""
    page = records[:limit]
    next_cursor = encode_cursor(page[-1]) if len(records) > limit else None
    return SessionPage(sessions=page, next_cursor=next_cursor)


def new_token() -> str:
    return uuid.uuid4().hex


async def acquire_with_wait(
    try_once: Callable[[], Awaitable[Lease | None]], session_id: str, agent_id: str, wait: float
) -> Lease:
    """Poll ``try_once`` with backoff until it returns a lease or ``wait`` seconds pass."""
    deadline = time.monotonic() + max(wait, 0.0)
    delay = 0.005
    while True:
        lease = await try_once()
        if lease is not None:
            return lease
        if time.monotonic() >= deadline:
            raise LeaseTimeoutError(
                f"session {session_id!r}, agent {agent_id!r} is busy: another invocation holds its lease "
                f"(waited {wait:g}s)"
            )
        await asyncio.sleep(min(delay, max(deadline - time.monotonic(), 0.0)))
        delay = min(delay * 2, 0.1)


class ThreadedSQLRepository(SessionRepository, Generic[C]):
    """The async contract on top of blocking per-operation methods that take a connection ``C``.

    Each public method validates its ids before any I/O, then runs the matching private
    method in a worker thread through ``_call``, which lends it a connection and maps driver
    errors. Worker threads keep blocking drivers off the event loop and make the repository
    usable from any loop, since no connection is tied to one. Backends implement only the
    private methods.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset({"lease_expiry"})

    @abstractmethod
    def _call(self, func: Callable[..., T], *args: Any) -> T:
        """Run ``func(connection, *args)`` with a connection; map driver errors."""

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        return await run_blocking(self._call, func, *args)

    # -- what a backend implements (blocking, given a connection) -------------------------------

    @abstractmethod
    def _create_session(self, conn: C, session: SessionRecord) -> SessionRecord: ...
    @abstractmethod
    def _read_session(self, conn: C, session_id: str) -> SessionRecord | None: ...
    @abstractmethod
    def _list_sessions(self, conn: C, after: tuple[str, str] | None, limit: int) -> SessionPage: ...
    @abstractmethod
    def _delete_session(self, conn: C, session_id: str) -> bool: ...
    @abstractmethod
    def _list_agents(self, conn: C, session_id: str) -> list[str]: ...
    @abstractmethod
    def _list_multi(self, conn: C, session_id: str) -> list[str]: ...
    @abstractmethod
    def _create_agent(self, conn: C, session_id: str, agent: AgentRecord) -> AgentRecord: ...
    @abstractmethod
    def _read_agent(self, conn: C, session_id: str, agent_id: str) -> AgentRecord | None: ...
    @abstractmethod
    def _update_agent(self, conn: C, session_id: str, agent: AgentRecord, expected_version: int) -> AgentRecord: ...
    @abstractmethod
    def _append(self, conn: C, session_id: str, agent_id: str, messages: list[MessageRecord]) -> int: ...
    @abstractmethod
    def _read_messages(
        self, conn: C, session_id: str, agent_id: str, start: int, end: int | None
    ) -> list[MessageRecord]: ...
    @abstractmethod
    def _head(self, conn: C, session_id: str, agent_id: str) -> int: ...
    @abstractmethod
    def _update_message(self, conn: C, session_id: str, agent_id: str, message: MessageRecord) -> None: ...
    @abstractmethod
    def _truncate(self, conn: C, session_id: str, agent_id: str, new_head: int, expected_head: int) -> None: ...
    @abstractmethod
    def _create_multi(self, conn: C, session_id: str, record: MultiAgentRecord) -> MultiAgentRecord: ...
    @abstractmethod
    def _read_multi(self, conn: C, session_id: str, multi_agent_id: str) -> MultiAgentRecord | None: ...
    @abstractmethod
    def _update_multi(
        self, conn: C, session_id: str, record: MultiAgentRecord, expected_version: int
    ) -> MultiAgentRecord: ...
    @abstractmethod
    def _try_lease(self, conn: C, session_id: str, agent_id: str, ttl: float) -> Lease | None:
        """Take the lease if it is free or expired; None if someone else holds it."""

    @abstractmethod
    def _renew(self, conn: C, lease: Lease, ttl: float) -> Lease: ...
    @abstractmethod
    def _release(self, conn: C, lease: Lease) -> None: ...

    # -- the contract -----------------------------------------------------------------------------

    async def create_session(self, session: SessionRecord) -> SessionRecord:
        validate_id(session.session_id, "session_id")
        return await self._run(self._create_session, session)

    async def read_session(self, session_id: str) -> SessionRecord | None:
        validate_id(session_id, "session_id")
        return await self._run(self._read_session, session_id)

    async def list_sessions(self, *, cursor: str | None = None, limit: int = 100) -> SessionPage:
        after = page_bounds(cursor, limit)
        return await self._run(self._list_sessions, after, limit)

    async def delete_session(self, session_id: str) -> bool:
        validate_id(session_id, "session_id")
        return await self._run(self._delete_session, session_id)

    async def list_agents(self, session_id: str) -> list[str]:
        validate_id(session_id, "session_id")
        return await self._run(self._list_agents, session_id)

    async def list_multi_agents(self, session_id: str) -> list[str]:
        validate_id(session_id, "session_id")
        return await self._run(self._list_multi, session_id)

    async def create_agent(self, session_id: str, agent: AgentRecord) -> AgentRecord:
        validate_id(session_id, "session_id")
        validate_id(agent.agent_id, "agent_id")
        return await self._run(self._create_agent, session_id, agent)

    async def read_agent(self, session_id: str, agent_id: str) -> AgentRecord | None:
        validate_id(session_id, "session_id")
        validate_id(agent_id, "agent_id")
        return await self._run(self._read_agent, session_id, agent_id)

    async def update_agent(self, session_id: str, agent: AgentRecord, *, expected_version: int) -> AgentRecord:
        validate_id(session_id, "session_id")
        validate_id(agent.agent_id, "agent_id")
        return await self._run(self._update_agent, session_id, agent, expected_version)

    async def append_messages(self, session_id: str, agent_id: str, messages: Sequence[MessageRecord]) -> int:
        validate_id(session_id, "session_id")
        validate_id(agent_id, "agent_id")
        return await self._run(self._append, session_id, agent_id, list(messages))

    async def read_messages(
        self, session_id: str, agent_id: str, start: int = 0, end: int | None = None
    ) -> list[MessageRecord]:
        validate_id(session_id, "session_id")
        validate_id(agent_id, "agent_id")
        return await self._run(self._read_messages, session_id, agent_id, start, end)

    async def message_head(self, session_id: str, agent_id: str, *, hint: int | None = None) -> int:
        # An index seek on (session, agent, max id) is as cheap as verifying the hint would be.
        validate_id(session_id, "session_id")
        validate_id(agent_id, "agent_id")
        return await self._run(self._head, session_id, agent_id)

    async def update_message(self, session_id: str, agent_id: str, message: MessageRecord) -> None:
        validate_id(session_id, "session_id")
        validate_id(agent_id, "agent_id")
        await self._run(self._update_message, session_id, agent_id, message)

    async def truncate_messages(self, session_id: str, agent_id: str, new_head: int, *, expected_head: int) -> None:
        validate_id(session_id, "session_id")
        validate_id(agent_id, "agent_id")
        await self._run(self._truncate, session_id, agent_id, new_head, expected_head)

    async def create_multi_agent(self, session_id: str, record: MultiAgentRecord) -> MultiAgentRecord:
        validate_id(session_id, "session_id")
        validate_id(record.multi_agent_id, "multi_agent_id")
        return await self._run(self._create_multi, session_id, record)

    async def read_multi_agent(self, session_id: str, multi_agent_id: str) -> MultiAgentRecord | None:
        validate_id(session_id, "session_id")
        validate_id(multi_agent_id, "multi_agent_id")
        return await self._run(self._read_multi, session_id, multi_agent_id)

    async def update_multi_agent(
        self, session_id: str, record: MultiAgentRecord, *, expected_version: int
    ) -> MultiAgentRecord:
        validate_id(session_id, "session_id")
        validate_id(record.multi_agent_id, "multi_agent_id")
        return await self._run(self._update_multi, session_id, record, expected_version)

    async def acquire_lease(self, session_id: str, agent_id: str, *, ttl: float, wait: float) -> Lease:
        validate_id(session_id, "session_id")
        validate_id(agent_id, "agent_id")

        async def try_once() -> Lease | None:
            return await self._run(self._try_lease, session_id, agent_id, float(ttl))

        return await acquire_with_wait(try_once, session_id, agent_id, wait)

    async def renew_lease(self, lease: Lease, *, ttl: float) -> Lease:
        return await self._run(self._renew, lease, float(ttl))

    async def release_lease(self, lease: Lease) -> None:
        await self._run(self._release, lease)
