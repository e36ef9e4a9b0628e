"""RepositorySessionManager over the in-memory and file repositories."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mooring import Agent, SlidingWindowConversationManager, ToolContext, tool
from mooring._ids import validate_id
from mooring.agent.agent import INTERRUPTED_TEXT
from mooring.errors import (
    ConfigurationError,
    ConflictError,
    CorruptRecordError,
    InvalidIdentifierError,
    LeaseTimeoutError,
    ModelError,
)
from mooring.models import ScriptedModel, tool_call
from mooring.session import (
    FileSessionManager,
    FileSessionRepository,
    InMemorySessionRepository,
    MessageRecord,
    RepositorySessionManager,
    SessionRepository,
    default_storage_dir,
)


def quiet_agent(manager: Any, responses: Sequence[Any] = (), **kwargs: Any) -> Agent:
    kwargs.setdefault("agent_id", "default")
    return Agent(model=ScriptedModel(list(responses)), session_manager=manager, callback_handler=None, **kwargs)


def texts(agent: Agent) -> list[str]:
    return [b.get("text", "<tool>") for m in agent.messages for b in m["content"][:1]]


def test_the_seed_scenario_leaves_the_strands_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    agent1 = Agent(
        model="offline",
        agent_id="assistant",
        session_manager=FileSessionManager(session_id="user-abc-123", storage_dir="./sessions"),
        callback_handler=None,
    )
    agent1("What's the capital of France?")
    agent2 = Agent(
        model="offline",
        agent_id="assistant",
        session_manager=FileSessionManager(session_id="user-abc-123", storage_dir="./sessions"),
        callback_handler=None,
    )
    assert 'You asked: "What\'s the capital of France?"' in str(agent2("What did I just ask you?"))
    root = tmp_path / "sessions"
    tree = sorted(str(p.relative_to(root)) for p in root.rglob("*") if not any(s.startswith(".") for s in p.parts))
    assert tree == [
        "session_user-abc-123",
        "session_user-abc-123/agents",
        "session_user-abc-123/agents/agent_assistant",
        "session_user-abc-123/agents/agent_assistant/agent.json",
        "session_user-abc-123/agents/agent_assistant/messages",
        *[f"session_user-abc-123/agents/agent_assistant/messages/message_{i}.json" for i in range(4)],
        "session_user-abc-123/multi_agents",
        "session_user-abc-123/session.json",
    ]
    record = json.loads((root / "session_user-abc-123/agents/agent_assistant/messages/message_2.json").read_text())
    assert set(record) == {"message", "message_id", "redact_message", "created_at", "updated_at"}
    assert record["message_id"] == 2 and record["redact_message"] is None
    assert record["message"] == {"role": "user", "content": [{"text": "What did I just ask you?"}]}
    assert oct((root / "session_user-abc-123").stat().st_mode & 0o777) == "0o700"


def test_default_storage_dir_follows_mooring_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOORING_HOME", str(tmp_path / "home"))
    assert default_storage_dir() == tmp_path / "home" / "sessions"
    assert FileSessionManager("s").storage_dir == tmp_path / "home" / "sessions"
    monkeypatch.delenv("MOORING_HOME")
    assert "tmp" not in str(default_storage_dir()).split(os.sep)[:2]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_identifier_validation_property(value: str) -> None:
    bad = (
        value in ("", ".", "..")
        or len(value.encode("utf-8", "surrogatepass")) > 247
        or any(0xD800 <= ord(c) <= 0xDFFF for c in value)
        or "/" in value
        or "\\" in value
        or any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in value)
    )
    try:
        validate_id(value)
    except InvalidIdentifierError:
        rejected = True
    else:
        rejected = False
    if bad:
        assert rejected
    if not rejected:
        assert value not in ("", ".", "..") and "/" not in value and len(value.encode("utf-8")) <= 247


@pytest.mark.parametrize("bad", ["", "..", "a/b", "x\x00", "y" * 300, "y" * 248, "\u0639" * 124, "\ud800"])
def test_bad_ids_fail_before_any_io(tmp_path: Path, bad: str) -> None:
    with pytest.raises(InvalidIdentifierError):
        FileSessionManager(session_id=bad, storage_dir=tmp_path / "s")
    manager = FileSessionManager(session_id="fine", storage_dir=tmp_path / "t")
    with pytest.raises(InvalidIdentifierError):
        quiet_agent(manager, agent_id=bad)
    assert not (tmp_path / "s").exists() or list((tmp_path / "s").iterdir()) == []


@pytest.mark.parametrize("agent_id", ["a" * 243, "a" * 249, "\u0639" * 122])
def test_an_agent_id_too_long_for_its_lock_files_leaves_nothing_behind(tmp_path: Path, agent_id: str) -> None:
    # agent_<id> would fit in 255 bytes, but its lock file agent_<id>.record would not.
    manager = FileSessionManager(session_id="s", storage_dir=tmp_path)
    with pytest.raises(InvalidIdentifierError, match="limit is 242 bytes"):
        quiet_agent(manager, ["never"], agent_id=agent_id)
    assert not list(tmp_path.rglob("agent_*"))
    longest = agent_id.encode()[:242].decode(errors="ignore")
    agent = quiet_agent(manager, ["stored"], agent_id=longest)
    agent("hello")
    assert texts(quiet_agent(FileSessionManager(session_id="s", storage_dir=tmp_path), agent_id=longest)) == [
        "hello",
        "stored",
    ]


def test_same_agent_id_twice_on_one_manager_is_a_configuration_error() -> None:
    manager = RepositorySessionManager("s", InMemorySessionRepository())
    quiet_agent(manager)
    with pytest.raises(ConfigurationError, match="agent_id"):
        quiet_agent(manager)
    quiet_agent(manager, agent_id="second")  # a distinct id is fine


class CountingRepository(InMemorySessionRepository):
    """Records which message ids were read, to prove restore reads only the window."""

    def __init__(self) -> None:
        super().__init__()
        self.ranges: list[tuple[int, int | None]] = []

    async def read_messages(
        self, session_id: str, agent_id: str, start: int = 0, end: int | None = None
    ) -> list[MessageRecord]:
        self.ranges.append((start, end))
        return await super().read_messages(session_id, agent_id, start, end)


def test_restore_reads_only_the_window() -> None:
    repo = CountingRepository()
    writer = quiet_agent(
        RepositorySessionManager("long", repo), ["ok"] * 300, conversation_manager=SlidingWindowConversationManager(40)
    )
    for i in range(300):
        writer(f"q{i}")
    repo.ranges.clear()
    reader = quiet_agent(
        RepositorySessionManager("long", repo), conversation_manager=SlidingWindowConversationManager(40)
    )
    assert len(reader.messages) <= 40 and texts(reader)[-1] == "ok"
    read = sum((end or 0) - start for start, end in repo.ranges)
    assert repo.ranges and all(start >= 560 for start, _ in repo.ranges)
    assert read <= 40


@pytest.mark.parametrize("backend", ["memory", "file"])
def test_full_trim_never_reuses_an_id(tmp_path: Path, backend: str) -> None:
    repo: SessionRepository = InMemorySessionRepository() if backend == "memory" else FileSessionRepository(tmp_path)
    first = quiet_agent(
        RepositorySessionManager("trim", repo), ["a0", "a1"], conversation_manager=SlidingWindowConversationManager(0)
    )
    first("q0")
    first("q1")
    assert first.messages == []  # the window is smaller than a turn
    second = quiet_agent(
        RepositorySessionManager("trim", repo), ["a2"], conversation_manager=SlidingWindowConversationManager(0)
    )
    assert second.messages == []
    second("q2")
    stored = asyncio.run(repo.read_messages("trim", "default"))
    assert [r.message_id for r in stored] == [0, 1, 2, 3, 4, 5]
    assert [r.message["content"][0]["text"] for r in stored] == ["q0", "a0", "q1", "a1", "q2", "a2"]


def _dangling(repo: SessionRepository) -> None:
    async def write() -> None:
        manager = RepositorySessionManager("crashed", repo)
        agent = quiet_agent(manager)
        del agent
        records = [
            MessageRecord(message_id=0, message={"role": "user", "content": [{"text": "use the tool"}]}),
            MessageRecord(
                message_id=1,
                message={"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "x", "input": {}}}]},
            ),
        ]
        await repo.append_messages("crashed", "default", records)

    asyncio.run(write())


@pytest.mark.parametrize("backend", ["memory", "file"])
def test_a_dangling_tool_use_is_repaired_in_memory_and_durably(tmp_path: Path, backend: str) -> None:
    repo: SessionRepository = InMemorySessionRepository() if backend == "memory" else FileSessionRepository(tmp_path)
    _dangling(repo)
    agent = quiet_agent(RepositorySessionManager("crashed", repo), ["next answer"])
    assert agent.messages[2]["content"][0]["toolResult"] == {
        "toolUseId": "t1",
        "status": "error",
        "content": [{"text": "tool call interrupted before it returned"}],
    }
    assert agent.messages[3]["content"][0]["text"] == INTERRUPTED_TEXT
    stored = asyncio.run(repo.read_messages("crashed", "default"))
    assert [r.to_message() for r in stored] == agent.messages
    agent("carry on")
    assert len(asyncio.run(repo.read_messages("crashed", "default"))) == 6


def test_a_failed_invocation_stores_no_prompt() -> None:
    repo = InMemorySessionRepository()
    agent = quiet_agent(RepositorySessionManager("s", repo), ["one", ModelError("down"), "three"])
    agent("first")
    with pytest.raises(ModelError):
        agent("second")
    assert len(asyncio.run(repo.read_messages("s", "default"))) == 2
    agent("third")
    stored = [r.message["content"][0]["text"] for r in asyncio.run(repo.read_messages("s", "default"))]
    assert stored == ["first", "one", "third", "three"]


def test_guardrail_redaction_is_applied_before_the_first_write(tmp_path: Path) -> None:
    events = [
        {"messageStart": {"role": "assistant"}},
        {"redactContent": {"redactUserContentMessage": "[input blocked]"}},
        {"contentBlockDelta": {"delta": {"text": "I cannot help with that."}}},
        {"contentBlockStop": {}},
        {"messageStop": {"stopReason": "guardrail_intervened"}},
    ]
    agent = quiet_agent(FileSessionManager("g", storage_dir=tmp_path), [{"events": events}])
    agent("my card number is 4111 1111 1111 1111")
    assert agent.messages[0]["content"] == [{"text": "[input blocked]"}]
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert "4111" not in path.read_text(errors="replace"), path
    restored = quiet_agent(FileSessionManager("g", storage_dir=tmp_path))
    assert restored.messages[0]["content"] == [{"text": "[input blocked]"}]


def test_a_corrupt_message_names_its_file_and_spares_other_sessions(tmp_path: Path) -> None:
    quiet_agent(FileSessionManager("broken", storage_dir=tmp_path), ["a"])("q")
    quiet_agent(FileSessionManager("healthy", storage_dir=tmp_path), ["b"])("q")
    target = tmp_path / "session_broken/agents/agent_default/messages/message_1.json"
    target.write_text(target.read_text()[:25])
    with pytest.raises(CorruptRecordError, match=r"message_1\.json"):
        quiet_agent(FileSessionManager("broken", storage_dir=tmp_path))
    assert texts(quiet_agent(FileSessionManager("healthy", storage_dir=tmp_path))) == ["q", "b"]


def test_symlinks_under_the_store_are_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    quiet_agent(FileSessionManager("real", storage_dir=outside), ["a"])("q")
    store = tmp_path / "store"
    store.mkdir()
    (store / "session_evil").symlink_to(outside / "session_real")
    with pytest.raises(ConfigurationError, match="symlink"):
        quiet_agent(FileSessionManager("evil", storage_dir=store))


def test_a_busy_session_fails_fast_when_asked_to() -> None:
    repo = InMemorySessionRepository()
    agent = quiet_agent(RepositorySessionManager("busy", repo, fail_fast=True), ["never"])

    async def hold() -> Any:
        return await repo.acquire_lease("busy", "default", ttl=30, wait=0)

    lease = asyncio.run(hold())
    with pytest.raises(LeaseTimeoutError, match="busy"):
        agent("hello")
    assert agent.messages == []
    asyncio.run(repo.release_lease(lease))
    agent("hello")  # usable again once the other holder is gone
    assert texts(agent) == ["hello", "never"]


def test_a_writer_without_the_lease_is_fenced() -> None:
    repo = InMemorySessionRepository()
    agent = quiet_agent(RepositorySessionManager("fence", repo), ["a", "b"])
    agent("q0")
    # Another writer appends behind this agent's back (as a holder of an expired lease would).
    asyncio.run(
        repo.append_messages(
            "fence",
            "default",
            [MessageRecord(message_id=2, message={"role": "user", "content": [{"text": "intruder"}]})],
        )
    )
    tracked = agent.session_manager._tracked["default"]  # type: ignore[union-attr]
    tracked.in_invocation = False

    async def add_directly() -> None:
        await agent._append_message({"role": "assistant", "content": [{"text": "late"}]})

    with pytest.raises(ConflictError, match="taken by another writer"):
        asyncio.run(add_directly())
    stored = [r.message["content"][0]["text"] for r in asyncio.run(repo.read_messages("fence", "default"))]
    assert stored == ["q0", "a", "intruder"]


def test_state_keys_from_two_processes_merge() -> None:
    repo = InMemorySessionRepository()
    one = quiet_agent(RepositorySessionManager("merge", repo), ["r1", "r3"])
    two = quiet_agent(RepositorySessionManager("merge", repo), ["r2"])
    one.state.set("from_one", 1)
    one("q1")
    two.state.set("from_two", 2)
    two("q2")
    one.state.set("later", True)  # set between invocations: survives the catch-up
    one("q3")
    stored = asyncio.run(repo.read_agent("merge", "default"))
    assert stored is not None and stored.state == {"from_one": 1, "from_two": 2, "later": True}
    assert texts(one) == ["q1", "r1", "q2", "r2", "q3", "r3"]  # one caught up on two's turn


def test_a_state_change_during_the_record_write_is_not_lost() -> None:
    class SetsStateMidWrite(InMemorySessionRepository):
        agent: Agent | None = None

        async def update_agent(self, session_id: str, agent: Any, *, expected_version: int) -> Any:
            if self.agent is not None:
                target, self.agent = self.agent, None
                target.state.set("late", True)  # as a tool thread could while the write is awaited
            return await super().update_agent(session_id, agent, expected_version=expected_version)

    @tool
    def mark(tool_context: ToolContext) -> str:
        """Mark the state, so the turn writes the agent record."""
        tool_context.agent.state.set("marked", True)
        return "marked"

    repo = SetsStateMidWrite()
    one = quiet_agent(RepositorySessionManager("midwrite", repo), [[tool_call("mark")], "r1", "r3"], tools=[mark])
    two = quiet_agent(RepositorySessionManager("midwrite", repo), ["r2"])
    repo.agent = one
    one("q1")
    assert repo.agent is None  # the record write happened, and "late" was set during it
    two.state.set("from_two", 2)
    two("q2")
    one("q3")  # catches up on two's record: "late" was never stored, so it must stay pending
    stored = asyncio.run(repo.read_agent("midwrite", "default"))
    assert stored is not None and stored.state == {"marked": True, "late": True, "from_two": 2}


def test_a_truncation_elsewhere_is_picked_up() -> None:
    repo = InMemorySessionRepository()
    agent = quiet_agent(RepositorySessionManager("undo", repo), ["a", "b", "c"])
    agent("q0")
    agent("q1")
    asyncio.run(repo.truncate_messages("undo", "default", 2, expected_head=4))
    agent("q2")
    assert texts(agent) == ["q0", "a", "q2", "c"]
    stored = [r.message["content"][0]["text"] for r in asyncio.run(repo.read_messages("undo", "default"))]
    assert stored == ["q0", "a", "q2", "c"]


def test_a_state_value_set_before_a_reload_survives_it() -> None:
    # A truncation elsewhere makes the next turn reload the stored window; a value set
    # between the two invocations was never stored and must not be dropped by that reload.
    repo = InMemorySessionRepository()
    agent = quiet_agent(RepositorySessionManager("reload", repo), ["a", "b", "c"])
    agent.state.set("kept", 1)
    agent("q0")
    agent("q1")
    asyncio.run(repo.truncate_messages("reload", "default", 2, expected_head=4))
    agent.state.set("between", 2)
    agent.state.delete("kept")
    agent("q2")
    stored = asyncio.run(repo.read_agent("reload", "default"))
    assert stored is not None and stored.state == {"between": 2}
    assert agent.state.get() == {"between": 2}


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["turn", "state", "reopen", "trim"]), min_size=1, max_size=12))
def test_random_operation_sequences_match_the_reference(
    tmp_path_factory: pytest.TempPathFactory, ops: list[str]
) -> None:
    """The file backend and the in-memory reference end in the same stored state."""
    stores: dict[str, SessionRepository] = {
        "memory": InMemorySessionRepository(),
        "file": FileSessionRepository(tmp_path_factory.mktemp("ops"), durability="none"),
    }
    outcomes = {}
    for name, repo in stores.items():
        window = 40
        agent = quiet_agent(
            RepositorySessionManager("ops", repo),
            ["r"] * 50,
            conversation_manager=SlidingWindowConversationManager(window),
        )
        for i, op in enumerate(ops):
            if op == "turn":
                agent(f"q{i}")
            elif op == "state":
                agent.state.set(f"k{i % 3}", i)
                agent("with state")
            elif op == "reopen":
                state = agent.state.get()
                agent = quiet_agent(
                    RepositorySessionManager("ops", repo),
                    ["r"] * 50,
                    conversation_manager=SlidingWindowConversationManager(window),
                )
                assert agent.state.get() == state
            elif op == "trim":
                window = 2
                agent.conversation_manager = SlidingWindowConversationManager(2)
                agent.conversation_manager.removed_message_count = 0
        records = asyncio.run(repo.read_messages("ops", "default"))
        record = asyncio.run(repo.read_agent("ops", "default"))
        assert record is not None
        assert [r.message_id for r in records] == list(range(len(records)))
        outcomes[name] = ([r.to_message() for r in records], record.state)
    assert outcomes["memory"] == outcomes["file"]


class Orchestrator:
    """A stand-in for a graph or swarm: it persists a dict of progress."""

    def __init__(self, ident: str) -> None:
        self.id = ident
        self.progress: dict[str, Any] = {"type": "graph", "completed_nodes": []}

    def serialize_state(self) -> dict[str, Any]:
        return dict(self.progress)

    def deserialize_state(self, state: dict[str, Any]) -> None:
        self.progress = dict(state)


def test_multi_agent_records_persist_and_conflict(tmp_path: Path) -> None:
    manager = FileSessionManager("orchestrated", storage_dir=tmp_path)
    graph = Orchestrator("research-graph")
    asyncio.run(manager.initialize_multi_agent(graph))
    graph.progress["completed_nodes"] = ["plan", "search"]
    asyncio.run(manager.sync_multi_agent(graph))
    stored = json.loads(
        (tmp_path / "session_orchestrated/multi_agents/multi_agent_research-graph/multi_agent.json").read_text()
    )
    assert stored["id"] == "research-graph" and stored["completed_nodes"] == ["plan", "search"]

    other_manager = FileSessionManager("orchestrated", storage_dir=tmp_path)
    resumed = Orchestrator("research-graph")
    asyncio.run(other_manager.initialize_multi_agent(resumed))
    assert resumed.progress["completed_nodes"] == ["plan", "search"]
    resumed.progress["completed_nodes"].append("write")
    asyncio.run(other_manager.sync_multi_agent(resumed))
    graph.progress["completed_nodes"].append("stale")
    with pytest.raises(ConflictError):
        asyncio.run(manager.sync_multi_agent(graph))  # never silently overwrites the newer state
