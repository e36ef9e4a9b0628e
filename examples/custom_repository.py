"""A custom repository: implement the ``SessionRepository`` contract yourself.

Shows: ``AuditedRepository`` wraps any repository and keeps an audit log of every write,
delegating each contract method to the store underneath. A wrapper ``Repository ->
Repository`` is how mooring adds a cross-cutting concern (auditing, encryption, metrics) to
every backend at once. Any class that implements the contract works with
``RepositorySessionManager``; ``mooring.testing.SessionRepositoryContract`` is the test
suite that says what "implements" means, and ``--contract`` runs it against this class.

Run (offline, no credentials)::

    python examples/custom_repository.py              # an agent on the audited store
    python examples/custom_repository.py --contract   # run the contract suite (needs pytest)
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator, Sequence

from mooring import Agent
from mooring.session import (
    AgentRecord,
    InMemorySessionRepository,
    Lease,
    MessageRecord,
    MultiAgentRecord,
    RepositorySessionManager,
    SessionPage,
    SessionRecord,
    SessionRepository,
)


class AuditedRepository(SessionRepository):
    """Every contract method goes to ``inner``; every write is also noted in ``audit``."""

    def __init__(self, inner: SessionRepository) -> None:
        self.inner = inner
        # Backends declare capabilities on the class; a wrapper passes on what its store declares,
        # so the contract suite tests exactly those.
        self.capabilities = inner.capabilities  # type: ignore[misc]
        self.audit: list[str] = []

    def _note(self, entry: str) -> None:
        self.audit.append(entry)

    # Sessions
    async def create_session(self, session: SessionRecord) -> SessionRecord:
        self._note(f"create_session {session.session_id}")
        return await self.inner.create_session(session)

    async def read_session(self, session_id: str) -> SessionRecord | None:
        return await self.inner.read_session(session_id)

    async def list_sessions(self, *, cursor: str | None = None, limit: int = 100) -> SessionPage:
        return await self.inner.list_sessions(cursor=cursor, limit=limit)

    async def delete_session(self, session_id: str) -> bool:
        self._note(f"delete_session {session_id}")
        return await self.inner.delete_session(session_id)

    # Agent records (compare-and-set on version)
    async def list_agents(self, session_id: str) -> list[str]:
        return await self.inner.list_agents(session_id)

    async def create_agent(self, session_id: str, agent: AgentRecord) -> AgentRecord:
        self._note(f"create_agent {session_id}/{agent.agent_id}")
        return await self.inner.create_agent(session_id, agent)

    async def read_agent(self, session_id: str, agent_id: str) -> AgentRecord | None:
        return await self.inner.read_agent(session_id, agent_id)

    async def update_agent(self, session_id: str, agent: AgentRecord, *, expected_version: int) -> AgentRecord:
        self._note(f"update_agent {session_id}/{agent.agent_id} v{expected_version}")
        return await self.inner.update_agent(session_id, agent, expected_version=expected_version)

    # Messages (conditional appends at the head)
    async def append_messages(self, session_id: str, agent_id: str, messages: Sequence[MessageRecord]) -> int:
        ids = [m.message_id for m in messages]
        self._note(f"append_messages {session_id}/{agent_id} {ids}")
        return await self.inner.append_messages(session_id, agent_id, messages)

    async def read_messages(
        self, session_id: str, agent_id: str, start: int = 0, end: int | None = None
    ) -> list[MessageRecord]:
        return await self.inner.read_messages(session_id, agent_id, start, end)

    async def message_head(self, session_id: str, agent_id: str, *, hint: int | None = None) -> int:
        return await self.inner.message_head(session_id, agent_id, hint=hint)

    async def update_message(self, session_id: str, agent_id: str, message: MessageRecord) -> None:
        self._note(f"update_message {session_id}/{agent_id} {message.message_id}")
        await self.inner.update_message(session_id, agent_id, message)

    async def truncate_messages(self, session_id: str, agent_id: str, new_head: int, *, expected_head: int) -> None:
        self._note(f"truncate_messages {session_id}/{agent_id} {expected_head}->{new_head}")
        await self.inner.truncate_messages(session_id, agent_id, new_head, expected_head=expected_head)

    # Multi-agent records
    async def create_multi_agent(self, session_id: str, record: MultiAgentRecord) -> MultiAgentRecord:
        self._note(f"create_multi_agent {session_id}")
        return await self.inner.create_multi_agent(session_id, record)

    async def read_multi_agent(self, session_id: str, multi_agent_id: str) -> MultiAgentRecord | None:
        return await self.inner.read_multi_agent(session_id, multi_agent_id)

    async def list_multi_agents(self, session_id: str) -> list[str]:
        return await self.inner.list_multi_agents(session_id)

    async def update_multi_agent(
        self, session_id: str, record: MultiAgentRecord, *, expected_version: int
    ) -> MultiAgentRecord:
        self._note(f"update_multi_agent {session_id} v{expected_version}")
        return await self.inner.update_multi_agent(session_id, record, expected_version=expected_version)

    # The invocation lease
    async def acquire_lease(self, session_id: str, agent_id: str, *, ttl: float, wait: float) -> Lease:
        return await self.inner.acquire_lease(session_id, agent_id, ttl=ttl, wait=wait)

    async def renew_lease(self, lease: Lease, *, ttl: float) -> Lease:
        return await self.inner.renew_lease(lease, ttl=ttl)

    async def release_lease(self, lease: Lease) -> None:
        await self.inner.release_lease(lease)

    async def close(self) -> None:
        await self.inner.close()

    def describe(self) -> str:
        return f"audited {self.inner.describe()}"


try:  # The contract suite, collected only when pytest runs this file (--contract).
    import pytest

    from mooring.testing import SessionRepositoryContract

    class TestAuditedRepository(SessionRepositoryContract):
        @pytest.fixture
        def repository(self) -> Iterator[AuditedRepository]:
            repo = AuditedRepository(InMemorySessionRepository())
            yield repo
            asyncio.run(repo.close())

except ImportError:  # pytest is only needed for --contract
    pass


def main() -> int:
    if "--contract" in sys.argv[1:]:
        import pytest

        return int(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
    repository = AuditedRepository(InMemorySessionRepository())
    agent = Agent(
        model="offline",
        agent_id="assistant",
        callback_handler=None,
        session_manager=RepositorySessionManager("audited-session", repository),
    )
    print(f"> What's the capital of Italy?\n  {agent('What is the capital of Italy?')}")
    print("audit log of the writes one turn made:")
    for entry in repository.audit:
        print(f"  {entry}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
