"""The file backend (the default): the Strands Agents directory tree, safe for many processes."""

from __future__ import annotations

import os
from typing import Any

from mooring._ids import validate_id
from mooring.session.backends.file.repository import Durability, FileSessionRepository
from mooring.session.manager import RepositorySessionManager
from mooring.session.url import default_storage_dir

__all__ = ["FileSessionManager", "FileSessionRepository", "default_storage_dir"]


class FileSessionManager(RepositorySessionManager):
    """Persists to a directory tree in the Strands Agents layout (the default backend).

    Example::

        agent = Agent(agent_id="assistant",
                      session_manager=FileSessionManager(session_id="user-abc-123", storage_dir="./sessions"))

    ``storage_dir`` defaults to ``$MOORING_HOME/sessions``, else the user data directory.
    ``durability="none"`` skips fsync. A record file with a second hard link is refused
    (``CorruptRecordError``) unless ``allow_hard_links=True``. Other keyword options go to
    :class:`RepositorySessionManager` (``lease_wait``, ``fail_fast``, ``lease_ttl``).
    """

    def __init__(
        self,
        session_id: str,
        storage_dir: str | os.PathLike[str] | None = None,
        *,
        durability: Durability = "fsync",
        allow_hard_links: bool = False,
        **options: Any,
    ) -> None:
        validate_id(session_id, "session_id")
        repository = FileSessionRepository(storage_dir, durability=durability, allow_hard_links=allow_hard_links)
        self.storage_dir = repository.storage_dir
        super().__init__(session_id, repository, **options)
