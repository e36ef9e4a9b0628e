"""Session persistence: managers (when to persist) and repositories (how to store).

Backends live in :mod:`mooring.session.backends`, one folder each; the ones whose drivers
are optional (SQLite, PostgreSQL, Redis, S3) are imported on first use of their names, so
``import mooring.session`` never needs boto3, psycopg or redis. Those names
(``SQLiteSessionRepository``/``Manager``, ``PostgresSessionRepository``/``Manager``,
``RedisSessionRepository``/``Manager``, ``S3SessionRepository``/``Manager``) are not in
``__all__``, so ``from mooring.session import *`` works without every driver installed.
"""

from __future__ import annotations

import importlib
from typing import Any

from mooring.session import _moved
from mooring.session._threaded import ThreadedRepository
from mooring.session.backends.file import FileSessionManager, FileSessionRepository, default_storage_dir
from mooring.session.backends.memory import InMemorySessionRepository
from mooring.session.manager import RepositorySessionManager, SessionManager
from mooring.session.records import AgentRecord, MessageRecord, MultiAgentRecord, SessionPage, SessionRecord
from mooring.session.repository import Capability, Lease, SessionRepository
from mooring.session.url import BUILTIN_BACKENDS, default_store_url, open_repository

__all__ = [
    "AgentRecord",
    "Capability",
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
    "ThreadedRepository",
    "default_storage_dir",
    "default_store_url",
    "open_repository",
]


def _lazy_names() -> dict[str, str]:
    # Every backend module defines its XSessionRepository (the table's target) and the
    # matching XSessionManager.
    names = {}
    for target in BUILTIN_BACKENDS.values():
        module, _, repository = target.partition(":")
        names[repository] = module
        if module != "mooring.session.backends.memory":  # the in-memory store has no manager of its own
            names[repository.replace("Repository", "Manager")] = module
    return names


_LAZY = _lazy_names()
_moved.install()


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mooring.session' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
