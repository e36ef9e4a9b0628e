"""The async contract written once, for backends whose drivers block.

The file system, sqlite3, psycopg's sync pool, redis-py and boto3 all block. A backend built
on one of them subclasses :class:`ThreadedRepository` and implements the blocking primitives
(``_create_session``, ``_append_messages``, ``_try_lease``, ...); this class supplies every
public ``async`` method of :class:`SessionRepository` on top of them:

- ids are validated once, here, before any I/O;
- each primitive runs in the shared I/O pool (:mod:`mooring._threads`), or in place on the
  event loop when the backend's :meth:`~ThreadedRepository._runs_inline` says the call costs
  less than a thread hop (a stat or one small read on a local disk);
- every call goes through :meth:`~ThreadedRepository._guard`, where a backend maps its
  driver's errors (to ``StorageUnavailableError``) or lends a connection;
- waiting for a lease (poll with jittered backoff until a deadline) is written once.

The dispatch is typed with ``ParamSpec``, so mypy checks every primitive call's arguments.
"""

from __future__ import annotations

import asyncio
import random
import time
from abc import abstractmethod
from collections.abc import Callable, Sequence
from typing import ClassVar, Literal, TypeVar

from typing_extensions import ParamSpec

from mooring._ids import validate_id
from mooring._threads import run_blocking
from mooring.errors import ConfigurationError, LeaseTimeoutError
from mooring.session.records import (
    AgentRecord,
    MessageRecord,
    MultiAgentRecord,
    SessionPage,
    SessionRecord,
    decode_cursor,
)
from mooring.session.repository import Lease, SessionRepository

P = ParamSpec("P")
T = TypeVar("T")

Operation = Literal[
    "create_session",
    "read_session",
    "list_sessions",
    "delete_session",
    "list_agents",
    "create_agent",
    "read_agent",
    "update_agent",
    "append_messages",
    "read_messages",
    "read_window",
    "message_head",
    "update_message",
    "truncate_messages",
    "create_multi_agent",
    "read_multi_agent",
    "list_multi_agents",
    "update_multi_agent",
    "acquire_lease",
    "renew_lease",
    "release_lease",
]


#: Name of the task that renews an invocation's lease: it sleeps for a third of the lease's
#: lifetime between renewals, so a call made in place delays it by far less than it can bear.
RENEWER_TASK_NAME = "mooring-lease-renewer"


def _alone_on_loop() -> bool:
    """True when no task but the current one (and lease renewers) is scheduled on the loop."""
    current = asyncio.current_task()
    return all(t is current or t.get_name() == RENEWER_TASK_NAME for t in asyncio.all_tasks())


class ThreadedRepository(SessionRepository):
    """A :class:`SessionRepository` whose storage calls block; see the module docstring.

    ``lease_poll`` is the first and the longest sleep (seconds) between two tries of a busy
    lease; each sleep doubles up to the longest, with jitter so waiters do not poll in step.
    """

    lease_poll: ClassVar[tuple[float, float]] = (0.005, 0.1)
    #: Run every primitive in place while the calling task is the only one on its loop (a
    #: synchronous ``agent(prompt)`` runs on a loop of its own): a thread hop then keeps no
    #: one from running and only adds its latency. For backends on local storage (a file
    #: system, an SQLite file), where no call waits on a network.
    inline_when_alone: ClassVar[bool] = False

    # -- how primitives run -------------------------------------------------------------------

    def _runs_inline(self, op: Operation, size: int) -> bool:
        """True to run ``op`` on the event loop. Default: never.

        ``size`` is how many records the call names: the messages of an append, a ranged read
        or a truncation, the page size of a listing, 1 for single records; ``-1`` when it is
        not known up front (a read to the head). Only a call whose cost is bounded by
        ``size`` should run inline on its strength.
        """
        return False

    def _guard(self, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run one primitive; backends override this to map driver errors."""
        return func(*args, **kwargs)

    async def _call(self, op: Operation, size: int, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        if self._runs_inline(op, size) or (self.inline_when_alone and _alone_on_loop()):
            return self._guard(func, *args, **kwargs)
        return await run_blocking(self._guard, func, *args, **kwargs)

    # -- what a backend implements ------------------------------------------------------------

    @abstractmethod
    def _create_session(self, session: SessionRecord) -> SessionRecord: ...
    @abstractmethod
    def _read_session(self, session_id: str) -> SessionRecord | None: ...
    @abstractmethod
    def _list_sessions(self, cursor: str | None, limit: int) -> SessionPage: ...
    @abstractmethod
    def _delete_session(self, session_id: str) -> bool: ...
    @abstractmethod
    def _list_agents(self, session_id: str) -> list[str]: ...
    @abstractmethod
    def _create_agent(self, session_id: str, agent: AgentRecord) -> AgentRecord: ...
    @abstractmethod
    def _read_agent(self, session_id: str, agent_id: str) -> AgentRecord | None: ...
    @abstractmethod
    def _update_agent(self, session_id: str, agent: AgentRecord, expected_version: int) -> AgentRecord: ...
    @abstractmethod
    def _append_messages(self, session_id: str, agent_id: str, messages: list[MessageRecord]) -> int: ...
    @abstractmethod
    def _read_messages(self, session_id: str, agent_id: str, start: int, end: int | None) -> list[MessageRecord]: ...
    @abstractmethod
    def _message_head(self, session_id: str, agent_id: str, hint: int | None) -> int: ...
    @abstractmethod
    def _update_message(self, session_id: str, agent_id: str, message: MessageRecord) -> None: ...
    @abstractmethod
    def _truncate_messages(self, session_id: str, agent_id: str, new_head: int, expected_head: int) -> None: ...
    @abstractmethod
    def _create_multi_agent(self, session_id: str, record: MultiAgentRecord) -> MultiAgentRecord: ...
    @abstractmethod
    def _read_multi_agent(self, session_id: str, multi_agent_id: str) -> MultiAgentRecord | None: ...
    @abstractmethod
    def _list_multi_agents(self, session_id: str) -> list[str]: ...
    @abstractmethod
    def _update_multi_agent(
        self, session_id: str, record: MultiAgentRecord, expected_version: int
    ) -> MultiAgentRecord: ...
    @abstractmethod
    def _try_lease(self, session_id: str, agent_id: str, ttl: float) -> Lease | None:
        """Take the lease if it is free (or expired, where leases expire); None if it is held."""

    @abstractmethod
    def _renew_lease(self, lease: Lease, ttl: float) -> Lease: ...
    @abstractmethod
    def _release_lease(self, lease: Lease) -> None: ...

    def _read_window(
        self, session_id: str, agent_id: str, start: int, head_hint: int | None
    ) -> tuple[list[MessageRecord], int]:
        """The head and the messages from ``start`` to it, in one trip to a worker thread."""
        head = self._message_head(session_id, agent_id, head_hint)
        start = min(max(start, 0), head)
        return self._read_messages(session_id, agent_id, start, head), head

    # -- the contract -------------------------------------------------------------------------

    async def create_session(self, session: SessionRecord) -> SessionRecord:
        validate_id(session.session_id, "session_id")
        return await self._call("create_session", 1, self._create_session, session)

    async def read_session(self, session_id: str) -> SessionRecord | None:
        validate_id(session_id, "session_id")
        return await self._call("read_session", 1, self._read_session, session_id)

    async def list_sessions(self, *, cursor: str | None = None, limit: int = 100) -> SessionPage:
        if limit < 1:
            raise ConfigurationError(f"limit must be at least 1, got {limit}")
        if cursor is not None:
            decode_cursor(cursor)  # a malformed cursor is refused before any I/O
        return await self._call("list_sessions", limit, self._list_sessions, cursor, limit)

    async def delete_session(self, session_id: str) -> bool:
        validate_id(session_id, "session_id")
        return await self._call("delete_session", 1, self._delete_session, session_id)

    async def list_agents(self, session_id: str) -> list[str]:
        validate_id(session_id, "session_id")
        return await self._call("list_agents", 1, self._list_agents, session_id)

    async def create_agent(self, session_id: str, agent: AgentRecord) -> AgentRecord:
        validate_id(session_id, "session_id")
        validate_id(agent.agent_id, "agent_id")
        return await self._call("create_agent", 1, self._create_agent, session_id, agent)

    async def read_agent(self, session_id: str, agent_id: str) -> AgentRecord | None:
        validate_id(session_id, "session_id")
        validate_id(agent_id, "agent_id")
        return await self._call("read_agent", 1, self._read_agent, session_id, agent_id)

    async def update_agent(self, session_id: str, agent: AgentRecord, *, expected_version: int) -> AgentRecord:
        validate_id(session_id, "session_id")
        validate_id(agent.agent_id, "agent_id")
        return await self._call("update_agent", 1, self._update_agent, session_id, agent, expected_version)

    async def append_messages(self, session_id: str, agent_id: str, messages: Sequence[MessageRecord]) -> int:
        validate_id(session_id, "session_id")
        validate_id(agent_id, "agent_id")
        batch = list(messages)
        return await self._call("append_messages", len(batch), self._append_messages, session_id, agent_id, batch)

    async def read_messages(
        self, session_id: str, agent_id: str, start: int = 0, end: int | None = None
    ) -> list[MessageRecord]:
        validate_id(session_id, "session_id")
        validate_id(agent_id, "agent_id")
        size = -1 if end is None else max(end - start, 0)  # -1: up to the head, size unknown
        return await self._call("read_messages", size, self._read_messages, session_id, agent_id, start, end)

    async def read_window(
        self, session_id: str, agent_id: str, start: int, *, head_hint: int | None = None
    ) -> tuple[list[MessageRecord], int]:
        validate_id(session_id, "session_id")
        validate_id(agent_id, "agent_id")
        if self._runs_inline("message_head", 1):
            # The head is cheap to find here: find it first, so the read is dispatched on the
            # window's real size, not on a hint that may be stale or missing (0 in Strands' files).
            head = self._guard(self._message_head, session_id, agent_id, head_hint)
            start = min(max(start, 0), head)
            records = await self._call(
                "read_messages", head - start, self._read_messages, session_id, agent_id, start, head
            )
            return records, head
        return await self._call("read_window", -1, self._read_window, session_id, agent_id, start, head_hint)

    async def message_head(self, session_id: str, agent_id: str, *, hint: int | None = None) -> int:
        validate_id(session_id, "session_id")
        validate_id(agent_id, "agent_id")
        return await self._call("message_head", 1, self._message_head, session_id, agent_id, hint)

    async def update_message(self, session_id: str, agent_id: str, message: MessageRecord) -> None:
        validate_id(session_id, "session_id")
        validate_id(agent_id, "agent_id")
        await self._call("update_message", 1, self._update_message, session_id, agent_id, message)

    async def truncate_messages(self, session_id: str, agent_id: str, new_head: int, *, expected_head: int) -> None:
        validate_id(session_id, "session_id")
        validate_id(agent_id, "agent_id")
        size = max(expected_head - new_head, 0)
        await self._call(
            "truncate_messages", size, self._truncate_messages, session_id, agent_id, new_head, expected_head
        )

    async def create_multi_agent(self, session_id: str, record: MultiAgentRecord) -> MultiAgentRecord:
        validate_id(session_id, "session_id")
        validate_id(record.multi_agent_id, "multi_agent_id")
        return await self._call("create_multi_agent", 1, self._create_multi_agent, session_id, record)

    async def read_multi_agent(self, session_id: str, multi_agent_id: str) -> MultiAgentRecord | None:
        validate_id(session_id, "session_id")
        validate_id(multi_agent_id, "multi_agent_id")
        return await self._call("read_multi_agent", 1, self._read_multi_agent, session_id, multi_agent_id)

    async def list_multi_agents(self, session_id: str) -> list[str]:
        validate_id(session_id, "session_id")
        return await self._call("list_multi_agents", 1, self._list_multi_agents, session_id)

    async def update_multi_agent(
        self, session_id: str, record: MultiAgentRecord, *, expected_version: int
    ) -> MultiAgentRecord:
        validate_id(session_id, "session_id")
        validate_id(record.multi_agent_id, "multi_agent_id")
        return await self._call("update_multi_agent", 1, self._update_multi_agent, session_id, record, expected_version)

    async def acquire_lease(self, session_id: str, agent_id: str, *, ttl: float, wait: float) -> Lease:
        validate_id(session_id, "session_id")
        validate_id(agent_id, "agent_id")
        deadline = time.monotonic() + max(wait, 0.0)
        delay, longest = self.lease_poll
        while True:
            lease = await self._call("acquire_lease", 1, self._try_lease, session_id, agent_id, float(ttl))
            if lease is not None:
                return lease
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LeaseTimeoutError(
                    f"session {session_id!r}, agent {agent_id!r} is busy: another invocation holds its lease "
                    f"(waited {wait:g}s)"
                )
            await asyncio.sleep(min(delay * random.uniform(0.5, 1.0), remaining))
            delay = min(delay * 2, longest)

    async def renew_lease(self, lease: Lease, *, ttl: float) -> Lease:
        return await self._call("renew_lease", 1, self._renew_lease, lease, float(ttl))

    async def release_lease(self, lease: Lease) -> None:
        await self._call("release_lease", 1, self._release_lease, lease)
