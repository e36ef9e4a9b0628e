"""The contract suite on the PostgreSQL backend, each test class in its own throwaway schema."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from mooring.session.repository import SessionRepository
from mooring.testing import SessionRepositoryContract

from helpers.services import POSTGRES_DSN, require_service

try:
    import psycopg
    import psycopg_pool

    from mooring.session.backends.sql.postgres import PostgresSessionRepository
except ImportError as exc:  # no driver: skip on a laptop, fail under CI (in the fixture)
    psycopg = None  # type: ignore[assignment]
    _missing_driver = str(exc)

pytestmark = pytest.mark.postgres


@contextmanager
def _fresh_schema() -> Iterator[str]:
    """A random schema for one test class, dropped afterwards (other schemas are never touched)."""
    if psycopg is None:
        require_service("postgres", _missing_driver)
    try:
        psycopg.connect(POSTGRES_DSN, connect_timeout=5).close()
    except psycopg.Error as exc:
        require_service("postgres", f"{POSTGRES_DSN}: {exc}")
    schema = f"mooring_test_{uuid.uuid4().hex[:12]}"
    try:
        yield schema
    finally:
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
            conn.execute(psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(psycopg.sql.Identifier(schema)))


class TestPostgresRepository(SessionRepositoryContract):
    @pytest.fixture(scope="class")
    @classmethod
    def repository(cls) -> Iterator[SessionRepository]:
        with _fresh_schema() as schema:
            repo = PostgresSessionRepository(POSTGRES_DSN, schema=schema)
            yield repo
            asyncio.run(repo.close())


class TestPostgresRepositoryOnCallersPool(SessionRepositoryContract):
    """A pool the application built (not in autocommit mode) works the same way."""

    @pytest.fixture(scope="class")
    @classmethod
    def repository(cls) -> Iterator[SessionRepository]:
        with _fresh_schema() as schema:
            kwargs: dict[str, Any] = {"prepare_threshold": None}
            with psycopg_pool.ConnectionPool(POSTGRES_DSN, min_size=1, max_size=4, kwargs=kwargs, open=True) as pool:
                repo = PostgresSessionRepository(pool=pool, schema=schema)
                yield repo
                asyncio.run(repo.close())
