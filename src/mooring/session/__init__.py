"""Session persistence: managers (when to persist) and repositories (how to store)."""

from __future__ import annotations

from typing import Any

from mooring.session.file import FileSessionRepository, default_storage_dir
from mooring.session.manager import RepositorySessionManager, SessionManager
from mooring.session.memory import InMemorySessionRepository
from mooring.session.records import AgentRecord, MessageRecord, MultiAgentRecord, SessionPage, SessionRecord
from mooring.session.repository import Lease, SessionRepository
from mooring.session.url import default_store_url, open_repository

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
    "default_store_url",
    "open_repository",
]

# Backends whose drivers are optional are imported on first use, so ``import mooring.session``
# never needs boto3, psycopg or redis.
_LAZY = {
    "SQLiteSessionRepository": "mooring.session.sqlite",
    "SQLiteSessionManager": "mooring.session.sqlite",
    "PostgresSessionRepository": "mooring.session.postgres",
    "PostgresSessionManager": "mooring.session.postgres",
    "RedisSessionRepository": "mooring.session.redis",
    "RedisSessionManager": "mooring.session.redis",
    "S3SessionRepository": "mooring.session.s3",
    "S3SessionManager": "mooring.session.s3",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mooring.session' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


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
