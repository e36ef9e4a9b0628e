"""Stop a real PostgreSQL or Redis server during a run, start it again, and check what survived.

Each test runs its own private server (see helpers.private_servers), so stopping it never
disturbs the shared services other tests use.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mooring import Agent, ToolContext, tool
from mooring.errors import StorageUnavailableError
from mooring.models import ScriptedModel, tool_call
from mooring.session import RepositorySessionManager, SessionRepository
from mooring.types import tool_result_ids, tool_uses

from helpers.private_servers import PrivateServer, private_postgres, private_redis

pytestmark = pytest.mark.slow


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[PrivateServer]:
    with private_redis(tmp_path) as server:
        yield server


@pytest.fixture
def postgres_server() -> Iterator[PrivateServer]:
    with private_postgres() as server:
        yield server


def _repository(kind: str, server: PrivateServer) -> SessionRepository:
    if kind == "redis":
        from mooring.session.backends.redis.repository import RedisSessionRepository

        return RedisSessionRepository(server.url, prefix="restart")
    from mooring.session.backends.sql.postgres import PostgresSessionRepository

    return PostgresSessionRepository(server.url, schema="restart")


def _consistent(messages: list[Any]) -> bool:
    for before, after in itertools.pairwise(messages):
        if before["role"] == after["role"]:
            return False
        if tool_uses(before) and sorted(tool_result_ids(after)) != sorted(u["toolUseId"] for u in tool_uses(before)):
            return False
    return True


@pytest.mark.parametrize("kind", ["redis", "postgres"])
def test_the_server_stops_mid_turn_and_comes_back(kind: str, request: pytest.FixtureRequest) -> None:
    server: PrivateServer = request.getfixturevalue(f"{kind}_server")
    repo = _repository(kind, server)

    @tool
    def pull_the_plug(ctx: ToolContext) -> str:
        """Stops the storage server while the turn is running."""
        server.stop()
        return "the server is gone"

    def agent(responses: list[Any]) -> Agent:
        manager = RepositorySessionManager("restart-me", repo, lease_ttl=1.0, lease_wait=60)
        return Agent(
            model=ScriptedModel(responses),
            agent_id="a",
            tools=[pull_the_plug],
            session_manager=manager,
            callback_handler=None,
        )

    first = agent(["stored before the outage", [tool_call("pull_the_plug", {}, "plug")], "answer four"])
    first("turn one")
    with pytest.raises(StorageUnavailableError) as info:
        first("turn two")
    assert info.value.__cause__ is not None  # the driver's own error is chained

    # While it is down, a new invocation fails cleanly too and stores nothing.
    with pytest.raises(StorageUnavailableError):
        first("turn three")

    server.start()
    # The same agent instance recovers: it reloads from the store and closes the broken turn.
    first("turn four")
    restored = agent([])
    texts = [b.get("text", "") for m in restored.messages for b in m["content"]]
    assert "turn one" in texts and "stored before the outage" in texts
    assert "turn three" not in texts
    assert texts[-2:] == ["turn four", "answer four"]
    assert _consistent(restored.messages)
    records = asyncio.run(repo.read_messages("restart-me", "a"))
    assert [r.message_id for r in records] == list(range(len(records)))
    asyncio.run(repo.close())
