"""Stop a real PostgreSQL or Redis server during a run, start it again, and check what survived.

Each test runs its own private server (a throwaway cluster / instance on a free port), so
stopping it never disturbs the shared services other tests use.
"""

from __future__ import annotations

import asyncio
import glob
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mooring import Agent, ToolContext, tool
from mooring.errors import StorageUnavailableError
from mooring.models import ScriptedModel, tool_call
from mooring.session import RepositorySessionManager, SessionRepository
from mooring.types import tool_result_ids, tool_uses

from helpers.services import require_service

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, up: bool, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            is_up = sock.connect_ex(("127.0.0.1", port)) == 0
        if is_up == up:
            return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} did not go {'up' if up else 'down'}")


class PrivateServer:
    def __init__(self, start: Callable[[], None], stop: Callable[[], None], url: str, port: int) -> None:
        self._start, self._stop, self.url, self.port = start, stop, url, port

    def start(self) -> None:
        self._start()
        _wait_port(self.port, up=True)

    def stop(self) -> None:
        self._stop()
        _wait_port(self.port, up=False)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[PrivateServer]:
    binary = shutil.which("redis-server")
    if binary is None:
        require_service("redis-server", "the redis-server binary is not installed")
    port = _free_port()
    procs: list[subprocess.Popen[bytes]] = []
    # appendfsync always: a restart keeps every acknowledged write, as a production setup would.
    args = [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"]
    args += ["--appendfsync", "always", "--dir", str(tmp_path)]

    def start() -> None:
        procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def stop() -> None:
        procs[-1].send_signal(signal.SIGKILL)
        procs[-1].wait()

    server = PrivateServer(start, stop, f"redis://127.0.0.1:{port}/0", port)
    server.start()
    yield server
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def postgres_server() -> Iterator[PrivateServer]:
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not bins or (os.geteuid() == 0 and shutil.which("runuser") is None):
        require_service("PostgreSQL binaries", "initdb/pg_ctl not found")
    bindir = Path(bins[-1])
    # pytest's tmp_path is private to root; the server user needs a directory of its own.
    tmp_path = Path(tempfile.mkdtemp(prefix="mooring-pg-"))
    data = tmp_path / "pgdata"
    port = _free_port()
    prefix: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        prefix = ["runuser", "-u", "postgres", "--"]
        owner = pwd.getpwnam("postgres")
        os.chown(tmp_path, owner.pw_uid, owner.pw_gid)
    subprocess.run(
        [*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    options = f"-p {port} -k {tmp_path} -c listen_addresses=127.0.0.1 -c fsync=on"

    def start() -> None:
        subprocess.run(
            [
                *prefix,
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(tmp_path / "pg.log"),
                "-w",
                "start",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def stop() -> None:
        # "immediate" is the closest to a crash pg_ctl offers: no clean shutdown of sessions.
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    server = PrivateServer(start, stop, f"postgresql://postgres@127.0.0.1:{port}/postgres", port)
    server.start()
    yield server
    subprocess.run(
        [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    shutil.rmtree(tmp_path, ignore_errors=True)


def _repository(kind: str, server: PrivateServer) -> SessionRepository:
    if kind == "redis":
        from mooring.session.backends.redis.repository import RedisSessionRepository

        return RedisSessionRepository(server.url, prefix="restart")
    from mooring.session.backends.sql.postgres import PostgresSessionRepository

    return PostgresSessionRepository(server.url, schema="restart", timeout=3.0)


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
        manager = RepositorySessionManager("restart-me", repo, lease_ttl=1.0, lease_wait=30)
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
