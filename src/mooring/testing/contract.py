"""``SessionRepositoryContract``: the pytest suite that defines what a backend must do.

Use it from a backend's test module::

    from mooring.testing import SessionRepositoryContract

    class TestMyBackend(SessionRepositoryContract):
        @pytest.fixture
        def repository(self, tmp_path):
            repo = MyRepository(...)
            yield repo
            asyncio.run(repo.close())

Each test creates its own sessions (unique ids), so a fixture may share one store between
tests. Repositories must work from any event loop: the suite runs each test on a fresh loop,
as the Agent's synchronous call does. Tests of optional capabilities (``"ttl"``,
``"lease_expiry"``) are skipped unless the backend declares them.

A backend that declares ``"ttl"`` also provides a ``ttl_repository`` fixture: a repository
on which sessions expire ``session_ttl`` seconds (a fixture, 2 by default) after their last
write::

        @pytest.fixture
        def ttl_repository(self, tmp_path, session_ttl):
            repo = MyRepository(..., ttl=session_ttl)
            yield repo
            asyncio.run(repo.close())

The TTL tests only wait for things to happen (with generous deadlines) and compare what
happened in which order; they never assert on how long anything took.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from mooring._ids import MAX_ID_BYTES
from mooring.agent import Agent, tool
from mooring.errors import (
    ConflictError,
    InvalidIdentifierError,
    LeaseTimeoutError,
    SessionNotFoundError,
    UnstorableContentError,
)
from mooring.models import ScriptedModel, tool_call
from mooring.session.manager import RepositorySessionManager
from mooring.session.records import AgentRecord, MessageRecord, MultiAgentRecord, SessionRecord
from mooring.session.repository import SessionRepository
from mooring.testing._leases import LeaseAndTTLContract
from mooring.testing._support import (
    BAD_IDS,
    ID_UNITS,
    NON_CONTIGUOUS_APPENDS,
    _listed,
    _long_id,
    _msg,
    _nested,
    _on_fresh_loop,
    _session_with_agent,
    _sid,
)


class SessionRepositoryContract(LeaseAndTTLContract):
    """Subclass and provide a ``repository`` fixture yielding a :class:`SessionRepository`."""

    @pytest.fixture
    def repository(self) -> SessionRepository:
        raise NotImplementedError("subclasses provide a 'repository' fixture")

    @pytest.fixture
    def session_ttl(self) -> float:
        """Seconds a session of ``ttl_repository`` lives after its last write."""
        return 2.0

    @pytest.fixture
    def ttl_repository(self, repository: SessionRepository, session_ttl: float) -> SessionRepository:
        """A repository whose sessions expire ``session_ttl`` seconds after their last write.

        Backends that declare the ``"ttl"`` capability override this fixture.
        """
        name = type(repository).__name__
        if "ttl" not in repository.capabilities:
            pytest.skip(f"{name} does not declare the 'ttl' capability")
        pytest.fail(f"{name} declares the 'ttl' capability, but the test class provides no 'ttl_repository' fixture")

    # -- sessions -----------------------------------------------------------------------------

    @_on_fresh_loop
    async def test_create_and_read_session(self, repository: SessionRepository) -> None:
        sid = _sid()
        assert await repository.read_session(sid) is None
        created = await repository.create_session(SessionRecord(session_id=sid, extra={"note": "kept"}))
        read = await repository.read_session(sid)
        assert read is not None
        assert read.session_id == sid and read.session_type == "AGENT"
        assert read.created_at == created.created_at
        assert read.extra.get("note") == "kept"

    @_on_fresh_loop
    async def test_create_session_twice_conflicts(self, repository: SessionRepository) -> None:
        sid = _sid()
        await repository.create_session(SessionRecord(session_id=sid))
        with pytest.raises(ConflictError):
            await repository.create_session(SessionRecord(session_id=sid))

    @pytest.mark.parametrize("bad", BAD_IDS)
    @_on_fresh_loop
    async def test_bad_session_ids_are_refused(self, repository: SessionRepository, bad: str) -> None:
        with pytest.raises(InvalidIdentifierError):
            await repository.create_session(SessionRecord(session_id=bad))
        with pytest.raises(InvalidIdentifierError):
            await repository.read_session(bad)

    @pytest.mark.parametrize("bad", BAD_IDS)
    @_on_fresh_loop
    async def test_bad_agent_ids_are_refused(self, repository: SessionRepository, bad: str) -> None:
        sid = _sid()
        await repository.create_session(SessionRecord(session_id=sid))
        with pytest.raises(InvalidIdentifierError):
            await repository.create_agent(sid, AgentRecord(agent_id=bad))
        assert await repository.list_agents(sid) == []

    @_on_fresh_loop
    async def test_list_sessions_newest_first_with_cursor(self, repository: SessionRepository) -> None:
        prefix = uuid.uuid4().hex[:8]
        ids = [f"list-{prefix}-{i}" for i in range(5)]
        for i, sid in enumerate(ids):
            await repository.create_session(SessionRecord(session_id=sid, created_at=f"2999-01-01T00:00:0{i}+00:00"))
        seen: list[str] = []
        cursor = None
        while True:
            page = await repository.list_sessions(cursor=cursor, limit=2)
            assert len(page.sessions) <= 2
            seen.extend(s.session_id for s in page.sessions)
            cursor = page.next_cursor
            if cursor is None:
                break
        ours = [s for s in seen if s.startswith(f"list-{prefix}-")]
        assert ours == list(reversed(ids))
        assert len(seen) == len(set(seen))

    @_on_fresh_loop
    async def test_delete_session_removes_everything(self, repository: SessionRepository) -> None:
        sid = await _session_with_agent(repository)
        await repository.append_messages(sid, "agent", [_msg(0), _msg(1, role="assistant")])
        await repository.create_multi_agent(sid, MultiAgentRecord(multi_agent_id="graph", state={"a": 1}))
        assert await repository.delete_session(sid) is True
        assert await repository.read_session(sid) is None
        assert await repository.read_agent(sid, "agent") is None
        assert await repository.read_messages(sid, "agent") == []
        assert await repository.read_multi_agent(sid, "graph") is None
        assert await repository.delete_session(sid) is False
        # The id can be used again from scratch.
        await repository.create_session(SessionRecord(session_id=sid))
        assert await repository.list_agents(sid) == []

    @pytest.mark.parametrize("unit", ID_UNITS.values(), ids=ID_UNITS.keys())
    @_on_fresh_loop
    async def test_the_longest_ids_work_end_to_end(self, repository: SessionRepository, unit: str) -> None:
        sid = _long_id("session_id", unit)
        aid = _long_id("agent_id", unit)
        mid = _long_id("multi_agent_id", unit)
        await repository.create_session(SessionRecord(session_id=sid))
        await repository.create_agent(sid, AgentRecord(agent_id=aid))
        assert await repository.append_messages(sid, aid, [_msg(0), _msg(1, role="assistant")]) == 2
        await repository.update_agent(sid, AgentRecord(agent_id=aid, state={"k": 1}), expected_version=1)
        lease = await repository.acquire_lease(sid, aid, ttl=30, wait=0)
        with pytest.raises(LeaseTimeoutError):
            await repository.acquire_lease(sid, aid, ttl=30, wait=0)
        await repository.release_lease(lease)
        await repository.create_multi_agent(sid, MultiAgentRecord(multi_agent_id=mid, state={"n": 1}))
        await repository.update_multi_agent(
            sid, MultiAgentRecord(multi_agent_id=mid, state={"n": 2}), expected_version=1
        )
        assert sid in await _listed(repository)
        assert await repository.list_agents(sid) == [aid]
        assert await repository.list_multi_agents(sid) == [mid]
        assert [r.message_id for r in await repository.read_messages(sid, aid)] == [0, 1]
        agent = await repository.read_agent(sid, aid)
        assert agent is not None and agent.state == {"k": 1}
        multi = await repository.read_multi_agent(sid, mid)
        assert multi is not None and multi.state == {"n": 2}
        assert await repository.delete_session(sid) is True

    @pytest.mark.parametrize("unit", ID_UNITS.values(), ids=ID_UNITS.keys())
    @_on_fresh_loop
    async def test_one_byte_over_the_id_limit_is_refused_before_any_io(
        self, repository: SessionRepository, unit: str
    ) -> None:
        long_sid = _long_id("session_id", unit, extra=1)
        with pytest.raises(InvalidIdentifierError, match=f"limit is {MAX_ID_BYTES['session_id']} bytes"):
            await repository.create_session(SessionRecord(session_id=long_sid))
        with pytest.raises(InvalidIdentifierError, match="limit"):
            await repository.read_session(long_sid)
        assert not any(s.startswith(long_sid[:13]) for s in await _listed(repository))

        sid = await _session_with_agent(repository)
        long_aid = _long_id("agent_id", unit, extra=1)
        with pytest.raises(InvalidIdentifierError, match=f"limit is {MAX_ID_BYTES['agent_id']} bytes"):
            await repository.create_agent(sid, AgentRecord(agent_id=long_aid))
        with pytest.raises(InvalidIdentifierError, match="limit"):
            await repository.acquire_lease(sid, long_aid, ttl=30, wait=0)
        long_mid = _long_id("multi_agent_id", unit, extra=1)
        with pytest.raises(InvalidIdentifierError, match=f"limit is {MAX_ID_BYTES['multi_agent_id']} bytes"):
            await repository.create_multi_agent(sid, MultiAgentRecord(multi_agent_id=long_mid))
        assert await repository.list_agents(sid) == ["agent"]
        assert await repository.list_multi_agents(sid) == []

    @_on_fresh_loop
    async def test_ids_with_a_lone_surrogate_are_refused(self, repository: SessionRepository) -> None:
        with pytest.raises(InvalidIdentifierError, match="surrogate"):
            await repository.create_session(SessionRecord(session_id="bad-\ud800"))
        sid = _sid()
        await repository.create_session(SessionRecord(session_id=sid))
        with pytest.raises(InvalidIdentifierError, match="surrogate"):
            await repository.create_agent(sid, AgentRecord(agent_id="bad-\udfff"))
        assert await repository.list_agents(sid) == []

    # -- agents -------------------------------------------------------------------------------

    @_on_fresh_loop
    async def test_agent_record_round_trip(self, repository: SessionRepository) -> None:
        sid = _sid()
        await repository.create_session(SessionRecord(session_id=sid))
        state = {"counter": 3, "nested": {"list": [1, "two", None, 3.5]}, "unicode": "é☃"}
        cm = {"__name__": "SlidingWindowConversationManager", "removed_message_count": 2}
        created = await repository.create_agent(
            sid,
            AgentRecord(agent_id="a1", state=state, conversation_manager_state=cm, extra={"future": True}),
        )
        assert created.version == 1
        read = await repository.read_agent(sid, "a1")
        assert read is not None
        assert read.state == state and read.conversation_manager_state == cm and read.version == 1
        assert read.extra.get("future") is True
        assert await repository.read_agent(sid, "missing") is None
        assert await repository.list_agents(sid) == ["a1"]

    @_on_fresh_loop
    async def test_create_agent_twice_conflicts(self, repository: SessionRepository) -> None:
        sid = await _session_with_agent(repository)
        with pytest.raises(ConflictError):
            await repository.create_agent(sid, AgentRecord(agent_id="agent"))

    @_on_fresh_loop
    async def test_create_agent_needs_session(self, repository: SessionRepository) -> None:
        with pytest.raises(SessionNotFoundError):
            await repository.create_agent(_sid(), AgentRecord(agent_id="agent"))
        with pytest.raises(SessionNotFoundError):
            await repository.list_agents(_sid())

    @_on_fresh_loop
    async def test_update_agent_is_compare_and_set(self, repository: SessionRepository) -> None:
        sid = await _session_with_agent(repository)
        first = await repository.read_agent(sid, "agent")
        assert first is not None
        updated = await repository.update_agent(
            sid, AgentRecord(agent_id="agent", state={"k": 1}, next_message_id=7), expected_version=1
        )
        assert updated.version == 2
        with pytest.raises(ConflictError) as info:
            await repository.update_agent(sid, AgentRecord(agent_id="agent", state={"k": 2}), expected_version=1)
        assert info.value.version == 2
        read = await repository.read_agent(sid, "agent")
        assert read is not None
        assert read.state == {"k": 1} and read.version == 2 and read.next_message_id == 7
        assert read.created_at == first.created_at

    @_on_fresh_loop
    async def test_concurrent_updates_exactly_one_wins(self, repository: SessionRepository) -> None:
        sid = await _session_with_agent(repository)
        attempts = [
            repository.update_agent(sid, AgentRecord(agent_id="agent", state={"w": i}), expected_version=1)
            for i in range(8)
        ]
        outcomes = await asyncio.gather(*attempts, return_exceptions=True)
        wins = [o for o in outcomes if isinstance(o, AgentRecord)]
        assert len(wins) == 1
        assert all(isinstance(o, ConflictError) for o in outcomes if not isinstance(o, AgentRecord))
        read = await repository.read_agent(sid, "agent")
        assert read is not None and read.version == 2 and read.state == wins[0].state

    # -- messages -----------------------------------------------------------------------------

    @_on_fresh_loop
    async def test_append_and_read_by_range(self, repository: SessionRepository) -> None:
        sid = await _session_with_agent(repository)
        assert await repository.message_head(sid, "agent") == 0
        head = await repository.append_messages(sid, "agent", [_msg(0), _msg(1, role="assistant")])
        assert head == 2
        head = await repository.append_messages(sid, "agent", [_msg(i, role="user") for i in range(2, 10)])
        assert head == 10
        records = await repository.read_messages(sid, "agent", 3, 7)
        assert [r.message_id for r in records] == [3, 4, 5, 6]
        assert records[0].to_message() == {"role": "user", "content": [{"text": "message 3"}]}
        assert [r.message_id for r in await repository.read_messages(sid, "agent")] == list(range(10))
        assert [r.message_id for r in await repository.read_messages(sid, "agent", 8)] == [8, 9]
        assert await repository.read_messages(sid, "agent", 10, 20) == []

    @_on_fresh_loop
    async def test_message_head_with_any_hint(self, repository: SessionRepository) -> None:
        sid = await _session_with_agent(repository)
        await repository.append_messages(sid, "agent", [_msg(i) for i in range(37)])
        for hint in (None, 0, 1, 20, 36, 37, 38, 100, 5000):
            assert await repository.message_head(sid, "agent", hint=hint) == 37
        assert await repository.message_head(sid, "nobody") == 0
        assert await repository.read_messages(sid, "nobody") == []

    @_on_fresh_loop
    async def test_read_window_with_any_hint(self, repository: SessionRepository) -> None:
        sid = await _session_with_agent(repository)
        await repository.append_messages(sid, "agent", [_msg(i) for i in range(50)])
        for hint in (None, 0, 10, 49, 50, 51, 400):
            window, head = await repository.read_window(sid, "agent", 10, head_hint=hint)
            assert head == 50
            assert [r.message_id for r in window] == list(range(10, 50))
        window, head = await repository.read_window(sid, "agent", 70, head_hint=50)
        assert (window, head) == ([], 50)
        assert await repository.read_window(sid, "nobody", 0, head_hint=3) == ([], 0)

    @_on_fresh_loop
    async def test_append_at_taken_id_conflicts_and_writes_nothing(self, repository: SessionRepository) -> None:
        sid = await _session_with_agent(repository)
        await repository.append_messages(sid, "agent", [_msg(0, "original"), _msg(1, "original")])
        with pytest.raises(ConflictError) as info:
            await repository.append_messages(sid, "agent", [_msg(1, "intruder"), _msg(2, "intruder")])
        assert info.value.head == 2
        records = await repository.read_messages(sid, "agent")
        assert [r.to_message()["content"][0]["text"] for r in records] == ["original", "original"]

    @_on_fresh_loop
    async def test_append_past_head_conflicts(self, repository: SessionRepository) -> None:
        sid = await _session_with_agent(repository)
        await repository.append_messages(sid, "agent", [_msg(0)])
        with pytest.raises(ConflictError) as info:
            await repository.append_messages(sid, "agent", [_msg(5)])
        assert info.value.head == 1
        assert await repository.message_head(sid, "agent") == 1

    @pytest.mark.parametrize(("head", "ids"), NON_CONTIGUOUS_APPENDS.values(), ids=NON_CONTIGUOUS_APPENDS.keys())
    @_on_fresh_loop
    async def test_non_contiguous_append_conflicts_and_writes_nothing(
        self, repository: SessionRepository, head: int, ids: list[int]
    ) -> None:
        sid = await _session_with_agent(repository)
        if head:
            await repository.append_messages(sid, "agent", [_msg(i, "kept") for i in range(head)])
        with pytest.raises(ConflictError) as info:
            await repository.append_messages(sid, "agent", [_msg(i, "refused") for i in ids])
        assert info.value.head == head
        assert await repository.message_head(sid, "agent") == head
        stored = await repository.read_messages(sid, "agent", 0, max(ids) + 10)
        assert [(r.message_id, r.to_message()["content"][0]["text"]) for r in stored] == [
            (i, "kept") for i in range(head)
        ]
        # No stray record was left at any of the refused ids: a contiguous append over them works.
        end = max(ids) + 1
        assert await repository.append_messages(sid, "agent", [_msg(i, "later") for i in range(head, end)]) == end
        texts = [r.to_message()["content"][0]["text"] for r in await repository.read_messages(sid, "agent")]
        assert texts == ["kept"] * head + ["later"] * (end - head)

    @_on_fresh_loop
    async def test_append_needs_agent(self, repository: SessionRepository) -> None:
        sid = _sid()
        await repository.create_session(SessionRecord(session_id=sid))
        with pytest.raises(SessionNotFoundError):
            await repository.append_messages(sid, "ghost", [_msg(0)])
        with pytest.raises(SessionNotFoundError):
            await repository.append_messages(_sid(), "ghost", [_msg(0)])

    @_on_fresh_loop
    async def test_concurrent_appends_exactly_one_wins(self, repository: SessionRepository) -> None:
        sid = await _session_with_agent(repository)
        await repository.append_messages(sid, "agent", [_msg(0)])
        attempts = [repository.append_messages(sid, "agent", [_msg(1, f"writer {i}")]) for i in range(8)]
        outcomes = await asyncio.gather(*attempts, return_exceptions=True)
        assert sum(1 for o in outcomes if o == 2) == 1
        assert all(isinstance(o, ConflictError) for o in outcomes if o != 2)
        records = await repository.read_messages(sid, "agent")
        assert [r.message_id for r in records] == [0, 1]

    @_on_fresh_loop
    async def test_bytes_and_rich_content_round_trip(self, repository: SessionRepository) -> None:
        sid = await _session_with_agent(repository)
        message: Any = {
            "role": "user",
            "content": [
                {"text": "look"},
                {"image": {"format": "png", "source": {"bytes": b"\x89PNG\r\n\x00\xff"}}},
                {
                    "toolResult": {
                        "toolUseId": "t1",
                        "status": "success",
                        "content": [{"json": {"a": [1, 2]}}],
                    }
                },
            ],
        }
        await repository.append_messages(sid, "agent", [MessageRecord(message_id=0, message=message)])
        [record] = await repository.read_messages(sid, "agent")
        assert record.to_message() == message

    @_on_fresh_loop
    async def test_update_message_for_redaction(self, repository: SessionRepository) -> None:
        sid = await _session_with_agent(repository)
        await repository.append_messages(sid, "agent", [_msg(0, "secret card 4111")])
        [before] = await repository.read_messages(sid, "agent")
        redacted: Any = {"role": "user", "content": [{"text": "[redacted]"}]}
        await repository.update_message(
            sid, "agent", MessageRecord(message_id=0, message=redacted, redact_message=redacted)
        )
        [after] = await repository.read_messages(sid, "agent")
        assert after.to_message() == redacted and after.message == redacted
        assert after.created_at == before.created_at
        with pytest.raises(SessionNotFoundError):
            await repository.update_message(sid, "agent", _msg(5))

    @_on_fresh_loop
    async def test_truncate_is_conditional(self, repository: SessionRepository) -> None:
        sid = await _session_with_agent(repository)
        await repository.append_messages(sid, "agent", [_msg(i) for i in range(6)])
        with pytest.raises(ConflictError):
            await repository.truncate_messages(sid, "agent", 2, expected_head=5)
        await repository.truncate_messages(sid, "agent", 4, expected_head=6)
        assert await repository.message_head(sid, "agent", hint=6) == 4
        assert await repository.append_messages(sid, "agent", [_msg(4, "again")]) == 5
        assert [r.message_id for r in await repository.read_messages(sid, "agent")] == [0, 1, 2, 3, 4]

    @_on_fresh_loop
    async def test_a_nul_character_round_trips_or_is_refused_before_any_write(
        self, repository: SessionRepository
    ) -> None:
        # PostgreSQL's JSONB has no U+0000; the other backends store it. Either is fine, a raw
        # driver error or a half-written batch is not.
        sid = await _session_with_agent(repository)
        batch = [_msg(0, "fine"), _msg(1, "nul \x00 here", role="assistant")]
        try:
            await repository.append_messages(sid, "agent", batch)
        except UnstorableContentError as exc:
            assert "message 1" in str(exc)
            assert await repository.message_head(sid, "agent") == 0
        else:
            assert [r.to_message() for r in await repository.read_messages(sid, "agent")] == [r.message for r in batch]
        try:
            await repository.update_agent(sid, AgentRecord(agent_id="agent", state={"nul": "\x00"}), expected_version=1)
        except UnstorableContentError as exc:
            assert "'nul'" in str(exc)
            stored = await repository.read_agent(sid, "agent")
            assert stored is not None and stored.version == 1 and stored.state == {}
        else:
            stored = await repository.read_agent(sid, "agent")
            assert stored is not None and stored.state == {"nul": "\x00"}

    # -- what the session manager refuses, on this backend --------------------------------------

    @pytest.mark.parametrize(
        "prompt", ["lone \ud800 surrogate", [{"json": _nested(150)}]], ids=["lone-surrogate", "too-deep"]
    )
    def test_an_unstorable_prompt_is_refused_before_anything_is_written(
        self, repository: SessionRepository, prompt: Any
    ) -> None:
        sid = _sid()
        model = ScriptedModel(["one", "two"])
        agent = Agent(
            model=model,
            agent_id="default",
            session_manager=RepositorySessionManager(sid, repository),
            callback_handler=None,
        )
        agent("first")
        with pytest.raises(UnstorableContentError, match="message 2"):
            agent(prompt)
        assert len(model.calls) == 1  # refused before the model was asked
        stored = asyncio.run(repository.read_messages(sid, "default"))
        assert [r.to_message()["content"][0]["text"] for r in stored] == ["first", "one"]
        agent("again")
        stored = asyncio.run(repository.read_messages(sid, "default"))
        assert [r.to_message()["content"][0]["text"] for r in stored] == ["first", "one", "again", "two"]
        assert agent.messages == [r.to_message() for r in stored]

    def test_an_unstorable_tool_result_is_refused_and_the_turn_repaired(self, repository: SessionRepository) -> None:
        @tool
        def shout() -> str:
            """Returns a string no backend can store."""
            return "\udcff"

        sid = _sid()
        model = ScriptedModel([[tool_call("shout")], "never"])
        agent = Agent(
            model=model,
            agent_id="default",
            tools=[shout],
            session_manager=RepositorySessionManager(sid, repository),
            callback_handler=None,
        )
        with pytest.raises(UnstorableContentError, match="message 2"):
            agent("go")
        stored = asyncio.run(repository.read_messages(sid, "default"))
        assert [r.message_id for r in stored] == [0, 1]  # the prompt and its toolUse; no result
        agent("next")  # the dangling toolUse is closed, and the conversation goes on
        messages = [r.to_message() for r in asyncio.run(repository.read_messages(sid, "default"))]
        assert agent.messages == messages
        assert messages[-1]["content"] == [{"text": "never"}]
        assert all("\udcff" not in repr(m) for m in messages)

    # -- multi-agent --------------------------------------------------------------------------

    @_on_fresh_loop
    async def test_multi_agent_record_is_versioned(self, repository: SessionRepository) -> None:
        sid = _sid()
        await repository.create_session(SessionRecord(session_id=sid))
        created = await repository.create_multi_agent(
            sid, MultiAgentRecord(multi_agent_id="g", state={"type": "graph"})
        )
        assert created.version == 1
        with pytest.raises(ConflictError):
            await repository.create_multi_agent(sid, MultiAgentRecord(multi_agent_id="g"))
        updated = await repository.update_multi_agent(
            sid,
            MultiAgentRecord(multi_agent_id="g", state={"type": "graph", "status": "done"}),
            expected_version=1,
        )
        assert updated.version == 2
        with pytest.raises(ConflictError):
            await repository.update_multi_agent(sid, MultiAgentRecord(multi_agent_id="g"), expected_version=1)
        read = await repository.read_multi_agent(sid, "g")
        assert read is not None and read.state == {"type": "graph", "status": "done"} and read.version == 2
        assert await repository.read_multi_agent(sid, "other") is None
        await repository.create_multi_agent(sid, MultiAgentRecord(multi_agent_id="a-swarm"))
        assert await repository.list_multi_agents(sid) == ["a-swarm", "g"]
        with pytest.raises(SessionNotFoundError):
            await repository.list_multi_agents(_sid())
