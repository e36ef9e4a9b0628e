"""The Redis backend on a real three-node Redis Cluster, opened by URL.

The module starts its own cluster (three ``redis-server --cluster-enabled yes`` processes on
free loopback ports, joined by ``redis-cli --cluster create``) and removes it afterwards.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from mooring import Agent
from mooring.cli import main
from mooring.errors import StorageUnavailableError
from mooring.session import RepositorySessionManager, open_repository
from mooring.session.records import SessionRecord
from mooring.testing import SessionRepositoryContract

from helpers.services import require_service

redis = pytest.importorskip("redis")

from redis.cluster import RedisCluster  # noqa: E402

from mooring.session.backends.redis.repository import RedisSessionManager, RedisSessionRepository  # noqa: E402

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_ports(count: int) -> list[int]:
    """Ports whose cluster bus port (port + 10000) is free too."""
    ports: list[int] = []
    for _ in range(1000):
        port = random.randrange(20000, 45000)
        if port not in ports and _bindable(port) and _bindable(port + 10000):
            ports.append(port)
            if len(ports) == count:
                return ports
    raise RuntimeError("no free port pairs for a Redis Cluster")


def _wait(check: Any, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (redis.RedisError, OSError) as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"timed out waiting for {what} (last error: {last!r})")


def _ping(port: int) -> bool:
    with redis.Redis(port=port, socket_timeout=5) as node:
        return bool(node.ping())


def _cluster_ok(port: int) -> bool:
    with redis.Redis(port=port, socket_timeout=5) as node:
        return bool(node.cluster("info").get("cluster_state") == "ok")


@pytest.fixture(scope="module")
def cluster_ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[int]]:
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        require_service("redis-server and redis-cli", "the binaries are not on PATH")
        raise AssertionError("unreachable")
    workdir = tmp_path_factory.mktemp("redis-cluster")
    ports = _free_ports(3)
    procs = []
    try:
        for port in ports:
            args = [server, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes"]
            args += ["--cluster-config-file", str(workdir / f"nodes-{port}.conf"), "--dir", str(workdir)]
            args += ["--save", "", "--appendonly", "no", "--logfile", str(workdir / f"node-{port}.log")]
            procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for port in ports:
            _wait(lambda p=port: _ping(p), f"node {port} to answer PING")
        nodes = [f"127.0.0.1:{port}" for port in ports]
        subprocess.run(
            [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        for port in ports:
            _wait(lambda p=port: _cluster_ok(p), f"cluster_state:ok on node {port}")
        yield ports
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


@pytest.fixture
def admin(cluster_ports: list[int]) -> Iterator[Any]:
    client = RedisCluster(host="127.0.0.1", port=cluster_ports[0])
    yield client
    client.close()


@pytest.fixture
def prefix(admin: Any) -> Iterator[str]:
    name = f"mooring-test-{uuid.uuid4().hex[:12]}"
    yield name
    for key in list(admin.scan_iter(match=f"{name}:*", count=1000)):
        admin.delete(key)  # one key per call: a multi-key DEL must not cross slots


def _texts(messages: list[Any]) -> list[str]:
    return [m["content"][0]["text"] for m in messages]


def test_agents_run_through_a_cluster_url_and_restore_from_another_node(
    cluster_ports: list[int], admin: Any, prefix: str
) -> None:
    first, second, third = cluster_ports
    url = f"redis+cluster://127.0.0.1:{first}/0?prefix={prefix}&socket_timeout=20"
    sessions = [f"user-{n}" for n in range(6)]
    for sid in sessions:
        agent = Agent(
            model="offline",
            agent_id="assistant",
            session_manager=RepositorySessionManager(sid, open_repository(url)),
            callback_handler=None,
        )
        agent(f"My name is {sid}.")
        agent("What is my name?")
        agent.state.set("plan", sid)
        agent("Thanks.")
    # The sessions are spread over the cluster, so this is not one node doing all the work.
    owners = {admin.get_node_from_key(f"{prefix}:{{{sid}}}:session").port for sid in sessions}
    assert len(owners) >= 2, owners

    # A new repository through another node (and the other spelling) restores every session.
    other = f"redis://127.0.0.1:{second}/0?cluster=true&prefix={prefix}"
    for sid in sessions:
        restored = Agent(
            model="offline",
            agent_id="assistant",
            session_manager=RepositorySessionManager(sid, open_repository(other)),
            callback_handler=None,
        )
        assert _texts(restored.messages)[::2] == [f"My name is {sid}.", "What is my name?", "Thanks."]
        assert len(restored.messages) == 6
        assert restored.state.get("plan") == sid

    manager = RedisSessionManager("user-0", f"redis+cluster://127.0.0.1:{third}", prefix=prefix)
    assert isinstance(manager.repository, RedisSessionRepository)
    again = Agent(model="offline", agent_id="assistant", session_manager=manager, callback_handler=None)
    again("One more.")
    assert len(again.messages) == 8

    async def listing() -> list[str]:
        repository = open_repository(other)
        listed, cursor = [], None
        while True:
            page = await repository.list_sessions(cursor=cursor, limit=4)
            listed += [s.session_id for s in page.sessions]
            if (cursor := page.next_cursor) is None:
                await repository.close()
                return listed

    assert sorted(asyncio.run(listing())) == sessions


def test_the_cli_lists_and_shows_sessions_on_the_cluster(
    cluster_ports: list[int], prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"redis+cluster://127.0.0.1:{cluster_ports[2]}/0?prefix={prefix}"
    for sid in ("cli-a", "cli-b"):
        agent = Agent(
            model="offline",
            agent_id="default",
            session_manager=RepositorySessionManager(sid, open_repository(url)),
            callback_handler=None,
        )
        agent("hello")
    capsys.readouterr()
    assert main(["sessions", "list", "--store", url, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted(s["session_id"] for s in listed["sessions"]) == ["cli-a", "cli-b"]
    assert all(s["messages"] == 2 and s["error"] is None for s in listed["sessions"])
    assert main(["sessions", "delete", "cli-a", "--store", url, "--yes"]) == 0
    capsys.readouterr()
    assert main(["sessions", "list", "--store", url, "--json"]) == 0
    assert [s["session_id"] for s in json.loads(capsys.readouterr().out)["sessions"]] == ["cli-b"]


def test_a_plain_url_to_a_cluster_node_says_how_to_open_the_cluster(
    cluster_ports: list[int], admin: Any, prefix: str
) -> None:
    first = cluster_ports[0]
    sid = next(
        s
        for s in (f"moved-{n}" for n in range(100))
        if admin.get_node_from_key(f"{prefix}:{{{s}}}:session").port != first
    )
    repository = open_repository(f"redis://127.0.0.1:{first}/0?prefix={prefix}")
    with pytest.raises(StorageUnavailableError, match=r"redis\+cluster://") as info:
        asyncio.run(repository.create_session(SessionRecord(session_id=sid)))
    assert isinstance(info.value.__cause__, redis.exceptions.MovedError)
    asyncio.run(repository.close())


def test_a_cluster_url_with_a_database_other_than_0_is_refused(cluster_ports: list[int]) -> None:
    from mooring.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="db"):
        open_repository(f"redis+cluster://127.0.0.1:{cluster_ports[0]}/3")


class TestRedisClusterRepository(SessionRepositoryContract):
    """The shared contract, every operation through a RedisCluster client built from a URL."""

    def _open(self, ports: list[int], ttl: float | None) -> Iterator[RedisSessionRepository]:
        name = f"mooring-test-{uuid.uuid4().hex[:12]}"
        query = f"prefix={name}" + (f"&ttl={ttl}" if ttl is not None else "")
        repository = open_repository(f"redis+cluster://127.0.0.1:{ports[0]}/0?{query}")
        assert isinstance(repository, RedisSessionRepository)
        try:
            yield repository
        finally:
            asyncio.run(repository.close())
            with RedisCluster(host="127.0.0.1", port=ports[0]) as admin:
                for key in list(admin.scan_iter(match=f"{name}:*", count=1000)):
                    admin.delete(key)

    @pytest.fixture
    def repository(self, cluster_ports: list[int]) -> Iterator[RedisSessionRepository]:
        yield from self._open(cluster_ports, None)

    @pytest.fixture
    def ttl_repository(self, cluster_ports: list[int], session_ttl: float) -> Iterator[RedisSessionRepository]:
        yield from self._open(cluster_ports, session_ttl)
