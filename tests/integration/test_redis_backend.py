"""The Redis backend against the real server: keys, TTL, failures, processes and the Agent."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from mooring import Agent
from mooring.errors import (
    ConfigurationError,
    ConflictError,
    CorruptRecordError,
    SessionNotFoundError,
    StorageUnavailableError,
)
from mooring.models import message_to_events
from mooring.session import open_repository
from mooring.session.records import AgentRecord, MessageRecord, MultiAgentRecord, SessionRecord
from mooring.testing import SameSessionTrialContract

from helpers.services import REDIS_URL, require_service

redis = pytest.importorskip("redis")

from redis.crc import key_slot  # noqa: E402

from mooring.session.backends.redis.repository import RedisSessionManager, RedisSessionRepository  # noqa: E402

pytestmark = pytest.mark.redis


def _msg(i: int, text: str | None = None, role: str = "user") -> MessageRecord:
    return MessageRecord(message_id=i, message={"role": role, "content": [{"text": text or f"message {i}"}]})  # type: ignore[typeddict-item]


@pytest.fixture
def admin() -> Iterator[Any]:
    """A plain client on the test database, for looking at (and tampering with) raw keys."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        require_service("redis", f"{REDIS_URL}: {exc}")
    yield client
    client.close()


@pytest.fixture
def prefix(admin: Any) -> Iterator[str]:
    """A key prefix owned by this test; its keys are deleted afterwards (never FLUSHDB)."""
    name = f"mooring-test-{uuid.uuid4().hex[:12]}"
    yield name
    keys = list(admin.scan_iter(match=f"{name}:*", count=1000))
    if keys:
        admin.delete(*keys)


@pytest.fixture
def repo(prefix: str) -> Iterator[RedisSessionRepository]:
    repository = RedisSessionRepository(REDIS_URL, prefix=prefix)
    yield repository
    asyncio.run(repository.close())


def _keys(admin: Any, prefix: str) -> list[str]:
    return sorted(k.decode() for k in admin.scan_iter(match=f"{prefix}:*", count=1000))


async def _populate(repo: RedisSessionRepository, sid: str, agents: tuple[str, ...] = ("agent",)) -> None:
    await repo.create_session(SessionRecord(session_id=sid))
    for agent_id in agents:
        await repo.create_agent(sid, AgentRecord(agent_id=agent_id, state={"owner": sid}))
        await repo.append_messages(sid, agent_id, [_msg(0, f"{sid}/{agent_id}"), _msg(1, role="assistant")])
    await repo.create_multi_agent(sid, MultiAgentRecord(multi_agent_id="graph", state={"of": sid}))


# -- concurrency ----------------------------------------------------------------------------------


@pytest.mark.slow
class TestRedisSameSession(SameSessionTrialContract):
    @pytest.fixture
    def trial_store(self, prefix: str) -> str:
        return f"{REDIS_URL}?prefix={prefix}"


# -- keys ---------------------------------------------------------------------------------------


def test_every_key_of_a_session_shares_its_hash_tag(repo: RedisSessionRepository, admin: Any, prefix: str) -> None:
    sid = "tenant:7}{x:y"  # braces and colons in the id itself

    async def scenario() -> None:
        await _populate(repo, sid, agents=("a:1", "b{2}"))
        await repo.acquire_lease(sid, "a:1", ttl=30, wait=0)

    asyncio.run(scenario())
    keys = _keys(admin, prefix)
    session_keys = [k for k in keys if k != f"{prefix}:sessions"]
    # session, agents, multis, 2 x (agent, messages), multi, lease
    assert len(session_keys) == 9
    tags = {k[k.index("{") + 1 : k.index("}", k.index("{"))] for k in session_keys}
    assert tags == {"tenant%3A7%7D%7Bx%3Ay"}
    assert len({key_slot(k.encode()) for k in session_keys}) == 1


def test_ids_with_braces_colons_and_percents_round_trip_without_colliding(repo: RedisSessionRepository) -> None:
    # Pairs that a naive key scheme would merge: "a:b" vs "a%3Ab", "a{b" vs "a%7Bb", ...
    sids = ["a:b", "a%3Ab", "a{b", "a%7Bb", "}{", "{a}", "a", "a}:x", "a:{b}:agent:c"]
    agents = ("x:y", "x%3Ay", "{z}")

    async def scenario() -> None:
        for sid in sids:
            await _populate(repo, sid, agents)
        for sid in sids:
            assert await repo.list_agents(sid) == sorted(agents)
            for agent_id in agents:
                record = await repo.read_agent(sid, agent_id)
                assert record is not None and record.agent_id == agent_id and record.state == {"owner": sid}
                messages = await repo.read_messages(sid, agent_id)
                assert messages[0].to_message()["content"][0]["text"] == f"{sid}/{agent_id}"
            multi = await repo.read_multi_agent(sid, "graph")
            assert multi is not None and multi.state == {"of": sid}
        listed = []
        cursor = None
        while True:
            page = await repo.list_sessions(cursor=cursor, limit=4)
            listed += [s.session_id for s in page.sessions]
            if (cursor := page.next_cursor) is None:
                break
        assert sorted(listed) == sorted(sids)
        # Deleting one session leaves the ones whose ids start like it alone.
        assert await repo.delete_session("a") is True
        for sid in sids:
            if sid != "a":
                assert await repo.read_session(sid) is not None
                assert len(await repo.read_messages(sid, "{z}")) == 2

    asyncio.run(scenario())


def test_delete_session_removes_every_key_and_the_index_entry(
    repo: RedisSessionRepository, admin: Any, prefix: str
) -> None:
    async def scenario() -> None:
        await _populate(repo, "doomed", agents=("one", "two"))
        await _populate(repo, "kept")
        await repo.acquire_lease("doomed", "one", ttl=30, wait=0)
        await repo.acquire_lease("doomed", "never-created", ttl=30, wait=0)
        assert await repo.delete_session("doomed") is True
        assert [s.session_id for s in (await repo.list_sessions()).sessions] == ["kept"]

    asyncio.run(scenario())
    assert not [k for k in _keys(admin, prefix) if "{doomed}" in k]
    assert admin.zcard(f"{prefix}:sessions") == 1


def test_bad_prefix_and_ttl_are_refused() -> None:
    for bad in ("", "a{b", "a}b"):
        with pytest.raises(ConfigurationError):
            RedisSessionRepository(REDIS_URL, prefix=bad)
    with pytest.raises(ConfigurationError):
        RedisSessionRepository(REDIS_URL, ttl=0)


def test_open_repository_passes_prefix_and_ttl(prefix: str) -> None:
    repository = open_repository(f"{REDIS_URL}?prefix={prefix}&ttl=90")
    assert isinstance(repository, RedisSessionRepository)
    assert (repository.prefix, repository.ttl) == (prefix, 90.0)
    assert "127.0.0.1:6379/15" in repository.describe()
    asyncio.run(repository.close())
    with_password = RedisSessionRepository("redis://user:s3cret@127.0.0.1:6379/15", prefix=prefix)
    assert "s3cret" not in with_password.describe() and "127.0.0.1:6379/15" in with_password.describe()


# -- TTL ----------------------------------------------------------------------------------------


def test_session_expires_and_leaves_the_listing(admin: Any, prefix: str) -> None:
    repo = RedisSessionRepository(REDIS_URL, prefix=prefix, ttl=1)

    async def scenario() -> None:
        await _populate(repo, "short-lived")
        assert [s.session_id for s in (await repo.list_sessions()).sessions] == ["short-lived"]
        await asyncio.sleep(1.3)
        assert await repo.read_session("short-lived") is None
        assert await repo.read_agent("short-lived", "agent") is None
        assert await repo.read_messages("short-lived", "agent") == []
        assert await repo.read_multi_agent("short-lived", "graph") is None
        assert (await repo.list_sessions()).sessions == []
        with pytest.raises(SessionNotFoundError):
            await repo.append_messages("short-lived", "agent", [_msg(2)])
        await repo.close()

    asyncio.run(scenario())
    assert _keys(admin, prefix) == []  # listing pruned the index entry too


def test_a_write_refreshes_the_ttl_of_every_key(admin: Any, prefix: str) -> None:
    repo = RedisSessionRepository(REDIS_URL, prefix=prefix, ttl=1)

    async def scenario() -> None:
        await _populate(repo, "busy", agents=("one", "two"))
        await asyncio.sleep(0.6)
        await repo.append_messages("busy", "one", [_msg(2)])  # one agent's write keeps the whole session
        ttls = {k: admin.pttl(k) for k in _keys(admin, prefix) if k != f"{prefix}:sessions"}
        assert len(ttls) == 8
        assert all(ms > 700 for ms in ttls.values()), ttls
        await asyncio.sleep(0.6)  # past the first deadline
        assert await repo.read_session("busy") is not None
        assert len(await repo.read_messages("busy", "two")) == 2
        assert [s.session_id for s in (await repo.list_sessions()).sessions] == ["busy"]
        await repo.close()

    asyncio.run(scenario())


# -- failures -----------------------------------------------------------------------------------


def test_unreachable_server_raises_storage_unavailable_with_cause() -> None:
    repository = open_repository("redis://127.0.0.1:1/0")
    with pytest.raises(StorageUnavailableError) as info:
        asyncio.run(repository.create_session(SessionRecord(session_id="nowhere")))
    assert isinstance(info.value.__cause__, redis.ConnectionError)
    assert "127.0.0.1:1/0" in str(info.value)


def _kill_named_clients(admin: Any, name: str) -> int:
    ids = [c["id"] for c in admin.client_list() if c.get("name") == name]
    for client_id in ids:
        admin.client_kill_filter(_id=client_id)
    return len(ids)


def test_killed_connections_are_replaced(admin: Any, prefix: str) -> None:
    name = f"mooring-kill-{uuid.uuid4().hex[:8]}"
    repo = RedisSessionRepository(f"{REDIS_URL}?client_name={name}", prefix=prefix)

    async def scenario() -> None:
        await _populate(repo, "s")
        head, version = 2, 1
        for turn in range(20):
            # Only this repository's connections are killed (by id), never anyone else's.
            assert _kill_named_clients(admin, name) >= 1
            head = await repo.append_messages("s", "agent", [_msg(head, f"turn {turn}"), _msg(head + 1)])
            _kill_named_clients(admin, name)
            version = (await repo.update_agent("s", AgentRecord(agent_id="agent"), expected_version=version)).version
        records = await repo.read_messages("s", "agent")
        assert [r.message_id for r in records] == list(range(42))
        assert [r.to_message()["content"][0]["text"] for r in records[2::2]] == [f"turn {t}" for t in range(20)]
        assert version == 21
        await repo.close()

    asyncio.run(scenario())


class _Proxy:
    """A TCP proxy to the Redis server that can be taken down and brought back on one port
    (a server restart, without disturbing anyone else using the server), or cut a connection
    right after the server executed a command but before its reply reached the client."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self.lose_reply_to: bytes | None = None
        self._doomed: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None

    def start(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port))
        listener.settimeout(0.05)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _shutdown(sock)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._requests, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._replies, args=(upstream, client), daemon=True).start()

    def _requests(self, client: socket.socket, upstream: socket.socket) -> None:
        try:
            while data := client.recv(65536):
                if self.lose_reply_to is not None and self.lose_reply_to in data:
                    self.lose_reply_to, self._doomed = None, upstream
                upstream.sendall(data)
        except OSError:
            pass
        _shutdown(client, upstream)

    def _replies(self, upstream: socket.socket, client: socket.socket) -> None:
        try:
            while data := upstream.recv(65536):
                if self._doomed is upstream:
                    self._doomed = None
                    break  # the command ran; its reply never arrives
                client.sendall(data)
        except OSError:
            pass
        _shutdown(client, upstream)


def _shutdown(*sockets: socket.socket) -> None:
    for sock in sockets:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


@pytest.fixture
def proxy() -> Iterator[_Proxy]:
    target = urlsplit(REDIS_URL)
    running = _Proxy((target.hostname or "127.0.0.1", target.port or 6379))
    running.start()
    yield running
    running.stop()


def test_a_write_whose_reply_was_lost_is_replayed_without_conflict(proxy: _Proxy, prefix: str) -> None:
    """redis-py resends a command when the connection drops before the reply; a conditional
    write that already ran must report success, not a conflict with itself."""
    repo = RedisSessionRepository(f"redis://127.0.0.1:{proxy.port}/15", prefix=prefix)

    async def scenario() -> None:
        await _populate(repo, "s")  # also loads the scripts, so the next EVALSHA is the write
        proxy.lose_reply_to = b"EVALSHA"
        assert await repo.append_messages("s", "agent", [_msg(2, "once"), _msg(3, role="assistant")]) == 4
        assert proxy.lose_reply_to is None  # the reply really was lost
        proxy.lose_reply_to = b"EVALSHA"
        updated = await repo.update_agent("s", AgentRecord(agent_id="agent", state={"k": 1}), expected_version=1)
        assert updated.version == 2 and proxy.lose_reply_to is None
        proxy.lose_reply_to = b"EVALSHA"
        await repo.truncate_messages("s", "agent", 3, expected_head=4)
        assert proxy.lose_reply_to is None
        proxy.lose_reply_to = b"EVALSHA"
        lease = await repo.acquire_lease("s", "agent", ttl=30, wait=0)
        assert proxy.lose_reply_to is None
        await repo.release_lease(lease)

        texts = [r.to_message()["content"][0]["text"] for r in await repo.read_messages("s", "agent")]
        assert texts == ["s/agent", "message 1", "once"]
        record = await repo.read_agent("s", "agent")
        assert record is not None and record.version == 2 and record.state == {"k": 1}
        await repo.close()

    asyncio.run(scenario())


def test_outage_fails_cleanly_and_the_next_call_works_when_the_server_is_back(proxy: _Proxy, prefix: str) -> None:
    repo = RedisSessionRepository(f"redis://127.0.0.1:{proxy.port}/15", prefix=prefix)
    direct = RedisSessionRepository(REDIS_URL, prefix=prefix)

    async def scenario() -> None:
        await _populate(repo, "s")
        proxy.stop()
        with pytest.raises(StorageUnavailableError) as info:
            await repo.append_messages("s", "agent", [_msg(2, "lost"), _msg(3, role="assistant")])
        assert isinstance(info.value.__cause__, redis.ConnectionError)
        with pytest.raises(StorageUnavailableError):
            await repo.read_messages("s", "agent")
        assert await direct.message_head("s", "agent") == 2  # nothing of the failed turn persisted
        proxy.start()
        assert await repo.append_messages("s", "agent", [_msg(2, "again"), _msg(3, role="assistant")]) == 4
        texts = [r.to_message()["content"][0]["text"] for r in await direct.read_messages("s", "agent")]
        assert texts == ["s/agent", "message 1", "again", "message 3"]
        await repo.close()
        await direct.close()

    asyncio.run(scenario())


class _OutageModel:
    """Answers ``ok: <prompt>``; the prompt ``crash`` takes the server down mid-turn first."""

    def __init__(self, proxy: _Proxy) -> None:
        self.proxy = proxy

    async def stream(self, messages: Any, tool_specs: Any = None, system_prompt: Any = None) -> AsyncIterator[Any]:
        prompt = messages[-1]["content"][0]["text"]
        if prompt == "crash":
            self.proxy.stop()
        for event in message_to_events({"role": "assistant", "content": [{"text": f"ok: {prompt}"}]}):
            yield event


def test_outage_mid_turn_persists_nothing_of_that_turn(proxy: _Proxy, prefix: str) -> None:
    url = f"redis://127.0.0.1:{proxy.port}/15"
    agent = Agent(
        model=_OutageModel(proxy),
        agent_id="a",
        session_manager=RedisSessionManager("s", url, prefix=prefix, lease_ttl=0.5),
        callback_handler=None,
    )
    agent("before")
    with pytest.raises(StorageUnavailableError) as info:
        agent("crash")
    assert isinstance(info.value.__cause__, redis.ConnectionError)
    proxy.start()
    # The lease the failed turn could not release expires; a new process sees only whole turns.
    later = Agent(
        model=_OutageModel(proxy),
        agent_id="a",
        session_manager=RedisSessionManager("s", url, prefix=prefix, lease_wait=10),
        callback_handler=None,
    )
    assert [m["content"][0]["text"] for m in later.messages] == ["before", "ok: before"]
    later("after")
    assert [m["content"][0]["text"] for m in later.messages] == ["before", "ok: before", "after", "ok: after"]


def test_corrupt_list_element_names_session_agent_and_id(repo: RedisSessionRepository, admin: Any, prefix: str) -> None:
    asyncio.run(_populate(repo, "hurt:1"))
    admin.lset(f"{prefix}:{{hurt%3A1}}:messages:agent", 1, b"{not json")
    with pytest.raises(CorruptRecordError) as info:
        asyncio.run(repo.read_messages("hurt:1", "agent"))
    text = str(info.value)
    assert "'hurt:1'" in text and "'agent'" in text and "message 1" in text
    assert [r.message_id for r in asyncio.run(repo.read_messages("hurt:1", "agent", 0, 1))] == [0]

    admin.lset(f"{prefix}:{{hurt%3A1}}:messages:agent", 1, json.dumps(_msg(7).to_dict()))
    with pytest.raises(CorruptRecordError, match=r"message 1.*holds message_id 7"):
        asyncio.run(repo.read_messages("hurt:1", "agent"))

    admin.hset(f"{prefix}:{{hurt%3A1}}:agent:agent", "record", b"[]")
    with pytest.raises(CorruptRecordError, match=r"'hurt:1'.*'agent'"):
        asyncio.run(repo.read_agent("hurt:1", "agent"))


def test_listing_skips_an_unreadable_session_and_lists_the_rest(
    repo: RedisSessionRepository, admin: Any, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> list[list[str]]:
        for sid in ("a", "b:1", "c", "d"):
            await repo.create_session(SessionRecord(session_id=sid))
        # Garbage straight into the key the backend reads for session "b:1".
        admin.set(repo._k("b:1").session, b"\xff{not json")
        admin.set(repo._k("c").session, b'["valid JSON, not a session"]')
        pages, cursor = [], None
        while True:
            page = await repo.list_sessions(cursor=cursor, limit=1)
            pages.append([s.session_id for s in page.sessions])
            if (cursor := page.next_cursor) is None:
                return pages

    with caplog.at_level("WARNING", logger="mooring.session.backends.redis.repository"):
        pages = asyncio.run(scenario())
    assert [sid for page in pages for sid in page] == ["d", "a"]
    assert all(len(page) <= 1 for page in pages)
    warned = [r.getMessage() for r in caplog.records if "skipped an unreadable session" in r.getMessage()]
    assert any("b:1" in line for line in warned) and any("<c>" in line for line in warned)
    # Skipped, not forgotten: the index still names them, so a repair can find them.
    assert admin.zcard(f"{prefix}:sessions") == 4
    with pytest.raises(CorruptRecordError):
        asyncio.run(repo.read_session("b:1"))


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("socket_timeout=abc", "socket_timeout"),
        ("socket_timeout=0", "socket_timeout"),
        ("connect_timeout=-1", "connect_timeout"),
        ("connect_timeout=nan", "connect_timeout"),
        ("socket_timeout=inf", "socket_timeout"),
        ("ttl=soon", "ttl"),
        ("cluster=maybe", "cluster"),
        ("socket_connect_timeout=3", "connect_timeout"),
    ],
)
def test_bad_url_options_are_refused_by_name(query: str, named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        open_repository(f"{REDIS_URL}?{query}")


def test_timeouts_reach_the_client_and_are_validated() -> None:
    repository = open_repository(f"{REDIS_URL}?connect_timeout=2.5&socket_timeout=7&prefix=p")
    assert isinstance(repository, RedisSessionRepository)
    assert (repository.connect_timeout, repository.socket_timeout, repository.prefix) == (2.5, 7.0, "p")
    kwargs = repository.client.connection_pool.connection_kwargs
    assert (kwargs["socket_connect_timeout"], kwargs["socket_timeout"]) == (2.5, 7.0)
    asyncio.run(repository.close())
    default = RedisSessionRepository(REDIS_URL)
    assert (default.connect_timeout, default.socket_timeout) == (5.0, 10.0)
    asyncio.run(default.close())
    for bad in (0, -2.0, float("nan"), True, "x"):
        with pytest.raises(ConfigurationError, match="socket_timeout"):
            RedisSessionRepository(REDIS_URL, socket_timeout=bad)  # type: ignore[arg-type]
    with redis.Redis.from_url(REDIS_URL) as own, pytest.raises(ConfigurationError, match="timeouts"):
        RedisSessionRepository(client=own, socket_timeout=3)


def test_a_create_whose_reply_was_lost_is_replayed_without_conflict(proxy: _Proxy, prefix: str) -> None:
    repo = RedisSessionRepository(f"redis://127.0.0.1:{proxy.port}/15", prefix=prefix)

    async def scenario() -> None:
        await repo.create_session(SessionRecord(session_id="s"))
        await repo.create_multi_agent("s", MultiAgentRecord(multi_agent_id="warmup"))  # loads the script
        proxy.lose_reply_to = b"EVALSHA"
        created = await repo.create_agent("s", AgentRecord(agent_id="agent"))
        assert created.version == 1 and proxy.lose_reply_to is None
        with pytest.raises(ConflictError):  # a second create, unlike a replay, still conflicts
            await repo.create_agent("s", AgentRecord(agent_id="agent"))
        await repo.close()

    asyncio.run(scenario())


# -- the Agent ----------------------------------------------------------------------------------


def test_agent_round_trip_through_the_session_manager(prefix: str) -> None:
    first = Agent(
        model="offline",
        agent_id="assistant",
        session_manager=RedisSessionManager("user-42", REDIS_URL, prefix=prefix),
        callback_handler=None,
    )
    first("My name is Ada.")
    first.state.set("plan", "pro")
    first("What is my name?")
    assert len(first.messages) >= 4

    second = Agent(
        model="offline",
        agent_id="assistant",
        session_manager=RedisSessionManager("user-42", REDIS_URL, prefix=prefix),
        callback_handler=None,
    )
    assert second.messages == first.messages
    assert second.state.get("plan") == "pro"


def test_missing_driver_names_the_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['redis'] = None\n"
        "for attempt in ('import mooring.session.backends.redis.repository',\n"
        "                'from mooring.session import RedisSessionRepository',\n"
        "                'from mooring.session import open_repository; open_repository(\"redis://localhost/0\")'):\n"
        "    try:\n"
        "        exec(attempt)\n"
        "    except ImportError as exc:\n"
        "        print(exc)\n"
        "    else:\n"
        "        print('imported')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 3
    assert all("pip install 'mooring-agents[redis]'" in line for line in lines), lines
