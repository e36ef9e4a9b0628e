"""The contract suite on the SQLite backend, with and without fsync durability."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from mooring.session.backends.sql.sqlite import SQLiteSessionRepository
from mooring.testing import SessionRepositoryContract


class TestSQLiteRepository(SessionRepositoryContract):
    @pytest.fixture
    def repository(self, tmp_path: Path) -> Iterator[SQLiteSessionRepository]:
        repo = SQLiteSessionRepository(tmp_path / "store" / "sessions.db")
        yield repo
        asyncio.run(repo.close())


class TestSQLiteRepositoryWithoutFsync(SessionRepositoryContract):
    @pytest.fixture
    def repository(self, tmp_path: Path) -> Iterator[SQLiteSessionRepository]:
        repo = SQLiteSessionRepository(tmp_path / "sessions.db", durability="none")
        yield repo
        asyncio.run(repo.close())
