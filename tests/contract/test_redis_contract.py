"""The contract suite on the Redis backend, against the real server at ``REDIS_URL``."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

from mooring.testing import SessionRepositoryContract

from helpers.services import REDIS_URL, require_service

redis = pytest.importorskip("redis")

from mooring.session.backends.redis.repository import RedisSessionRepository  # noqa: E402

pytestmark = pytest.mark.redis


def _repository(ttl: float | None) -> Iterator[RedisSessionRepository]:
    """A repository on a fresh key prefix; afterwards every key under that prefix is removed."""
    prefix = f"mooring-test-{uuid.uuid4().hex[:12]}"
    admin = redis.Redis.from_url(REDIS_URL)
    try:
        admin.ping()
    except redis.RedisError as exc:
        admin.close()
        require_service("redis", f"{REDIS_URL}: {exc}")
    repo = RedisSessionRepository(REDIS_URL, prefix=prefix, ttl=ttl)
    try:
        yield repo
    finally:
        asyncio.run(repo.close())
        keys = list(admin.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            admin.delete(*keys)
        admin.close()


class TestRedisRepository(SessionRepositoryContract):
    @pytest.fixture
    def repository(self) -> Iterator[RedisSessionRepository]:
        yield from _repository(ttl=None)

    @pytest.fixture
    def ttl_repository(self, session_ttl: float) -> Iterator[RedisSessionRepository]:
        yield from _repository(ttl=session_ttl)


class TestRedisRepositoryWithTTL(TestRedisRepository):
    """The same contract with a session TTL, so every write also runs the expiry refresh."""

    @pytest.fixture
    def repository(self) -> Iterator[RedisSessionRepository]:
        yield from _repository(ttl=3600)
