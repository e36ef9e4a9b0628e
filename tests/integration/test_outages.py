"""A private PostgreSQL server goes down and comes back: how fast a turn fails, and that the
first turn after the restart succeeds; the connect timeout that bounds it; a clean exit.

Bounds on time are generous (a busy machine must never fail them); each one is well below
what the pool's own waits used to take (30 s per operation, 90 s for a turn).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mooring import Agent, ToolContext, tool
from mooring.errors import ConfigurationError, StorageUnavailableError
from mooring.models import ScriptedModel, tool_call
from mooring.session import RepositorySessionManager, open_repository
from mooring.session.records import SessionRecord

from helpers.private_servers import PrivateServer, private_postgres
from helpers.services import POSTGRES_DSN

pytestmark = pytest.mark.postgres

#: Old code: 90 s from the server going down mid-turn to the error. New: about connect_timeout.
ERROR_BOUND = 45.0


@pytest.fixture
def postgres_server() -> Iterator[PrivateServer]:
    with private_postgres() as server:
        yield server


def _repository(server: PrivateServer, **options: Any) -> Any:
    from mooring.session.backends.sql.postgres import PostgresSessionRepository

    return PostgresSessionRepository(server.url, schema="outages", **options)


def _with_param(dsn: str, **params: str) -> str:
    return dsn + ("&" if "?" in dsn else "?") + "&".join(f"{k}={v}" for k, v in params.items())


def _agent(repo: Any, responses: list[Any], tools: list[Any] | None = None) -> Agent:
    manager = RepositorySessionManager("outage", repo, lease_ttl=1.0, lease_wait=60)
    return Agent(
        model=ScriptedModel(responses), agent_id="a", tools=tools or [], session_manager=manager, callback_handler=None
    )


@pytest.mark.slow
def test_a_server_going_down_mid_turn_is_reported_within_the_connect_timeout(postgres_server: PrivateServer) -> None:
    repo = _repository(postgres_server, connect_timeout=2)
    stopped: list[float] = []

    @tool
    def pull_the_plug(ctx: ToolContext) -> str:
        """Stops the storage server while the turn is running."""
        postgres_server.stop()
        stopped.append(time.monotonic())
        return "the server is gone"

    agent = _agent(repo, ["one", [tool_call("pull_the_plug", {}, "p")], "two", "three"], [pull_the_plug])
    agent("turn one")
    with pytest.raises(StorageUnavailableError) as info:
        agent("turn two")
    assert time.monotonic() - stopped[0] < ERROR_BOUND
    assert info.value.__cause__ is not None  # the driver's own error says why
    # While it stays down, a new turn is refused without the pool's whole wait too.
    started = time.monotonic()
    with pytest.raises(StorageUnavailableError):
        agent("turn three")
    assert time.monotonic() - started < ERROR_BOUND
    asyncio.run(repo.close())


@pytest.mark.slow
def test_the_first_turn_after_a_long_outage_succeeds(postgres_server: PrivateServer) -> None:
    repo = _repository(postgres_server, connect_timeout=2)
    agent = _agent(repo, ["one", "after the restart", "and again"])
    agent("turn one")
    postgres_server.stop()
    # Long enough for the pool's reconnection to back off beyond its 30 s wait (the old code
    # then failed the first turn after the restart), with turns failing meanwhile.
    down_until = time.monotonic() + 75
    while time.monotonic() < down_until:
        with pytest.raises(StorageUnavailableError):
            agent("while it is down")
        time.sleep(5)
    postgres_server.start()
    agent("turn two")
    restored = _agent(repo, [])
    texts = [b.get("text", "") for m in restored.messages for b in m["content"]]
    assert texts == ["turn one", "one", "turn two", "after the restart"]
    agent("turn three")
    asyncio.run(repo.close())


@pytest.mark.slow
def test_a_restart_between_turns_is_invisible(postgres_server: PrivateServer) -> None:
    repo = _repository(postgres_server)
    agent = _agent(repo, ["one", "two"])
    agent("turn one")
    postgres_server.stop()
    postgres_server.start()
    agent("turn two")  # the pooled connection died with the server; it is never handed out
    texts = [b.get("text", "") for m in _agent(repo, []).messages for b in m["content"]]
    assert texts == ["turn one", "one", "turn two", "two"]
    asyncio.run(repo.close())


@pytest.mark.parametrize("bad", [0, -1, "soon", float("nan"), True])
def test_postgres_connect_timeout_must_be_a_positive_number(bad: Any) -> None:
    from mooring.session.backends.sql.postgres import PostgresSessionRepository

    with pytest.raises(ConfigurationError, match="connect_timeout must be a positive number of seconds"):
        PostgresSessionRepository(POSTGRES_DSN, connect_timeout=bad)
    if not isinstance(bad, bool):
        with pytest.raises(ConfigurationError, match="connect_timeout in the URL must be a positive number"):
            open_repository(_with_param(POSTGRES_DSN, connect_timeout=str(bad)))


def test_postgres_connect_timeout_from_the_url_and_the_default(postgres_server: PrivateServer) -> None:
    from mooring.session.backends.sql.postgres import PostgresSessionRepository

    assert PostgresSessionRepository(POSTGRES_DSN).connect_timeout == 5.0
    assert PostgresSessionRepository(_with_param(POSTGRES_DSN, connect_timeout="3")).connect_timeout == 3.0
    repo = open_repository(_with_param(postgres_server.url, schema="timed", connect_timeout="2.5"))
    assert isinstance(repo, PostgresSessionRepository) and repo.connect_timeout == 2.5
    asyncio.run(repo.create_session(SessionRecord(session_id="timed")))  # and it still connects
    assert [s.session_id for s in asyncio.run(repo.list_sessions()).sessions] == ["timed"]
    asyncio.run(repo.close())


_UNCLOSED = """
import atexit, sys, threading

def pool_threads_left():
    # Runs after mooring's exit hooks (registered later, so run earlier): the pool is closed by then.
    left = [t.name for t in threading.enumerate() if t.name.startswith("mooring-" + SCHEMA)]
    if left:
        print("pool threads still running at exit:", left, file=sys.stderr)

SCHEMA = sys.argv[2]
atexit.register(pool_threads_left)

from mooring import Agent
from mooring.models import ScriptedModel
from mooring.session import RepositorySessionManager
from mooring.session.backends.sql.postgres import PostgresSessionRepository

repo = PostgresSessionRepository(sys.argv[1], schema=SCHEMA)
agent = Agent(model=ScriptedModel(["hi"]), agent_id="a",
              session_manager=RepositorySessionManager("unclosed", repo), callback_handler=None)
agent("hello")
print("turn done")
"""


def test_an_unclosed_postgres_repository_exits_cleanly(postgres_server: PrivateServer) -> None:
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run(
        [sys.executable, "-c", _UNCLOSED, postgres_server.url, "unclosed"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "turn done"
    assert result.stderr == ""
