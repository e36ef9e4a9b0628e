"""Session persistence: managers (when to persist) and repositories (how to store)."""

from __future__ import annotations

from typing import Any

from mooring.session.file import FileSessionRepository, default_storage_dir
from mooring.session.manager import RepositorySessionManager, SessionManager
from mooring.session.memory import InMemorySessionRepository
from mooring.session.records import AgentRecord, MessageRecord, MultiAgentRecord, SessionPage, SessionRecord
from mooring.session.repository import Lease, SessionRepository

__all__ = [
    "AgentRecord",
    "FileSessionManager",
    "FileSessionRepository",
    "InMemorySessionRepository",
    "Lease",
    "MessageRecord",
    "MultiAgentRecord",
    "RepositorySessionManager",
    "SessionManager",
    "SessionPage",
    "SessionRecord",
    "SessionRepository",
    "default_storage_dir",
]


class FileSessionManager(RepositorySessionManager):
    """Persists to a directory tree in the Strands Agents layout (the default backend).

    Example::

        agent = Agent(agent_id="assistant",
                      session_manager=FileSessionManager(session_id="user-abc-123", storage_dir="./sessions"))

    ``storage_dir`` defaults to ``$MOORING_HOME/sessions``, else the user data directory.
    ``durability="none"`` skips fsync. Other keyword options go to
    :class:`RepositorySessionManager` (``lease_wait``, ``fail_fast``, ``lease_ttl``).
    """

    def __init__(self, session_id: str, storage_dir: Any = None, *, durability: Any = "fsync", **options: Any) -> None:
        from mooring._ids import validate_id

        validate_id(session_id, "session_id")
        repository = FileSessionRepository(storage_dir, durability=durability)
        self.storage_dir = repository.storage_dir
        super().__init__(session_id, repository, **options)
