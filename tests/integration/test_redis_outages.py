"""A private Redis server killed, restarted, frozen (SIGSTOP) and thawed under the repository.

The repository must fail within its configured timeouts (a timeout is not retried, so the wait
does not multiply), and the very next call once the server is back must succeed. Each test
runs its own redis-server on a free port, so the shared server is never disturbed.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mooring.errors import StorageUnavailableError
from mooring.session.records import AgentRecord, MessageRecord, SessionRecord

from helpers.services import require_service

redis = pytest.importorskip("redis")

from mooring.session.backends.redis.repository import RedisSessionRepository  # noqa: E402

pytestmark = [pytest.mark.redis, pytest.mark.slow]

# Per-reply timeout of the repository under test. Frozen calls take about this long; the old
# behaviour (every timeout retried three times) took four times as long.
SOCKET_TIMEOUT = 12.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateRedis:
    """One redis-server process on a free loopback port, started again on the same port."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self._args += ["--dir", str(workdir)]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self._args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with redis.Redis(port=self.port, socket_timeout=5) as probe:
                    probe.ping()
                return
            except redis.RedisError:
                assert self.proc.poll() is None, "redis-server exited"
                time.sleep(0.05)
        raise TimeoutError(f"redis-server on port {self.port} did not answer PING")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def freeze(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def connections_received(self) -> int:
        with redis.Redis(port=self.port, socket_timeout=30) as admin:
            return int(admin.info("stats")["total_connections_received"])

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.thaw()
            self.kill()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PrivateRedis]:
    binary = shutil.which("redis-server")
    if binary is None:
        require_service("redis-server", "the redis-server binary is not on PATH")
        raise AssertionError("unreachable")
    running = PrivateRedis(binary, tmp_path)
    running.start()
    yield running
    running.close()


def _msg(i: int) -> MessageRecord:
    role = "user" if i % 2 == 0 else "assistant"
    return MessageRecord(message_id=i, message={"role": role, "content": [{"text": f"message {i}"}]})  # type: ignore[typeddict-item]


async def _populate(repo: RedisSessionRepository) -> None:
    await repo.create_session(SessionRecord(session_id="s"))
    await repo.create_agent("s", AgentRecord(agent_id="a"))
    await repo.append_messages("s", "a", [_msg(0), _msg(1)])


async def _timed_failure(call: Any) -> tuple[StorageUnavailableError, float]:
    started = time.monotonic()
    with pytest.raises(StorageUnavailableError) as info:
        await call
    return info.value, time.monotonic() - started


def test_a_frozen_server_fails_within_the_socket_timeout_and_works_once_thawed(server: PrivateRedis) -> None:
    url = f"{server.url}?connect_timeout={SOCKET_TIMEOUT:g}&socket_timeout={SOCKET_TIMEOUT:g}"
    repo = RedisSessionRepository.from_url(url)
    assert (repo.connect_timeout, repo.socket_timeout) == (SOCKET_TIMEOUT, SOCKET_TIMEOUT)

    async def scenario() -> None:
        await _populate(repo)
        before = server.connections_received()
        server.freeze()
        try:
            # A read on the pooled connection, then a write that has to open a new one.
            read_error, read_took = await _timed_failure(repo.read_messages("s", "a"))
            write_error, write_took = await _timed_failure(repo.append_messages("s", "a", [_msg(2), _msg(3)]))
        finally:
            server.thaw()
        for error in (read_error, write_error):
            assert isinstance(error.__cause__, redis.TimeoutError)
            assert f"socket_timeout={SOCKET_TIMEOUT:g}s" in str(error)
        # Generous bounds: one timeout each, where retrying every timeout took four.
        assert read_took < 2.5 * SOCKET_TIMEOUT, read_took
        assert write_took < 2.5 * SOCKET_TIMEOUT, write_took
        # The server saw every connection the client opened while it was frozen: the write's
        # one (plus the admin probe below), not one per retry.
        assert server.connections_received() - before <= 2
        # The very next call gets a fresh connection and the right reply (no stale one).
        # The frozen append ran once the server woke up (its outcome was unknown): the head
        # is 2 or 4, never anything else, and the records are whole.
        head = await repo.message_head("s", "a")
        assert head in (2, 4)
        records = await repo.read_messages("s", "a")
        assert [r.message_id for r in records] == list(range(head))
        assert (await repo.read_session("s")) is not None
        await repo.close()

    asyncio.run(scenario())


def test_a_killed_server_fails_at_once_and_the_first_call_after_the_restart_succeeds(server: PrivateRedis) -> None:
    repo = RedisSessionRepository(server.url, connect_timeout=SOCKET_TIMEOUT, socket_timeout=SOCKET_TIMEOUT)

    async def scenario() -> None:
        await _populate(repo)
        server.kill()
        error, took = await _timed_failure(repo.read_messages("s", "a"))
        assert isinstance(error.__cause__, redis.ConnectionError)
        assert took < SOCKET_TIMEOUT  # refused connections are retried quickly, then reported
        _, took = await _timed_failure(repo.append_messages("s", "a", [_msg(2), _msg(3)]))
        assert took < SOCKET_TIMEOUT
        server.start()  # an empty server: it keeps nothing across restarts
        # The pool still holds the connection the dead server dropped; the first call must not fail on it.
        assert await repo.read_session("s") is None
        await _populate(repo)
        assert [r.message_id for r in await repo.read_messages("s", "a")] == [0, 1]
        await repo.close()

    asyncio.run(scenario())


def test_writes_right_after_a_restart_succeed_on_the_first_try(server: PrivateRedis) -> None:
    """Killed and restarted between two calls: the pooled connections are stale, the calls are not."""
    repo = RedisSessionRepository(server.url, socket_timeout=SOCKET_TIMEOUT)

    async def scenario() -> None:
        await _populate(repo)
        server.kill()
        server.start()
        await repo.create_session(SessionRecord(session_id="s"))  # a stale pooled connection must not fail it
        await repo.create_agent("s", AgentRecord(agent_id="a"))
        assert await repo.append_messages("s", "a", [_msg(0), _msg(1)]) == 2
        assert await repo.message_head("s", "a") == 2
        await repo.close()

    asyncio.run(scenario())
