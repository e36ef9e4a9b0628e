"""The contract suite on the in-memory reference and the file backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from mooring.session import FileSessionRepository, InMemorySessionRepository
from mooring.testing import SessionRepositoryContract


class TestInMemoryRepository(SessionRepositoryContract):
    @pytest.fixture
    def repository(self) -> InMemorySessionRepository:
        return InMemorySessionRepository()


class TestFileRepository(SessionRepositoryContract):
    @pytest.fixture
    def repository(self, tmp_path: Path) -> FileSessionRepository:
        return FileSessionRepository(tmp_path / "store")


class TestFileRepositoryWithoutFsync(SessionRepositoryContract):
    @pytest.fixture
    def repository(self, tmp_path: Path) -> FileSessionRepository:
        return FileSessionRepository(tmp_path / "store", durability="none")
