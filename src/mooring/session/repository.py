"""The async storage contract every backend implements.

A repository decides HOW records are stored; it never decides WHEN (that is the
SessionManager's job). The primitives are few and conditional:

- messages are appended at the store's head only (``append_messages`` names the id it
  expects to write; a taken or non-contiguous id raises ``ConflictError`` with the head);
- the agent and multi-agent records are compare-and-set on an integer ``version``;
- an invocation lease serialises turns on one (session, agent) across processes.

Derived operations (fork, copy, export) live in :mod:`mooring.session.ops`, written once on
top of these primitives.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from typing_extensions import Self

from mooring.errors import ConfigurationError
from mooring.session.records import AgentRecord, MessageRecord, MultiAgentRecord, SessionPage, SessionRecord

Capability = Literal["ttl", "lease_expiry"]
"""Optional behaviours a backend may declare: ``"ttl"`` (sessions expire) and ``"lease_expiry"``
(a lease has a TTL and is taken over once it lapses, rather than dying with its holder)."""


@dataclass(kw_only=True)
class Lease:
    """Proof of holding the invocation lease on (session, agent).

    ``token`` is unique per acquisition; ``expires_at`` is a ``time.time()`` deadline, or
    ``None`` for leases the backend releases when the holder dies (file locks, advisory locks).
    """

    session_id: str
    agent_id: str
    token: str
    expires_at: float | None = None
    handle: Any = field(default=None, repr=False)


class SessionRepository(ABC):
    """Async storage contract for sessions, agents, messages, multi-agent records and leases.

    Optional capabilities a backend may declare in ``capabilities``: ``"ttl"`` (sessions
    expire), ``"lease_expiry"`` (leases have a TTL and can be taken over when it lapses).
    The contract suite skips only tests of capabilities a backend does not declare.

    ``stores_nul`` is False for a backend that cannot hold U+0000 in a string (PostgreSQL's
    JSONB); the session manager then refuses such content before anything of a turn is written.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    stores_nul: ClassVar[bool] = True

    @classmethod
    def from_url(cls, url: str) -> Self:
        """Build the repository a store URL names (see :func:`mooring.session.open_repository`)."""
        raise ConfigurationError(f"{cls.__name__} cannot be opened from a store URL ({url!r})")

    # -- sessions -----------------------------------------------------------------------------

    @abstractmethod
    async def create_session(self, session: SessionRecord) -> SessionRecord:
        """Create the session; ``ConflictError`` if it already exists."""

    @abstractmethod
    async def read_session(self, session_id: str) -> SessionRecord | None: ...

    @abstractmethod
    async def list_sessions(self, *, cursor: str | None = None, limit: int = 100) -> SessionPage:
        """Sessions, newest ``created_at`` first (ties by id), ``limit`` per page."""

    @abstractmethod
    async def delete_session(self, session_id: str) -> bool:
        """Delete the session and everything under it; False if it did not exist."""

    # -- agents -------------------------------------------------------------------------------

    @abstractmethod
    async def list_agents(self, session_id: str) -> list[str]:
        """Agent ids in the session, sorted; ``SessionNotFoundError`` if no such session."""

    @abstractmethod
    async def create_agent(self, session_id: str, agent: AgentRecord) -> AgentRecord:
        """Store a new agent record with version 1 and return it.

        ``ConflictError`` if the agent exists, ``SessionNotFoundError`` if the session does not.
        """

    @abstractmethod
    async def read_agent(self, session_id: str, agent_id: str) -> AgentRecord | None: ...

    @abstractmethod
    async def update_agent(self, session_id: str, agent: AgentRecord, *, expected_version: int) -> AgentRecord:
        """Replace the record if its stored version is ``expected_version``; the result has
        version ``expected_version + 1``. Otherwise ``ConflictError(version=stored)``
        (stored is 0 when the record is missing). ``created_at`` is kept from the stored copy."""

    # -- messages -----------------------------------------------------------------------------

    @abstractmethod
    async def append_messages(self, session_id: str, agent_id: str, messages: Sequence[MessageRecord]) -> int:
        """Append records with contiguous ids starting at the store's head; return the new head.

        ``messages[0].message_id`` must equal the current head (the next free id), otherwise
        nothing is written and ``ConflictError(head=current)`` is raised. ``SessionNotFoundError``
        if the session or agent does not exist.
        """

    @abstractmethod
    async def read_messages(
        self, session_id: str, agent_id: str, start: int = 0, end: int | None = None
    ) -> list[MessageRecord]:
        """Records with ``start <= message_id < end`` (``end=None``: to the head), by id.

        Cost is proportional to the range, not to the whole history.
        """

    @abstractmethod
    async def message_head(self, session_id: str, agent_id: str, *, hint: int | None = None) -> int:
        """The next free message id (the number of messages ever appended and not truncated).

        ``hint`` is a recent head (for example from the agent record); backends that can
        verify it cheaply do so instead of scanning.
        """

    @abstractmethod
    async def update_message(self, session_id: str, agent_id: str, message: MessageRecord) -> None:
        """Rewrite an existing message (redaction, repair); ``SessionNotFoundError`` if absent."""

    @abstractmethod
    async def truncate_messages(self, session_id: str, agent_id: str, new_head: int, *, expected_head: int) -> None:
        """Remove messages with id >= ``new_head`` if the head is still ``expected_head``.

        Removal goes from the highest id down, so a crash leaves a dense prefix.
        """

    async def read_window(
        self, session_id: str, agent_id: str, start: int, *, head_hint: int | None = None
    ) -> tuple[list[MessageRecord], int]:
        """The messages from ``start`` (clamped to the head) up to the head, and the head.

        This is what a restore needs. The default is :meth:`message_head` then
        :meth:`read_messages`; a remote backend may override it to verify the hint and fetch
        the window in one round of requests.
        """
        head = await self.message_head(session_id, agent_id, hint=head_hint)
        start = min(max(start, 0), head)
        return await self.read_messages(session_id, agent_id, start, head), head

    # -- multi-agent records ------------------------------------------------------------------

    @abstractmethod
    async def create_multi_agent(self, session_id: str, record: MultiAgentRecord) -> MultiAgentRecord: ...

    @abstractmethod
    async def read_multi_agent(self, session_id: str, multi_agent_id: str) -> MultiAgentRecord | None: ...

    @abstractmethod
    async def list_multi_agents(self, session_id: str) -> list[str]:
        """Multi-agent record ids in the session, sorted; ``SessionNotFoundError`` if no such session."""

    @abstractmethod
    async def update_multi_agent(
        self, session_id: str, record: MultiAgentRecord, *, expected_version: int
    ) -> MultiAgentRecord: ...

    # -- invocation leases --------------------------------------------------------------------

    @abstractmethod
    async def acquire_lease(self, session_id: str, agent_id: str, *, ttl: float, wait: float) -> Lease:
        """Take the (session, agent) lease, waiting up to ``wait`` seconds (0: try once).

        ``LeaseTimeoutError`` when another holder keeps it past the wait.
        """

    @abstractmethod
    async def renew_lease(self, lease: Lease, *, ttl: float) -> Lease:
        """Extend the lease; ``LeaseLostError`` if it expired and someone else took it."""

    @abstractmethod
    async def release_lease(self, lease: Lease) -> None:
        """Give the lease back; releasing a lease no longer held is a no-op."""

    # -- lifecycle ----------------------------------------------------------------------------

    async def close(self) -> None:
        """Release connections and other resources."""
        return None

    def describe(self) -> str:
        """A short human description (for logs and the CLI), without secrets."""
        return type(self).__name__
